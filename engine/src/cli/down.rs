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
        k8s::down::down(&cluster, &project, delete_namespaces, |line| {
            crate::report::out_line(line)
        })
        .await
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
