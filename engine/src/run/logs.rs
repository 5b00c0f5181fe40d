//! Where output goes: every line of every process to the terminal, prefixed with
//! its resource name (coloured on a terminal), and to `.loop/logs/NAME.log`; the
//! last lines of each resource are kept for failure summaries.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{IsTerminal, LineWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anstyle::{AnsiColor, Style};

/// How many lines of each resource are kept in memory.
const TAIL_LINES: usize = 50;

const PALETTE: &[AnsiColor] = &[
    AnsiColor::Cyan,
    AnsiColor::Magenta,
    AnsiColor::Blue,
    AnsiColor::Yellow,
    AnsiColor::Green,
    AnsiColor::BrightCyan,
];

/// The log sink shared by every runtime.
pub struct Logs {
    dir: PathBuf,
    color: bool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    files: HashMap<String, LineWriter<File>>,
    tails: HashMap<String, VecDeque<String>>,
    width: usize,
    colors: HashMap<String, AnsiColor>,
}

impl Logs {
    /// Logs under `dir` (created if needed), coloured when stdout is a terminal
    /// and `NO_COLOR` is unset.
    pub fn new(dir: &Path) -> std::io::Result<Logs> {
        std::fs::create_dir_all(dir)?;
        let color = std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
        Ok(Logs {
            dir: dir.to_owned(),
            color,
            inner: Mutex::new(Inner {
                width: 4,
                ..Inner::default()
            }),
        })
    }

    /// Makes room for a resource name in the prefix column.
    pub fn register(&self, resource: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.width = inner.width.max(resource.len()).min(24);
        let n = inner.colors.len();
        inner
            .colors
            .entry(resource.to_owned())
            .or_insert(PALETTE[n % PALETTE.len()]);
    }

    /// One output line of a resource's process.
    pub fn line(&self, resource: &str, text: &str) {
        let mut inner = self.inner.lock().unwrap();
        let file = match inner.files.get_mut(resource) {
            Some(file) => Some(file),
            None => {
                let path = self.dir.join(format!("{}.log", file_name(resource)));
                match File::options().create(true).append(true).open(path) {
                    Ok(file) => Some(
                        inner
                            .files
                            .entry(resource.to_owned())
                            .or_insert(LineWriter::new(file)),
                    ),
                    Err(_) => None,
                }
            }
        };
        if let Some(file) = file {
            let _ = writeln!(file, "{text}");
        }
        let tail = inner.tails.entry(resource.to_owned()).or_default();
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text.to_owned());
        let color = inner
            .colors
            .get(resource)
            .copied()
            .unwrap_or(AnsiColor::White);
        self.print(
            &inner,
            resource,
            Style::new().fg_color(Some(color.into())),
            text,
        );
    }

    /// A line from `loop` itself (state changes, errors), also kept in the resource's log.
    pub fn status(&self, resource: &str, text: &str) {
        self.line(resource, &format!("[loop] {text}"));
    }

    /// A line from `loop` about no particular resource.
    pub fn engine(&self, text: &str) {
        let inner = self.inner.lock().unwrap();
        self.print(&inner, "loop", Style::new().bold(), text);
    }

    /// The last `n` lines of a resource.
    pub fn tail(&self, resource: &str, n: usize) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        let Some(tail) = inner.tails.get(resource) else {
            return Vec::new();
        };
        tail.iter()
            .skip(tail.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Prints the last `n` lines of a resource to stderr, under a heading that
    /// names its full log (the `loop ci` failure summary).
    pub fn flush_tail(&self, resource: &str, n: usize) {
        crate::report::stderr_line(&format!(
            "--- last lines of {resource} (full log: {}):",
            self.path(resource).display()
        ));
        for line in self.tail(resource, n) {
            crate::report::stderr_line(&line);
        }
    }

    /// The log file of a resource.
    pub fn path(&self, resource: &str) -> PathBuf {
        self.dir.join(format!("{}.log", file_name(resource)))
    }

    fn print(&self, inner: &Inner, prefix: &str, style: Style, text: &str) {
        let mut out = std::io::stdout().lock();
        let width = inner.width;
        let _ = if self.color {
            writeln!(out, "{style}{prefix:>width$}{style:#} │ {text}")
        } else {
            writeln!(out, "{prefix:>width$} │ {text}")
        };
    }
}

/// A resource name as a file name (`name:kind` has a colon).
pub(crate) fn file_name(resource: &str) -> String {
    resource
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
