//! What the session API shows: one view per resource and one of the session,
//! plain data that serializes to the documented JSON (`/api/openapi.json`).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch: the unit of every `*_ms` time the API
/// serves (0 for a clock before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One resource as the control plane shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceView {
    pub name: String,
    /// `local`, `k8s` or `k8s_uncategorized`.
    pub kind: String,
    /// `idle`, `updating`, `syncing`, `starting`, `ready`, `succeeded`, `failed`
    /// or `crashing`.
    pub phase: String,
    /// Why it waits or what it does, in words (`waiting for gen (queued)`,
    /// `blocked: gen failed`, `running: src/a.txt changed`), if anything.
    pub reason: Option<String>,
    /// Whether a run is queued.
    pub queued: bool,
    pub enabled: bool,
    /// `auto` or `manual`.
    pub trigger_mode: String,
    pub auto_init: bool,
    pub last_run: Option<RunView>,
    /// Why the last wanted run was skipped, if it was.
    pub last_skip: Option<String>,
    pub restarts: u32,
    pub last_error: Option<String>,
    pub links: Vec<LinkView>,
    pub port_forwards: Vec<String>,
    pub labels: Vec<String>,
    pub resource_deps: Vec<String>,
    pub data_deps: Vec<String>,
    /// Where it was declared: `file:line:col`.
    pub defined_at: String,
    /// Its buttons (`v1alpha1.ui_button`): pressing one runs its commands.
    #[serde(default)]
    pub buttons: Vec<ButtonView>,
}

/// A button (`POST /api/buttons/{name}` presses it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ButtonView {
    pub name: String,
    pub text: String,
    /// What it asks for before it runs (the body of the press gives the values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<loop_lang::model::ButtonInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
}

/// A run: when it started, why, how long it took and how it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// Milliseconds since the Unix epoch.
    pub start_ms: u64,
    pub reason: String,
    /// While it runs: none.
    pub duration_ms: Option<u64>,
    /// `ok` or the failure, once it ended.
    pub result: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    pub url: String,
    pub name: Option<String>,
}

/// The session as a whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    pub loopfiles: Vec<String>,
    pub args: Vec<String>,
    pub pid: u32,
    /// Milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// The error of the last failed reload (`file:line:col: message`), if the
    /// running graph is not the Loopfiles' current text.
    pub loopfile_error: Option<String>,
    /// Buttons placed on no resource.
    #[serde(default)]
    pub buttons: Vec<ButtonView>,
}

/// Everything at one sequence number.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub seq: u64,
    pub session: SessionView,
    pub resources: Vec<ResourceView>,
}

/// One change in the event stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A resource was added or changed: its new view.
    Resource {
        seq: u64,
        resource: Box<ResourceView>,
    },
    /// A resource was removed by a reload.
    Removed { seq: u64, name: String },
    /// The session changed (args, a reload error).
    Session { seq: u64, session: SessionView },
}

impl Event {
    pub fn seq(&self) -> u64 {
        match self {
            Event::Resource { seq, .. }
            | Event::Removed { seq, .. }
            | Event::Session { seq, .. } => *seq,
        }
    }
}
