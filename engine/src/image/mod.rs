//! Image builds: content hashing of an image's inputs, the record of built images
//! under `.loop/`, running `custom_build` commands and `docker_build`s, and putting
//! the built ref into the Kubernetes objects that use the image.
//!
//! The flow for one image: [`build`] hashes the inputs ([`content_hash`]); when
//! the [`Record`] holds that hash the build is skipped, otherwise it runs and is
//! recorded. The caller then calls [`inject`] on the objects of every workload
//! that uses the image ([`workloads_using`]) and redeploys exactly those.
//!
//! Not done here: pushing to a registry (`disable_push` and `skips_local_docker`
//! are only recorded), loading images into a cluster, `default_registry`
//! rewrites, `docker_build(only=...)` narrowing the context sent to Docker (it
//! narrows the hash only), `.dockerignore`, and checking that a recorded image
//! still exists before skipping its build.

mod build;
mod exec;
mod hash;
mod inject;
mod record;

#[cfg(test)]
mod tests;

pub use build::{build, BuildError, Built, Log};
pub use hash::{content_hash, tag};
pub use inject::inject;
pub use record::{Entry, Record};

use loop_lang::model::Resource;

/// The resources that deploy `image_ref`: the ones to redeploy when it changes.
pub fn workloads_using<'a>(
    resources: &'a [Resource],
    image_ref: &'a str,
) -> impl Iterator<Item = &'a Resource> + 'a {
    resources
        .iter()
        .filter(move |r| r.images.iter().any(|i| i == image_ref))
}
