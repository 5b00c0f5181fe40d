//! Reload: re-evaluating the Loopfiles in the background and applying the
//! difference, so that only added, changed and removed resources move.

use std::collections::HashSet;

use loop_lang::diag::SourceMap;
use loop_lang::model::{Manifest, Resource};
use loop_lang::Diagnostic;
use loop_stdlib::{EvalFailure, Evaluation};

use super::{Engine, Msg};
use crate::report::Verbosity;
use crate::run::scheduler::Scheduler;
use crate::{load, report};

impl Engine {
    /// Re-evaluates the Loopfiles in the background.
    pub(super) fn reload(&mut self) {
        if self.reloading {
            self.reload_again = true;
            return;
        }
        self.reloading = true;
        self.logs.engine("Loopfile changed: re-evaluating");
        let files = self.options.files.clone();
        let eval_options = self.options.eval_options();
        let tx = self.tx.clone();
        let logs = self.logs.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let files = load::loopfiles(&files).unwrap_or_default();
            let result = load::evaluate(&files, &eval_options);
            logs.engine_at(
                Verbosity::Verbose,
                &format!(
                    "evaluated {} Loopfile(s) in {} ms",
                    files.len(),
                    started.elapsed().as_millis()
                ),
            );
            let _ = tx.send(Msg::Evaluated(Box::new(result)));
        });
    }

    /// A reload failed: shows why (also to the control plane), keeps the graph.
    fn keep_previous(&mut self, diagnostics: &[Diagnostic], sources: &SourceMap) {
        for diag in diagnostics {
            report::diagnostic(diag, sources);
        }
        self.logs.engine_at(
            Verbosity::Quiet,
            "the Loopfile has an error (above); the previous graph keeps running",
        );
        if let Some(control) = &self.control {
            let text: Vec<String> = diagnostics
                .iter()
                .map(|d| d.render(sources, false))
                .collect();
            control
                .board
                .update_session(|s| s.loopfile_error = Some(text.join("\n")));
        }
    }

    /// Applies a re-evaluation: only added, removed and changed resources move.
    /// Returns whether the watcher must be restarted.
    pub(super) fn reloaded(&mut self, result: Result<Evaluation, Box<EvalFailure>>) -> bool {
        let evaluation = match result {
            Ok(evaluation) => evaluation,
            Err(failure) => {
                report::evaluation_log(&failure.log);
                self.keep_previous(&[failure.diagnostic], &failure.sources);
                return false;
            }
        };
        report::evaluation_log(&evaluation.log);
        let (graph, index) = match load::validate(&evaluation) {
            Ok(pair) => pair,
            Err(diagnostics) => {
                self.keep_previous(&diagnostics, &evaluation.sources);
                return false;
            }
        };
        let new = evaluation.manifest;
        let enabled = match super::enabled_set(&new, &graph) {
            Ok(enabled) => enabled,
            Err(message) => {
                self.keep_previous(&[Diagnostic::new(message)], &evaluation.sources);
                return false;
            }
        };
        let new_names: HashSet<&str> = new.resources.iter().map(|r| r.name.as_str()).collect();
        let removed: Vec<String> = self
            .manifest
            .resources
            .iter()
            .map(|r| r.name.clone())
            .filter(|n| !new_names.contains(n.as_str()))
            .collect();
        let changed_images = changed_images(&self.manifest, &new);
        let (mut added, mut changed) = (Vec::new(), Vec::new());
        for resource in &new.resources {
            match self.nodes.get(&resource.name) {
                None => added.push(resource.name.clone()),
                Some(node) => {
                    let image_changed = resource.images.iter().any(|i| changed_images.contains(i));
                    if image_changed || !same_definition(&node.resource, resource) {
                        changed.push(resource.name.clone());
                    }
                }
            }
        }
        for name in &removed {
            self.stop_resource(name);
            self.nodes.remove(name);
            self.logs.status(name, "removed from the Loopfile: stopped");
        }
        let mut scheduler = Scheduler::new(&new, &graph, enabled.as_ref());
        scheduler.carry_over(&self.scheduler);
        for name in &changed {
            scheduler.redefined(name);
        }
        self.scheduler = scheduler;
        let inputs_before = self.loopfile_inputs.clone();
        let watch_ignore_before = self.manifest.settings.watch_ignore.clone();
        let contexts = |engine: &Engine| -> Vec<_> {
            engine
                .manifest
                .images
                .iter()
                .map(|i| (i.context.clone(), i.ignore.clone(), i.only.clone()))
                .collect()
        };
        let contexts_before = contexts(self);
        self.graph = graph;
        self.index = index;
        self.install(new);
        self.publish_all();
        if let Some(control) = &self.control {
            control.board.update_session(|s| s.loopfile_error = None);
        }
        self.logs.engine(&format!(
            "reloaded: {} added, {} changed, {} removed{}",
            added.len(),
            changed.len(),
            removed.len(),
            describe_names(&added, &changed, &removed)
        ));
        inputs_before != self.loopfile_inputs
            || watch_ignore_before != self.manifest.settings.watch_ignore
            || contexts_before != contexts(self)
    }
}

/// Whether two declarations would run the same way (where they were declared does
/// not matter: adding a line above a resource must not restart it).
fn same_definition(a: &Resource, b: &Resource) -> bool {
    let mut b = b.clone();
    b.defined_at = a.defined_at.clone();
    for (x, y) in b.objects.iter_mut().zip(&a.objects) {
        x.defined_at = y.defined_at.clone();
    }
    *a == b
}

/// The refs of images whose definition changed (not where it was declared).
fn changed_images(old: &Manifest, new: &Manifest) -> HashSet<String> {
    new.images
        .iter()
        .filter(|image| {
            old.image(&image.image_ref).is_none_or(|before| {
                let mut image = (*image).clone();
                image.defined_at = before.defined_at.clone();
                *before != image
            })
        })
        .map(|image| image.image_ref.clone())
        .collect()
}

fn describe_names(added: &[String], changed: &[String], removed: &[String]) -> String {
    let mut parts = Vec::new();
    for (label, names) in [("added", added), ("changed", changed), ("removed", removed)] {
        if !names.is_empty() {
            parts.push(format!("{label}: {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}
