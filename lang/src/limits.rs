//! Bounds on one evaluation of a composition of Loopfiles: how many statements it
//! may run, how much memory one file's heap may hold and how long it may take,
//! so that a runaway Loopfile (a loop of 10^10 steps, a string doubled forty
//! times) ends in an error at the statement that crossed the line, never a hang
//! or an abort.
//!
//! The limits are checked by a hook that Starlark calls before each statement.
//! A single built-in call that allocates a huge value at once (`[0] * 10**9`) or a
//! comprehension that never reaches a statement is not seen by it: the
//! evaluation process of `loop` stops those from outside (its allocator and a
//! timer), at the statement [`crate::current`] says was running.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use starlark::codemap::FileSpanRef;
use starlark::eval::{BeforeStmtFuncDyn, Evaluator};

/// The default of `LOOP_EVAL_MAX_STEPS`: statements one evaluation may run.
pub const DEFAULT_MAX_STEPS: u64 = 50_000_000;
/// The default of `LOOP_EVAL_MAX_MEMORY_MB`: MiB one file's heap may hold.
pub const DEFAULT_MAX_MEMORY_MB: usize = 1024;
/// The default of `LOOP_EVAL_TIMEOUT`: how long one evaluation may take (longer
/// than one `local()` command may, 120 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How many statements run between two looks at the clock.
const CLOCK_EVERY: u64 = 1024;

/// The limits of one evaluation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_steps: u64,
    pub max_heap_bytes: usize,
    pub timeout: Duration,
    /// When the evaluation started plus `timeout`.
    pub deadline: Instant,
}

/// `90`, `90s`, `10m` or `1h` (the form of `LOOP_EVAL_TIMEOUT` and `LOOP_LOCAL_TIMEOUT`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// `LOOP_EVAL_TIMEOUT`, else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Duration {
    std::env::var("LOOP_EVAL_TIMEOUT")
        .ok()
        .and_then(|t| parse_duration(&t))
        .filter(|t| !t.is_zero())
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// The message of an evaluation stopped by its time limit.
pub fn timeout_message(timeout: Duration) -> String {
    format!(
        "evaluation ran longer than {}s; raise the limit with LOOP_EVAL_TIMEOUT (e.g. LOOP_EVAL_TIMEOUT=10m)",
        timeout.as_secs()
    )
}

/// The message of an evaluation stopped by its memory limit.
pub fn memory_message(max_heap_bytes: usize) -> String {
    format!(
        "evaluation holds more than {} MiB of values; raise the limit with LOOP_EVAL_MAX_MEMORY_MB",
        max_heap_bytes / (1024 * 1024)
    )
}

/// The message of an evaluation process stopped by its allocator: it would have
/// held more than `budget_bytes` (twice `LOOP_EVAL_MAX_MEMORY_MB`).
pub fn allocation_message(budget_bytes: usize) -> String {
    format!(
        "evaluation needs more than {} MiB of memory (twice LOOP_EVAL_MAX_MEMORY_MB); raise the limit with LOOP_EVAL_MAX_MEMORY_MB",
        budget_bytes / (1024 * 1024)
    )
}

impl Limits {
    /// The defaults, changed by `LOOP_EVAL_MAX_STEPS`, `LOOP_EVAL_MAX_MEMORY_MB`
    /// and `LOOP_EVAL_TIMEOUT` (a value that is not a positive number keeps the
    /// default); the clock starts now.
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
            timeout: timeout_from_env(),
            deadline: Instant::now() + timeout_from_env(),
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
        span: FileSpanRef,
        _continued: bool,
        eval: &mut Evaluator<'v, '_, 'e>,
    ) -> starlark::Result<()> {
        crate::current::enter(span);
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        if steps > self.limits.max_steps {
            return Err(starlark::Error::new_other(anyhow::anyhow!(
                "evaluation ran more than {} statements (a loop that never ends?); raise the limit with LOOP_EVAL_MAX_STEPS",
                self.limits.max_steps
            )));
        }
        if steps.is_multiple_of(CLOCK_EVERY) && Instant::now() >= self.limits.deadline {
            return Err(starlark::Error::new_other(anyhow::anyhow!(
                timeout_message(self.limits.timeout)
            )));
        }
        if eval.heap().allocated_bytes() > self.limits.max_heap_bytes {
            return Err(starlark::Error::new_other(anyhow::anyhow!(memory_message(
                self.limits.max_heap_bytes
            ))));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("soon"), None);
    }
}
