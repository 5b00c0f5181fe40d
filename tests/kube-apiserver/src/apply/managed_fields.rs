//! `managedFields`: the `fieldsV1` sets that record which manager owns which
//! leaf fields (lists are atomic), and recording a manager's entry.

use serde_json::{json, Value};

use super::paths::{is_system_path, leaf_paths, split_path};
use crate::store;

/// `fieldsV1` for a set of leaf paths.
pub(super) fn fields_v1(paths: &[String]) -> Value {
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
pub(super) fn paths_of_fields(f: &Value, prefix: &str, out: &mut Vec<String>) {
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

pub(super) fn owned_paths(obj: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    leaf_paths(obj, "", &mut paths);
    paths.retain(|p| !is_system_path(p));
    paths
}

/// Record (replace) the managedFields entry of `manager` for `operation`.
pub(super) fn set_managed(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::paths::lookup;

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
}
