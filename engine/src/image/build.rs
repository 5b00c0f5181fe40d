//! Builds one image, or skips the build when its inputs are unchanged.
//!
//! The built ref is `<name>:loop-<16 hex digits of the content hash>` (or
//! `<name>:<tag>` for `custom_build(tag=...)`). A `custom_build` runs its command
//! with `EXPECTED_REF` (and `EXPECTED_IMAGE`, `EXPECTED_TAG`) set; a
//! `docker_build` sends the context `loop` selected ([`super::context`]) as a tar
//! to `docker build -`, which needs a reachable Docker daemon; the image is then
//! delivered ([`super::registry`]): pushed, or loaded into kind/k3d.

use crate::failure::{io_kind, Failure, FailureKind};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Seek, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use loop_lang::model::{Cmd, Image, ImageKind};
use loop_lang::workload::image_name;
use tokio::process::Command;

use super::context::resolve;
use super::context::{self, Context, DOCKERFILE_IN_TAR};
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

/// Why an image did not build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("image {image_ref}: cannot hash its inputs: {source}")]
    Hash {
        image_ref: String,
        #[source]
        source: io::Error,
    },
    #[error("image {image_ref}: custom_build has no command")]
    NoCommand { image_ref: String },
    #[error("image {image_ref}: {reason}")]
    Spawn { image_ref: String, reason: String },
    #[error("{}", failed_message(image_ref, cmd, exit, output))]
    Failed {
        image_ref: String,
        /// The command as the user wrote it.
        cmd: String,
        /// How it ended, in words (`exit code 2`).
        exit: String,
        /// Its last output lines.
        output: Vec<String>,
    },
    #[error("image {image_ref}: cannot read its build context: {source}")]
    Context {
        image_ref: String,
        #[source]
        source: io::Error,
    },
    #[error("{}", docker_failed_message(image_ref, step.as_deref(), exit, output))]
    DockerFailed {
        image_ref: String,
        /// The failing Dockerfile step, as Docker printed it.
        step: Option<String>,
        exit: String,
        /// What the failing step printed (or the last lines).
        output: Vec<String>,
    },
    #[error("{}", push_failed_message(image_ref, target, exit, output))]
    Push {
        image_ref: String,
        /// What was pushed (`host/repo:tag`).
        target: String,
        exit: String,
        output: Vec<String>,
    },
    #[error("image {image_ref}: oci_build pushes the image it assembles to a registry, and there is none: declare default_registry(\"localhost:5000\") (or use a cluster that advertises its registry in the ConfigMap kube-public/local-registry-hosting)")]
    NoRegistry { image_ref: String },
    #[error("image {image_ref}: building without Docker failed: {reason}")]
    Oci { image_ref: String, reason: String },
    #[error("docker_build needs a Docker daemon: none is reachable (docker CLI said: {said}). Start Docker, set DOCKER_HOST, or use custom_build with a builder that needs no daemon")]
    NoDaemon { said: String },
    #[error("docker_build needs the docker CLI, but `{program}` was not found on PATH. Install Docker (CLI and daemon), or use custom_build with a builder that needs no daemon")]
    NoDockerCli { program: String },
}

impl BuildError {
    /// What kind of failure this is.
    pub fn kind(&self) -> FailureKind {
        match self {
            BuildError::Hash { source, .. } | BuildError::Context { source, .. } => io_kind(source),
            BuildError::NoCommand { .. } | BuildError::NoRegistry { .. } => FailureKind::Invalid,
            BuildError::Failed { .. }
            | BuildError::DockerFailed { .. }
            | BuildError::Push { .. } => FailureKind::CommandFailed,
            BuildError::NoDaemon { .. } | BuildError::NoDockerCli { .. } => FailureKind::NotFound,
            BuildError::Spawn { .. } | BuildError::Oci { .. } => FailureKind::Other,
        }
    }
}

impl From<BuildError> for Failure {
    fn from(err: BuildError) -> Failure {
        Failure::new(err.kind(), err.to_string())
    }
}

fn failed_message(image_ref: &str, cmd: &str, exit: &str, output: &[String]) -> String {
    let mut text = format!("image {image_ref}: `{cmd}` failed with {exit}");
    if output.is_empty() {
        text.push_str(" and printed nothing");
    } else {
        text.push_str("; its last output:");
        for line in output {
            text.push_str("\n    ");
            text.push_str(line);
        }
    }
    text
}

fn docker_failed_message(
    image_ref: &str,
    step: Option<&str>,
    exit: &str,
    output: &[String],
) -> String {
    let mut text = format!("image {image_ref}: docker build failed");
    if let Some(step) = step {
        text.push_str(&format!(" at {step}"));
    }
    text.push_str(&format!(" ({exit})"));
    if output.is_empty() {
        text.push_str(" and printed nothing");
    } else {
        text.push_str("; its output:");
        for line in output {
            text.push_str("\n    ");
            text.push_str(line);
        }
    }
    text
}

fn push_failed_message(image_ref: &str, target: &str, exit: &str, output: &[String]) -> String {
    let mut text = format!("image {image_ref}: docker push {target} failed ({exit})");
    if !output.is_empty() {
        text.push_str("; its last output:");
        for line in output {
            text.push_str("\n    ");
            text.push_str(line);
        }
    }
    text
}

/// External programs the builds use.
#[derive(Clone, Debug)]
pub(crate) struct Tools {
    /// The Docker CLI (`docker`, looked up on PATH).
    pub docker: String,
    /// The kind and k3d CLIs, for clusters without a registry.
    pub kind: String,
    pub k3d: String,
}

impl Default for Tools {
    fn default() -> Tools {
        Tools {
            docker: "docker".to_owned(),
            kind: "kind".to_owned(),
            k3d: "k3d".to_owned(),
        }
    }
}

/// How long `docker version` may take to find the daemon.
const DAEMON_PROBE: Duration = Duration::from_secs(20);

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

/// The server version of a reachable Docker daemon, or why there is none.
async fn docker_daemon(program: &str) -> Result<String, BuildError> {
    let probe = Command::new(program)
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(DAEMON_PROBE, probe).await {
        Err(_) => {
            return Err(BuildError::NoDaemon {
                said: format!(
                    "nothing within {}s of `docker version`",
                    DAEMON_PROBE.as_secs()
                ),
            })
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BuildError::NoDockerCli {
                program: program.to_owned(),
            })
        }
        Ok(Err(e)) => {
            return Err(BuildError::NoDaemon {
                said: format!("cannot run `{program} version`: {e}"),
            })
        }
        Ok(Ok(output)) => output,
    };
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && !version.is_empty() {
        return Ok(version);
    }
    let said = String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Err(BuildError::NoDaemon {
        said: if said.is_empty() {
            format!(
                "`docker version` ended with {}",
                describe_exit(output.status)
            )
        } else {
            said
        },
    })
}

/// The context tar of a `docker_build`, written to a temporary file, and the
/// Dockerfile path inside it.
struct ContextTar {
    file: std::fs::File,
    dockerfile: String,
    files: usize,
    bytes: u64,
}

/// Writes the context tar (on a blocking thread: it reads every file).
fn context_tar(image: &Image, root: &Path) -> io::Result<ContextTar> {
    let context = Context::new(image, root)?;
    let entries = context.files()?;
    // A Dockerfile that is a kept file of the context is used in place; any
    // other one is added to the tar.
    let in_context = image.dockerfile.as_deref().and_then(|d| {
        let rel = resolve(root, d)
            .strip_prefix(&context.root)
            .ok()?
            .to_string_lossy()
            .into_owned();
        entries
            .iter()
            .any(|e| matches!(e, context::Entry::File { .. }) && e.rel() == rel)
            .then_some(rel)
    });
    let extra = match (&in_context, &image.dockerfile_contents, &image.dockerfile) {
        (Some(_), _, _) => None,
        (None, Some(text), _) => Some(text.clone().into_bytes()),
        (None, None, Some(d)) => {
            let path = resolve(root, d);
            Some(fs::read(&path).map_err(|e| {
                io::Error::new(e.kind(), format!("the Dockerfile {}: {e}", path.display()))
            })?)
        }
        (None, None, None) => None,
    };
    let dockerfile = in_context.unwrap_or_else(|| DOCKERFILE_IN_TAR.to_owned());
    let mut file = tempfile_in_tmp()?;
    {
        let mut out = io::BufWriter::new(&mut file);
        context.write_tar(&entries, extra.as_deref(), &mut out)?;
        out.flush()?;
    }
    let bytes = file.metadata()?.len();
    file.seek(io::SeekFrom::Start(0))?;
    Ok(ContextTar {
        file,
        dockerfile,
        files: entries
            .iter()
            .filter(|e| !matches!(e, context::Entry::Dir { .. }))
            .count(),
        bytes,
    })
}

/// An anonymous temporary file (already unlinked: nothing to clean up).
fn tempfile_in_tmp() -> io::Result<std::fs::File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "loop-context-{}-{}.tar",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    fs::remove_file(&path)?;
    Ok(file)
}

/// How many output lines a failed `docker build` keeps, to find the failing step.
const DOCKER_KEEP_LINES: usize = 400;

/// Sends the context tar to `docker build -` and waits for the image.
async fn docker_build(
    image: &Image,
    root: &Path,
    tools: &Tools,
    built_ref: &str,
    version: &str,
    log: &LineSink,
) -> Result<(), BuildError> {
    let image_ref = &image.image_ref;
    let tar = {
        let (owned, root_owned) = (image.clone(), root.to_path_buf());
        tokio::task::spawn_blocking(move || context_tar(&owned, &root_owned))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)))
            .map_err(|source| BuildError::Context {
                image_ref: image_ref.clone(),
                source,
            })?
    };
    let cmd = docker_build_cmd(image, &tools.docker, built_ref, &tar.dockerfile);
    log(&format!(
        "{image_ref}: building {built_ref} with Docker {version} ({} files, {} of context): {}",
        tar.files,
        human_bytes(tar.bytes),
        cmd.display()
    ));
    let mut env = BTreeMap::new();
    if !image.ssh.is_empty() || !image.secrets.is_empty() {
        // --ssh and --secret exist only in BuildKit.
        env.insert("DOCKER_BUILDKIT".to_owned(), "1".to_owned());
    }
    let finished = exec::run_reading(&cmd, root, &env, log, Some(tar.file), DOCKER_KEEP_LINES)
        .await
        .map_err(|reason| BuildError::Spawn {
            image_ref: image_ref.clone(),
            reason,
        })?;
    if finished.status.success() {
        return Ok(());
    }
    let (step, output) = failing_step(&finished.tail);
    Err(BuildError::DockerFailed {
        image_ref: image_ref.clone(),
        step,
        exit: describe_exit(finished.status),
        output,
    })
}

/// The failing step of a `docker build` output (`Step 2/3 : RUN make` of the
/// classic builder, `[2/3] RUN make` of BuildKit) and the lines it printed; with
/// no step found, the last lines.
pub(crate) fn failing_step(lines: &[String]) -> (Option<String>, Vec<String>) {
    let lines: Vec<String> = lines
        .iter()
        .map(|l| strip_ansi(l))
        .filter(|l| !is_cli_notice(l))
        .collect();
    let lines = &lines[..];
    let classic = lines
        .iter()
        .rposition(|l| l.starts_with("Step ") && l.contains(" : "));
    if let Some(at) = classic {
        let output: Vec<String> = lines[at + 1..]
            .iter()
            .filter(|l| !l.starts_with(" ---> Running in "))
            .cloned()
            .collect();
        return (Some(lines[at].clone()), tail(output));
    }
    // BuildKit: `#7 [2/3] RUN make` then `#7 0.25 output` lines and `#7 ERROR: ...`.
    let error = lines
        .iter()
        .rposition(|l| l.starts_with('#') && l.contains(" ERROR: "));
    if let Some(at) = error {
        let id = lines[at].split(' ').next().unwrap_or_default().to_owned();
        let step = lines
            .iter()
            .find(|l| l.starts_with(&format!("{id} [")))
            .map(|l| l[id.len() + 1..].to_owned());
        let output: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{id} ")))
            .filter(|l| !l.starts_with(&format!("{id} [")))
            .map(|l| {
                let rest = &l[id.len() + 1..];
                // Drop the elapsed-time column.
                match rest.split_once(' ') {
                    Some((time, text)) if time.parse::<f64>().is_ok() => text.to_owned(),
                    _ => rest.to_owned(),
                }
            })
            .chain(lines[at + 1..].iter().cloned())
            .collect();
        return (step, tail(output));
    }
    (None, tail(lines.to_vec()))
}

/// Removes terminal colour sequences (`ESC [ … m`), which Docker puts around
/// a step's stderr.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The Docker CLI's notice about its legacy builder, printed with every build.
fn is_cli_notice(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("DEPRECATED: The legacy builder is deprecated")
        || line.starts_with("Install the buildx component")
        || line == "https://docs.docker.com/go/buildx/"
}

fn tail(mut lines: Vec<String>) -> Vec<String> {
    let cut = lines.len().saturating_sub(exec::TAIL_LINES);
    lines.drain(..cut);
    lines
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / f64::from(1 << 10)),
        n => format!("{n} B"),
    }
}

/// `docker build -t REF [-t EXTRA]... -f DOCKERFILE [--target T] [--build-arg
/// K=V]... [--platform P] [--network N] [--ssh S]... [--secret S]... -`: the
/// context is the tar on standard input, the Dockerfile a path inside it.
fn docker_build_cmd(image: &Image, docker: &str, built_ref: &str, dockerfile: &str) -> Cmd {
    let mut argv = vec![
        docker.to_owned(),
        "build".to_owned(),
        "-t".to_owned(),
        built_ref.to_owned(),
    ];
    for tag in &image.extra_tags {
        argv.extend(["-t".to_owned(), tag.clone()]);
    }
    argv.extend(["-f".to_owned(), dockerfile.to_owned()]);
    if let Some(target) = &image.target {
        argv.extend(["--target".to_owned(), target.clone()]);
    }
    for (key, value) in &image.build_args {
        argv.extend(["--build-arg".to_owned(), format!("{key}={value}")]);
    }
    if let Some(platform) = &image.platform {
        argv.extend(["--platform".to_owned(), platform.clone()]);
    }
    if let Some(network) = &image.network {
        argv.extend(["--network".to_owned(), network.clone()]);
    }
    for ssh in &image.ssh {
        argv.extend(["--ssh".to_owned(), ssh.clone()]);
    }
    for secret in &image.secrets {
        argv.extend(["--secret".to_owned(), secret.clone()]);
    }
    argv.push("-".to_owned());
    Cmd::Argv(argv)
}

#[cfg(test)]
pub(crate) fn docker_build_argv(image: &Image, built_ref: &str, dockerfile: &str) -> Vec<String> {
    docker_build_cmd(image, "docker", built_ref, dockerfile).argv()
}
