//! `loop run` and `loop ci`: run the graph, watch files, re-run what changes affect.
//!
//! One task (the [`engine`]) owns all state; processes, probes and syncs run in
//! their own tasks and report back with messages tagged by a generation number,
//! so that a report about a process that has since been replaced is ignored.

pub mod compose;
mod compose_sync;
pub mod custom_deploy;
pub mod engine;
mod k8s_update;
mod lock;
pub mod logs;
pub mod outputs;
pub mod probe;
pub mod scheduler;
pub mod secrets;
pub mod signals;
mod state;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `loop run` keeps going until stopped; `loop ci` stops when everything is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Run,
    Ci,
}

/// Everything `loop run`/`loop ci` needs from the command line.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub files: Vec<PathBuf>,
    pub args: Vec<String>,
    /// `--root DIR`: the project root instead of the discovered one.
    pub root: Option<PathBuf>,
    pub mode: Mode,
    /// `loop ci`: give up after this long.
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL when stopping a process group.
    pub grace: Duration,
    /// Quiet window that groups file events into one batch.
    pub debounce: Duration,
    /// Whether to watch files (`loop ci` does not).
    pub watch: bool,
    /// The Kubernetes context to use instead of the kubeconfig's current one.
    pub context: Option<String>,
    /// Run every build step even when its inputs and outputs match its last
    /// success (`--no-cache`).
    pub no_cache: bool,
    /// Lines of each resource's log kept in memory.
    pub log_lines: usize,
    /// `loop run`: the session API's port (`Some(0)`: any free port; `None`:
    /// no server, as in `loop ci`).
    pub port: Option<u16>,
    /// `--profile NAME`: what `profile(NAME)` tests against.
    pub profile: Option<String>,
}

impl RunOptions {
    /// What evaluation needs: `config.tilt_subcommand` is `up` under `loop run`
    /// and `ci` under `loop ci`, as in Tilt.
    pub fn eval_options(&self) -> loop_stdlib::EvalOptions {
        loop_stdlib::EvalOptions {
            args: self.args.clone(),
            root: self.root.clone(),
            subcommand: match self.mode {
                Mode::Run => "up",
                Mode::Ci => "ci",
            }
            .to_owned(),
            k8s_context: self.context.clone(),
            profile: self.profile.clone(),
            ..Default::default()
        }
    }
}

/// Runs until stopped (run) or done (ci); returns the exit code.
pub fn main(options: RunOptions) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::report::error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(engine::run(options));
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}
