//! The state of one resource while `loop` runs it.

use std::fmt;
use std::time::{Duration, Instant};

use loop_lang::model::Resource;
use tokio::task::AbortHandle;

/// Where a resource is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not started: `auto_init=False`, not enabled, or waiting for its first run.
    Idle,
    /// Its `cmd` runs (or the previous serve process is being stopped).
    Updating,
    /// Files are being synced into it (live update).
    Syncing,
    /// Its serve process runs and the readiness probe has not passed yet.
    Starting,
    /// Its serve process runs and is ready.
    Ready,
    /// Its `cmd` succeeded and it has no serve process.
    Succeeded,
    Failed(String),
    /// Its serve process exited; it is restarted with backoff.
    Crashing {
        exit: String,
        restarts: u32,
    },
}

impl Phase {
    /// Whether dependents may start.
    pub fn is_ready(&self) -> bool {
        matches!(self, Phase::Ready | Phase::Succeeded)
    }

    /// Whether an update or sync is running.
    pub fn is_busy(&self) -> bool {
        matches!(self, Phase::Updating | Phase::Syncing)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Idle => f.write_str("idle"),
            Phase::Updating => f.write_str("updating"),
            Phase::Syncing => f.write_str("syncing"),
            Phase::Starting => f.write_str("starting"),
            Phase::Ready => f.write_str("ready"),
            Phase::Succeeded => f.write_str("succeeded"),
            Phase::Failed(why) => write!(f, "failed: {why}"),
            Phase::Crashing { exit, restarts } => {
                write!(f, "crashing ({exit}; {restarts} restarts)")
            }
        }
    }
}

/// What the engine holds for one resource while it runs it (the scheduler holds
/// its phase and why).
pub struct Node {
    pub resource: Resource,
    /// Bumped whenever a new process, update or sync starts; reports carry it.
    pub generation: u64,
    /// The process group of the serve process, while it runs.
    pub serve_group: Option<u32>,
    pub probe: Option<AbortHandle>,
    /// Kubernetes: the task following logs and holding port-forwards.
    pub followers: Option<AbortHandle>,
    /// The workloads the followers follow (`kind/namespace/name`): for a
    /// `k8s_custom_deploy`, a new set after an update restarts them.
    pub followed: Vec<String>,
    /// The update in progress, when a newer version may cancel it.
    pub update: Option<AbortHandle>,
    pub restarts: u32,
    /// When the current phase began.
    pub since: Instant,
    /// "still updating" lines printed for the current phase.
    pub progress_lines: u32,
    /// The current or last run.
    pub last_run: Option<RunRecord>,
    /// The last failure, until a run succeeds.
    pub last_error: Option<String>,
    /// Retries in a row of a failure that may pass later, with the same message.
    pub retries: u32,
}

/// One run of a resource, for the control plane.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub started: std::time::SystemTime,
    pub reason: String,
    /// How long it took and how it ended (`Ok` or the failure), once it ended.
    pub ended: Option<(std::time::Duration, Result<(), String>)>,
}

impl Node {
    pub fn new(resource: Resource) -> Node {
        Node {
            resource,
            generation: 0,
            serve_group: None,
            probe: None,
            followers: None,
            followed: Vec::new(),
            update: None,
            restarts: 0,
            since: Instant::now(),
            progress_lines: 0,
            last_run: None,
            last_error: None,
            retries: 0,
        }
    }

    /// Starts a new generation (a new process, update or sync): reports of older
    /// ones are ignored from now on. Returns it, and marks the phase's start.
    pub fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.begin();
        self.generation
    }

    /// How long to wait before retrying `failure` (which may pass later), and
    /// whether it is the same failure as the retry before: the wait doubles
    /// from `first` with each retry of the same failure, up to eight times it.
    pub fn retry_wait(&mut self, failure: &str, first: Duration) -> (Duration, bool) {
        let again = self.last_error.as_deref() == Some(failure);
        self.retries = if again { self.retries + 1 } else { 0 };
        (doubled(first, self.retries, first * 8), again)
    }

    /// Marks the start of a new phase (for durations and progress lines).
    pub fn begin(&mut self) {
        self.since = Instant::now();
        self.progress_lines = 0;
    }
}

/// `first` doubled `times` times, at most `max`.
pub fn doubled(first: Duration, times: u32, max: Duration) -> Duration {
    first.saturating_mul(1 << times.min(10)).min(max)
}
