//! The layering of the sources, checked on the sources themselves: within each
//! crate no two files import each other, directly or round a circle (a child
//! module naming its parent, `super::`, does not count: that is how Rust nests),
//! and the services below the engine (`image/`, `k8s/`, `watch/`) never import
//! from `run/`, the engine above them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;
use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// The module path of every `.rs` file under `src` (`run/process`; `` for lib.rs).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut name = rel.to_string_lossy().replace('\\', "/");
                if name == "lib" || name == "main" {
                    name.clear();
                } else if let Some(parent) = name.strip_suffix("/mod") {
                    name = parent.to_owned();
                }
                out.insert(name, path);
            }
        }
    }
    out
}

fn is_punct(t: Option<&TokenTree>, c: char) -> bool {
    matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

fn ident(t: Option<&TokenTree>) -> Option<String> {
    match t {
        Some(TokenTree::Ident(i)) => Some(i.to_string()),
        _ => None,
    }
}

/// Whether `#` at `i` starts `#[cfg(test)]`.
fn cfg_test(tokens: &[TokenTree], i: usize) -> bool {
    let Some(TokenTree::Group(g)) = tokens.get(i + 1) else {
        return false;
    };
    let inner: Vec<TokenTree> = g.stream().into_iter().collect();
    g.delimiter() == Delimiter::Bracket
        && ident(inner.first()).as_deref() == Some("cfg")
        && matches!(inner.get(1), Some(TokenTree::Group(a)) if a.stream().to_string() == "test")
}

/// Every `crate::`/`super::`/`self::` path in `stream` outside `#[cfg(test)]`
/// items, with `use` trees (`a::{b, c::d}`) expanded. Comments are not tokens.
fn paths(stream: TokenStream, out: &mut Vec<Vec<String>>) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Punct(p) if p.as_char() == '#' && cfg_test(&tokens, i) => {
                // Skip the attribute and the item: up to its body or its `;`.
                i += 2;
                while i < tokens.len() {
                    let end = is_punct(tokens.get(i), ';')
                        || matches!(&tokens[i], TokenTree::Group(g) if g.delimiter() == Delimiter::Brace);
                    i += 1;
                    if end {
                        break;
                    }
                }
                continue;
            }
            TokenTree::Ident(id)
                if ["crate", "super", "self"].contains(&id.to_string().as_str())
                    && is_punct(tokens.get(i + 1), ':') =>
            {
                i = tree(&tokens, i, &[], out);
                continue;
            }
            // `use child::Item`: relative to this module (an external crate's
            // name resolves to no file of this crate and is dropped later).
            TokenTree::Ident(id)
                if id == "use"
                    && ident(tokens.get(i + 1))
                        .is_some_and(|n| !["crate", "super", "self"].contains(&n.as_str())) =>
            {
                i = tree(&tokens, i + 1, &["self".to_owned()], out);
                continue;
            }
            TokenTree::Group(g) => paths(g.stream(), out),
            _ => {}
        }
        i += 1;
    }
}

/// Reads the path (or `use` tree) starting at `i` under `prefix`; returns where it ends.
fn tree(
    tokens: &[TokenTree],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix.to_vec();
    while let Some(segment) = ident(tokens.get(i)) {
        path.push(segment);
        i += 1;
        if !(is_punct(tokens.get(i), ':') && is_punct(tokens.get(i + 1), ':')) {
            break;
        }
        i += 2;
        if let Some(TokenTree::Group(g)) = tokens.get(i) {
            if g.delimiter() == Delimiter::Brace {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                for item in inner.split(|t| is_punct(Some(t), ',')) {
                    if !item.is_empty() {
                        tree(item, 0, &path, out);
                    }
                }
                return i + 1;
            }
        }
    }
    out.push(path);
    i
}

/// The `pub use` paths of `stream`'s top level: the names a module re-exports.
fn reexported(stream: TokenStream) -> Vec<Vec<String>> {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut out = Vec::new();
    for i in 0..tokens.len() {
        if ident(tokens.get(i)).as_deref() != Some("pub") {
            continue;
        }
        // `pub use` or `pub(crate) use`.
        let at = match tokens.get(i + 1) {
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => i + 2,
            _ => i + 1,
        };
        if ident(tokens.get(at)).as_deref() == Some("use") {
            let prefix = match ident(tokens.get(at + 1)).as_deref() {
                Some("crate" | "super" | "self") => Vec::new(),
                _ => vec!["self".to_owned()],
            };
            tree(&tokens, at + 1, &prefix, &mut out);
        }
    }
    out
}

/// The file a path names, seen from module `own`, and the segments after it.
fn resolve<'p>(
    own: &[String],
    path: &'p [String],
    modules: &BTreeMap<String, PathBuf>,
) -> Option<(String, &'p [String])> {
    let mut at = own.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            at.clear();
            rest = &rest[1..];
        }
        Some("super" | "self") => {
            while let Some(head) = rest.first() {
                match head.as_str() {
                    "super" => drop(at.pop()),
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    let rest: Vec<&String> = rest.iter().filter(|s| *s != "self").collect();
    // The longest prefix that is a file of this crate.
    (0..=rest.len()).rev().find_map(|n| {
        let mut module = at.clone();
        module.extend(rest[..n].iter().map(|s| (*s).clone()));
        let module = module.join("/");
        modules
            .contains_key(&module)
            .then(|| (module, &path[path.len() - (rest.len() - n)..]))
    })
}

fn segments(module: &str) -> Vec<String> {
    module
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The file-to-file imports of one crate, without child-to-ancestor edges. A
/// name a module re-exports (`pub use child::Name`) counts as an import of the
/// file that defines it, so a circle through a parent's re-export is found.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let mut found_in = BTreeMap::new();
    // Per module, the file each re-exported name comes from.
    let mut reexports: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (name, file) in &modules {
        if name.rsplit('/').next() == Some("tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let stream: TokenStream = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
        let own = segments(name);
        for path in reexported(stream.clone()) {
            if let (Some((target, _)), Some(item)) = (resolve(&own, &path, &modules), path.last()) {
                reexports
                    .entry(name.clone())
                    .or_default()
                    .insert(item.clone(), target);
            }
        }
        let mut found = Vec::new();
        paths(stream, &mut found);
        found_in.insert(name.clone(), found);
    }
    let mut out = BTreeMap::new();
    for (name, found) in found_in {
        let own = segments(&name);
        let mut deps = BTreeSet::new();
        for path in found {
            let Some((mut target, mut rest)) = resolve(&own, &path, &modules) else {
                continue;
            };
            // Follow re-exports to the defining file (a bounded walk: a
            // re-export may name its own module).
            for _ in 0..8 {
                let next = rest
                    .first()
                    .and_then(|item| reexports.get(&target)?.get(item))
                    .filter(|next| **next != target && **next != name);
                match next {
                    Some(next) => {
                        target = next.clone();
                        rest = &rest[1..];
                    }
                    None => break,
                }
            }
            let ancestor = target.is_empty() || name.starts_with(&format!("{target}/"));
            if target != name && !ancestor {
                deps.insert(target);
            }
        }
        out.insert(name, deps);
    }
    out
}

fn circles(imports: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<&str>> {
    let mut graph = DiGraphMap::<&str, ()>::new();
    for (from, tos) in imports {
        graph.add_node(from);
        for to in tos {
            graph.add_edge(from, to, ());
        }
    }
    let mut found: Vec<Vec<&str>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|mut c| {
            c.sort();
            c
        })
        .collect();
    found.sort();
    found
}

fn root() -> PathBuf {
    crate::support::repo()
}

#[test]
fn no_file_imports_round_a_circle() {
    let mut problems = Vec::new();
    for krate in ["engine/src", "lang/src", "stdlib/src"] {
        for circle in circles(&imports(&root().join(krate))) {
            problems.push(format!("{krate}: {}", circle.join(" <-> ")));
        }
    }
    assert!(
        problems.is_empty(),
        "import circles:\n{}",
        problems.join("\n")
    );
}

/// The imports from files under `lower` into `run/`.
fn upward(imports: &BTreeMap<String, BTreeSet<String>>, lower: &[&str]) -> Vec<String> {
    let top = |m: &str| m.split('/').next().unwrap_or("").to_owned();
    imports
        .iter()
        .filter(|(from, _)| lower.contains(&top(from).as_str()))
        .flat_map(|(from, tos)| {
            tos.iter()
                .filter(|to| top(to) == "run")
                .map(move |to| format!("{from} -> {to}"))
        })
        .collect()
}

#[test]
fn services_below_the_engine_never_import_it() {
    let imports = imports(&root().join("engine/src"));
    let lower = ["image", "k8s", "watch", "process", "live_update", "release"];
    let upward = upward(&imports, &lower);
    assert!(
        upward.is_empty(),
        "imports into run/:\n{}",
        upward.join("\n")
    );
}

/// The check itself: a circle and an upward import are found.
#[test]
fn the_check_finds_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let write = |p: &str, s: &str| {
        let p = dir.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    write("lib.rs", "mod a; mod b; mod run;");
    write("a.rs", "use crate::b::B; pub struct A;");
    write(
        "b.rs",
        "use super::{a::A, run::x}; pub struct B; #[cfg(test)] mod t { use crate::run::y; }",
    );
    write("run/mod.rs", "pub fn x() { super::a::A; }");
    let imports = imports(dir.path());
    assert_eq!(circles(&imports), vec![vec!["a", "b", "run"]]);
    assert_eq!(
        imports["b"],
        BTreeSet::from(["a".to_owned(), "run".to_owned()])
    );
    assert_eq!(imports["run"], BTreeSet::from(["a".to_owned()]));
    assert_eq!(upward(&imports, &["b"]), ["b -> run"]);
    assert!(upward(&imports, &["a"]).is_empty());
}

/// A circle through a parent's `pub use` is found: `img/build` imports
/// `crate::eng::run` and `eng/run` imports `crate::img::Built`, which the parent
/// `img` re-exports from `img/build`.
#[test]
fn the_check_follows_reexports() {
    let dir = tempfile::tempdir().unwrap();
    let write = |p: &str, s: &str| {
        let p = dir.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    write("lib.rs", "mod eng; mod img;");
    write("img/mod.rs", "mod build; pub use build::{Built, other};");
    write("img/build.rs", "use crate::eng::run; pub struct Built;");
    write("eng/mod.rs", "pub mod run;");
    write("eng/run.rs", "use crate::img::Built;");
    let imports = imports(dir.path());
    assert_eq!(imports["eng/run"], BTreeSet::from(["img/build".to_owned()]));
    assert_eq!(circles(&imports), vec![vec!["eng/run", "img/build"]]);
}
