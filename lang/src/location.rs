//! Source locations: where in which file something was declared.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use starlark::codemap::FileSpan;

/// A position in a source file: the file's path relative to the project root,
/// 1-based line and column, and the width of the span on that line.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// Width in characters of the highlighted span on its first line (at least 1).
    pub width: usize,
}

impl Location {
    /// The location of a starlark span.
    pub fn from_span(span: &FileSpan) -> Location {
        let resolved = span.resolve_span();
        let first_line = span.file.source_line(resolved.begin.line);
        let width = if resolved.end.line == resolved.begin.line {
            resolved.end.column.saturating_sub(resolved.begin.column)
        } else {
            first_line
                .chars()
                .count()
                .saturating_sub(resolved.begin.column)
        };
        // Positions in the file as written, not as `while_loops` rewrote it.
        let (line, col) =
            crate::while_loops::original(&span.file, resolved.begin.line, resolved.begin.column);
        Location {
            file: span.filename().to_owned(),
            line: line + 1,
            col: col + 1,
            width: width.max(1),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// `file:line:col` in human-readable formats (the JSON of `loop graph`); every
/// field, the span's width included, in binary ones (evaluation results passed
/// between processes).
impl Serialize for Location {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            (&self.file, self.line, self.col, self.width).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Location, D::Error> {
        if !d.is_human_readable() {
            let (file, line, col, width) = Deserialize::deserialize(d)?;
            return Ok(Location {
                file,
                line,
                col,
                width,
            });
        }
        let text = String::deserialize(d)?;
        let parsed = text.rsplitn(3, ':').collect::<Vec<_>>();
        match parsed[..] {
            [col, line, file] => Ok(Location {
                file: file.to_owned(),
                line: line.parse().map_err(serde::de::Error::custom)?,
                col: col.parse().map_err(serde::de::Error::custom)?,
                width: 1,
            }),
            _ => Err(serde::de::Error::custom(format!(
                "expected file:line:col, found {text:?}"
            ))),
        }
    }
}
