//! Where output goes: every line of every process to the terminal, prefixed with
//! its resource name (coloured on a terminal), and to `.loop/logs/NAME.log` with
//! a timestamp; the last lines of each resource are kept in memory (a bounded
//! ring, numbered across all resources) for the session API, `loop logs` and the
//! failure summaries, and sent to whoever follows the logs.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anstyle::{AnsiColor, Style};
use serde::Serialize;
use tokio::sync::broadcast;

use super::secrets::Scrubber;

use crate::report::Verbosity;

/// Lines kept in memory per resource unless configured otherwise.
pub const DEFAULT_RING: usize = 2_000;

/// How many lines a follower may fall behind before it is told it lost some.
const FOLLOW_BUFFER: usize = 4_096;

/// The name `loop`'s own lines about no particular resource are kept under.
pub const ENGINE: &str = "loop";

const PALETTE: &[AnsiColor] = &[
    AnsiColor::Cyan,
    AnsiColor::Magenta,
    AnsiColor::Blue,
    AnsiColor::Yellow,
    AnsiColor::Green,
    AnsiColor::BrightCyan,
];

/// Who wrote a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// The standard output of the resource's processes.
    Stdout,
    /// Their standard error.
    Stderr,
    /// `loop` itself: state changes, reasons, errors.
    Loop,
}

/// One kept line.
#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    /// Increases by one per line, across all resources.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub resource: String,
    pub stream: Stream,
    pub text: String,
}

/// The log sink shared by every runtime.
pub struct Logs {
    dir: PathBuf,
    color: bool,
    ring: usize,
    inner: Mutex<Inner>,
    follow: broadcast::Sender<Arc<LogLine>>,
    /// Replaces the values of applied Secrets in every line.
    scrubber: std::sync::RwLock<Option<Scrubber>>,
}

#[derive(Default)]
struct Inner {
    files: HashMap<String, LineWriter<File>>,
    lines: HashMap<String, VecDeque<Arc<LogLine>>>,
    seq: u64,
    width: usize,
    colors: HashMap<String, AnsiColor>,
    /// Resources whose log file could not be written (said once each).
    unwritable: HashMap<String, ()>,
}

impl Logs {
    /// Logs under `dir` (created if needed), coloured when stdout is a terminal
    /// and `NO_COLOR` is unset, keeping `ring` lines per resource in memory.
    pub fn new(dir: &Path, ring: usize) -> std::io::Result<Logs> {
        std::fs::create_dir_all(dir)?;
        let color = crate::report::stdout_color();
        Ok(Logs {
            dir: dir.to_owned(),
            color,
            ring: ring.max(1),
            inner: Mutex::new(Inner {
                width: 4,
                ..Inner::default()
            }),
            follow: broadcast::channel(FOLLOW_BUFFER).0,
            scrubber: std::sync::RwLock::new(None),
        })
    }

    /// Makes room for a resource name in the prefix column.
    pub fn register(&self, resource: &str) {
        let mut inner = self.lock();
        inner.width = inner.width.max(resource.len()).min(24);
        let n = inner.colors.len();
        inner
            .colors
            .entry(resource.to_owned())
            .or_insert(PALETTE[n % PALETTE.len()]);
    }

    /// One stdout line of a resource's process.
    pub fn line(&self, resource: &str, text: &str) {
        self.keep(resource, Stream::Stdout, text, Verbosity::Normal);
    }

    /// One stderr line of a resource's process.
    pub fn stderr_line(&self, resource: &str, text: &str) {
        self.keep(resource, Stream::Stderr, text, Verbosity::Normal);
    }

    /// A line from `loop` itself (state changes), also kept in the resource's log.
    pub fn status(&self, resource: &str, text: &str) {
        let text = format!("[loop] {text}");
        self.keep(resource, Stream::Loop, &text, Verbosity::Normal);
    }

    /// A failure of a resource: printed even under `--quiet`.
    pub fn problem(&self, resource: &str, text: &str) {
        let text = format!("[loop] {text}");
        self.keep(resource, Stream::Loop, &text, Verbosity::Quiet);
    }

    /// A line from `loop` about no particular resource.
    pub fn engine(&self, text: &str) {
        self.keep(ENGINE, Stream::Loop, text, Verbosity::Normal);
    }

    /// A line about no particular resource, printed from verbosity `shown_from`
    /// up (`Quiet`: a problem of the session; `Verbose`: a detail).
    pub fn engine_at(&self, shown_from: Verbosity, text: &str) {
        self.keep(ENGINE, Stream::Loop, text, shown_from);
    }

    /// Scrubs the values of these Secrets from every later line (`None`: nothing).
    pub fn scrub_with(&self, scrubber: Option<Scrubber>) {
        *self.scrubber.write().unwrap_or_else(|e| e.into_inner()) = scrubber;
    }

    /// Keeps a line (ring, file, followers); prints it when the terminal's
    /// verbosity is at least `shown_from`.
    fn keep(&self, resource: &str, stream: Stream, text: &str, shown_from: Verbosity) {
        let scrubbed = self
            .scrubber
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|scrubber| scrubber.scrub(text));
        let text = scrubbed.as_deref().unwrap_or(text);
        let now = SystemTime::now();
        let mut inner = self.lock();
        inner.seq += 1;
        let line = Arc::new(LogLine {
            seq: inner.seq,
            time_ms: crate::control::view::unix_ms(now),
            resource: resource.to_owned(),
            stream,
            text: text.to_owned(),
        });
        if resource != ENGINE {
            self.write_file(&mut inner, resource, now, text);
        }
        let ring = inner.lines.entry(resource.to_owned()).or_default();
        if ring.len() == self.ring {
            ring.pop_front();
        }
        ring.push_back(line.clone());
        let style = if resource == ENGINE {
            Style::new().bold()
        } else {
            let color = inner
                .colors
                .get(resource)
                .copied()
                .unwrap_or(AnsiColor::White);
            Style::new().fg_color(Some(color.into()))
        };
        if crate::report::verbosity() >= shown_from {
            self.print(&inner, resource, style, text);
        }
        let _ = self.follow.send(line);
    }

    fn write_file(&self, inner: &mut Inner, resource: &str, now: SystemTime, text: &str) {
        if !inner.files.contains_key(resource) {
            let path = self.path(resource);
            match File::options().create(true).append(true).open(&path) {
                Ok(file) => {
                    inner
                        .files
                        .insert(resource.to_owned(), LineWriter::new(file));
                }
                Err(e) => {
                    if inner.unwritable.insert(resource.to_owned(), ()).is_none() {
                        crate::report::stderr_line(&format!(
                            "loop: cannot write the log file {}: {e} (the log stays in memory)",
                            path.display()
                        ));
                    }
                    return;
                }
            }
        }
        let stamp = humantime::format_rfc3339_millis(now);
        if let Some(file) = inner.files.get_mut(resource) {
            if let Err(e) = writeln!(file, "{stamp} {text}") {
                inner.files.remove(resource);
                if inner.unwritable.insert(resource.to_owned(), ()).is_none() {
                    crate::report::stderr_line(&format!(
                        "loop: cannot write the log of {resource}: {e} (the log stays in memory)"
                    ));
                }
            }
        }
    }

    /// The last `n` lines of a resource.
    pub fn tail(&self, resource: &str, n: usize) -> Vec<String> {
        let inner = self.lock();
        let Some(lines) = inner.lines.get(resource) else {
            return Vec::new();
        };
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .map(|l| l.text.clone())
            .collect()
    }

    /// The kept lines after `since` (a sequence number), of the given resources
    /// (all when empty), in order, at most `limit` (the newest).
    pub fn lines(&self, resources: &[String], since: u64, limit: usize) -> Vec<Arc<LogLine>> {
        let inner = self.lock();
        let mut out: Vec<Arc<LogLine>> = inner
            .lines
            .iter()
            .filter(|(name, _)| resources.is_empty() || resources.contains(name))
            .flat_map(|(_, lines)| lines.iter().filter(|l| l.seq > since).cloned())
            .collect();
        out.sort_by_key(|l| l.seq);
        let skip = out.len().saturating_sub(limit);
        out.drain(..skip);
        out
    }

    /// Every line from now on, for following.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.follow.subscribe()
    }

    /// The last sequence number given out.
    pub fn seq(&self) -> u64 {
        self.lock().seq
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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

/// A resource name as a file name (`name:kind` has a colon); long names are
/// cut and keep a hash of the whole, so that every resource gets a file.
pub(crate) fn file_name(resource: &str) -> String {
    let safe: String = resource
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.len() <= 120 {
        return safe;
    }
    let cut: String = safe.chars().take(100).collect();
    let hash = blake3::hash(resource.as_bytes()).to_hex();
    format!("{cut}-{}", &hash[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_bounded_per_resource_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::new(dir.path(), 3).unwrap();
        for i in 0..5 {
            logs.line("a", &format!("a{i}"));
            logs.line("b", &format!("b{i}"));
        }
        let all = logs.lines(&[], 0, 100);
        let texts: Vec<&str> = all.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["a2", "b2", "a3", "b3", "a4", "b4"]);
        let a = logs.lines(&["a".to_owned()], all[2].seq, 100);
        let texts: Vec<&str> = a.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["a4"]);
        assert_eq!(logs.lines(&[], 0, 2).len(), 2);
        let file = std::fs::read_to_string(logs.path("a")).unwrap();
        assert_eq!(file.lines().count(), 5, "the file keeps everything");
        assert!(file
            .lines()
            .all(|l| l.ends_with(&l[l.len() - 2..]) && l.contains('T')));
    }

    #[test]
    fn a_very_long_name_still_gets_a_log_file() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::new(dir.path(), 3).unwrap();
        let name = "x".repeat(5_000);
        logs.line(&name, "hello");
        assert!(std::fs::read_to_string(logs.path(&name))
            .unwrap()
            .contains("hello"));
    }
}
