//! Kubernetes resources in the engine: connecting, full updates, logs and
//! port-forwards once ready, and live updates into containers.
//!
//! The connection is made at start; while there is none (no kubeconfig, an
//! unknown context, a cluster not created yet), each update tries again, so that
//! `loop run`, which retries failed Kubernetes updates periodically and on every
//! change, picks the cluster up as soon as it exists. The reason is printed once
//! (again only when it changes); resources fail with a short [`NOT_CONNECTED`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use loop_lang::model::{Manifest, ResourceKind, Settings};

use super::{CmdResult, Engine, Msg};
use crate::failure::{Failure, FailureKind};
use crate::k8s::context::NOT_CONNECTED;
use crate::live_update::SyncPlan;
use crate::report::Verbosity;
use crate::run::k8s_update::{self, K8sRuntime};
use crate::run::logs::Logs;
use crate::run::{Mode, RunOptions};

impl Engine {
    /// Builds, applies and rolls out a Kubernetes resource.
    pub(super) fn start_k8s_update(&mut self, name: &str) {
        let sink = self.sink(name);
        let tx = self.tx.clone();
        let link = self.k8s.clone();
        let connect = Connect {
            context: self.options.context.clone(),
            settings: self.manifest.settings.clone(),
            root: self.root.clone(),
            logs: self.logs.clone(),
            lock_images: self.options.mode == Mode::Ci,
        };
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
            let result = match link.runtime_or_connect(&connect).await {
                Ok(runtime) => k8s_update::update(
                    runtime,
                    resource,
                    images,
                    connect.settings.default_registry.clone(),
                    sink,
                )
                .await
                .map(|()| CmdResult::default()),
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
        let Some(runtime) = self.k8s.runtime() else {
            return;
        };
        let sink = self.sink(name);
        let node = self.nodes.get_mut(name).expect("known");
        // A custom deploy's objects are what its apply_cmd printed last time.
        let followed: Vec<String> = runtime
            .objects_of(&node.resource)
            .iter()
            .filter(|o| k8s_update::is_workload(o))
            .map(|o| {
                format!(
                    "{}/{}/{}",
                    o.kind,
                    o.namespace.as_deref().unwrap_or(""),
                    o.name
                )
            })
            .collect();
        if node.followers.is_some() && node.followed != followed {
            if let Some(old) = node.followers.take() {
                old.abort();
            }
        }
        if node.followers.is_none() {
            node.followed = followed;
            node.followers = Some(k8s_update::start_followers(runtime, &node.resource, sink));
        }
    }

    /// Applies a live update to the containers of a Kubernetes resource.
    pub(super) fn start_container_sync(
        &mut self,
        name: &str,
        image_ref: String,
        container_name: Option<String>,
        plan: SyncPlan,
    ) {
        let tx = self.tx.clone();
        let sink = self.sink(name);
        let Some(runtime) = self.k8s.runtime() else {
            return;
        };
        let node = self.nodes.get_mut(name).expect("known resource");
        let generation = node.next_generation();
        let resource = node.resource.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let result = k8s_update::sync_containers(
                runtime,
                resource,
                image_ref,
                container_name,
                plan,
                sink,
            )
            .await;
            let _ = tx.send(Msg::SyncDone {
                name,
                generation,
                result,
            });
        });
    }
}

/// The connection to the cluster (or why there is none), shared with update tasks.
#[derive(Clone, Default)]
pub(super) struct K8sLink(Arc<Mutex<Link>>);

#[derive(Default)]
struct Link {
    runtime: Option<Arc<K8sRuntime>>,
    /// Why the last attempt failed (printed once).
    error: Option<String>,
}

/// What connecting needs.
pub(super) struct Connect {
    context: Option<String>,
    settings: Settings,
    root: PathBuf,
    logs: Arc<Logs>,
    lock_images: bool,
}

impl K8sLink {
    fn lock(&self) -> std::sync::MutexGuard<'_, Link> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connected runtime, if any.
    pub(super) fn runtime(&self) -> Option<Arc<K8sRuntime>> {
        self.lock().runtime.clone()
    }

    /// The runtime, connecting first when there is none yet.
    async fn runtime_or_connect(&self, connect: &Connect) -> Result<Arc<K8sRuntime>, Failure> {
        if let Some(runtime) = self.runtime() {
            return Ok(runtime);
        }
        self.connect(connect).await;
        let link = self.lock();
        link.runtime.clone().ok_or_else(|| {
            // Retried: the cluster may be created, or the kubeconfig fixed, later.
            Failure::new(
                FailureKind::Unreachable,
                format!("{NOT_CONNECTED} (see loop's message for why)"),
            )
        })
    }

    /// Tries to connect; says why it failed when the reason is new.
    async fn connect(&self, c: &Connect) {
        let settings = &c.settings;
        let result = crate::k8s::connect(
            c.context.as_deref(),
            settings.k8s_namespace.as_deref(),
            &settings.allowed_k8s_contexts,
        )
        .await;
        let mut link = self.lock();
        if link.runtime.is_some() {
            return;
        }
        match result {
            Ok(cluster) => {
                c.logs.engine(&format!(
                    "Kubernetes context {} ({}), namespace {}",
                    cluster.context, cluster.server, cluster.namespace
                ));
                let record = crate::image::Record::load(&c.root, &|warning| {
                    c.logs.engine_at(Verbosity::Quiet, warning)
                });
                let project = crate::k8s::owner::project_id(&c.root);
                link.error = None;
                link.runtime = Some(Arc::new(K8sRuntime {
                    applier: Arc::new(crate::k8s::Applier::new(cluster)),
                    record,
                    project,
                    root: c.root.clone(),
                    deployed: Default::default(),
                    advertised: Default::default(),
                    lock_images: c.lock_images,
                }));
            }
            Err(why) => {
                if link.error.as_deref() != Some(why.as_str()) {
                    c.logs.engine_at(Verbosity::Quiet, &why);
                    link.error = Some(why);
                }
            }
        }
    }
}

/// Connects to the cluster when the manifest has Kubernetes resources.
pub(super) async fn connect_k8s(
    options: &RunOptions,
    manifest: &Manifest,
    root: &Path,
    logs: &Arc<Logs>,
) -> K8sLink {
    let link = K8sLink::default();
    if manifest
        .resources
        .iter()
        .all(|r| matches!(r.kind, ResourceKind::Local | ResourceKind::DockerCompose))
    {
        return link;
    }
    let connect = Connect {
        context: options.context.clone(),
        settings: manifest.settings.clone(),
        root: root.to_owned(),
        logs: logs.clone(),
        lock_images: options.mode == Mode::Ci,
    };
    link.connect(&connect).await;
    link
}
