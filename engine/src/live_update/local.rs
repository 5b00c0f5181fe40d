//! [`LocalTarget`]: live update into a folder on this machine (`local_resource`).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use loop_lang::model::Cmd;
use tokio::io::AsyncRead;

use super::{SyncError, SyncPlan, SyncReport, SyncTarget};
use crate::process;
use crate::report::LineSink;

/// How many output lines a failed command's error keeps.
const TAIL_LINES: usize = 10;

/// A folder on this machine: sync destinations are absolute paths, and `run()`
/// commands execute (`sh -c` for strings, argv for lists) in `run_dir`, in their
/// own process group, with `env` added to loop's environment; their output lines
/// (stdout and stderr) go to `log`.
#[derive(Clone)]
pub struct LocalTarget {
    pub run_dir: PathBuf,
    pub env: BTreeMap<String, String>,
    pub log: LineSink,
}

impl SyncTarget for LocalTarget {
    /// Removes the deletes (files or folders; missing is fine), copies the files
    /// (creating folders, keeping permission bits), then runs the commands one by
    /// one; a failing command stops the batch. Deletes go first so that a folder
    /// deleted and a file copied to the same place leave the new file. A source
    /// that vanished since planning is deleted at its destination instead.
    async fn apply(&self, plan: &SyncPlan) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        for dest in &plan.deletes {
            if remove(Path::new(dest)).await? {
                report.deleted += 1;
            }
        }
        for (src, dest) in &plan.copies {
            if copy(src, Path::new(dest)).await? {
                report.copied += 1;
            } else if remove(Path::new(dest)).await? {
                report.deleted += 1;
            }
        }
        for cmd in &plan.runs {
            self.run(cmd).await?;
            report.ran += 1;
        }
        Ok(report)
    }
}

impl LocalTarget {
    async fn run(&self, cmd: &Cmd) -> Result<(), SyncError> {
        let argv = cmd.argv();
        let spawn_error = |source| SyncError::Spawn {
            cmd: cmd.display(),
            source,
        };
        let Some((program, args)) = argv.split_first() else {
            return Err(spawn_error(io::Error::other("the command is empty")));
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(&self.run_dir)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = process::start(&mut command).map_err(spawn_error)?;
        let mut group = GroupGuard(child.id());
        let tail = Mutex::new(VecDeque::new());
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (status, (), ()) = tokio::join!(
            process::wait(&mut child),
            pump_lines(stdout, &*self.log, None, &tail),
            pump_lines(stderr, &*self.log, None, &tail),
        );
        group.0 = None;
        let status = status.map_err(spawn_error)?;
        if status.success() {
            return Ok(());
        }
        Err(SyncError::Failed {
            cmd: cmd.display(),
            code: status.code(),
            output: tail.into_inner().unwrap_or_default().into(),
        })
    }
}

/// Passes each line of `stream` to `log` (after `prefix`, if any) and keeps the
/// last [`TAIL_LINES`] in `tail`, for error messages.
pub(crate) async fn pump_lines(
    stream: Option<impl AsyncRead + Unpin>,
    log: &(dyn Fn(&str) + Send + Sync),
    prefix: Option<&str>,
    tail: &Mutex<VecDeque<String>>,
) {
    let Some(stream) = stream else { return };
    process::for_each_line(stream, |line| {
        match prefix {
            Some(prefix) => log(&format!("{prefix}{line}")),
            None => log(line),
        }
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_owned());
        }
    })
    .await;
}

/// Kills a command's whole process group if its future is dropped before it ends.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|pid| i32::try_from(pid).ok()) {
            use nix::sys::signal::{killpg, Signal};
            let _ = killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Copies `src` to `dest`; false when `src` no longer exists.
async fn copy(src: &Path, dest: &Path) -> Result<bool, SyncError> {
    let src_meta = match tokio::fs::metadata(src).await {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error("read", src, e)),
    };
    if let Ok(dest_meta) = tokio::fs::metadata(dest).await {
        if dest_meta.dev() == src_meta.dev() && dest_meta.ino() == src_meta.ino() {
            return Ok(true); // Already there: copying a file onto itself would empty it.
        }
    }
    if let Ok(dest_meta) = tokio::fs::symlink_metadata(dest).await {
        // A folder or a link in the way is replaced, not written into or through.
        if dest_meta.is_dir() || dest_meta.is_symlink() {
            remove(dest).await?;
        }
    }
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io_error("create", parent, e))?;
    }
    // std::fs::copy (under tokio's) also copies the permission bits.
    tokio::fs::copy(src, dest)
        .await
        .map_err(|source| SyncError::Io {
            action: "copy",
            path: format!("{} to {}", src.display(), dest.display()),
            source,
        })?;
    Ok(true)
}

/// Removes a file or a whole folder; false when there was nothing to remove.
async fn remove(path: &Path) -> Result<bool, SyncError> {
    let result = match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.is_dir() => tokio::fs::remove_dir_all(path).await,
        Ok(_) => tokio::fs::remove_file(path).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("delete", path, e)),
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> SyncError {
    SyncError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}
