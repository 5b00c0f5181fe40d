//! Evaluation in this process, on a thread with a stack large enough for deep
//! Loopfiles: what `loop __eval` runs in its child, and what every command runs
//! when isolation is off (tests, benchmarks).

use std::path::PathBuf;

use loop_lang::diag::SourceMap;
use loop_lang::Diagnostic;
use loop_stdlib::{EvalFailure, EvalOptions, Evaluation};

/// The stack that evaluation runs on. Deep `load()`/`include()` chains and deep
/// nesting recurse in the Starlark parser and evaluator; the same large stack
/// for every command (a reload used to run on a 2 MiB worker thread and abort
/// `loop run` on a chain that `loop check` accepted). Only touched pages cost
/// memory.
const EVAL_STACK: usize = 512 << 20;

/// Evaluates Loopfiles in this process, on a thread of its own with [`EVAL_STACK`].
pub fn evaluate_here(
    files: &[PathBuf],
    options: &EvalOptions,
) -> Result<Evaluation, Box<EvalFailure>> {
    let (files, options) = (files.to_vec(), options.clone());
    let spawned = std::thread::Builder::new()
        .name("loop-eval".into())
        .stack_size(EVAL_STACK)
        .spawn(move || loop_stdlib::evaluate(&files, &options));
    let failure = |text: &str| {
        Box::new(EvalFailure {
            diagnostic: Diagnostic::new(text),
            sources: SourceMap::default(),
            log: Vec::new(),
        })
    };
    match spawned {
        Ok(thread) => thread.join().unwrap_or_else(|_| {
            Err(failure(
                "evaluation stopped unexpectedly (an internal error)",
            ))
        }),
        Err(e) => Err(failure(&format!("cannot start the evaluation thread: {e}"))),
    }
}
