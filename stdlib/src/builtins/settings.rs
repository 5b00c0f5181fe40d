//! Global settings: trigger mode, parallelism, watch ignores, Kubernetes contexts,
//! the default registry; and `warn`.

use anyhow::bail;
use loop_lang::model::DefaultRegistry;
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::none::NoneType;
use starlark::values::Value;

use super::args::trigger_mode as parse_trigger_mode;
use super::tilt::ignored;
use crate::decls::declarations;
use crate::values::{string_list, Arg, NONE};

/// Registers the settings built-ins and the trigger-mode constants.
pub fn settings_builtins(builder: &mut GlobalsBuilder) {
    builder.set("TRIGGER_MODE_AUTO", "auto");
    builder.set("TRIGGER_MODE_MANUAL", "manual");
    settings_functions(builder);
}

#[starlark_module]
fn settings_functions(builder: &mut GlobalsBuilder) {
    /// The default trigger mode of the resources declared after this call.
    fn trigger_mode<'v>(
        trigger_mode: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let mode = parse_trigger_mode(
            Arg {
                function: "trigger_mode",
                name: "trigger_mode",
            },
            Some(trigger_mode),
        )?;
        let env = EvalEnv::of(eval)?;
        declarations(env).borrow_mut().default_trigger_mode = mode.unwrap_or_default();
        Ok(NONE)
    }

    /// How many resources may update at once.
    fn update_settings<'v>(
        max_parallel_updates: Option<i32>,
        k8s_upsert_timeout_secs: Option<i32>,
        suppress_unused_image_warnings: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        if k8s_upsert_timeout_secs.is_some() {
            ignored(
                eval,
                "update_settings: k8s_upsert_timeout_secs is ignored by loop".to_owned(),
            )?;
        }
        if suppress_unused_image_warnings.is_some_and(|v| !v.is_none()) {
            ignored(
                eval,
                "update_settings: suppress_unused_image_warnings is ignored by loop".to_owned(),
            )?;
        }
        let env = EvalEnv::of(eval)?;
        if let Some(n) = max_parallel_updates {
            if n < 1 {
                bail!("update_settings: max_parallel_updates must be at least 1, got {n}");
            }
            declarations(env).borrow_mut().settings.max_parallel_updates = n as u32;
        }
        Ok(NONE)
    }

    /// Gitignore-style patterns that are never watched.
    fn watch_settings<'v>(
        ignore: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let patterns = string_list(
            Arg {
                function: "watch_settings",
                name: "ignore",
            },
            ignore,
        )?;
        let env = EvalEnv::of(eval)?;
        let at = crate::decls::call_site(eval);
        let mut decls = declarations(env).borrow_mut();
        let settings = &mut decls.settings;
        settings
            .watch_ignore_at
            .extend(std::iter::repeat_n(at, patterns.len()));
        settings.watch_ignore.extend(patterns);
        Ok(NONE)
    }

    /// Kubernetes contexts that `loop` may change even though they do not look local.
    fn allow_k8s_contexts<'v>(
        contexts: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let names = string_list(
            Arg {
                function: "allow_k8s_contexts",
                name: "contexts",
            },
            Some(contexts),
        )?;
        let env = EvalEnv::of(eval)?;
        declarations(env)
            .borrow_mut()
            .settings
            .allowed_k8s_contexts
            .extend(names);
        Ok(NONE)
    }

    /// Pushes images to `host` and deploys them by digest from there (or from
    /// `host_from_cluster`, the registry as the cluster's nodes reach it). Image
    /// names are rewritten as Tilt does: `host/<name with / : @ as _>`, or
    /// `host/single_name` for every image when given.
    fn default_registry<'v>(
        host: &str,
        host_from_cluster: Option<&str>,
        single_name: Option<&str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let check_host = |what: &str, value: &str| -> anyhow::Result<()> {
            if value.contains("://") {
                bail!("default_registry: {what} {value:?} must be a host (and path), without a scheme, e.g. \"localhost:5000\"");
            }
            if value.trim().is_empty()
                || value.contains(char::is_whitespace)
                || value.ends_with('/')
                || value
                    .split('/')
                    .skip(1)
                    .any(|p| p.is_empty() || p.chars().any(|c| c.is_ascii_uppercase()))
            {
                bail!("default_registry: {value:?} is not a registry host (e.g. \"localhost:5000\" or \"ghcr.io/team\")");
            }
            Ok(())
        };
        check_host("host", host)?;
        if let Some(h) = host_from_cluster.filter(|h| !h.is_empty()) {
            check_host("host_from_cluster", h)?;
        }
        if let Some(name) = single_name.filter(|n| !n.is_empty()) {
            let valid = name.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
            if !valid {
                bail!("default_registry: single_name {name:?} is not a repository name (lower-case letters, digits, `.`, `_`, `-`, parts joined by `/`)");
            }
        }
        let env = EvalEnv::of(eval)?;
        declarations(env).borrow_mut().settings.default_registry = Some(DefaultRegistry {
            host: host.to_owned(),
            host_from_cluster: host_from_cluster
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            single_name: single_name.filter(|n| !n.is_empty()).map(str::to_owned),
        });
        Ok(NONE)
    }

    /// The namespace for namespaced objects that name none (default: the
    /// kubeconfig context's namespace).
    fn k8s_namespace<'v>(
        namespace: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let valid = !namespace.is_empty()
            && namespace.len() <= 63
            && namespace
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !namespace.starts_with('-')
            && !namespace.ends_with('-');
        if !valid {
            bail!("k8s_namespace: {namespace:?} is not a valid namespace name (lower-case letters, digits and `-`, at most 63)");
        }
        let env = EvalEnv::of(eval)?;
        declarations(env).borrow_mut().settings.k8s_namespace = Some(namespace.to_owned());
        Ok(NONE)
    }

    /// Logs a warning (shown by `loop check` and in the run log).
    fn warn<'v>(msg: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<NoneType> {
        let env = EvalEnv::of(eval)?;
        env.loader.log(&env.file, true, msg.to_owned());
        Ok(NONE)
    }
}
