//! Image builds: content hashing of an image's inputs, the record of built images
//! under `.loop/`, running `custom_build` commands and `docker_build`s, and putting
//! the built ref into the Kubernetes objects that use the image.
//!
//! The flow for one image: [`build`] hashes the inputs ([`content_hash`]); when
//! the [`Record`] holds that hash the build is skipped, otherwise it runs and is
//! recorded. The caller then calls [`inject`] on the objects of every workload
//! that uses the image ([`workloads_using`]) and redeploys exactly those.
//!
//! A `docker_build`'s context is chosen by `loop` ([`context`]): the same files
//! are sent to Docker and hashed, so `.dockerignore`, `ignore` and `only` hold in
//! both places.
//!
//! A built `docker_build` image is then delivered ([`registry`]): pushed to the
//! registry and deployed by digest, or loaded into a kind/k3d cluster.
//!
//! An `oci_build` needs no daemon: [`oci`] assembles the image from a base in a
//! registry and one reproducible layer per copy step, and pushes it.
//!
//! Not done here: pushing `custom_build` images (`disable_push` and
//! `skips_local_docker` are only recorded; its command gets the unrewritten
//! name), and checking that a recorded image still exists before skipping its
//! build.

mod bases;
mod blobs;
mod build;
mod context;
mod docker;
mod dockerfile;
mod error;
mod exec;
mod hash;
mod inject;
mod oci;
mod oci_layers;
mod oci_registry;
mod record;
mod registry;

#[cfg(test)]
mod tests;

pub use bases::with_built_bases;
pub use build::{build, build_to, without_docker, Built};
pub(crate) use context::Context;
pub use error::BuildError;
pub use hash::{content_hash, tag};
pub use inject::{inject, set_entrypoint};
pub use oci::{sha256, OciOutcome};
pub use record::{Entry, Record};
pub use registry::{from_local_registry_hosting, Destination};

use loop_lang::data::Data;
use loop_lang::model::{Image, Resource};

/// Puts an image into an object as it is deployed: its `entrypoint` (if any)
/// on the containers that run it, and `built_ref` (when given) in place of the
/// declared ref.
pub fn put(body: &mut Data, image: &Image, built_ref: Option<&str>) {
    if let Some(entrypoint) = &image.entrypoint {
        set_entrypoint(body, &image.image_ref, &entrypoint.argv());
    }
    if let Some(built_ref) = built_ref {
        inject(body, &image.image_ref, built_ref, image.match_in_env_vars);
    }
}

/// The resources that deploy `image_ref`: the ones to redeploy when it changes.
pub fn workloads_using<'a>(
    resources: &'a [Resource],
    image_ref: &'a str,
) -> impl Iterator<Item = &'a Resource> + 'a {
    resources
        .iter()
        .filter(move |r| r.images.iter().any(|i| i == image_ref))
}
