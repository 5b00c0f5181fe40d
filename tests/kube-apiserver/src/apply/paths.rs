//! Field paths (`.spec.replicas`, with `\.` escaping dots in keys) and the two
//! merges: server-side apply's recursive merge and RFC 7386 JSON merge patch.

use serde_json::{Map, Value};

/// Fields set by the server that apply never owns or removes.
pub(super) fn is_system_path(p: &str) -> bool {
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
pub(super) fn leaf_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
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

pub(super) fn split_path(p: &str) -> Vec<String> {
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

pub(super) fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for s in split_path(path) {
        cur = cur.as_object()?.get(&s)?;
    }
    Some(cur)
}

/// Remove a path, pruning maps it leaves empty.
pub(super) fn remove_path(v: &mut Value, segs: &[String]) {
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
pub(super) fn deep_merge(base: &mut Value, over: &Value) {
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
pub(super) fn merge_patch(base: &mut Value, patch: &Value) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
