//! Source locations: where in which file something was declared.

use std::fmt;

use serde::{Serialize, Serializer};
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
        Location {
            file: span.filename().to_owned(),
            line: resolved.begin.line + 1,
            col: resolved.begin.column + 1,
            width: width.max(1),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

impl Serialize for Location {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
