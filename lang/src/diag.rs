//! Diagnostics: every error a user can cause, with where, why and what to do.
//!
//! Starlark errors and our own (duplicate names, cycles, missing files) become one
//! [`Diagnostic`] type, rendered in one place with the source line, the Starlark
//! call stack and a hint.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::location::Location;

/// The name among `names` closest to `wanted` (for a "did you mean" hint): one
/// that differs only in case, else the most similar above a threshold.
pub fn closest<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for name in names {
        let score = if name.eq_ignore_ascii_case(wanted) {
            1.0
        } else {
            strsim::jaro_winkler(wanted, name)
        };
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, name));
        }
    }
    best.map(|(_, name)| name)
}

/// The sources of every file evaluated so far, by display path, for rendering.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: HashMap<String, Arc<str>>,
}

impl Serialize for SourceMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.files.iter().map(|(k, v)| (k, &**v)))
    }
}

impl<'de> Deserialize<'de> for SourceMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SourceMap, D::Error> {
        let files = HashMap::<String, String>::deserialize(d)?;
        Ok(SourceMap {
            files: files.into_iter().map(|(k, v)| (k, v.into())).collect(),
        })
    }
}

impl SourceMap {
    pub fn insert(&mut self, display_path: &str, source: Arc<str>) {
        self.files.insert(display_path.to_owned(), source);
    }

    /// The display paths of the files held.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The text of a 1-based line of a file, if known.
    pub fn line(&self, file: &str, line: usize) -> Option<&str> {
        self.files.get(file)?.lines().nth(line.checked_sub(1)?)
    }
}

/// A highlighted span with a short label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub at: Location,
    pub text: String,
}

/// One frame of the Starlark call stack: the function, and where in it the call was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub function: String,
    pub at: Location,
}

/// A user-facing error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub message: String,
    /// Where it happened; the first label is the primary one.
    pub labels: Vec<Label>,
    /// The Starlark call stack, outermost first.
    pub stack: Vec<Frame>,
    pub notes: Vec<String>,
    pub help: Option<Box<str>>,
    /// A warning (a policy finding) rather than an error.
    #[serde(default)]
    pub warning: bool,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            labels: Vec::new(),
            stack: Vec::new(),
            notes: Vec::new(),
            help: None,
            warning: false,
        }
    }

    /// The same, as a warning.
    pub fn warning(mut self) -> Diagnostic {
        self.warning = true;
        self
    }

    /// Adds a highlighted location (the first one added is the primary).
    pub fn at(mut self, at: Location, label: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            at,
            text: label.into(),
        });
        self
    }

    pub fn at_opt(self, at: Option<Location>, label: impl Into<String>) -> Diagnostic {
        match at {
            Some(at) => self.at(at, label),
            None => self,
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into().into_boxed_str());
        self
    }

    /// The primary location, if any.
    pub fn location(&self) -> Option<&Location> {
        self.labels.first().map(|l| &l.at)
    }

    /// Converts a Starlark error, keeping its span and call stack.
    pub fn from_starlark(err: &starlark::Error) -> Diagnostic {
        let message = err.without_diagnostic().to_string();
        let message = message.strip_prefix("Parse error: ").unwrap_or(&message);
        let mut diag = Diagnostic::new(message.trim_end());
        if let Some(span) = err.span() {
            diag = diag.at(Location::from_span(span), "");
        }
        // Frame i names the function that frame i+1 ran in; its location is the call site.
        let frames = err.call_stack().clone().into_frames();
        let mut function = "<module>".to_owned();
        for frame in frames {
            if let Some(loc) = &frame.location {
                diag.stack.push(Frame {
                    function: function.clone(),
                    at: Location::from_span(loc),
                });
            }
            function = frame.name;
        }
        diag
    }

    /// Renders the diagnostic for a terminal (`color`) or a log/snapshot (plain).
    pub fn render(&self, sources: &SourceMap, color: bool) -> String {
        let level = if self.warning {
            Level::WARNING
        } else {
            Level::ERROR
        };
        let title = level.primary_title(&self.message);
        let mut group = Group::with_title(title);
        let mut unplaced = Vec::new();
        for (i, label) in self.labels.iter().enumerate() {
            let Some(line) = sources.line(&label.at.file, label.at.line) else {
                unplaced.push(format!("at {}{}", label.at, suffix(&label.text)));
                continue;
            };
            let range = byte_range(line, label.at.col, label.at.width);
            let kind = if i == 0 {
                AnnotationKind::Primary
            } else {
                AnnotationKind::Context
            };
            group = group.element(
                Snippet::source(line)
                    .line_start(label.at.line)
                    .path(label.at.file.as_str())
                    .annotation(kind.span(range).label(label.text.as_str())),
            );
        }
        let stack = self.stack_text();
        let mut messages: Vec<(Level, String)> = Vec::new();
        for text in unplaced {
            messages.push((Level::NOTE, text));
        }
        if let Some(stack) = stack {
            messages.push((Level::NOTE, stack));
        }
        for note in &self.notes {
            messages.push((Level::NOTE, note.clone()));
        }
        if let Some(help) = &self.help {
            messages.push((Level::HELP, help.to_string()));
        }
        for (level, text) in &messages {
            group = group.element(level.clone().message(text.as_str()));
        }
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        renderer.render(&[group]).to_string()
    }

    /// The call stack as text, or `None` when it says nothing the span does not.
    fn stack_text(&self) -> Option<String> {
        if self.stack.len() < 2 {
            return None;
        }
        let mut out = String::from("call stack (most recent call last):");
        let mut frames = self.stack.iter().peekable();
        while let Some(frame) = frames.next() {
            let mut repeats = 0;
            while frames.peek() == Some(&frame) {
                frames.next();
                repeats += 1;
            }
            out.push_str(&format!("\n  {} in {}", frame.at, frame.function));
            if repeats > 0 {
                out.push_str(&format!(" (repeated {repeats} more times)"));
            }
        }
        Some(out)
    }
}

fn suffix(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Byte range within `line` of `width` characters starting at 1-based column `col`.
fn byte_range(line: &str, col: usize, width: usize) -> std::ops::Range<usize> {
    let offset = |chars: usize| {
        line.char_indices()
            .nth(chars)
            .map_or(line.len(), |(i, _)| i)
    };
    let start = offset(col.saturating_sub(1));
    let end = offset(col.saturating_sub(1) + width).max(start);
    start..end
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(at) = self.location() {
            write!(f, " (at {at})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(line: usize, col: usize, width: usize) -> Location {
        Location {
            file: "Loopfile".into(),
            line,
            col,
            width,
        }
    }

    #[test]
    fn renders_source_line_labels_and_help() {
        let mut sources = SourceMap::default();
        sources.insert("Loopfile", "a = 1\nlocal_resource('web')\n".into());
        let d = Diagnostic::new("resource `web` is declared twice")
            .at(loc(2, 1, 14), "declared again here")
            .at(loc(1, 1, 1), "first here")
            .help("rename one of them");
        let text = d.render(&sources, false);
        assert!(
            text.contains("error: resource `web` is declared twice"),
            "{text}"
        );
        assert!(text.contains("Loopfile:2:1"), "{text}");
        assert!(text.contains("local_resource('web')"), "{text}");
        assert!(
            text.contains("^^^^^^^^^^^^^^ declared again here"),
            "{text}"
        );
        assert!(text.contains("help: rename one of them"), "{text}");
    }

    #[test]
    fn collapses_repeated_stack_frames() {
        let frame = Frame {
            function: "f".into(),
            at: loc(2, 5, 3),
        };
        let mut d = Diagnostic::new("too deep");
        d.stack = vec![Frame {
            function: "<module>".into(),
            at: loc(3, 1, 1),
        }];
        d.stack.extend(std::iter::repeat_n(frame, 5));
        let text = d.stack_text().unwrap();
        assert_eq!(
            text,
            "call stack (most recent call last):\n  Loopfile:3:1 in <module>\n  Loopfile:2:5 in f (repeated 4 more times)"
        );
    }

    #[test]
    fn byte_range_handles_multibyte_text() {
        assert_eq!(byte_range("é = 'x'", 5, 3), 5..8);
        assert_eq!(byte_range("ab", 10, 3), 2..2);
    }
}
