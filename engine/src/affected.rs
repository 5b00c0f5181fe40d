//! Which resources a change to a file re-runs.
//!
//! A resource is *directly* affected by a changed path when one of its `deps`
//! matches the path, the path is not excluded by the resource's `ignore`, and the
//! path is not excluded by `watch_settings(ignore=...)`. A `deps` entry matches
//! when it is a plain path equal to the changed path or to one of its ancestor
//! folders, or when it is a glob (it contains one of `*?[{`) that matches the
//! path itself (`*` stays within one path component, `**` crosses them). An
//! image whose `deps` match (minus its `ignore`) affects every resource that
//! deploys it. The affected set is the directly affected resources plus their
//! downstream closure along data edges; ordering edges do not propagate.
//!
//! `ignore` patterns are gitignore-style: a resource's are relative to its `dir`
//! (the folder of its Loopfile) and never exclude paths outside that folder; an
//! image's are relative to its `context` (`docker_build`), else its
//! `command_dir` (`custom_build`); `watch_settings(ignore=...)` is relative to
//! the project root. Whether a changed path is a folder is not known, so a
//! folder-only pattern (`tmp/`) excludes what is inside the folder.
//!
//! All paths are root-relative with `/` separators, or absolute when outside the
//! project root; the changed paths given to [`AffectedIndex::affected`] too.
//!
//! Queries do not scan resources: plain entries are indexed by path and globs by
//! their literal leading folder, and a query looks up the changed path and each
//! of its ancestors. Globs made of `*`, `?` and `**` need no compilation (see
//! the `wildcard` module); others are compiled with globset on the first query
//! that reaches their folder.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use loop_lang::model::Manifest;
use loop_lang::{Diagnostic, Location};

use crate::graph::{Graph, Propagation};

mod wildcard;

use wildcard::Wildcard;

/// Who declared a `deps` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    /// Index into `manifest.resources` (and the graph).
    Resource(u32),
    /// Index into `manifest.images`.
    Image(u32),
}

/// The entries keyed by one path: plain entries for exactly that path, and globs
/// whose literal leading folder is that path.
#[derive(Default)]
struct Bucket {
    plain: Vec<Owner>,
    /// Globs that [`Wildcard`] handles, relative to the bucket's path.
    simple: Vec<(Wildcard, Owner)>,
    /// Other globs, whole, compiled into one set on first use.
    complex: Vec<(Glob, Owner)>,
    complex_set: OnceLock<Option<GlobSet>>,
}

impl Bucket {
    /// Appends to `out` the owners of entries matching `path`, which is `key` or
    /// inside it.
    fn matches(&self, key: &str, path: &str, out: &mut Vec<Owner>, hits: &mut Vec<usize>) {
        out.extend_from_slice(&self.plain);
        if let (false, Some(rest)) = (self.simple.is_empty(), relative_to(path, key)) {
            out.extend(
                self.simple
                    .iter()
                    .filter(|(w, _)| w.is_match(rest))
                    .map(|&(_, o)| o),
            );
        }
        if self.complex.is_empty() {
            return;
        }
        let set = self.complex_set.get_or_init(|| {
            let mut builder = GlobSetBuilder::new();
            for (glob, _) in &self.complex {
                builder.add(glob.clone());
            }
            // Every glob parsed; only a regex size limit can fail here.
            builder.build().ok()
        });
        if let Some(set) = set {
            set.matches_into(path, hits);
            out.extend(hits.iter().map(|&h| self.complex[h].1));
        }
    }
}

/// Gitignore-style patterns that apply below a folder.
struct Scoped {
    /// Normalized folder the patterns are relative to (`""` is the project root).
    dir: String,
    matcher: Gitignore,
}

impl Scoped {
    fn is_ignored(&self, path: &str) -> bool {
        match relative_to(path, &self.dir) {
            Some("") | None => false,
            Some(rel) => self
                .matcher
                .matched_path_or_any_parents(rel, false)
                .is_ignore(),
        }
    }
}

/// An index from changed paths to the resources they re-run.
pub struct AffectedIndex {
    buckets: HashMap<Box<str>, Bucket>,
    /// Per resource, its `ignore` patterns, when it has any.
    resource_ignores: Vec<Option<Scoped>>,
    /// Per image, its `ignore` patterns, when it has any.
    image_ignores: Vec<Option<Scoped>>,
    /// Per image, the resources that deploy it, in declaration order.
    image_users: Vec<Vec<u32>>,
    image_refs: Vec<String>,
    watch_ignore: Option<Scoped>,
    prop: Propagation,
}

impl AffectedIndex {
    /// Indexes the `deps` and `ignore` patterns of `manifest`, whose graph is
    /// `graph`. Fails, listing every bad pattern, when a glob or an ignore pattern
    /// does not parse.
    pub fn build(manifest: &Manifest, graph: &Graph) -> Result<AffectedIndex, PatternError> {
        let mut problems = Vec::new();
        let mut buckets: HashMap<Box<str>, Bucket> = HashMap::new();
        let mut add_dep =
            |entry: &str, owner: Owner, problems: &mut Vec<BadPattern>, site: &dyn Fn() -> Site| {
                let entry = normalize(entry);
                if !is_glob(entry) {
                    buckets.entry(entry.into()).or_default().plain.push(owner);
                    return;
                }
                let key = literal_dir(entry);
                if let Some(wildcard) = relative_to(entry, key).and_then(Wildcard::new) {
                    buckets
                        .entry(key.into())
                        .or_default()
                        .simple
                        .push((wildcard, owner));
                    return;
                }
                match GlobBuilder::new(entry).literal_separator(true).build() {
                    Ok(glob) => buckets
                        .entry(key.into())
                        .or_default()
                        .complex
                        .push((glob, owner)),
                    Err(err) => {
                        problems.push(site().bad(entry, PatternField::Deps, err.kind().to_string()))
                    }
                }
            };

        let mut resource_ignores = Vec::with_capacity(manifest.resources.len());
        for (i, r) in manifest.resources.iter().enumerate() {
            // Node indices equal declaration indices; a foreign graph is not trusted.
            let node = graph
                .index_of(&r.name)
                .filter(|&n| n == i)
                .map(|n| n as u32);
            let site = || Site::Resource(r.name.clone(), r.defined_at.clone());
            if let Some(node) = node {
                for dep in &r.deps {
                    add_dep(dep, Owner::Resource(node), &mut problems, &site);
                }
            }
            resource_ignores.push(scoped(&r.dir, &r.ignore, &mut problems, &|_| site()));
        }

        let mut image_ignores = Vec::with_capacity(manifest.images.len());
        let mut image_users = vec![Vec::new(); manifest.images.len()];
        let mut image_index: HashMap<&str, u32> = HashMap::new();
        for (k, image) in manifest.images.iter().enumerate() {
            image_index
                .entry(image.image_ref.as_str())
                .or_insert(k as u32);
            let site = || Site::Image(image.image_ref.clone(), image.defined_at.clone());
            for dep in &image.deps {
                add_dep(dep, Owner::Image(k as u32), &mut problems, &site);
            }
            let base = image.context.as_deref().unwrap_or(&image.command_dir);
            image_ignores.push(scoped(base, &image.ignore, &mut problems, &|_| site()));
        }
        for (i, r) in manifest.resources.iter().enumerate() {
            if graph.index_of(&r.name) != Some(i) {
                continue;
            }
            for image_ref in &r.images {
                if let Some(&k) = image_index.get(image_ref.as_str()) {
                    let users = &mut image_users[k as usize];
                    if users.last() != Some(&(i as u32)) {
                        users.push(i as u32);
                    }
                }
            }
        }
        let settings = &manifest.settings;
        let watch_ignore = scoped("", &settings.watch_ignore, &mut problems, &|i| {
            Site::Settings(settings.watch_ignore_at.get(i).cloned())
        });

        if !problems.is_empty() {
            return Err(PatternError { problems });
        }
        Ok(AffectedIndex {
            buckets,
            resource_ignores,
            image_ignores,
            image_users,
            image_refs: manifest
                .images
                .iter()
                .map(|i| i.image_ref.clone())
                .collect(),
            watch_ignore,
            prop: graph.propagation().clone(),
        })
    }

    /// The resources that a batch of changed paths re-runs, each once, in run
    /// order: those directly affected (own `deps`, or an image they deploy) and
    /// their data-downstream closure.
    pub fn affected<P: AsRef<Path>>(&self, changed: &[P]) -> Vec<String> {
        let mut direct = Vec::new();
        let mut scratch = Vec::new();
        for path in changed {
            let path = path.as_ref().to_string_lossy();
            self.push_direct(&path, &mut scratch, &mut direct);
        }
        self.prop
            .close(direct)
            .into_iter()
            .map(|i| self.prop.names[i as usize].clone())
            .collect()
    }

    /// The resources whose own `deps` match `path` (not through images, and
    /// without propagation), in declaration order.
    pub fn resources_matching(&self, path: &str) -> Vec<&str> {
        let mut scratch = Vec::new();
        self.owners_matching(path, &mut scratch)
            .iter()
            .filter_map(|o| match *o {
                Owner::Resource(i) => Some(self.prop.names[i as usize].as_str()),
                Owner::Image(_) => None,
            })
            .collect()
    }

    /// The resources a change to `path` touches directly: those whose own `deps`
    /// match it and those that deploy an image whose `deps` match it (without
    /// propagation along data edges). Each once, in no particular order.
    pub fn directly_affected(&self, path: &str) -> Vec<&str> {
        let mut found: Vec<u32> = Vec::new();
        self.push_direct(path, &mut Vec::new(), &mut found);
        found.sort_unstable();
        found.dedup();
        found
            .into_iter()
            .map(|i| self.prop.names[i as usize].as_str())
            .collect()
    }

    /// Appends the node indices `path` touches directly: owners of matching
    /// `deps`, and the users of matching images.
    fn push_direct(&self, path: &str, scratch: &mut Vec<Owner>, out: &mut Vec<u32>) {
        for owner in self.owners_matching(path, scratch) {
            match *owner {
                Owner::Resource(i) => out.push(i),
                Owner::Image(k) => out.extend_from_slice(&self.image_users[k as usize]),
            }
        }
    }

    /// The refs of the images whose `deps` match `path`, in declaration order.
    pub fn images_matching(&self, path: &str) -> Vec<&str> {
        let mut scratch = Vec::new();
        self.owners_matching(path, &mut scratch)
            .iter()
            .filter_map(|o| match *o {
                Owner::Image(k) => Some(self.image_refs[k as usize].as_str()),
                Owner::Resource(_) => None,
            })
            .collect()
    }

    /// Whether `watch_settings(ignore=...)` excludes `path`.
    pub fn is_watch_ignored(&self, path: &str) -> bool {
        self.watch_ignore
            .as_ref()
            .is_some_and(|w| w.is_ignored(normalize(path)))
    }

    /// The folders and files a watcher must cover: every plain `deps` entry and
    /// the literal leading folder of every glob, minus those inside another one,
    /// sorted. `""` stands for the project root.
    pub fn watch_roots(&self) -> Vec<&str> {
        let keys: BTreeSet<&str> = self.buckets.keys().map(|k| &**k).collect();
        keys.iter()
            .copied()
            .filter(|&key| {
                let mut covered = false;
                for_each_ancestor(key, |a| covered |= a != key && keys.contains(a));
                !covered
            })
            .collect()
    }

    /// The owners of entries matching `path` that do not ignore it, each once,
    /// resources before images, each in declaration order. Uses `scratch` as the
    /// result buffer.
    fn owners_matching<'s>(&self, path: &str, scratch: &'s mut Vec<Owner>) -> &'s [Owner] {
        scratch.clear();
        let path = normalize(path);
        if self.is_watch_ignored(path) {
            return scratch;
        }
        let mut hits = Vec::new();
        for_each_ancestor(path, |key| {
            if let Some(bucket) = self.buckets.get(key) {
                bucket.matches(key, path, scratch, &mut hits);
            }
        });
        scratch.sort_unstable();
        scratch.dedup();
        scratch.retain(|owner| {
            let ignore = match *owner {
                Owner::Resource(i) => &self.resource_ignores[i as usize],
                Owner::Image(k) => &self.image_ignores[k as usize],
            };
            !ignore.as_ref().is_some_and(|s| s.is_ignored(path))
        });
        scratch
    }
}

/// Builds the matcher for gitignore-style `patterns` relative to `dir`, or
/// `None` when there are no patterns.
fn scoped(
    dir: &str,
    patterns: &[String],
    problems: &mut Vec<BadPattern>,
    site: &dyn Fn(usize) -> Site,
) -> Option<Scoped> {
    if patterns.is_empty() {
        return None;
    }
    // Root "." disables the builder's own prefix stripping; `Scoped` strips `dir`.
    let mut builder = GitignoreBuilder::new(".");
    let mut ok = true;
    for (i, pattern) in patterns.iter().enumerate() {
        if let Err(err) = builder.add_line(None, pattern) {
            problems.push(site(i).bad(pattern, PatternField::Ignore, err.to_string()));
            ok = false;
        }
    }
    let matcher = match builder.build() {
        Ok(m) => m,
        Err(err) => {
            if ok {
                problems.push(site(0).bad(
                    &patterns.join(" "),
                    PatternField::Ignore,
                    err.to_string(),
                ));
            }
            return None;
        }
    };
    Some(Scoped {
        dir: normalize(dir).to_owned(),
        matcher,
    })
}

/// Whether a `deps` entry is a glob.
fn is_glob(entry: &str) -> bool {
    entry.contains(['*', '?', '[', '{'])
}

/// The components of a glob before the first one with a metacharacter: `""` for
/// a relative glob that starts with one, `"/"` for such an absolute glob.
fn literal_dir(glob: &str) -> &str {
    let first_meta = glob.find(['*', '?', '[', '{']).unwrap_or(glob.len());
    match glob[..first_meta].rfind('/') {
        Some(0) => "/",
        Some(slash) => &glob[..slash],
        None => "",
    }
}

/// Drops a leading `./` and a trailing `/`; `"."` becomes `""` (the root).
fn normalize(path: &str) -> &str {
    let mut path = path;
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    if path == "." {
        return "";
    }
    while path.len() > 1 && path.ends_with('/') {
        path = &path[..path.len() - 1];
    }
    path
}

/// `path` relative to folder `dir`, `Some("")` when they are equal, `None` when
/// `path` is not inside `dir`. `dir` `""` is the root, containing every relative path.
fn relative_to<'p>(path: &'p str, dir: &str) -> Option<&'p str> {
    if dir.is_empty() {
        return (!path.starts_with('/')).then_some(path);
    }
    let rest = path.strip_prefix(dir)?;
    if rest.is_empty() || dir.ends_with('/') {
        return Some(rest);
    }
    rest.strip_prefix('/')
}

/// Calls `f` with `path`, then each ancestor folder up to the root: `""` for a
/// relative path, `"/"` for an absolute one.
fn for_each_ancestor(path: &str, mut f: impl FnMut(&str)) {
    f(path);
    if path.is_empty() || path == "/" {
        return;
    }
    let mut end = path.len();
    while let Some(slash) = path[..end].rfind('/') {
        if slash == 0 {
            f("/");
            return;
        }
        f(&path[..slash]);
        end = slash;
    }
    f("");
}

/// Which declaration a bad pattern belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Site {
    Resource(String, Location),
    Image(String, Location),
    Settings(Option<Location>),
}

impl Site {
    fn bad(self, pattern: &str, field: PatternField, reason: String) -> BadPattern {
        let (owner, at) = match self {
            Site::Resource(name, at) => (format!("resource `{name}`"), Some(at)),
            Site::Image(image_ref, at) => (format!("image `{image_ref}`"), Some(at)),
            Site::Settings(at) => ("watch_settings".to_owned(), at.clone()),
        };
        BadPattern {
            owner,
            at,
            pattern: pattern.to_owned(),
            field,
            reason,
        }
    }
}

/// Which list a bad pattern came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternField {
    Deps,
    Ignore,
}

/// A `deps` glob or an `ignore` pattern that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPattern {
    /// What declared it, e.g. "resource `web`", "image `api`" or "watch_settings".
    pub owner: String,
    /// Where the owner was declared, when known.
    pub at: Option<Location>,
    pub pattern: String,
    pub field: PatternField,
    /// The parser's complaint.
    pub reason: String,
}

impl BadPattern {
    /// The one-line message.
    pub fn message(&self) -> String {
        let field = match self.field {
            PatternField::Deps => "deps",
            PatternField::Ignore => "ignore",
        };
        format!(
            "invalid pattern `{}` in the {field} of {}: {}",
            self.pattern, self.owner, self.reason
        )
    }

    /// The diagnostic, labelled at the owner's declaration.
    pub fn to_diagnostic(&self) -> Diagnostic {
        Diagnostic::new(self.message())
            .at_opt(self.at.clone(), "declared here")
            .help("globs use `*` within a folder, `**` across folders, `?`, `[abc]` and `{a,b}`")
    }
}

/// Why a manifest's patterns could not be indexed (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    pub problems: Vec<BadPattern>,
}

impl PatternError {
    /// One diagnostic per bad pattern, in declaration order.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.problems
            .iter()
            .map(BadPattern::to_diagnostic)
            .collect()
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.split_first() {
            None => f.write_str("invalid pattern"),
            Some((first, [])) => f.write_str(&first.message()),
            Some((first, rest)) => {
                write!(f, "{} (and {} more problems)", first.message(), rest.len())
            }
        }
    }
}

impl std::error::Error for PatternError {}

#[cfg(test)]
mod tests {
    use loop_lang::model::{Image, ImageKind, Resource};

    use super::*;
    use crate::graph::test_support::resource;

    fn res(name: &str, deps: &[&str]) -> Resource {
        let mut r = resource(name, 1);
        r.deps = deps.iter().map(|s| s.to_string()).collect();
        r
    }

    fn image(image_ref: &str, deps: &[&str], ignore: &[&str]) -> Image {
        let mut image = Image::new(image_ref, ImageKind::Docker, Location::default());
        image.deps = deps.iter().map(|s| s.to_string()).collect();
        image.ignore = ignore.iter().map(|s| s.to_string()).collect();
        image.context = deps.first().map(|s| s.to_string());
        image
    }

    fn index(manifest: &Manifest) -> AffectedIndex {
        let graph = Graph::build(manifest).expect("valid graph");
        AffectedIndex::build(manifest, &graph).expect("valid patterns")
    }

    fn manifest(resources: Vec<Resource>) -> Manifest {
        Manifest {
            resources,
            ..Manifest::default()
        }
    }

    #[test]
    fn plain_paths_match_themselves_and_anything_below() {
        let idx = index(&manifest(vec![
            res("file", &["svc/main.go"]),
            res("dir", &["svc/"]),
            res("root", &["."]),
            res("abs", &["/opt/shared"]),
        ]));
        assert_eq!(idx.affected(&["svc/main.go"]), ["file", "dir", "root"]);
        assert_eq!(idx.affected(&["svc/pkg/util.go"]), ["dir", "root"]);
        assert_eq!(idx.affected(&["svc"]), ["dir", "root"]);
        assert_eq!(idx.affected(&["svc2/main.go"]), ["root"]);
        assert_eq!(idx.affected(&["svc/main.go.orig"]), ["dir", "root"]);
        assert_eq!(idx.affected(&["/opt/shared/x/y.h"]), ["abs"]);
        assert!(idx.affected(&["/opt/sharedlib"]).is_empty());
    }

    #[test]
    fn globs_match_and_star_stays_within_a_folder() {
        let idx = index(&manifest(vec![
            res("top", &["src/*.py"]),
            res("deep", &["src/**/*.py"]),
            res("any", &["**/*.proto"]),
            res("choice", &["web/{a,b}/index.?s"]),
        ]));
        assert_eq!(idx.affected(&["src/main.py"]), ["top", "deep"]);
        assert_eq!(idx.affected(&["src/pkg/mod.py"]), ["deep"]);
        assert!(idx.affected(&["src/main.pyc"]).is_empty());
        assert!(idx.affected(&["lib/src/main.py"]).is_empty());
        assert_eq!(idx.affected(&["api/v1/user.proto"]), ["any"]);
        assert_eq!(idx.affected(&["web/b/index.js"]), ["choice"]);
        assert!(idx.affected(&["web/c/index.js"]).is_empty());
    }

    #[test]
    fn ignore_patterns_are_relative_to_the_resource_folder() {
        let mut r = res("api", &["api/", "shared/"]);
        r.dir = "api".into();
        r.ignore = vec![
            "*.log".into(),
            "/build".into(),
            "tmp/".into(),
            "!keep.log".into(),
        ];
        let idx = index(&manifest(vec![r]));
        assert_eq!(idx.affected(&["api/main.go"]), ["api"]);
        assert!(idx.affected(&["api/debug.log"]).is_empty());
        assert!(idx.affected(&["api/deep/debug.log"]).is_empty());
        assert_eq!(idx.affected(&["api/keep.log"]), ["api"]);
        assert!(idx.affected(&["api/build/out.bin"]).is_empty());
        assert_eq!(idx.affected(&["api/src/build/x.go"]), ["api"]);
        assert!(idx.affected(&["api/a/tmp/x"]).is_empty());
        // Outside the resource's folder its patterns do not apply.
        assert_eq!(idx.affected(&["shared/debug.log"]), ["api"]);
    }

    #[test]
    fn watch_ignore_excludes_paths_for_everyone() {
        let mut m = manifest(vec![res("all", &["."]), res("web", &["web/**"])]);
        m.settings.watch_ignore = vec!["node_modules/".into(), "*.swp".into(), "/dist".into()];
        let idx = index(&m);
        assert_eq!(idx.affected(&["web/app.js"]), ["all", "web"]);
        assert!(idx.affected(&["web/node_modules/x/index.js"]).is_empty());
        assert!(idx.affected(&["web/.app.js.swp"]).is_empty());
        assert!(idx.affected(&["dist/app.js"]).is_empty());
        assert_eq!(idx.affected(&["web/dist/app.js"]), ["all", "web"]);
        assert!(idx.is_watch_ignored("./web/node_modules/x"));
        assert!(!idx.is_watch_ignored("web/app.js"));
    }

    #[test]
    fn image_deps_affect_the_resources_that_deploy_the_image() {
        let mut api = res("api", &[]);
        api.images = vec!["img/api".into(), "img/api".into()];
        let mut worker = res("worker", &[]);
        worker.images = vec!["img/api".into(), "postgres:16".into()];
        let other = res("other", &["docs"]);
        let mut m = manifest(vec![api, other, worker]);
        m.images = vec![image("img/api", &["api"], &["*.md"])];
        let idx = index(&m);
        assert_eq!(idx.affected(&["api/main.go"]), ["api", "worker"]);
        assert!(idx.affected(&["api/README.md"]).is_empty());
        assert_eq!(idx.images_matching("api/main.go"), ["img/api"]);
        assert!(idx.resources_matching("api/main.go").is_empty());
        let mut direct = idx.directly_affected("api/main.go");
        direct.sort_unstable();
        assert_eq!(
            direct,
            idx.affected(&["api/main.go"]),
            "the image's users, nothing through data edges here"
        );
        assert!(idx.affected(&["docs/x"]) == ["other"]);
    }

    #[test]
    fn data_edges_propagate_and_ordering_edges_do_not() {
        let gen = res("gen", &["proto/"]);
        let mut lib = res("lib", &[]);
        lib.data_deps = vec!["gen".into()];
        let mut app = res("app", &[]);
        app.data_deps = vec!["lib".into()];
        app.resource_deps = vec!["db".into()];
        let mut waits = res("waits", &[]);
        waits.resource_deps = vec!["gen".into()];
        let db = res("db", &["db/"]);
        let idx = index(&manifest(vec![app, waits, lib, gen, db]));
        assert_eq!(idx.affected(&["proto/a.proto"]), ["gen", "lib", "app"]);
        assert_eq!(idx.affected(&["db/schema.sql"]), ["db"]);
        assert_eq!(
            idx.affected(&["db/schema.sql", "proto/a.proto", "proto/b.proto"]),
            ["gen", "lib", "db", "app"]
        );
    }

    #[test]
    fn watch_roots_are_minimal() {
        let idx = index(&manifest(vec![
            res("a", &["svc/src/**/*.py", "svc/config"]),
            res("b", &["svc", "/abs/x/*.h", "other/file.txt"]),
        ]));
        assert_eq!(idx.watch_roots(), ["/abs/x", "other/file.txt", "svc"]);
    }

    #[test]
    fn bad_patterns_are_reported_with_their_owner() {
        let mut r = res("web", &["src/[a"]);
        r.ignore = vec!["ok".into()];
        let m = manifest(vec![r]);
        let graph = Graph::build(&m).unwrap();
        let err = AffectedIndex::build(&m, &graph).err().expect("bad glob");
        assert_eq!(err.problems.len(), 1);
        assert!(
            err.to_string()
                .starts_with("invalid pattern `src/[a` in the deps of resource `web`"),
            "{err}"
        );
        assert_eq!(err.diagnostics()[0].labels[0].at.line, 1);
    }

    #[test]
    fn path_helpers() {
        assert_eq!(literal_dir("svc1/src/**/*.py"), "svc1/src");
        assert_eq!(literal_dir("*.py"), "");
        assert_eq!(literal_dir("/*.py"), "/");
        assert_eq!(literal_dir("/a/b?/c"), "/a");
        let mut seen = Vec::new();
        for_each_ancestor("a/b/c", |p| seen.push(p.to_owned()));
        assert_eq!(seen, ["a/b/c", "a/b", "a", ""]);
        seen.clear();
        for_each_ancestor("/x/y", |p| seen.push(p.to_owned()));
        assert_eq!(seen, ["/x/y", "/x", "/"]);
        assert_eq!(relative_to("api/x", "api"), Some("x"));
        assert_eq!(relative_to("apix/y", "api"), None);
        assert_eq!(relative_to("/abs", ""), None);
        assert_eq!(normalize("./a/b/"), "a/b");
    }
}
