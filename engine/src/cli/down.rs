//! `loop down`: delete what the Loopfiles applied to the cluster, and take
//! their Docker Compose projects down.

use std::path::PathBuf;
use std::process::ExitCode;

use loop_lang::model::{Manifest, ResourceKind};
use loop_stdlib::EvalOptions;

use crate::load::load;
use crate::{k8s, report};

pub fn run(
    files: &[PathBuf],
    options: &EvalOptions,
    delete_namespaces: bool,
    context: Option<String>,
) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(files, options) else {
        return Ok(ExitCode::FAILURE);
    };
    let settings = loaded.evaluation.manifest.settings.clone();
    let manifest = &loaded.evaluation.manifest;
    let root = loaded.evaluation.project.root.clone();
    let project = k8s::owner::project_id(&loaded.evaluation.project.root);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let compose_failed = runtime.block_on(compose_down(manifest, &root));
    let only_compose = manifest
        .resources
        .iter()
        .all(|r| matches!(r.kind, ResourceKind::DockerCompose | ResourceKind::Local))
        && manifest
            .resources
            .iter()
            .any(|r| r.kind == ResourceKind::DockerCompose);
    if only_compose {
        return Ok(match compose_failed {
            None => ExitCode::SUCCESS,
            Some(why) => {
                report::error(&why);
                ExitCode::FAILURE
            }
        });
    }
    let result = runtime.block_on(async {
        let cluster = k8s::connect(
            context.as_deref(),
            settings.k8s_namespace.as_deref(),
            &settings.allowed_k8s_contexts,
        )
        .await?;
        // k8s_custom_deploy resources are deleted by their own delete_cmd, as in Tilt.
        let mut failed = Vec::new();
        for resource in &manifest.resources {
            let Some(deploy) = &resource.custom_deploy else {
                continue;
            };
            crate::report::out_line(&format!(
                "running delete_cmd of {}: {}",
                resource.name,
                deploy.delete_cmd.display()
            ));
            let prefix = resource.name.clone();
            let log = std::sync::Arc::new(move |line: &str| {
                crate::report::out_line(&format!("[{prefix}] {line}"))
            });
            if let Err(why) =
                crate::run::custom_deploy::delete(deploy, &root.join(&deploy.delete_dir), log).await
            {
                failed.push(format!("{}: {why}", resource.name));
            }
        }
        let deleted = k8s::down::down(&cluster, &project, delete_namespaces, |line| {
            crate::report::out_line(line)
        })
        .await?;
        if failed.is_empty() {
            Ok(deleted)
        } else {
            crate::report::out_line(&format!("deleted {} object(s)", deleted.len()));
            Err(failed.join("\n"))
        }
    });
    match result {
        Ok(_) if compose_failed.is_some() => {
            report::error(&compose_failed.unwrap_or_default());
            Ok(ExitCode::FAILURE)
        }
        Ok(deleted) => {
            crate::report::out_line(&format!("deleted {} object(s)", deleted.len()));
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            report::error(&why);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Runs `down` for each Docker Compose project of the manifest; says what failed.
async fn compose_down(manifest: &Manifest, root: &std::path::Path) -> Option<String> {
    let mut projects = Vec::new();
    for resource in &manifest.resources {
        if let Some(service) = &resource.compose {
            if !projects.contains(&service.project) {
                projects.push(service.project.clone());
            }
        }
    }
    let mut failed = Vec::new();
    for project in &projects {
        crate::report::out_line(&format!("docker compose down: project {}", project.name));
        let prefix = project.name.clone();
        let log: crate::report::LineSink = std::sync::Arc::new(move |line: &str| {
            crate::report::out_line(&format!("[{prefix}] {line}"))
        });
        if let Err(why) = crate::run::compose::down(project, root, &log).await {
            failed.push(format!(
                "docker compose down of project {}: {why}",
                project.name
            ));
        }
    }
    (!failed.is_empty()).then(|| failed.join("\n"))
}
