//! Tilt's built-ins that are about Tilt itself rather than resources: version and
//! team settings, feature flags, `exit()`, `k8s_context()`, `filter_yaml()`,
//! `local_git_repo()`, `workload_to_resource_function()` and `shlex.quote()`.
//!
//! Those with no effect in `loop` are accepted (a Tiltfile runs unchanged) and
//! log a one-line warning that `loop check` shows, naming what is ignored.

use std::fmt;
use std::path::Path;

use allocative::Allocative;
use anyhow::{anyhow, bail};
use loop_lang::data::Data;
use loop_lang::EvalEnv;
use regex::Regex;
use starlark::environment::{GlobalsBuilder, Methods, MethodsBuilder, MethodsStatic};
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::starlark_simple_value;
use starlark::values::none::NoneType;
use starlark::values::tuple::AllocTuple;
use starlark::values::{
    Heap, NoSerialize, ProvidesStaticType, StarlarkPagable, StarlarkValue, Value,
};
use starlark_derive::starlark_value;

use crate::decls::{call_site, declarations};
use crate::values::{self, alloc_strings, string_map, text_of, Arg, Blob, NONE};

/// The hidden module variable holding the `workload_to_resource_function`.
pub const WORKLOAD_NAMER: &str = "__loop_workload_namer";

/// Logs a one-line warning that a built-in (or an argument) has no effect.
pub fn ignored(eval: &Evaluator, text: String) -> anyhow::Result<()> {
    let env = EvalEnv::of(eval)?;
    env.loader.log(&env.file, true, text);
    Ok(())
}

/// Registers the `shlex` namespace.
pub fn shlex_namespace(builder: &mut GlobalsBuilder) {
    builder.namespace("shlex", shlex_functions);
}

/// Registers Tilt's `sys` namespace: `sys.executable`, the `loop` binary
/// (what ext://uibutton runs as `tilt apply`, see `loop apply`), and
/// `sys.argv`, the program and the Tilt subcommand (as `["tilt", "up"]`).
pub fn sys_namespace(builder: &mut GlobalsBuilder, context: &crate::Context) {
    let executable = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "loop".to_owned());
    builder.namespace("sys", |sys| {
        sys.set("executable", executable.clone());
        let mut argv = vec![executable.clone()];
        argv.extend(context.subcommand.split_whitespace().map(str::to_owned));
        sys.set("argv", argv);
    });
}

/// Quotes `s` for a POSIX shell, as Python's `shlex.quote`.
pub fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".to_owned();
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if s.chars().all(safe) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

#[starlark_module]
fn shlex_functions(builder: &mut GlobalsBuilder) {
    /// `s` quoted for a POSIX shell (as Python's `shlex.quote`).
    fn quote(s: &str) -> anyhow::Result<String> {
        Ok(shell_quote(s))
    }
}

/// The current context of the kubeconfig (`KUBECONFIG`, first file that names
/// one, else `~/.kube/config`); empty when there is none.
pub fn kubeconfig_context() -> String {
    let files: Vec<std::path::PathBuf> = match std::env::var_os("KUBECONFIG") {
        Some(paths) if !paths.is_empty() => std::env::split_paths(&paths).collect(),
        _ => std::env::var_os("HOME")
            .map(|home| vec![Path::new(&home).join(".kube/config")])
            .unwrap_or_default(),
    };
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|text| Data::from_yaml(&text).ok())
        .find_map(|doc| {
            doc.get("current-context")
                .and_then(Data::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// One `filter_yaml` criterion: a case-insensitive regular expression that must
/// match somewhere in the field (Tilt's partial match).
fn pattern(name: &str, v: Option<&str>) -> anyhow::Result<Option<Regex>> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(p) => Regex::new(&format!("(?i){p}"))
            .map(Some)
            .map_err(|e| anyhow!("filter_yaml: `{name}` is not a valid regular expression: {e}")),
    }
}

/// A Git repository checkout, from `local_git_repo(path)`.
#[derive(Debug, ProvidesStaticType, NoSerialize, StarlarkPagable, Allocative)]
pub struct GitRepo {
    /// The absolute folder of the checkout.
    pub path: String,
}
starlark_simple_value!(GitRepo);

impl fmt::Display for GitRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "local_git_repo({:?})", self.path)
    }
}

#[starlark_value(type = "local_git_repo")]
impl<'v> StarlarkValue<'v> for GitRepo {
    fn get_methods() -> Option<&'static Methods> {
        static RES: MethodsStatic = MethodsStatic::new("local_git_repo", git_repo_methods);
        Some(RES.methods())
    }
}

#[starlark_module]
fn git_repo_methods(builder: &mut MethodsBuilder) {
    /// Paths inside the repository, made absolute (a string or a list of them).
    fn paths<'v>(this: &GitRepo, path: Value<'v>, heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        let join = |p: &str| {
            loop_lang::project::normalize(&Path::new(&this.path).join(p))
                .to_string_lossy()
                .into_owned()
        };
        if let Some(p) = text_of(path) {
            return Ok(heap.alloc(join(&p)));
        }
        let arg = Arg {
            function: "local_git_repo.paths",
            name: "path",
        };
        let items = values::string_list(arg, Some(path))?;
        let joined: Vec<String> = items.iter().map(|p| join(p)).collect();
        Ok(alloc_strings(heap, &joined))
    }
}

#[starlark_module]
pub fn tilt_builtins(builder: &mut GlobalsBuilder) {
    /// Accepted for Tilt: `loop` has no update check; a version constraint is
    /// ignored with a warning.
    fn version_settings<'v>(
        #[starlark(default = true)] check_updates: bool,
        #[starlark(default = "")] constraint: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let _ = check_updates;
        if !constraint.is_empty() {
            ignored(
                eval,
                format!("version_settings: the Tilt version constraint {constraint:?} is ignored by loop"),
            )?;
        }
        Ok(NONE)
    }

    /// The Kubernetes context in use: `--context`, else the kubeconfig's current
    /// context, else "".
    fn k8s_context<'v>(eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<String> {
        let env = EvalEnv::of(eval)?;
        let given = declarations(env).borrow().k8s_context.clone();
        Ok(given.unwrap_or_else(kubeconfig_context))
    }

    /// Accepted for Tilt, ignored with a warning: custom kinds are not workloads in `loop`.
    fn k8s_kind<'v>(
        kind: &str,
        image_json_path: Option<Value<'v>>,
        api_version: Option<&str>,
        pod_readiness: Option<&str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let _ = (image_json_path, api_version, pod_readiness);
        ignored(eval, format!("k8s_kind: ignored by loop: {kind:?} objects are not treated as workloads and their image paths are not read"))?;
        Ok(NONE)
    }

    /// Accepted for Tilt, ignored with a warning: `loop` finds images only in pod templates.
    fn k8s_image_json_path<'v>(
        paths: Value<'v>,
        #[starlark(default = "")] api_version: &str,
        #[starlark(default = "")] kind: &str,
        #[starlark(default = "")] name: &str,
        #[starlark(default = "")] namespace: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let _ = (paths, api_version, namespace);
        ignored(eval, format!("k8s_image_json_path: ignored by loop (kind {kind:?}, name {name:?}): images are found only in pod templates"))?;
        Ok(NONE)
    }

    /// Accepted for Tilt, ignored with a warning: Tilt's feature flags.
    fn enable_feature<'v>(
        feature_name: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        ignored(
            eval,
            format!("enable_feature: Tilt feature {feature_name:?} has no effect in loop"),
        )?;
        Ok(NONE)
    }

    /// Accepted for Tilt, ignored with a warning: `loop` does not prune Docker images.
    fn docker_prune_settings<'v>(
        #[starlark(default = false)] disable: bool,
        #[starlark(default = 360)] max_age_mins: i32,
        #[starlark(default = 0)] num_builds: i32,
        #[starlark(default = 1)] interval_hrs: i32,
        #[starlark(default = 2)] keep_recent: i32,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let _ = (max_age_mins, num_builds, interval_hrs, keep_recent);
        if !disable {
            ignored(
                eval,
                "docker_prune_settings: ignored: loop does not prune Docker images".to_owned(),
            )?;
        }
        Ok(NONE)
    }

    /// Whether the values of the `Secret`s the Loopfiles apply are replaced in every
    /// log line (on by default, as in Tilt).
    fn secret_settings<'v>(
        #[starlark(default = false)] disable_scrub: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let env = EvalEnv::of(eval)?;
        declarations(env).borrow_mut().settings.scrub_secrets = !disable_scrub;
        Ok(NONE)
    }

    /// Accepted for Tilt, ignored with a warning: `loop` has no Tilt Cloud team.
    fn set_team<'v>(team_id: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<NoneType> {
        let _ = team_id;
        ignored(
            eval,
            "set_team: ignored: loop does not connect to Tilt Cloud".to_owned(),
        )?;
        Ok(NONE)
    }

    /// Accepted for Tilt, ignored with a warning: `loop ci` takes `--timeout`.
    fn ci_settings<'v>(
        k8s_grace_period: Option<Value<'v>>,
        timeout: Option<Value<'v>>,
        readiness_timeout: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let _ = (k8s_grace_period, timeout, readiness_timeout);
        ignored(
            eval,
            "ci_settings: ignored: give `loop ci --timeout` instead".to_owned(),
        )?;
        Ok(NONE)
    }

    /// Accepted for Tilt, ignored with a warning: `loop` has no snapshots.
    fn disable_snapshots<'v>(eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<NoneType> {
        ignored(
            eval,
            "disable_snapshots: ignored: loop has no snapshots".to_owned(),
        )?;
        Ok(NONE)
    }

    /// Accepted for Tilt, ignored with a warning: `loop` sends no analytics.
    fn analytics_settings<'v>(
        enable: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let _ = enable;
        ignored(
            eval,
            "analytics_settings: ignored: loop sends no analytics".to_owned(),
        )?;
        Ok(NONE)
    }

    /// Stops the evaluation here, successfully: what was declared so far is used
    /// (as Tilt's `exit()`); a non-zero code is logged.
    fn exit<'v>(
        #[starlark(default = NoneType)] code: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let env = EvalEnv::of(eval)?;
        if !code.is_none() && code.unpack_i32() != Some(0) {
            env.loader.log(
                &env.file,
                false,
                format!("exit({}): evaluation stopped here", code.to_repr()),
            );
        }
        env.loader.request_exit();
        bail!("exit() called")
    }

    /// Splits YAML into the objects matching every given criterion and the rest,
    /// as two blobs: `labels` must all be on the object; `name`, `namespace`,
    /// `kind` and `api_version` are case-insensitive regular expressions.
    fn filter_yaml<'v>(
        yaml: Value<'v>,
        labels: Option<Value<'v>>,
        name: Option<&str>,
        namespace: Option<&str>,
        kind: Option<&str>,
        api_version: Option<&str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        let labels = string_map(
            Arg {
                function: "filter_yaml",
                name: "labels",
            },
            labels,
        )?;
        let name = pattern("name", name)?;
        let namespace = pattern("namespace", namespace)?;
        let kind = pattern("kind", kind)?;
        let api_version = pattern("api_version", api_version)?;
        let docs: Vec<Data> = super::k8s::yaml_sources(env, yaml, "filter_yaml")?
            .into_iter()
            .flat_map(|source| source.docs)
            .collect();
        let (mut matching, mut rest) = (Vec::new(), Vec::new());
        for doc in docs {
            let text = |path: &[&str]| {
                doc.path(path)
                    .and_then(Data::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let fits =
                |re: &Option<Regex>, value: String| re.as_ref().is_none_or(|r| r.is_match(&value));
            let object_labels = doc.path(&["metadata", "labels"]);
            let ok = fits(&name, text(&["metadata", "name"]))
                && fits(&namespace, text(&["metadata", "namespace"]))
                && fits(&kind, text(&["kind"]))
                && fits(&api_version, text(&["apiVersion"]))
                && labels.iter().all(|(k, v)| {
                    object_labels.and_then(|l| l.get(k)).and_then(Data::as_str) == Some(v)
                });
            if ok {
                matching.push(doc);
            } else {
                rest.push(doc);
            }
        }
        let blob = |docs: &[Data]| {
            Data::to_yaml_stream(docs)
                .map(Blob)
                .map_err(|e| anyhow!("filter_yaml: {e}"))
        };
        let heap = eval.heap();
        Ok(heap.alloc(AllocTuple([
            heap.alloc(blob(&matching)?),
            heap.alloc(blob(&rest)?),
        ])))
    }

    /// A Git checkout at `path` (relative to this file), whose `.paths(p)` gives
    /// absolute paths inside it.
    fn local_git_repo<'v>(path: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<GitRepo> {
        let env = EvalEnv::of(eval)?;
        let dir = env.resolve(path);
        if !dir.join(".git").exists() {
            bail!(
                "local_git_repo: {} is not a Git checkout: it has no .git",
                env.display(&dir)
            );
        }
        Ok(GitRepo {
            path: dir.to_string_lossy().into_owned(),
        })
    }

    /// Names each Kubernetes workload's resource with `fn(id)`, where `id` has
    /// `name`, `kind`, `namespace` and `group`; it must return a string.
    fn workload_to_resource_function<'v>(
        r#fn: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        if r#fn.get_type() != "function" {
            bail!(
                "workload_to_resource_function: expected a function, got {}",
                values::describe(r#fn)
            );
        }
        let env = EvalEnv::of(eval)?;
        eval.module().set(WORKLOAD_NAMER, r#fn);
        declarations(env).borrow_mut().workload_namer = Some((env.file.clone(), call_site(eval)));
        Ok(NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_python() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("abc-1.2/x"), "abc-1.2/x");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
    }
}
