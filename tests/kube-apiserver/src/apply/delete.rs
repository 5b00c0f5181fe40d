//! Deletion: `DELETE` of one object or a collection, with `DeleteOptions`
//! (propagation policy, grace period, preconditions); dependents are deleted
//! (Foreground) or orphaned; pods, namespaces and objects with finalizers are
//! first marked with `deletionTimestamp`.

use serde_json::{json, Value};

use super::{parse_body, target_key};
use crate::server::{Query, Target};
use crate::status::{self, ApiError};
use crate::store::{self, ObjKey, Store};
use crate::Shared;

/// Deletion options from the body (`DeleteOptions` JSON, as kube-rs sends) or the query.
struct DeleteOptions {
    propagation: String,
    grace: Option<i64>,
    uid: Option<String>,
    rv: Option<String>,
}

fn delete_options(q: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let b: Value = if body.iter().all(|c| c.is_ascii_whitespace()) {
        json!({})
    } else {
        parse_body(body, false)?
    };
    Ok(DeleteOptions {
        propagation: b["propagationPolicy"]
            .as_str()
            .or(q.get("propagationPolicy"))
            .unwrap_or("Background")
            .to_string(),
        grace: b["gracePeriodSeconds"]
            .as_i64()
            .or(q.get("gracePeriodSeconds").and_then(|g| g.parse().ok())),
        uid: b["preconditions"]["uid"].as_str().map(String::from),
        rv: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from),
    })
}

/// Objects whose ownerReferences name `uid`.
pub fn dependents(store: &Store, uid: &str) -> Vec<ObjKey> {
    store
        .all()
        .filter(|(_, v)| {
            v["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["uid"] == uid))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Delete an object and (Foreground) its dependents, or orphan them. Pods and
/// objects with finalizers are marked with deletionTimestamp first (the simulated
/// kubelet / controllers finish them). Returns the object's last state, and whether
/// it is gone already.
pub fn delete_key(
    store: &mut Store,
    key: &ObjKey,
    propagation: &str,
    grace: Option<i64>,
) -> Option<(Value, bool)> {
    let obj = store.get(key)?.clone();
    let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
    match propagation {
        "Orphan" => {
            for dk in dependents(store, &uid) {
                if let Some(mut d) = store.get(&dk).cloned() {
                    if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| r["uid"] != uid.as_str());
                    }
                    store.put(dk, d);
                }
            }
        }
        "Foreground" => {
            for dk in dependents(store, &uid) {
                delete_key(store, &dk, "Foreground", Some(0));
            }
        }
        _ => {}
    }
    let graceful_pod = key.group.is_empty() && key.plural == "pods" && grace != Some(0);
    let finalizers = obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    let namespace = key.group.is_empty() && key.plural == "namespaces";
    if graceful_pod || finalizers || namespace {
        if obj["metadata"]["deletionTimestamp"].is_string() {
            return Some((obj, false));
        }
        let mut o = obj;
        o["metadata"]["deletionTimestamp"] = json!(store::now());
        if graceful_pod {
            o["metadata"]["deletionGracePeriodSeconds"] = json!(grace.unwrap_or(30));
        }
        if namespace {
            o["status"]["phase"] = json!("Terminating");
        }
        return Some((store.put(key.clone(), o), false));
    }
    store.remove(key).map(|o| (o, true))
}

/// DELETE one object.
pub fn delete(
    shared: &Shared,
    t: &Target,
    q: &Query,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let rt = &t.rt;
    let key = target_key(t)?;
    let opts = delete_options(q, body)?;
    let mut st = shared.lock();
    let existing = st
        .store
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rt, &key.name))?;
    let uid = existing["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if opts.uid.as_ref().is_some_and(|u| *u != uid)
        || opts
            .rv
            .as_ref()
            .is_some_and(|r| *r != existing["metadata"]["resourceVersion"])
    {
        return Err(ApiError::stale(rt, &key.name));
    }
    let (obj, gone) =
        delete_key(&mut st.store, &key, &opts.propagation, opts.grace).expect("exists");
    let is_pod = rt.group.is_empty() && rt.plural == "pods";
    if gone && !is_pod && opts.propagation != "Foreground" {
        Ok((200, status::success_deleted(rt, &key.name, &uid)))
    } else {
        Ok((200, obj))
    }
}

/// DELETE a collection (with labelSelector / fieldSelector); returns the list of deleted objects.
pub fn delete_collection(shared: &Shared, t: &Target, q: &Query) -> Result<(u16, Value), ApiError> {
    let opts = delete_options(q, b"")?;
    let list = crate::watch::list(shared, t, q)?;
    let mut st = shared.lock();
    let mut items = Vec::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let key = ObjKey::new(
            &t.rt.group,
            &t.rt.plural,
            item["metadata"]["namespace"].as_str().unwrap_or(""),
            item["metadata"]["name"].as_str().unwrap_or(""),
        );
        if let Some((o, _)) = delete_key(&mut st.store, &key, &opts.propagation, opts.grace) {
            items.push(o);
        }
    }
    Ok((
        200,
        json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(), "metadata": {"resourceVersion": st.store.rv().to_string()}, "items": items}),
    ))
}
