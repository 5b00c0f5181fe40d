//! Evaluating Loopfiles into a validated graph, with every failure rendered.

use std::path::{Path, PathBuf};

use loop_lang::Diagnostic;
use loop_stdlib::{EvalOptions, Evaluation};

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

/// Evaluates and validates; on failure the diagnostic has been printed.
pub fn load(given: &[PathBuf], options: &EvalOptions) -> Option<Loaded> {
    let files = match loopfiles(given) {
        Ok(files) => files,
        Err(msg) => {
            report::error(&msg);
            return None;
        }
    };
    if let Some(missing) = files.iter().find(|f| !Path::new(f).is_file()) {
        report::error(&format!(
            "cannot read Loopfile {}: no such file",
            missing.display()
        ));
        return None;
    }
    let evaluation = match loop_stdlib::evaluate(&files, options) {
        Ok(evaluation) => evaluation,
        Err(failure) => {
            report::evaluation_log(&failure.log);
            report::diagnostic(&failure.diagnostic, &failure.sources);
            return None;
        }
    };
    report::evaluation_log(&evaluation.log);
    match validate(&evaluation) {
        Ok((graph, index)) => Some(Loaded {
            evaluation,
            graph,
            index,
        }),
        Err(diagnostics) => {
            for diag in diagnostics {
                report::diagnostic(&diag, &evaluation.sources);
            }
            None
        }
    }
}

/// Everything checked after evaluation, the same for every command: the graph
/// (names, edges, cycles) and every `deps`/`ignore` pattern.
pub fn validate(evaluation: &Evaluation) -> Result<(Graph, AffectedIndex), Vec<Diagnostic>> {
    let graph = Graph::build(&evaluation.manifest).map_err(|e| e.diagnostics())?;
    let index = AffectedIndex::build(&evaluation.manifest, &graph).map_err(|e| e.diagnostics())?;
    Ok((graph, index))
}
