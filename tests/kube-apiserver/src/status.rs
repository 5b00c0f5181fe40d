//! Kubernetes `Status` objects: the error (and some success) bodies the API
//! server sends, with the HTTP code that goes with each reason.

use serde_json::{json, Value};

use crate::discovery::ResourceType;

/// An API error: HTTP code plus a `metav1.Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
}

impl ApiError {
    /// A `Status` with `status: Failure`.
    pub fn new(code: u16, reason: &str, message: String, details: Option<Value>) -> ApiError {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        });
        if let Some(details) = details {
            body["details"] = details;
        }
        ApiError { code, body }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message.into(), None)
    }

    /// 404 for a path that names no known resource type.
    pub fn no_such_resource() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(json!({})),
        )
    }

    /// 404 `pods "web" not found` (`deployments.apps "web" not found`).
    pub fn not_found(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", rt.qualified()),
            Some(details(rt, name)),
        )
    }

    /// 404 `namespaces "x" not found`.
    pub fn namespace_not_found(ns: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("namespaces \"{ns}\" not found"),
            Some(json!({"name": ns, "kind": "namespaces"})),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", rt.qualified()),
            Some(details(rt, name)),
        )
    }

    /// 409 Conflict for a stale `resourceVersion`.
    pub fn stale(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                rt.qualified()
            ),
            Some(details(rt, name)),
        )
    }

    /// 409 Conflict for a server-side apply conflict with another field manager.
    pub fn apply_conflict(
        rt: &ResourceType,
        name: &str,
        manager: &str,
        fields: &[String],
    ) -> ApiError {
        let mut d = details(rt, name);
        d["causes"] = fields
            .iter()
            .map(|f| {
                json!({"reason": "FieldManagerConflict",
                       "message": format!("conflict with \"{manager}\""),
                       "field": f})
            })
            .collect();
        let list: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: conflict with \"{manager}\":\n{}",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
                list.join("\n")
            ),
            Some(d),
        )
    }

    /// 422 Invalid with one field cause.
    pub fn invalid(
        rt: &ResourceType,
        name: &str,
        field: &str,
        cause: &str,
        detail: String,
    ) -> ApiError {
        let mut d = details(rt, name);
        d["kind"] = json!(rt.kind);
        d["causes"] = json!([{"reason": cause, "message": detail, "field": field}]);
        ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {detail}", rt.kind_qualified()),
            Some(d),
        )
    }

    /// 403 Forbidden, worded as RBAC words it.
    pub fn forbidden(
        rt: &ResourceType,
        resource: &str,
        verb: &str,
        name: Option<&str>,
        ns: Option<&str>,
    ) -> ApiError {
        let subject = match name {
            Some(n) if !n.is_empty() => format!("{} \"{n}\"", rt.qualified()),
            _ => rt.qualified(),
        };
        let scope = match ns {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_string(),
        };
        ApiError::new(
            403,
            "Forbidden",
            format!(
                "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\"{scope}",
                crate::TEST_USER,
                rt.group
            ),
            Some(json!({"name": name.unwrap_or(""), "group": rt.group, "kind": rt.plural})),
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            Some(json!({})),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(ct: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct})"),
            Some(json!({})),
        )
    }
}

/// `details` for an object: name, group, kind (the plural resource, as the server writes it).
pub fn details(rt: &ResourceType, name: &str) -> Value {
    json!({"name": name, "group": rt.group, "kind": rt.plural})
}

/// `Status` with `status: Success` as returned by a DELETE that removed the object at once.
pub fn success_deleted(rt: &ResourceType, name: &str, uid: &str) -> Value {
    let mut d = details(rt, name);
    d["uid"] = json!(uid);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}
