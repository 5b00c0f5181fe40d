//! `os.getenv`, `os.environ`, `os.getcwd` and `os.path.*`, relative to the Loopfile.

use std::path::{Component, Path, PathBuf};

use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::dict::AllocDict;
use starlark::values::tuple::UnpackTuple;
use starlark::values::{Heap, Value};

/// Registers the `os` namespace (with `os.path` and a snapshot of `os.environ`).
pub fn os_namespace(builder: &mut GlobalsBuilder) {
    builder.namespace("os", |os| {
        os_functions(os);
        let environ: Vec<(String, String)> = std::env::vars().collect();
        os.set("environ", AllocDict(environ));
        os.namespace("path", os_path_functions);
    });
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
        heap: Heap<'v>,
    ) -> anyhow::Result<Value<'v>> {
        Ok(match std::env::var(key) {
            Ok(v) => heap.alloc(v),
            Err(_) => default.unwrap_or(Value::new_none()),
        })
    }

    /// The folder of the Loopfile being evaluated.
    fn getcwd<'v>(eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<String> {
        Ok(text(&EvalEnv::of(eval)?.dir))
    }
}

#[starlark_module]
fn os_path_functions(builder: &mut GlobalsBuilder) {
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

    fn abspath<'v>(path: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<String> {
        Ok(text(&EvalEnv::of(eval)?.resolve(path)))
    }

    fn relpath<'v>(
        path: &str,
        start: Option<&str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        let env = EvalEnv::of(eval)?;
        let base = start.map_or_else(|| env.dir.clone(), |s| env.resolve(s));
        Ok(text(&relative(&env.resolve(path), &base)))
    }

    fn basename(path: &str) -> anyhow::Result<String> {
        Ok(path.rsplit('/').next().unwrap_or_default().to_owned())
    }

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
