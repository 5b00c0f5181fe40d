//! Bounds on one evaluation of a composition of Loopfiles: how many statements it
//! may run and how much memory one file's heap may hold, so that a runaway
//! Loopfile (a loop of 10^10 steps, a string doubled forty times) ends in an
//! error at the statement that crossed the line, never a hang or an abort.
//!
//! Both limits are counted by a hook that Starlark calls before each statement.
//! A single built-in call that allocates a huge value at once (`[0] * 10**9`) or a
//! comprehension that never reaches a statement is not seen by it.

use std::cell::Cell;
use std::rc::Rc;

use starlark::codemap::FileSpanRef;
use starlark::eval::{BeforeStmtFuncDyn, Evaluator};

/// The default of `LOOP_EVAL_MAX_STEPS`: statements one evaluation may run.
pub const DEFAULT_MAX_STEPS: u64 = 50_000_000;
/// The default of `LOOP_EVAL_MAX_MEMORY_MB`: MiB one file's heap may hold.
pub const DEFAULT_MAX_MEMORY_MB: usize = 1024;

/// The limits of one evaluation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_steps: u64,
    pub max_heap_bytes: usize,
}

impl Limits {
    /// The defaults, changed by `LOOP_EVAL_MAX_STEPS` and `LOOP_EVAL_MAX_MEMORY_MB`
    /// (a value that is not a positive number keeps the default).
    pub fn from_env() -> Limits {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&v| v > 0)
        };
        Limits {
            max_steps: var("LOOP_EVAL_MAX_STEPS").unwrap_or(DEFAULT_MAX_STEPS),
            max_heap_bytes: var("LOOP_EVAL_MAX_MEMORY_MB")
                .map_or(DEFAULT_MAX_MEMORY_MB, |mb| mb as usize)
                .saturating_mul(1024 * 1024),
        }
    }
}

/// The per-statement hook: counts steps across the whole evaluation (`steps` is
/// shared by every file) and checks the current file's heap.
pub(crate) struct Budget {
    pub limits: Limits,
    pub steps: Rc<Cell<u64>>,
}

impl<'e> BeforeStmtFuncDyn<'e> for Budget {
    fn call<'v>(
        &mut self,
        _span: FileSpanRef,
        _continued: bool,
        eval: &mut Evaluator<'v, '_, 'e>,
    ) -> starlark::Result<()> {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        if steps > self.limits.max_steps {
            return Err(starlark::Error::new_other(anyhow::anyhow!(
                "evaluation ran more than {} statements (a loop that never ends?); raise the limit with LOOP_EVAL_MAX_STEPS",
                self.limits.max_steps
            )));
        }
        if eval.heap().allocated_bytes() > self.limits.max_heap_bytes {
            return Err(starlark::Error::new_other(anyhow::anyhow!(
                "evaluation holds more than {} MiB of values; raise the limit with LOOP_EVAL_MAX_MEMORY_MB",
                self.limits.max_heap_bytes / (1024 * 1024)
            )));
        }
        Ok(())
    }
}
