//! `docker_build` through the Docker CLI: finding the daemon, writing the
//! context tar that `loop` selected ([`super::context`]), running
//! `docker build -` on it, and finding the failing step in its output.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Seek, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use loop_lang::model::{Cmd, Image};
use tokio::process::Command;

use super::context::{self, resolve, Context, DOCKERFILE_IN_TAR};
use super::error::BuildError;
use super::exec;
use crate::process::describe_exit;
use crate::report::LineSink;

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

/// The server version of a reachable Docker daemon, or why there is none.
pub(super) async fn docker_daemon(program: &str) -> Result<String, BuildError> {
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
pub(super) async fn docker_build(
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

pub(super) fn human_bytes(n: u64) -> String {
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
