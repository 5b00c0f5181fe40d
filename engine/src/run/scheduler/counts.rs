//! Starting runs and keeping the counts that make each event cost what it
//! touches: open upstreams per resource, the startable sets, slots in use.

use super::{Action, Id, RunReason, Scheduler};
use crate::run::state::Phase;

impl Scheduler {
    pub(super) fn start(&mut self, id: Id) -> Action {
        let node = &mut self.nodes[id];
        let wanted = node.wanted.take().unwrap_or_default();
        let first = node.runs == 0;
        node.runs += 1;
        node.announced = None;
        let reason = wanted.own.clone().unwrap_or_else(|| {
            let up = wanted.upstreams.keys().next().copied().unwrap_or(id);
            RunReason::UpstreamRan {
                upstream: self.specs[up].name.clone(),
            }
        });
        node.last_run = Some(reason.clone());
        node.last_skip = None;
        self.running += 1;
        if !self.specs[id].parallel {
            self.serial_running = true;
        }
        let previous = self.nodes[id].phase.clone();
        self.set_phase(id, Phase::Updating);
        Action::Start {
            name: self.specs[id].name.clone(),
            reason,
            paths: wanted.paths.into_iter().collect(),
            first,
            previous,
        }
    }

    pub(super) fn release(&mut self, id: Id) {
        self.running = self.running.saturating_sub(1);
        if !self.specs[id].parallel {
            self.serial_running = false;
        }
    }

    pub(super) fn set_phase(&mut self, id: Id, phase: Phase) {
        let was_failed = matches!(self.nodes[id].phase, Phase::Failed(_));
        let was_starting = self.nodes[id].phase == Phase::Starting;
        self.nodes[id].phase = phase;
        let is_starting = self.nodes[id].phase == Phase::Starting;
        if was_starting != is_starting {
            if is_starting {
                self.starting += 1;
            } else {
                self.starting -= 1;
            }
        }
        // Downstreams' wait reasons name this phase.
        for i in 0..self.downs[id].len() {
            let d = self.downs[id][i].0;
            self.touched.push(d);
        }
        let is_failed = matches!(self.nodes[id].phase, Phase::Failed(_));
        if self.required(id) && was_failed != is_failed {
            let key = (self.rank[id], id);
            if is_failed {
                self.required_failed.insert(key);
            } else {
                self.required_failed.remove(&key);
            }
        }
        self.refresh(id);
    }

    /// Recomputes one resource's openness and startability after its state
    /// changed, and carries a flip of openness down the edges.
    pub(super) fn refresh(&mut self, id: Id) {
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            self.update_startable(id);
            let open = !self.settled(id) || self.nodes[id].open_upstreams > 0;
            if open == self.nodes[id].open {
                continue;
            }
            self.nodes[id].open = open;
            for i in 0..self.downs[id].len() {
                let d = self.downs[id][i].0;
                let count = &mut self.nodes[d].open_upstreams;
                if open {
                    *count += 1;
                } else {
                    *count -= 1;
                }
                todo.push(d);
            }
        }
    }

    pub(super) fn update_startable(&mut self, id: Id) {
        self.touched.push(id);
        let node = &self.nodes[id];
        let startable = node.enabled
            && node.wanted.is_some()
            && !node.phase.is_busy()
            && node.open_upstreams == 0;
        let key = (self.rank[id], id);
        let set = if self.specs[id].parallel {
            &mut self.startable_parallel
        } else {
            &mut self.startable_serial
        };
        if startable {
            set.insert(key);
        } else {
            set.remove(&key);
        }
        let required_open = self.required(id) && !self.settled(id);
        if required_open != self.nodes[id].counted_open {
            self.nodes[id].counted_open = required_open;
            if required_open {
                self.required_open += 1;
            } else {
                self.required_open -= 1;
            }
        }
    }

    /// Recomputes every count from the nodes' states (after construction or a
    /// reload): O(resources + edges).
    pub(super) fn recount(&mut self) {
        for id in 0..self.nodes.len() {
            let open = !self.settled(id);
            self.nodes[id].open = open;
            self.nodes[id].open_upstreams = 0;
        }
        for &id in self.topo().iter() {
            let open = !self.settled(id) || self.nodes[id].open_upstreams > 0;
            self.nodes[id].open = open;
            if open {
                for i in 0..self.downs[id].len() {
                    let d = self.downs[id][i].0;
                    self.nodes[d].open_upstreams += 1;
                }
            }
        }
        self.startable_serial.clear();
        self.startable_parallel.clear();
        self.running = 0;
        self.starting = 0;
        self.serial_running = false;
        self.required_failed.clear();
        self.required_open = 0;
        for id in 0..self.nodes.len() {
            self.nodes[id].counted_open = false;
            self.update_startable(id);
            if self.nodes[id].phase == Phase::Starting {
                self.starting += 1;
            }
            if self.nodes[id].phase.is_busy() {
                self.running += 1;
                if !self.specs[id].parallel {
                    self.serial_running = true;
                }
            }
            if self.required(id) && matches!(self.nodes[id].phase, Phase::Failed(_)) {
                self.required_failed.insert((self.rank[id], id));
            }
        }
        self.fresh.clear();
    }

    pub(super) fn topo(&self) -> Vec<Id> {
        let mut ids: Vec<Id> = (0..self.nodes.len()).collect();
        ids.sort_by_key(|&id| self.rank[id]);
        ids
    }
}
