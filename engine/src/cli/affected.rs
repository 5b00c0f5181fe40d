//! `loop affected`: what a change to some paths would re-run and re-evaluate.

use std::path::PathBuf;
use std::process::ExitCode;

use loop_stdlib::EvalOptions;

use loop_lang::project::absolute;

use crate::load::load;

pub fn run(
    paths: &[PathBuf],
    files: &[PathBuf],
    options: &EvalOptions,
) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(files, options) else {
        return Ok(ExitCode::FAILURE);
    };
    let manifest = &loaded.evaluation.manifest;
    let project = &loaded.evaluation.project;
    let changed: Vec<String> = paths
        .iter()
        .map(|p| project.display(&absolute(p)))
        .collect();
    let refs: Vec<&str> = changed.iter().map(String::as_str).collect();
    for name in loaded.index.affected(&refs) {
        crate::report::out_line(&name);
    }
    for loopfile in &manifest.loopfiles {
        let touched = changed.iter().any(|c| {
            loopfile
                .depends_on
                .iter()
                .any(|d| d == c || c == "." || d.starts_with(&format!("{c}/")))
        });
        if touched {
            crate::report::out_line(&format!("re-evaluate: {}", loopfile.path));
        }
    }
    Ok(ExitCode::SUCCESS)
}
