//! Writes: server-side apply, create, replace (PUT), merge patch, delete, plus
//! validation, defaulting and the server-owned metadata (uid, resourceVersion,
//! creationTimestamp, generation, managedFields).
//!
//! Server-side apply is simplified but keeps its observable rules: the applied
//! configuration is merged into the live object (maps merge recursively, lists
//! and scalars replace); fields this manager applied before and now omits are
//! removed; fields owned by other managers are kept; setting a field another
//! manager owns to a different value is a 409 Conflict unless `force=true`; a
//! no-op apply does not bump `resourceVersion`; `generation` increases only when
//! something outside `metadata` and `status` changes. `managedFields` records
//! one entry per manager with a `fieldsV1` set (lists are atomic).

use serde_json::{json, Map, Value};

use crate::discovery::ResourceType;
use crate::server::{Query, Target};
use crate::status::{self, ApiError};
use crate::store::{self, ObjKey, Store};
use crate::Shared;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

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

/// Check apiVersion/kind of a body against the URL's type.
fn check_type(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be an object",
        ));
    }
    let kind = obj["kind"].as_str().unwrap_or("");
    let av = obj["apiVersion"].as_str().unwrap_or("");
    if (!kind.is_empty() && kind != rt.kind) || (!av.is_empty() && av != rt.api_version()) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) or kind ({kind}) does not match the expected API version ({}) and kind ({})",
            rt.api_version(),
            rt.kind
        )));
    }
    Ok(())
}

/// Validate name and the few spec rules the real server would reject.
fn validate(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        return Err(ApiError::invalid(
            rt,
            name,
            "metadata.name",
            "FieldValueRequired",
            "metadata.name: Required value: name or generateName is required".into(),
        ));
    }
    let (ok, msg) = if rt.name_is_label() {
        (is_dns_label(name), LABEL_MSG)
    } else {
        (is_dns_subdomain(name), SUBDOMAIN_MSG)
    };
    if !ok {
        return Err(ApiError::invalid(
            rt,
            name,
            "metadata.name",
            "FieldValueInvalid",
            format!("metadata.name: Invalid value: \"{name}\": {msg}"),
        ));
    }
    let required = |field: &str| {
        ApiError::invalid(
            rt,
            name,
            field,
            "FieldValueRequired",
            format!("{field}: Required value"),
        )
    };
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod")
            if obj["spec"]["containers"]
                .as_array()
                .is_none_or(|c| c.is_empty()) =>
        {
            return Err(required("spec.containers"));
        }
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
            let sel = &obj["spec"]["selector"];
            if !sel.is_object() {
                return Err(required("spec.selector"));
            }
            if obj["spec"]["template"]["spec"]["containers"]
                .as_array()
                .is_none_or(|c| c.is_empty())
            {
                return Err(required("spec.template.spec.containers"));
            }
            let labels = &obj["spec"]["template"]["metadata"]["labels"];
            let ok = sel["matchLabels"]
                .as_object()
                .is_none_or(|m| m.iter().all(|(k, v)| &labels[k] == v));
            if !ok {
                return Err(ApiError::invalid(
                    rt,
                    name,
                    "spec.template.metadata.labels",
                    "FieldValueInvalid",
                    format!(
                        "spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
                        labels
                    ),
                ));
            }
        }
        ("batch", "Job") => {
            if obj["spec"]["template"]["spec"]["containers"]
                .as_array()
                .is_none_or(|c| c.is_empty())
            {
                return Err(required("spec.template.spec.containers"));
            }
            let rp = obj["spec"]["template"]["spec"]["restartPolicy"]
                .as_str()
                .unwrap_or("");
            if rp != "Never" && rp != "OnFailure" {
                return Err(ApiError::invalid(
                    rt,
                    name,
                    "spec.template.spec.restartPolicy",
                    "FieldValueRequired",
                    "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"".into(),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Check the namespace: body and URL agree, and the namespace exists.
fn check_namespace(
    store: &Store,
    rt: &ResourceType,
    key_ns: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if !rt.namespaced {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() && ns != key_ns => return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => obj["metadata"]["namespace"] = json!(key_ns),
    }
    if store
        .get(&ObjKey::new("", "namespaces", "", key_ns))
        .is_none()
    {
        return Err(ApiError::namespace_not_found(key_ns));
    }
    Ok(())
}

fn default_containers(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            let image = c["image"].as_str().unwrap_or("").to_string();
            let last = image.rsplit('/').next().unwrap_or("");
            let policy = if !last.contains(':') || last.ends_with(":latest") {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(c, "imagePullPolicy", json!(policy));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            for p in c["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
}

fn set_default(obj: &mut Value, k: &str, v: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(k.to_string()).or_insert(v);
    }
}

/// The defaults the real API server fills in, for the common types.
pub fn apply_defaults(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => default_containers(&mut obj["spec"]),
        ("", "Namespace") => {
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            set_default(&mut obj["spec"], "finalizers", json!(["kubernetes"]));
            if obj["status"]["phase"].is_null() {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        ("", "Service") => {
            let spec = &mut obj["spec"];
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, "protocol", json!("TCP"));
                let port = p["port"].clone();
                set_default(p, "targetPort", port);
            }
            if spec["clusterIP"].is_null() {
                let h = store::stable_hash(&obj["metadata"]["uid"]);
                let b = h.as_bytes();
                let ip = format!("10.96.{}.{}", b[0] % 250 + 1, b[1] % 250 + 2);
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
                obj["spec"]["ipFamilies"] = json!(["IPv4"]);
                obj["spec"]["ipFamilyPolicy"] = json!("SingleStack");
                obj["spec"]["internalTrafficPolicy"] = json!("Cluster");
            }
            if obj["status"].is_null() {
                obj["status"] = json!({"loadBalancer": {}});
            }
        }
        ("apps", kind) => {
            if kind != "DaemonSet" {
                set_default(&mut obj["spec"], "replicas", json!(1));
            }
            if kind == "Deployment" {
                set_default(
                    &mut obj["spec"],
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                );
                set_default(&mut obj["spec"], "revisionHistoryLimit", json!(10));
                set_default(&mut obj["spec"], "progressDeadlineSeconds", json!(600));
            }
            default_containers(&mut obj["spec"]["template"]["spec"]);
        }
        ("batch", "Job") => {
            set_default(&mut obj["spec"], "completions", json!(1));
            set_default(&mut obj["spec"], "parallelism", json!(1));
            set_default(&mut obj["spec"], "backoffLimit", json!(6));
            default_containers(&mut obj["spec"]["template"]["spec"]);
        }
        _ => {}
    }
}

/// Fields set by the server that apply never owns or removes.
fn is_system_path(p: &str) -> bool {
    p == ".apiVersion"
        || p == ".kind"
        || p.starts_with(".status")
        || [
            ".metadata.name",
            ".metadata.namespace",
            ".metadata.uid",
            ".metadata.resourceVersion",
            ".metadata.generation",
            ".metadata.creationTimestamp",
            ".metadata.managedFields",
            ".metadata.deletionTimestamp",
            ".metadata.deletionGracePeriodSeconds",
        ]
        .iter()
        .any(|s| p == *s || p.starts_with(&format!("{s}.")))
}

/// Leaf paths of a value (`.spec.replicas`); lists are leaves; keys are escaped with `\.`.
fn leaf_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, child) in m {
                leaf_paths(child, &format!("{prefix}.{}", k.replace('.', "\\.")), out);
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.push(prefix.to_string())
            }
        }
    }
}

fn split_path(p: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut cur = String::new();
    let mut chars = p.trim_start_matches('.').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                cur.push('.');
                chars.next();
            }
            '.' => segs.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    segs.push(cur);
    segs
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for s in split_path(path) {
        cur = cur.as_object()?.get(&s)?;
    }
    Some(cur)
}

/// Remove a path, pruning maps it leaves empty.
fn remove_path(v: &mut Value, segs: &[String]) {
    let Some(m) = v.as_object_mut() else { return };
    if segs.len() == 1 {
        m.remove(&segs[0]);
        return;
    }
    if let Some(child) = m.get_mut(&segs[0]) {
        remove_path(child, &segs[1..]);
        if child.as_object().is_some_and(|c| c.is_empty()) {
            m.remove(&segs[0]);
        }
    }
}

/// Recursive merge: maps merge, everything else replaces.
fn deep_merge(base: &mut Value, over: &Value) {
    match (base.as_object_mut(), over.as_object()) {
        (Some(b), Some(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) if bv.is_object() && v.is_object() => deep_merge(bv, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *base = over.clone(),
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(base: &mut Value, patch: &Value) {
    match patch.as_object() {
        Some(p) => {
            if !base.is_object() {
                *base = Value::Object(Map::new());
            }
            let b = base.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge_patch(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        None => *base = patch.clone(),
    }
}

/// `fieldsV1` for a set of leaf paths.
fn fields_v1(paths: &[String]) -> Value {
    let mut root = json!({});
    for p in paths {
        let mut cur = &mut root;
        for s in split_path(p) {
            cur = cur
                .as_object_mut()
                .unwrap()
                .entry(format!("f:{s}"))
                .or_insert(json!({}));
        }
    }
    root
}

/// Leaf paths recorded in a `fieldsV1` set.
fn paths_of_fields(f: &Value, prefix: &str, out: &mut Vec<String>) {
    match f.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, child) in m {
                if let Some(name) = k.strip_prefix("f:") {
                    paths_of_fields(
                        child,
                        &format!("{prefix}.{}", name.replace('.', "\\.")),
                        out,
                    );
                }
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.push(prefix.to_string())
            }
        }
    }
}

fn owned_paths(obj: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    leaf_paths(obj, "", &mut paths);
    paths.retain(|p| !is_system_path(p));
    paths
}

/// Record (replace) the managedFields entry of `manager` for `operation`.
fn set_managed(
    obj: &mut Value,
    manager: &str,
    operation: &str,
    paths: &[String],
    subresource: Option<&str>,
) {
    let api_version = obj["apiVersion"].clone();
    let mut entries: Vec<Value> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    entries.retain(|e| {
        !(e["manager"] == manager
            && e["operation"] == operation
            && e["subresource"].as_str() == subresource)
    });
    let mut e = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": store::now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(paths),
    });
    if let Some(s) = subresource {
        e["subresource"] = json!(s);
    }
    entries.push(e);
    obj["metadata"]["managedFields"] = Value::Array(entries);
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

fn server_side_apply(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns_subdomain("web.example-1"));
        assert!(!is_dns_subdomain("Bad_Name"));
        assert!(!is_dns_subdomain("-web"));
        assert!(!is_dns_subdomain(""));
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("web.1"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }

    #[test]
    fn field_sets_round_trip() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "c", "labels": {"app.kubernetes.io/name": "x"}},
                       "data": {"a": "1"}, "status": {"x": 1}});
        let paths = owned_paths(&v);
        assert_eq!(
            paths,
            vec![".data.a", ".metadata.labels.app\\.kubernetes\\.io/name"]
        );
        let mut back = Vec::new();
        paths_of_fields(&fields_v1(&paths), "", &mut back);
        assert_eq!(back, paths);
        assert_eq!(lookup(&v, &paths[1]), Some(&json!("x")));
    }

    #[test]
    fn merges() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        deep_merge(&mut base, &json!({"a": {"c": [3]}, "e": 2}));
        assert_eq!(base, json!({"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}));
        merge_patch(&mut base, &json!({"a": {"b": null}, "d": null}));
        assert_eq!(base, json!({"a": {"c": [3]}, "e": 2}));
        remove_path(&mut base, &split_path(".a.c"));
        assert_eq!(base, json!({"e": 2}));
    }
}
