//! The build context of a `docker_build`: the files `loop` sends to Docker, and
//! the files its content hash reads. Both come from [`Context::files`], so a file
//! that is not sent never rebuilds the image, and a file that is sent always can.
//!
//! A file of the context folder is kept unless
//! - a path component is `.git` or `.loop` (never sent, whatever the patterns say);
//! - `only` is given and the file is not one of those paths or inside one;
//! - the patterns of the context's `.dockerignore`, followed by the image's
//!   `ignore` patterns, exclude it. These are Docker's patterns, not gitignore's:
//!   relative to the context root (`foo` is only `./foo`), `*` and `?` stop at
//!   `/`, `**` crosses folders, a pattern that matches a folder matches
//!   everything in it, `!` re-includes, and the last matching pattern decides.
//!
//! [`Context::write_tar`] writes the kept entries, sorted, as the tar `docker
//! build -` reads on its standard input. A Dockerfile that is not itself in the
//! context (outside the folder, excluded, or given inline) is added as
//! `.dockerfile.loop`, and named in the tar's `.dockerignore` so that the daemon
//! drops it from what `COPY . .` sees, as the Docker CLI does with `-f` outside
//! the context.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use loop_lang::model::Image;

use crate::watch::{listing, Rules};
use std::sync::Mutex;

/// The name under which a Dockerfile from outside the context enters the tar.
pub(crate) const DOCKERFILE_IN_TAR: &str = ".dockerfile.loop";

/// One kept entry of the context, by its path relative to the context root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Dir {
        rel: String,
        mode: u32,
    },
    File {
        rel: String,
        path: PathBuf,
        mode: u32,
    },
    Symlink {
        rel: String,
        target: String,
    },
}

impl Entry {
    pub(crate) fn rel(&self) -> &str {
        match self {
            Entry::Dir { rel, .. } | Entry::File { rel, .. } | Entry::Symlink { rel, .. } => rel,
        }
    }
}

/// One Docker exclusion pattern.
struct Pattern {
    matcher: GlobMatcher,
    /// A `!` pattern: re-includes what it matches.
    include: bool,
}

/// The filter of one image's context.
pub(crate) struct Context {
    pub root: PathBuf,
    patterns: Vec<Pattern>,
    only: Vec<String>,
    /// The `.dockerignore` text, when the context has one.
    pub dockerignore: Option<String>,
    /// The project's `.loopignore` files and `watch_settings(ignore=...)`,
    /// which image inputs follow too.
    loopignore: Mutex<Rules>,
}

/// Why a context cannot be read.
fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

impl Context {
    /// The context of the `docker_build` `image`, its paths resolved against the
    /// project `root`: reads its `.dockerignore` and compiles every pattern.
    pub(crate) fn new(image: &Image, root: &Path) -> io::Result<Context> {
        let dir = resolve(root, image.context.as_deref().unwrap_or("."));
        let ignore_file = dir.join(".dockerignore");
        let dockerignore = match fs::read_to_string(&ignore_file) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", ignore_file.display()),
                ))
            }
        };
        let mut patterns = Vec::new();
        if let Some(text) = &dockerignore {
            for (i, line) in text.lines().enumerate() {
                if let Some(p) = compile(line)
                    .map_err(|e| invalid(format!("{}:{}: {e}", ignore_file.display(), i + 1)))?
                {
                    patterns.push(p);
                }
            }
        }
        for line in &image.ignore {
            if let Some(p) = compile(line).map_err(|e| invalid(format!("ignore: {e}")))? {
                patterns.push(p);
            }
        }
        let only = image
            .only
            .iter()
            .map(|o| clean(o))
            .filter(|o| !o.is_empty())
            .collect();
        let loopignore = Mutex::new(Rules::for_image_inputs(
            root,
            std::slice::from_ref(&dir),
            &image.watch_ignore,
        ));
        Ok(Context {
            root: dir,
            patterns,
            only,
            dockerignore,
            loopignore,
        })
    }

    /// Whether the patterns exclude `rel` (a path relative to the context root).
    pub(crate) fn excluded(&self, rel: &str) -> bool {
        let mut excluded = false;
        for p in &self.patterns {
            // Only a pattern that would change the answer needs to be tried.
            if p.include != excluded {
                continue;
            }
            let hit =
                p.matcher.is_match(rel) || ancestors(rel).any(|parent| p.matcher.is_match(parent));
            if hit {
                excluded = !p.include;
            }
        }
        excluded
    }

    /// Whether `rel` is one of the `only` paths, inside one, or (for a folder)
    /// on the way to one.
    fn wanted(&self, rel: &str, is_dir: bool) -> bool {
        self.only.is_empty()
            || self.only.iter().any(|o| {
                rel == o
                    || rel.starts_with(&format!("{o}/"))
                    || (is_dir && o.starts_with(&format!("{rel}/")))
            })
    }

    /// Whether a whole folder can be left unwalked: nothing under it can be kept.
    /// Whether a `.loopignore` line leaves `path` out (as it does for watching).
    fn loop_ignored(&self, path: &Path, is_dir: bool) -> bool {
        self.loopignore
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_ignored(path, is_dir)
    }

    /// Whether the build leaves out `rel` (relative to the context root): a
    /// folder it does not walk, or a file it does not send.
    pub(crate) fn excludes(&self, rel: &str, is_dir: bool) -> bool {
        if is_dir {
            self.prune(rel)
        } else {
            !self.keeps(rel, false)
        }
    }

    fn prune(&self, rel: &str) -> bool {
        let re_includes = self.patterns.iter().any(|p| p.include);
        (!re_includes && self.excluded(rel)) || !self.wanted(rel, true)
    }

    /// Whether `rel` itself is kept (its folders are checked by the walk).
    fn keeps(&self, rel: &str, is_dir: bool) -> bool {
        let inside_only = self.only.is_empty()
            || self
                .only
                .iter()
                .any(|o| rel == o || rel.starts_with(&format!("{o}/")));
        if is_dir && !inside_only {
            // A folder on the way to an `only` path: walked, not sent on its own.
            return false;
        }
        inside_only && !self.excluded(rel)
    }

    /// Every kept entry, sorted by path; folders are entries too, so that empty
    /// folders reach the build. Symlinks are not followed.
    pub(crate) fn files(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.walk(&self.root, "", &mut out)?;
        Ok(out)
    }

    fn walk(&self, dir: &Path, rel: &str, out: &mut Vec<Entry>) -> io::Result<()> {
        for entry in listing(dir)? {
            let name = entry.file_name();
            let path = entry.path();
            let is_dir = entry.file_type().map_err(|e| with_path(e, &path))?.is_dir();
            if self.loop_ignored(&path, is_dir) {
                continue;
            }
            let name = name.to_string_lossy();
            let child_rel = if rel.is_empty() {
                name.into_owned()
            } else {
                format!("{rel}/{name}")
            };
            let meta = fs::symlink_metadata(&path).map_err(|e| with_path(e, &path))?;
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                if self.keeps(&child_rel, true) {
                    out.push(Entry::Dir {
                        rel: child_rel.clone(),
                        mode,
                    });
                }
                if !self.prune(&child_rel) {
                    self.walk(&path, &child_rel, out)?;
                }
            } else if !self.keeps(&child_rel, false) {
                continue;
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map_err(|e| with_path(e, &path))?;
                out.push(Entry::Symlink {
                    rel: child_rel,
                    target: target.to_string_lossy().into_owned(),
                });
            } else if meta.is_file() {
                out.push(Entry::File {
                    rel: child_rel,
                    path,
                    mode,
                });
            }
            // Sockets, fifos and devices are not build inputs.
        }
        Ok(())
    }

    /// Writes the tar of `entries` to `out`; `dockerfile`, when given, is the
    /// text of a Dockerfile that is not in the context, added as
    /// [`DOCKERFILE_IN_TAR`]. Owners are root, as the Docker CLI sends them.
    pub(crate) fn write_tar(
        &self,
        entries: &[Entry],
        dockerfile: Option<&[u8]>,
        out: impl Write,
    ) -> io::Result<()> {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Complete);
        let header = |kind: tar::EntryType, mode: u32, size: u64, mtime: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_mtime(mtime);
            h.set_uid(0);
            h.set_gid(0);
            h
        };
        let mut sent_dockerignore = false;
        for entry in entries {
            match entry {
                Entry::Dir { rel, mode } => {
                    let mtime = mtime_of(&self.root.join(rel));
                    let mut h = header(tar::EntryType::Directory, *mode, 0, mtime);
                    tar.append_data(&mut h, format!("{rel}/"), io::empty())?;
                }
                Entry::Symlink { rel, target } => {
                    let mtime = mtime_of(&self.root.join(rel));
                    let mut h = header(tar::EntryType::Symlink, 0o777, 0, mtime);
                    tar.append_link(&mut h, rel, target)?;
                }
                Entry::File { rel, path, mode } => {
                    if dockerfile.is_some() && rel == ".dockerignore" {
                        sent_dockerignore = true;
                        continue;
                    }
                    let file = File::open(path).map_err(|e| with_path(e, path))?;
                    let meta = file.metadata().map_err(|e| with_path(e, path))?;
                    let mut h = header(
                        tar::EntryType::Regular,
                        *mode,
                        meta.len(),
                        meta.mtime().max(0) as u64,
                    );
                    tar.append_data(&mut h, rel, file)
                        .map_err(|e| with_path(e, path))?;
                }
            }
        }
        if let Some(text) = dockerfile {
            let mut h = header(tar::EntryType::Regular, 0o644, text.len() as u64, 0);
            tar.append_data(&mut h, DOCKERFILE_IN_TAR, text)?;
            // The daemon removes the files its .dockerignore names from the
            // context; the rest was filtered here already.
            let mut ignore = if sent_dockerignore {
                self.dockerignore.clone().unwrap_or_default()
            } else {
                String::new()
            };
            if !ignore.is_empty() && !ignore.ends_with('\n') {
                ignore.push('\n');
            }
            ignore.push_str(&format!("{DOCKERFILE_IN_TAR}\n.dockerignore\n"));
            let mut h = header(tar::EntryType::Regular, 0o644, ignore.len() as u64, 0);
            tar.append_data(&mut h, ".dockerignore", ignore.as_bytes())?;
        }
        tar.into_inner()?.flush()
    }
}

/// Compiles one `.dockerignore` line; `None` for a blank line or a comment.
fn compile(line: &str) -> Result<Option<Pattern>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (include, pattern) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    let pattern = clean(pattern);
    if pattern.is_empty() {
        return Err(format!("{line:?} is not a pattern"));
    }
    let glob = GlobBuilder::new(&pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("bad pattern {line:?}: {e}"))?;
    Ok(Some(Pattern {
        matcher: glob.compile_matcher(),
        include,
    }))
}

/// A pattern or path as Docker cleans it: no leading `/` or `./`, no `.`
/// components, `..` applied, no trailing `/`.
pub(super) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The folders above a relative path, nearest first (`a/b/c` gives `a/b`, `a`).
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    rel.rmatch_indices('/').map(move |(i, _)| &rel[..i])
}

fn mtime_of(path: &Path) -> u64 {
    fs::symlink_metadata(path)
        .map(|m| m.mtime().max(0) as u64)
        .unwrap_or(0)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Resolves a model path (root-relative with `/`, `.` for the root, or absolute),
/// without `.` components or a trailing `/`, so that paths compare textually.
pub(crate) fn resolve(root: &Path, path: &str) -> PathBuf {
    root.join(path).components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use loop_lang::model::ImageKind;
    use loop_lang::Location;

    fn context(dir: &Path, ignore: &[&str], only: &[&str]) -> Context {
        let mut image = Image::new("app", ImageKind::Docker, Location::default());
        image.context = Some(dir.to_string_lossy().into_owned());
        image.ignore = ignore.iter().map(|s| s.to_string()).collect();
        image.only = only.iter().map(|s| s.to_string()).collect();
        Context::new(&image, Path::new("/")).unwrap()
    }

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let path = dir.path().join(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, f).unwrap();
        }
        dir
    }

    fn kept(c: &Context) -> Vec<String> {
        c.files()
            .unwrap()
            .into_iter()
            .filter(|e| !matches!(e, Entry::Dir { .. }))
            .map(|e| e.rel().to_owned())
            .collect()
    }

    #[test]
    fn dockerignore_patterns_are_dockers_not_gitignores() {
        let dir = tree(&[
            ".dockerignore",
            "app.log",
            "src/main.go",
            "src/debug.log",
            "docs/a.md",
            "docs/keep.md",
            "node_modules/x/index.js",
            ".git/HEAD",
            ".loop/images.json",
            "sub/.loop/x",
        ]);
        fs::write(
            dir.path().join(".dockerignore"),
            "# comment\n*.log\n/docs\n!docs/keep.md\nnode_modules\n",
        )
        .unwrap();
        let c = context(dir.path(), &[], &[]);
        assert_eq!(
            kept(&c),
            [
                ".dockerignore",
                "docs/keep.md",
                "src/debug.log",
                "src/main.go"
            ],
            "`*.log` is only the root's logs, a folder pattern takes its contents, `!` re-includes, .git and .loop never go"
        );
        assert!(c.excluded("node_modules/x/index.js"));
        assert!(!c.excluded("src/node_modules"), "relative to the root only");
    }

    #[test]
    fn double_star_crosses_folders_and_ignore_adds_to_dockerignore() {
        let dir = tree(&[
            "a.log",
            "src/b.log",
            "src/deep/c.log",
            "src/main.go",
            "tmp/x",
        ]);
        let c = context(dir.path(), &["**/*.log", "tmp/"], &[]);
        assert_eq!(kept(&c), ["src/main.go"]);
    }

    #[test]
    fn only_narrows_the_context_to_those_paths() {
        let dir = tree(&[
            "Dockerfile",
            "src/main.go",
            "src/x/y.go",
            "web/index.html",
            "srcx",
        ]);
        let c = context(dir.path(), &["src/x"], &["src", "Dockerfile"]);
        assert_eq!(kept(&c), ["Dockerfile", "src/main.go"]);
        let dirs: Vec<String> = c
            .files()
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e, Entry::Dir { .. }))
            .map(|e| e.rel().to_owned())
            .collect();
        assert_eq!(dirs, ["src"], "web is not sent, and src/x is ignored");
    }

    #[test]
    fn a_bad_dockerignore_line_names_the_file_and_line() {
        let dir = tree(&["x"]);
        fs::write(dir.path().join(".dockerignore"), "ok\n[z\n").unwrap();
        let mut image = Image::new("app", ImageKind::Docker, Location::default());
        image.context = Some(dir.path().to_string_lossy().into_owned());
        let err = Context::new(&image, Path::new("/"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(".dockerignore:2: bad pattern \"[z\""), "{err}");
    }

    #[test]
    fn the_tar_holds_the_kept_entries_and_an_outside_dockerfile_hidden_from_copy() {
        let dir = tree(&["src/main.go", "secret.env", ".dockerignore"]);
        fs::write(dir.path().join(".dockerignore"), "secret.env").unwrap();
        let c = context(dir.path(), &[], &[]);
        let entries = c.files().unwrap();
        let mut bytes = Vec::new();
        c.write_tar(&entries, Some(b"FROM scratch\n"), &mut bytes)
            .unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut names = Vec::new();
        let mut ignore = String::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_owned();
            assert_eq!(e.header().uid().unwrap(), 0);
            if name == ".dockerignore" {
                io::Read::read_to_string(&mut e, &mut ignore).unwrap();
            }
            names.push(name);
        }
        assert_eq!(
            names,
            ["src", "src/main.go", DOCKERFILE_IN_TAR, ".dockerignore"]
        );
        assert_eq!(
            ignore,
            format!("secret.env\n{DOCKERFILE_IN_TAR}\n.dockerignore\n")
        );
    }
}
