//! Which paths the watcher skips. One `Rules` value answers both questions the
//! watcher asks: "should this folder get a watch?" while walking, and "should
//! this event be reported?" when a file changes, so the two never disagree.
//!
//! The rules, highest precedence first:
//! 1. folders and files named `.git` or `.loop` are always skipped;
//! 2. the patterns of `watch_settings(ignore=...)`, relative to the project root
//!    (a `!pattern` there re-includes a path);
//! 3. `.loopignore` and `.gitignore` files, as git reads them: the deepest folder
//!    with a matching line decides, and in one folder `.loopignore` lines win over
//!    `.gitignore` lines. Files in the watched folders count, and so do those in
//!    their ancestors up to the root of the git repository that holds them (none
//!    above the watched folder when it is not inside a repository).
//!
//! Inside a `docker_build` context (and on the way down to one), the build's
//! own filter (`.dockerignore`, the image's `ignore` and `only`) decides in
//! place of `.gitignore`, as it decides what Docker is sent: a gitignored
//! `dist/` that a local resource builds is sent, so a change to it must
//! rebuild the image, as in Tilt; a dockerignored `node_modules/` is neither
//! sent nor watched. `.loopignore` lines count there too.
//!
//! As in git, a path inside an ignored folder cannot be re-included: the walk
//! never enters an ignored folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

/// The files that hold ignore patterns, lowest precedence first.
pub(super) const IGNORE_FILES: [&str; 2] = [".gitignore", ".loopignore"];

/// Names (files or folders, at any depth) that are never watched, reported,
/// hashed into an image or counted as a build step's input.
pub const ALWAYS_SKIPPED: [&str; 2] = [".git", ".loop"];

/// The entries of `dir` sorted by name, without the [`ALWAYS_SKIPPED`] ones:
/// how every walk over project files (image contexts, hashes, layers) lists a
/// folder. An error names the folder.
pub fn listing(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|it| it.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    entries.retain(|e| !ALWAYS_SKIPPED.iter().any(|s| e.file_name() == *s));
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// Whether a build leaves out a path (absolute path, is it a folder).
pub type Excludes = std::sync::Arc<dyn Fn(&Path, bool) -> bool + Send + Sync>;

/// A folder an image build reads (a `docker_build` context), and which of its
/// paths the build leaves out (absolute path, is it a folder): there, this
/// decides in place of `.gitignore`.
#[derive(Clone)]
pub struct ImageInput {
    pub dir: PathBuf,
    pub excludes: Option<Excludes>,
}

impl std::fmt::Debug for ImageInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageInput")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Rules {
    root: PathBuf,
    /// The patterns from the configuration, anchored at `root`.
    config: Gitignore,
    /// Each top folder (the root, extra folders) with the folder up to which the
    /// ignore files of its ancestors apply.
    tops: Vec<(PathBuf, PathBuf)>,
    /// The combined ignore files of each folder seen so far, `None` when it
    /// has none: without `.gitignore` (`[0]`, under image contexts) and with it
    /// (`[1]`).
    per_dir: [BTreeMap<PathBuf, Option<Gitignore>>; 2],
    /// The folders image builds read (absolute), where `.gitignore` does not
    /// apply, each with the build's own filter when the watcher has it.
    image_inputs: Vec<ImageInput>,
    /// Problems found in `.loopignore` files, for the caller to report.
    problems: Vec<String>,
}

impl Rules {
    /// Rules for a project whose root is `root` (absolute), with the
    /// gitignore-style `patterns` from the configuration. A bad pattern is
    /// returned as `(pattern, reason)`.
    pub(crate) fn new(root: &Path, patterns: &[String]) -> Result<Rules, (String, String)> {
        let mut builder = GitignoreBuilder::new(root);
        for pattern in patterns {
            if let Err(err) = builder.add_line(None, pattern) {
                return Err((pattern.clone(), err.to_string()));
            }
        }
        let config = builder
            .build()
            .map_err(|err| (patterns.join(", "), err.to_string()))?;
        let mut rules = Rules {
            root: root.to_path_buf(),
            config,
            tops: Vec::new(),
            per_dir: [BTreeMap::new(), BTreeMap::new()],
            image_inputs: Vec::new(),
            problems: Vec::new(),
        };
        rules.add_top(root);
        Ok(rules)
    }

    /// Registers a folder that is watched as a tree of its own.
    pub(super) fn add_top(&mut self, top: &Path) {
        let base = top
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .unwrap_or(top);
        self.tops.push((top.to_path_buf(), base.to_path_buf()));
    }

    /// The project's ignore rules as an image build's inputs follow them below
    /// `root`: the `watch_settings(ignore=...)` `patterns` and `.loopignore`
    /// everywhere, `.gitignore` outside `contexts` (the `docker_build`
    /// contexts, whose own filter the caller applies). A bad pattern (the
    /// watcher reports it) is left out.
    pub(crate) fn for_image_inputs(
        root: &Path,
        contexts: &[PathBuf],
        patterns: &[String],
    ) -> Rules {
        let mut rules = Rules::new(root, patterns)
            .or_else(|_| Rules::new(root, &[]))
            .expect("no patterns to parse");
        rules.add_image_inputs(
            contexts
                .iter()
                .map(|dir| ImageInput {
                    dir: dir.clone(),
                    excludes: None,
                })
                .collect(),
        );
        rules
    }

    /// Registers what image builds read: `.gitignore` does not hide these
    /// folders, what is below them, or the folders on the way down to them;
    /// their own filters do.
    pub(crate) fn add_image_inputs(&mut self, inputs: Vec<ImageInput>) {
        self.image_inputs.extend(inputs);
    }

    /// Whether `path` is ignored. Its ancestors are assumed to be kept (the
    /// watcher only asks about entries of folders it watches).
    pub(crate) fn is_ignored(&mut self, path: &Path, is_dir: bool) -> bool {
        let Some(name) = path.file_name() else {
            return false;
        };
        if ALWAYS_SKIPPED.iter().any(|skipped| name == *skipped) {
            return true;
        }
        if path.starts_with(&self.root) {
            match self.config.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        // The outermost top that holds the path decides how far up to look.
        let Some(base) = self
            .tops
            .iter()
            .filter(|(top, _)| path.starts_with(top) && path != top)
            .min_by_key(|(top, _)| top.as_os_str().len())
            .map(|(_, base)| base.clone())
        else {
            return false;
        };
        let mut with_git = true;
        for input in &self.image_inputs {
            if path.starts_with(&input.dir) && path != input.dir {
                if input
                    .excludes
                    .as_ref()
                    .is_some_and(|excludes| excludes(path, is_dir))
                {
                    return true;
                }
                with_git = false;
            } else if input.dir.starts_with(path) {
                with_git = false;
            }
        }
        let mut dir = path.parent();
        while let Some(current) = dir {
            if let Some(matcher) = self.matcher(current, with_git) {
                match matcher.matched(path, is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
            if current == base {
                break;
            }
            dir = current.parent();
        }
        false
    }

    /// Forgets what was read from the ignore files of `dir` and the folders
    /// below it, so that they are read again when next needed.
    pub(super) fn forget(&mut self, dir: &Path) {
        for per_dir in &mut self.per_dir {
            let stale: Vec<PathBuf> = per_dir
                .range(dir.to_path_buf()..)
                .take_while(|(path, _)| path.starts_with(dir))
                .map(|(path, _)| path.clone())
                .collect();
            for path in stale {
                per_dir.remove(&path);
            }
        }
    }

    /// Takes the problems found in ignore files since the last call.
    pub(super) fn take_problems(&mut self) -> Vec<String> {
        std::mem::take(&mut self.problems)
    }

    fn matcher(&mut self, dir: &Path, with_git: bool) -> Option<&Gitignore> {
        let which = usize::from(with_git);
        if !self.per_dir[which].contains_key(dir) {
            let matcher = self.load(dir, with_git);
            self.per_dir[which].insert(dir.to_path_buf(), matcher);
        }
        self.per_dir[which].get(dir).and_then(Option::as_ref)
    }

    fn load(&mut self, dir: &Path, with_git: bool) -> Option<Gitignore> {
        let mut builder = GitignoreBuilder::new(dir);
        let mut found = false;
        let skipped = usize::from(!with_git);
        for name in &IGNORE_FILES[skipped..] {
            let file = dir.join(name);
            if !file.is_file() {
                continue;
            }
            found = true;
            // Like git, skip the lines of a .gitignore that do not parse; a
            // mistake in a .loopignore is ours to report.
            if let Some(err) = builder.add(&file) {
                let problem = format!("{}: some lines are not used: {err}", file.display());
                if *name == ".loopignore" && !self.problems.contains(&problem) {
                    self.problems.push(problem);
                }
            }
        }
        if !found {
            return None;
        }
        match builder.build() {
            Ok(matcher) => Some(matcher),
            Err(err) => {
                self.problems.push(format!(
                    "the ignore files in {} are not used: {err}",
                    dir.display()
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn rules(root: &Path, patterns: &[&str]) -> Rules {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Rules::new(root, &patterns).unwrap()
    }

    #[test]
    fn git_and_loop_folders_are_always_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut rules = rules(root, &[]);
        assert!(rules.is_ignored(&root.join(".git"), true));
        assert!(rules.is_ignored(&root.join("sub/.loop"), true));
        assert!(!rules.is_ignored(&root.join(".github"), true));
        assert!(!rules.is_ignored(&root.join(".env"), false));
    }

    #[test]
    fn config_patterns_are_relative_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut rules = rules(root, &["/dist", "*.log", "cache/", "!keep.log"]);
        assert!(rules.is_ignored(&root.join("dist"), true));
        assert!(!rules.is_ignored(&root.join("sub/dist"), true));
        assert!(rules.is_ignored(&root.join("sub/x.log"), false));
        assert!(!rules.is_ignored(&root.join("keep.log"), false));
        assert!(rules.is_ignored(&root.join("cache"), true));
        assert!(!rules.is_ignored(&root.join("cache"), false));
    }

    #[test]
    fn a_bad_config_pattern_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Rules::new(dir.path(), &["a/**{".to_string()])
            .err()
            .unwrap();
        assert_eq!(err.0, "a/**{");
    }

    #[test]
    fn deeper_files_and_loopignore_take_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join(".gitignore"), "*.tmp\nbuild/\nvendor\n").unwrap();
        fs::write(root.join(".loopignore"), "!vendor\nsecrets\n").unwrap();
        fs::write(root.join("sub/.gitignore"), "!special.tmp\n").unwrap();
        let mut rules = rules(root, &[]);
        assert!(rules.is_ignored(&root.join("a.tmp"), false));
        assert!(rules.is_ignored(&root.join("sub/a.tmp"), false));
        assert!(!rules.is_ignored(&root.join("sub/special.tmp"), false));
        assert!(rules.is_ignored(&root.join("sub/build"), true));
        assert!(!rules.is_ignored(&root.join("vendor"), true));
        assert!(rules.is_ignored(&root.join("sub/secrets"), false));
        assert!(!rules.is_ignored(&root.join("src"), true));
    }

    #[test]
    fn ignore_files_above_the_root_apply_up_to_the_repository_root() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let root = repo.join("services/api");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(repo.join(".git")).unwrap();
        fs::write(repo.join(".gitignore"), "node_modules/\n").unwrap();
        // Above the repository: not read.
        fs::write(dir.path().join(".gitignore"), "*.rs\n").unwrap();
        let mut rules = rules(&root, &[]);
        assert!(rules.is_ignored(&root.join("node_modules"), true));
        assert!(!rules.is_ignored(&root.join("main.rs"), false));
    }

    #[test]
    fn forgetting_rereads_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut rules = rules(root, &[]);
        assert!(!rules.is_ignored(&root.join("out"), true));
        fs::write(root.join(".loopignore"), "out/\n").unwrap();
        assert!(!rules.is_ignored(&root.join("out"), true), "cached");
        rules.forget(root);
        assert!(rules.is_ignored(&root.join("out"), true));
    }
}
