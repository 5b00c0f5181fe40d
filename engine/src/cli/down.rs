//! `loop down`: delete what the Loopfiles applied to the cluster.

use std::path::PathBuf;
use std::process::ExitCode;

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
