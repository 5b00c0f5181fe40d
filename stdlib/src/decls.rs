//! What the built-ins collect while Loopfiles evaluate, before assembly into a Manifest.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use loop_lang::data::Data;
use loop_lang::model::{Image, PortForward, Resource, Settings, TriggerMode};
use loop_lang::{EvalEnv, Location};
use starlark::eval::Evaluator;

/// One `k8s_yaml` document.
#[derive(Clone, Debug)]
pub struct ObjectDecl {
    pub body: Data,
    pub defined_at: Location,
    /// `file:line` where the object starts in its YAML file, if from a file.
    pub source: Option<String>,
    pub allow_duplicates: bool,
    /// `k8s_yaml(..., dev_only=True)`: left out of `loop render`.
    pub dev_only: bool,
}

/// One `k8s_resource` call.
#[derive(Clone, Debug, Default)]
pub struct K8sResourceDecl {
    pub workload: String,
    pub new_name: Option<String>,
    pub port_forwards: Vec<PortForward>,
    pub extra_pod_selectors: Vec<std::collections::BTreeMap<String, String>>,
    pub trigger_mode: Option<TriggerMode>,
    pub resource_deps: Vec<String>,
    pub data_deps: Vec<String>,
    pub objects: Vec<String>,
    pub auto_init: Option<bool>,
    pub links: Vec<loop_lang::model::Link>,
    pub labels: Vec<String>,
    /// `dev_only=True`: the resource's objects are left out of `loop render`.
    pub dev_only: bool,
    pub defined_at: Location,
}

/// One Docker Compose project of `docker_compose()` (calls naming the same
/// project add their files to it, as in Tilt).
#[derive(Clone, Debug)]
pub struct ComposeDecl {
    pub project: loop_lang::model::ComposeProject,
    /// Each configuration, parsed.
    pub files: Vec<crate::builtins::compose_file::ComposeFile>,
    pub defined_at: Location,
}

/// One `dc_resource` call: how a Compose service's resource is configured.
#[derive(Clone, Debug, Default)]
pub struct DcResourceDecl {
    pub service: String,
    pub project: String,
    pub new_name: Option<String>,
    pub trigger_mode: Option<TriggerMode>,
    pub resource_deps: Vec<String>,
    pub links: Vec<loop_lang::model::Link>,
    pub labels: Vec<String>,
    pub auto_init: Option<bool>,
}

/// `v1alpha1.extension_repo(name, url, ref)`: where extensions come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionRepo {
    pub name: String,
    pub url: String,
    /// A branch, tag or commit to check out (empty: the default branch).
    pub git_ref: String,
}

/// `v1alpha1.extension(name, repo_name, repo_path)`: an extension of a repo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionDecl {
    pub name: String,
    pub repo_name: String,
    /// Its folder in the repository (empty: the repository's top).
    pub repo_path: String,
}

/// A `config.define_*` flag.
#[derive(Clone, Debug)]
pub struct ConfigFlag {
    pub name: String,
    pub kind: FlagKind,
    pub positional: bool,
    pub usage: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    String,
    Bool,
    StringList,
}

/// Everything declared so far, in declaration order.
#[derive(Debug, Default)]
pub struct Declarations {
    pub local_resources: Vec<Resource>,
    /// `k8s_custom_deploy` resources (Kubernetes resources with commands).
    pub custom_deploys: Vec<Resource>,
    /// `v1alpha1.ui_button`s (their commands are added at assembly).
    pub buttons: Vec<loop_lang::model::Button>,
    /// `v1alpha1.cmd`s started by buttons, with the names of those buttons.
    pub button_commands: Vec<(Vec<String>, loop_lang::model::ButtonCommand)>,
    pub objects: Vec<ObjectDecl>,
    pub k8s_resources: Vec<K8sResourceDecl>,
    /// `docker_compose()` projects and `dc_resource()` calls.
    pub compose: Vec<ComposeDecl>,
    pub dc_resources: Vec<DcResourceDecl>,
    /// `v1alpha1.extension_repo()`s and `v1alpha1.extension()`s so far.
    pub extension_repos: Vec<ExtensionRepo>,
    pub extensions: Vec<ExtensionDecl>,
    /// Never fetch extensions (only folders and caches are used).
    pub no_fetch: bool,
    pub images: Vec<Image>,
    pub settings: Settings,
    pub default_trigger_mode: TriggerMode,
    /// Arguments after `--` on the command line, for `config.parse()`.
    pub config_args: Vec<String>,
    /// Whether `config.parse()` was called (else the arguments name the
    /// resources to enable, as in Tilt).
    pub config_parsed: bool,
    pub config_flags: Vec<ConfigFlag>,
    /// `--context`: what `k8s_context()` reports instead of the kubeconfig's.
    pub k8s_context: Option<String>,
    /// `os.putenv` (`Some`) and `os.unsetenv` (`None`) so far, as Tilt changes its
    /// own environment: later `local()` calls and every resource command see them.
    pub env: BTreeMap<String, Option<String>>,
    /// Where `workload_to_resource_function` was called: the file whose module
    /// holds the function, and the call.
    pub workload_namer: Option<(PathBuf, Location)>,
    /// Resource names the namer gave, by workload `(kind, name, namespace)`.
    pub workload_names: BTreeMap<(String, String, Option<String>), String>,
    /// Profiles, dev-only marks and lint settings (`profile()`, `dev_only=`,
    /// `lint_settings()`).
    pub release: loop_lang::model::Release,
}

/// The declarations of the running evaluation.
pub fn declarations<'a>(env: &'a EvalEnv<'a>) -> &'a RefCell<Declarations> {
    env.loader.state::<RefCell<Declarations>>()
}

/// Where the built-in being run was called from, as the user of the Loopfile sees
/// it: the call in the Loopfile being evaluated, even when the built-in was reached
/// through functions of a loaded module.
pub fn call_site(eval: &Evaluator) -> Location {
    let file = EvalEnv::of(eval).ok().map(|env| env.display(&env.file));
    let frames = eval.call_stack().into_frames();
    let in_file = frames
        .iter()
        .rev()
        .filter_map(|frame| frame.location.as_ref())
        .find(|span| Some(span.filename()) == file.as_deref());
    match in_file {
        Some(span) => Location::from_span(span),
        None => eval
            .call_stack_top_location()
            .map(|span| Location::from_span(&span))
            .unwrap_or_default(),
    }
}
