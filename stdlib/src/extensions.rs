//! `ext://NAME` extensions fetched from their repository, as Tilt fetches them.
//!
//! An extension missing from the extension folders (`extensions/`,
//! `LOOP_EXTENSIONS_PATH`) comes from a repository: the one a
//! `v1alpha1.extension(name, repo_name, repo_path)` names (registered with
//! `v1alpha1.extension_repo(name, url, ref)`), else Tilt's default repository
//! (https://github.com/tilt-dev/tilt-extensions, or `LOOP_EXTENSIONS_REPO`),
//! where it is the folder `NAME`. An existing Tilt cache of the default
//! repository (`~/.local/share/tilt-dev/tilt_modules`) is used as it is;
//! otherwise the repository is cloned with `git` into
//! `$XDG_CACHE_HOME/loop/tilt_modules` (else `~/.cache/loop/tilt_modules`) on first
//! use, and used from there afterwards.
//!
//! Registrations count from the call on (a file `include()`d after them
//! sees them) and, since a file's `load()`s are resolved before it runs, in
//! the loading file itself when written with literal strings.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use loop_lang::Loader;

use crate::decls::{Declarations, ExtensionDecl, ExtensionRepo};

/// Tilt's extension repository.
pub const DEFAULT_REPO: &str = "https://github.com/tilt-dev/tilt-extensions";

/// The default repository: `LOOP_EXTENSIONS_REPO`, else Tilt's.
fn default_repo() -> ExtensionRepo {
    ExtensionRepo {
        name: "default".to_owned(),
        url: std::env::var("LOOP_EXTENSIONS_REPO")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_REPO.to_owned()),
        git_ref: String::new(),
    }
}

/// The file of extension `name`, fetching its repository when needed.
pub fn resolve(loader: &Loader, name: &str, from: &Path) -> Result<PathBuf, String> {
    let decls = loader.state::<RefCell<Declarations>>();
    let (mut repos, mut exts, no_fetch) = {
        let d = decls.borrow();
        (d.extension_repos.clone(), d.extensions.clone(), d.no_fetch)
    };
    if let Ok(text) = std::fs::read_to_string(from) {
        prescan(&text, &mut repos, &mut exts);
    }
    let (repo_name, repo_path) = match exts.iter().rev().find(|e| e.name == name) {
        Some(e) => (e.repo_name.clone(), e.repo_path.clone()),
        None => ("default".to_owned(), name.to_owned()),
    };
    let repo = match repos.iter().rev().find(|r| r.name == repo_name) {
        Some(repo) => repo.clone(),
        None if repo_name == "default" => default_repo(),
        None => {
            return Err(format!(
                "extension `{name}` is in the extension repo `{repo_name}`, which no v1alpha1.extension_repo(name='{repo_name}', url=...) registers"
            ))
        }
    };
    if repo.url == DEFAULT_REPO {
        if let Some(tilt) = tilt_cache() {
            let file = tilt.join(&repo_path).join("Tiltfile");
            if file.is_file() {
                return Ok(file);
            }
        }
    }
    let dir = if no_fetch {
        let dir = cache_root()
            .map(|root| cache_dir(&root, &repo))
            .unwrap_or_default();
        if !dir.join(".git").exists() {
            return Err(format!(
                "extension `{name}` is not fetched yet: `loop check` fetches it from {}",
                repo.url
            ));
        }
        dir
    } else {
        fetch(name, &repo)?
    };
    let file = dir.join(&repo_path).join("Tiltfile");
    if file.is_file() {
        Ok(file)
    } else {
        Err(format!(
            "extension `{name}`: the repository {} (fetched into {}) has no {repo_path}/Tiltfile",
            repo.url,
            dir.display()
        ))
    }
}

/// Tilt's cache of its default repository, if there is one.
fn tilt_cache() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    let dir = data.join("tilt-dev/tilt_modules/github.com/tilt-dev/tilt-extensions");
    dir.is_dir().then_some(dir)
}

/// Where fetched repositories are kept: a `tilt_modules` folder, as in Tilt's
/// own cache, which extensions look for (ext://helm_remote walks up from
/// itself to the folder holding `tilt_modules`, and keeps charts there).
fn cache_root() -> Result<PathBuf, String> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("loop").join("tilt_modules"))
        .ok_or_else(|| "neither XDG_CACHE_HOME nor HOME is set".to_owned())
}

/// The folder of a repository in the cache: its URL without the scheme, and
/// its ref (`github.com/tilt-dev/tilt-extensions`).
fn cache_dir(root: &Path, repo: &ExtensionRepo) -> PathBuf {
    let bare = repo
        .url
        .split_once("://")
        .map_or(repo.url.as_str(), |(_, r)| r);
    let mut dir = PathBuf::from(root);
    for part in bare
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        dir.push(loop_lang::project::safe_name(part));
    }
    if !repo.git_ref.is_empty() {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(format!("@{}", repo.git_ref.replace('/', "_")));
        dir.set_file_name(name);
    }
    dir
}

/// The repository's folder in the cache, cloned on first use.
fn fetch(name: &str, repo: &ExtensionRepo) -> Result<PathBuf, String> {
    let root = cache_root().map_err(|e| format!("extension `{name}`: no cache folder: {e}"))?;
    let dir = cache_dir(&root, repo);
    if dir.join(".git").exists() {
        return Ok(dir);
    }
    let how = format!(
        "fetch it with `git clone {} {}`{}, or put the extension in extensions/{name}/",
        repo.url,
        dir.display(),
        if repo.git_ref.is_empty() {
            String::new()
        } else {
            format!(" and `git -C {} checkout {}`", dir.display(), repo.git_ref)
        }
    );
    let fail = |why: String| {
        format!(
            "extension `{name}`: cannot fetch {}: {why}; {how}",
            repo.url
        )
    };
    let parent = dir.parent().unwrap_or(&root);
    std::fs::create_dir_all(parent)
        .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    let tmp = parent.join(format!(
        ".fetch-{}-{}",
        std::process::id(),
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut clone = vec!["clone", "--quiet"];
    if repo.git_ref.is_empty() {
        clone.extend(["--depth", "1"]);
    }
    let tmp_text = tmp.to_string_lossy().into_owned();
    clone.extend([repo.url.as_str(), tmp_text.as_str()]);
    let cloned = git(&clone).and_then(|()| {
        if repo.git_ref.is_empty() {
            Ok(())
        } else {
            git(&["-C", &tmp_text, "checkout", "--quiet", &repo.git_ref])
        }
    });
    if let Err(why) = cloned {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail(why));
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another evaluation may have fetched it meanwhile.
        if !dir.join(".git").exists() {
            return Err(fail(format!("cannot move the clone into place: {e}")));
        }
    }
    Ok(dir)
}

/// Runs `git ARGS` without a terminal prompt; `Err` holds its last error line.
fn git(args: &[&str]) -> Result<(), String> {
    let out = Command::new("git")
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "git is not installed (Debian: apt-get install git)".to_owned()
            }
            _ => format!("cannot run git: {e}"),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!("`git {}` failed: {}", args.join(" "), last.trim()))
}

/// Registrations written with literal strings in `text`:
/// `v1alpha1.extension_repo(name=..., url=..., ref=...)` and
/// `v1alpha1.extension(name=..., repo_name=..., repo_path=...)`.
fn prescan(text: &str, repos: &mut Vec<ExtensionRepo>, exts: &mut Vec<ExtensionDecl>) {
    for (call, is_repo) in [("extension_repo(", true), ("extension(", false)] {
        let pattern = format!("v1alpha1.{call}");
        let mut rest = text;
        while let Some(i) = rest.find(&pattern) {
            rest = &rest[i + pattern.len()..];
            let args = &rest[..rest.find(')').unwrap_or(rest.len())];
            let kw = |key: &str, position: usize| literal_arg(args, key, position);
            if is_repo {
                if let (Some(name), Some(url)) = (kw("name", 0), kw("url", 1)) {
                    repos.push(ExtensionRepo {
                        name,
                        url,
                        git_ref: kw("ref", 2).unwrap_or_default(),
                    });
                }
            } else if let (Some(name), Some(repo_name)) = (kw("name", 0), kw("repo_name", 1)) {
                exts.push(ExtensionDecl {
                    name,
                    repo_name,
                    repo_path: kw("repo_path", 2).unwrap_or_default(),
                });
            }
        }
    }
}

/// The string literal given for `key=` (or at `position`) in a call's
/// argument text.
fn literal_arg(args: &str, key: &str, position: usize) -> Option<String> {
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    let unquote = |v: &str| {
        let v = v.trim();
        let q = v.chars().next()?;
        (matches!(q, '\'' | '"') && v.len() >= 2 && v.ends_with(q))
            .then(|| v[1..v.len() - 1].to_owned())
    };
    for part in &parts {
        if let Some((k, v)) = part.split_once('=') {
            if k.trim() == key {
                return unquote(v);
            }
        }
    }
    parts
        .get(position)
        .filter(|p| !p.contains('='))
        .and_then(|p| unquote(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_read_from_literal_calls() {
        let text = "v1alpha1.extension_repo(name='mine', url=\"file:///r\", ref='v1')\n\
                    v1alpha1.extension('greet', 'mine', repo_path='hello')\n\
                    v1alpha1.extension_repo(name=n, url=u)\n";
        let (mut repos, mut exts) = (Vec::new(), Vec::new());
        prescan(text, &mut repos, &mut exts);
        assert_eq!(
            repos,
            [ExtensionRepo {
                name: "mine".into(),
                url: "file:///r".into(),
                git_ref: "v1".into()
            }]
        );
        assert_eq!(
            exts,
            [ExtensionDecl {
                name: "greet".into(),
                repo_name: "mine".into(),
                repo_path: "hello".into()
            }]
        );
    }

    #[test]
    fn without_fetching_a_missing_extension_says_how_to_fetch_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Tiltfile");
        std::fs::write(
            &file,
            "v1alpha1.extension_repo(name='r', url='file:///nonexistent/loop-test-repo')\n\
             v1alpha1.extension(name='x', repo_name='r', repo_path='x')\n\
             load('ext://x', 'y')\n",
        )
        .unwrap();
        let options = crate::EvalOptions {
            no_fetch: true,
            root: Some(dir.path().to_owned()),
            ..Default::default()
        };
        let failure = crate::evaluate(&[file], &options).unwrap_err();
        let message = &failure.diagnostic.message;
        assert!(
            message.contains("extension `x` is not fetched yet: `loop check` fetches it from file:///nonexistent/loop-test-repo"),
            "{message}"
        );
    }

    #[test]
    fn cache_folders_follow_the_url_and_ref() {
        let repo = |url: &str, git_ref: &str| ExtensionRepo {
            name: "r".into(),
            url: url.into(),
            git_ref: git_ref.into(),
        };
        let root = Path::new("/c");
        assert_eq!(
            cache_dir(root, &repo(DEFAULT_REPO, "")),
            Path::new("/c/github.com/tilt-dev/tilt-extensions")
        );
        assert_eq!(
            cache_dir(root, &repo("file:///tmp/../x y", "v1/2")),
            Path::new("/c/tmp/x_y@v1_2")
        );
    }
}
