//! The simulated kubelet on the one node `loop-test-node`: seeds the Node,
//! schedules pods on it, shows them Pending / ContainerCreating for ~300 ms,
//! then gives them the status of their workload's [`PodBehaviour`] (Running+Ready
//! by default, Succeeded for Job pods), and removes pods marked for deletion.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::{carry_times, condition, controller_uid, name, put_if_changed, rt, terminating, uid};
use crate::apply::insert_new;
use crate::discovery;
use crate::store::{self, Store};
use crate::PodBehaviour;

/// The one node pods are scheduled on.
pub const NODE_NAME: &str = "loop-test-node";

/// How long a new pod stays Pending/ContainerCreating before its behaviour applies.
const STARTUP: Duration = Duration::from_millis(300);

/// Per-pod kubelet bookkeeping: when each pod (by uid) was first seen.
#[derive(Default)]
pub struct Kubelet {
    started: HashMap<String, (Instant, SystemTime)>,
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

pub(super) fn run_kubelet(
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
