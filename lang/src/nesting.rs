//! The nesting of brackets and indented blocks in a source text, read before it is
//! parsed. The parser and the compiler recurse once per level, so a hostile file
//! (50,000 nested brackets, 3,000 nested `if`s) would exhaust any stack; this scan
//! is a loop, and turns such a file into an error at the place it goes too deep.
//! It also finds the bracket a file never closes, which the parser reports only as
//! an unexpected end past the last line.
//!
//! The scan knows just enough of the lexical syntax to skip strings (single,
//! double, triple-quoted, with escapes) and comments.

/// The deepest bracket nesting a Loopfile may use.
pub const MAX_BRACKET_DEPTH: usize = 1_000;
/// The deepest block nesting (indented `if`/`for`/`def` bodies) a Loopfile may use.
pub const MAX_BLOCK_DEPTH: usize = 100;

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

/// What the scan found wrong.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// Brackets nested deeper than [`MAX_BRACKET_DEPTH`]; the position of the one too many.
    BracketsTooDeep(Position),
    /// Blocks nested deeper than [`MAX_BLOCK_DEPTH`]; the first line too deep.
    BlocksTooDeep(Position),
}

impl Problem {
    /// The message, with the limit and what to do.
    pub fn message(&self) -> String {
        match self {
            Problem::BracketsTooDeep(_) => format!(
                "brackets nested more than {MAX_BRACKET_DEPTH} deep; split the expression into named parts"
            ),
            Problem::BlocksTooDeep(_) => format!(
                "blocks nested more than {MAX_BLOCK_DEPTH} deep; move inner blocks into functions"
            ),
        }
    }

    pub fn position(&self) -> Position {
        match self {
            Problem::BracketsTooDeep(p) | Problem::BlocksTooDeep(p) => *p,
        }
    }
}

/// Checks that the text nests no deeper than the limits.
pub fn check(source: &str) -> Result<(), Problem> {
    scan(source).map(|_| ())
}

/// The innermost bracket that is still open at the end of the text, and which it is.
pub fn unclosed_bracket(source: &str) -> Option<(Position, char)> {
    scan(source).ok().and_then(|open| open.last().copied())
}

/// Walks the text once; returns the brackets left open at its end.
fn scan(source: &str) -> Result<Vec<(Position, char)>, Problem> {
    let mut open: Vec<(Position, char)> = Vec::new();
    let mut indents: Vec<usize> = vec![0];
    let mut chars = source.chars().peekable();
    let (mut line, mut col) = (1usize, 0usize);
    let mut at_line_start = true;
    let mut indent = 0usize;
    while let Some(c) = chars.next() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            at_line_start = open.is_empty();
            indent = 0;
            continue;
        }
        if at_line_start {
            match c {
                ' ' => {
                    indent += 1;
                    continue;
                }
                '\t' => {
                    indent += 8 - indent % 8;
                    continue;
                }
                '#' | '\r' => {}
                _ => {
                    at_line_start = false;
                    while indents.last().is_some_and(|&top| indent < top) {
                        indents.pop();
                    }
                    if indents.last().is_some_and(|&top| indent > top) {
                        indents.push(indent);
                        if indents.len() > MAX_BLOCK_DEPTH + 1 {
                            return Err(Problem::BlocksTooDeep(Position { line, col }));
                        }
                    }
                }
            }
        }
        match c {
            '#' => {
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                line += 1;
                col = 0;
            }
            '(' | '[' | '{' => {
                open.push((Position { line, col }, c));
                if open.len() > MAX_BRACKET_DEPTH {
                    return Err(Problem::BracketsTooDeep(Position { line, col }));
                }
            }
            ')' | ']' | '}' => {
                open.pop();
            }
            '"' | '\'' => {
                let triple = {
                    let mut ahead = chars.clone();
                    ahead.next() == Some(c) && ahead.next() == Some(c)
                };
                if triple {
                    chars.next();
                    chars.next();
                    col += 2;
                }
                let mut quotes = 0;
                while let Some(s) = chars.next() {
                    col += 1;
                    match s {
                        '\\' => {
                            if chars.next() == Some('\n') {
                                line += 1;
                                col = 0;
                            } else {
                                col += 1;
                            }
                            quotes = 0;
                        }
                        '\n' => {
                            line += 1;
                            col = 0;
                            quotes = 0;
                            if !triple {
                                break;
                            }
                        }
                        s if s == c => {
                            quotes += 1;
                            if !triple || quotes == 3 {
                                break;
                            }
                        }
                        _ => quotes = 0,
                    }
                }
            }
            _ => {}
        }
    }
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: usize, col: usize) -> Position {
        Position { line, col }
    }

    #[test]
    fn finds_the_bracket_never_closed() {
        let src = "local_resource(\"a\", cmd=\"true\")\nx = foo(1,\n  [2, 3],\n";
        assert_eq!(unclosed_bracket(src), Some((pos(2, 8), '(')));
        assert_eq!(unclosed_bracket("f(g(1)\n"), Some((pos(1, 2), '(')));
        assert_eq!(unclosed_bracket("x = [1, 2]\n"), None);
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let src = "x = \"(\" + '[' # {\ny = \"\"\"\n(\n\"\"\" + r'\\''\nz = (1)\n";
        assert_eq!(unclosed_bracket(src), None);
        assert_eq!(check(src), Ok(()));
    }

    #[test]
    fn deep_brackets_and_blocks_are_problems_at_their_place() {
        let deep = format!("x = {}{}\n", "[".repeat(2_000), "]".repeat(2_000));
        assert_eq!(
            check(&deep),
            Err(Problem::BracketsTooDeep(pos(1, 5 + MAX_BRACKET_DEPTH)))
        );
        let ok = format!("x = {}{}\n", "(".repeat(200), ")".repeat(200));
        assert_eq!(check(&ok), Ok(()));
        let blocks: String = (0..150)
            .map(|i| format!("{}if True:\n", "  ".repeat(i)))
            .collect();
        assert_eq!(
            check(&blocks),
            Err(Problem::BlocksTooDeep(pos(
                MAX_BLOCK_DEPTH + 2,
                2 * MAX_BLOCK_DEPTH + 3
            )))
        );
        // Dedenting and continuation lines inside brackets are not blocks.
        let fine = "def f():\n    if x:\n        y = [\n                1]\n    return 1\nz = 2\n";
        assert_eq!(check(fine), Ok(()));
    }
}
