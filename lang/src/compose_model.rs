//! Docker Compose in the plain-data model: the service a `docker_compose`
//! resource runs and the project it belongs to (re-exported by [`crate::model`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A Docker Compose service: the project it belongs to (what `docker compose
/// -p PROJECT -f FILE...` is given) and its name in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComposeService {
    pub service: String,
    pub project: ComposeProject,
    /// The service's `image`, if it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Whether the service has a `build` section (built by Compose unless a
    /// `docker_build` of the Loopfiles builds its image).
    #[serde(default)]
    pub has_build: bool,
}

/// A Docker Compose project as `docker_compose()` declared it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComposeProject {
    /// The project name (`-p`).
    pub name: String,
    /// The configuration, in order: files (root-relative or absolute) and
    /// YAML given inline as blobs.
    pub configs: Vec<ComposeConfig>,
    /// The folder relative paths in the configuration start from (`--project-directory`).
    pub dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// `wait=True`: `up --wait` (a service is ready when Compose says it is).
    #[serde(default)]
    pub wait: bool,
    /// Variables `os.putenv` set, in Compose's environment (for `${VAR}` in the files).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// One configuration of a Compose project: a file, or YAML given inline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComposeConfig {
    /// The file (root-relative or absolute); empty for inline YAML.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The YAML given inline (a blob), else empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub contents: String,
}
