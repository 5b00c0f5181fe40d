//! Tabs in a source text, made acceptable to the parser. Tilt's Starlark (Go)
//! accepts a tab wherever it accepts a space: in indentation a tab advances to
//! the next multiple of 8 columns, elsewhere it separates tokens. The parser we
//! use rejects every tab outside a string, so a Tiltfile indented with tabs, or
//! with a tab inside a bracketed list, would not run unchanged.
//!
//! Before parsing, each tab outside a string literal becomes spaces: up to the
//! next multiple of 8 in the indentation of a line that starts a statement, one
//! space anywhere else (where the amount of white space does not matter). Tabs
//! inside strings are kept, so values do not change; only the columns of a line
//! indented with tabs shift in diagnostics. The scan knows strings (single,
//! double, triple-quoted, with escapes) and comments, as `nesting` does.

/// The text with its tabs outside strings replaced, or `None` when it has none.
pub fn expand(source: &str) -> Option<String> {
    if !source.contains('\t') {
        return None;
    }
    let mut out = String::with_capacity(source.len() + 64);
    let mut chars = source.chars().peekable();
    let mut depth = 0usize;
    // In the indentation of a line that starts a statement, and its width so far.
    let mut indenting = true;
    let mut width = 0usize;
    let mut changed = false;
    while let Some(c) = chars.next() {
        if indenting {
            match c {
                ' ' => {
                    width += 1;
                    out.push(c);
                    continue;
                }
                '\t' => {
                    let to = width + 8 - width % 8;
                    out.extend(std::iter::repeat_n(' ', to - width));
                    width = to;
                    changed = true;
                    continue;
                }
                _ => indenting = false,
            }
        }
        match c {
            '\t' => {
                out.push(' ');
                changed = true;
            }
            '\n' => {
                out.push(c);
                indenting = depth == 0;
                width = 0;
            }
            '\\' if chars.peek() == Some(&'\n') => {
                // A continued line: its leading white space is not indentation.
                out.push(c);
                out.push(chars.next().unwrap_or('\n'));
            }
            '#' => {
                out.push(c);
                while let Some(&n) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                    out.push(if n == '\t' { ' ' } else { n });
                    changed |= n == '\t';
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                out.push(c);
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                out.push(c);
            }
            '"' | '\'' => {
                out.push(c);
                let triple = {
                    let mut ahead = chars.clone();
                    ahead.next() == Some(c) && ahead.next() == Some(c)
                };
                if triple {
                    out.push(chars.next().unwrap_or(c));
                    out.push(chars.next().unwrap_or(c));
                }
                let mut quotes = 0;
                while let Some(s) = chars.next() {
                    out.push(s);
                    match s {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                out.push(escaped);
                            }
                            quotes = 0;
                        }
                        '\n' if !triple => break,
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
            _ => out.push(c),
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn indentation_tabs_advance_to_multiples_of_eight() {
        let src = "def f():\n\tif x:\n\t\treturn 1\n  \treturn 2\n";
        assert_eq!(
            expand(src).unwrap(),
            "def f():\n        if x:\n                return 1\n        return 2\n"
        );
    }

    #[test]
    fn tabs_between_tokens_and_in_brackets_become_one_space() {
        let src = "x = [\n\t'a',\n\t'b',\n]\ny =\t1 #\tnote\n";
        assert_eq!(
            expand(src).unwrap(),
            "x = [\n 'a',\n 'b',\n]\ny = 1 # note\n"
        );
    }

    #[test]
    fn tabs_in_strings_are_kept() {
        assert_eq!(expand("x = 'a\\tb'\n"), None);
        let src = "x = \"a\tb\" + '''\n\tc\n''' + 'it\\'s\t'\n";
        assert_eq!(expand(src), None);
        let src = "x = \"a\tb\"\n\ty = 1\n";
        assert_eq!(expand(src).unwrap(), "x = \"a\tb\"\n        y = 1\n");
        // A quote inside a comment starts no string.
        let src = "# don't\n\tx = 1\n";
        assert_eq!(expand(src).unwrap(), "# don't\n        x = 1\n");
    }
}
