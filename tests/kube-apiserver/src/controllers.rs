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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use crate::apply::{delete_key, insert_new};
use crate::discovery::{self, ResourceType};
use crate::store::{self, ObjKey, Store};
use crate::{PodBehaviour, Shared};

/// The one node pods are scheduled on.
pub const NODE_NAME: &str = "loop-test-node";

/// How long a new pod stays Pending/ContainerCreating before its behaviour applies.
const STARTUP: Duration = Duration::from_millis(300);

/// Per-pod kubelet bookkeeping: when each pod (by uid) was first seen.
#[derive(Default)]
pub struct Kubelet {
    started: HashMap<String, (Instant, SystemTime)>,
}

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

/// Seed the single node.
pub fn seed_node(store: &mut Store) {
    insert_new(
        store,
        &rt("", "nodes"),
        json!({
            "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": ""}},
            "spec": {},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE_NAME}],
                "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
                "nodeInfo": {"kubeletVersion": format!("v1.{}.0", discovery::SERVER_MINOR), "containerRuntimeVersion": "loop-test://1.0", "operatingSystem": "linux", "architecture": "amd64"},
            },
        }),
    );
}

fn reconcile(store: &mut Store, kubelet: &mut Kubelet, behaviours: &HashMap<String, PodBehaviour>) {
    crds(store);
    namespaces(store);
    gc(store);
    deployments(store);
    replicasets(store);
    statefulsets(store);
    daemonsets(store);
    jobs(store);
    endpoints(store);
    run_kubelet(store, kubelet, behaviours);
    statuses(store);
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

fn crds(store: &mut Store) {
    for key in store.keys("apiextensions.k8s.io", "customresourcedefinitions") {
        let Some(mut crd) = store.get(&key).cloned() else {
            continue;
        };
        if terminating(&crd) {
            continue;
        }
        let t = store::now();
        let conds = carry_times(
            &crd["status"]["conditions"],
            vec![
                condition(
                    "NamesAccepted",
                    true,
                    Some("NoConflicts"),
                    Some("no conflicts found"),
                    &t,
                ),
                condition(
                    "Established",
                    true,
                    Some("InitialNamesAccepted"),
                    Some("the initial names have been accepted"),
                    &t,
                ),
            ],
        );
        let stored: Vec<Value> = crd["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["storage"] == true)
            .map(|v| v["name"].clone())
            .collect();
        let mut status = json!({"conditions": conds, "acceptedNames": crd["spec"]["names"], "storedVersions": stored});
        for c in status["conditions"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("lastProbeTime");
        }
        if crd["status"] != status {
            crd["status"] = status;
            store.put(key, crd);
        }
    }
}

fn namespaces(store: &mut Store) {
    for key in store.keys("", "namespaces") {
        let Some(n) = store.get(&key).cloned() else {
            continue;
        };
        if !terminating(&n) {
            continue;
        }
        let inside: Vec<ObjKey> = store
            .all()
            .filter(|(k, _)| k.namespace == key.name)
            .map(|(k, _)| k.clone())
            .collect();
        for k in inside {
            store.remove(&k);
        }
        store.remove(&key);
    }
}

fn gc(store: &mut Store) {
    let uids: HashSet<String> = store.all().map(|(_, v)| uid(v).to_string()).collect();
    let served: HashSet<(String, String)> = discovery::all(store)
        .into_iter()
        .map(|r| (r.group, r.plural))
        .collect();
    let mut orphans = Vec::new();
    let mut unserved = Vec::new();
    for (k, v) in store.all() {
        if !served.contains(&(k.group.clone(), k.plural.clone())) {
            unserved.push(k.clone());
            continue;
        }
        if let Some(refs) = v["metadata"]["ownerReferences"].as_array() {
            if !refs.is_empty()
                && refs
                    .iter()
                    .all(|r| !uids.contains(r["uid"].as_str().unwrap_or("")))
            {
                orphans.push(k.clone());
            }
        }
    }
    for k in unserved {
        store.remove(&k);
    }
    for k in orphans {
        delete_key(store, &k, "Background", None);
    }
}

fn deployments(store: &mut Store) {
    let rs_rt = rt("apps", "replicasets");
    for key in store.keys("apps", "deployments") {
        let Some(d) = store.get(&key).cloned() else {
            continue;
        };
        if terminating(&d) {
            continue;
        }
        let template = d["spec"]["template"].clone();
        let hash = store::stable_hash(&template);
        let rs_name = format!("{}-{hash}", name(&d));
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let mine = owned(store, "apps", "replicasets", uid(&d));
        let revision = mine
            .iter()
            .filter_map(|(_, r)| {
                r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()?
                    .parse::<i64>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        let rs_key = ObjKey::new("apps", "replicasets", &key.namespace, &rs_name);
        match store.get(&rs_key).cloned() {
            None => {
                let mut tpl = template.clone();
                tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut selector = d["spec"]["selector"].clone();
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let rs = json!({
                    "metadata": {
                        "name": rs_name, "namespace": key.namespace,
                        "labels": tpl["metadata"]["labels"],
                        "annotations": {
                            "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                            "deployment.kubernetes.io/max-replicas": (replicas + 1).to_string(),
                            "deployment.kubernetes.io/revision": (revision + 1).to_string(),
                        },
                        "ownerReferences": [owner_ref(&d)],
                    },
                    "spec": {"replicas": replicas, "selector": selector, "template": tpl},
                });
                insert_new(store, &rs_rt, rs);
            }
            Some(mut rs) => {
                if rs["spec"]["replicas"].as_i64() != Some(replicas) {
                    rs["spec"]["replicas"] = json!(replicas);
                    rs["metadata"]["generation"] =
                        json!(rs["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
                    store.put(rs_key.clone(), rs);
                }
            }
        }
        for (k, mut old) in mine {
            if k != rs_key && old["spec"]["replicas"].as_i64() != Some(0) {
                old["spec"]["replicas"] = json!(0);
                old["metadata"]["generation"] =
                    json!(old["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
                store.put(k, old);
            }
        }
    }
}

/// Create a pod from a template, owned by `owner`.
/// Marks the `Endpoints` objects this controller made (a real cluster deletes
/// them when their Service goes; user-made ones are left alone here).
const ENDPOINTS_CONTROLLER: &str = "loop-test.dev/endpoints-controller";

/// The endpoint and endpoint-slice controllers, without addresses.
fn endpoints(store: &mut Store) {
    let mut wanted: HashSet<(String, String)> = HashSet::new();
    for key in store.keys("", "services") {
        let Some(svc) = store.get(&key).cloned() else {
            continue;
        };
        let has_selector = svc["spec"]["selector"]
            .as_object()
            .is_some_and(|m| !m.is_empty());
        if terminating(&svc) || !has_selector {
            continue;
        }
        wanted.insert((key.namespace.clone(), name(&svc).to_owned()));
        let labels = svc["metadata"]["labels"].clone();
        let ep_key = ObjKey::new("", "endpoints", &key.namespace, name(&svc));
        match store.get(&ep_key).cloned() {
            None => {
                let ep = json!({
                    "metadata": {"name": name(&svc), "namespace": ns(&svc), "labels": labels,
                                 "annotations": {ENDPOINTS_CONTROLLER: "true"}},
                    "subsets": [],
                });
                insert_new(store, &rt("", "endpoints"), ep);
            }
            Some(mut ep) if ep["metadata"]["labels"] != labels => {
                ep["metadata"]["labels"] = labels.clone();
                put_if_changed(store, &ep_key, ep);
            }
            Some(_) => {}
        }
        let mut slice_labels = labels.as_object().cloned().unwrap_or_default();
        slice_labels.insert("kubernetes.io/service-name".into(), json!(name(&svc)));
        slice_labels.insert(
            "endpointslice.kubernetes.io/managed-by".into(),
            json!("endpointslice-controller.k8s.io"),
        );
        let slice_name = format!(
            "{}-{}",
            name(&svc),
            &store::stable_hash(&json!(uid(&svc)))[..5]
        );
        let slice_key = ObjKey::new(
            "discovery.k8s.io",
            "endpointslices",
            &key.namespace,
            &slice_name,
        );
        match store.get(&slice_key).cloned() {
            None => {
                let slice = json!({
                    "metadata": {"name": slice_name, "namespace": ns(&svc), "labels": slice_labels,
                                 "ownerReferences": [owner_ref(&svc)]},
                    "addressType": "IPv4",
                    "endpoints": [],
                });
                insert_new(store, &rt("discovery.k8s.io", "endpointslices"), slice);
            }
            Some(mut slice) => {
                slice["metadata"]["labels"] = Value::Object(slice_labels);
                put_if_changed(store, &slice_key, slice);
            }
        }
    }
    for key in store.keys("", "endpoints") {
        let Some(ep) = store.get(&key) else { continue };
        let made_here = ep["metadata"]["annotations"][ENDPOINTS_CONTROLLER] == "true";
        if made_here && !wanted.contains(&(key.namespace.clone(), name(ep).to_owned())) {
            delete_key(store, &key, "Background", None);
        }
    }
}

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

fn replicasets(store: &mut Store) {
    for key in store.keys("apps", "replicasets") {
        let Some(rs) = store.get(&key).cloned() else {
            continue;
        };
        if terminating(&rs) {
            continue;
        }
        let desired = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        let mut pods: Vec<(ObjKey, Value)> = owned(store, "", "pods", uid(&rs))
            .into_iter()
            .filter(|(_, p)| !terminating(p))
            .collect();
        let hash = rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"].clone();
        for _ in pods.len()..desired {
            let n = format!("{}-{}", name(&rs), store::random_suffix());
            let extra = if hash.is_null() {
                json!({})
            } else {
                json!({"pod-template-hash": hash})
            };
            new_pod(
                store,
                &rs,
                &n,
                &rs["spec"]["template"],
                extra,
                Some(format!("{}-", name(&rs))),
            );
        }
        pods.sort_by(|a, b| {
            b.1["metadata"]["creationTimestamp"]
                .as_str()
                .cmp(&a.1["metadata"]["creationTimestamp"].as_str())
        });
        while pods.len() > desired {
            let (k, _) = pods.remove(0);
            delete_pod(store, &k);
        }
    }
}

fn statefulsets(store: &mut Store) {
    for key in store.keys("apps", "statefulsets") {
        let Some(s) = store.get(&key).cloned() else {
            continue;
        };
        if terminating(&s) {
            continue;
        }
        let revision = format!(
            "{}-{}",
            name(&s),
            store::stable_hash(&s["spec"]["template"])
        );
        let desired = s["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let pods = owned(store, "", "pods", uid(&s));
        for (k, p) in &pods {
            let ordinal = p["metadata"]["labels"]["apps.kubernetes.io/pod-index"]
                .as_str()
                .and_then(|o| o.parse::<i64>().ok());
            let stale = p["metadata"]["labels"]["controller-revision-hash"] != revision.as_str();
            if !terminating(p) && (stale || ordinal.is_none_or(|o| o >= desired)) {
                delete_pod(store, k);
            }
        }
        for i in 0..desired {
            let n = format!("{}-{i}", name(&s));
            if store
                .get(&ObjKey::new("", "pods", &key.namespace, &n))
                .is_none()
            {
                let extra = json!({
                    "controller-revision-hash": revision,
                    "apps.kubernetes.io/pod-index": i.to_string(),
                    "statefulset.kubernetes.io/pod-name": n,
                });
                new_pod(store, &s, &n, &s["spec"]["template"], extra, None);
                if let Some(mut p) = store
                    .get(&ObjKey::new("", "pods", &key.namespace, &n))
                    .cloned()
                {
                    p["spec"]["hostname"] = json!(n);
                    if let Some(svc) = s["spec"]["serviceName"].as_str() {
                        p["spec"]["subdomain"] = json!(svc);
                    }
                    store.put(ObjKey::new("", "pods", &key.namespace, &n), p);
                }
            }
        }
    }
}

fn daemonsets(store: &mut Store) {
    for key in store.keys("apps", "daemonsets") {
        let Some(d) = store.get(&key).cloned() else {
            continue;
        };
        if terminating(&d) {
            continue;
        }
        let hash = store::stable_hash(&d["spec"]["template"]);
        let pods = owned(store, "", "pods", uid(&d));
        let (mut live, mut going) = (0, false);
        for (k, p) in &pods {
            if terminating(p) {
                going = true;
            } else if p["metadata"]["labels"]["controller-revision-hash"] != hash.as_str()
                || live > 0
            {
                delete_pod(store, k);
                going = true;
            } else {
                live += 1;
            }
        }
        if live == 0 && !going {
            let n = format!("{}-{}", name(&d), store::random_suffix());
            let extra = json!({
                "controller-revision-hash": hash,
                "pod-template-generation": d["metadata"]["generation"].as_i64().unwrap_or(1).to_string(),
            });
            new_pod(
                store,
                &d,
                &n,
                &d["spec"]["template"],
                extra,
                Some(format!("{}-", name(&d))),
            );
        }
    }
}

fn job_done(j: &Value) -> bool {
    j["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    })
}

fn jobs(store: &mut Store) {
    for key in store.keys("batch", "jobs") {
        let Some(j) = store.get(&key).cloned() else {
            continue;
        };
        if terminating(&j) || job_done(&j) || j["spec"]["suspend"] == true {
            continue;
        }
        if owned(store, "", "pods", uid(&j)).is_empty() {
            let n = format!("{}-{}", name(&j), store::random_suffix());
            let extra = json!({
                "batch.kubernetes.io/controller-uid": uid(&j), "controller-uid": uid(&j),
                "batch.kubernetes.io/job-name": name(&j), "job-name": name(&j),
            });
            new_pod(
                store,
                &j,
                &n,
                &j["spec"]["template"],
                extra,
                Some(format!("{}-", name(&j))),
            );
        }
    }
}

/// Names a pod answers to for [`PodBehaviour`] and port exposure: its controllers'
/// names from the top (Deployment before ReplicaSet), then its own name.
pub fn owner_names(store: &Store, pod: &Value) -> Vec<String> {
    let mut names = vec![name(pod).to_string()];
    let mut cur = pod.clone();
    for _ in 0..4 {
        let Some(u) = controller_uid(&cur).map(String::from) else {
            break;
        };
        let Some((_, owner)) = store.by_uid(&u) else {
            break;
        };
        names.insert(0, name(owner).to_string());
        cur = owner.clone();
    }
    names
}

fn is_job_pod(store: &Store, pod: &Value) -> bool {
    controller_uid(pod)
        .and_then(|u| store.by_uid(u))
        .is_some_and(|(k, _)| k.plural == "jobs")
}

fn run_kubelet(
    store: &mut Store,
    kubelet: &mut Kubelet,
    behaviours: &HashMap<String, PodBehaviour>,
) {
    let keys = store.keys("", "pods");
    let live: HashSet<String> = keys
        .iter()
        .filter_map(|k| store.get(k))
        .map(|p| uid(p).to_string())
        .collect();
    kubelet.started.retain(|u, _| live.contains(u));
    for key in keys {
        let Some(pod) = store.get(&key).cloned() else {
            continue;
        };
        if terminating(&pod) {
            store.remove(&key);
            continue;
        }
        let names = owner_names(store, &pod);
        let behaviour = names
            .iter()
            .find_map(|n| behaviours.get(n))
            .copied()
            .unwrap_or_default();
        let job = is_job_pod(store, &pod);
        let (first, start) = *kubelet
            .started
            .entry(uid(&pod).to_string())
            .or_insert((Instant::now(), SystemTime::now()));
        let settled = first.elapsed() >= STARTUP;
        let mut p = pod.clone();
        if behaviour != PodBehaviour::Unschedulable {
            p["spec"]["nodeName"] = json!(NODE_NAME);
        }
        p["status"] = pod_status(&pod, behaviour, settled, job, &store::timestamp(start));
        if p["status"]["phase"] == pod["status"]["phase"] {
            p["status"]["conditions"] = carry_times(
                &pod["status"]["conditions"],
                p["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        put_if_changed(store, &key, p);
    }
}

fn pod_status(pod: &Value, b: PodBehaviour, settled: bool, job: bool, start: &str) -> Value {
    let containers: Vec<(String, String)> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                c["image"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let names: Vec<&str> = containers.iter().map(|(n, _)| n.as_str()).collect();
    let unready = format!("containers with unready status: [{}]", names.join(" "));
    let ipn = store::stable_hash(&pod["metadata"]["uid"]).as_bytes()[0] as u32 % 250 + 2;
    let mut status = json!({"qosClass": "BestEffort"});
    if b == PodBehaviour::Unschedulable {
        status["phase"] = json!("Pending");
        status["conditions"] = json!([condition(
            "PodScheduled",
            false,
            Some("Unschedulable"),
            Some("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."),
            start
        )]);
        return status;
    }
    status["hostIP"] = json!("127.0.0.1");
    status["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
    status["startTime"] = json!(start);
    let cstatus = |n: &str,
                   image: &str,
                   ready: bool,
                   started: bool,
                   state: Value,
                   last: Value,
                   restarts: i64| {
        let mut c = json!({
            "name": n, "image": image, "imageID": "", "ready": ready, "started": started,
            "restartCount": restarts, "state": state, "lastState": last,
        });
        if started || restarts > 0 {
            c["imageID"] = json!(format!("{image}@sha256:{}", "0".repeat(64)));
            c["containerID"] = json!(format!(
                "containerd://{}",
                store::stable_hash(&json!([pod["metadata"]["uid"], n]))
            ));
        }
        c
    };
    let waiting = |reason: &str, message: Option<String>| {
        let mut w = json!({"reason": reason});
        if let Some(m) = message {
            w["message"] = json!(m);
        }
        json!({"waiting": w})
    };
    let (phase, ready, scheduled_ok, cs): (&str, bool, bool, Vec<Value>) = if !settled {
        (
            "Pending",
            false,
            false,
            containers
                .iter()
                .map(|(n, i)| {
                    cstatus(
                        n,
                        i,
                        false,
                        false,
                        waiting("ContainerCreating", None),
                        json!({}),
                        0,
                    )
                })
                .collect(),
        )
    } else {
        match (b, job) {
            (PodBehaviour::Ready, false) => (
                "Running",
                true,
                true,
                containers.iter().map(|(n, i)| cstatus(n, i, true, true, json!({"running": {"startedAt": start}}), json!({}), 0)).collect(),
            ),
            (PodBehaviour::Ready, true) => (
                "Succeeded",
                false,
                true,
                containers
                    .iter()
                    .map(|(n, i)| {
                        let t = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start, "finishedAt": start, "containerID": format!("containerd://{}", store::stable_hash(&json!([pod["metadata"]["uid"], n])))}});
                        cstatus(n, i, false, false, t, json!({}), 0)
                    })
                    .collect(),
            ),
            (PodBehaviour::CrashLoopBackOff, true) => (
                "Failed",
                false,
                true,
                containers
                    .iter()
                    .map(|(n, i)| {
                        cstatus(n, i, false, false, json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": start, "finishedAt": start}}), json!({}), 0)
                    })
                    .collect(),
            ),
            (PodBehaviour::ImagePullBackOff, _) => (
                "Pending",
                false,
                true,
                containers
                    .iter()
                    .map(|(n, i)| {
                        let m = format!("Back-off pulling image \"{i}\": ErrImagePull: failed to pull and unpack image \"{i}\": not found");
                        cstatus(n, i, false, false, waiting("ImagePullBackOff", Some(m)), json!({}), 0)
                    })
                    .collect(),
            ),
            (PodBehaviour::CrashLoopBackOff, false) => (
                "Running",
                false,
                true,
                containers
                    .iter()
                    .map(|(n, i)| {
                        let m = format!("back-off 40s restarting failed container={n} pod={}", name(pod));
                        let last = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": start, "finishedAt": start}});
                        cstatus(n, i, false, false, waiting("CrashLoopBackOff", Some(m)), last, 3)
                    })
                    .collect(),
            ),
            (PodBehaviour::NeverReady, _) => (
                "Running",
                false,
                true,
                containers.iter().map(|(n, i)| cstatus(n, i, false, true, json!({"running": {"startedAt": start}}), json!({}), 0)).collect(),
            ),
            (PodBehaviour::Unschedulable, _) => unreachable!(),
        }
    };
    let done = phase == "Succeeded" || phase == "Failed";
    let (ready_reason, ready_msg) = if ready {
        (None, None)
    } else if done {
        (Some("PodCompleted"), None)
    } else {
        (Some("ContainersNotReady"), Some(unready.as_str()))
    };
    status["phase"] = json!(phase);
    status["conditions"] = json!([
        condition("PodReadyToStartContainers", scheduled_ok, None, None, start),
        condition(
            "Initialized",
            true,
            if done { Some("PodCompleted") } else { None },
            None,
            start
        ),
        condition("Ready", ready, ready_reason, ready_msg, start),
        condition("ContainersReady", ready, ready_reason, ready_msg, start),
        condition("PodScheduled", true, None, None, start),
    ]);
    status["containerStatuses"] = Value::Array(cs);
    if settled || phase != "Pending" {
        status["podIP"] = json!(format!("10.244.0.{ipn}"));
        status["podIPs"] = json!([{"ip": format!("10.244.0.{ipn}")}]);
    }
    status
}

/// Whether a pod has `Ready=True`.
pub fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

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

fn statuses(store: &mut Store) {
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
