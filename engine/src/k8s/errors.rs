//! What went wrong talking to the API server, in words: the server's own
//! message when it sent one, else the root cause of a connection failure.

/// Starts the text of errors that mean the API server could not be reached.
pub const UNREACHABLE: &str = "cluster unreachable";

/// Text of a kube error: the server's message when it sent one.
pub fn error_text(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => api_status_text(&status.message, &status.reason, status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            format!("{UNREACHABLE}: {}", root_cause(err))
        }
        other => other.to_string(),
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
