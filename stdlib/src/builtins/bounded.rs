//! `local()` commands with bounds: a time limit and an output limit, so that
//! `local("sleep 300")` or `local("yes")` ends with a clear error instead of
//! blocking every evaluation or exhausting memory. The command runs in a process
//! group of its own, killed as a whole when a bound is hit.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long a `local()` command may run unless `LOOP_LOCAL_TIMEOUT` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How much a `local()` command may write to stdout (stderr keeps its last 64 KiB).
pub const MAX_STDOUT: usize = 64 << 20;
const MAX_STDERR: usize = 64 << 10;

/// How a bounded command ended.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a bounded command was stopped.
pub enum Stopped {
    /// It ran longer than the limit.
    Timeout(Duration),
    /// It wrote more than [`MAX_STDOUT`] to stdout.
    TooMuchOutput,
    /// It could not be started or waited for.
    Io(std::io::Error),
}

/// The time limit: `LOOP_LOCAL_TIMEOUT` (e.g. `10m`), else [`DEFAULT_TIMEOUT`].
pub fn timeout() -> Duration {
    std::env::var("LOOP_LOCAL_TIMEOUT")
        .ok()
        .and_then(|t| loop_lang::limits::parse_duration(&t))
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// The process group of the command running now (0: none), for [`stop_running`].
static RUNNING: AtomicI32 = AtomicI32::new(0);

/// Clears [`RUNNING`] when the command is over, however [`run`] returns.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.store(0, Ordering::Relaxed);
    }
}

/// Kills the process group of the command running now, if any: the evaluation
/// process calls it when it is stopped from outside, so that no `local()`
/// command outlives an abandoned evaluation.
pub fn stop_running() {
    let group = RUNNING.swap(0, Ordering::Relaxed);
    if group > 0 {
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
}

/// Runs `command` (stdin, stdout and stderr are set here) within `limit`.
pub fn run(
    mut command: Command,
    input: Option<String>,
    limit: Duration,
) -> Result<Finished, Stopped> {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().map_err(Stopped::Io)?;
    let group = Pid::from_raw(child.id() as i32);
    RUNNING.store(group.as_raw(), Ordering::Relaxed);
    let _running = Running;
    if let (Some(text), Some(mut pipe)) = (input, child.stdin.take()) {
        std::thread::spawn(move || std::io::Write::write_all(&mut pipe, text.as_bytes()));
    }
    let overflow = Arc::new(AtomicBool::new(false));
    let stdout = child
        .stdout
        .take()
        .map(|pipe| reader(pipe, MAX_STDOUT, Some(overflow.clone())));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| reader(pipe, MAX_STDERR, None));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(Stopped::Io)? {
            break status;
        }
        let stop = if overflow.load(Ordering::Relaxed) {
            Some(Stopped::TooMuchOutput)
        } else if start.elapsed() >= limit {
            Some(Stopped::Timeout(limit))
        } else {
            None
        };
        if let Some(stop) = stop {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
            return Err(stop);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // A background process the command started may hold the pipes open: wait
    // for the rest of the output a little, then go on with what arrived.
    let deadline = Instant::now() + DRAIN;
    let done = |r: &Option<Reader>| r.as_ref().is_none_or(|r| r.done.load(Ordering::Relaxed));
    while !(done(&stdout) && done(&stderr)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if overflow.load(Ordering::Relaxed) {
        return Err(Stopped::TooMuchOutput);
    }
    Ok(Finished {
        status,
        stdout: stdout.map(Reader::take).unwrap_or_default(),
        stderr: stderr.map(Reader::take).unwrap_or_default(),
    })
}

/// How long to wait for output after the command exited.
const DRAIN: Duration = Duration::from_secs(2);

/// A pipe being read on a thread of its own.
struct Reader {
    kept: Arc<std::sync::Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
}

impl Reader {
    fn take(self) -> Vec<u8> {
        std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Reads a pipe to its end on a thread of its own, keeping at most `max` bytes:
/// the first ones and raising `overflow` when it is given, else the last ones.
fn reader(
    mut pipe: impl Read + Send + 'static,
    max: usize,
    overflow: Option<Arc<AtomicBool>>,
) -> Reader {
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let (into, finished) = (kept.clone(), done.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 << 10];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut kept = into.lock().unwrap_or_else(|e| e.into_inner());
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > max {
                match &overflow {
                    Some(flag) => {
                        flag.store(true, Ordering::Relaxed);
                        kept.truncate(max);
                        break;
                    }
                    None => {
                        let cut = kept.len() - max;
                        kept.drain(..cut);
                    }
                }
            }
        }
        finished.store(true, Ordering::Relaxed);
    });
    Reader { kept, done }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_command_and_its_children_are_stopped_at_the_limit() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 3701 & sleep 3702"]);
        let start = Instant::now();
        let result = run(command, None, Duration::from_millis(300));
        assert!(matches!(result, Err(Stopped::Timeout(_))));
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(100));
        let left = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .filter(|c| {
                let c = String::from_utf8_lossy(c);
                c.contains("sleep\u{0}3701") || c.contains("sleep\u{0}3702")
            })
            .count();
        assert_eq!(left, 0, "the whole group is killed");
    }

    #[test]
    fn a_background_process_holding_the_pipes_does_not_block() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; sleep 3703 & true"]);
        let start = Instant::now();
        let Ok(finished) = run(command, None, Duration::from_secs(60)) else {
            panic!("the command succeeded")
        };
        assert_eq!(finished.stdout, b"out\n");
        assert!(start.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_dir("/proc").unwrap().flatten().find(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("sleep\u{0}3703"))
        });
        if let Some(entry) = pid {
            let _ = std::process::Command::new("kill")
                .arg(entry.file_name())
                .status();
        }
    }

    #[test]
    fn endless_output_is_stopped_and_memory_stays_bounded() {
        let mut command = Command::new("yes");
        command.arg("y");
        assert!(matches!(
            run(command, None, Duration::from_secs(60)),
            Err(Stopped::TooMuchOutput)
        ));
    }
}
