//! Wanting runs: causes, their propagation along data edges, early cut-off, and
//! the wait lines announced for them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{Action, Id, RunReason, Scheduler, SkipReason, WaitReason, Wanted};
use crate::graph::EdgeKind;
use crate::run::state::Phase;

impl Scheduler {
    /// Wants a run, unless the resource is manual (then the change waits for a
    /// trigger); propagates to the data-downstream closure.
    pub(super) fn want(&mut self, id: Id, reason: RunReason, paths: &[PathBuf]) {
        if !self.nodes[id].enabled {
            return;
        }
        let manual = self.specs[id].manual
            && matches!(
                reason,
                RunReason::FilesChanged { .. } | RunReason::UpstreamRan { .. }
            );
        if manual {
            let pending = self.nodes[id]
                .manual_pending
                .get_or_insert_with(Wanted::default);
            pending.own.get_or_insert(reason);
            pending.paths.extend(paths.iter().cloned());
            self.propagate(id);
            return;
        }
        self.want_now(id, reason, paths);
    }

    pub(super) fn want_now(&mut self, id: Id, reason: RunReason, paths: &[PathBuf]) {
        let propagates = !matches!(reason, RunReason::FirstStart | RunReason::Retry);
        let node = &mut self.nodes[id];
        let wanted = node.wanted.get_or_insert_with(Wanted::default);
        match reason {
            RunReason::UpstreamRan { .. } => {}
            reason => {
                wanted.own.get_or_insert(reason);
            }
        }
        wanted.paths.extend(paths.iter().cloned());
        if node.phase == Phase::Updating && self.specs[id].cancels {
            self.superseded.push(id);
        }
        self.refresh(id);
        if propagates {
            self.fresh.push(id);
            self.propagate(id);
        }
    }

    /// Wants a run of every data-downstream of `id` (transitively), each once.
    pub(super) fn propagate(&mut self, id: Id) {
        let mut todo = vec![id];
        let mut seen = BTreeSet::new();
        while let Some(up) = todo.pop() {
            let downs: Vec<Id> = self.downs[up]
                .iter()
                .filter(|(_, kind)| *kind == EdgeKind::Data)
                .map(|&(d, _)| d)
                .collect();
            for d in downs {
                if !self.nodes[d].enabled {
                    continue;
                }
                let name = self.specs[up].name.clone();
                if self.specs[d].manual {
                    let pending = self.nodes[d]
                        .manual_pending
                        .get_or_insert_with(Wanted::default);
                    pending.upstreams.insert(up, false);
                    pending
                        .own
                        .get_or_insert(RunReason::UpstreamRan { upstream: name });
                } else {
                    let wanted = self.nodes[d].wanted.get_or_insert_with(Wanted::default);
                    wanted.upstreams.insert(up, false);
                    self.refresh(d);
                    self.fresh.push(d);
                }
                if seen.insert(d) {
                    todo.push(d);
                }
            }
        }
    }

    /// The run of `up` changed its outputs (or became ready): its direct data
    /// downstreams' causes can no longer be cut off.
    pub(super) fn confirm_downstreams(&mut self, up: Id) {
        for i in 0..self.downs[up].len() {
            let (d, kind) = self.downs[up][i];
            if kind != EdgeKind::Data {
                continue;
            }
            let node = &mut self.nodes[d];
            for pending in [&mut node.wanted, &mut node.manual_pending]
                .into_iter()
                .flatten()
            {
                if let Some(confirmed) = pending.upstreams.get_mut(&up) {
                    *confirmed = true;
                }
            }
        }
    }

    /// `up` re-ran and its outputs are unchanged: drop the runs that only it
    /// caused, and so on down the data edges.
    pub(super) fn cut_off(&mut self, up: Id, origin: Id, actions: &mut Vec<Action>) {
        for i in 0..self.downs[up].len() {
            let (d, kind) = self.downs[up][i];
            if kind != EdgeKind::Data {
                continue;
            }
            let node = &mut self.nodes[d];
            let Some(wanted) = node.wanted.as_mut() else {
                continue;
            };
            if wanted.upstreams.get(&up) != Some(&false) {
                continue;
            }
            wanted.upstreams.remove(&up);
            if wanted.is_empty() {
                node.wanted = None;
                let reason = SkipReason::OutputsUnchanged {
                    upstream: self.specs[origin].name.clone(),
                };
                node.last_skip = Some(reason.clone());
                actions.push(Action::Skip {
                    name: self.specs[d].name.clone(),
                    reason,
                });
                self.refresh(d);
                self.cut_off(d, origin, actions);
            }
        }
    }

    /// Tells each wanted downstream of a failed resource that it is blocked.
    pub(super) fn announce_blocked(&mut self, failed: Id, actions: &mut Vec<Action>) {
        let mut todo = vec![failed];
        let mut seen = BTreeSet::new();
        while let Some(up) = todo.pop() {
            for i in 0..self.downs[up].len() {
                let d = self.downs[up][i].0;
                if !seen.insert(d) {
                    continue;
                }
                todo.push(d);
                if self.nodes[d].wanted.is_none() {
                    continue;
                }
                let reason = WaitReason::Blocked {
                    upstream: self.specs[failed].name.clone(),
                };
                self.announce(d, reason, actions);
            }
        }
    }

    /// Says why a resource waits, once per reason.
    pub(super) fn announce(&mut self, id: Id, reason: WaitReason, actions: &mut Vec<Action>) {
        if self.nodes[id].announced.as_ref() != Some(&reason) {
            self.nodes[id].announced = Some(reason.clone());
            actions.push(Action::Wait {
                name: self.specs[id].name.clone(),
                reason,
            });
        }
    }
}
