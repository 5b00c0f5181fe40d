//! Validation of written objects: apiVersion/kind against the URL, names
//! (DNS-1123 label or subdomain), the few required spec fields the real server
//! checks, and the namespace (body and URL agree, the namespace exists).

use serde_json::{json, Value};

use crate::discovery::ResourceType;
use crate::status::ApiError;
use crate::store::{ObjKey, Store};

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

/// Check apiVersion/kind of a body against the URL's type.
pub(super) fn check_type(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
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
pub(super) fn validate(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
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
pub(super) fn check_namespace(
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
}
