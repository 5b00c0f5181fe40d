//! Live update into the running containers of a Kubernetes workload.
//!
//! [`ContainerTarget`] applies a [`SyncPlan`] to each container over the pods'
//! `exec` subresource (websocket), with no tool on the container's side but `sh`,
//! `tar` and `rm`:
//!
//! 1. deletes: `rm -rf -- PATH...`, in as few execs as fit under
//!    [`MAX_COMMAND_BYTES`] (the paths travel URL-encoded in the exec request's
//!    URI, one `command=` parameter each, and a URI may not exceed 64 KiB);
//! 2. copies: one tar archive, built in memory once per batch (entries at their
//!    container paths without the leading `/`, with the files' permission bits,
//!    owner root), streamed into one `tar -x -f - -C /` per container, so 1,000
//!    changed files cost one exec, not 1,000;
//! 3. the `run()` commands, in order (`sh -c CMD` for strings, the argv for
//!    lists); the first failing one stops the batch;
//! 4. with `restart_container()`: [`RESTART_COMMAND`] (see [`ContainerTarget::restart`]).
//!
//! Deletes go first so that a folder deleted and a file copied to the same place
//! leave the new file (as [`LocalTarget`](crate::live_update::LocalTarget) does).
//! The containers of a target are synced concurrently, each in the order above.

use crate::report::LineSink;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use loop_lang::model::{Cmd, ObjectRef};
use tokio::io::AsyncWriteExt;

use crate::live_update::pump_lines;

use super::apply::{error_text, Applier};
use crate::live_update::{SyncError, SyncPlan, SyncReport, SyncTarget};

/// The budget of one exec request's command: the sum over its arguments of
/// `command=` plus the argument URL-encoded (every byte but `A-Za-z0-9*-._`
/// counted as 3) plus a separator. The arguments travel in the request's URI,
/// which the `http` crate under kube-rs caps at 65,534 bytes; 56 KiB leaves room
/// for the path and the other parameters, and keeps the arguments (never longer
/// than their encoding) far under Linux's `ARG_MAX` (2 MiB by default).
pub const MAX_COMMAND_BYTES: usize = 56 * 1024;

/// The buffer of each exec stream (kube-rs defaults to 1 KiB, which cuts a tar
/// stream into a websocket frame per KiB).
const STREAM_BUFFER: usize = 64 * 1024;

/// What `restart_container()` runs in each container (see [`ContainerTarget::restart`]).
pub const RESTART_COMMAND: [&str; 3] = ["/bin/sh", "-c", "kill 1"];

/// The running containers of a workload that use one image.
#[derive(Clone)]
pub struct ContainerTarget {
    pub client: kube::Client,
    /// (namespace, pod name, container name) of every running container that uses the image.
    pub containers: Vec<(String, String, String)>,
    /// Receives each output line (stdout and stderr) of the `run()` commands,
    /// prefixed with `pod/container: ` when there is more than one container.
    pub log: LineSink,
}

impl SyncTarget for ContainerTarget {
    /// Syncs every container concurrently (deletes, one tar stream, the `run()`
    /// commands, then the restart when [`SyncPlan::restart`]; unlike a local target,
    /// a container can only be restarted from here, so `apply` does it). The report
    /// counts one container's work (each does the same): files put in the archive,
    /// paths given to `rm -rf` (missing ones included) and commands run. A source
    /// that vanished since planning is deleted at its destination instead. When a
    /// container fails, the others still finish; the error is the first failing
    /// container's, and every failure is also logged with its pod and container.
    async fn apply(&self, plan: &SyncPlan) -> Result<SyncReport, SyncError> {
        if self.containers.is_empty() {
            return Err(SyncError::Target(
                "no running container to sync to".to_owned(),
            ));
        }
        let copies = plan.copies.clone();
        let archive = tokio::task::spawn_blocking(move || build_archive(&copies))
            .await
            .map_err(|e| SyncError::Target(format!("building the tar archive failed: {e}")))??;
        let mut deletes = plan.deletes.clone();
        deletes.extend(archive.vanished.iter().cloned());
        deletes.sort();
        deletes.dedup();
        let batches = delete_batches(&deletes);
        let work = Work {
            batches: &batches,
            archive: (archive.copied > 0).then_some(archive.bytes.as_slice()),
            runs: &plan.runs,
            restart: plan.restart,
        };
        let results = futures_util::future::join_all(
            self.containers
                .iter()
                .map(|container| self.sync_one(container, &work)),
        )
        .await;
        let mut first_error = None;
        for ((_, pod, container), result) in self.containers.iter().zip(results) {
            if let Err(e) = result {
                (self.log)(&format!(
                    "live update of pod {pod} container {container} failed: {e}"
                ));
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(SyncReport {
                copied: archive.copied,
                deleted: deletes.len(),
                ran: plan.runs.len(),
            }),
        }
    }
}

/// What each container gets.
struct Work<'a> {
    batches: &'a [Vec<String>],
    archive: Option<&'a [u8]>,
    runs: &'a [Cmd],
    restart: bool,
}

impl ContainerTarget {
    async fn sync_one(
        &self,
        container: &(String, String, String),
        work: &Work<'_>,
    ) -> Result<(), SyncError> {
        for batch in work.batches {
            let mut argv: Vec<String> = vec!["rm".into(), "-rf".into(), "--".into()];
            argv.extend(batch.iter().cloned());
            let done = self.exec(container, &argv, None).await?;
            done.check(|| format!("rm -rf -- {}", describe_paths(batch)))?;
        }
        if let Some(archive) = work.archive {
            let argv: Vec<String> = ["tar", "-x", "-f", "-", "-C", "/"].map(String::from).into();
            let done = self.exec(container, &argv, Some(archive)).await?;
            done.check(|| "tar -x -f - -C /".to_owned())?;
        }
        for cmd in work.runs {
            let done = self.exec(container, &cmd.argv(), None).await?;
            if let Some(message) = done.not_started {
                return Err(SyncError::Spawn {
                    cmd: cmd.display(),
                    source: io::Error::other(message),
                });
            }
            done.check(|| cmd.display())?;
        }
        if work.restart {
            self.restart_one(container).await?;
        }
        Ok(())
    }

    /// `restart_container()`: runs [`RESTART_COMMAND`] (`kill 1`: SIGTERM to the
    /// container's main process) in every container, so that it exits and the
    /// kubelet starts the container again (restart policy `Always`, as for the pods
    /// of Deployments, StatefulSets and DaemonSets).
    ///
    /// Limitations, the reasons Tilt deprecated `restart_container()` for
    /// Kubernetes and recommends its `restart_process` extension (a wrapper that
    /// re-executes the entrypoint in place) instead:
    /// - the kubelet starts a *new* container from the image: files synced into
    ///   the container's own filesystem are lost (only those on volumes stay);
    /// - in its PID namespace, PID 1 only gets the signals it handles: a main
    ///   process without a SIGTERM handler (a shell script, many interpreters)
    ///   ignores it and nothing restarts, while `kill` still succeeds;
    /// - the image needs `/bin/sh`; a non-root user cannot signal a root PID 1.
    ///
    /// For a process that must pick up synced files, prefer a `run()` step that
    /// restarts it inside the container (e.g. through a wrapper script).
    pub async fn restart(&self) -> Result<(), SyncError> {
        let results = futures_util::future::join_all(
            self.containers
                .iter()
                .map(|container| self.restart_one(container)),
        )
        .await;
        results.into_iter().collect()
    }

    async fn restart_one(&self, container: &(String, String, String)) -> Result<(), SyncError> {
        let argv: Vec<String> = RESTART_COMMAND.map(String::from).into();
        match self.exec_status(container, &argv, None).await? {
            Some(done) => done.check(|| RESTART_COMMAND.join(" ")),
            // The exec went down with the container it stopped.
            None => Ok(()),
        }
    }

    /// [`Self::exec_status`], where a connection that ends without an exit status
    /// is an error.
    async fn exec(
        &self,
        container: &(String, String, String),
        argv: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Done, SyncError> {
        self.exec_status(container, argv, stdin)
            .await?
            .ok_or_else(|| {
                let (namespace, pod, container) = container;
                SyncError::Target(format!(
                    "`{}` in pod {pod} container {container} in namespace {namespace}: \
                     the connection ended without an exit status",
                    argv.join(" "),
                ))
            })
    }

    /// Runs `argv` in one container, feeding `stdin` (then closing it) while
    /// passing output lines to the log and keeping the last ones; `None` when the
    /// connection ended without an exit status.
    async fn exec_status(
        &self,
        (namespace, pod, container): &(String, String, String),
        argv: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Option<Done>, SyncError> {
        let where_ = || format!("pod {pod} container {container} in namespace {namespace}");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = AttachParams::default()
            .container(container.as_str())
            .stdin(stdin.is_some())
            .stdout(true)
            .stderr(true)
            .max_stdin_buf_size(STREAM_BUFFER)
            .max_stdout_buf_size(STREAM_BUFFER)
            .max_stderr_buf_size(STREAM_BUFFER);
        let mut process = api.exec(pod, argv.to_vec(), &params).await.map_err(|e| {
            let e = match &e {
                kube::Error::UpgradeConnection(u) => u.to_string(),
                other => error_text(other),
            };
            SyncError::Target(format!("cannot exec in {}: {e}", where_()))
        })?;
        let prefix = (self.containers.len() > 1).then(|| format!("{pod}/{container}: "));
        let tail = Mutex::new(VecDeque::new());
        let status = process.take_status();
        let writer = process.stdin();
        let write = async {
            if let (Some(data), Some(mut writer)) = (stdin, writer) {
                // A failed write shows as the command's status below.
                let _ = writer.write_all(data).await;
                let _ = writer.shutdown().await;
            }
        };
        let (stdout, stderr) = (process.stdout(), process.stderr());
        let ((), (), (), status) = tokio::join!(
            write,
            pump_lines(stdout, &*self.log, prefix.as_deref(), &tail),
            pump_lines(stderr, &*self.log, prefix.as_deref(), &tail),
            async {
                match status {
                    Some(status) => status.await,
                    None => None,
                }
            },
        );
        let _ = process.join().await;
        let output: Vec<String> = tail.into_inner().unwrap_or_default().into();
        Ok(status.map(|status| Done::from_status(&status, output)))
    }
}

/// How an exec ended.
#[derive(Debug)]
struct Done {
    /// `None`: success.
    code: Option<Option<i32>>,
    /// The runtime could not start the command (e.g. not found), with its message.
    not_started: Option<String>,
    output: Vec<String>,
}

impl Done {
    fn from_status(status: &Status, output: Vec<String>) -> Done {
        if status.status.as_deref() == Some("Success") {
            return Done {
                code: None,
                not_started: None,
                output,
            };
        }
        let code = status
            .details
            .iter()
            .flat_map(|d| d.causes.iter().flatten())
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message.as_deref()?.parse().ok());
        let not_started = (status.reason.as_deref() != Some("NonZeroExitCode")).then(|| {
            status
                .message
                .clone()
                .unwrap_or_else(|| "the command could not be started".to_owned())
        });
        Done {
            code: Some(code),
            not_started,
            output,
        }
    }

    /// The command's failure as a [`SyncError`].
    fn check(self, cmd: impl FnOnce() -> String) -> Result<(), SyncError> {
        match (self.code, self.not_started) {
            (None, _) => Ok(()),
            (Some(_), Some(message)) => Err(SyncError::Spawn {
                cmd: cmd(),
                source: io::Error::other(message),
            }),
            (Some(code), None) => Err(SyncError::Failed {
                cmd: cmd(),
                code,
                output: self.output,
            }),
        }
    }
}

/// The first paths of a batch, for messages.
fn describe_paths(batch: &[String]) -> String {
    match batch {
        [] => String::new(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// The tar archive of a batch's copies.
#[derive(Debug, Default)]
struct Archive {
    bytes: Vec<u8>,
    /// How many files it holds.
    copied: usize,
    /// Destinations whose source no longer exists (to delete instead).
    vanished: Vec<String>,
}

/// Builds one archive: each source file (links followed) at its destination
/// without the leading `/`, with its permission bits and modification time,
/// owned by root (a root `tar -x` restores that owner; another user's `tar`
/// makes the files its own).
fn build_archive(copies: &[(PathBuf, String)]) -> Result<Archive, SyncError> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut archive = Archive::default();
    let io_error = |action, path: &str, source| SyncError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    for (src, dest) in copies {
        let data = match std::fs::read(src) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                archive.vanished.push(dest.clone());
                continue;
            }
            Err(e) => return Err(io_error("read", &src.display().to_string(), e)),
        };
        let meta =
            std::fs::metadata(src).map_err(|e| io_error("read", &src.display().to_string(), e))?;
        let name = dest.trim_start_matches('/');
        if name.is_empty() {
            return Err(SyncError::Target(format!(
                "cannot copy {} onto the container's root folder",
                src.display()
            )));
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(meta.mode() & 0o7777);
        header.set_mtime(meta.mtime().max(0) as u64);
        header.set_uid(0);
        header.set_gid(0);
        builder
            .append_data(&mut header, name, data.as_slice())
            .map_err(|e| io_error("archive", dest, e))?;
        archive.copied += 1;
    }
    archive.bytes = builder
        .into_inner()
        .map_err(|e| io_error("archive", "the changed files", e))?;
    Ok(archive)
}

/// What one argument adds to an exec request: `command=`, the argument
/// URL-encoded (conservatively: 3 bytes for anything but `A-Za-z0-9*-._`), `&`.
fn argument_cost(arg: &str) -> usize {
    let encoded: usize = arg
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
                1
            } else {
                3
            }
        })
        .sum();
    "command=".len() + encoded + 1
}

/// Splits `paths` into `rm -rf --` commands whose cost (see [`MAX_COMMAND_BYTES`])
/// stays within the limit, keeping their order; a single path too long for any
/// batch goes alone into one.
fn delete_batches(paths: &[String]) -> Vec<Vec<String>> {
    let base: usize = ["rm", "-rf", "--"].iter().map(|a| argument_cost(a)).sum();
    let mut batches: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut used = base;
    for path in paths {
        let cost = argument_cost(path);
        if !current.is_empty() && used + cost > MAX_COMMAND_BYTES {
            batches.push(std::mem::take(&mut current));
            used = base;
        }
        current.push(path.clone());
        used += cost;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Finds the running containers of a workload's pods (from their shared watch,
/// see [`super::pods`], with `extra_selectors`) whose image matches `image_ref`
/// (see [`Snapshot::running_containers`](super::pods::Snapshot::running_containers));
/// sorted. A workload that does not exist (yet) has none.
pub async fn containers_for(
    applier: &Applier,
    workload: &ObjectRef,
    extra_selectors: &[BTreeMap<String, String>],
    image_ref: &str,
) -> Result<Vec<(String, String, String)>, String> {
    containers_selected(
        applier,
        workload,
        extra_selectors,
        Selector::Image(image_ref),
    )
    .await
}

/// How the containers of a live update are chosen.
#[derive(Clone, Copy, Debug)]
pub enum Selector<'a> {
    /// By image name (tag or digest ignored).
    Image(&'a str),
    /// By container name (`k8s_custom_deploy(container_selector=...)`).
    Name(&'a str),
}

/// [`containers_for`], with containers chosen by image or by name.
pub async fn containers_selected(
    applier: &Applier,
    workload: &ObjectRef,
    extra_selectors: &[BTreeMap<String, String>],
    selector: Selector<'_>,
) -> Result<Vec<(String, String, String)>, String> {
    let watch = applier.follow_pods(workload, extra_selectors).await?;
    let snapshot = watch
        .wait_for(LIST_WAIT, |s| s.synced.then(|| s.clone()))
        .await
        .ok_or_else(|| {
            format!(
                "the pods of {} were not listed within {}s",
                workload.name,
                LIST_WAIT.as_secs()
            )
        })?;
    if let Some(e) = snapshot.error {
        return Err(e.message);
    }
    if snapshot.workload.is_none() {
        return Ok(Vec::new());
    }
    Ok(match selector {
        Selector::Image(image_ref) => snapshot.running_containers(watch.namespace(), image_ref),
        Selector::Name(name) => snapshot.running_containers_named(watch.namespace(), name),
    })
}

/// How long [`containers_for`] waits for the first list of a workload's pods.
const LIST_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests;
