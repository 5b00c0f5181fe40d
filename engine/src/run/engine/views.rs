//! What the engine tells the control plane: after each event, the views of the
//! resources it touched, and whether the session is quiet.

use loop_lang::model::{ResourceKind, TriggerMode};

use super::Engine;
use crate::control::view::{unix_ms, ButtonView, LinkView, ResourceView, RunView};
use crate::run::state::Phase;

impl Engine {
    /// Publishes the views of every touched resource (no-op without a control plane).
    pub(super) fn publish(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        let Some(control) = &self.control else {
            self.scheduler.forget_touched();
            return;
        };
        let touched = self.scheduler.take_touched();
        for name in touched.iter().chain(&dirty) {
            if let Some(view) = self.view(name) {
                control.board.set_resource(view);
            }
        }
        control
            .board
            .set_quiet(self.scheduler.is_quiet() && !self.reloading);
    }

    /// Publishes every resource (after start-up or a reload).
    pub(super) fn publish_all(&mut self) {
        let Some(control) = &self.control else {
            return;
        };
        control.board.set_order(self.order.clone());
        let global = self.buttons_on(None);
        control.board.update_session(|s| s.buttons = global);
        for name in &self.order {
            if let Some(view) = self.view(name) {
                control.board.set_resource(view);
            }
        }
    }

    /// The buttons placed on a resource (`None`: on none).
    fn buttons_on(&self, resource: Option<&str>) -> Vec<ButtonView> {
        self.manifest
            .buttons
            .iter()
            .filter(|b| b.resource.as_deref() == resource)
            .map(|b| ButtonView {
                name: b.name.clone(),
                text: b.text.clone(),
                inputs: b.inputs.clone(),
                icon: b.icon.clone(),
            })
            .collect()
    }

    fn view(&self, name: &str) -> Option<ResourceView> {
        let node = self.nodes.get(name)?;
        let r = &node.resource;
        let phase = self.scheduler.phase(name)?;
        let phase_name = match phase {
            Phase::Failed(_) => "failed",
            Phase::Crashing { .. } => "crashing",
            other => match other {
                Phase::Idle => "idle",
                Phase::Updating => "updating",
                Phase::Syncing => "syncing",
                Phase::Starting => "starting",
                Phase::Ready => "ready",
                _ => "succeeded",
            },
        };
        let reason = match self.scheduler.wait_reason(name) {
            Some(wait) => Some(wait.to_string()),
            None => match phase {
                Phase::Crashing { .. } => Some(phase.to_string()),
                Phase::Updating | Phase::Syncing => node
                    .last_run
                    .as_ref()
                    .map(|run| format!("running: {}", run.reason)),
                _ => None,
            },
        };
        let (_, skip) = self.scheduler.last_reasons(name);
        Some(ResourceView {
            name: name.to_owned(),
            kind: match r.kind {
                ResourceKind::Local => "local",
                ResourceKind::K8s => "k8s",
                ResourceKind::K8sUncategorized => "k8s_uncategorized",
                ResourceKind::DockerCompose => "docker_compose",
            }
            .to_owned(),
            phase: phase_name.to_owned(),
            reason,
            queued: self.scheduler.is_wanted(name),
            enabled: self.scheduler.is_enabled(name),
            trigger_mode: match r.trigger_mode {
                TriggerMode::Auto => "auto",
                TriggerMode::Manual => "manual",
            }
            .to_owned(),
            auto_init: r.auto_init,
            last_run: node.last_run.as_ref().map(|run| RunView {
                start_ms: unix_ms(run.started),
                reason: run.reason.clone(),
                duration_ms: run.ended.as_ref().map(|(d, _)| d.as_millis() as u64),
                result: run.ended.as_ref().map(|(_, result)| match result {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => e.clone(),
                }),
            }),
            last_skip: skip.map(|s| s.to_string()),
            restarts: node.restarts,
            last_error: node.last_error.clone(),
            links: r
                .links
                .iter()
                .map(|l| LinkView {
                    url: l.url.clone(),
                    name: l.name.clone(),
                })
                .collect(),
            port_forwards: r
                .port_forwards
                .iter()
                .map(|p| match p.container_port {
                    0 => format!("{}:{} -> (the pod's port)", p.host, p.local_port),
                    port => format!("{}:{} -> {port}", p.host, p.local_port),
                })
                .collect(),
            labels: r.labels.clone(),
            resource_deps: r.resource_deps.clone(),
            data_deps: r.data_deps.clone(),
            defined_at: r.defined_at.to_string(),
            buttons: self.buttons_on(Some(name)),
        })
    }
}
