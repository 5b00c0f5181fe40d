//! A full update of a Kubernetes resource: build its images, inject the built
//! refs, apply its objects, and follow the rollout until its pods are ready.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use loop_lang::model::{Image, ObjectRef, Resource};

use crate::image::{self, Record};
use crate::k8s::{rollout, Applier};

/// How long a rollout may take before the update fails.
const ROLLOUT_DEADLINE: Duration = Duration::from_secs(300);

/// What Kubernetes updates share: the cluster, the image record, the project id.
pub struct K8sRuntime {
    pub applier: Arc<Applier>,
    pub record: Record,
    pub project: String,
    pub root: PathBuf,
}

/// Whether an object runs pods (its rollout, logs and containers are followed).
pub fn is_workload(o: &ObjectRef) -> bool {
    loop_lang::workload::is_workload(&o.body)
}

/// Runs the update; `Err` says what failed. `log` receives build output and
/// rollout reasons.
pub async fn update(
    runtime: Arc<K8sRuntime>,
    resource: Resource,
    images: Vec<Image>,
    log: Arc<dyn Fn(&str) + Send + Sync>,
) -> Result<(), String> {
    let mut objects = resource.objects.clone();
    for image in &images {
        log(&format!("[loop] building image {}", image.image_ref));
        let built = image::build(image, &runtime.root, log.clone(), &runtime.record)
            .await
            .map_err(|e| e.to_string())?;
        if built.skipped {
            log(&format!(
                "[loop] image {} is up to date ({})",
                image.image_ref, built.built_ref
            ));
        }
        for object in objects.iter_mut() {
            image::inject(
                &mut object.body,
                &image.image_ref,
                &built.built_ref,
                image.match_in_env_vars,
            );
        }
    }
    let applied = runtime
        .applier
        .apply(&objects, &resource.name, &runtime.project)
        .await
        .map_err(|e| e.to_string())?;
    log(&format!("[loop] applied {} object(s)", applied.len()));
    let extra: Vec<BTreeMap<String, String>> = resource.extra_pod_selectors.clone();
    for workload in objects.iter().filter(|o| is_workload(o)) {
        if loop_lang::workload::runs_on_schedule(&workload.kind) {
            let schedule = workload
                .body
                .path(&["spec", "schedule"])
                .and_then(|s| s.as_str());
            log(&format!(
                "[loop] {}/{}: runs on its schedule ({}); its pods' logs are followed when they run",
                workload.kind,
                workload.name,
                schedule.unwrap_or("none given")
            ));
        }
        let log = log.clone();
        rollout::wait_ready(
            &runtime.applier,
            workload,
            &extra,
            &rollout::Applied::find(&applied, workload),
            ROLLOUT_DEADLINE,
            move |reason| {
                log(&format!(
                    "[loop] {}/{}: {reason}",
                    workload.kind, workload.name
                ))
            },
        )
        .await?;
    }
    Ok(())
}

/// Follows the logs of a ready resource's workloads and opens its port-forwards;
/// aborting the returned task stops all of it and releases the local ports.
pub fn start_followers(
    runtime: Arc<K8sRuntime>,
    resource: &Resource,
    sink: Arc<dyn Fn(&str) + Send + Sync>,
) -> tokio::task::AbortHandle {
    let workloads: Vec<ObjectRef> = resource
        .objects
        .iter()
        .filter(|o| is_workload(o))
        .cloned()
        .collect();
    let extra = resource.extra_pod_selectors.clone();
    let forwards = resource.port_forwards.clone();
    let task = tokio::spawn(async move {
        let Some(first) = workloads.first().cloned() else {
            return;
        };
        let _logs: Vec<_> = workloads
            .iter()
            .map(|w| {
                crate::k8s::logs::follow_logs(
                    runtime.applier.clone(),
                    w.clone(),
                    extra.clone(),
                    sink.clone(),
                )
            })
            .collect();
        let mut _forwarders = Vec::new();
        for forward in forwards {
            match crate::k8s::portforward::PortForwarder::start(
                runtime.applier.clone(),
                first.clone(),
                extra.clone(),
                forward,
                sink.clone(),
            )
            .await
            {
                Ok(forwarder) => {
                    sink(&format!(
                        "[loop] {} on {}",
                        forwarder.label(),
                        forwarder.local_addr()
                    ));
                    _forwarders.push(forwarder);
                }
                Err(e) => sink(&format!("[loop] port-forward failed: {e}")),
            }
        }
        std::future::pending::<()>().await;
    });
    task.abort_handle()
}

/// Syncs a live update into every running container of the resource's workloads
/// that uses `image`.
pub async fn sync_containers(
    runtime: Arc<K8sRuntime>,
    resource: Resource,
    image_ref: String,
    plan: crate::live_update::SyncPlan,
    log: Arc<dyn Fn(&str) + Send + Sync>,
) -> Result<bool, String> {
    use crate::live_update::SyncTarget;
    let mut containers = Vec::new();
    for workload in resource.objects.iter().filter(|o| is_workload(o)) {
        containers.extend(
            crate::k8s::sync::containers_for(
                &runtime.applier,
                workload,
                &resource.extra_pod_selectors,
                &image_ref,
            )
            .await?,
        );
    }
    let target = crate::k8s::sync::ContainerTarget {
        client: runtime.applier.cluster.client.clone(),
        containers,
        log,
    };
    target
        .apply(&plan)
        .await
        .map(|_| false)
        .map_err(|e| e.to_string())
}
