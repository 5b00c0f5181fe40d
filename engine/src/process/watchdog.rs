//! The watchdog: a small process that stops what `loop` started when `loop` dies
//! without doing it itself (SIGKILL, the OOM killer, a crash).
//!
//! `loop run`/`loop ci` start it as `loop __watchdog` (the same executable, a
//! hidden subcommand) with a pipe on its stdin, and write one line per process
//! group: `+PGID` when a group starts (or a daemon's group is adopted), `-PGID`
//! when it is gone. The watchdog only reads. When the pipe reaches end of file,
//! `loop` has exited, by any means: the watchdog stops every group still listed
//! with everything below it (the daemons a member started in sessions of their
//! own), SIGTERM then SIGKILL after the grace period, and exits. After a normal
//! exit `loop` has already stopped and unlisted everything, so the watchdog exits
//! at once, and `loop` waits for it.
//!
//! It runs in a process group of its own and ignores SIGINT, SIGTERM and SIGHUP:
//! a Ctrl-C or a closed terminal reaches the whole foreground group, and it must
//! outlive `loop` to act. It blocks on a read (no CPU) and holds a set of numbers.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{signal, SigHandler, Signal};

use super::children::spawned;
use super::tree::{self, Spare, Targets};

/// The name of the hidden subcommand that runs the watchdog.
pub const SUBCOMMAND: &str = "__watchdog";

struct Handle {
    child: Child,
    pipe: Option<ChildStdin>,
}

static WATCHDOG: Mutex<Option<Handle>> = Mutex::new(None);
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Starts the watchdog for this `loop`, which will give processes `grace` between
/// SIGTERM and SIGKILL.
pub fn start(grace: Duration) -> Result<(), String> {
    let mut command = std::process::Command::new("/proc/self/exe");
    command
        .arg0("loop")
        .arg(SUBCOMMAND)
        .arg("--grace")
        .arg(format!("{}ms", grace.as_millis()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = {
        // Recorded as a child `loop` waits for itself: the reaper leaves it alone.
        let mut spawned = spawned();
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start the watchdog (`loop {SUBCOMMAND}`): {e}"))?;
        spawned.insert(child.id());
        child
    };
    let pipe = child.stdin.take();
    *lock() = Some(Handle { child, pipe });
    RUNNING.store(true, Ordering::SeqCst);
    Ok(())
}

fn lock() -> std::sync::MutexGuard<'static, Option<Handle>> {
    WATCHDOG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a watchdog is running for this process.
pub fn running() -> bool {
    RUNNING.load(Ordering::SeqCst)
}

/// The watchdog's pid, if it runs.
pub fn pid() -> Option<u32> {
    lock().as_ref().map(|h| h.child.id())
}

fn send(line: &str) {
    if let Some(pipe) = lock().as_mut().and_then(|h| h.pipe.as_mut()) {
        // A dead watchdog (EPIPE; SIGPIPE is ignored in Rust programs) changes nothing.
        let _ = pipe.write_all(line.as_bytes());
    }
}

/// Tells the watchdog about a new process group.
pub fn group_started(pgid: u32) {
    send(&format!("+{pgid}\n"));
}

/// Tells the watchdog that a process group is gone.
pub fn group_ended(pgid: u32) {
    send(&format!("-{pgid}\n"));
}

/// At the end of a normal run: closes the pipe and waits (at most `bound`) for the
/// watchdog to exit, so that it does not outlive `loop`.
pub fn finish(bound: Duration) {
    let Some(mut handle) = lock().take() else {
        return;
    };
    RUNNING.store(false, Ordering::SeqCst);
    drop(handle.pipe.take());
    let deadline = Instant::now() + bound;
    loop {
        match handle.child.try_wait() {
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = handle.child.kill();
                let _ = handle.child.wait();
                break;
            }
            _ => break,
        }
    }
    spawned().remove(&handle.child.id());
}

/// The watchdog process itself (`loop __watchdog --grace D`): reads `+PGID` and
/// `-PGID` lines from stdin until end of file, then stops the groups still listed.
pub fn main(grace: Duration) -> ExitCode {
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: ignoring a signal installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    let parent = nix::unistd::getppid();
    let mut spare = Spare::default();
    spare.pids.insert(std::process::id());
    spare.pids.insert(parent.as_raw() as u32);
    spare.groups.insert(nix::unistd::getpgrp().as_raw() as u32);
    if let Ok(group) = nix::unistd::getpgid(Some(parent)) {
        spare.groups.insert(group.as_raw() as u32);
    }
    let mut groups = BTreeSet::new();
    let stdin = std::io::stdin();
    let mut line = String::new();
    let mut input = stdin.lock();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => apply(&mut groups, &line),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    groups.retain(|g| !spare.groups.contains(g));
    if !groups.is_empty() {
        let targets = Targets {
            pids: BTreeSet::new(),
            groups,
        };
        tree::stop_tree(&targets, grace, None, &spare);
    }
    ExitCode::SUCCESS
}

/// Applies one line of the protocol to the listed groups (other lines are ignored).
fn apply(groups: &mut BTreeSet<u32>, line: &str) {
    let line = line.trim();
    let number = |text: &str| text.parse::<u32>().ok().filter(|pgid| *pgid > 1);
    if let Some(pgid) = line.strip_prefix('+').and_then(number) {
        groups.insert(pgid);
    } else if let Some(pgid) = line.strip_prefix('-').and_then(number) {
        groups.remove(&pgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lines_add_and_remove_groups() {
        let mut groups = BTreeSet::new();
        for line in [
            "+10\n", "+11", "-10", "+x", "", "é", "+0", "+1", "*12", "-99",
        ] {
            apply(&mut groups, line);
        }
        assert_eq!(groups, [11].into());
    }
}
