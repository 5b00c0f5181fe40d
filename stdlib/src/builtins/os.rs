//! `os.getenv`, `os.putenv`, `os.unsetenv`, `os.environ`, `os.name`, `os.getcwd`
//! and `os.path.*`, relative to the Loopfile.

use std::path::{Component, Path, PathBuf};

use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::dict::AllocDict;
use starlark::values::none::NoneType;
use starlark::values::tuple::UnpackTuple;
use starlark::values::Value;

use crate::decls::declarations;
use crate::values::NONE;

/// Registers the `os` namespace (with `os.path` and a snapshot of `os.environ`).
pub fn os_namespace(builder: &mut GlobalsBuilder) {
    builder.namespace("os", |os| {
        os_functions(os);
        os.set("name", "posix");
        let environ: Vec<(String, String)> = std::env::vars().collect();
        os.set("environ", AllocDict(environ));
        os.namespace("path", os_path_functions);
    });
}

/// An environment variable name must be non-empty and hold no `=` or NUL.
fn check_env_key(function: &str, key: &str) -> anyhow::Result<()> {
    if key.is_empty() || key.contains(['=', '\0']) {
        anyhow::bail!("{function}: {key:?} is not a valid environment variable name");
    }
    Ok(())
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `target` relative to `base` (both absolute and normalized), like Python's relpath.
fn relative(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[starlark_module]
fn os_functions(builder: &mut GlobalsBuilder) {
    /// An environment variable, or `default` when it is unset.
    fn getenv<'v>(
        key: &str,
        default: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let set = match EvalEnv::of(eval) {
            Ok(env) => declarations(env).borrow().env.get(key).cloned(),
            Err(_) => None,
        };
        let value = match set {
            Some(value) => value,
            None => std::env::var(key).ok(),
        };
        let heap = eval.heap();
        Ok(match value {
            Some(v) => heap.alloc(v),
            None => default.unwrap_or(Value::new_none()),
        })
    }

    /// Sets an environment variable for the later `local()` calls and for every
    /// command the resources run (Tilt sets it in its own environment).
    fn putenv<'v>(
        key: &str,
        value: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        check_env_key("os.putenv", key)?;
        let env = EvalEnv::of(eval)?;
        declarations(env)
            .borrow_mut()
            .env
            .insert(key.to_owned(), Some(value.to_owned()));
        Ok(NONE)
    }

    /// Unsets an environment variable for the later `local()` calls and for every
    /// command the resources run.
    fn unsetenv<'v>(key: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<NoneType> {
        check_env_key("os.unsetenv", key)?;
        let env = EvalEnv::of(eval)?;
        declarations(env)
            .borrow_mut()
            .env
            .insert(key.to_owned(), None);
        Ok(NONE)
    }

    /// The folder of the Loopfile being evaluated.
    fn getcwd<'v>(eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<String> {
        Ok(text(&EvalEnv::of(eval)?.dir))
    }
}

#[starlark_module]
fn os_path_functions(builder: &mut GlobalsBuilder) {
    /// Joins path parts with `/` (an absolute part restarts the path).
    fn join(#[starlark(args)] parts: UnpackTuple<String>) -> anyhow::Result<String> {
        let mut path = PathBuf::new();
        for part in parts.items {
            path.push(part);
        }
        Ok(text(&path))
    }

    /// Whether the path exists (relative paths from the Loopfile's folder); watched.
    fn exists<'v>(path: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<bool> {
        let env = EvalEnv::of(eval)?;
        let path = env.resolve(path);
        env.loader.record_read(&env.file, &path);
        Ok(path.exists())
    }

    /// The absolute path (relative paths from the Loopfile's folder).
    fn abspath<'v>(path: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<String> {
        Ok(text(&EvalEnv::of(eval)?.resolve(path)))
    }

    /// The absolute path with symlinks resolved, as far as it exists (relative
    /// paths from the Loopfile's folder), as Python's `os.path.realpath`.
    fn realpath<'v>(path: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<String> {
        let path = EvalEnv::of(eval)?.resolve(path);
        Ok(text(&std::fs::canonicalize(&path).unwrap_or(path)))
    }

    /// `path` relative to `start` (default: the Loopfile's folder).
    fn relpath<'v>(
        path: &str,
        start: Option<&str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        let env = EvalEnv::of(eval)?;
        let base = start.map_or_else(|| env.dir.clone(), |s| env.resolve(s));
        Ok(text(&relative(&env.resolve(path), &base)))
    }

    /// The last part of a path.
    fn basename(path: &str) -> anyhow::Result<String> {
        Ok(path.rsplit('/').next().unwrap_or_default().to_owned())
    }

    /// The path without its last part.
    fn dirname(path: &str) -> anyhow::Result<String> {
        Ok(match path.rfind('/') {
            Some(0) => "/".to_owned(),
            Some(i) => path[..i].to_owned(),
            None => String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/a/b/c"), Path::new("/a")),
            PathBuf::from("b/c")
        );
        assert_eq!(
            relative(Path::new("/a/x"), Path::new("/a/b")),
            PathBuf::from("../x")
        );
        assert_eq!(
            relative(Path::new("/a"), Path::new("/a")),
            PathBuf::from(".")
        );
    }
}
