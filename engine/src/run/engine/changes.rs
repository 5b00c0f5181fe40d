//! Reacting to file changes: the affected set of a batch, live update or a full
//! update per resource, and changes that arrive while a resource is busy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use loop_lang::model::{ResourceKind, TriggerMode};

use super::Engine;
use crate::live_update::{self, Plan};
use crate::run::state::Phase;
use crate::watch::WatchEvent;

impl Engine {
    /// Once a run ends, handles the changes that arrived meanwhile.
    pub(super) fn after_run(&mut self, name: &str) {
        let Some(node) = self.nodes.get_mut(name) else {
            return;
        };
        if !node.rerun || node.phase.is_busy() {
            return;
        }
        node.rerun = false;
        let paths: Vec<PathBuf> = std::mem::take(&mut node.pending).into_iter().collect();
        self.changed(name, &paths);
    }

    pub(super) fn on_watch(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Problem(message) => self.logs.engine(&message),
            WatchEvent::Overflow => {
                self.logs.engine("too many file events at once (the kernel queue overflowed): re-running every resource with deps");
                let names: Vec<String> = self
                    .order
                    .iter()
                    .filter(|n| !self.nodes[*n].resource.deps.is_empty())
                    .cloned()
                    .collect();
                for name in names {
                    self.changed(&name, &[]);
                }
                self.reload();
            }
            WatchEvent::Changes(paths) => self.on_changes(&paths),
        }
    }

    /// A batch of changed files: re-evaluate if a Loopfile input changed; run each
    /// affected resource once.
    pub(super) fn on_changes(&mut self, paths: &[PathBuf]) {
        if paths.iter().any(|p| self.loopfile_inputs.contains(p)) {
            self.reload();
        }
        let relative: Vec<String> = paths.iter().map(|p| self.display(p)).collect();
        let affected = self.index.affected(&relative);
        let mut direct: HashMap<&str, Vec<PathBuf>> = HashMap::new();
        for (path, rel) in paths.iter().zip(&relative) {
            for name in self.index.directly_affected(rel) {
                direct.entry(name).or_default().push(path.clone());
            }
        }
        let direct: HashMap<String, Vec<PathBuf>> =
            direct.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        for name in affected {
            let own = direct.get(&name).cloned().unwrap_or_default();
            self.changed(&name, &own);
        }
    }

    /// One resource is affected by a change (`paths`: its own changed files, empty
    /// when it is affected through a data edge).
    pub(super) fn changed(&mut self, name: &str, paths: &[PathBuf]) {
        let root = self.root.clone();
        let Some(node) = self.nodes.get_mut(name) else {
            return;
        };
        if !node.enabled {
            return;
        }
        if node.phase.is_busy() {
            node.rerun = true;
            node.pending.extend(paths.iter().cloned());
            return;
        }
        if node.resource.trigger_mode == TriggerMode::Manual {
            self.logs.status(
                name,
                "files changed; trigger_mode is manual, so it waits to be triggered",
            );
            return;
        }
        if node.resource.kind != ResourceKind::Local {
            if !paths.is_empty() && node.phase == Phase::Ready {
                let image = node
                    .resource
                    .images
                    .iter()
                    .filter_map(|r| self.manifest.image(r))
                    .find(|i| live_update::has_live_update(&i.live_update));
                if let Some(image) = image {
                    match live_update::plan(&image.live_update, &root, Path::new("/"), paths) {
                        Plan::Sync(plan) => {
                            let files = plan.copies.len() + plan.deletes.len();
                            let image_ref = image.image_ref.clone();
                            self.logs.status(name, &format!("live update: syncing {files} file(s) into the containers of {image_ref}"));
                            self.start_container_sync(name, image_ref, plan);
                            return;
                        }
                        Plan::Nothing => return,
                        Plan::Full { reason } => {
                            let text = format!("rebuilding {}: {reason}", image.image_ref);
                            self.logs.status(name, &text);
                        }
                    }
                }
            }
            let node = self.nodes.get_mut(name).expect("known");
            node.queued = true;
            return;
        }
        let steps = &node.resource.live_update;
        let running =
            matches!(node.phase, Phase::Ready | Phase::Starting) && node.serve_group.is_some();
        if !paths.is_empty() && running && live_update::has_live_update(steps) {
            match live_update::plan(steps, &root, &root.join(&node.resource.serve_dir), paths) {
                Plan::Sync(plan) => {
                    let files = plan.copies.len() + plan.deletes.len();
                    self.logs.status(
                        name,
                        &format!("live update: syncing {files} file(s), no restart"),
                    );
                    self.start_sync(name, plan);
                    return;
                }
                Plan::Nothing => return,
                Plan::Full { reason } => self.logs.status(name, &format!("full update: {reason}")),
            }
        }
        let node = self.nodes.get_mut(name).expect("known");
        node.queued = true;
        node.restarts = 0;
    }
}
