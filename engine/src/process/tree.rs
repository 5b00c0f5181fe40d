//! Processes that left the process group `loop` started them in: background
//! children whose shell exited, double forks, `setsid` daemons.
//!
//! `loop run`/`loop ci` make `loop` a child subreaper (`PR_SET_CHILD_SUBREAPER`):
//! a descendant whose parent exits is re-parented to `loop` instead of PID 1, so
//! every process `loop` started stays below it, whatever group or session it
//! moved to. That has two consequences handled here:
//!
//! - Adopted children become zombies when they exit, and only their parent can
//!   remove them. [`super::reap_adopted`] reaps them without touching the children that
//!   tokio waits for: it lists `loop`'s children from `/proc/self/task/*/children`
//!   and calls `waitpid(pid, WNOHANG)` on the zombies that [`super::start`] did
//!   not start (never `waitpid(-1)`, which would steal a tokio child's exit status).
//!   A zombie left in a serve process's group would otherwise keep the group
//!   "alive" and make every restart wait for the whole grace period.
//! - The same pass records the process group of an adopted child that moved to a
//!   group of its own (a daemon), so that shutdown and the [`super::watchdog`] stop it.
//!
//! [`stop_tree`] stops a set of processes with everything below them (by parent,
//! and by the groups and sessions they lead): SIGTERM, a grace period, SIGKILL.
//! Shutdown uses it for what is left once the groups are stopped, and the watchdog
//! when `loop` died without stopping anything.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{getpgrp, Pid};

/// Makes this process the reaper of its orphaned descendants.
pub fn become_subreaper() -> Result<(), String> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("cannot become the reaper of orphaned processes: {e}"))
}

/// One line of `/proc/PID/stat`, the fields used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub parent: u32,
    pub group: u32,
    pub session: u32,
    /// Exited, waiting for its parent to reap it.
    pub zombie: bool,
}

/// Parses the text of `/proc/PID/stat`; `None` when it is not in that format.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_whitespace().next()?.parse().ok()?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let mut number = || fields.next()?.parse::<u32>().ok();
    Some(ProcStat {
        pid,
        parent: number()?,
        group: number()?,
        session: number()?,
        zombie: state == "Z" || state == "X",
    })
}

/// The state of one process, `None` once it is gone.
pub fn stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Every process visible in `/proc`.
pub fn table() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// The children of this process (of every one of its threads).
pub fn own_children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    children
}

/// This process's own group, which is never signalled as a whole.
pub fn own_group() -> u32 {
    getpgrp().as_raw() as u32
}

/// Processes to stop: these pids, and every member of these groups.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub pids: BTreeSet<u32>,
    pub groups: BTreeSet<u32>,
}

/// Processes and groups that must never be signalled (`loop`, the watchdog, and
/// the group of the terminal job they run in).
#[derive(Clone, Debug, Default)]
pub struct Spare {
    pub pids: BTreeSet<u32>,
    pub groups: BTreeSet<u32>,
}

/// The running processes among `targets` and below them: their descendants, and
/// the members of the groups and sessions they lead, found in `table`.
pub fn members(table: &[ProcStat], targets: &Targets, spare: &Spare) -> BTreeSet<u32> {
    let candidates: Vec<&ProcStat> = table
        .iter()
        .filter(|p| !p.zombie && !spare.pids.contains(&p.pid))
        .collect();
    let mut set: BTreeSet<u32> = candidates
        .iter()
        .filter(|p| targets.pids.contains(&p.pid) || targets.groups.contains(&p.group))
        .map(|p| p.pid)
        .collect();
    loop {
        let before = set.len();
        for p in &candidates {
            if !set.contains(&p.pid)
                && (set.contains(&p.parent)
                    || (set.contains(&p.group) && !spare.groups.contains(&p.group))
                    || set.contains(&p.session))
            {
                set.insert(p.pid);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// How [`stop_tree`] went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStopped {
    /// Running processes found.
    pub found: usize,
    /// Of those, still running after the grace period: killed.
    pub killed: usize,
}

/// Stops `targets` and everything below them: SIGTERM (and SIGCONT), then SIGKILL
/// to what still runs after `grace`. `reap` is called while waiting (in `loop`,
/// to reap adopted children; the watchdog is nobody's reaper). Blocks: at most `grace`
/// plus one second.
pub fn stop_tree(
    targets: &Targets,
    grace: Duration,
    reap: Option<&dyn Fn()>,
    spare: &Spare,
) -> TreeStopped {
    let mut known = members(&table(), targets, spare);
    if known.is_empty() {
        return TreeStopped::default();
    }
    let found = known.len();
    let signal = |pids: &BTreeSet<u32>, signal: Signal| {
        for group in targets.groups.difference(&spare.groups) {
            let _ = killpg(Pid::from_raw(*group as i32), signal);
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(*pid as i32), signal);
        }
    };
    signal(&known, Signal::SIGTERM);
    signal(&known, Signal::SIGCONT);
    let running = |known: &mut BTreeSet<u32>| {
        if let Some(reap) = reap {
            reap();
        }
        let table = table();
        let alive: BTreeSet<u32> = table.iter().filter(|p| !p.zombie).map(|p| p.pid).collect();
        let mut wider = targets.clone();
        wider.pids.extend(known.iter().copied());
        *known = members(&table, &wider, spare)
            .intersection(&alive)
            .copied()
            .collect();
        !known.is_empty()
    };
    let deadline = Instant::now() + grace;
    while running(&mut known) {
        if Instant::now() >= deadline {
            let killed = known.len();
            signal(&known, Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(1);
            while running(&mut known) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            return TreeStopped { found, killed };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    TreeStopped { found, killed: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, parent: u32, group: u32, session: u32) -> ProcStat {
        ProcStat {
            pid,
            parent,
            group,
            session,
            zombie: false,
        }
    }

    #[test]
    fn parses_stat_lines_with_odd_command_names() {
        let s = parse_stat("42 (a) b (c)) S 1 42 7 0 -1 4194560 0").unwrap();
        assert_eq!(s, p(42, 1, 42, 7));
        assert!(parse_stat("42 (x) Z 1 2 3").unwrap().zombie);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S one 2 3"), None);
    }

    #[test]
    fn members_follow_parents_and_led_groups_and_sessions() {
        let table = [
            p(10, 1, 10, 5),   // a serve group leader
            p(11, 10, 10, 5),  // its child
            p(12, 11, 12, 12), // a setsid daemon below it
            p(13, 1, 12, 12),  // a process in the daemon's session, re-parented
            p(14, 1, 5, 5),    // the terminal's shell: not ours
            p(15, 1, 20, 20),  // unrelated
            p(16, 1, 5, 5),    // `loop` itself, in the terminal's group
        ];
        let targets = Targets {
            pids: BTreeSet::new(),
            groups: [10].into(),
        };
        let spare = Spare {
            pids: [16].into(),
            groups: [5].into(),
        };
        let found = members(&table, &targets, &spare);
        assert_eq!(found, [10, 11, 12, 13].into());
    }

    #[test]
    fn zombies_and_spared_processes_are_not_members() {
        let mut zombie = p(11, 10, 10, 5);
        zombie.zombie = true;
        let table = [p(10, 1, 10, 5), zombie, p(12, 10, 10, 5)];
        let targets = Targets {
            pids: [10].into(),
            groups: BTreeSet::new(),
        };
        let spare = Spare {
            pids: [12].into(),
            groups: BTreeSet::new(),
        };
        assert_eq!(members(&table, &targets, &spare), [10].into());
    }
}
