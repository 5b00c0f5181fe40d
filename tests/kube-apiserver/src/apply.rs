//! Writes: create, replace (PUT) and patch (server-side apply or JSON merge
//! patch), plus GET of one object and the server-owned metadata (uid,
//! resourceVersion, creationTimestamp, generation, managedFields). The parts
//! live in submodules: `validation`, `defaults`, field `paths` and merges,
//! `managed_fields`, `server_side` apply and `delete`.

mod defaults;
mod delete;
mod managed_fields;
mod paths;
mod server_side;
mod validation;

use serde_json::{json, Value};

use crate::discovery::ResourceType;
use crate::server::{Query, Target};
use crate::status::ApiError;
use crate::store::{self, ObjKey, Store};
use crate::Shared;
use defaults::apply_defaults;
pub use delete::{delete, delete_collection, delete_key};
use managed_fields::{owned_paths, set_managed};
use paths::{is_system_path, leaf_paths, merge_patch};
use server_side::server_side_apply;
use validation::{check_namespace, check_type, validate};

/// The key a target names (requires a name; namespaced types require a namespace).
pub fn target_key(t: &Target) -> Result<ObjKey, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let ns = match (&t.namespace, t.rt.namespaced) {
        (Some(ns), true) => ns.clone(),
        (None, false) => String::new(),
        _ => return Err(ApiError::no_such_resource()),
    };
    Ok(ObjKey::new(&t.rt.group, &t.rt.plural, &ns, &name))
}

/// GET one object.
pub fn get(shared: &Shared, t: &Target) -> Result<Value, ApiError> {
    let key = target_key(t)?;
    let st = shared.lock();
    st.store
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.rt, &key.name))
}

/// Parse a request body: JSON, or YAML (deserialized into a JSON value).
fn parse_body(body: &[u8], yaml: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if !yaml => Err(ApiError::bad_request(format!("error decoding JSON: {e}"))),
        Err(_) => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("invalid UTF-8: {e}")))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
    }
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// Set uid, creationTimestamp, generation, namespace defaults and store a new object.
pub fn insert_new(store: &mut Store, rt: &ResourceType, mut obj: Value) -> Value {
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    obj["metadata"]["uid"] = json!(store::new_uid());
    obj["metadata"]["creationTimestamp"] = json!(store::now());
    if obj.get("spec").is_some() || !rt.is_builtin() {
        obj["metadata"]["generation"] = json!(1);
    }
    apply_defaults(rt, &mut obj);
    let key = store::key_of(&rt.group, &rt.plural, &obj);
    store.put(key, obj)
}

/// Seed a namespace object (used at startup for `default`, `kube-system`, ...).
pub fn seed_namespace(store: &mut Store, name: &str) {
    let rt = crate::discovery::builtins()
        .into_iter()
        .find(|r| r.plural == "namespaces")
        .unwrap();
    insert_new(store, &rt, json!({"metadata": {"name": name}}));
}

/// PATCH: server-side apply or JSON merge patch.
pub fn patch(
    shared: &Shared,
    t: &Target,
    q: &Query,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            server_side_apply(shared, t, q, body)
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            merge(shared, t, q, body)
        }
        _ => Err(ApiError::unsupported_media_type(ct)),
    }
}

/// Defaults, generation, managedFields; store unless nothing changed.
fn finish_update(
    store: &mut Store,
    rt: &ResourceType,
    key: ObjKey,
    existing: Value,
    mut obj: Value,
    manage: impl FnOnce(&mut Value),
) -> Result<(u16, Value), ApiError> {
    apply_defaults(rt, &mut obj);
    let mut probe = obj.clone();
    manage(&mut probe);
    let strip = |v: &Value| {
        let mut v = v.clone();
        for e in v["metadata"]["managedFields"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
        v
    };
    if strip(&probe) == strip(&existing) {
        return Ok((200, existing));
    }
    obj = probe;
    if spec_part(&obj) != spec_part(&existing) {
        let g = existing["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        obj["metadata"]["generation"] = json!(g);
    }
    Ok((200, store.put(key, obj)))
}

fn merge(shared: &Shared, t: &Target, q: &Query, body: &[u8]) -> Result<(u16, Value), ApiError> {
    let rt = &t.rt;
    let key = target_key(t)?;
    let patch = parse_body(body, false)?;
    let manager = q.get("fieldManager").unwrap_or("unknown").to_string();
    let status_only = t.subresource.as_deref() == Some("status");
    let mut st = shared.lock();
    let existing = st
        .store
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rt, &key.name))?;
    if let Some(rv) = patch["metadata"]["resourceVersion"].as_str() {
        if rv != existing["metadata"]["resourceVersion"] {
            return Err(ApiError::stale(rt, &key.name));
        }
    }
    let mut obj = existing.clone();
    merge_patch(&mut obj, &patch);
    obj = keep_part(rt, &existing, obj, status_only);
    let mut paths = Vec::new();
    leaf_paths(&patch, "", &mut paths);
    paths.retain(|p| !is_system_path(p) || status_only);
    let sub = if status_only { Some("status") } else { None };
    finish_update(&mut st.store, rt, key, existing, obj, |o| {
        set_managed(o, &manager, "Update", &paths, sub)
    })
}

/// For updates: the main resource cannot change status (when it has a status
/// subresource); the status subresource can only change status. System metadata stays.
fn keep_part(rt: &ResourceType, existing: &Value, mut obj: Value, status_only: bool) -> Value {
    if status_only {
        let status = obj["status"].clone();
        obj = existing.clone();
        obj["status"] = status;
        return obj;
    }
    if rt.subresources.iter().any(|s| s == "status") {
        obj["status"] = existing["status"].clone();
        if obj["status"].is_null() {
            obj.as_object_mut().unwrap().remove("status");
        }
    }
    for k in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "name",
        "namespace",
    ] {
        let v = existing["metadata"][k].clone();
        if v.is_null() {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove(k);
            }
        } else {
            obj["metadata"][k] = v;
        }
    }
    obj
}

/// POST: create.
pub fn create(shared: &Shared, t: &Target, body: &[u8]) -> Result<(u16, Value), ApiError> {
    let rt = &t.rt;
    let mut obj = parse_body(body, true)?;
    check_type(rt, &obj)?;
    if obj["metadata"]["name"].as_str().unwrap_or("").is_empty() {
        if let Some(g) = obj["metadata"]["generateName"].as_str() {
            obj["metadata"]["name"] = json!(format!("{g}{}", store::random_suffix()));
        }
    }
    validate(rt, &obj)?;
    let mut st = shared.lock();
    let ns = match (&t.namespace, rt.namespaced) {
        (Some(ns), true) => ns.clone(),
        (None, false) => String::new(),
        _ => return Err(ApiError::no_such_resource()),
    };
    check_namespace(&st.store, rt, &ns, &mut obj)?;
    let key = store::key_of(&rt.group, &rt.plural, &obj);
    if st.store.get(&key).is_some() {
        return Err(ApiError::already_exists(rt, &key.name));
    }
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    if rt.subresources.iter().any(|s| s == "status") && rt.kind != "Namespace" {
        obj.as_object_mut().unwrap().remove("status");
    }
    let paths = owned_paths(&obj);
    set_managed(&mut obj, "unknown", "Update", &paths, None);
    Ok((201, insert_new(&mut st.store, rt, obj)))
}

/// PUT: replace (main resource or status).
pub fn replace(shared: &Shared, t: &Target, body: &[u8]) -> Result<(u16, Value), ApiError> {
    let rt = &t.rt;
    let key = target_key(t)?;
    let mut obj = parse_body(body, true)?;
    check_type(rt, &obj)?;
    let status_only = t.subresource.as_deref() == Some("status");
    let body_name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if body_name != key.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            key.name
        )));
    }
    validate(rt, &obj)?;
    let mut st = shared.lock();
    check_namespace(&st.store, rt, &key.namespace, &mut obj)?;
    let existing = st
        .store
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rt, &key.name))?;
    if let Some(rv) = obj["metadata"]["resourceVersion"].as_str() {
        if !rv.is_empty() && rv != existing["metadata"]["resourceVersion"] {
            return Err(ApiError::stale(rt, &key.name));
        }
    }
    obj["metadata"]["managedFields"] = existing["metadata"]["managedFields"].clone();
    obj["apiVersion"] = existing["apiVersion"].clone();
    obj["kind"] = existing["kind"].clone();
    let obj = keep_part(rt, &existing, obj, status_only);
    let paths = owned_paths(&obj);
    let sub = if status_only { Some("status") } else { None };
    finish_update(&mut st.store, rt, key, existing, obj, |o| {
        set_managed(o, "unknown", "Update", &paths, sub)
    })
}
