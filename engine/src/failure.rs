//! Why an update failed, as a kind and a sentence. The layers that talk to the
//! outside world (Kubernetes, processes, probes, image builds, syncs) say which
//! kind of failure they met; the engine decides on the kind (retry or not), and
//! the sentence is only ever shown.

/// What kind of failure an update met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The cluster could not be reached, or there is no connection to one yet.
    Unreachable,
    /// The server refused for lack of permission (HTTP 401 or 403).
    Forbidden,
    /// The server rejected a request or object as invalid (HTTP 400 or 422).
    Invalid,
    /// Something named does not exist: an API object, a kind, a file, a program.
    NotFound,
    /// A deadline passed: a rollout, a CRD, the cluster's first answer.
    Timeout,
    /// A command of the Loopfile's (cmd, a build, apply_cmd, a run step) failed.
    CommandFailed,
    /// Anything else.
    Other,
}

/// A failure of an update: its kind and what to tell the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// A failure of no particular kind.
    pub fn other(message: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Other, message)
    }

    /// The same kind of failure, its sentence rewritten (to add context).
    pub fn reworded(self, reword: impl FnOnce(String) -> String) -> Failure {
        Failure {
            kind: self.kind,
            message: reword(self.message),
        }
    }

    /// Whether trying again later may succeed without any change by the user.
    pub fn may_pass_later(&self) -> bool {
        self.kind == FailureKind::Unreachable
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::other(message)
    }
}

/// For the callers that only show a failure: its sentence.
impl From<Failure> for String {
    fn from(failure: Failure) -> String {
        failure.message
    }
}

/// The kind of an I/O failure (a program or file that is not there, ...).
pub fn io_kind(err: &std::io::Error) -> FailureKind {
    match err.kind() {
        std::io::ErrorKind::NotFound => FailureKind::NotFound,
        std::io::ErrorKind::PermissionDenied => FailureKind::Forbidden,
        std::io::ErrorKind::TimedOut => FailureKind::Timeout,
        _ => FailureKind::Other,
    }
}
