//! `loop check`: evaluate, validate, summarize.

use std::path::PathBuf;
use std::process::ExitCode;

use loop_lang::model::ResourceKind;

use crate::load::load;

pub fn run(files: &[PathBuf], args: &[String]) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(files, args) else {
        return Ok(ExitCode::FAILURE);
    };
    let m = &loaded.evaluation.manifest;
    let count = |kind: ResourceKind| m.resources.iter().filter(|r| r.kind == kind).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    println!(
        "ok: {} ({} local, {} kubernetes), {}, {}, {}",
        plural(m.resources.len(), "resource"),
        count(ResourceKind::Local),
        count(ResourceKind::K8s) + count(ResourceKind::K8sUncategorized),
        plural(m.images.len(), "image"),
        plural(m.loopfiles.len(), "Loopfile"),
        plural(m.watched_files.len(), "watched file"),
    );
    Ok(ExitCode::SUCCESS)
}
