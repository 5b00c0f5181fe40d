//! The built-in Starlark functions of `loop`, and evaluation of Loopfiles into a
//! [`Manifest`].
//!
//! The API follows Tilt's names and arguments, so a Tiltfile that only uses these
//! functions evaluates unchanged. `lang` does the loading; this crate supplies the
//! globals, collects declarations and assembles them.

pub mod assemble;
// Built-ins mirror Tilt's signatures, which have many parameters.
#[allow(clippy::too_many_arguments)]
pub mod builtins;
pub mod decls;
mod extensions;
mod namer;
pub mod signatures;
pub mod tilt_compat;
mod tilt_rules;
pub mod values;

use std::cell::RefCell;
use std::path::PathBuf;

use loop_lang::diag::SourceMap;
use loop_lang::loader::{LoadReport, LogLine};
use loop_lang::model::Manifest;
use loop_lang::{Diagnostic, Loader, Project};
use serde::{Deserialize, Serialize};
use starlark::environment::{Globals, GlobalsBuilder, LibraryExtension};

use crate::decls::Declarations;

/// How to evaluate: the user's arguments, the root, and what Tilt's built-ins
/// report about the command line.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Arguments after `--`, for `config.parse()`.
    pub args: Vec<String>,
    /// `--root DIR`: the project root instead of the discovered one.
    pub root: Option<PathBuf>,
    /// `config.tilt_subcommand`: `up`, `ci`, `down` or `alpha` (check, graph,
    /// affected: what `tilt alpha tiltfile-result` reports).
    pub subcommand: String,
    /// `--context`: what `k8s_context()` returns instead of the kubeconfig's.
    pub k8s_context: Option<String>,
    /// `--profile`: what `profile(NAME)` tests against.
    pub profile: Option<String>,
    /// Unsaved editor buffers: their text is evaluated instead of the file on
    /// disk (`loop lsp`).
    pub overlay: Overlay,
    /// Never fetch `ext://` extensions with git (`loop lsp`, which evaluates
    /// on every edit): only the folders and caches are used.
    #[serde(default)]
    pub no_fetch: bool,
}

/// `config.tilt_subcommand` under check, graph and affected: what Tilt reports
/// under `tilt alpha tiltfile-result`, its command that only evaluates.
pub const EVAL_ONLY_SUBCOMMAND: &str = "alpha tiltfile-result";

/// File contents that take the place of what is on disk, by absolute path.
pub type Overlay = std::sync::Arc<std::collections::HashMap<PathBuf, String>>;

/// What the globals report about this evaluation (`config.main_path`, ...).
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The first top-level Loopfile, absolute.
    pub main_path: PathBuf,
    /// `config.tilt_subcommand`.
    pub subcommand: String,
}

/// The globals every Loopfile sees: Starlark's standard library plus `loop`'s
/// built-ins, with placeholder values for `config.main_path` and friends.
pub fn globals() -> Globals {
    globals_with(&Context::default())
}

/// The globals of one evaluation.
pub fn globals_with(context: &Context) -> Globals {
    GlobalsBuilder::extended_by(&[
        LibraryExtension::StructType,
        LibraryExtension::Print,
        LibraryExtension::Json,
        LibraryExtension::Typing,
        LibraryExtension::Map,
        LibraryExtension::Filter,
        LibraryExtension::Debug,
        LibraryExtension::SetType,
    ])
    .with(builtins::local::local_builtins)
    .with(builtins::k8s::k8s_builtins)
    .with(builtins::images::image_builtins)
    .with(builtins::live_update::live_update_builtins)
    .with(builtins::custom_deploy::custom_deploy_builtins)
    .with(builtins::files::file_builtins)
    .with(builtins::render::render_builtins)
    .with(builtins::compose::compose_builtins)
    .with(builtins::docker_compose::docker_compose_builtins)
    .with(builtins::settings::settings_builtins)
    .with(builtins::os::os_namespace)
    .with(|b| builtins::config::config_namespace(b, context))
    .with(builtins::tilt::tilt_builtins)
    .with(builtins::tilt::shlex_namespace)
    .with(|b| builtins::tilt::sys_namespace(b, context))
    .with(builtins::release::release_builtins)
    .with(builtins::v1alpha1::v1alpha1_namespace)
    .build()
}

/// Every documented built-in of `module` by dotted name (`os.path.join`), in
/// order: what `loop docs` shows and the Tilt compatibility list checks.
pub fn flatten_docs(module: &starlark::docs::DocModule) -> Vec<(String, starlark::docs::DocItem)> {
    use starlark::docs::{DocItem, DocModule};
    fn collect(module: &DocModule, prefix: &str, out: &mut Vec<(String, DocItem)>) {
        for (name, item) in &module.members {
            let full = format!("{prefix}{name}");
            match item {
                DocItem::Module(inner) => collect(inner, &format!("{full}."), out),
                DocItem::Member(_) | DocItem::Type(_) => out.push((full, item.clone())),
            }
        }
    }
    let mut out = Vec::new();
    collect(module, "", &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A successful evaluation.
#[derive(Debug, Serialize, Deserialize)]
pub struct Evaluation {
    pub manifest: Manifest,
    /// The project root and extension folders.
    pub project: Project,
    /// Sources of every evaluated file, for rendering later diagnostics.
    pub sources: SourceMap,
    /// `print()`/`warn()` output and `local()` echoes.
    pub log: Vec<LogLine>,
}

/// A failed evaluation: the error, and what is needed to render it.
#[derive(Debug, Serialize, Deserialize)]
pub struct EvalFailure {
    pub diagnostic: Diagnostic,
    pub sources: SourceMap,
    pub log: Vec<LogLine>,
}

/// Evaluates top-level Loopfiles (composed into one graph) with the user's
/// arguments for `config.parse()`.
pub fn evaluate(
    loopfiles: &[PathBuf],
    options: &EvalOptions,
) -> Result<Evaluation, Box<EvalFailure>> {
    let args = &options.args;
    // Symlinks resolved first, so that the root check sees the real files.
    let paths: Vec<PathBuf> = loopfiles
        .iter()
        .map(|p| {
            let path = loop_lang::project::absolute(p);
            loop_lang::project::canonical(&path).unwrap_or(path)
        })
        .collect();
    let project = Project::discover(&paths, options.root.as_deref()).map_err(|message| {
        Box::new(EvalFailure {
            diagnostic: Diagnostic::new(message),
            sources: SourceMap::default(),
            log: Vec::new(),
        })
    })?;
    let context = Context {
        main_path: paths.first().cloned().unwrap_or_default(),
        subcommand: options.subcommand.clone(),
    };
    let globals = globals_with(&context);
    let decls = Declarations {
        config_args: args.to_vec(),
        k8s_context: options.k8s_context.clone(),
        no_fetch: options.no_fetch,
        release: loop_lang::model::Release {
            profile: options.profile.clone(),
            ..Default::default()
        },
        ..Declarations::default()
    };
    let loader = Loader::new(project.clone(), globals, Box::new(RefCell::new(decls)))
        .with_overlay(options.overlay.clone())
        .with_extension_resolver(extensions::resolve);
    for path in &paths {
        if loader.eval_loopfile(path, None).is_err() {
            break;
        }
    }
    let mut failure = loader.take_failure();
    if failure.is_none() {
        failure = namer::name_workloads(&loader).err();
    }
    let (state, report) = loader.finish();
    let LoadReport {
        loopfiles,
        watched_files,
        sources,
        log,
    } = report;
    if let Some(mut diagnostic) = failure {
        // Only a failure needs the built-ins' parameter lists.
        signatures::Signatures::of(&self::globals()).explain(&mut diagnostic);
        return Err(Box::new(EvalFailure {
            diagnostic,
            sources,
            log,
        }));
    }
    let mut decls = state
        .downcast::<RefCell<Declarations>>()
        .expect("the loader holds the declarations")
        .into_inner();
    // As in Tilt: without `config.parse()`, the arguments name the resources to run.
    if !decls.config_parsed && !decls.config_args.is_empty() {
        decls
            .settings
            .enabled_resources
            .get_or_insert_with(|| decls.config_args.clone());
    }
    let mut log = log;
    match assemble::assemble(decls) {
        Ok(mut manifest) => {
            tilt_rules::drop_unknown_resource_deps(&mut manifest, &mut log);
            manifest.watched_files = watched_files;
            manifest.loopfiles = loopfiles;
            Ok(Evaluation {
                manifest,
                project,
                sources,
                log,
            })
        }
        Err(diagnostic) => Err(Box::new(EvalFailure {
            diagnostic,
            sources,
            log,
        })),
    }
}
