//! The one place that writes user-facing text: diagnostics, warnings and the
//! evaluation log to stderr (coloured on a terminal unless `NO_COLOR` is set).

use std::io::{IsTerminal, Write};

use loop_lang::diag::SourceMap;
use loop_lang::loader::LogLine;
use loop_lang::Diagnostic;

/// Where a stream of output lines goes (a command's output, a build's, pod
/// logs): one type for every producer.
pub type LineSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
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

/// Prints a rendered diagnostic.
pub fn diagnostic(diag: &Diagnostic, sources: &SourceMap) {
    stderr_line(&diag.render(sources, color()));
}

/// Prints an error that has no source location.
pub fn error(message: &str) {
    diagnostic(&Diagnostic::new(message), &SourceMap::default());
}

/// Prints what `print()`, `warn()` and `local()` logged during evaluation.
pub fn evaluation_log(log: &[LogLine]) {
    for line in log {
        let level = if line.warning { "warning: " } else { "" };
        for text in line.text.lines() {
            stderr_line(&format!("[{}] {level}{text}", line.file));
        }
    }
}
