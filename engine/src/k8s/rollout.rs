//! Following a workload until its pods are Running and Ready (Jobs: Complete),
//! with the reason users need when they are not: ImagePullBackOff,
//! CrashLoopBackOff, Unschedulable, a failing readiness probe.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use loop_lang::model::ObjectRef;
use serde_json::Value;

use super::apply::{error_text, Applier};

/// Where a rollout is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    Ready,
    /// Not ready yet, and why.
    Waiting(String),
    /// Cannot become ready (a failed Job).
    Failed(String),
}

/// The label selector of a workload's pods (plus `extra_pod_selectors`, OR-ed).
pub fn pod_selectors(workload: &Value, extra: &[BTreeMap<String, String>]) -> Vec<String> {
    let match_labels = workload["spec"]["selector"]["matchLabels"]
        .as_object()
        .or_else(|| workload["spec"]["template"]["metadata"]["labels"].as_object())
        .or_else(|| {
            workload["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].as_object()
        });
    let mut selectors = Vec::new();
    if let Some(labels) = match_labels {
        let parts: Vec<String> = labels
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
            .collect();
        if !parts.is_empty() {
            selectors.push(parts.join(","));
        }
    }
    for labels in extra {
        selectors.push(
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    selectors
}

/// The current pods of a workload.
pub async fn pods(
    applier: &Applier,
    object: &ObjectRef,
    workload: &Value,
    extra: &[BTreeMap<String, String>],
) -> Result<Vec<Pod>, String> {
    let namespace = object
        .namespace
        .clone()
        .unwrap_or_else(|| applier.cluster.namespace.clone());
    let api: Api<Pod> = Api::namespaced(applier.cluster.client.clone(), &namespace);
    if object.kind == "Pod" {
        return match api
            .get_opt(&object.name)
            .await
            .map_err(|e| error_text(&e))?
        {
            Some(pod) => Ok(vec![pod]),
            None => Ok(Vec::new()),
        };
    }
    let mut found: Vec<Pod> = Vec::new();
    for selector in pod_selectors(workload, extra) {
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| error_text(&e))?;
        for pod in list.items {
            if pod.metadata.deletion_timestamp.is_none()
                && !found.iter().any(|p| p.metadata.uid == pod.metadata.uid)
            {
                found.push(pod);
            }
        }
    }
    Ok(found)
}

/// Why a pod is not ready, if it is not.
pub fn pod_problem(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    for condition in status.conditions.iter().flatten() {
        if condition.type_ == "PodScheduled" && condition.status == "False" {
            let reason = condition
                .reason
                .clone()
                .unwrap_or_else(|| "Unschedulable".into());
            return Some(format!(
                "{reason}: pod {name}: {}",
                condition.message.clone().unwrap_or_default()
            ));
        }
    }
    for container in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            if let Some(reason) = &waiting.reason {
                if reason != "ContainerCreating" && reason != "PodInitializing" {
                    let restarts = if container.restart_count > 0 {
                        format!(" (restarted {} times)", container.restart_count)
                    } else {
                        String::new()
                    };
                    return Some(format!(
                        "{reason}: pod {name} container {}{restarts}: {}",
                        container.name,
                        waiting.message.clone().unwrap_or_default()
                    ));
                }
            }
        }
    }
    let phase = status.phase.clone().unwrap_or_default();
    if phase == "Running" {
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            return Some(format!(
                "pod {name} is running but not ready (its readiness probe is failing)"
            ));
        }
        return None;
    }
    if phase == "Succeeded" {
        return None;
    }
    Some(format!(
        "pod {name} is {}",
        if phase.is_empty() {
            "Pending".into()
        } else {
            phase
        }
    ))
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

/// One look at a workload's rollout.
pub async fn check(
    applier: &Applier,
    object: &ObjectRef,
    extra: &[BTreeMap<String, String>],
) -> Result<Rollout, String> {
    let Some(workload) = applier.current(object).await? else {
        return Ok(Rollout::Waiting(format!(
            "{} {} does not exist yet",
            object.kind, object.name
        )));
    };
    let status = &workload["status"];
    if object.kind == "Job" {
        let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")
        {
            return Ok(Rollout::Ready);
        }
        if let Some(failed) = conditions
            .iter()
            .find(|c| c["type"] == "Failed" && c["status"] == "True")
        {
            return Ok(Rollout::Failed(format!(
                "Job failed: {}",
                failed["message"].as_str().unwrap_or_default()
            )));
        }
    }
    let pods = pods(applier, object, &workload, extra).await?;
    if let Some((pod, problem)) = pods.iter().find_map(|p| pod_problem(p).map(|why| (p, why))) {
        if problem.starts_with("CrashLoopBackOff") {
            return Ok(Rollout::Waiting(format!(
                "{problem}{}",
                last_logs(applier, pod).await
            )));
        }
        return Ok(Rollout::Waiting(problem));
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
        return Ok(Rollout::Waiting("the Job has not completed yet".into()));
    }
    if observed < generation {
        return Ok(Rollout::Waiting(
            "waiting for the controller to see the change".into(),
        ));
    }
    if wanted > 0 && (ready < wanted || pods.is_empty()) {
        return Ok(Rollout::Waiting(format!("{ready}/{wanted} pods ready")));
    }
    Ok(Rollout::Ready)
}

/// Checks every half second until ready, telling `on_reason` each new reason;
/// gives up after `deadline` with the last reason.
pub async fn wait_ready(
    applier: &Applier,
    object: &ObjectRef,
    extra: &[BTreeMap<String, String>],
    deadline: Duration,
    on_reason: impl Fn(&str),
) -> Result<(), String> {
    let start = tokio::time::Instant::now();
    let mut last = String::new();
    loop {
        let reason = match check(applier, object, extra).await {
            Ok(Rollout::Ready) => return Ok(()),
            Ok(Rollout::Failed(why)) => return Err(why),
            Ok(Rollout::Waiting(why)) => why,
            Err(e) => format!("cannot read the rollout: {e}"),
        };
        if reason != last {
            on_reason(&reason);
            last = reason;
        }
        if start.elapsed() > deadline {
            return Err(format!(
                "rollout not ready after {}s: {last}",
                deadline.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
