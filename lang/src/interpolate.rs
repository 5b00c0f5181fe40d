//! `$NAME` and `${NAME...}` in a text, expanded as Docker expands ARGs in
//! `FROM` lines and Docker Compose expands variables in its files.

/// `text` with its variables replaced by `lookup`'s values:
///
/// * `$NAME`, `${NAME}`: the value, empty when unset;
/// * `${NAME:-word}` / `${NAME-word}`: `word` when unset or empty / unset;
/// * `${NAME:+word}` / `${NAME+word}`: `word` when set and not empty / set;
/// * `${NAME:?message}` / `${NAME?message}`: the value (Compose would stop);
/// * `$$`: a `$`.
///
/// `word` may hold variables itself (up to [`MAX_DEPTH`] levels; deeper ones
/// stay as written). A `$` that starts none of these stays.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    expand_at(text, lookup, 0)
}

/// How deep variables may nest in defaults (`${A:-${B:-...}}`).
pub const MAX_DEPTH: usize = 16;

fn expand_at(text: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(braced) = rest.strip_prefix('{') {
            let Some(close) = closing_brace(braced) else {
                out.push('$');
                continue;
            };
            out.push_str(&braced_value(&braced[..close], lookup, depth));
            rest = &braced[close + 1..];
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end == 0 {
                out.push('$');
                continue;
            }
            out.push_str(&lookup(&rest[..end]).unwrap_or_default());
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// The value of `${inner}`.
fn braced_value(inner: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize) -> String {
    let name_end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, modifier) = inner.split_at(name_end);
    let value = lookup(name);
    let (colon, modifier) = match modifier.strip_prefix(':') {
        Some(m) => (true, m),
        None => (false, modifier),
    };
    // With a colon, an empty value counts as unset.
    let set = value.as_deref().is_some_and(|v| !colon || !v.is_empty());
    let mut chars = modifier.chars();
    let op = chars.next();
    let word = chars.as_str();
    match op {
        Some('-') if !set => expand_at(word, lookup, depth + 1),
        Some('+') if set => expand_at(word, lookup, depth + 1),
        Some('+') => String::new(),
        _ => value.unwrap_or_default(),
    }
}

/// Where the `}` closing a `${` is, with nested `${...}` skipped (a lone `{`
/// is text).
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match c {
            '{' if previous == '$' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
        previous = c;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_docker_and_compose() {
        let vars = |name: &str| match name {
            "REG" => Some("r.io".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let x = |text: &str| expand(text, &vars);
        assert_eq!(x("$REG/app:${TAG}"), "r.io/app:");
        assert_eq!(x("${TAG:-dev} ${EMPTY:-e} ${EMPTY-e} ${TAG-u}"), "dev e  u");
        assert_eq!(
            x("${REG:+set} ${EMPTY:+x} ${EMPTY+set} ${TAG+x}."),
            "set  set ."
        );
        assert_eq!(x("${TAG:-${REG}/x}"), "r.io/x");
        assert_eq!(x("${REG:?need it} $$REG a$ ${open"), "r.io $REG a$ ${open");
        assert_eq!(x("${TAG:-a{b}"), "a{b");
        let deep = "${A:-".repeat(100) + "x" + &"}".repeat(100);
        assert!(x(&deep).starts_with("${A:-"), "nesting is bounded");
    }
}
