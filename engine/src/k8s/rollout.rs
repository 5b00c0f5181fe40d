//! Following a workload until its pods are Running and Ready (Jobs: Complete),
//! with the reason users need when they are not: ImagePullBackOff,
//! CrashLoopBackOff, Unschedulable, a failing readiness probe. The workload and
//! its pods come from their shared watch ([`super::pods`]), not from polling.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject};
use loop_lang::model::ObjectRef;
use serde_json::Value;

use super::apply::Applier;
use super::pods::{pod_problem, Snapshot};

use crate::failure::{Failure, FailureKind};

/// Where a rollout is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    Ready,
    /// Not ready yet, and why (empty: only a moment, not worth saying).
    Waiting(String),
    /// Cannot become ready (a failed Job).
    Failed(String),
}

/// The last lines the crashing containers of a pod printed, as `\n  | line` text.
async fn last_logs(applier: &Applier, pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| applier.cluster.namespace.clone());
    let api: Api<Pod> = Api::namespaced(applier.cluster.client.clone(), &namespace);
    let mut out = String::new();
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    for status in statuses.iter().filter(|s| s.restart_count > 0) {
        let params = kube::api::LogParams {
            container: Some(status.name.clone()),
            previous: true,
            tail_lines: Some(10),
            ..Default::default()
        };
        if let Ok(text) = api.logs(&name, &params).await {
            for line in text.lines() {
                out.push_str(&format!("\n  | {line}"));
            }
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("; last logs:{out}")
    }
}

/// The version of a workload that `loop` applied: a snapshot older than it says
/// nothing about this rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub uid: Option<String>,
    pub generation: Option<i64>,
}

impl Applied {
    /// The version of `object` among the objects the server returned from apply.
    pub fn find(applied: &[DynamicObject], object: &ObjectRef) -> Applied {
        applied
            .iter()
            .find(|o| {
                o.metadata.name.as_deref() == Some(object.name.as_str())
                    && o.types.as_ref().is_some_and(|t| t.kind == object.kind)
            })
            .map(|o| Applied {
                uid: o.metadata.uid.clone(),
                generation: o.metadata.generation,
            })
            .unwrap_or_default()
    }

    /// Whether `workload` (as watched) is this version or a later one.
    fn seen_in(&self, workload: &Value) -> bool {
        let meta = &workload["metadata"];
        let same = self.uid.as_deref().is_none_or(|u| meta["uid"] == u);
        let generation = meta["generation"].as_i64().unwrap_or(0);
        same && self.generation.is_none_or(|g| generation >= g)
    }
}

/// One look at a workload's rollout, from what its watch knows.
pub async fn check(
    applier: &Applier,
    object: &ObjectRef,
    applied: &Applied,
    snapshot: &Snapshot,
) -> Rollout {
    if let Some(error) = &snapshot.error {
        return Rollout::Waiting(format!("cannot follow the rollout: {error}"));
    }
    let workload = match &snapshot.workload {
        Some(w) if snapshot.synced && applied.seen_in(w) => w,
        // Not listed yet, or not the applied version yet: a moment, no reason.
        _ if !snapshot.synced => return Rollout::Waiting(String::new()),
        Some(_) => return Rollout::Waiting(String::new()),
        None => {
            return Rollout::Waiting(format!(
                "{} {} does not exist yet",
                object.kind, object.name
            ))
        }
    };
    if loop_lang::workload::runs_on_schedule(&object.kind) {
        // Its pods come on the schedule: stored is all there is to wait for.
        return Rollout::Ready;
    }
    let status = &workload["status"];
    if object.kind == "Job" {
        let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")
        {
            return Rollout::Ready;
        }
        if let Some(failed) = conditions
            .iter()
            .find(|c| c["type"] == "Failed" && c["status"] == "True")
        {
            return Rollout::Failed(format!(
                "Job failed: {}",
                failed["message"].as_str().unwrap_or_default()
            ));
        }
    }
    let pods = &snapshot.pods;
    if let Some((pod, problem)) = pods.iter().find_map(|p| pod_problem(p).map(|why| (p, why))) {
        if problem.starts_with("CrashLoopBackOff") {
            return Rollout::Waiting(format!("{problem}{}", last_logs(applier, pod).await));
        }
        return Rollout::Waiting(problem);
    }
    let generation = workload["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = status["observedGeneration"].as_i64().unwrap_or(generation);
    let wanted = match object.kind.as_str() {
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            workload["spec"]["replicas"].as_i64().unwrap_or(1)
        }
        "DaemonSet" => status["desiredNumberScheduled"].as_i64().unwrap_or(1),
        _ => 1,
    };
    let ready = match object.kind.as_str() {
        "DaemonSet" => status["numberReady"].as_i64().unwrap_or(0),
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            status["readyReplicas"].as_i64().unwrap_or(0)
        }
        _ => pods.len() as i64,
    };
    if object.kind == "Job" {
        return Rollout::Waiting("the Job has not completed yet".into());
    }
    if observed < generation {
        return Rollout::Waiting("waiting for the controller to see the change".into());
    }
    if wanted > 0 && (ready < wanted || pods.is_empty()) {
        return Rollout::Waiting(format!("{ready}/{wanted} pods ready"));
    }
    Rollout::Ready
}

/// Follows the rollout of `applied` (by watch: it looks again after every change
/// of the workload or its pods) until ready, telling `on_reason` each new reason;
/// gives up after `deadline` with the last reason.
pub async fn wait_ready(
    applier: &Applier,
    object: &ObjectRef,
    extra: &[BTreeMap<String, String>],
    applied: &Applied,
    deadline: Duration,
    on_reason: impl Fn(&str),
) -> Result<(), Failure> {
    let watch = applier.follow_pods(object, extra).await?;
    let mut changes = watch.subscribe();
    let end = tokio::time::Instant::now() + deadline;
    let mut last = String::new();
    loop {
        changes.borrow_and_update();
        let reason = match check(applier, object, applied, &watch.snapshot()).await {
            Rollout::Ready => return Ok(()),
            Rollout::Failed(why) => return Err(Failure::other(why)),
            Rollout::Waiting(why) => why,
        };
        if reason != last && !reason.is_empty() {
            on_reason(&reason);
            last = reason;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() {
                return Err(Failure::other(format!("stopped following the rollout: {last}")));
            },
            () = tokio::time::sleep_until(end) => {
                // Not ready because the cluster stopped answering: that may
                // pass (`loop run` retries it), a slow rollout may not.
                let lost = watch.snapshot().error.is_some_and(|e| e.may_pass_later());
                let kind = if lost { FailureKind::Unreachable } else { FailureKind::Timeout };
                return Err(Failure::new(
                    kind,
                    format!("rollout not ready after {}s: {last}", deadline.as_secs()),
                ));
            }
        }
    }
}
