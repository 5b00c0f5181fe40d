//! Workload statuses follow their pods: ReplicaSets, Deployments (with
//! `Available`/`Progressing` conditions), StatefulSets, DaemonSets and Jobs
//! (`Complete`/`Failed`).

use serde_json::{json, Map, Value};

use super::jobs::job_done;
use super::kubelet::pod_ready;
use super::{carry_times, name, owned, terminating, uid};
use crate::store::{self, ObjKey, Store};

fn set_nonzero(m: &mut Map<String, Value>, k: &str, n: usize) {
    if n > 0 {
        m.insert(k.into(), json!(n));
    }
}

fn live_pods(store: &Store, owner_uid: &str) -> Vec<Value> {
    owned(store, "", "pods", owner_uid)
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| !terminating(p))
        .collect()
}

fn write_status(store: &mut Store, key: &ObjKey, status: Value) {
    if let Some(mut o) = store.get(key).cloned() {
        if o["status"] != status {
            o["status"] = status;
            store.put(key.clone(), o);
        }
    }
}

pub(super) fn statuses(store: &mut Store) {
    let t = store::now();
    for key in store.keys("apps", "replicasets") {
        let Some(rs) = store.get(&key).cloned() else {
            continue;
        };
        let pods = live_pods(store, uid(&rs));
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let mut m = Map::new();
        m.insert("replicas".into(), json!(pods.len()));
        set_nonzero(&mut m, "fullyLabeledReplicas", pods.len());
        set_nonzero(&mut m, "readyReplicas", ready);
        set_nonzero(&mut m, "availableReplicas", ready);
        m.insert(
            "observedGeneration".into(),
            rs["metadata"]["generation"].clone(),
        );
        write_status(store, &key, Value::Object(m));
    }
    for key in store.keys("apps", "deployments") {
        let Some(d) = store.get(&key).cloned() else {
            continue;
        };
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        let current_rs = format!(
            "{}-{}",
            name(&d),
            store::stable_hash(&d["spec"]["template"])
        );
        let (mut total, mut updated, mut ready) = (0, 0, 0);
        for (_, rs) in owned(store, "apps", "replicasets", uid(&d)) {
            let pods = live_pods(store, uid(&rs));
            total += pods.len();
            ready += pods.iter().filter(|p| pod_ready(p)).count();
            if name(&rs) == current_rs {
                updated += pods.len();
            }
        }
        let mut m = Map::new();
        m.insert(
            "observedGeneration".into(),
            d["metadata"]["generation"].clone(),
        );
        set_nonzero(&mut m, "replicas", total);
        set_nonzero(&mut m, "updatedReplicas", updated);
        set_nonzero(&mut m, "readyReplicas", ready);
        set_nonzero(&mut m, "availableReplicas", ready);
        set_nonzero(&mut m, "unavailableReplicas", desired.saturating_sub(ready));
        let available = ready >= desired;
        let complete = updated == desired && total == desired && ready == desired;
        let cond = |kind: &str, ok: bool, reason: &str, msg: String| json!({"type": kind, "status": if ok {"True"} else {"False"}, "lastUpdateTime": t, "lastTransitionTime": t, "reason": reason, "message": msg});
        let conds = vec![
            if available {
                cond(
                    "Available",
                    true,
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.".into(),
                )
            } else {
                cond(
                    "Available",
                    false,
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.".into(),
                )
            },
            if complete {
                cond(
                    "Progressing",
                    true,
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{current_rs}\" has successfully progressed."),
                )
            } else {
                cond(
                    "Progressing",
                    true,
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{current_rs}\" is progressing."),
                )
            },
        ];
        m.insert(
            "conditions".into(),
            carry_times(&d["status"]["conditions"], conds),
        );
        write_status(store, &key, Value::Object(m));
    }
    for key in store.keys("apps", "statefulsets") {
        let Some(s) = store.get(&key).cloned() else {
            continue;
        };
        let revision = format!(
            "{}-{}",
            name(&s),
            store::stable_hash(&s["spec"]["template"])
        );
        let pods = live_pods(store, uid(&s));
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let current = pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == revision.as_str())
            .count();
        let mut m = Map::new();
        m.insert(
            "observedGeneration".into(),
            s["metadata"]["generation"].clone(),
        );
        m.insert("replicas".into(), json!(pods.len()));
        set_nonzero(&mut m, "readyReplicas", ready);
        set_nonzero(&mut m, "availableReplicas", ready);
        set_nonzero(&mut m, "currentReplicas", current);
        set_nonzero(&mut m, "updatedReplicas", current);
        m.insert("currentRevision".into(), json!(revision));
        m.insert("updateRevision".into(), json!(revision));
        m.insert("collisionCount".into(), json!(0));
        write_status(store, &key, Value::Object(m));
    }
    for key in store.keys("apps", "daemonsets") {
        let Some(d) = store.get(&key).cloned() else {
            continue;
        };
        let hash = store::stable_hash(&d["spec"]["template"]);
        let pods = live_pods(store, uid(&d));
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let updated = pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == hash.as_str())
            .count();
        let mut m = Map::new();
        m.insert("currentNumberScheduled".into(), json!(pods.len()));
        m.insert("desiredNumberScheduled".into(), json!(1));
        m.insert("numberMisscheduled".into(), json!(0));
        m.insert("numberReady".into(), json!(ready));
        m.insert(
            "observedGeneration".into(),
            d["metadata"]["generation"].clone(),
        );
        set_nonzero(&mut m, "numberAvailable", ready);
        set_nonzero(&mut m, "updatedNumberScheduled", updated);
        set_nonzero(&mut m, "numberUnavailable", 1usize.saturating_sub(ready));
        write_status(store, &key, Value::Object(m));
    }
    for key in store.keys("batch", "jobs") {
        let Some(j) = store.get(&key).cloned() else {
            continue;
        };
        if job_done(&j) {
            continue;
        }
        let pods: Vec<Value> = owned(store, "", "pods", uid(&j))
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let succeeded = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Succeeded")
            .count();
        let failed = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Failed")
            .count();
        let active: Vec<&Value> = pods
            .iter()
            .filter(|p| {
                !terminating(p)
                    && p["status"]["phase"] != "Succeeded"
                    && p["status"]["phase"] != "Failed"
            })
            .collect();
        let mut m = Map::new();
        m.insert(
            "startTime".into(),
            j["metadata"]["creationTimestamp"].clone(),
        );
        set_nonzero(&mut m, "active", active.len());
        set_nonzero(&mut m, "succeeded", succeeded);
        set_nonzero(&mut m, "failed", failed);
        m.insert(
            "ready".into(),
            json!(active.iter().filter(|p| pod_ready(p)).count()),
        );
        m.insert("terminating".into(), json!(0));
        m.insert("uncountedTerminatedPods".into(), json!({}));
        let c = |kind: &str, reason: &str, msg: &str| json!({"type": kind, "status": "True", "lastProbeTime": t, "lastTransitionTime": t, "reason": reason, "message": msg});
        if succeeded >= j["spec"]["completions"].as_i64().unwrap_or(1).max(1) as usize {
            m.insert("completionTime".into(), json!(t));
            m.insert(
                "conditions".into(),
                json!([
                    c(
                        "SuccessCriteriaMet",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods"
                    ),
                    c(
                        "Complete",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods"
                    )
                ]),
            );
        } else if failed > 0 {
            m.insert(
                "conditions".into(),
                json!([
                    c(
                        "FailureTarget",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit"
                    ),
                    c(
                        "Failed",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit"
                    )
                ]),
            );
        }
        write_status(store, &key, Value::Object(m));
    }
}
