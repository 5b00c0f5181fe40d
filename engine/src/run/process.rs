//! Child processes in their own process groups, with their output streamed line by
//! line, and stopped as whole groups: SIGTERM, then SIGKILL after a grace period.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
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

/// How long to wait for the last output lines after a command exited (a
/// background process it left may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);

/// Runs `cmd` to its end, like [`spawn`]; then stops what it left running in its
/// group and waits (up to [`DRAIN`]) until every output line reached `sink`, so
/// a failure's last stderr line is never reported after, or without, the
/// failure. Fails only when the command cannot be started. Dropping the future
/// kills the command's group.
pub async fn run_to_end(
    cmd: &Cmd,
    dir: &Path,
    env: &BTreeMap<String, String>,
    sink: LineSink,
    grace: Duration,
) -> Result<ExitStatus, String> {
    // Every copy of the sink holds a sender: the channel closes once the output
    // forwarders are done with their last line.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let counted: LineSink = Arc::new(move |line: &str| {
        let _held = &done_tx;
        sink(line)
    });
    let mut child = spawn(cmd, dir, env, counted)?;
    let mut guard = KillOnDrop(child.id());
    let status = child.wait().await;
    if let Some(group) = guard.0.take() {
        // Children the command left behind die with it.
        stop_group(group, grace).await;
    }
    let _ = tokio::time::timeout(DRAIN, done_rx.recv()).await;
    status.map_err(|e| format!("waiting for `{}`: {e}", cmd.display()))
}

/// Kills a command's whole process group when its run is abandoned midway.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            signal_group(pgid, Signal::SIGKILL);
        }
    }
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

/// How [`stop_group`] ended a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It was gone already, or left within the grace period.
    Gone,
    /// Something in it ignored SIGTERM for the whole grace period: SIGKILL.
    Killed,
}

/// Stops a process group: SIGTERM, then SIGKILL once `grace` has passed while any
/// member is alive. Returns when the group is gone (or after the SIGKILL).
pub async fn stop_group(pgid: u32, grace: Duration) -> Stopped {
    if !group_alive(pgid) {
        return Stopped::Gone;
    }
    signal_group(pgid, Signal::SIGTERM);
    // A stopped process only sees SIGTERM once continued.
    signal_group(pgid, Signal::SIGCONT);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !group_alive(pgid) {
            return Stopped::Gone;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal_group(pgid, Signal::SIGKILL);
    for _ in 0..100 {
        if !group_alive(pgid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Stopped::Killed
}
