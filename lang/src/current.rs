//! The statement being evaluated, readable from outside the evaluator.
//!
//! A limit can be hit where no Starlark error can be raised: one built-in call
//! that asks for gigabytes at once (`[0] * 10**9`) is stopped inside the memory
//! allocator, and a comprehension that never ends is stopped by a timer thread.
//! Both report the statement that was running, which this module keeps: the
//! statement hook of [`crate::limits`] publishes each statement's span here (two
//! relaxed atomic stores) once [`track`] has been called, and the loader each
//! file before it runs. Only the evaluation
//! process calls it; in-process evaluations (tests, benches) skip the bookkeeping.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use starlark::codemap::{CodeMap, CodeMapId, FileSpan, FileSpanRef, Pos, Span};

use crate::location::Location;

static TRACKING: AtomicBool = AtomicBool::new(false);
/// Every file a statement ran in, in the order first seen.
static FILES: Mutex<Vec<CodeMap>> = Mutex::new(Vec::new());
/// The index in [`FILES`] of the current statement's file (`usize::MAX`: none yet).
static FILE: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The current statement's span: begin in the high half, end in the low half;
/// [`WHOLE_FILE`] while a file is prepared, before its first statement.
static SPAN: AtomicU64 = AtomicU64::new(0);
const WHOLE_FILE: u64 = u64::MAX;

thread_local! {
    /// The file of the previous statement on this thread and its index, so that
    /// [`FILES`] is locked only when evaluation moves to another file.
    static LAST: Cell<(CodeMapId, usize)> = const { Cell::new((CodeMapId::EMPTY, usize::MAX)) };
}

/// Starts publishing statements (for the rest of the process).
pub fn track() {
    TRACKING.store(true, Ordering::Relaxed);
}

/// Publishes the statement about to run.
pub(crate) fn enter(span: FileSpanRef) {
    if TRACKING.load(Ordering::Relaxed) {
        let (begin, end) = (span.span.begin().get(), span.span.end().get());
        publish(span.file, u64::from(begin) << 32 | u64::from(end));
    }
}

/// Publishes a file about to be compiled and run: Starlark computes some
/// constant expressions (`list(range(10))`) before the first statement.
pub(crate) fn enter_file(file: &CodeMap) {
    if TRACKING.load(Ordering::Relaxed) {
        publish(file, WHOLE_FILE);
    }
}

fn publish(file: &CodeMap, span: u64) {
    let id = file.id();
    let (last, mut index) = LAST.get();
    if last != id {
        let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
        index = files.len();
        files.push(file.clone());
        LAST.set((id, index));
    }
    SPAN.store(span, Ordering::Relaxed);
    FILE.store(index, Ordering::Relaxed);
}

/// What was running when evaluation was stopped from outside.
pub struct Running {
    /// The statement, or the start of the file when none of it had run yet.
    pub at: Location,
    /// Whether `at` is a statement (else the file was being prepared).
    pub statement: bool,
    /// The text of the file.
    pub source: String,
}

/// What runs now; `None` before the first file or when the bookkeeping is busy
/// (the caller may be holding it).
pub fn running() -> Option<Running> {
    let index = FILE.load(Ordering::Relaxed);
    let packed = SPAN.load(Ordering::Relaxed);
    let files = FILES.try_lock().ok()?;
    let file = files.get(index)?.clone();
    let statement = packed != WHOLE_FILE;
    let span = if statement {
        Span::new(Pos::new((packed >> 32) as u32), Pos::new(packed as u32))
    } else {
        Span::new(Pos::new(0), Pos::new(0))
    };
    let source = crate::while_loops::written(&file).to_string();
    Some(Running {
        at: Location::from_span(&FileSpan { file, span }),
        statement,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_the_statement_that_runs() {
        let code = CodeMap::new("Loopfile".into(), "a = 1\nb = 2\n".into());
        track();
        let second = Span::new(Pos::new(6), Pos::new(11));
        enter(FileSpanRef {
            file: &code,
            span: second,
        });
        let now = running().expect("a statement was published");
        assert_eq!(now.at.to_string(), "Loopfile:2:1");
        assert!(now.statement);
        assert_eq!(now.source, "a = 1\nb = 2\n");
        enter_file(&code);
        let now = running().expect("a file was published");
        assert_eq!(now.at.to_string(), "Loopfile:1:1");
        assert!(!now.statement);
    }
}
