//! The project: its root folder, extension folders, and how load paths resolve.

use std::path::{Component, Path, PathBuf};

/// The marker file that makes a folder the project root.
pub const ROOT_MARKER: &str = ".loop-root";

/// A project root and where `ext://` modules come from.
#[derive(Clone, Debug)]
pub struct Project {
    pub root: PathBuf,
    pub extension_dirs: Vec<PathBuf>,
}

impl Project {
    /// Finds the root for a set of top-level Loopfiles: the nearest folder above the
    /// first one holding a `.loop-root` marker, else the deepest folder holding them all.
    /// `LOOP_EXTENSIONS_PATH` (`:`-separated) adds extension folders after `extensions/`.
    pub fn discover(loopfiles: &[PathBuf]) -> Project {
        let dirs: Vec<PathBuf> = loopfiles
            .iter()
            .map(|f| {
                absolute(f)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            })
            .collect();
        let marked = dirs
            .first()
            .and_then(|d| d.ancestors().find(|a| a.join(ROOT_MARKER).is_file()))
            .filter(|marked| dirs.iter().all(|d| d.starts_with(marked)))
            .map(Path::to_path_buf);
        let root = marked.unwrap_or_else(|| common_ancestor(&dirs));
        let mut extension_dirs = vec![root.join("extensions")];
        if let Some(paths) = std::env::var_os("LOOP_EXTENSIONS_PATH") {
            extension_dirs
                .extend(std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()));
        }
        Project {
            root,
            extension_dirs,
        }
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
            return Err(format!(
                "`{spec}` resolves to {}, outside the project root {}",
                path.display(),
                self.root.display()
            ));
        }
        Ok(path)
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
        assert!(p.resolve_module(dir, "ext://../x").is_err());
    }

    #[test]
    fn root_is_common_ancestor_without_marker() {
        let dirs = [PathBuf::from("/a/b/c"), PathBuf::from("/a/b/d/e")];
        assert_eq!(common_ancestor(&dirs), PathBuf::from("/a/b"));
    }

    #[test]
    fn display_is_root_relative() {
        let p = project("/p");
        assert_eq!(p.display(Path::new("/p/a/b")), "a/b");
        assert_eq!(p.display(Path::new("/p")), ".");
        assert_eq!(p.display(Path::new("/q/x")), "/q/x");
    }
}
