//! Evaluating Loopfiles into a validated graph, with every failure rendered.

use std::path::{Path, PathBuf};

use loop_lang::diag::SourceMap;
use loop_lang::loader::LogLine;
use loop_lang::Diagnostic;
use loop_stdlib::{EvalFailure, EvalOptions, Evaluation};

use crate::affected::AffectedIndex;
use crate::graph::Graph;
use crate::report;

/// The default Loopfile names, in order of preference.
pub const DEFAULT_FILES: &[&str] = &["Loopfile", "Tiltfile"];

/// An evaluated, validated composition of Loopfiles.
pub struct Loaded {
    pub evaluation: Evaluation,
    pub graph: Graph,
    /// Which resources a changed path affects (building it validates every pattern).
    pub index: AffectedIndex,
}

/// The Loopfiles to evaluate: those given, or the default in the current folder.
pub fn loopfiles(given: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    DEFAULT_FILES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .map(|p| vec![p])
        .ok_or_else(|| {
            let cwd = std::env::current_dir().unwrap_or_default();
            format!(
                "no Loopfile in {}: looked for {}; name the file to use, e.g. `loop check path/to/Loopfile`",
                cwd.display(),
                DEFAULT_FILES.join(" and ")
            )
        })
}

/// Why Loopfiles could not be loaded: what to show the user.
pub struct LoadFailure {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: SourceMap,
    /// What `print()`, `warn()` and `local()` logged before the failure.
    pub log: Vec<LogLine>,
}

impl LoadFailure {
    fn message(text: String) -> LoadFailure {
        LoadFailure {
            diagnostics: vec![Diagnostic::new(text)],
            sources: SourceMap::default(),
            log: Vec::new(),
        }
    }

    /// Every diagnostic rendered (file:line:col, snippet, help), without colour.
    pub fn render(&self) -> String {
        let parts: Vec<String> = self
            .diagnostics
            .iter()
            .map(|d| d.render(&self.sources, false))
            .collect();
        parts.join("\n")
    }
}

/// Evaluates and validates; on failure the diagnostic has been printed.
pub fn load(given: &[PathBuf], options: &EvalOptions) -> Option<Loaded> {
    match try_load(given, options) {
        Ok(loaded) => {
            report::evaluation_log(&loaded.evaluation.log);
            Some(loaded)
        }
        Err(failure) => {
            report::evaluation_log(&failure.log);
            for diag in &failure.diagnostics {
                report::diagnostic(diag, &failure.sources);
            }
            None
        }
    }
}

/// Evaluates and validates, printing nothing.
pub fn try_load(given: &[PathBuf], options: &EvalOptions) -> Result<Loaded, LoadFailure> {
    let files = loopfiles(given).map_err(LoadFailure::message)?;
    if let Some(missing) = files.iter().find(|f| !Path::new(f).is_file()) {
        return Err(LoadFailure::message(format!(
            "cannot read Loopfile {}: no such file",
            missing.display()
        )));
    }
    let evaluation = evaluate(&files, options).map_err(|failure| LoadFailure {
        diagnostics: vec![failure.diagnostic],
        sources: failure.sources,
        log: failure.log,
    })?;
    match validate(&evaluation) {
        Ok((graph, index)) => Ok(Loaded {
            evaluation,
            graph,
            index,
        }),
        Err(diagnostics) => Err(LoadFailure {
            diagnostics,
            sources: evaluation.sources,
            log: evaluation.log,
        }),
    }
}

/// Evaluates Loopfiles: in a process of its own when [`crate::isolation`] is
/// enabled (the `loop` binary), else in this one.
pub fn evaluate(files: &[PathBuf], options: &EvalOptions) -> Result<Evaluation, Box<EvalFailure>> {
    if crate::isolation::enabled() {
        crate::isolation::evaluate(files, options)
    } else {
        crate::eval_thread::evaluate_here(files, options)
    }
}

/// Everything checked after evaluation, the same for every command: the graph
/// (names, edges, cycles) and every `deps`/`ignore` pattern.
pub fn validate(evaluation: &Evaluation) -> Result<(Graph, AffectedIndex), Vec<Diagnostic>> {
    let graph = Graph::build(&evaluation.manifest).map_err(|e| e.diagnostics())?;
    let index = AffectedIndex::build(&evaluation.manifest, &graph).map_err(|e| e.diagnostics())?;
    Ok((graph, index))
}
