//! Simulated control plane: a background task that, after every change (and
//! every 100 ms), runs one reconcile pass over the store:
//!
//! - CRDs get `NamesAccepted`/`Established` (their types then appear in discovery);
//! - terminating namespaces are emptied and removed;
//! - garbage collection: objects whose every owner is gone are deleted;
//! - Deployments own one ReplicaSet per pod template (`{name}-{pod-template-hash}`),
//!   older ReplicaSets are scaled to 0;
//! - ReplicaSets, StatefulSets (`{name}-{ordinal}`), DaemonSets (one pod, one node)
//!   and Jobs (one pod) create and delete Pods; a changed template replaces pods;
//! - the "kubelet" schedules pods on node `loop-test-node`, shows them Pending /
//!   ContainerCreating for ~300 ms, then applies the workload's
//!   [`PodBehaviour`] (Running+Ready by default, Succeeded for Job pods), and
//!   removes pods marked for deletion;
//! - workload statuses (replicas, readyReplicas, conditions, ...) follow the pods;
//! - the endpoint controllers: a Service with a selector gets an `Endpoints`
//!   object of the same name and an `EndpointSlice` (`{service}-{hash}`, owned by
//!   the Service) that copy the Service's labels, as the real controllers do (so
//!   a label selector for what a tool applied also finds them); they list no
//!   addresses. The `Endpoints` goes when its Service goes.
//!
//! Every write happens only if something actually changed, so passes converge.
//! Each controller lives in a submodule; this module runs them in order and
//! holds the helpers they share.

mod apps;
mod crds;
mod endpoints;
mod garbage_collection;
mod jobs;
mod kubelet;
mod statuses;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::apply::{delete_key, insert_new};
use crate::discovery::{self, ResourceType};
use crate::store::{ObjKey, Store};
use crate::{PodBehaviour, Shared};
pub use kubelet::{owner_names, seed_node, Kubelet};

pub async fn run(shared: Arc<Shared>) {
    let mut rx = shared.changes.subscribe();
    loop {
        rx.borrow_and_update();
        {
            let mut guard = shared.lock();
            let st = &mut *guard;
            reconcile(&mut st.store, &mut st.kubelet, &st.behaviours);
        }
        tokio::select! {
            _ = rx.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

fn rt(group: &str, plural: &str) -> ResourceType {
    discovery::builtins()
        .into_iter()
        .find(|r| r.group == group && r.plural == plural)
        .expect("builtin type")
}

fn reconcile(store: &mut Store, kubelet: &mut Kubelet, behaviours: &HashMap<String, PodBehaviour>) {
    crds::crds(store);
    garbage_collection::namespaces(store);
    garbage_collection::gc(store);
    apps::deployments(store);
    apps::replicasets(store);
    apps::statefulsets(store);
    apps::daemonsets(store);
    jobs::jobs(store);
    endpoints::endpoints(store);
    kubelet::run_kubelet(store, kubelet, behaviours);
    statuses::statuses(store);
}

fn put_if_changed(store: &mut Store, key: &ObjKey, obj: Value) {
    if store.get(key) != Some(&obj) {
        store.put(key.clone(), obj);
    }
}

fn terminating(v: &Value) -> bool {
    v["metadata"]["deletionTimestamp"].is_string()
}

fn uid(v: &Value) -> &str {
    v["metadata"]["uid"].as_str().unwrap_or("")
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn ns(v: &Value) -> &str {
    v["metadata"]["namespace"].as_str().unwrap_or("")
}

fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
    })
}

fn controller_uid(v: &Value) -> Option<&str> {
    v["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| r["uid"].as_str())
}

/// Objects of a type controlled by `owner_uid`.
fn owned(store: &Store, group: &str, plural: &str, owner_uid: &str) -> Vec<(ObjKey, Value)> {
    store
        .keys(group, plural)
        .into_iter()
        .filter_map(|k| store.get(&k).cloned().map(|v| (k, v)))
        .filter(|(_, v)| controller_uid(v) == Some(owner_uid))
        .collect()
}

fn condition(
    kind: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
    time: &str,
) -> Value {
    let mut c = json!({"type": kind, "status": if status {"True"} else {"False"}, "lastProbeTime": null, "lastTransitionTime": time});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// Keep the timestamps of conditions whose type/status/reason did not change.
fn carry_times(old: &Value, mut conds: Vec<Value>) -> Value {
    for c in conds.iter_mut() {
        if let Some(prev) = old.as_array().and_then(|a| {
            a.iter().find(|p| {
                p["type"] == c["type"] && p["status"] == c["status"] && p["reason"] == c["reason"]
            })
        }) {
            for k in ["lastTransitionTime", "lastUpdateTime", "lastProbeTime"] {
                if c.get(k).is_some() {
                    c[k] = prev[k].clone();
                }
            }
        }
    }
    Value::Array(conds)
}

/// Create a pod from a template, owned by `owner`.
fn new_pod(
    store: &mut Store,
    owner: &Value,
    pod_name: &str,
    template: &Value,
    extra_labels: Value,
    generate_name: Option<String>,
) {
    let mut meta = template["metadata"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    meta.insert("name".into(), json!(pod_name));
    meta.insert("namespace".into(), json!(ns(owner)));
    if let Some(g) = generate_name {
        meta.insert("generateName".into(), json!(g));
    }
    let mut labels = meta
        .get("labels")
        .and_then(|l| l.as_object())
        .cloned()
        .unwrap_or_default();
    for (k, v) in extra_labels.as_object().into_iter().flatten() {
        labels.insert(k.clone(), v.clone());
    }
    meta.insert("labels".into(), Value::Object(labels));
    meta.insert("ownerReferences".into(), json!([owner_ref(owner)]));
    let pod = json!({
        "metadata": meta,
        "spec": template["spec"],
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    });
    insert_new(store, &rt("", "pods"), pod);
}

fn delete_pod(store: &mut Store, key: &ObjKey) {
    delete_key(store, key, "Background", None);
}
