//! What went wrong talking to the API server: its kind (from the HTTP status, or
//! a connection that failed) and, in words, the server's own message when it
//! sent one, else the root cause of a connection failure.

use crate::failure::{Failure, FailureKind};

/// Starts the text of errors that mean the API server could not be reached.
pub const UNREACHABLE: &str = "cluster unreachable";

/// A kube error as a failure of its kind.
pub fn failure(err: &kube::Error) -> Failure {
    match err {
        kube::Error::Api(status) => Failure::new(
            status_kind(status.code),
            api_status_text(&status.message, &status.reason, status.code),
        ),
        kube::Error::HyperError(_) | kube::Error::Service(_) => Failure::new(
            FailureKind::Unreachable,
            format!("{UNREACHABLE}: {}", root_cause(err)),
        ),
        other => Failure::other(other.to_string()),
    }
}

/// Text of a kube error: the server's message when it sent one.
pub fn error_text(err: &kube::Error) -> String {
    failure(err).message
}

/// The kind of failure an HTTP status of the API server means.
pub fn status_kind(code: u16) -> FailureKind {
    match code {
        401 | 403 => FailureKind::Forbidden,
        404 => FailureKind::NotFound,
        400 | 422 => FailureKind::Invalid,
        408 | 504 => FailureKind::Timeout,
        // The server is there but cannot serve now (overloaded, starting).
        429 | 502 | 503 => FailureKind::Unreachable,
        _ => FailureKind::Other,
    }
}

/// A `Status` error in words: the server's message, then its reason and code,
/// leaving out what is empty (errors relayed from a node often have no reason).
pub fn api_status_text(message: &str, reason: &str, code: u16) -> String {
    let detail = match (reason.is_empty(), code) {
        (true, 0) => String::new(),
        (true, code) => format!(" (HTTP {code})"),
        (false, 0) => format!(" ({reason})"),
        (false, code) => format!(" ({reason}, HTTP {code})"),
    };
    let message = if message.is_empty() {
        "the API server refused the request"
    } else {
        message
    };
    format!("{message}{detail}")
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "reason": reason, "message": message,
        }))
        .unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn the_kind_comes_from_the_status_code_not_the_text() {
        // Before typed failures, a rejection whose text quoted "cluster
        // unreachable" (here: a value in the object) was retried forever.
        let invalid = failure(&api_error(
            422,
            "Invalid",
            "ConfigMap \"x\" is invalid: data[cluster unreachable]: must be a key",
        ));
        assert_eq!(invalid.kind, FailureKind::Invalid);
        assert!(!invalid.may_pass_later());
        let forbidden = failure(&api_error(403, "Forbidden", "deployments is forbidden"));
        assert_eq!(forbidden.kind, FailureKind::Forbidden);
        assert_eq!(
            forbidden.message,
            "deployments is forbidden (Forbidden, HTTP 403)"
        );
        assert_eq!(
            failure(&api_error(404, "NotFound", "")).kind,
            FailureKind::NotFound
        );
        assert!(failure(&api_error(503, "ServiceUnavailable", "starting")).may_pass_later());
    }

    #[test]
    fn a_connection_that_failed_is_unreachable_whatever_its_words() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = kube::Error::Service(Box::new(refused));
        let found = failure(&err);
        assert_eq!(found.kind, FailureKind::Unreachable);
        assert!(found.may_pass_later());
        assert_eq!(found.message, format!("{UNREACHABLE}: refused"));
    }
}
