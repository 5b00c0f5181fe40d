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
pub mod signatures;
pub mod values;

use std::cell::RefCell;
use std::path::PathBuf;

use loop_lang::diag::SourceMap;
use loop_lang::loader::{LoadReport, LogLine};
use loop_lang::model::Manifest;
use loop_lang::{Diagnostic, Loader, Project};
use starlark::environment::{Globals, GlobalsBuilder, LibraryExtension};

use crate::decls::Declarations;

/// The globals every Loopfile sees: Starlark's standard library plus `loop`'s built-ins.
pub fn globals() -> Globals {
    GlobalsBuilder::extended_by(&[
        LibraryExtension::StructType,
        LibraryExtension::Print,
        LibraryExtension::Json,
        LibraryExtension::Typing,
        LibraryExtension::Map,
        LibraryExtension::Filter,
        LibraryExtension::Debug,
    ])
    .with(builtins::local::local_builtins)
    .with(builtins::k8s::k8s_builtins)
    .with(builtins::files::file_builtins)
    .with(builtins::compose::compose_builtins)
    .with(builtins::settings::settings_builtins)
    .with(builtins::os::os_namespace)
    .with(builtins::config::config_namespace)
    .build()
}

/// A successful evaluation.
#[derive(Debug)]
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
#[derive(Debug)]
pub struct EvalFailure {
    pub diagnostic: Diagnostic,
    pub sources: SourceMap,
    pub log: Vec<LogLine>,
}

/// Evaluates top-level Loopfiles (composed into one graph) with the user's
/// arguments for `config.parse()`.
pub fn evaluate(loopfiles: &[PathBuf], args: &[String]) -> Result<Evaluation, Box<EvalFailure>> {
    let paths: Vec<PathBuf> = loopfiles
        .iter()
        .map(|p| loop_lang::project::absolute(p))
        .collect();
    let project = Project::discover(&paths);
    let globals = globals();
    let decls = Declarations {
        config_args: args.to_vec(),
        ..Declarations::default()
    };
    let loader = Loader::new(project.clone(), globals, Box::new(RefCell::new(decls)));
    for path in &paths {
        if loader.eval_loopfile(path, None).is_err() {
            break;
        }
    }
    let failure = loader.take_failure();
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
    match assemble::assemble(decls) {
        Ok(mut manifest) => {
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
