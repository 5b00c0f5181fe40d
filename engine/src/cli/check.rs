//! `loop check`: evaluate, validate, summarize.

use std::path::PathBuf;
use std::process::ExitCode;

use loop_stdlib::EvalOptions;

use loop_lang::model::{ImageKind, ResourceKind};

use crate::load::load;

/// `strict`: policy findings (the rules of `loop render`) are errors.
pub fn run(files: &[PathBuf], options: &EvalOptions, strict: bool) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(files, options) else {
        return Ok(ExitCode::FAILURE);
    };
    let m = &loaded.evaluation.manifest;
    let shipped = crate::release::render::shipped(m, &loaded.graph);
    if !super::render::lint_passes(&loaded.evaluation, &shipped, strict) {
        return Ok(ExitCode::FAILURE);
    }
    let count = |kind: ResourceKind| m.resources.iter().filter(|r| r.kind == kind).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    crate::report::out_line(&format!(
        "ok: {} ({} local, {} kubernetes{}), {}, {}, {}",
        plural(m.resources.len(), "resource"),
        count(ResourceKind::Local),
        count(ResourceKind::K8s) + count(ResourceKind::K8sUncategorized),
        match count(ResourceKind::DockerCompose) {
            0 => String::new(),
            n => format!(", {n} docker compose"),
        },
        plural(m.images.len(), "image"),
        files_summary(&m.loopfiles),
        plural(m.watched_files.len(), "watched file"),
    ));
    let root = &loaded.evaluation.project.root;
    for image in &m.images {
        let path = match image.kind {
            ImageKind::Docker => match crate::image::without_docker(image, root) {
                Ok(_) => "built and pushed by loop without Docker when there is a registry (its Dockerfile has no RUN step), else by Docker".to_owned(),
                Err(why) => format!("built by Docker (docker_build: needs a Docker daemon; {why})"),
            },
            ImageKind::Custom => "built by its command (custom_build)".to_owned(),
            ImageKind::Oci => "built and pushed by loop without Docker (oci_build)".to_owned(),
            ImageKind::LiveUpdateOnly => {
                "never built: the live-update target of a k8s_custom_deploy".to_owned()
            }
        };
        crate::report::out_line(&format!("image {}: {path}", image.image_ref));
    }
    Ok(ExitCode::SUCCESS)
}

/// "2 Loopfiles", "1 Tiltfile", or "1 Loopfile and 2 Tiltfiles" (by file name:
/// `Tiltfile*` counts as a Tiltfile, anything else as a Loopfile).
fn files_summary(files: &[loop_lang::model::LoopfileInfo]) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let tiltfiles = files
        .iter()
        .filter(|f| {
            f.path
                .rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with("Tiltfile"))
        })
        .count();
    let loopfiles = files.len() - tiltfiles;
    match (loopfiles, tiltfiles) {
        (_, 0) => plural(loopfiles, "Loopfile"),
        (0, _) => plural(tiltfiles, "Tiltfile"),
        _ => format!(
            "{} and {}",
            plural(loopfiles, "Loopfile"),
            plural(tiltfiles, "Tiltfile")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loop_lang::model::LoopfileInfo;

    fn files(paths: &[&str]) -> Vec<LoopfileInfo> {
        paths
            .iter()
            .map(|p| LoopfileInfo {
                path: (*p).to_owned(),
                depends_on: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn counts_tiltfiles_and_loopfiles_by_name() {
        assert_eq!(files_summary(&files(&["Tiltfile"])), "1 Tiltfile");
        assert_eq!(
            files_summary(&files(&["a/Loopfile", "Loopfile"])),
            "2 Loopfiles"
        );
        assert_eq!(
            files_summary(&files(&["Loopfile", "svc/Tiltfile", "x/Tiltfile.dev"])),
            "1 Loopfile and 2 Tiltfiles"
        );
        assert_eq!(files_summary(&[]), "0 Loopfiles");
    }
}
