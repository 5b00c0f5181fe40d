//! `while` loops. Tilt's Starlark (Go) has them and extensions use them
//! (ext://helm_remote walks up to the root folder with `while current != '/':`);
//! the parser we use reserves the keyword. Before parsing, each loop becomes a
//! `for` over an endless iterable whose first statement leaves when the
//! condition is false:
//!
//! ```text
//! while COND:              for _while_ in __forever__:
//!     BODY           →         if not (COND): break
//!                              BODY
//! ```
//!
//! `break`, `continue` and `return` keep their meaning, and a loop that never
//! ends is stopped by the evaluation's step budget (`limits`) like any other.
//! The inserted `for` line shifts the lines below it, so the rewrite keeps a
//! [`LineMap`] from its lines back to the file's, and [`original`] (used by
//! every conversion of a span to a [`crate::Location`]) reports positions in
//! the file as written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use allocative::Allocative;
use starlark::codemap::CodeMap;
use starlark::starlark_simple_value;
use starlark::values::{
    Heap, NoSerialize, ProvidesStaticType, StarlarkPagable, StarlarkValue, Value,
};
use starlark_derive::starlark_value;
use starlark_syntax::lexer::{Lexer, Token};

/// The global the rewritten loops iterate over.
pub const FOREVER: &str = "__forever__";
/// What a `while` header's line starts with once rewritten.
const FOR_HEADER: &str = "for _while_ in __forever__:";
/// Line maps kept for the conversion of spans (one per parsed rewritten text;
/// an evaluation runs in a process of its own).
const KEPT: usize = 64;

/// An iterable without end: the loop of a rewritten `while`.
#[derive(Debug, ProvidesStaticType, NoSerialize, StarlarkPagable, Allocative)]
pub struct Forever;

starlark_simple_value!(Forever);

impl std::fmt::Display for Forever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("forever")
    }
}

#[starlark_value(type = "forever")]
impl<'v> StarlarkValue<'v> for Forever {
    unsafe fn iterate(&self, me: Value<'v>, _heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        Ok(me)
    }

    unsafe fn iter_next(&self, _index: usize, _heap: Heap<'v>) -> Option<Value<'v>> {
        Some(Value::new_none())
    }

    unsafe fn iter_stop(&self) {}
}

/// Where each line of a rewritten text came from.
#[derive(Debug, PartialEq, Eq)]
pub struct LineMap {
    /// For each line of the rewritten text (0-based), the line it stands for.
    lines: Vec<u32>,
    /// Lines whose columns moved: (rewritten line, rewritten column from which
    /// the text is the file's, that text's column in the file).
    shifts: Vec<(u32, u32, u32)>,
}

impl LineMap {
    /// The file's 0-based (line, column) of a rewritten text's.
    pub fn original(&self, line: usize, col: usize) -> (usize, usize) {
        let at = self.lines.get(line).or(self.lines.last()).copied();
        let orig_line = at.map_or(line, |l| l as usize);
        let col = match self.shifts.iter().find(|s| s.0 as usize == line) {
            Some(&(_, from, to)) => (col + to as usize).saturating_sub(from as usize),
            None => col,
        };
        (orig_line, col)
    }
}

/// A text with its `while` loops rewritten.
#[derive(Debug)]
pub struct Rewritten {
    pub text: String,
    pub map: LineMap,
}

/// The text with its `while` loops rewritten, or `None` when it has none (or
/// does not lex, in which case the parser reports the error as written).
pub fn rewrite(source: &str) -> Option<Rewritten> {
    let tokens = tokens(source)?;
    let mut out = Emitter::default();
    let mut copied = 0;
    for i in keywords(source, &tokens) {
        let end = &tokens[i].2;
        let Some(header) = Header::find(source, &tokens, i) else {
            continue;
        };
        out.copy(&source[copied..header.line_start]);
        out.insert(&format!("{}{FOR_HEADER}", " ".repeat(header.indent)));
        out.end_inserted_line();
        let check = " ".repeat(header.body_indent) + "if not (";
        out.shift(check.len(), *end - header.line_start);
        out.insert(&check);
        out.copy(&source[*end..header.colon]);
        out.insert("): break");
        copied = header.colon + 1;
        if let Some(suite) = header.suite {
            // `while c: a; b`: the statements go on a line of their own (after
            // the lines a `\` continuation skips, if any).
            out.end_inserted_line();
            out.skip(&source[header.colon + 1..suite]);
            out.shift(header.body_indent, column(source, suite));
            out.insert(&" ".repeat(header.body_indent));
            copied = suite;
        }
    }
    if copied == 0 {
        return None;
    }
    out.copy(&source[copied..]);
    Some(out.finish())
}

/// The text as the editor support parses it: each `while` keyword becomes
/// `for _ in`, which keeps every line and the columns of every other line (a
/// loop over the condition, so that `break` and `continue` parse), or `None`
/// when there is none. For finding names, not for running.
pub fn for_editors(source: &str) -> Option<String> {
    let tokens = tokens(source)?;
    let mut out = String::with_capacity(source.len() + 16);
    let mut copied = 0;
    for i in keywords(source, &tokens) {
        let (start, _, end) = &tokens[i];
        out.push_str(&source[copied..*start]);
        out.push_str("for _ in");
        copied = *end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&source[copied..]);
    Some(out)
}

/// The tokens of `source` without comments, a `while` keyword among them (the
/// lexer reports a reserved keyword as an error), or `None` when it has no
/// `while` or does not lex (the parser then reports the error as written).
fn tokens(source: &str) -> Option<Vec<(usize, Token, usize)>> {
    if !source.contains("while") {
        return None;
    }
    let codemap = CodeMap::new(String::new(), source.to_owned());
    // (The lexer reads the same text whatever the dialect.)
    Lexer::new(
        source,
        &starlark_syntax::dialect::Dialect::Extended,
        codemap,
    )
    .filter(|t| !matches!(t, Ok((_, Token::Comment(_), _))))
    .map(|lexeme| match lexeme {
        Ok(token) => Some(token),
        Err(err) => {
            let span = err.into_error().span()?.span;
            let (start, end) = (span.begin().get() as usize, span.end().get() as usize);
            (source.get(start..end) == Some("while")).then_some((start, Token::Reserved, end))
        }
    })
    .collect()
}

/// The indexes of the `while` keywords that start a statement.
fn keywords(source: &str, tokens: &[(usize, Token, usize)]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut statement_start = true;
    for (i, (start, token, end)) in tokens.iter().enumerate() {
        let at_start = statement_start;
        statement_start = matches!(token, Token::Newline | Token::Indent | Token::Dedent);
        if at_start && matches!(token, Token::Reserved) && &source[*start..*end] == "while" {
            found.push(i);
        }
    }
    found
}

/// The parts of a `while` header.
struct Header {
    /// Where the header's line starts.
    line_start: usize,
    indent: usize,
    /// The `:` ending the condition.
    colon: usize,
    /// Where statements on the header's own line start, if any.
    suite: Option<usize>,
    /// The indentation of the loop's body (rewritten).
    body_indent: usize,
}

impl Header {
    fn find(source: &str, tokens: &[(usize, Token, usize)], at: usize) -> Option<Header> {
        let start = tokens[at].0;
        let line_start = source[..start].rfind('\n').map_or(0, |n| n + 1);
        let indent = start - line_start;
        let mut depth = 0i32;
        let mut colon = None;
        for (i, (pos, token, _)) in tokens.iter().enumerate().skip(at + 1) {
            match token {
                Token::OpeningRound | Token::OpeningSquare | Token::OpeningCurly => depth += 1,
                Token::ClosingRound | Token::ClosingSquare | Token::ClosingCurly => depth -= 1,
                Token::Colon if depth == 0 => {
                    colon = Some((i, *pos));
                    break;
                }
                // `while a, b:` is no loop (a tuple would always be true).
                Token::Newline | Token::Comma if depth == 0 => return None,
                Token::Newline => return None,
                _ => {}
            }
        }
        let (i, colon) = colon?;
        let next = tokens.get(i + 1)?;
        if matches!(next.1, Token::Newline) {
            // The body's indentation: that of its first statement.
            let first = tokens[i + 2..]
                .iter()
                .find(|t| !matches!(t.1, Token::Indent | Token::Dedent | Token::Newline))?;
            Some(Header {
                line_start,
                indent,
                colon,
                suite: None,
                body_indent: column(source, first.0),
            })
        } else {
            Some(Header {
                line_start,
                indent,
                colon,
                suite: Some(next.0),
                body_indent: indent + 1,
            })
        }
    }
}

/// The column (in characters, as the parser counts) of a position on its line.
fn column(source: &str, at: usize) -> usize {
    let line_start = source[..at].rfind('\n').map_or(0, |n| n + 1);
    source[line_start..at].chars().count()
}

/// Builds a rewritten text and its [`LineMap`].
#[derive(Default)]
struct Emitter {
    text: String,
    lines: Vec<u32>,
    shifts: Vec<(u32, u32, u32)>,
    /// The file's line that the text being written belongs to.
    line: u32,
}

impl Emitter {
    /// Text of the file, in order.
    fn copy(&mut self, text: &str) {
        for piece in text.split_inclusive('\n') {
            self.text.push_str(piece);
            if piece.ends_with('\n') {
                self.lines.push(self.line);
                self.line += 1;
            }
        }
    }

    /// Text of the rewrite, without line breaks.
    fn insert(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// A line break of the rewrite: the line it ends stands for the file's
    /// current line.
    fn end_inserted_line(&mut self) {
        self.text.push('\n');
        self.lines.push(self.line);
    }

    /// Text of the file left out: only its line breaks count.
    fn skip(&mut self, text: &str) {
        self.line += text.matches('\n').count() as u32;
    }

    /// From `from` on, the current line's columns are the file's from `to` on.
    fn shift(&mut self, from: usize, to: usize) {
        let line = self.lines.len() as u32;
        self.shifts.push((line, from as u32, to as u32));
    }

    fn finish(mut self) -> Rewritten {
        self.lines.push(self.line);
        Rewritten {
            text: self.text,
            map: LineMap {
                lines: self.lines,
                shifts: self.shifts,
            },
        }
    }
}

/// A parsed rewritten text: its map and the text as written. Holding the
/// `CodeMap` keeps it alive, so its identity is never another file's.
struct Entry {
    codemap: CodeMap,
    map: LineMap,
    written: Arc<str>,
}

/// The texts rewritten so far, newest last.
static ENTRIES: Mutex<Vec<Arc<Entry>>> = Mutex::new(Vec::new());
/// Whether any text was rewritten in this process (most never are).
static ANY: AtomicBool = AtomicBool::new(false);

/// Remembers the map of the rewritten text parsed into `codemap`, and the text
/// as `written`, for [`original`] and [`written`].
pub fn remember(codemap: CodeMap, map: LineMap, written: Arc<str>) {
    let mut entries = ENTRIES.lock().unwrap_or_else(|e| e.into_inner());
    if entries.len() >= KEPT {
        entries.remove(0);
    }
    entries.push(Arc::new(Entry {
        codemap,
        map,
        written,
    }));
    ANY.store(true, Ordering::Release);
}

/// The entry of a parsed text, when it is a rewritten one: a comparison of
/// identities, so that a location costs nothing more in a large file.
fn entry(file: &CodeMap) -> Option<Arc<Entry>> {
    if !ANY.load(Ordering::Acquire) {
        return None;
    }
    // Never waits: this may run while the evaluation is stopped from outside
    // (see `current`), perhaps in the middle of `remember`.
    let entries = ENTRIES.try_lock().ok()?;
    entries.iter().rev().find(|e| e.codemap == *file).cloned()
}

/// The file's 0-based (line, column) of a position in a parsed text, which
/// may be a rewritten one.
pub fn original(file: &CodeMap, line: usize, col: usize) -> (usize, usize) {
    match entry(file) {
        Some(entry) => entry.map.original(line, col),
        None => (line, col),
    }
}

/// The text of a parsed file as written.
pub fn written(file: &CodeMap) -> Arc<str> {
    match entry(file) {
        Some(entry) => entry.written.clone(),
        None => file.source().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(rewritten: &Rewritten) -> Vec<(usize, &str)> {
        rewritten
            .text
            .lines()
            .enumerate()
            .map(|(i, l)| (rewritten.map.original(i, 0).0 + 1, l))
            .collect()
    }

    #[test]
    fn a_loop_becomes_a_for_whose_first_statement_checks_the_condition() {
        let source = "x = 0\nwhile x < 3:  # count\n    x += 1\nprint(x)\n";
        let rewritten = rewrite(source).unwrap();
        assert_eq!(
            lines_of(&rewritten),
            vec![
                (1, "x = 0"),
                (2, "for _while_ in __forever__:"),
                (2, "    if not ( x < 3): break  # count"),
                (3, "    x += 1"),
                (4, "print(x)"),
            ]
        );
        // `x` of the condition is at column 6 of line 2 as written.
        let col = rewritten.text.lines().nth(2).unwrap().find('x').unwrap();
        assert_eq!(rewritten.map.original(2, col), (1, 6));
    }

    #[test]
    fn statements_on_the_header_line_get_a_line_of_their_own() {
        let source = "def f(n):\n    while (n >\n           0): n -= 1\n    return n\n";
        let rewritten = rewrite(source).unwrap();
        assert_eq!(
            lines_of(&rewritten),
            vec![
                (1, "def f(n):"),
                (2, "    for _while_ in __forever__:"),
                (2, "     if not ( (n >"),
                (3, "           0)): break"),
                (3, "     n -= 1"),
                (4, "    return n"),
            ]
        );
        let col = rewritten.text.lines().nth(4).unwrap().find('n').unwrap();
        assert_eq!(rewritten.map.original(4, col), (2, 15));
    }

    #[test]
    fn only_the_keyword_at_the_start_of_a_statement_is_a_loop() {
        assert!(rewrite("s = 'while x:'\n# while y:\nprint(s)\n").is_none());
        let nested = "while a:\n    while b:\n        pass\n";
        let text = rewrite(nested).unwrap().text;
        assert_eq!(text.matches(FOR_HEADER).count(), 2, "{text}");
        assert!(text.contains("        if not ( b): break\n"), "{text}");
    }

    #[test]
    fn editors_get_a_loop_over_the_condition_on_the_same_lines() {
        let text = for_editors("x = 3\nwhile x > 0:  # down\n    x -= 1\n    break\n").unwrap();
        assert_eq!(
            text,
            "x = 3\nfor _ in x > 0:  # down\n    x -= 1\n    break\n"
        );
        assert!(for_editors("s = 'while'\n").is_none());
    }

    #[test]
    fn a_header_without_a_colon_is_left_for_the_parser_to_report() {
        assert!(rewrite("while x\n    pass\n").is_none());
        assert!(rewrite("while a, b:\n    pass\n").is_none());
    }

    #[test]
    fn a_continued_header_line_and_wide_characters_keep_positions() {
        let source = "s = 'é'\nwhile s != 'é日': \\\n    s = 'x'\nfail(s)\n";
        let rewritten = rewrite(source).unwrap();
        let lines = lines_of(&rewritten);
        assert_eq!(lines.last().unwrap(), &(4, "fail(s)"), "{lines:?}");
        let suite = lines
            .iter()
            .position(|(_, l)| l.trim() == "s = 'x'")
            .unwrap();
        assert_eq!(lines[suite].0, 3, "{lines:?}");
        let col = rewritten
            .text
            .lines()
            .nth(suite)
            .unwrap()
            .find('s')
            .unwrap();
        assert_eq!(rewritten.map.original(suite, col), (2, 4));
    }
}
