//! Builds one image, or skips the build when its inputs are unchanged.
//!
//! The built ref is `<name>:loop-<16 hex digits of the content hash>` (or
//! `<name>:<tag>` for `custom_build(tag=...)`). A `custom_build` runs its command
//! with `EXPECTED_REF` (and `EXPECTED_IMAGE`, `EXPECTED_TAG`) set; a
//! `docker_build` runs `docker build`, which needs a reachable Docker daemon.
//! Nothing is pushed to a registry.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use loop_lang::model::{Cmd, Image, ImageKind};
use loop_stdlib::assemble::image_name;
use tokio::process::Command;

use super::exec;
use super::hash::{content_hash, resolve, tag};
use super::record::{Entry, Record};
use crate::run::process::describe_exit;

/// Receives each line a build prints, and `loop`'s own notes about the build.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// The outcome of a successful (or skipped) build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The ref as declared.
    pub image_ref: String,
    /// The ref to deploy (`name:tag`).
    pub built_ref: String,
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
    #[error("docker_build needs a Docker daemon: none is reachable (docker CLI said: {said}). Start Docker, set DOCKER_HOST, or use custom_build with a builder that needs no daemon")]
    NoDaemon { said: String },
    #[error("docker_build needs the docker CLI, but `{program}` was not found on PATH. Install Docker (CLI and daemon), or use custom_build with a builder that needs no daemon")]
    NoDockerCli { program: String },
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

/// External programs the builds use.
#[derive(Clone, Debug)]
pub(crate) struct Tools {
    /// The Docker CLI (`docker`, looked up on PATH).
    pub docker: String,
}

impl Default for Tools {
    fn default() -> Tools {
        Tools {
            docker: "docker".to_owned(),
        }
    }
}

/// How long `docker version` may take to find the daemon.
const DAEMON_PROBE: Duration = Duration::from_secs(20);

/// Builds `image` of the project at `root`, unless `record` shows a build of the
/// same content hash, and records a successful build (saving the record). Build
/// output and notes go to `log`.
pub async fn build(
    image: &Image,
    root: &Path,
    log: Log,
    record: &Record,
) -> Result<Built, BuildError> {
    build_with(image, root, log, record, &Tools::default()).await
}

pub(crate) async fn build_with(
    image: &Image,
    root: &Path,
    log: Log,
    record: &Record,
    tools: &Tools,
) -> Result<Built, BuildError> {
    let image_ref = image.image_ref.clone();
    if image.kind == ImageKind::LiveUpdateOnly {
        // Deployed as it is, by someone else: nothing to build.
        return Ok(Built {
            built_ref: image_ref.clone(),
            image_ref,
            hash: String::new(),
            skipped: true,
        });
    }
    let hash = hash_inputs(image, root).await?;
    let name = image_name(&image_ref);
    let tag = image.tag.clone().unwrap_or_else(|| tag(&hash));
    if let Some(entry) = record.get(&image_ref).filter(|e| e.hash == hash) {
        log(&format!(
            "{image_ref}: inputs unchanged since {}, using {}",
            entry.built_at, entry.built_ref
        ));
        return Ok(Built {
            image_ref,
            built_ref: entry.built_ref,
            hash,
            skipped: true,
        });
    }
    let built_ref = format!("{name}:{tag}");
    match image.kind {
        ImageKind::Custom => {
            let cmd = image
                .command
                .as_ref()
                .ok_or_else(|| BuildError::NoCommand {
                    image_ref: image_ref.clone(),
                })?;
            let env = BTreeMap::from([
                ("EXPECTED_REF".to_owned(), built_ref.clone()),
                ("EXPECTED_IMAGE".to_owned(), name.to_owned()),
                ("EXPECTED_TAG".to_owned(), tag.clone()),
            ]);
            log(&format!(
                "{image_ref}: building {built_ref}: {}",
                cmd.display()
            ));
            run(
                &image_ref,
                cmd,
                &resolve(root, &image.command_dir),
                &env,
                &log,
            )
            .await?;
        }
        ImageKind::LiveUpdateOnly => {}
        ImageKind::Docker => {
            let version = docker_daemon(&tools.docker).await?;
            let cmd = docker_build_cmd(image, root, &tools.docker, &built_ref);
            log(&format!(
                "{image_ref}: building {built_ref} with Docker {version}: {}",
                cmd.display()
            ));
            run(&image_ref, &cmd, root, &BTreeMap::new(), &log).await?;
        }
    }
    let entry = Entry {
        skips_local_docker: image.skips_local_docker,
        disable_push: image.disable_push,
        ..Entry::now(&hash, &built_ref)
    };
    if let Err(e) = record.insert(&image_ref, entry) {
        // The build stands; only the skip after a restart is lost.
        log(&format!("{image_ref}: built, but {e}"));
    }
    Ok(Built {
        image_ref,
        built_ref,
        hash,
        skipped: false,
    })
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
    log: &Log,
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

/// `docker build -t REF -f DOCKERFILE [--target T] [--build-arg K=V]... CONTEXT`.
fn docker_build_cmd(image: &Image, root: &Path, docker: &str, built_ref: &str) -> Cmd {
    let path = |p: &str| resolve(root, p).to_string_lossy().into_owned();
    let context = path(image.context.as_deref().unwrap_or("."));
    let dockerfile = match &image.dockerfile {
        Some(d) => path(d),
        None => format!("{context}/Dockerfile"),
    };
    let mut argv = vec![
        docker.to_owned(),
        "build".to_owned(),
        "-t".to_owned(),
        built_ref.to_owned(),
        "-f".to_owned(),
        dockerfile,
    ];
    if let Some(target) = &image.target {
        argv.extend(["--target".to_owned(), target.clone()]);
    }
    for (key, value) in &image.build_args {
        argv.extend(["--build-arg".to_owned(), format!("{key}={value}")]);
    }
    argv.push(context);
    Cmd::Argv(argv)
}

#[cfg(test)]
pub(crate) fn docker_build_argv(image: &Image, root: &Path, built_ref: &str) -> Vec<String> {
    docker_build_cmd(image, root, "docker", built_ref).argv()
}
