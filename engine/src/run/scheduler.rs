//! The scheduler: which resource runs next, and why. A state machine with no I/O.
//!
//! Events go in (a batch of changes, a trigger, a run that finished or failed, a
//! serve process that exited or became ready, enable/disable, a reload);
//! [`Scheduler::next_actions`] gives what to start, within the limits. The engine
//! turns actions into processes, syncs and applies, and reports back.
//!
//! The rules:
//! - A resource is *settled* when it is ready (serve process up, `cmd` succeeded,
//!   objects rolled out) and no run of it is wanted. It is *open* when it is not
//!   settled, or when any of its upstreams is open. So openness flows down both
//!   kinds of edge, transitively.
//! - A wanted run starts only when no upstream is open: a resource never starts
//!   while an upstream is queued, running, starting, crashing or failed. A failed
//!   upstream blocks it until that upstream succeeds.
//! - A batch of changes wants a run of every directly affected resource and of
//!   its data-downstream closure, each once. Changes that arrive while a resource
//!   runs are collected and give exactly one more run afterwards.
//! - A run wanted only because an upstream re-ran is dropped when that upstream's
//!   declared outputs came out unchanged (early cut-off), and so on down the chain.
//! - Serial local resources run one at a time; at most `max_parallel_updates` run.
//!
//! Each event costs what it touches: openness is kept as a count of open direct
//! upstreams per resource and updated along the edges whose ends changed, and the
//! resources that may start are kept in ordered sets, so nothing scans the graph.

mod counts;
mod reason;
#[cfg(test)]
mod tests;
mod waits;
mod wants;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use loop_lang::model::{Manifest, TriggerMode};

pub use self::reason::{RunReason, SkipReason, WaitReason};
use super::state::Phase;
use crate::graph::{EdgeKind, Graph};

/// A resource's index in the scheduler.
type Id = usize;

/// What the engine must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a run: a live update when `paths` allow one and the resource is up,
    /// else a full update (`first` tells whether it ever ran in this session).
    Start {
        name: String,
        reason: RunReason,
        paths: Vec<PathBuf>,
        first: bool,
        /// Its phase before this run (a live update needs it up).
        previous: Phase,
    },
    /// A wanted run was dropped.
    Skip { name: String, reason: SkipReason },
    /// A resource now waits (printed once per change of reason).
    Wait { name: String, reason: WaitReason },
    /// Stop the resource's process (it was disabled).
    Stop { name: String },
    /// Abandon its run in progress: a newer version replaces it (it starts next).
    Cancel { name: String },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The update succeeded and a serve process (or a rollout) is starting.
    Starting,
    /// The update left it ready (a rollout that finished, a live update).
    Ready,
    /// It succeeded and has nothing more to start. `outputs_changed` is false
    /// only when the resource declares outputs and they hashed the same as before.
    Succeeded {
        outputs_changed: bool,
    },
    /// It was not needed: its inputs and outputs match its last success.
    Skipped,
    Failed(String),
}

/// The static facts the scheduler needs about one resource.
#[derive(Clone, Debug)]
struct Spec {
    name: String,
    parallel: bool,
    /// A newer version cancels a run in progress.
    cancels: bool,
    auto_init: bool,
    manual: bool,
}

/// A run that is wanted, and everything that wants it.
#[derive(Clone, Debug, Default)]
struct Wanted {
    /// The first cause other than an upstream.
    own: Option<RunReason>,
    paths: BTreeSet<PathBuf>,
    /// Upstreams whose re-run wants this one; `true` once that re-run's outputs
    /// are known to have changed (then the cause can no longer be cut off).
    upstreams: BTreeMap<Id, bool>,
}

impl Wanted {
    fn is_empty(&self) -> bool {
        self.own.is_none() && self.upstreams.is_empty()
    }
}

#[derive(Clone, Debug)]
struct Node {
    enabled: bool,
    phase: Phase,
    /// A run is wanted.
    wanted: Option<Wanted>,
    /// Manual resources: changes waiting for a trigger.
    manual_pending: Option<Wanted>,
    /// How many direct upstreams are open.
    open_upstreams: u32,
    /// Whether it is open (cached, to know when it flips).
    open: bool,
    /// Whether it is counted in `required_open`.
    counted_open: bool,
    runs: u32,
    /// The last wait reason announced, to print each once.
    announced: Option<WaitReason>,
    /// Why the current or last run started.
    last_run: Option<RunReason>,
    last_skip: Option<SkipReason>,
}

/// The scheduler's state for one composition of Loopfiles.
pub struct Scheduler {
    specs: Vec<Spec>,
    nodes: Vec<Node>,
    index: HashMap<String, Id>,
    /// Topological rank: among resources that may start, the lowest goes first.
    rank: Vec<u32>,
    ups: Vec<Vec<(Id, EdgeKind)>>,
    downs: Vec<Vec<(Id, EdgeKind)>>,
    /// Wanted, enabled, not running, no open upstream: (rank, id).
    startable_serial: BTreeSet<(u32, Id)>,
    startable_parallel: BTreeSet<(u32, Id)>,
    running: usize,
    serial_running: bool,
    max_parallel: usize,
    /// Required resources (enabled, `auto_init`) that are not settled.
    required_open: usize,
    /// Required resources that failed, by rank.
    required_failed: BTreeSet<(u32, Id)>,
    /// Resources that became startable since the last [`Scheduler::next_actions`].
    fresh: Vec<Id>,
    /// Resources whose state (or wait reason) may have changed since the last
    /// [`Scheduler::take_touched`].
    touched: Vec<Id>,
    /// Resources whose serve process or rollout is starting.
    starting: usize,
    /// Running resources a newer version cancels.
    superseded: Vec<Id>,
}

impl Scheduler {
    /// A scheduler for a validated graph; `enabled` is `None` for all.
    /// Nothing is wanted yet: call [`Scheduler::start_all`].
    pub fn new(manifest: &Manifest, graph: &Graph, enabled: Option<&BTreeSet<String>>) -> Self {
        let n = manifest.resources.len();
        let mut index = HashMap::with_capacity(n);
        let mut specs = Vec::with_capacity(n);
        for (i, r) in manifest.resources.iter().enumerate() {
            index.insert(r.name.clone(), i);
            specs.push(Spec {
                name: r.name.clone(),
                parallel: r.updates_in_parallel(),
                cancels: r.newer_version_cancels_run(),
                auto_init: r.auto_init,
                manual: r.trigger_mode == TriggerMode::Manual,
            });
        }
        let mut rank = vec![0u32; n];
        for (pos, name) in graph.topo_order().enumerate() {
            rank[index[name]] = pos as u32;
        }
        let mut ups = vec![Vec::new(); n];
        let mut downs = vec![Vec::new(); n];
        for e in graph.edges() {
            let (u, d) = (index[e.upstream], index[e.downstream]);
            ups[d].push((u, e.kind));
            downs[u].push((d, e.kind));
        }
        let nodes = specs
            .iter()
            .map(|s| Node {
                enabled: enabled.is_none_or(|set| set.contains(&s.name)),
                phase: Phase::Idle,
                wanted: None,
                manual_pending: None,
                open_upstreams: 0,
                open: true,
                counted_open: false,
                runs: 0,
                announced: None,
                last_run: None,
                last_skip: None,
            })
            .collect();
        let mut scheduler = Scheduler {
            specs,
            nodes,
            index,
            rank,
            ups,
            downs,
            startable_serial: BTreeSet::new(),
            startable_parallel: BTreeSet::new(),
            running: 0,
            serial_running: false,
            max_parallel: manifest.settings.max_parallel_updates.max(1) as usize,
            required_open: 0,
            required_failed: BTreeSet::new(),
            fresh: Vec::new(),
            touched: Vec::new(),
            starting: 0,
            superseded: Vec::new(),
        };
        scheduler.recount();
        scheduler
    }

    /// Wants the first run of every enabled `auto_init` resource.
    pub fn start_all(&mut self) {
        for id in 0..self.nodes.len() {
            if self.required(id) {
                self.want(id, RunReason::FirstStart, &[]);
            }
        }
    }

    /// Takes over the state of `old` for resources that kept their name (after a
    /// reload). Resources new in this graph get their first run when required.
    pub fn carry_over(&mut self, old: &Scheduler) {
        for (id, spec) in self.specs.iter().enumerate() {
            let Some(&old_id) = old.index.get(&spec.name) else {
                continue;
            };
            let mut node = old.nodes[old_id].clone();
            node.enabled = self.nodes[id].enabled;
            // Upstream ids are of the old graph: keep them by name.
            for pending in [&mut node.wanted, &mut node.manual_pending]
                .into_iter()
                .flatten()
            {
                pending.upstreams = std::mem::take(&mut pending.upstreams)
                    .into_iter()
                    .filter_map(|(u, confirmed)| {
                        let id = *self.index.get(&old.specs[u].name)?;
                        Some((id, confirmed))
                    })
                    .collect();
                if pending.is_empty() {
                    pending.own = Some(RunReason::LoopfileChanged);
                }
            }
            self.nodes[id] = node;
        }
        let added: Vec<Id> = (0..self.specs.len())
            .filter(|id| !old.index.contains_key(&self.specs[*id].name))
            .collect();
        self.recount();
        for id in added {
            if self.required(id) {
                self.want(id, RunReason::FirstStart, &[]);
            }
        }
    }

    /// A batch of changes: each named resource's own changed files (empty for one
    /// affected through an image it deploys without files of its own). Every one
    /// and its data-downstream closure is wanted once.
    pub fn changes(&mut self, direct: &[(String, Vec<PathBuf>, RunReason)]) {
        for (name, paths, reason) in direct {
            if let Some(&id) = self.index.get(name) {
                self.want(id, reason.clone(), paths);
            }
        }
    }

    /// Runs a resource now (a trigger): manual changes pending are included.
    pub fn trigger(&mut self, name: &str) -> bool {
        let Some(&id) = self.index.get(name) else {
            return false;
        };
        let pending = self.nodes[id].manual_pending.take();
        self.want_now(id, RunReason::Triggered, &[]);
        if let Some(pending) = pending {
            let wanted = self.nodes[id].wanted.get_or_insert_with(Wanted::default);
            wanted.paths.extend(pending.paths);
            wanted.upstreams.extend(pending.upstreams);
        }
        true
    }

    /// A resource whose definition changed in a reload.
    pub fn redefined(&mut self, name: &str) {
        if let Some(&id) = self.index.get(name) {
            if self.nodes[id].runs > 0 || self.required(id) {
                self.want_now(id, RunReason::LoopfileChanged, &[]);
            }
        }
    }

    /// Enables or disables a resource. A disabled one takes no updates and its
    /// process is stopped; an enabled one starts again.
    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> Vec<Action> {
        let Some(&id) = self.index.get(name) else {
            return Vec::new();
        };
        if self.nodes[id].enabled == enabled {
            return Vec::new();
        }
        self.nodes[id].enabled = enabled;
        let mut actions = Vec::new();
        if enabled {
            if self.specs[id].auto_init || self.nodes[id].runs > 0 {
                self.want_now(id, RunReason::Enabled, &[]);
            }
        } else {
            let node = &mut self.nodes[id];
            node.wanted = None;
            node.manual_pending = None;
            if node.phase.is_busy() {
                self.release(id);
            }
            self.set_phase(id, Phase::Idle);
            actions.push(Action::Stop {
                name: name.to_owned(),
            });
        }
        self.refresh(id);
        actions
    }

    /// A run ended.
    pub fn finished(&mut self, name: &str, end: RunEnd) -> Vec<Action> {
        let Some(&id) = self.index.get(name) else {
            return Vec::new();
        };
        if self.nodes[id].phase.is_busy() {
            self.release(id);
        }
        let mut actions = Vec::new();
        match end {
            RunEnd::Starting => {
                self.confirm_downstreams(id);
                self.set_phase(id, Phase::Starting);
            }
            RunEnd::Ready => {
                self.confirm_downstreams(id);
                self.set_phase(id, Phase::Ready);
            }
            RunEnd::Succeeded { outputs_changed } => {
                self.set_phase(id, Phase::Succeeded);
                if outputs_changed {
                    self.confirm_downstreams(id);
                } else {
                    self.cut_off(id, id, &mut actions);
                }
            }
            RunEnd::Skipped => {
                self.nodes[id].last_skip = Some(SkipReason::InputsUnchanged);
                self.set_phase(id, Phase::Succeeded);
                self.cut_off(id, id, &mut actions);
            }
            RunEnd::Failed(why) => {
                self.set_phase(id, Phase::Failed(why));
                self.announce_blocked(id, &mut actions);
            }
        }
        actions
    }

    /// A serve process (or rollout) became ready.
    pub fn ready(&mut self, name: &str) {
        if let Some(&id) = self.index.get(name) {
            self.set_phase(id, Phase::Ready);
        }
    }

    /// A serve process exited; it is restarted by the engine with backoff.
    pub fn crashed(&mut self, name: &str, exit: String, restarts: u32) {
        if let Some(&id) = self.index.get(name) {
            self.set_phase(id, Phase::Crashing { exit, restarts });
        }
    }

    /// A crashed serve process was started again.
    pub fn restarted(&mut self, name: &str) {
        if let Some(&id) = self.index.get(name) {
            if matches!(self.nodes[id].phase, Phase::Crashing { .. }) {
                self.set_phase(id, Phase::Starting);
            }
        }
    }

    /// Retries a failed update (the cluster did not answer).
    pub fn retry(&mut self, name: &str) {
        if let Some(&id) = self.index.get(name) {
            self.want_now(id, RunReason::Retry, &[]);
        }
    }

    /// The engine started a live update instead of a full update.
    pub fn syncing(&mut self, name: &str) {
        if let Some(&id) = self.index.get(name) {
            self.nodes[id].phase = Phase::Syncing;
            self.touched.push(id);
        }
    }

    /// The runs that may start now, within the limits, in run order.
    pub fn next_actions(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        for id in std::mem::take(&mut self.superseded) {
            if !self.nodes[id].phase.is_busy() || self.nodes[id].wanted.is_none() {
                continue;
            }
            self.release(id);
            self.set_phase(id, Phase::Idle);
            actions.push(Action::Cancel {
                name: self.specs[id].name.clone(),
            });
        }
        while self.running < self.max_parallel {
            let serial = if self.serial_running {
                None
            } else {
                self.startable_serial.first().copied()
            };
            let parallel = self.startable_parallel.first().copied();
            let next = match (serial, parallel) {
                (Some(s), Some(p)) => s.min(p),
                (Some(s), None) => s,
                (None, Some(p)) => p,
                (None, None) => break,
            };
            actions.push(self.start(next.1));
        }
        // Say why a resource that was just wanted does not start; not for the
        // transient wait for a free slot.
        for id in std::mem::take(&mut self.fresh) {
            let node = &self.nodes[id];
            if node.wanted.is_none() || node.phase.is_busy() {
                continue;
            }
            match self.wait_reason_of(id) {
                None | Some(WaitReason::ParallelLimit { .. }) => {}
                Some(reason) => self.announce(id, reason, &mut actions),
            }
        }
        actions
    }

    /// In `loop ci`: `Some(Ok)` once every required resource is settled,
    /// `Some(Err(name))` on the first required one that failed.
    pub fn ci_outcome(&self) -> Option<Result<(), String>> {
        if let Some(&(_, id)) = self.required_failed.first() {
            return Some(Err(self.specs[id].name.clone()));
        }
        (self.required_open == 0).then_some(Ok(()))
    }

    /// Whether nothing runs, starts or may start now (what is left waits for a
    /// failed upstream or a trigger).
    pub fn is_quiet(&self) -> bool {
        self.running == 0
            && self.starting == 0
            && self.startable_serial.is_empty()
            && self.startable_parallel.is_empty()
    }

    /// Drops the record of touched resources (nobody shows them).
    pub fn forget_touched(&mut self) {
        self.touched.clear();
    }

    /// The resources whose state may have changed since the last call.
    pub fn take_touched(&mut self) -> Vec<String> {
        let mut ids = std::mem::take(&mut self.touched);
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|id| self.specs[id].name.clone())
            .collect()
    }

    /// How many resources `loop ci` waits for.
    pub fn required_count(&self) -> usize {
        (0..self.nodes.len())
            .filter(|&id| self.required(id))
            .count()
    }

    /// The phase of a resource.
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.index.get(name).map(|&id| &self.nodes[id].phase)
    }

    /// Whether a run of the resource is wanted (queued).
    pub fn is_wanted(&self, name: &str) -> bool {
        self.index
            .get(name)
            .is_some_and(|&id| self.nodes[id].wanted.is_some())
    }

    /// Whether the resource is enabled.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.index
            .get(name)
            .is_some_and(|&id| self.nodes[id].enabled)
    }

    /// Why the resource is where it is: the wait reason if it waits, else none
    /// (its phase and last run/skip say the rest).
    pub fn wait_reason(&self, name: &str) -> Option<WaitReason> {
        let id = *self.index.get(name)?;
        self.wait_reason_of(id)
    }

    /// Why its current or last run started, and the last skip.
    pub fn last_reasons(&self, name: &str) -> (Option<&RunReason>, Option<&SkipReason>) {
        match self.index.get(name) {
            Some(&id) => (
                self.nodes[id].last_run.as_ref(),
                self.nodes[id].last_skip.as_ref(),
            ),
            None => (None, None),
        }
    }

    /// Required resources that are not settled, with their state, in run order.
    pub fn unsettled(&self) -> Vec<(String, String)> {
        let mut ids: Vec<Id> = (0..self.nodes.len())
            .filter(|&id| self.required(id) && !self.settled(id))
            .collect();
        ids.sort_by_key(|&id| self.rank[id]);
        ids.into_iter()
            .map(|id| {
                let state = match self.wait_reason_of(id) {
                    Some(reason) => reason.to_string(),
                    None => self.nodes[id].phase.to_string(),
                };
                (self.specs[id].name.clone(), state)
            })
            .collect()
    }

    fn required(&self, id: Id) -> bool {
        self.nodes[id].enabled && self.specs[id].auto_init
    }

    fn settled(&self, id: Id) -> bool {
        let node = &self.nodes[id];
        node.enabled && node.phase.is_ready() && node.wanted.is_none()
    }
}
