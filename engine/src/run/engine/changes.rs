//! Reacting to file changes and starting runs: the batch goes to the scheduler,
//! which decides what runs and when; a started run is a live update when every
//! changed file allows one and the resource is up, else a full update.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use loop_lang::model::ResourceKind;

use super::Engine;
use crate::live_update::{self, Plan};
use crate::run::scheduler::{RunEnd, RunReason};
use crate::run::state::{Phase, RunRecord};
use crate::watch::WatchEvent;

impl Engine {
    pub(super) fn on_watch(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Problem(message) => self.logs.engine(&message),
            WatchEvent::Overflow => {
                self.logs.engine("too many file events at once (the kernel queue overflowed): re-running every resource with deps");
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
        if paths.iter().any(|p| self.loopfile_inputs.contains(p)) {
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
        } else if resource.serve_cmd.is_some() || resource.kind != ResourceKind::Local {
            "updating"
        } else {
            "running"
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
        if !paths.is_empty() && previous.is_ready() {
            if let Some(plan) = self.live_update_plan(name, paths) {
                match plan {
                    (Plan::Sync(plan), image) => {
                        let files = plan.copies.len() + plan.deletes.len();
                        self.scheduler.syncing(name);
                        match image {
                            Some(image_ref) => {
                                self.logs.status(name, &format!("live update: syncing {files} file(s) into the containers of {image_ref}"));
                                self.start_container_sync(name, image_ref, plan);
                            }
                            None => {
                                self.logs.status(
                                    name,
                                    &format!("live update: syncing {files} file(s), no restart"),
                                );
                                self.start_sync(name, plan);
                            }
                        }
                        return;
                    }
                    (Plan::Nothing, _) => {
                        self.finished(name, RunEnd::Ready);
                        return;
                    }
                    (Plan::Full { reason }, image) => {
                        let what =
                            image.map_or("full update".to_owned(), |i| format!("rebuilding {i}"));
                        self.logs.status(name, &format!("{what}: {reason}"));
                    }
                }
            }
        }
        if let Some(node) = self.nodes.get_mut(name) {
            node.restarts = 0;
        }
        if self.nodes[name].resource.kind == ResourceKind::Local {
            self.start_local_update(name, first);
        } else {
            self.start_k8s_update(name);
        }
    }

    /// The live-update plan for changed `paths`, when the resource has live
    /// update steps (for Kubernetes, those of the first image that has them, with
    /// that image's ref).
    fn live_update_plan(&self, name: &str, paths: &[PathBuf]) -> Option<(Plan, Option<String>)> {
        let node = &self.nodes[name];
        let root = &self.root;
        if node.resource.kind == ResourceKind::Local {
            let steps = &node.resource.live_update;
            if node.serve_group.is_none() || !live_update::has_live_update(steps) {
                return None;
            }
            let run_dir = root.join(&node.resource.serve_dir);
            return Some((live_update::plan(steps, root, &run_dir, paths), None));
        }
        let image = node
            .resource
            .images
            .iter()
            .filter_map(|r| self.manifest.image(r))
            .find(|i| live_update::has_live_update(&i.live_update))?;
        let plan = live_update::plan(&image.live_update, root, Path::new("/"), paths);
        Some((plan, Some(image.image_ref.clone())))
    }
}
