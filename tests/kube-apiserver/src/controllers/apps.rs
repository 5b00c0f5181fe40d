//! The `apps` workload controllers: Deployments own one ReplicaSet per pod
//! template (`{name}-{pod-template-hash}`) and scale older ones to 0;
//! ReplicaSets, StatefulSets (`{name}-{ordinal}`) and DaemonSets (one pod, one
//! node) create and delete Pods; a changed template replaces pods.

use serde_json::{json, Value};

use super::{delete_pod, name, new_pod, owned, owner_ref, rt, terminating, uid};
use crate::apply::insert_new;
use crate::store::{self, ObjKey, Store};

pub(super) fn deployments(store: &mut Store) {
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

pub(super) fn replicasets(store: &mut Store) {
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

pub(super) fn statefulsets(store: &mut Store) {
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

pub(super) fn daemonsets(store: &mut Store) {
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
