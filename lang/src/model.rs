//! The plain-data model that evaluating Loopfiles produces.
//!
//! The engine reads only these types, never Starlark values. Paths in the model
//! are root-relative with `/` separators when inside the project root, absolute
//! otherwise. The JSON form (`loop graph --format json`) is the serde form of
//! [`Manifest`] and is documented in README.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::compose_model::{ComposeConfig, ComposeProject, ComposeService};
use crate::data::Data;
use crate::location::Location;

/// Everything a composed set of Loopfiles declares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub resources: Vec<Resource>,
    pub images: Vec<Image>,
    /// Every file whose change re-evaluates the Loopfiles: the Loopfiles themselves,
    /// loaded modules, and files read or watched during evaluation.
    pub watched_files: Vec<String>,
    /// The Loopfiles evaluated, each with the files its evaluation depends on.
    pub loopfiles: Vec<LoopfileInfo>,
    pub settings: Settings,
    /// What `loop render` needs: the profile, dev-only parts, lint settings.
    #[serde(default)]
    pub release: Release,
    /// Tilt's `v1alpha1.ui_button`s, with the `v1alpha1.cmd`s each starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
}

/// The names of the policy rules of `loop check` and `loop render`.
pub const LINT_RULES: &[&str] = &[
    "resources",
    "privileged",
    "run-as-root",
    "host-path",
    "latest-tag",
    "readiness-probe",
];

/// Profiles, dev-only parts and lint settings: how the same Loopfiles feed
/// `loop render` (issue: path to production).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// The profile given with `--profile`, if any.
    pub profile: Option<String>,
    /// Every name a Loopfile tested with `profile(NAME)`, with its first test.
    pub profiles: Vec<(String, Location)>,
    /// Objects declared with `k8s_yaml(..., dev_only=True)` ([`ObjectRef::key`]).
    pub dev_only_objects: Vec<String>,
    /// Resources marked `k8s_resource(..., dev_only=True)`.
    pub dev_only_resources: Vec<String>,
    /// Rules of [`LINT_RULES`] turned off with `lint_settings(disable=...)`.
    pub lint_disabled: Vec<String>,
    /// `file:line` where each object ([`ObjectRef::key`]) declared from a YAML
    /// file starts in it.
    #[serde(default)]
    pub object_sources: BTreeMap<String, String>,
}

/// A button of the dashboard (`v1alpha1.ui_button`): pressing it runs the
/// commands (`v1alpha1.cmd(start_on=start_on_spec(ui_buttons=[NAME]))`) that
/// name it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Button {
    pub name: String,
    pub text: String,
    /// The resource it is shown with (location `Resource`), else the session's.
    pub resource: Option<String>,
    pub commands: Vec<ButtonCommand>,
    /// Values asked for before it runs its commands, which get each as an
    /// environment variable of its name (Tilt's `inputs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ButtonInput>,
    /// Tilt's `icon_name` (a Material icon's name), shown as a hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    pub defined_at: Location,
}

/// One value a button asks for (`v1alpha1.ui_input_spec`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ButtonInput {
    /// The environment variable the commands get it in.
    pub name: String,
    pub label: String,
    #[serde(flatten)]
    pub kind: InputKind,
}

/// What a button input holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputKind {
    Text {
        default: String,
        placeholder: String,
    },
    /// A checkbox: the commands get `true_string` or `false_string`.
    Bool {
        default: bool,
        true_string: String,
        false_string: String,
    },
    /// Not shown: the commands get `value`.
    Hidden { value: String },
    /// One of `choices` (the first by default).
    Choice { choices: Vec<String> },
}

impl ButtonInput {
    /// The value the commands get, from what a press gave (`None`: the
    /// default), or why what was given does not fit.
    pub fn value(&self, given: Option<&serde_json::Value>) -> Result<String, String> {
        use serde_json::Value;
        let name = &self.name;
        match (&self.kind, given) {
            (InputKind::Hidden { value }, _) => Ok(value.clone()),
            (InputKind::Text { default, .. }, None) => Ok(default.clone()),
            (InputKind::Text { .. }, Some(Value::String(text))) => Ok(text.clone()),
            (
                InputKind::Bool {
                    default,
                    true_string,
                    false_string,
                },
                given,
            ) => {
                let on = match given {
                    None => *default,
                    Some(Value::Bool(on)) => *on,
                    Some(other) => {
                        return Err(format!("input `{name}` is true or false, got {other}"))
                    }
                };
                Ok(if on { true_string } else { false_string }.clone())
            }
            (InputKind::Choice { choices }, None) => {
                Ok(choices.first().cloned().unwrap_or_default())
            }
            (InputKind::Choice { choices }, Some(Value::String(choice))) => {
                if choices.contains(choice) {
                    Ok(choice.clone())
                } else {
                    Err(format!(
                        "input `{name}` is one of {}, got {choice:?}",
                        choices.join(", ")
                    ))
                }
            }
            (InputKind::Choice { .. }, Some(other)) => {
                Err(format!("input `{name}` is one of its choices, got {other}"))
            }
            (_, Some(other)) => Err(format!("input `{name}` is text, got {other}")),
        }
    }
}

/// A `v1alpha1.cmd` a button starts: its argv, folder (root-relative) and
/// environment additions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ButtonCommand {
    pub name: String,
    pub argv: Vec<String>,
    pub dir: String,
    pub env: BTreeMap<String, String>,
}

impl Manifest {
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    pub fn image(&self, image_ref: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.image_ref == image_ref)
    }
}

/// A Loopfile that was evaluated, and what its evaluation read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopfileInfo {
    pub path: String,
    /// Files whose change re-evaluates this Loopfile (itself included).
    pub depends_on: Vec<String>,
}

/// What a resource runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// `local_resource`: commands on this machine.
    Local,
    /// A Kubernetes workload and the objects attached to it.
    K8s,
    /// Kubernetes objects that belong to no workload.
    K8sUncategorized,
    /// A Docker Compose service (`docker_compose`), run by Docker Compose.
    DockerCompose,
}

/// When a resource updates after its files change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TriggerMode {
    #[default]
    Auto,
    /// Only when triggered by hand.
    Manual,
}

/// One node of the graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    pub kind: ResourceKind,
    pub labels: Vec<String>,
    /// Ordering edges: start after these are ready.
    pub resource_deps: Vec<String>,
    /// Data edges: re-run whenever one of these re-runs (and start after it).
    pub data_deps: Vec<String>,
    /// Files and globs whose change re-runs this resource.
    pub deps: Vec<String>,
    /// Gitignore-style patterns excluded from `deps`.
    pub ignore: Vec<String>,
    pub defined_at: Location,
    pub cmd: Option<Cmd>,
    pub serve_cmd: Option<Cmd>,
    /// Image refs this resource deploys (data edges from those images).
    pub images: Vec<String>,
    pub objects: Vec<ObjectRef>,
    /// The folder the Loopfile that declared it lives in (root-relative).
    pub dir: String,
    pub cmd_dir: String,
    pub serve_dir: String,
    pub env: BTreeMap<String, String>,
    pub serve_env: BTreeMap<String, String>,
    pub readiness_probe: Option<Probe>,
    pub auto_init: bool,
    pub trigger_mode: TriggerMode,
    pub allow_parallel: bool,
    pub links: Vec<Link>,
    pub port_forwards: Vec<PortForward>,
    pub extra_pod_selectors: Vec<BTreeMap<String, String>>,
    pub live_update: Vec<LiveUpdateStep>,
    /// Files and globs a `cmd` produces (`outputs=`): when a run leaves them
    /// unchanged, data-downstreams do not re-run.
    pub outputs: Vec<String>,
    /// `k8s_custom_deploy`: the commands that deploy and delete its objects
    /// (its `objects` are then empty: they are what `apply_cmd` prints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_deploy: Option<CustomDeploy>,
    /// `docker_compose`: the service this resource runs and its project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<ComposeService>,
}

/// The commands of a `k8s_custom_deploy` resource. `apply_cmd` deploys and
/// prints the objects it deployed (YAML or JSON); `delete_cmd` removes them
/// (`loop down`). Folders are root-relative.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomDeploy {
    pub apply_cmd: Cmd,
    pub apply_dir: String,
    pub apply_env: BTreeMap<String, String>,
    pub delete_cmd: Cmd,
    pub delete_dir: String,
    pub delete_env: BTreeMap<String, String>,
    /// Images built before `apply_cmd` runs, passed to it as `TILT_IMAGE_i`
    /// (the built reference) and `TILT_IMAGE_MAP_i` (the image's name).
    pub image_deps: Vec<String>,
}

impl Resource {
    /// Whether its updates may overlap others': Kubernetes resources and
    /// `allow_parallel=True` local resources may; other local resources update
    /// one at a time (they often share a build tool), as in Tilt.
    pub fn updates_in_parallel(&self) -> bool {
        self.allow_parallel || self.kind != ResourceKind::Local
    }

    /// Whether a newer version (a change, a trigger, an edited definition)
    /// cancels a run in progress instead of waiting for it: Kubernetes updates,
    /// whose rollout wait would otherwise hold a fix back for minutes, as in Tilt.
    /// A local `cmd` runs to its end.
    pub fn newer_version_cancels_run(&self) -> bool {
        self.kind != ResourceKind::Local
    }

    /// A resource with nothing but a name, a kind and where it was declared; every
    /// other field has its Tilt default (`auto_init`, auto trigger, serial updates).
    pub fn new(name: &str, kind: ResourceKind, defined_at: Location) -> Resource {
        let dir = defined_at
            .file
            .rsplit_once('/')
            .map_or(".", |(d, _)| d)
            .to_owned();
        Resource {
            name: name.to_owned(),
            kind,
            labels: Vec::new(),
            resource_deps: Vec::new(),
            data_deps: Vec::new(),
            deps: Vec::new(),
            ignore: Vec::new(),
            defined_at,
            cmd: None,
            serve_cmd: None,
            images: Vec::new(),
            objects: Vec::new(),
            cmd_dir: dir.clone(),
            serve_dir: dir.clone(),
            dir,
            env: BTreeMap::new(),
            serve_env: BTreeMap::new(),
            readiness_probe: None,
            auto_init: true,
            trigger_mode: TriggerMode::Auto,
            allow_parallel: false,
            links: Vec::new(),
            port_forwards: Vec::new(),
            extra_pod_selectors: Vec::new(),
            live_update: Vec::new(),
            outputs: Vec::new(),
            custom_deploy: None,
            compose: None,
        }
    }
}

/// A command: a shell string (`sh -c`) or an argv list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    Shell(String),
    Argv(Vec<String>),
}

impl Cmd {
    /// The argv to execute.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Cmd::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
            Cmd::Argv(v) => v.clone(),
        }
    }

    pub fn display(&self) -> String {
        match self {
            Cmd::Shell(s) => s.clone(),
            Cmd::Argv(v) => v.join(" "),
        }
    }
}

impl Serialize for Cmd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cmd::Shell(text) => s.serialize_str(text),
            Cmd::Argv(argv) => argv.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Cmd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cmd, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Shell(String),
            Argv(Vec<String>),
        }
        Ok(match Form::deserialize(d)? {
            Form::Shell(text) => Cmd::Shell(text),
            Form::Argv(argv) => Cmd::Argv(argv),
        })
    }
}

/// A Kubernetes object declared through `k8s_yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub defined_at: Location,
    /// The full object, as declared.
    pub body: Data,
}

impl ObjectRef {
    /// `Kind/name`, or `Kind/namespace/name` when it names a namespace.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// A readiness probe (Tilt's `probe()`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub initial_delay_secs: f64,
    pub period_secs: f64,
    pub timeout_secs: f64,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    pub action: ProbeAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProbeAction {
    Http {
        scheme: String,
        host: String,
        port: u16,
        path: String,
    },
    Tcp {
        host: String,
        port: u16,
    },
    Exec {
        command: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub url: String,
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortForward {
    pub local_port: u16,
    pub container_port: u16,
    pub host: String,
    pub name: Option<String>,
    /// Forward to this Service's port (`container_port`) instead of the workload.
    pub service: Option<String>,
}

/// One step of a live update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum LiveUpdateStep {
    /// Copy files under `local` (root-relative) to `remote`.
    Sync {
        local: String,
        remote: String,
    },
    /// Run a command in the target; only when a changed file matches `trigger` (if any).
    Run {
        cmd: Cmd,
        trigger: Vec<String>,
    },
    RestartContainer,
    /// A change to any of these forces a full rebuild.
    FallBackOn {
        paths: Vec<String>,
    },
    /// Sync everything once when the target first starts.
    InitialSync,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageKind {
    Docker,
    Custom,
    /// Never built: the live-update target of a `k8s_custom_deploy` whose
    /// `image_selector` names an image that `apply_cmd` deploys as it is.
    LiveUpdateOnly,
    /// `oci_build`: assembled and pushed by `loop`, without a Docker daemon.
    Oci,
}

/// One copy step of an `oci_build`: a file or folder (root-relative) and where
/// it goes in the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciCopy {
    pub src: String,
    pub dest: String,
}

/// An image built by `docker_build` or `custom_build`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "ref")]
    pub image_ref: String,
    pub kind: ImageKind,
    /// Files whose change rebuilds the image (the context, or `deps`).
    pub deps: Vec<String>,
    pub ignore: Vec<String>,
    /// The `watch_settings(ignore=...)` patterns (gitignore-style, relative to
    /// the root): like `.loopignore` lines, they leave paths out of the image's
    /// inputs (context, hash), as Tilt treats them like `.tiltignore`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch_ignore: Vec<String>,
    pub live_update: Vec<LiveUpdateStep>,
    pub defined_at: Location,
    /// docker_build: context folder, Dockerfile, build args, `only`, target stage.
    pub context: Option<String>,
    pub dockerfile: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub only: Vec<String>,
    pub target: Option<String>,
    /// docker_build: a Dockerfile given inline (instead of `dockerfile`).
    #[serde(default)]
    pub dockerfile_contents: Option<String>,
    /// docker_build: more tags for the built image, `--platform`, `--network`,
    /// and BuildKit's `--ssh` / `--secret` specs, passed to `docker build` as given.
    #[serde(default)]
    pub extra_tags: Vec<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub ssh: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The container command of the workloads that use the image (Tilt's
    /// `entrypoint`): replaces `command` in their pod specs, and their `args`.
    #[serde(default)]
    pub entrypoint: Option<Cmd>,
    /// oci_build: the base image (`host/repo:tag` in a registry), the copy
    /// steps in order, and the image config's entrypoint, cmd, env and workdir.
    #[serde(default)]
    pub base: Option<String>,
    #[serde(default)]
    pub copies: Vec<OciCopy>,
    #[serde(default)]
    pub image_entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub image_cmd: Option<Vec<String>>,
    #[serde(default)]
    pub image_env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<String>,
    /// custom_build: the build command (run with `EXPECTED_REF` set), and its options.
    pub command: Option<Cmd>,
    pub command_dir: String,
    pub tag: Option<String>,
    pub skips_local_docker: bool,
    pub disable_push: bool,
    pub match_in_env_vars: bool,
    /// docker_build: the other images of the project its Dockerfile starts
    /// `FROM` (their refs as declared): built first, their built refs put in
    /// its `FROM` lines, and a change to them rebuilds it, as in Tilt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_images: Vec<String>,
    /// A live-update-only image of a `k8s_custom_deploy(container_selector=...)`:
    /// its containers are found by this name instead of by image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

impl Image {
    /// An image with only its ref, kind and declaration site set.
    pub fn new(image_ref: &str, kind: ImageKind, defined_at: Location) -> Image {
        Image {
            image_ref: image_ref.to_owned(),
            kind,
            deps: Vec::new(),
            ignore: Vec::new(),
            watch_ignore: Vec::new(),
            live_update: Vec::new(),
            defined_at,
            context: None,
            dockerfile: None,
            build_args: BTreeMap::new(),
            only: Vec::new(),
            target: None,
            dockerfile_contents: None,
            extra_tags: Vec::new(),
            platform: None,
            network: None,
            ssh: Vec::new(),
            secrets: Vec::new(),
            entrypoint: None,
            base: None,
            copies: Vec::new(),
            image_entrypoint: None,
            image_cmd: None,
            image_env: BTreeMap::new(),
            workdir: None,
            command: None,
            command_dir: String::new(),
            tag: None,
            skips_local_docker: false,
            disable_push: false,
            match_in_env_vars: false,
            base_images: Vec::new(),
            container_name: None,
        }
    }
}

/// A registry that images are pushed to (Tilt's `default_registry`, or one a
/// local cluster advertises in its `local-registry-hosting` ConfigMap).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRegistry {
    /// The registry as `loop` (and Docker) reach it: `localhost:5000`, `ghcr.io/me`.
    pub host: String,
    /// The registry as the cluster's nodes reach it, when that differs.
    #[serde(default)]
    pub host_from_cluster: Option<String>,
    /// Push every image to this one repository (ECR style), told apart by tag.
    #[serde(default)]
    pub single_name: Option<String>,
}

/// Settings declared by Loopfile calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub max_parallel_updates: u32,
    /// Gitignore-style patterns never watched (`watch_settings(ignore=...)`).
    pub watch_ignore: Vec<String>,
    /// Where each `watch_ignore` pattern was declared.
    pub watch_ignore_at: Vec<Location>,
    pub allowed_k8s_contexts: Vec<String>,
    /// `default_registry(...)`: where images are pushed, and the names pods pull.
    pub default_registry: Option<DefaultRegistry>,
    /// `config.set_enabled_resources`; `None` means all.
    pub enabled_resources: Option<Vec<String>>,
    pub k8s_namespace: Option<String>,
    /// Replace the values of applied `Secret`s in logs (`secret_settings(disable_scrub=)`).
    pub scrub_secrets: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_parallel_updates: 3,
            watch_ignore: Vec::new(),
            watch_ignore_at: Vec::new(),
            allowed_k8s_contexts: Vec::new(),
            default_registry: None,
            enabled_resources: None,
            k8s_namespace: None,
            scrub_secrets: true,
        }
    }
}
