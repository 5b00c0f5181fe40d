//! Live update: the steps of `live_update=[...]` (`sync`, `run`,
//! `restart_container`, `fall_back_on`, `initial_sync`), as Tilt's
//! `live_update.go`.

use anyhow::{anyhow, bail};
use loop_lang::model::LiveUpdateStep;
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::{Heap, Value};

use super::args::{climbs_out, command};
use super::{field, kind_of, tagged};
use crate::values::{self, list_items, string_list, Arg};

/// The live-update steps of a `live_update=[...]` argument.
pub fn live_update_steps(arg: Arg, v: Option<Value>) -> anyhow::Result<Vec<LiveUpdateStep>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = list_items(v)
        .ok_or_else(|| anyhow!("{arg} must be a list of steps, got {}", values::describe(v)))?;
    let text = |step: Value, name: &str| {
        field(step, name)
            .and_then(|s| s.unpack_str())
            .unwrap_or_default()
            .to_owned()
    };
    let mut steps = Vec::new();
    for item in items {
        let step = match kind_of(item).as_deref() {
            Some("sync") => LiveUpdateStep::Sync { local: text(item, "local_path"), remote: text(item, "remote_path") },
            Some("run") => LiveUpdateStep::Run {
                cmd: command(arg, field(item, "cmd"))?.ok_or_else(|| anyhow!("{arg}: run() with an empty command"))?,
                trigger: string_list(arg, field(item, "trigger"))?,
            },
            Some("restart_container") => LiveUpdateStep::RestartContainer,
            Some("fall_back_on") => LiveUpdateStep::FallBackOn { paths: string_list(arg, field(item, "paths"))? },
            Some("initial_sync") => LiveUpdateStep::InitialSync,
            _ => bail!(
                "{arg} must hold sync(), run(), restart_container(), fall_back_on() or initial_sync() steps, got {}",
                values::describe(item)
            ),
        };
        steps.push(step);
    }
    let position = |f: fn(&LiveUpdateStep) -> bool| steps.iter().rposition(f);
    if let (Some(last_sync), Some(first_run)) = (
        position(|s| matches!(s, LiveUpdateStep::Sync { .. })),
        steps
            .iter()
            .position(|s| matches!(s, LiveUpdateStep::Run { .. })),
    ) {
        if first_run < last_sync {
            bail!("{arg}: sync() steps must come before run() steps");
        }
    }
    Ok(steps)
}

#[starlark_module]
pub fn live_update_builtins(builder: &mut GlobalsBuilder) {
    /// Live update: copy `local_path` (file or folder) to `remote_path` in the target.
    fn sync<'v>(
        local_path: &str,
        remote_path: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        if remote_path.is_empty() {
            bail!("sync: remote_path is empty");
        }
        if climbs_out(remote_path) {
            bail!("sync: remote_path {remote_path:?} climbs out of the folder it is relative to (the container's working directory, or a local resource's folder); use an absolute path, or a relative one that stays inside");
        }
        let local = env.display(&env.resolve(local_path));
        let heap = eval.heap();
        Ok(tagged(
            heap,
            "sync",
            vec![
                ("local_path", heap.alloc(local)),
                ("remote_path", heap.alloc(remote_path)),
            ],
        ))
    }

    /// Live update: run `cmd` in the target, only when a changed file matches `trigger` (if given).
    fn run<'v>(
        cmd: Value<'v>,
        trigger: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        let a = Arg {
            function: "run",
            name: "trigger",
        };
        command(
            Arg {
                function: "run",
                name: "cmd",
            },
            Some(cmd),
        )?
        .ok_or_else(|| anyhow!("run: the command is empty"))?;
        let triggers = values::path_list(env, a, trigger)?;
        let heap = eval.heap();
        let triggers = values::alloc_strings(heap, &triggers);
        Ok(tagged(
            heap,
            "run",
            vec![("cmd", cmd), ("trigger", triggers)],
        ))
    }

    /// Live update: restart the target's process after syncing.
    fn restart_container<'v>(heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        Ok(tagged(heap, "restart_container", vec![]))
    }

    /// Live update: a change to any of these files forces a full rebuild instead.
    fn fall_back_on<'v>(
        files: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        let arg = Arg {
            function: "fall_back_on",
            name: "files",
        };
        let paths = values::path_list(env, arg, Some(files))?;
        let heap = eval.heap();
        let paths = values::alloc_strings(heap, &paths);
        Ok(tagged(heap, "fall_back_on", vec![("paths", paths)]))
    }

    /// Live update: sync every file once when the target first starts.
    fn initial_sync<'v>(heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        Ok(tagged(heap, "initial_sync", vec![]))
    }
}
