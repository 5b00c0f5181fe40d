//! Why an image did not build, in words a user can act on, and of which kind
//! ([`crate::failure::FailureKind`]).

use std::io;

use crate::failure::{io_kind, Failure, FailureKind};
use crate::report::with_output;

/// Why an image did not build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("image {image_ref}: cannot hash its inputs: {source}")]
    Hash {
        image_ref: String,
        #[source]
        source: io::Error,
    },
    #[error("image {image_ref}: custom_build has no command")]
    NoCommand { image_ref: String },
    #[error("image {image_ref}: {reason}")]
    Spawn { image_ref: String, reason: String },
    #[error("{}", failed_message(image_ref, cmd, exit, output))]
    Failed {
        image_ref: String,
        /// The command as the user wrote it.
        cmd: String,
        /// How it ended, in words (`exit code 2`).
        exit: String,
        /// Its last output lines.
        output: Vec<String>,
    },
    #[error("image {image_ref}: cannot read its build context: {source}")]
    Context {
        image_ref: String,
        #[source]
        source: io::Error,
    },
    #[error("{}", docker_failed_message(image_ref, step.as_deref(), exit, output))]
    DockerFailed {
        image_ref: String,
        /// The failing Dockerfile step, as Docker printed it.
        step: Option<String>,
        exit: String,
        /// What the failing step printed (or the last lines).
        output: Vec<String>,
    },
    #[error("{}", push_failed_message(image_ref, target, exit, output))]
    Push {
        image_ref: String,
        /// What was pushed (`host/repo:tag`).
        target: String,
        exit: String,
        output: Vec<String>,
    },
    #[error("image {image_ref}: oci_build pushes the image it assembles to a registry, and there is none: declare default_registry(\"localhost:5000\") (or use a cluster that advertises its registry in the ConfigMap kube-public/local-registry-hosting)")]
    NoRegistry { image_ref: String },
    #[error("image {image_ref}: building without Docker failed: {reason}")]
    Oci { image_ref: String, reason: String },
    #[error("docker_build needs a Docker daemon: none is reachable (docker CLI said: {said}). Start Docker, set DOCKER_HOST, or use custom_build with a builder that needs no daemon")]
    NoDaemon { said: String },
    #[error("docker_build needs the docker CLI, but `{program}` was not found on PATH. Install Docker (CLI and daemon), or use custom_build with a builder that needs no daemon")]
    NoDockerCli { program: String },
}

impl BuildError {
    /// What kind of failure this is.
    pub fn kind(&self) -> FailureKind {
        match self {
            BuildError::Hash { source, .. } | BuildError::Context { source, .. } => io_kind(source),
            BuildError::NoCommand { .. } | BuildError::NoRegistry { .. } => FailureKind::Invalid,
            BuildError::Failed { .. }
            | BuildError::DockerFailed { .. }
            | BuildError::Push { .. } => FailureKind::CommandFailed,
            BuildError::NoDaemon { .. } | BuildError::NoDockerCli { .. } => FailureKind::NotFound,
            BuildError::Spawn { .. } | BuildError::Oci { .. } => FailureKind::Other,
        }
    }
}

impl From<BuildError> for Failure {
    fn from(err: BuildError) -> Failure {
        Failure::new(err.kind(), err.to_string())
    }
}

fn failed_message(image_ref: &str, cmd: &str, exit: &str, output: &[String]) -> String {
    let text = format!("image {image_ref}: `{cmd}` failed with {exit}");
    with_output(text, "; its last output:", output, " and printed nothing")
}

fn docker_failed_message(
    image_ref: &str,
    step: Option<&str>,
    exit: &str,
    output: &[String],
) -> String {
    let mut text = format!("image {image_ref}: docker build failed");
    if let Some(step) = step {
        text.push_str(&format!(" at {step}"));
    }
    text.push_str(&format!(" ({exit})"));
    with_output(text, "; its output:", output, " and printed nothing")
}

fn push_failed_message(image_ref: &str, target: &str, exit: &str, output: &[String]) -> String {
    let text = format!("image {image_ref}: docker push {target} failed ({exit})");
    with_output(text, "; its last output:", output, "")
}
