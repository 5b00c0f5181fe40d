//! Builds one image, or skips the build when its inputs are unchanged.
//!
//! The built ref is `<name>:loop-<16 hex digits of the content hash>` (or
//! `<name>:<tag>` for `custom_build(tag=...)`). A `custom_build` runs its command
//! with `EXPECTED_REF` (and `EXPECTED_IMAGE`, `EXPECTED_TAG`) set; a
//! `docker_build` sends the context `loop` selected ([`super::context`]) as a tar
//! to `docker build -`, which needs a reachable Docker daemon; the image is then
//! delivered ([`super::registry`]): pushed, or loaded into kind/k3d.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use loop_lang::model::{Cmd, Image, ImageKind};
use loop_lang::workload::image_name;

use super::context::resolve;
use super::docker::{docker_build, docker_daemon, human_bytes, Tools};
pub use super::error::BuildError;
use super::exec;
use super::hash::{content_hash, tag};
use super::oci;
use super::record::{Entry, Record};
use super::registry::{self, Destination};
use crate::process::describe_exit;
use crate::report::LineSink;

/// The outcome of a successful (or skipped) build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The ref as declared.
    pub image_ref: String,
    /// The ref built (`name:tag`, in the local daemon for a `docker_build`).
    pub built_ref: String,
    /// The ref pods run: `built_ref`, or `repo@sha256:…` once pushed.
    pub deploy_ref: String,
    /// The content hash of the inputs.
    pub hash: String,
    /// Whether the build was skipped because the record had this hash.
    pub skipped: bool,
}

/// Builds `image` of the project at `root`, unless `record` shows a build of the
/// same content hash, and records a successful build (saving the record). Build
/// output and notes go to `log`. The image stays in the local daemon.
pub async fn build(
    image: &Image,
    root: &Path,
    log: LineSink,
    record: &Record,
) -> Result<Built, BuildError> {
    build_to(image, root, log, record, &Destination::Local).await
}

/// [`build`], then delivers a `docker_build` image to `destination` (push,
/// or load into kind/k3d); [`Built::deploy_ref`] is what pods then run.
pub async fn build_to(
    image: &Image,
    root: &Path,
    log: LineSink,
    record: &Record,
    destination: &Destination,
) -> Result<Built, BuildError> {
    build_with(image, root, log, record, &Tools::default(), destination).await
}

pub(crate) async fn build_with(
    image: &Image,
    root: &Path,
    log: LineSink,
    record: &Record,
    tools: &Tools,
    destination: &Destination,
) -> Result<Built, BuildError> {
    let image_ref = image.image_ref.clone();
    if image.kind == ImageKind::LiveUpdateOnly {
        // Deployed as it is, by someone else: nothing to build.
        return Ok(Built {
            built_ref: image_ref.clone(),
            deploy_ref: image_ref.clone(),
            image_ref,
            hash: String::new(),
            skipped: true,
        });
    }
    let hash = hash_inputs(image, root).await?;
    let name = image_name(&image_ref);
    let tag = image.tag.clone().unwrap_or_else(|| tag(&hash));
    if image.kind == ImageKind::Oci {
        let how = format!(
            "oci_build from {}",
            image.base.as_deref().unwrap_or_default()
        );
        return build_oci(image, root, &hash, &tag, record, destination, &how, &log).await;
    }
    if let (ImageKind::Docker, Destination::Registry(_)) = (image.kind, destination) {
        match without_docker(image, root) {
            Ok(base) => {
                let how = format!("its Dockerfile has no RUN step; from {base}");
                return build_oci(image, root, &hash, &tag, record, destination, &how, &log).await;
            }
            Err(why) => log(&format!("{image_ref}: built by Docker: {why}")),
        }
    }
    let previous = record.get(&image_ref).filter(|e| e.hash == hash);
    let (mut entry, skipped) = match previous {
        Some(entry) => {
            log(&format!(
                "{image_ref}: inputs unchanged since {}, using {}",
                entry.built_at, entry.built_ref
            ));
            (entry, true)
        }
        None => {
            let built_ref = format!("{name}:{tag}");
            run_build(image, root, tools, &built_ref, &tag, &log).await?;
            let entry = Entry {
                skips_local_docker: image.skips_local_docker,
                disable_push: image.disable_push,
                ..Entry::now(&hash, &built_ref)
            };
            (entry, false)
        }
    };
    let built_ref = entry.built_ref.clone();
    let tag = built_ref
        .rsplit_once(':')
        .map_or(tag.as_str(), |(_, t)| t)
        .to_owned();
    let deploy_ref = match image.kind {
        ImageKind::Docker => deliver(image, &mut entry, &tag, destination, tools, &log).await?,
        ImageKind::Custom | ImageKind::Oci | ImageKind::LiveUpdateOnly => built_ref.clone(),
    };
    if !skipped || previous_differs(record, &image_ref, &entry) {
        if let Err(e) = record.insert(&image_ref, entry) {
            // The build stands; only the skip after a restart is lost.
            log(&format!("{image_ref}: built, but {e}"));
        }
    }
    Ok(Built {
        image_ref,
        built_ref,
        deploy_ref,
        hash,
        skipped,
    })
}

fn previous_differs(record: &Record, image_ref: &str, entry: &Entry) -> bool {
    record.get(image_ref).as_ref() != Some(entry)
}

/// Runs the build of `image` as `built_ref`.
async fn run_build(
    image: &Image,
    root: &Path,
    tools: &Tools,
    built_ref: &str,
    tag: &str,
    log: &LineSink,
) -> Result<(), BuildError> {
    let image_ref = &image.image_ref;
    match image.kind {
        ImageKind::Custom => {
            let cmd = image
                .command
                .as_ref()
                .ok_or_else(|| BuildError::NoCommand {
                    image_ref: image_ref.clone(),
                })?;
            let env = BTreeMap::from([
                ("EXPECTED_REF".to_owned(), built_ref.to_owned()),
                (
                    "EXPECTED_IMAGE".to_owned(),
                    image_name(image_ref).to_owned(),
                ),
                ("EXPECTED_TAG".to_owned(), tag.to_owned()),
            ]);
            log(&format!(
                "{image_ref}: building {built_ref}: {}",
                cmd.display()
            ));
            run(
                image_ref,
                cmd,
                &resolve(root, &image.command_dir),
                &env,
                log,
            )
            .await
        }
        ImageKind::LiveUpdateOnly => Ok(()),
        ImageKind::Docker => {
            let version = docker_daemon(&tools.docker).await?;
            docker_build(image, root, tools, built_ref, &version, log).await
        }
        ImageKind::Oci => Err(BuildError::NoRegistry {
            image_ref: image_ref.clone(),
        }),
    }
}

/// Puts the built image where the cluster can run it; returns the ref to deploy.
/// What was done is kept in `entry`, so that an unchanged image is not pushed
/// or loaded again.
async fn deliver(
    image: &Image,
    entry: &mut Entry,
    tag: &str,
    destination: &Destination,
    tools: &Tools,
    log: &LineSink,
) -> Result<String, BuildError> {
    let image_ref = &image.image_ref;
    let built_ref = entry.built_ref.clone();
    match destination {
        Destination::Local => Ok(built_ref),
        Destination::Registry(registry) => {
            let (push_repo, pull_repo) = registry::rewrite(registry, image_name(image_ref));
            let pushed = format!("{push_repo}:{tag}");
            if entry.delivered_to.as_deref() == Some(pushed.as_str()) {
                if let Some(deploy) = &entry.deploy_ref {
                    log(&format!("{image_ref}: already pushed as {deploy}"));
                    return Ok(deploy.clone());
                }
            }
            docker_daemon(&tools.docker).await?;
            let tag_cmd = Cmd::Argv(vec![
                tools.docker.clone(),
                "tag".into(),
                built_ref.clone(),
                pushed.clone(),
            ]);
            run(image_ref, &tag_cmd, Path::new("/"), &BTreeMap::new(), log).await?;
            let push_cmd = Cmd::Argv(vec![tools.docker.clone(), "push".into(), pushed.clone()]);
            log(&format!("{image_ref}: pushing {pushed}"));
            let finished = exec::run(&push_cmd, Path::new("/"), &BTreeMap::new(), log)
                .await
                .map_err(|reason| BuildError::Spawn {
                    image_ref: image_ref.clone(),
                    reason,
                })?;
            if !finished.status.success() {
                return Err(BuildError::Push {
                    image_ref: image_ref.clone(),
                    target: pushed,
                    exit: describe_exit(finished.status),
                    output: finished.tail,
                });
            }
            let digest =
                registry::pushed_digest(&finished.tail).ok_or_else(|| BuildError::Push {
                    image_ref: image_ref.clone(),
                    target: pushed.clone(),
                    exit: "success, but no digest in its output".into(),
                    output: finished.tail.clone(),
                })?;
            let deploy = format!("{pull_repo}@{digest}");
            log(&format!("{image_ref}: pushed, deploying {deploy}"));
            entry.delivered_to = Some(pushed);
            entry.deploy_ref = Some(deploy.clone());
            Ok(deploy)
        }
        Destination::Kind { cluster } | Destination::K3d { cluster } => {
            let kind = matches!(destination, Destination::Kind { .. });
            let (program, argv, target) = if kind {
                let program = tools.kind.clone();
                let argv = vec![
                    program.clone(),
                    "load".into(),
                    "docker-image".into(),
                    built_ref.clone(),
                    "--name".into(),
                    cluster.clone(),
                ];
                (program, argv, format!("kind cluster {cluster}"))
            } else {
                let program = tools.k3d.clone();
                let argv = vec![
                    program.clone(),
                    "image".into(),
                    "import".into(),
                    built_ref.clone(),
                    "--cluster".into(),
                    cluster.clone(),
                ];
                (program, argv, format!("k3d cluster {cluster}"))
            };
            let loaded = format!("{target}: {built_ref}");
            if entry.delivered_to.as_deref() == Some(loaded.as_str()) {
                return Ok(built_ref);
            }
            if !on_path(&program) {
                log(&format!(
                    "{image_ref}: the {target} has no registry and `{program}` is not on PATH, \
                     so {built_ref} is not loaded into it: install {program}, or give the \
                     cluster a registry (default_registry(...) or its local-registry-hosting \
                     ConfigMap); deploying {built_ref} as it is"
                ));
                return Ok(built_ref);
            }
            log(&format!(
                "{image_ref}: loading {built_ref} into the {target}"
            ));
            run(
                image_ref,
                &Cmd::Argv(argv),
                Path::new("/"),
                &BTreeMap::new(),
                log,
            )
            .await?;
            entry.delivered_to = Some(loaded);
            entry.deploy_ref = Some(built_ref.clone());
            Ok(built_ref)
        }
    }
}

/// Whether a `docker_build` can be built without Docker (see
/// [`super::dockerfile`]): its base image, or why not.
pub fn without_docker(image: &Image, root: &Path) -> Result<String, String> {
    if !image.build_args.is_empty()
        || !image.extra_tags.is_empty()
        || image.platform.is_some()
        || image.network.is_some()
        || !image.ssh.is_empty()
        || !image.secrets.is_empty()
    {
        return Err("build_args, extra_tag, platform, network, ssh or secret is given".to_owned());
    }
    let text = match (&image.dockerfile_contents, &image.dockerfile) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => fs::read_to_string(resolve(root, path))
            .map_err(|e| format!("cannot read the Dockerfile {path}: {e}"))?,
        (None, None) => return Err("no Dockerfile".to_owned()),
    };
    super::dockerfile::plan(&text, image.target.as_deref()).map(|plan| plan.base)
}

/// An image `loop` assembles and pushes itself (an `oci_build`, or a
/// `docker_build` whose Dockerfile has no `RUN` step), unless the record shows
/// the same inputs pushed to the same place. `how` says which, for the log.
#[allow(clippy::too_many_arguments)]
async fn build_oci(
    image: &Image,
    root: &Path,
    hash: &str,
    tag: &str,
    record: &Record,
    destination: &Destination,
    how: &str,
    log: &LineSink,
) -> Result<Built, BuildError> {
    let image_ref = image.image_ref.clone();
    let Destination::Registry(registry) = destination else {
        return Err(BuildError::NoRegistry { image_ref });
    };
    let (push_repo, pull_repo) = registry::rewrite(registry, image_name(&image_ref));
    let pushed = format!("{push_repo}:{tag}");
    if let Some(entry) = record.get(&image_ref).filter(|e| {
        e.hash == hash
            && e.delivered_to.as_deref() == Some(pushed.as_str())
            && e.deploy_ref.is_some()
    }) {
        let deploy_ref = entry.deploy_ref.clone().unwrap_or_default();
        log(&format!(
            "{image_ref}: inputs unchanged since {}, using {deploy_ref}",
            entry.built_at
        ));
        return Ok(Built {
            image_ref,
            built_ref: entry.built_ref,
            deploy_ref,
            hash: hash.to_owned(),
            skipped: true,
        });
    }
    log(&format!(
        "{image_ref}: building {pushed} without Docker ({how})"
    ));
    let started = std::time::Instant::now();
    let outcome = oci::build_and_push(
        image,
        root,
        &push_repo,
        tag,
        registry,
        &root.join(".loop").join("oci"),
    )
    .await
    .map_err(|reason| BuildError::Oci {
        image_ref: image_ref.clone(),
        reason,
    })?;
    let deploy_ref = format!("{pull_repo}@{}", outcome.digest);
    log(&format!(
        "{image_ref}: pushed {} in {:.2}s: {} blob(s), {} sent, {} mounted, {} of {} layer(s) from the cache; deploying {deploy_ref}",
        outcome.pushed,
        started.elapsed().as_secs_f64(),
        outcome.blobs_pushed,
        human_bytes(outcome.bytes_pushed),
        outcome.blobs_mounted,
        outcome.layers_cached,
        image.copies.len()
    ));
    let entry = Entry {
        delivered_to: Some(pushed.clone()),
        deploy_ref: Some(deploy_ref.clone()),
        ..Entry::now(hash, &pushed)
    };
    if let Err(e) = record.insert(&image_ref, entry) {
        log(&format!("{image_ref}: built, but {e}"));
    }
    Ok(Built {
        image_ref,
        built_ref: pushed,
        deploy_ref,
        hash: hash.to_owned(),
        skipped: false,
    })
}

/// Whether `program` (a name or a path) can be run.
fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Hashes the inputs on a blocking thread: the walk reads every file.
async fn hash_inputs(image: &Image, root: &Path) -> Result<String, BuildError> {
    let (owned, root_owned) = (image.clone(), root.to_path_buf());
    tokio::task::spawn_blocking(move || content_hash(&owned, &root_owned))
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
        .map_err(|source| BuildError::Hash {
            image_ref: image.image_ref.clone(),
            source,
        })
}

/// Runs a build command; a non-zero exit is a [`BuildError::Failed`].
async fn run(
    image_ref: &str,
    cmd: &Cmd,
    dir: &Path,
    env: &BTreeMap<String, String>,
    log: &LineSink,
) -> Result<(), BuildError> {
    if cmd.argv().is_empty() {
        return Err(BuildError::NoCommand {
            image_ref: image_ref.to_owned(),
        });
    }
    let finished = exec::run(cmd, dir, env, log)
        .await
        .map_err(|reason| BuildError::Spawn {
            image_ref: image_ref.to_owned(),
            reason,
        })?;
    if finished.status.success() {
        return Ok(());
    }
    Err(BuildError::Failed {
        image_ref: image_ref.to_owned(),
        cmd: cmd.display(),
        exit: describe_exit(finished.status),
        output: finished.tail,
    })
}
