//! Why a resource waits, derived from the scheduler's state on demand.

use super::{Id, Scheduler, WaitReason};
use crate::run::state::Phase;

impl Scheduler {
    pub(super) fn wait_reason_of(&self, id: Id) -> Option<WaitReason> {
        let node = &self.nodes[id];
        if !node.enabled {
            return Some(WaitReason::Disabled);
        }
        if node.phase.is_busy() {
            return None;
        }
        if node.wanted.is_none() {
            if node.manual_pending.is_some() {
                return Some(WaitReason::ManualPending);
            }
            if node.runs == 0 && node.phase == Phase::Idle {
                return Some(WaitReason::NotStarted);
            }
            return None;
        }
        if node.open_upstreams > 0 {
            return Some(self.open_upstream_reason(id));
        }
        Some(
            if self.running >= self.max_parallel || self.specs[id].parallel {
                WaitReason::ParallelLimit {
                    limit: self.max_parallel,
                }
            } else {
                WaitReason::SerialQueue
            },
        )
    }

    /// The first open upstream on the way up from `id`: a failed one blocks.
    pub(super) fn open_upstream_reason(&self, id: Id) -> WaitReason {
        let mut at = id;
        while let Some(&(up, edge)) = self.ups[at].iter().find(|(u, _)| self.nodes[*u].open) {
            if matches!(self.nodes[up].phase, Phase::Failed(_)) {
                return WaitReason::Blocked {
                    upstream: self.specs[up].name.clone(),
                };
            }
            if !self.settled(up) || self.nodes[up].open_upstreams == 0 {
                let node = &self.nodes[up];
                let state = if !node.enabled {
                    "disabled".to_owned()
                } else if node.wanted.is_some() && !node.phase.is_busy() {
                    "queued".to_owned()
                } else {
                    node.phase.to_string()
                };
                return WaitReason::WaitingFor {
                    upstream: self.specs[up].name.clone(),
                    edge,
                    state,
                };
            }
            at = up;
        }
        WaitReason::SerialQueue
    }
}
