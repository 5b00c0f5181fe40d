//! Runs one build command to its end: in its own process group (registered with
//! [`crate::process`], so stopping `loop` stops it), its output streamed line
//! by line to the log and the last lines kept for the error message.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loop_lang::model::Cmd;

use crate::process;
use crate::report::LineSink;

/// How many output lines a failure message shows.
pub(crate) const TAIL_LINES: usize = 20;

/// How long what a build command left running gets to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How a command ended, with its last output lines.
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub tail: Vec<String>,
}

/// Runs `cmd` in `dir` with `env` added to `loop`'s environment. Fails, with the
/// reason in words, only when the command cannot be started.
pub(crate) async fn run(
    cmd: &Cmd,
    dir: &Path,
    env: &BTreeMap<String, String>,
    log: &LineSink,
) -> Result<Finished, String> {
    run_reading(cmd, dir, env, log, None, TAIL_LINES).await
}

/// [`run`], with `stdin` as the command's standard input, keeping the last
/// `keep` output lines.
pub(crate) async fn run_reading(
    cmd: &Cmd,
    dir: &Path,
    env: &BTreeMap<String, String>,
    log: &LineSink,
    stdin: Option<std::fs::File>,
    keep: usize,
) -> Result<Finished, String> {
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(keep)));
    let sink: LineSink = {
        let (log, tail) = (log.clone(), tail.clone());
        Arc::new(move |line: &str| {
            log(line);
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == keep {
                tail.pop_front();
            }
            tail.push_back(line.to_owned());
        })
    };
    let status = process::run_to_end_reading(
        cmd,
        dir,
        env,
        process::Output::merged(sink),
        STOP_GRACE,
        stdin,
    )
    .await?;
    let tail = tail.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Finished {
        status,
        tail: tail.iter().cloned().collect(),
    })
}
