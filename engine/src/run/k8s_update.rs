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
    pub applier: Applier,
    pub record: Record,
    pub project: String,
    pub root: PathBuf,
}

/// Whether an object runs pods (and so has a rollout to follow).
fn is_workload(o: &ObjectRef) -> bool {
    matches!(
        o.kind.as_str(),
        "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "ReplicationController"
            | "Job"
            | "Pod"
    )
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
        let log = log.clone();
        rollout::wait_ready(
            &runtime.applier,
            workload,
            &extra,
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
