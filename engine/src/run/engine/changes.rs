//! Reacting to file changes and starting runs: the batch goes to the scheduler,
//! which decides what runs and when; a started run is a live update when every
//! changed file allows one and the resource is up, else a full update.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use super::Engine;
use crate::live_update::Plan;
use crate::report::Verbosity;
use crate::run::scheduler::{RunEnd, RunReason};
use crate::run::state::{Phase, RunRecord};
use crate::watch::WatchEvent;

impl Engine {
    pub(super) fn on_watch(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Problem(message) => self.logs.engine_at(Verbosity::Quiet, &message),
            WatchEvent::Overflow => {
                self.logs.engine_at(Verbosity::Quiet, "too many file events at once (the kernel queue overflowed): re-running every resource with deps");
                let reason = RunReason::FilesChanged {
                    first: "(too many files to list)".to_owned(),
                    more: 0,
                };
                let direct: Vec<_> = self
                    .order
                    .iter()
                    .filter(|n| !self.nodes[*n].resource.deps.is_empty())
                    .map(|n| (n.clone(), Vec::new(), reason.clone()))
                    .collect();
                self.scheduler.changes(&direct);
                self.reload();
            }
            WatchEvent::Changes(paths) => self.on_changes(&paths),
        }
    }

    /// A batch of changed files: re-evaluate if a Loopfile input changed; every
    /// resource they touch (and its data-downstreams) is wanted once.
    pub(super) fn on_changes(&mut self, paths: &[PathBuf]) {
        if crate::report::verbosity() == Verbosity::Verbose {
            let shown: Vec<String> = paths.iter().take(5).map(|p| self.display(p)).collect();
            let more = paths.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            self.logs.engine_at(
                Verbosity::Verbose,
                &format!("changed: {}{more}", shown.join(", ")),
            );
        }
        // A watched folder (`watch_file(dir)`, `listdir`, `kustomize`, `helm`)
        // counts for every file inside it.
        if paths.iter().any(|p| {
            self.loopfile_inputs
                .iter()
                .any(|input| p.starts_with(input))
        }) {
            self.reload();
        }
        let mut direct: HashMap<&str, Vec<PathBuf>> = HashMap::new();
        for path in paths {
            for name in self.index.directly_affected(&self.display(path)) {
                direct.entry(name).or_default().push(path.clone());
            }
        }
        let direct: Vec<(String, Vec<PathBuf>, RunReason)> = direct
            .into_iter()
            .map(|(name, paths)| {
                let reason = RunReason::files(&paths, |p| self.display(p));
                (name.to_owned(), paths, reason)
            })
            .collect();
        self.scheduler.changes(&direct);
    }

    /// Starts a run the scheduler decided on.
    pub(super) fn start(
        &mut self,
        name: &str,
        reason: &RunReason,
        paths: &[PathBuf],
        first: bool,
        previous: &Phase,
    ) {
        let Some(node) = self.nodes.get(name) else {
            return;
        };
        let resource = &node.resource;
        let reason = match reason {
            RunReason::FilesChanged { .. } if !paths.is_empty() => {
                RunReason::files(paths, |p| self.display(p))
            }
            other => other.clone(),
        };
        let verb = if first {
            "starting"
        } else if resource.cmd.is_some() && resource.serve_cmd.is_none() {
            "running"
        } else {
            "updating"
        };
        self.logs.status(name, &format!("{verb}: {reason}"));
        self.runs += 1;
        if let Some(node) = self.nodes.get_mut(name) {
            node.last_run = Some(RunRecord {
                started: SystemTime::now(),
                reason: reason.to_string(),
                ended: None,
            });
        }
        self.dirty.push(name.to_owned());
        let runtime = self.runtime(name);
        if !paths.is_empty() && previous.is_ready() {
            match runtime.plan(self, name, paths) {
                Some(Plan::Sync(plan)) => {
                    self.scheduler.syncing(name);
                    runtime.sync(self, name, plan);
                    return;
                }
                Some(Plan::Nothing) => {
                    self.finished(name, RunEnd::Ready);
                    return;
                }
                Some(Plan::Full { reason }) => {
                    self.logs.status(name, &format!("full update: {reason}"));
                }
                None => {}
            }
        }
        if let Some(node) = self.nodes.get_mut(name) {
            node.restarts = 0;
        }
        runtime.update(self, name, first);
    }
}
