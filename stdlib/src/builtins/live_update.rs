//! Live update: the steps of `live_update=[...]` (`sync`, `run`,
//! `restart_container`, `fall_back_on`, `initial_sync`), as Tilt's
//! `live_update.go`.

use std::fmt;

use allocative::Allocative;
use anyhow::{anyhow, bail};
use loop_lang::model::LiveUpdateStep;
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::values::{Heap, NoSerialize, ProvidesStaticType, StarlarkValue, Value};
use starlark::{starlark_module, starlark_simple_value};
use starlark_derive::{starlark_value, StarlarkPagablePanic};

use super::args::{climbs_out, command};
use crate::values::{self, list_items, Arg};

/// Defines one Starlark type of live-update step: a value only the step's
/// built-in makes (a struct could be forged), with Tilt's type name and string
/// form, holding the step as the model has it.
macro_rules! step_type {
    ($name:ident, $type_name:literal) => {
        #[derive(Debug, ProvidesStaticType, NoSerialize, StarlarkPagablePanic, Allocative)]
        pub struct $name {
            #[allocative(skip)]
            step: LiveUpdateStep,
            /// Tilt's string form (`str(step)`), which extensions parse.
            shown: String,
        }
        starlark_simple_value!($name);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.shown)
            }
        }

        #[starlark_value(type = $type_name)]
        impl<'v> StarlarkValue<'v> for $name {
            fn equals(&self, other: Value<'v>) -> starlark::Result<bool> {
                Ok($name::from_value(other).is_some_and(|o| o.step == self.step))
            }
        }
    };
}

step_type!(SyncStep, "live_update_sync_step");
step_type!(RunStep, "live_update_run_step");
step_type!(RestartContainerStep, "live_update_restart_container_step");
step_type!(FallBackOnStep, "live_update_fall_back_on_step");
step_type!(InitialSyncStep, "live_update_initial_sync_step");

/// The step a value holds, if it is a live-update step.
fn step_of(v: Value) -> Option<LiveUpdateStep> {
    SyncStep::from_value(v)
        .map(|s| &s.step)
        .or_else(|| RunStep::from_value(v).map(|s| &s.step))
        .or_else(|| RestartContainerStep::from_value(v).map(|s| &s.step))
        .or_else(|| FallBackOnStep::from_value(v).map(|s| &s.step))
        .or_else(|| InitialSyncStep::from_value(v).map(|s| &s.step))
        .cloned()
}

/// The live-update steps of a `live_update=[...]` argument.
pub fn live_update_steps(arg: Arg, v: Option<Value>) -> anyhow::Result<Vec<LiveUpdateStep>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = list_items(v)
        .ok_or_else(|| anyhow!("{arg} must be a list of steps, got {}", values::describe(v)))?;
    let mut steps = Vec::new();
    for item in items {
        let Some(step) = step_of(item) else {
            bail!(
                "{arg} must hold sync(), run(), restart_container(), fall_back_on() or initial_sync() steps, got {}",
                values::describe(item)
            );
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
        let absolute = env.resolve(local_path);
        let shown = format!("'{}'->'{remote_path}'", absolute.display());
        let step = LiveUpdateStep::Sync {
            local: env.display(&absolute),
            remote: remote_path.to_owned(),
        };
        Ok(eval.heap().alloc(SyncStep { step, shown }))
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
        let cmd = command(
            Arg {
                function: "run",
                name: "cmd",
            },
            Some(cmd),
        )?
        .ok_or_else(|| anyhow!("run: the command is empty"))?;
        let trigger = values::path_list(env, a, trigger)?;
        let absolute: Vec<String> = trigger
            .iter()
            .map(|t| env.resolve(t).display().to_string())
            .collect();
        // As Go prints them: `command: "make" ; triggers: [/a /b]`.
        let shown = format!(
            "command: {:?} ; triggers: [{}]",
            cmd.display(),
            absolute.join(" ")
        );
        let step = LiveUpdateStep::Run { cmd, trigger };
        Ok(eval.heap().alloc(RunStep { step, shown }))
    }

    /// Live update: restart the target's process after syncing.
    fn restart_container<'v>(heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        let step = LiveUpdateStep::RestartContainer;
        let shown = "restart_container".to_owned();
        Ok(heap.alloc(RestartContainerStep { step, shown }))
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
        let absolute: Vec<String> = paths
            .iter()
            .map(|p| env.resolve(p).display().to_string())
            .collect();
        let shown = format!("fall_back_on: [{}]", absolute.join(" "));
        let step = LiveUpdateStep::FallBackOn { paths };
        Ok(eval.heap().alloc(FallBackOnStep { step, shown }))
    }

    /// Live update: sync every file once when the target first starts.
    fn initial_sync<'v>(heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        let step = LiveUpdateStep::InitialSync;
        let shown = "initial_sync".to_owned();
        Ok(heap.alloc(InitialSyncStep { step, shown }))
    }
}
