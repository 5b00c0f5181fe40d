//! The one place that writes user-facing text: diagnostics, warnings and the
//! evaluation log to stderr (coloured on a terminal unless `NO_COLOR` is set),
//! and how much is said at all (`--quiet`, `--verbose`). Colour is decided once
//! per stream, here.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use loop_lang::diag::SourceMap;
use loop_lang::loader::LogLine;
use loop_lang::Diagnostic;

/// Where a stream of output lines goes (a command's output, a build's, pod
/// logs): one type for every producer.
pub type LineSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// How much `loop` says on the terminal. The logs kept in files and served by
/// the session API hold every line at every level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Problems only: errors, warnings, failures, the `loop ci` verdict.
    Quiet,
    Normal,
    /// Also the details: which files changed, how long evaluations took.
    Verbose,
}

static VERBOSITY: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Sets the level for the rest of the process (from `--quiet`/`--verbose`).
pub fn set_verbosity(level: Verbosity) {
    VERBOSITY.store(level as u8, Ordering::Relaxed);
}

/// The level set by [`set_verbosity`] (normal by default).
pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        2 => Verbosity::Verbose,
        _ => Verbosity::Normal,
    }
}

/// Whether stderr gets colour: a terminal, and `NO_COLOR` unset.
fn color() -> bool {
    static COLOR: OnceLock<bool> = OnceLock::new();
    *COLOR.get_or_init(|| std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal())
}

/// Whether stdout (where `loop run` prints resource logs) gets colour.
pub fn stdout_color() -> bool {
    static COLOR: OnceLock<bool> = OnceLock::new();
    *COLOR.get_or_init(|| std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal())
}

/// Writes one line to stderr. A failed write (a closed terminal after SIGHUP, a
/// full pipe's reader gone) is ignored: `loop` must still stop what it started.
pub fn stderr_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Writes a command's answer to stdout (what pipes read), as is. A failed write
/// (the reader of a pipe gone, as with `loop graph | head -1`) ends nothing:
/// `println!` would panic there.
pub fn out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// [`out`], one line.
pub fn out_line(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// `text`, then a command's output lines, indented under it (`"; its last
/// output:"` and one line each), or `if_none` when it printed nothing.
pub fn with_output(mut text: String, heading: &str, output: &[String], if_none: &str) -> String {
    if output.is_empty() {
        text.push_str(if_none);
        return text;
    }
    text.push_str(heading);
    for line in output {
        text.push_str("\n    ");
        text.push_str(line);
    }
    text
}

/// Prints a rendered diagnostic.
pub fn diagnostic(diag: &Diagnostic, sources: &SourceMap) {
    stderr_line(&diag.render(sources, color()));
}

/// Prints an error that has no source location.
pub fn error(message: &str) {
    diagnostic(&Diagnostic::new(message), &SourceMap::default());
}

/// Prints what `print()`, `warn()` and `local()` logged during evaluation
/// (only the warnings under `--quiet`).
pub fn evaluation_log(log: &[LogLine]) {
    let quiet = verbosity() == Verbosity::Quiet;
    for line in log.iter().filter(|l| l.warning || !quiet) {
        let level = if line.warning { "warning: " } else { "" };
        for text in line.text.lines() {
            stderr_line(&format!("[{}] {level}{text}", line.file));
        }
    }
}
