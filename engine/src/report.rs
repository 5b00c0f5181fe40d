//! The one place that writes user-facing text: diagnostics, warnings and the
//! evaluation log to stderr (coloured on a terminal unless `NO_COLOR` is set).

use std::io::IsTerminal;

use loop_lang::diag::SourceMap;
use loop_lang::loader::LogLine;
use loop_lang::Diagnostic;

fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Prints a rendered diagnostic.
pub fn diagnostic(diag: &Diagnostic, sources: &SourceMap) {
    eprintln!("{}", diag.render(sources, color()));
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
            eprintln!("[{}] {level}{text}", line.file);
        }
    }
}
