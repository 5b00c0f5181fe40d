//! Child processes in their own process groups, with their output streamed line by
//! line, and stopped as whole groups: SIGTERM, then SIGKILL after a grace period.
//!
//! Every child `loop` starts for a resource goes through [`start`], which records
//! its pid (so that [`reap_adopted`] never reaps it in tokio's
//! place) and its process group (so that shutdown and the [`watchdog`]
//! stop it). Output is read as bytes: invalid UTF-8 is replaced, not dropped, and
//! a line longer than [`MAX_LINE`] is passed on in pieces, so memory stays flat
//! whatever a process prints. [`tree`] finds and stops what left its group,
//! [`children`] records the direct children, and [`watchdog`] stops it all if
//! `loop` dies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loop_lang::model::Cmd;
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::failure::{io_kind, Failure, FailureKind};

pub mod children;
pub mod tree;
pub mod watchdog;

use self::children::spawned;
use self::tree::{own_children, own_group, stat, Spare, Targets, TreeStopped};
use crate::report::LineSink;

/// Process groups started by [`spawn`] (or adopted), for stopping everything on exit.
static GROUPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// The longest output line passed on whole; a longer one comes in pieces.
pub const MAX_LINE: usize = 64 * 1024;

/// The process groups started so far that still have a live member.
pub fn live_groups() -> Vec<u32> {
    let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    groups.retain(|g| {
        let alive = group_alive(*g);
        if !alive {
            watchdog::group_ended(*g);
        }
        alive
    });
    groups.iter().copied().collect()
}

/// Records a process group to stop on exit (and tells the watchdog).
pub(crate) fn track_group(pgid: u32) {
    if GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pgid)
    {
        watchdog::group_started(pgid);
    }
}

/// Starts `command` (set up with `process_group(0)`) and records the child and
/// its process group; wait for it with [`wait`].
pub fn start(command: &mut Command) -> std::io::Result<Child> {
    let child = {
        let mut spawned = spawned();
        let child = command.spawn()?;
        if let Some(pid) = child.id() {
            spawned.insert(pid);
        }
        child
    };
    if let Some(pid) = child.id() {
        track_group(pid);
    }
    Ok(child)
}

/// Waits for a child started by [`start`] to exit.
pub async fn wait(child: &mut Child) -> std::io::Result<ExitStatus> {
    let pid = child.id();
    let status = child.wait().await;
    if let (Some(pid), Ok(_)) = (pid, &status) {
        spawned().remove(&pid);
    }
    status
}

/// Where a process's output lines go.
#[derive(Clone)]
pub struct Output {
    pub stdout: LineSink,
    pub stderr: LineSink,
}

impl Output {
    /// Both streams to one sink.
    pub fn merged(sink: LineSink) -> Output {
        Output {
            stdout: sink.clone(),
            stderr: sink,
        }
    }
}

/// Starts `cmd` in `dir` with `env`, in a new process group, streaming stdout and
/// stderr lines to `output`. The child dies with `loop` even if `loop` is killed.
pub fn spawn(
    cmd: &Cmd,
    dir: &Path,
    env: &BTreeMap<String, String>,
    output: Output,
) -> Result<Child, Failure> {
    spawn_reading(cmd, dir, env, output, None)
}

/// [`spawn`], with `stdin` (a file) as the command's standard input.
fn spawn_reading(
    cmd: &Cmd,
    dir: &Path,
    env: &BTreeMap<String, String>,
    output: Output,
    stdin: Option<std::fs::File>,
) -> Result<Child, Failure> {
    let argv = cmd.argv();
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(dir)
        .envs(env)
        .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if !watchdog::running() {
        // Without a watchdog, at least the direct child dies with `loop`. (With
        // one, it must outlive `loop` a moment: the watchdog follows it to the
        // daemons it started.)
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                Ok(())
            });
        }
    }
    if !dir.is_dir() {
        return Err(Failure::new(
            FailureKind::NotFound,
            format!(
                "cannot run `{}`: folder {} does not exist",
                cmd.display(),
                dir.display()
            ),
        ));
    }
    let mut child = start(&mut command).map_err(|e| {
        let reason = if e.kind() == std::io::ErrorKind::NotFound {
            "command not found".to_owned()
        } else {
            e.to_string()
        };
        Failure::new(io_kind(&e), format!("cannot run `{}`: {reason}", argv[0]))
    })?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(out, output.stdout));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(err, output.stderr));
    }
    Ok(child)
}

/// How long to wait for the last output lines after a command exited (a
/// background process it left may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);

/// Runs `cmd` to its end, like [`spawn`]; then stops what it left running in its
/// group and waits (up to [`DRAIN`]) until every output line reached `output`, so
/// a failure's last stderr line is never reported after, or without, the
/// failure. Fails only when the command cannot be started. Dropping the future
/// kills the command's group.
pub async fn run_to_end(
    cmd: &Cmd,
    dir: &Path,
    env: &BTreeMap<String, String>,
    output: Output,
    grace: Duration,
) -> Result<ExitStatus, Failure> {
    run_to_end_reading(cmd, dir, env, output, grace, None).await
}

/// [`run_to_end`], with `stdin` (a file) as the command's standard input.
pub async fn run_to_end_reading(
    cmd: &Cmd,
    dir: &Path,
    env: &BTreeMap<String, String>,
    output: Output,
    grace: Duration,
    stdin: Option<std::fs::File>,
) -> Result<ExitStatus, Failure> {
    // Every copy of the sinks holds a sender: the channel closes once the output
    // forwarders are done with their last line.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let counted = |sink: LineSink| -> LineSink {
        let done_tx = done_tx.clone();
        Arc::new(move |line: &str| {
            let _held = &done_tx;
            sink(line)
        })
    };
    let output = Output {
        stdout: counted(output.stdout),
        stderr: counted(output.stderr),
    };
    drop(done_tx);
    let mut child = spawn_reading(cmd, dir, env, output, stdin)?;
    let mut guard = KillOnDrop(child.id());
    let status = wait(&mut child).await;
    if let Some(group) = guard.0.take() {
        // Children the command left behind die with it.
        stop_group(group, grace).await;
    }
    let _ = tokio::time::timeout(DRAIN, done_rx.recv()).await;
    status.map_err(|e| Failure::new(io_kind(&e), format!("waiting for `{}`: {e}", cmd.display())))
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
    for_each_line(stream, |line| sink(line)).await;
}

/// Calls `f` with each line of `stream` (without its `\n` or `\r\n`) until the
/// end or a read error. Bytes that are not UTF-8 become U+FFFD; a line longer
/// than [`MAX_LINE`] bytes is passed on in pieces of at most that size (cut
/// between characters), so the memory used does not grow with the line.
pub async fn for_each_line(stream: impl AsyncRead + Unpin, mut f: impl FnMut(&str)) {
    let mut reader = BufReader::with_capacity(MAX_LINE, stream);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if buf.is_empty() {
            break;
        }
        let room = MAX_LINE - line.len();
        let window = &buf[..buf.len().min(room)];
        match window.iter().position(|&b| b == b'\n') {
            Some(end) => {
                line.extend_from_slice(&window[..end]);
                reader.consume(end + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                f(&String::from_utf8_lossy(&line));
                line.clear();
            }
            None => {
                let taken = window.len();
                line.extend_from_slice(window);
                reader.consume(taken);
                if line.len() >= MAX_LINE {
                    let cut = char_boundary(&line);
                    f(&String::from_utf8_lossy(&line[..cut]));
                    line.drain(..cut);
                }
            }
        }
    }
    if !line.is_empty() {
        f(&String::from_utf8_lossy(&line));
    }
}

/// Where to cut `bytes` so that a UTF-8 character begun in its last three bytes
/// is not split (the whole length when none is).
fn char_boundary(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=3.min(len) {
        let b = bytes[len - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if needed > back && len - back > 0 {
            len - back
        } else {
            len
        };
    }
    len
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

/// A command that ended unsuccessfully, in words: "`make` failed with exit code 2".
pub fn failed(cmd: &Cmd, status: std::process::ExitStatus) -> String {
    format!("`{}` failed with {}", cmd.display(), describe_exit(status))
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
        // Orphans of the group are re-parented to `loop`: their zombies would
        // keep the group alive until reaped.
        reap_adopted();
        if !group_alive(pgid) {
            return Stopped::Gone;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal_group(pgid, Signal::SIGKILL);
    for _ in 0..100 {
        reap_adopted();
        if !group_alive(pgid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Stopped::Killed
}

/// Reaps the adopted children of `loop` that have exited, and records the group
/// of each running one that left for a group of its own. Cheap: it reads one
/// small file per thread, and `/proc/PID/stat` of children that `loop` did not
/// start itself. Children in `loop`'s own group are left alone: they may belong
/// to code that waits for them itself (`local()`, probes, `docker version`).
pub fn reap_adopted() {
    let own = own_group();
    let mut new_groups = Vec::new();
    {
        // Held during the pass: a child started meanwhile is recorded first.
        let spawned = spawned();
        for pid in own_children() {
            if spawned.contains(&pid) {
                continue;
            }
            let Some(child) = stat(pid) else { continue };
            if child.group == own {
                continue;
            }
            if child.zombie {
                let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
            } else {
                new_groups.push(child.group);
            }
        }
    }
    for group in new_groups {
        track_group(group);
    }
}

/// At shutdown, once the process groups are stopped: stops every process still
/// running below `loop` (daemons in sessions of their own, orphans of other
/// commands), sparing the watchdog.
pub fn stop_adopted(grace: Duration) -> TreeStopped {
    let mut spare = Spare::default();
    spare.pids.insert(std::process::id());
    spare.groups.insert(own_group());
    if let Some(watchdog) = watchdog::pid() {
        spare.pids.insert(watchdog);
    }
    let targets = Targets {
        pids: own_children()
            .into_iter()
            .filter(|p| !spare.pids.contains(p))
            .collect(),
        groups: live_groups().into_iter().collect(),
    };
    tree::stop_tree(&targets, grace, Some(&reap_adopted), &spare)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(bytes: Vec<u8>) -> Vec<String> {
        let mut lines = Vec::new();
        for_each_line(&bytes[..], |l| lines.push(l.to_owned())).await;
        lines
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced_not_dropped() {
        let lines = lines_of(b"ok\nbad \xff\xfe bytes\r\nlast".to_vec()).await;
        assert_eq!(lines, ["ok", "bad \u{fffd}\u{fffd} bytes", "last"]);
    }

    #[tokio::test]
    async fn a_long_line_comes_in_pieces() {
        let mut bytes = vec![b'a'; MAX_LINE * 2 + 10];
        bytes.extend_from_slice(b"\nnext\n");
        let lines = lines_of(bytes).await;
        let sizes: Vec<usize> = lines.iter().map(String::len).collect();
        assert_eq!(sizes, [MAX_LINE, MAX_LINE, 10, 4]);
    }

    #[tokio::test]
    async fn pieces_are_cut_between_characters() {
        let mut bytes = vec![b'a'; MAX_LINE - 1];
        bytes.extend_from_slice("é".as_bytes());
        bytes.push(b'\n');
        let lines = lines_of(bytes).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE - 1);
        assert_eq!(lines[1], "é");
    }

    #[test]
    fn char_boundary_keeps_an_unfinished_character() {
        assert_eq!(char_boundary(b"abc"), 3);
        assert_eq!(char_boundary(&[b'a', 0xE2, 0x82]), 1);
        assert_eq!(char_boundary(&[b'a', 0xE2, 0x82, 0xAC]), 4);
        assert_eq!(char_boundary(&[0xE2]), 1);
        assert_eq!(char_boundary(&[0xff, 0xff]), 2);
    }
}
