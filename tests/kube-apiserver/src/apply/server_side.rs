//! Server-side apply (`application/apply-patch+yaml`), simplified but keeping
//! its observable rules: the applied configuration is merged into the live
//! object (maps merge recursively, lists and scalars replace); fields this
//! manager applied before and now omits are removed; fields owned by other
//! managers are kept; setting a field another manager owns to a different value
//! is a 409 Conflict unless `force=true`; a no-op apply does not bump
//! `resourceVersion`; `generation` increases only when something outside
//! `metadata` and `status` changes. `managedFields` records one entry per
//! manager with a `fieldsV1` set (lists are atomic).

use serde_json::{json, Value};

use super::managed_fields::{fields_v1, owned_paths, paths_of_fields, set_managed};
use super::paths::{deep_merge, leaf_paths, lookup, remove_path, split_path};
use super::validation::{check_namespace, check_type, validate};
use super::{finish_update, insert_new, parse_body, target_key};
use crate::server::{Query, Target};
use crate::status::ApiError;
use crate::Shared;

pub(super) fn server_side_apply(
    shared: &Shared,
    t: &Target,
    q: &Query,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let rt = &t.rt;
    let key = target_key(t)?;
    let manager = q
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set",
            )
        })?
        .to_string();
    let force = q.flag("force");
    let mut applied = parse_body(body, true)?;
    check_type(rt, &applied)?;
    if applied["apiVersion"].is_null() || applied["kind"].is_null() {
        return Err(ApiError::bad_request(format!(
            "invalid object type: apiVersion and kind must be set (expected {} {})",
            rt.api_version(),
            rt.kind
        )));
    }
    let body_name = applied["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if !body_name.is_empty() && body_name != key.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            key.name
        )));
    }
    validate(rt, &applied)?;
    let status_only = t.subresource.as_deref() == Some("status");
    let mut st = shared.lock();
    check_namespace(&st.store, rt, &key.namespace, &mut applied)?;
    let paths = if status_only {
        let mut p = Vec::new();
        leaf_paths(&applied["status"], ".status", &mut p);
        p
    } else {
        owned_paths(&applied)
    };
    let sub = if status_only { Some("status") } else { None };
    let Some(existing) = st.store.get(&key).cloned() else {
        if status_only {
            return Err(ApiError::not_found(rt, &key.name));
        }
        let mut obj = applied;
        if rt.subresources.iter().any(|s| s == "status") {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        set_managed(&mut obj, &manager, "Apply", &paths, None);
        return Ok((201, insert_new(&mut st.store, rt, obj)));
    };
    // Conflicts with other managers' fields.
    if !force {
        for e in existing["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if e["manager"] == manager.as_str() || e["subresource"].as_str() != sub {
                continue;
            }
            let mut theirs = Vec::new();
            paths_of_fields(&e["fieldsV1"], "", &mut theirs);
            let conflicts: Vec<String> = paths
                .iter()
                .filter(|p| theirs.contains(p) && lookup(&existing, p) != lookup(&applied, p))
                .cloned()
                .collect();
            if !conflicts.is_empty() {
                return Err(ApiError::apply_conflict(
                    rt,
                    &key.name,
                    e["manager"].as_str().unwrap_or(""),
                    &conflicts,
                ));
            }
        }
    }
    let mut obj = existing.clone();
    // Drop what this manager applied before and no longer applies.
    for e in existing["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if e["manager"] == manager.as_str()
            && e["operation"] == "Apply"
            && e["subresource"].as_str() == sub
        {
            let mut before = Vec::new();
            paths_of_fields(&e["fieldsV1"], "", &mut before);
            for p in before.iter().filter(|p| !paths.contains(p)) {
                remove_path(&mut obj, &split_path(p));
            }
        }
    }
    let mut over = applied;
    if status_only {
        over = json!({"status": over["status"].clone()});
    } else if let Some(m) = over.as_object_mut() {
        if rt.subresources.iter().any(|s| s == "status") {
            m.remove("status");
        }
    }
    deep_merge(&mut obj, &over);
    // Taking fields with force moves them away from other managers.
    if let Some(entries) = obj["metadata"]["managedFields"].as_array_mut() {
        for e in entries
            .iter_mut()
            .filter(|e| e["manager"] != manager.as_str() && e["subresource"].as_str() == sub)
        {
            let mut theirs = Vec::new();
            paths_of_fields(&e["fieldsV1"], "", &mut theirs);
            let before = theirs.len();
            theirs.retain(|p| !paths.contains(p));
            if theirs.len() != before {
                e["fieldsV1"] = fields_v1(&theirs);
            }
        }
    }
    finish_update(&mut st.store, rt, key, existing, obj, |o| {
        set_managed(o, &manager, "Apply", &paths, sub)
    })
}
