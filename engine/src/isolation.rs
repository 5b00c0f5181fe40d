//! Evaluation in a process of its own (`loop __eval`), so that no Loopfile can
//! take `loop` down with it.
//!
//! Starlark runs in the `loop` process only as far as its statement hook can
//! stop it ([`loop_lang::limits`]). What the hook cannot see, one built-in call
//! asking for gigabytes (`[0] * 10**9` aborts a Rust process) or a comprehension
//! that never ends, is stopped here from outside, in a child process that has
//! nothing else to lose:
//!
//! - the parent writes the files and options to the child's stdin and reads the
//!   result (an [`Evaluation`] or an [`EvalFailure`]) from its stdout, as CBOR;
//! - in the child, [`BudgetAllocator`] refuses an allocation that would take the
//!   resident size past twice `LOOP_EVAL_MAX_MEMORY_MB`: the child answers with
//!   an error at the statement that was running ([`loop_lang::current`]) and exits;
//! - a timer does the same at `LOOP_EVAL_TIMEOUT`, and a stop signal or the
//!   death of `loop` (`PR_SET_PDEATHSIG`) ends the child too; each of these first
//!   kills the `local()` command running, if any, so nothing outlives it;
//! - the parent waits a little longer than that timer, then kills the child;
//!   a child that dies without answering is reported with its last stderr lines.
//!
//! Only the `loop` binary isolates ([`enable`]); tests and benchmarks, whose
//! executable is not `loop`, evaluate in their own process unless they name a
//! `loop` binary to use.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use loop_lang::diag::SourceMap;
use loop_lang::limits::{self, Limits};
use loop_lang::Diagnostic;
use loop_stdlib::{EvalFailure, EvalOptions, Evaluation};
use serde::{Deserialize, Serialize};

/// The `loop` binary whose `__eval` runs evaluations, once [`enable`]d.
static EXE: OnceLock<PathBuf> = OnceLock::new();

/// Makes every evaluation of this process run in `LOOP __eval`, where `loop`
/// is the path of a `loop` binary (the `loop` binary passes its own).
pub fn enable(loop_binary: PathBuf) {
    let _ = EXE.set(loop_binary);
}

/// Whether evaluations run in a child process.
pub fn enabled() -> bool {
    EXE.get().is_some()
}

/// What the parent sends.
#[derive(Serialize, Deserialize)]
struct Request {
    files: Vec<PathBuf>,
    options: EvalOptions,
}

/// What the child answers.
type Response = Result<Evaluation, EvalFailure>;

/// How much longer than the child's own timer the parent waits.
const PARENT_GRACE: Duration = Duration::from_secs(30);
/// How much of the child's stderr is kept for a report of its death.
const STDERR_KEPT: usize = 16 << 10;

/// Evaluates in a `loop __eval` child process.
pub fn evaluate(files: &[PathBuf], options: &EvalOptions) -> Result<Evaluation, Box<EvalFailure>> {
    let failure = |text: String| {
        Box::new(EvalFailure {
            diagnostic: Diagnostic::new(text),
            sources: SourceMap::default(),
            log: Vec::new(),
        })
    };
    let request = Request {
        files: files.to_vec(),
        options: options.clone(),
    };
    let mut input = Vec::new();
    ciborium::into_writer(&request, &mut input)
        .map_err(|e| failure(format!("cannot encode the evaluation request: {e}")))?;
    let exe = EXE
        .get()
        .ok_or_else(|| failure("evaluation in a process of its own is not enabled".into()))?;
    let mut command = Command::new(exe);
    command
        .arg("__eval")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure only makes a system call, as `pre_exec` requires.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| failure(format!("cannot start the evaluation process: {e}")))?;
    let stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let stdout = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        })
    });
    let stderr = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut chunk = [0u8; 8192];
            let mut err = err;
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > STDERR_KEPT {
                    kept.drain(..kept.len() - STDERR_KEPT);
                }
            }
            kept
        })
    });
    let deadline = Instant::now() + limits::timeout_from_env() + PARENT_GRACE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let _ = writer.join();
    let output = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let errors = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if let Ok(response) = ciborium::from_reader::<Response, _>(output.as_slice()) {
        return response.map_err(Box::new);
    }
    Err(Box::new(EvalFailure {
        diagnostic: died(status, &String::from_utf8_lossy(&errors)),
        sources: SourceMap::default(),
        log: Vec::new(),
    }))
}

/// Why a child that gave no answer ended (`None`: the parent killed it).
fn died(status: Option<std::process::ExitStatus>, stderr: &str) -> Diagnostic {
    use std::os::unix::process::ExitStatusExt;
    let (how, bug) = match status {
        None => ("did not answer in time and was killed".to_owned(), false),
        Some(s) => match (s.signal(), s.code()) {
            (Some(9), _) => (
                "was killed (signal 9; the system may be out of memory)".to_owned(),
                false,
            ),
            (Some(signal), _) => (format!("was killed by signal {signal}"), true),
            (None, Some(code)) if code > 128 => {
                (format!("was stopped by signal {}", code - 128), false)
            }
            _ => (format!("ended ({s}) without an answer"), true),
        },
    };
    let mut diagnostic = Diagnostic::new(format!("the evaluation process {how}"));
    if !stderr.trim().is_empty() {
        diagnostic = diagnostic.note(format!("it printed: {}", stderr.trim()));
    }
    if bug {
        diagnostic = diagnostic.help("this is a bug in loop: please report it with the Loopfile");
    }
    diagnostic
}

/// Held while the child writes its answer, so that only one is written.
static ANSWER: Mutex<()> = Mutex::new(());

/// Writes the child's answer to stdout.
fn answer(response: &Response) {
    let mut bytes = Vec::new();
    if ciborium::into_writer(response, &mut bytes).is_ok() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&bytes);
        let _ = out.flush();
    }
}

/// The child: `loop __eval`.
pub fn child_main() -> ExitCode {
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return ExitCode::FAILURE;
    }
    let Ok(request) = ciborium::from_reader::<Request, _>(input.as_slice()) else {
        crate::report::stderr_line(
            "loop __eval: the request cannot be decoded (this command is internal to loop)",
        );
        return ExitCode::FAILURE;
    };
    let limits = Limits::from_env();
    stop_on_signals();
    let timeout = limits.timeout;
    std::thread::spawn(move || {
        // The statement hook stops most evaluations at the deadline with a full
        // call stack; this catches what runs outside any statement.
        std::thread::sleep(timeout + Duration::from_secs(1));
        stop(limits::timeout_message(timeout));
    });
    loop_lang::current::track();
    BUDGET.store(limits.max_heap_bytes.saturating_mul(2), Ordering::Relaxed);
    let result = crate::eval_thread::evaluate_here(&request.files, &request.options);
    BUDGET.store(usize::MAX, Ordering::Relaxed);
    let _answering = ANSWER.lock();
    answer(&result.map_err(|failure| *failure));
    ExitCode::SUCCESS
}

/// Stops the child from outside the evaluation: kills the `local()` command
/// running, answers with `message` at the statement that was running, exits.
fn stop(message: String) -> ! {
    BUDGET.store(usize::MAX, Ordering::Relaxed);
    loop_stdlib::builtins::bounded::stop_running();
    if let Ok(_answering) = ANSWER.try_lock() {
        let mut sources = SourceMap::default();
        let mut diagnostic = Diagnostic::new(message);
        if let Some(running) = loop_lang::current::running() {
            sources.insert(&running.at.file, running.source.into());
            let label = if running.statement {
                "while this statement ran"
            } else {
                "while this file was prepared, before its first statement"
            };
            diagnostic = diagnostic.at(running.at, label);
        }
        answer(&Err(EvalFailure {
            diagnostic,
            sources,
            log: Vec::new(),
        }));
    }
    std::process::exit(0)
}

/// A stop signal (Ctrl-C reaches the child too) or the death of `loop` ends
/// the child without leaving its `local()` command behind.
fn stop_on_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    // Threads started after this inherit the mask; commands get a clean one.
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if let Ok(signal) = set.wait() {
            loop_stdlib::builtins::bounded::stop_running();
            std::process::exit(128 + signal as i32);
        }
    });
}

/// The memory the child may hold, resident (`usize::MAX`: no budget, as in `loop`).
static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Bytes asked for since the resident size was last read.
static SINCE_CHECK: AtomicUsize = AtomicUsize::new(0);
/// Set while the resident size is read (an allocation there is not checked).
static CHECKING: AtomicBool = AtomicBool::new(false);
/// The resident size is read after this many bytes were asked for...
const CHECK_EVERY: usize = 32 << 20;
/// ...and before every allocation at least this large.
const LARGE: usize = 1 << 20;

/// The system allocator, with the evaluation child's memory budget: an
/// allocation that would take the resident size past it is never made, the child
/// is stopped instead (a Rust process aborts when an allocation fails). The
/// resident size, not the bytes asked for, is what counts: Starlark reserves
/// 1 MB per file it evaluates and touches little of it. Costs one relaxed load
/// per allocation where no budget is set.
pub struct BudgetAllocator;

impl BudgetAllocator {
    fn grow(&self, bytes: usize) {
        let budget = BUDGET.load(Ordering::Relaxed);
        if budget == usize::MAX {
            return;
        }
        let since = SINCE_CHECK.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if (bytes < LARGE && since < CHECK_EVERY) || CHECKING.swap(true, Ordering::Relaxed) {
            return;
        }
        SINCE_CHECK.store(0, Ordering::Relaxed);
        let resident = resident_bytes();
        CHECKING.store(false, Ordering::Relaxed);
        if resident.saturating_add(bytes) > budget {
            // No budget from here on: the message and the answer allocate.
            BUDGET.store(usize::MAX, Ordering::Relaxed);
            stop(limits::allocation_message(budget));
        }
    }
}

/// The resident size of this process (`VmRSS` of `/proc/self/status`, read
/// without allocating).
fn resident_bytes() -> usize {
    let mut text = [0u8; 4096];
    let Ok(mut file) = std::fs::File::open("/proc/self/status") else {
        return 0;
    };
    let mut n = 0;
    while let Ok(read @ 1..) = file.read(&mut text[n..]) {
        n += read;
    }
    let kib = std::str::from_utf8(&text[..n])
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("VmRSS:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    kib.saturating_mul(1024)
}

// SAFETY: every call is passed to `System` unchanged; the budget only reads the
// resident size, and `stop` never returns.
unsafe impl GlobalAlloc for BudgetAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.grow(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.grow(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.grow(new_size.saturating_sub(layout.size()));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::died;

    #[test]
    fn a_child_that_died_is_reported_by_how_it_ended() {
        let abort = died(Some(ExitStatus::from_raw(6)), "fatal runtime error");
        assert_eq!(
            abort.message,
            "the evaluation process was killed by signal 6"
        );
        assert_eq!(abort.notes, ["it printed: fatal runtime error"]);
        assert!(abort.help.is_some(), "an abort is a bug to report");

        let killed = died(Some(ExitStatus::from_raw(9)), "");
        assert!(
            killed.message.contains("out of memory"),
            "{}",
            killed.message
        );
        assert!(killed.notes.is_empty() && killed.help.is_none());

        let stopped = died(Some(ExitStatus::from_raw((128 + 2) << 8)), "");
        assert_eq!(
            stopped.message,
            "the evaluation process was stopped by signal 2"
        );
        assert!(stopped.help.is_none());

        let hung = died(None, "");
        assert!(hung.message.contains("did not answer in time"));
    }
}
