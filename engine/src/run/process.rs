//! Child processes in their own process groups, with their output streamed line by
//! line, and stopped as whole groups: SIGTERM, then SIGKILL after a grace period.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loop_lang::model::Cmd;
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Process groups started by [`spawn`], for stopping everything on exit.
static GROUPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// The process groups started so far that still have a live member.
pub fn live_groups() -> Vec<u32> {
    let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    groups.retain(|g| group_alive(*g));
    groups.iter().copied().collect()
}

/// Receives each output line of a process.
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Starts `cmd` in `dir` with `env`, in a new process group, streaming stdout and
/// stderr lines to `sink`. The child dies with `loop` even if `loop` is killed.
pub fn spawn(
    cmd: &Cmd,
    dir: &Path,
    env: &BTreeMap<String, String>,
    sink: LineSink,
) -> Result<Child, String> {
    let argv = cmd.argv();
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(dir)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    if !dir.is_dir() {
        return Err(format!(
            "cannot run `{}`: folder {} does not exist",
            cmd.display(),
            dir.display()
        ));
    }
    let mut child = command.spawn().map_err(|e| {
        let reason = if e.kind() == std::io::ErrorKind::NotFound {
            "command not found".to_owned()
        } else {
            e.to_string()
        };
        format!("cannot run `{}`: {reason}", argv[0])
    })?;
    if let Some(pid) = child.id() {
        GROUPS.lock().unwrap_or_else(|e| e.into_inner()).insert(pid);
    }
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(out, sink.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(err, sink));
    }
    Ok(child)
}

async fn forward(stream: impl AsyncRead + Unpin, sink: LineSink) {
    let mut lines = BufReader::new(stream).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => sink(&line),
            Ok(None) => break,
            // Invalid UTF-8 and the like: keep reading what can be read.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => continue,
            Err(_) => break,
        }
    }
}

/// How a finished process ended, in words: `exit code 3`, `killed by SIGKILL`.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(127), _) => "exit code 127 (command not found)".to_owned(),
        (Some(126), _) => "exit code 126 (not executable)".to_owned(),
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        (None, None) => "unknown exit".to_owned(),
    }
}

/// Whether any process of the group is still alive.
pub fn group_alive(pgid: u32) -> bool {
    !matches!(killpg(Pid::from_raw(pgid as i32), None), Err(Errno::ESRCH))
}

/// Sends a signal to a whole process group (ignoring a group that is gone).
pub fn signal_group(pgid: u32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid as i32), signal);
}

/// Stops a process group: SIGTERM, then SIGKILL once `grace` has passed while any
/// member is alive. Returns when the group is gone (or after the SIGKILL).
pub async fn stop_group(pgid: u32, grace: Duration) {
    if !group_alive(pgid) {
        return;
    }
    signal_group(pgid, Signal::SIGTERM);
    // A stopped process only sees SIGTERM once continued.
    signal_group(pgid, Signal::SIGCONT);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !group_alive(pgid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal_group(pgid, Signal::SIGKILL);
    for _ in 0..100 {
        if !group_alive(pgid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
