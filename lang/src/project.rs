//! The project: its root folder, extension folders, and how load paths resolve.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The marker file that makes a folder the project root.
pub const ROOT_MARKER: &str = ".loop-root";

/// Files or folders that mark a project root, in order of preference when one
/// folder holds several: the explicit marker, then repositories.
pub const ROOT_MARKERS: &[&str] = &[ROOT_MARKER, ".git", ".hg"];

/// How the project root was chosen, for errors that name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootReason {
    /// `--root DIR` on the command line.
    Flag,
    /// The nearest folder holding this marker (`.git`, `.hg` or `.loop-root`).
    Marker(String),
    /// No marker: the folder of the only top-level Loopfile.
    FileFolder,
    /// No marker: the deepest folder holding every top-level Loopfile.
    CommonFolder,
}

impl std::fmt::Display for RootReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootReason::Flag => f.write_str("chosen with --root"),
            RootReason::Marker(marker) => write!(f, "the folder holding {marker}"),
            RootReason::FileFolder => f.write_str("the folder of the top-level file"),
            RootReason::CommonFolder => {
                f.write_str("the deepest folder holding every top-level file")
            }
        }
    }
}

/// A project root and where `ext://` modules come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Project {
    /// The root: every loaded or included file must be inside it (symlinks resolved).
    pub root: PathBuf,
    /// How the root was chosen.
    pub root_reason: RootReason,
    pub extension_dirs: Vec<PathBuf>,
}

impl Project {
    /// Finds the root for a set of top-level Loopfiles (absolute, symlinks
    /// resolved): `root` when given (`--root`), else the nearest folder at or above
    /// their deepest common folder that holds `.loop-root`, `.git` or `.hg`, else
    /// that common folder. `LOOP_EXTENSIONS_PATH` (`:`-separated) adds extension
    /// folders after `extensions/`.
    pub fn discover(loopfiles: &[PathBuf], root: Option<&Path>) -> Result<Project, String> {
        let dirs: Vec<PathBuf> = loopfiles
            .iter()
            .map(|f| {
                absolute(f)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            })
            .collect();
        let common = common_ancestor(&dirs);
        let (root, root_reason) = match root {
            Some(given) => {
                let root = canonical(&absolute(given))
                    .map_err(|e| format!("--root {}: {e}", given.display()))?;
                if !root.is_dir() {
                    return Err(format!("--root {}: not a folder", given.display()));
                }
                if let Some(outside) = loopfiles.iter().find(|f| !f.starts_with(&root)) {
                    return Err(format!(
                        "{} is outside the project root {} given with --root",
                        outside.display(),
                        root.display()
                    ));
                }
                (root, RootReason::Flag)
            }
            None => match marked_ancestor(&common) {
                Some((dir, marker)) => (dir, RootReason::Marker(marker.to_owned())),
                None if loopfiles.len() > 1 => (common, RootReason::CommonFolder),
                None => (common, RootReason::FileFolder),
            },
        };
        let mut extension_dirs = vec![root.join("extensions")];
        if let Some(paths) = std::env::var_os("LOOP_EXTENSIONS_PATH") {
            extension_dirs
                .extend(std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()));
        }
        Ok(Project {
            root,
            root_reason,
            extension_dirs,
        })
    }

    /// Why a path outside the root is refused, with the way to widen the root.
    fn outside(&self, spec: &str, what: String) -> String {
        format!(
            "`{spec}` {what}, outside the project root {} ({}); pass --root DIR to widen the root",
            self.root.display(),
            self.root_reason
        )
    }

    /// A path as users see it: relative to the root with `/`, or absolute outside it.
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => slash(rel),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }

    /// Resolves a `load()`/`include()` argument against the folder of the file that
    /// asked: `//x` from the root, `ext://name` from the extension folders, anything
    /// else relative. Paths may not leave the root (extension folders excepted).
    pub fn resolve_module(&self, from_dir: &Path, spec: &str) -> Result<PathBuf, String> {
        if spec.is_empty() {
            return Err("the path is empty".to_owned());
        }
        if let Some(name) = spec.strip_prefix("ext://") {
            return self.resolve_extension(name);
        }
        let path = match spec.strip_prefix("//") {
            Some(rest) => self.root.join(rest),
            None => from_dir.join(spec),
        };
        let path = normalize(&path);
        if !path.starts_with(&self.root) {
            return Err(self.outside(spec, format!("resolves to {}", path.display())));
        }
        // A symlink may point anywhere: the file actually read must be inside too.
        match canonical(&path) {
            Ok(real) if !real.starts_with(&self.root) => {
                Err(self.outside(spec, format!("is a symlink to {}", real.display())))
            }
            Ok(real) => Ok(real),
            Err(_) => Ok(path),
        }
    }

    fn resolve_extension(&self, name: &str) -> Result<PathBuf, String> {
        if name.is_empty() || name.split('/').any(|c| c.is_empty() || c == "..") {
            return Err(format!("`ext://{name}` is not a valid extension name"));
        }
        let mut tried = Vec::new();
        for dir in &self.extension_dirs {
            for candidate in [
                dir.join(name).join("Loopfile"),
                dir.join(name).join("Tiltfile"),
                dir.join(format!("{name}.star")),
            ] {
                if candidate.is_file() {
                    return Ok(normalize(&candidate));
                }
                tried.push(candidate.display().to_string());
            }
        }
        Err(format!(
            "extension `{name}` was not found; looked for: {}",
            tried.join(", ")
        ))
    }

    /// Resolves a path argument of a built-in (a dep, a file to read) against `dir`.
    pub fn resolve_path(&self, dir: &Path, path: &str) -> PathBuf {
        normalize(&dir.join(path))
    }
}

/// The nearest folder at or above `dir` holding a root marker, and which one.
fn marked_ancestor(dir: &Path) -> Option<(PathBuf, &'static str)> {
    dir.ancestors().find_map(|a| {
        ROOT_MARKERS
            .iter()
            .find(|m| a.join(m).exists())
            .map(|m| (a.to_path_buf(), *m))
    })
}

/// `path` with every symlink resolved (it must exist), as an error in words.
pub fn canonical(path: &Path) -> Result<PathBuf, String> {
    std::fs::canonicalize(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".to_owned(),
        _ => e.to_string(),
    })
}

/// `path` made absolute against the current directory, lexically normalized.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        normalize(path)
    } else {
        let cwd = std::env::current_dir().unwrap_or_default();
        normalize(&cwd.join(path))
    }
}

/// Removes `.` and resolves `..` lexically (no file system access).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `text` with every character but ASCII letters, digits, `-`, `_` and `.`
/// replaced by `_`: a safe file or label name.
pub fn safe_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A relative path with `/` separators.
pub fn slash(path: &Path) -> String {
    let parts: Vec<_> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

fn common_ancestor(dirs: &[PathBuf]) -> PathBuf {
    let mut common = dirs.first().cloned().unwrap_or_default();
    for dir in &dirs[1.min(dirs.len())..] {
        while !dir.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    common
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(root: &str) -> Project {
        Project {
            root: PathBuf::from(root),
            root_reason: RootReason::Marker(".git".to_owned()),
            extension_dirs: vec![PathBuf::from(root).join("extensions")],
        }
    }

    #[test]
    fn resolves_relative_root_and_escaping_paths() {
        let p = project("/p");
        let dir = Path::new("/p/svc");
        assert_eq!(
            p.resolve_module(dir, "lib/a.star").unwrap(),
            PathBuf::from("/p/svc/lib/a.star")
        );
        assert_eq!(
            p.resolve_module(dir, "../b.star").unwrap(),
            PathBuf::from("/p/b.star")
        );
        assert_eq!(
            p.resolve_module(dir, "//tools/d.star").unwrap(),
            PathBuf::from("/p/tools/d.star")
        );
        let err = p.resolve_module(dir, "../../etc/x.star").unwrap_err();
        assert!(err.contains("outside the project root"), "{err}");
        assert!(err.contains("(the folder holding .git)"), "{err}");
        assert!(err.contains("--root DIR"), "{err}");
        assert!(p.resolve_module(dir, "ext://../x").is_err());
    }

    #[test]
    fn root_is_common_ancestor_without_marker() {
        let dirs = [PathBuf::from("/a/b/c"), PathBuf::from("/a/b/d/e")];
        assert_eq!(common_ancestor(&dirs), PathBuf::from("/a/b"));
    }

    #[test]
    fn root_is_the_enclosing_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("svc/api")).unwrap();
        let file = repo.join("svc/api/Tiltfile");
        let p = Project::discover(std::slice::from_ref(&file), None).unwrap();
        assert_eq!(p.root, repo);
        assert_eq!(p.root_reason, RootReason::Marker(".git".to_owned()));
        // A marker nearer the file wins.
        std::fs::write(repo.join("svc/.loop-root"), "").unwrap();
        let p = Project::discover(std::slice::from_ref(&file), None).unwrap();
        assert_eq!(p.root, repo.join("svc"));
        // --root overrides, and must hold the files.
        let p = Project::discover(std::slice::from_ref(&file), Some(&repo)).unwrap();
        assert_eq!((p.root, p.root_reason), (repo.clone(), RootReason::Flag));
        let err = Project::discover(&[file], Some(&repo.join("svc/api/x"))).unwrap_err();
        assert!(err.contains("--root"), "{err}");
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("p")).unwrap();
        std::fs::write(base.join("secret.star"), "x = 1").unwrap();
        std::os::unix::fs::symlink(base.join("secret.star"), base.join("p/lib.star")).unwrap();
        let p = project(base.join("p").to_str().unwrap());
        let err = p.resolve_module(&base.join("p"), "lib.star").unwrap_err();
        assert!(err.contains("is a symlink to"), "{err}");
    }

    #[test]
    fn display_is_root_relative() {
        let p = project("/p");
        assert_eq!(p.display(Path::new("/p/a/b")), "a/b");
        assert_eq!(p.display(Path::new("/p")), ".");
        assert_eq!(p.display(Path::new("/q/x")), "/q/x");
    }
}

/// Reads a text file that evaluation asked for: only a regular file (a FIFO or
/// a device would block or never end), as UTF-8 (a leading byte-order mark is
/// dropped). The error says which of these it was.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(Error::other("it is a folder, not a file"));
    }
    if !meta.is_file() {
        return Err(Error::other(
            "it is not a regular file (a FIFO, socket or device)",
        ));
    }
    let bytes = std::fs::read(path)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Error::new(
            ErrorKind::InvalidData,
            format!("it is not UTF-8 text (invalid bytes at offset {at})"),
        )
    })
}

#[cfg(test)]
mod read_text_tests {
    use super::read_text;

    #[test]
    fn fifos_folders_boms_and_bad_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix_mkfifo(&fifo);
        let err = read_text(&fifo).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(read_text(dir.path())
            .unwrap_err()
            .to_string()
            .contains("folder"));
        let bom = dir.path().join("bom");
        std::fs::write(&bom, b"\xEF\xBB\xBFx = 1\n").unwrap();
        assert_eq!(read_text(&bom).unwrap(), "x = 1\n");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, b"ok\n\xff\n").unwrap();
        let err = read_text(&bad).unwrap_err().to_string();
        assert!(
            err.contains("not UTF-8 text (invalid bytes at offset 3)"),
            "{err}"
        );
    }

    fn nix_mkfifo(path: &std::path::Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
