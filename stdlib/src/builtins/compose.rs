//! Composition: `include()` another Loopfile into the graph, `load_dynamic()` a module.

use std::path::PathBuf;

use anyhow::anyhow;
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::dict::AllocDict;
use starlark::values::none::NoneType;
use starlark::values::Value;

use crate::decls::call_site;
use crate::values::NONE;

/// The marker error of a nested failure; the loader holds the real diagnostic.
fn nested_failure(what: &str, path: &str) -> anyhow::Error {
    anyhow!("{what} of {path:?} failed")
}

/// The file an `include()` or `load_dynamic()` names, or why it cannot be used.
fn resolve(env: &EvalEnv, verb: &str, path: &str) -> anyhow::Result<PathBuf> {
    env.loader
        .resolve_module(&env.dir, &env.file, path)
        .map_err(|msg| anyhow!("cannot {verb} `{path}`: {msg}"))
}

#[starlark_module]
pub fn compose_builtins(builder: &mut GlobalsBuilder) {
    /// Evaluates another Loopfile in its own folder; its resources join this graph.
    fn include<'v>(path: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<NoneType> {
        let env = EvalEnv::of(eval)?;
        let at = call_site(eval);
        let target = resolve(env, "include", path)?;
        env.loader
            .eval_loopfile(&target, Some(&at))
            .map_err(|_| nested_failure("include", path))?;
        Ok(NONE)
    }

    /// Loads a module at run time and returns its public symbols as a dict.
    fn load_dynamic<'v>(path: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        let at = call_site(eval);
        let target = resolve(env, "load", path)?;
        env.loader.record_read(&env.file, &target);
        let module = env
            .loader
            .load_module(&target, &at)
            .map_err(|_| nested_failure("load_dynamic", path))?;
        let frozen_heap = eval.frozen_heap();
        frozen_heap.add_reference(module.frozen_heap());
        let mut entries = Vec::new();
        for name in module.names() {
            let name = name.as_str().to_owned();
            if name.starts_with('_') {
                continue;
            }
            if let Ok(value) = module.get(&name) {
                // SAFETY: the module's heap was added as a reference of this module's
                // frozen heap above, so the value lives as long as this module.
                let value = unsafe { value.unchecked_frozen_value() };
                entries.push((name, value.to_value()));
            }
        }
        let heap = eval.heap();
        Ok(heap.alloc(AllocDict(
            entries.into_iter().map(|(k, v)| (heap.alloc(k), v)),
        )))
    }
}
