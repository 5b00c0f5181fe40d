//! Why a resource is in its state, as data: why it runs, why it waits, why a run
//! was skipped. The log stream prints these on each transition and the control
//! plane serves them; [`fmt::Display`] gives the one-line form.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::graph::EdgeKind;

/// Why a run was started (or is wanted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunReason {
    /// The first start of the session.
    FirstStart,
    /// Files it depends on changed: the first (root-relative) and how many more.
    FilesChanged { first: String, more: usize },
    /// An upstream re-ran along a data edge.
    UpstreamRan { upstream: String },
    /// Someone asked for it (`loop trigger`, the dashboard).
    Triggered,
    /// Its definition in a Loopfile changed.
    LoopfileChanged,
    /// It was enabled.
    Enabled,
    /// A failed attempt is retried (an unreachable cluster).
    Retry,
}

/// Why a resource does not run now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitReason {
    /// An upstream (or one of its own upstreams) has not settled.
    WaitingFor {
        upstream: String,
        edge: EdgeKind,
        state: String,
    },
    /// An upstream failed; it runs once that upstream succeeds.
    Blocked { upstream: String },
    /// Another serial local update runs (`allow_parallel=False`).
    SerialQueue,
    /// `max_parallel_updates` updates run already.
    ParallelLimit { limit: usize },
    /// `trigger_mode` is manual and changes are waiting for a trigger.
    ManualPending,
    /// Not started: `auto_init=False` or manual, waiting for a trigger.
    NotStarted,
    /// Disabled: it takes no updates until enabled.
    Disabled,
}

/// Why a wanted run did not happen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    /// It was wanted only because `upstream` re-ran, and the upstream's declared
    /// outputs came out unchanged.
    OutputsUnchanged { upstream: String },
    /// Its inputs and outputs match its last successful run (a warm start).
    InputsUnchanged,
}

impl RunReason {
    /// The reason for a run caused by changed `paths` (root-relative for display).
    pub fn files(paths: &[PathBuf], display: impl Fn(&PathBuf) -> String) -> RunReason {
        match paths.first() {
            Some(first) => RunReason::FilesChanged {
                first: display(first),
                more: paths.len() - 1,
            },
            None => RunReason::FilesChanged {
                first: String::new(),
                more: 0,
            },
        }
    }
}

impl fmt::Display for RunReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunReason::FirstStart => f.write_str("first start"),
            RunReason::FilesChanged { first, more: 0 } => write!(f, "{first} changed"),
            RunReason::FilesChanged { first, more } => {
                write!(f, "{first} changed (+{more} more)")
            }
            RunReason::UpstreamRan { upstream } => write!(f, "{upstream} re-ran (data_deps)"),
            RunReason::Triggered => f.write_str("triggered"),
            RunReason::LoopfileChanged => f.write_str("its Loopfile definition changed"),
            RunReason::Enabled => f.write_str("enabled"),
            RunReason::Retry => f.write_str("retrying"),
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::WaitingFor {
                upstream, state, ..
            } => write!(f, "waiting for {upstream} ({state})"),
            WaitReason::Blocked { upstream } => write!(f, "blocked: {upstream} failed"),
            WaitReason::SerialQueue => f.write_str("queued: one local update at a time"),
            WaitReason::ParallelLimit { limit } => {
                write!(f, "queued: {limit} updates run (max_parallel_updates)")
            }
            WaitReason::ManualPending => f.write_str("manual: changes pending"),
            WaitReason::NotStarted => f.write_str("not started: waits to be triggered"),
            WaitReason::Disabled => f.write_str("disabled"),
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::OutputsUnchanged { upstream } => {
                write!(f, "outputs of {upstream} unchanged")
            }
            SkipReason::InputsUnchanged => f.write_str("inputs unchanged since last success"),
        }
    }
}
