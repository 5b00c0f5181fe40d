//! Kubernetes resources in the engine: connecting, full updates, logs and
//! port-forwards once ready, and live updates into containers.

use std::path::Path;
use std::sync::Arc;

use loop_lang::model::{Manifest, ResourceKind};

use super::{CmdResult, Engine, Msg};
use crate::live_update::SyncPlan;
use crate::run::k8s_update::{self, K8sRuntime};
use crate::run::logs::Logs;
use crate::run::{Mode, RunOptions};

impl Engine {
    /// Builds, applies and rolls out a Kubernetes resource.
    pub(super) fn start_k8s_update(&mut self, name: &str) {
        let sink = self.sink(name);
        let tx = self.tx.clone();
        let runtime = self.k8s.clone();
        let node = self.nodes.get_mut(name).expect("scheduled resources exist");
        let generation = node.next_generation();
        let resource = node.resource.clone();
        let images: Vec<_> = resource
            .images
            .iter()
            .filter_map(|r| self.manifest.image(r).cloned())
            .collect();
        let owned = name.to_owned();
        let task = tokio::spawn(async move {
            let name = owned;
            let result = match runtime {
                Ok(Some(runtime)) => k8s_update::update(runtime, resource, images, sink)
                    .await
                    .map(|()| CmdResult::default()),
                Ok(None) => Err("no Kubernetes cluster is connected".to_owned()),
                Err(why) => Err(why),
            };
            let _ = tx.send(Msg::CmdDone {
                name,
                generation,
                result,
            });
        });
        if let Some(node) = self.nodes.get_mut(name) {
            node.update = Some(task.abort_handle());
        }
    }

    /// Once a Kubernetes resource is first ready: its logs and port-forwards (they
    /// follow pod replacements by themselves, so later updates keep them).
    pub(super) fn start_k8s_followers(&mut self, name: &str) {
        if self.options.mode == Mode::Ci {
            return;
        }
        let Ok(Some(runtime)) = self.k8s.clone() else {
            return;
        };
        let sink = self.sink(name);
        let node = self.nodes.get_mut(name).expect("known");
        if node.followers.is_none() {
            node.followers = Some(k8s_update::start_followers(runtime, &node.resource, sink));
        }
    }

    /// Applies a live update to the containers of a Kubernetes resource.
    pub(super) fn start_container_sync(&mut self, name: &str, image_ref: String, plan: SyncPlan) {
        let tx = self.tx.clone();
        let sink = self.sink(name);
        let Ok(Some(runtime)) = self.k8s.clone() else {
            return;
        };
        let node = self.nodes.get_mut(name).expect("known resource");
        let generation = node.next_generation();
        let resource = node.resource.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let result =
                k8s_update::sync_containers(runtime, resource, image_ref, plan, sink).await;
            let _ = tx.send(Msg::SyncDone {
                name,
                generation,
                result,
            });
        });
    }
}

/// Connects to the cluster when the manifest has Kubernetes resources.
pub(super) async fn connect_k8s(
    options: &RunOptions,
    manifest: &Manifest,
    root: &Path,
    logs: &Logs,
) -> Result<Option<Arc<K8sRuntime>>, String> {
    if manifest
        .resources
        .iter()
        .all(|r| r.kind == ResourceKind::Local)
    {
        return Ok(None);
    }
    let settings = &manifest.settings;
    match crate::k8s::connect(
        options.context.as_deref(),
        settings.k8s_namespace.as_deref(),
        &settings.allowed_k8s_contexts,
    )
    .await
    {
        Ok(cluster) => {
            logs.engine(&format!(
                "Kubernetes context {} ({}), namespace {}",
                cluster.context, cluster.server, cluster.namespace
            ));
            let record = crate::image::Record::load(root, &|warning| logs.engine(warning));
            let project = crate::k8s::owner::project_id(root);
            Ok(Some(Arc::new(K8sRuntime {
                applier: Arc::new(crate::k8s::Applier::new(cluster)),
                record,
                project,
                root: root.to_owned(),
            })))
        }
        Err(why) => {
            logs.engine(&why);
            Err(why)
        }
    }
}
