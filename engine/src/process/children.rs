//! The direct children `loop` started and has not waited for yet: what the
//! reaper of adopted orphans must leave to their own waiters.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

static SPAWNED: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// The pids of the children started by [`super::start`] (and the watchdog) and
/// not yet waited for. Held, it keeps a new child from being recorded.
pub fn spawned() -> MutexGuard<'static, BTreeSet<u32>> {
    SPAWNED.lock().unwrap_or_else(|e| e.into_inner())
}
