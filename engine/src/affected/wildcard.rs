//! A matcher for the common glob shapes that needs no compilation.
//!
//! Compiling a glob with globset builds a regex, about 100 µs each: a second for
//! 10,000 resources. Most `deps` globs use only `*`, `?` and whole-component `**`
//! (`svc/src/**/*.py`), which this matcher handles directly, agreeing with globset
//! under `literal_separator(true)`: `*` and `?` never match `/`; a leading `**/`
//! or an inner `/**/` matches zero or more folders; a trailing `/**` matches
//! everything below, but not the folder itself. Anything else (`[...]`, `{...}`,
//! `\` escapes, `**` inside a component) is left to globset.

/// A parsed glob over `/`-separated components.
#[derive(Clone, Debug)]
pub(super) struct Wildcard {
    segs: Box<[Seg]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    /// `**`: any number of components.
    AnyDepth,
    /// One component, possibly with `*` and `?`.
    Component(Box<str>),
}

impl Wildcard {
    /// Parses a relative glob, or returns `None` when it needs globset.
    pub(super) fn new(glob: &str) -> Option<Wildcard> {
        if glob.is_empty() || glob.contains(['[', ']', '{', '}', '\\']) {
            return None;
        }
        let mut segs = Vec::new();
        for comp in glob.split('/') {
            let seg = match comp {
                "" => return None,
                "**" if segs.last() == Some(&Seg::AnyDepth) => return None,
                "**" => Seg::AnyDepth,
                _ if comp.contains("**") => return None,
                _ => Seg::Component(comp.into()),
            };
            segs.push(seg);
        }
        Some(Wildcard { segs: segs.into() })
    }

    /// Whether the `/`-separated relative path `rest` matches; `""` has no components.
    pub(super) fn is_match(&self, rest: &str) -> bool {
        match_from(&self.segs, rest)
    }
}

fn match_from(segs: &[Seg], rest: &str) -> bool {
    let Some((first, more)) = segs.split_first() else {
        return rest.is_empty();
    };
    match first {
        Seg::AnyDepth if more.is_empty() => !rest.is_empty(),
        Seg::AnyDepth => {
            let mut rest = rest;
            loop {
                if match_from(more, rest) {
                    return true;
                }
                if rest.is_empty() {
                    return false;
                }
                rest = rest.split_once('/').map_or("", |(_, tail)| tail);
            }
        }
        Seg::Component(pattern) => {
            if rest.is_empty() {
                return false;
            }
            let (comp, tail) = rest.split_once('/').unwrap_or((rest, ""));
            component_match(pattern.as_bytes(), comp.as_bytes()) && match_from(more, tail)
        }
    }
}

/// `*` and `?` matching within one component (UTF-8 bytes, `?` is one character).
fn component_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen, and where in `text` its match currently ends.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                t += char_len(text[t]);
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    let star_t = star_t + char_len(text[star_t]);
                    star = Some((star_p, star_t));
                    p = star_p + 1;
                    t = star_t;
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// The length of the UTF-8 sequence that starts with `lead`.
fn char_len(lead: u8) -> usize {
    match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_globset() {
        let globs = [
            "*",
            "*.py",
            "a*b",
            "?",
            "??.rs",
            "*.?s",
            "**",
            "**/*.py",
            "**/x",
            "src/**",
            "src/**/*.py",
            "a/**/b/**/c",
            "*/*",
            "src/*",
            "x*y*z",
            "é?",
            "?é*",
        ];
        let paths = [
            "",
            "a",
            "ab",
            "axb",
            "a/b",
            "main.py",
            "main.pyc",
            "src",
            "src/main.py",
            "src/pkg/mod.py",
            "src/pkg/deep/mod.py",
            "x",
            "d/x",
            "d/e/x",
            "x/d",
            "ab.rs",
            "abc.rs",
            "a.js",
            "a/b/c",
            "a/x/b/c",
            "a/b/y/z/c",
            "a/c",
            "xyz",
            "xaybz",
            "xzy",
            "éa",
            "aé",
            "aéb",
            "src/.hidden",
            ".py",
        ];
        for glob in globs {
            let wildcard = Wildcard::new(glob).expect(glob);
            let reference = globset::GlobBuilder::new(glob)
                .literal_separator(true)
                .build()
                .unwrap()
                .compile_matcher();
            for path in paths.iter().filter(|p| !p.is_empty()) {
                assert_eq!(
                    wildcard.is_match(path),
                    reference.is_match(path),
                    "glob {glob:?} on {path:?}"
                );
            }
        }
    }

    #[test]
    fn trailing_any_depth_needs_a_component() {
        assert!(!Wildcard::new("**").unwrap().is_match(""));
        assert!(Wildcard::new("**/*.py").unwrap().is_match("a.py"));
    }

    #[test]
    fn leaves_other_syntax_to_globset() {
        for glob in ["[ab]", "{a,b}", "a\\*", "a**", "**/**", "a//b", "x}"] {
            assert!(Wildcard::new(glob).is_none(), "{glob}");
        }
    }
}
