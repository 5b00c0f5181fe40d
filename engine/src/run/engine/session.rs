//! The session as a whole: when `loop ci` is done or failed, the "up" line, progress
//! lines for long runs, the timeout summary, and stopping everything at the end.

use std::time::Duration;

use super::{futures_join, plural, seconds, Engine, Outcome, PROGRESS_EVERY, SUMMARY_LINES};
use crate::process::{self, watchdog};
use crate::report::Verbosity;
use crate::run::signals::StopSignals;
use crate::run::state::Phase;
use crate::run::Mode;

impl Engine {
    /// In `loop ci`: done when every required resource is ready; failed on the first failure.
    pub(super) fn ci_outcome(&self) -> Option<Outcome> {
        match self.scheduler.ci_outcome()? {
            Ok(()) => {
                self.logs.engine_at(
                    Verbosity::Quiet,
                    &format!(
                        "ci: all {} up in {}",
                        plural(self.scheduler.required_count(), "resource"),
                        seconds(self.started.elapsed())
                    ),
                );
                Some(Outcome::Done)
            }
            Err(name) => {
                let why = match self.scheduler.phase(&name) {
                    Some(Phase::Failed(why)) => why.clone(),
                    _ => String::new(),
                };
                self.logs
                    .engine_at(Verbosity::Quiet, &format!("ci failed: {name}: {why}"));
                self.logs.flush_tail(&name, SUMMARY_LINES);
                Some(Outcome::Failed)
            }
        }
    }

    pub(super) fn report_timeout(&self) {
        let waiting = self.scheduler.unsettled();
        let shown: Vec<String> = waiting
            .iter()
            .take(10)
            .map(|(name, state)| format!("{name} ({state})"))
            .collect();
        let more = match waiting.len().saturating_sub(shown.len()) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        self.logs.engine_at(
            Verbosity::Quiet,
            &format!(
                "ci timed out after {} waiting for {}: {}{more}",
                humantime::format_duration(self.options.timeout),
                plural(waiting.len(), "resource"),
                shown.join(", ")
            ),
        );
    }

    /// Says once when everything first came up.
    pub(super) fn announce_up(&mut self) {
        if self.announced_up || self.options.mode == Mode::Ci {
            return;
        }
        if self.scheduler.ci_outcome() == Some(Ok(())) {
            self.announced_up = true;
            let links: Vec<String> = self
                .order
                .iter()
                .filter_map(|name| {
                    let urls: Vec<&str> = self.nodes[name]
                        .resource
                        .links
                        .iter()
                        .map(|l| l.url.as_str())
                        .collect();
                    (!urls.is_empty()).then(|| format!("{name} {}", urls.join(" ")))
                })
                .collect();
            let links = match links.len() {
                0 => String::new(),
                _ => format!("; links: {}", links.join(", ")),
            };
            self.logs.engine(&format!(
                "{} up in {}{links}; watching for changes (Ctrl-C to stop)",
                plural(self.scheduler.required_count(), "resource"),
                seconds(self.started.elapsed())
            ));
        }
    }

    /// The closing summary: how many runs, what failed or crashes, how long.
    fn summarize(&self) {
        let troubled: Vec<String> = self
            .order
            .iter()
            .filter_map(|name| match self.scheduler.phase(name)? {
                Phase::Failed(why) => Some(format!("{name} ({why})")),
                Phase::Crashing { restarts, .. } => Some(format!(
                    "{name} (crashing, {})",
                    plural(*restarts as usize, "restart")
                )),
                _ => None,
            })
            .collect();
        let failed = match troubled.len() {
            0 => "nothing failed".to_owned(),
            _ => format!("failing: {}", troubled.join(", ")),
        };
        let took = self.started.elapsed();
        let took = if took.as_secs() < 60 {
            seconds(took)
        } else {
            humantime::format_duration(std::time::Duration::from_secs(took.as_secs())).to_string()
        };
        self.logs.engine(&format!(
            "summary: {} in {took}; {failed}",
            plural(self.runs, "run")
        ));
    }

    /// Every 10 s of a long update, sync or start: says it still runs.
    pub(super) fn report_progress(&mut self) {
        for name in &self.order {
            let busy = matches!(
                self.scheduler.phase(name),
                Some(Phase::Updating | Phase::Syncing | Phase::Starting)
            );
            let Some(node) = self.nodes.get_mut(name) else {
                continue;
            };
            let due = PROGRESS_EVERY * (node.progress_lines + 1);
            if busy && node.since.elapsed() >= due {
                node.progress_lines += 1;
                let phase = self.scheduler.phase(name).expect("known").to_string();
                self.logs.status(
                    name,
                    &format!("still {phase} after {}", seconds(node.since.elapsed())),
                );
            }
        }
    }

    /// Stops every process `loop` started: whole groups, SIGTERM then SIGKILL;
    /// then whatever still runs below `loop` (daemons that left their group); a
    /// second stop signal kills at once. Last, lets the watchdog go.
    pub(super) async fn shutdown(&mut self, signals: &mut StopSignals) {
        self.watcher = None;
        self.summarize();
        for node in self.nodes.values_mut() {
            node.generation += 1;
            if let Some(probe) = node.probe.take() {
                probe.abort();
            }
            if let Some(followers) = node.followers.take() {
                followers.abort();
            }
        }
        let grace = self.options.grace;
        let mut hurry = false;
        process::reap_adopted();
        let groups: Vec<u32> = process::live_groups();
        if !groups.is_empty() {
            self.logs
                .engine(&format!("stopping {} process group(s)", groups.len()));
            let logs = self.logs.clone();
            let stop_all = futures_join(
                groups
                    .iter()
                    .map(|&g| {
                        let logs = logs.clone();
                        async move {
                            if process::stop_group(g, grace).await == process::Stopped::Killed {
                                logs.engine(&format!(
                                    "process group {g} ignored SIGTERM for {}: killed",
                                    seconds(grace)
                                ));
                            }
                        }
                    })
                    .collect(),
            );
            tokio::select! {
                _ = stop_all => {}
                _ = signals.recv() => {
                    self.logs.engine("second stop signal: killing every process group");
                    for group in process::live_groups() {
                        process::signal_group(group, nix::sys::signal::Signal::SIGKILL);
                    }
                    hurry = true;
                }
            }
        }
        let adopted = tokio::task::spawn_blocking(move || {
            process::stop_adopted(if hurry { Duration::ZERO } else { grace })
        });
        let stopped = tokio::select! {
            stopped = adopted => stopped.unwrap_or_default(),
            _ = signals.recv(), if !hurry => {
                self.logs.engine("second stop signal: killing every process");
                tokio::task::spawn_blocking(|| process::stop_adopted(Duration::ZERO))
                    .await
                    .unwrap_or_default()
            }
        };
        if stopped.found > 0 {
            self.logs.engine(&format!(
                "stopped {} process(es) that had left their process group",
                stopped.found
            ));
        }
        if stopped.killed > 0 {
            self.logs.engine(&format!(
                "{} of them ignored SIGTERM for {}: killed",
                stopped.killed,
                seconds(grace)
            ));
        }
        process::live_groups();
        let _ =
            tokio::task::spawn_blocking(move || watchdog::finish(grace + Duration::from_secs(1)))
                .await;
    }
}
