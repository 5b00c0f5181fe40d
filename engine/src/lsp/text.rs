//! Reading an editor buffer around the cursor without parsing it: buffers are
//! usually broken while being typed, so these helpers only look at characters.
//!
//! LSP positions count UTF-16 code units on a line; [`offset`] converts them.

/// The byte offset of an LSP position (line, UTF-16 column) in `text`, clamped
/// to the end of its line (or of the text).
pub fn offset(text: &str, line: u32, character: u32) -> usize {
    let mut start = 0;
    for _ in 0..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let mut units = 0;
    for (i, c) in text[start..end].char_indices() {
        if units >= character as usize {
            return start + i;
        }
        units += c.len_utf16();
    }
    end
}

/// The LSP position (line, UTF-16 column) of a byte offset.
pub fn position(text: &str, offset: usize) -> (u32, u32) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col: usize = before[line_start..].chars().map(char::len_utf16).sum();
    (line as u32, col as u32)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A string literal around the cursor: its contents and their byte range.
#[derive(Debug, PartialEq, Eq)]
pub struct StringAt {
    pub value: String,
    /// Byte range of the contents (inside the quotes) in the buffer.
    pub start: usize,
    pub end: usize,
}

/// The string literal the cursor is in (or just after its closing quote is
/// not counted), looking only at the cursor's line. An unterminated string
/// runs to the end of the line.
pub fn string_at(text: &str, cursor: usize) -> Option<StringAt> {
    let cursor = floor_char_boundary(text, cursor.min(text.len()));
    let line_start = text[..cursor].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[cursor..].find('\n').map_or(text.len(), |i| cursor + i);
    let line = &text[line_start..line_end];
    let mut quote: Option<(char, usize)> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        let at = line_start + i;
        match quote {
            None if c == '#' => return None,
            None if c == '"' || c == '\'' => quote = Some((c, at + 1)),
            None => {}
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some((q, start)) if c == q => {
                if (start..=at).contains(&cursor) {
                    return Some(StringAt {
                        value: text[start..at].to_owned(),
                        start,
                        end: at,
                    });
                }
                quote = None;
            }
            Some(_) => {}
        }
        if at >= cursor && quote.is_none() {
            return None;
        }
    }
    quote
        .filter(|(_, start)| *start <= cursor)
        .map(|(_, start)| StringAt {
            value: text[start..line_end].to_owned(),
            start,
            end: line_end,
        })
}

/// The keyword argument whose list the byte offset is in (`resource_deps` in
/// `resource_deps=["a", "|`), found by walking back to the innermost open `[`.
pub fn list_argument(text: &str, at: usize) -> Option<&str> {
    let at = floor_char_boundary(text, at.min(text.len()));
    let mut depth = 0usize;
    let mut open = None;
    for (i, c) in text[..at].char_indices().rev() {
        match c {
            ']' => depth += 1,
            '[' if depth == 0 => {
                open = Some(i);
                break;
            }
            '[' => depth -= 1,
            '(' | ')' if depth == 0 => return None,
            _ => {}
        }
    }
    let before = text[..open?].trim_end().strip_suffix('=')?.trim_end();
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let name = &before[start..];
    (!name.is_empty()).then_some(name)
}

/// The arguments that hold resource names.
pub const RESOURCE_LISTS: &[&str] = &["resource_deps", "data_deps"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_positions_round_trip() {
        let text = "ab\nçd\n";
        assert_eq!(offset(text, 1, 1), 5);
        assert_eq!(offset(text, 1, 99), 6);
        assert_eq!(offset(text, 9, 0), text.len());
        assert_eq!(position(text, 5), (1, 1));
    }

    #[test]
    fn finds_the_string_under_the_cursor() {
        let text = "x(\"ab\", 'cd')";
        let s = string_at(text, 4).unwrap();
        assert_eq!((s.value.as_str(), s.start, s.end), ("ab", 3, 5));
        assert_eq!(string_at(text, 1), None);
        assert_eq!(string_at(text, 10).unwrap().value, "cd");
        assert_eq!(string_at("f(\"op", 5).unwrap().value, "op");
        assert_eq!(string_at("# \"no\"", 3), None);
    }

    #[test]
    fn names_the_list_argument() {
        let text = "local_resource('a', resource_deps = ['b', '";
        assert_eq!(list_argument(text, text.len()), Some("resource_deps"));
        let text = "f(data_deps=[x[0], '";
        assert_eq!(list_argument(text, text.len()), Some("data_deps"));
        assert_eq!(list_argument("f('", 3), None);
        assert_eq!(list_argument("[", 1), None);
    }
}
