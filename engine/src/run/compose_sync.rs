//! Live update into a Docker Compose service's container, as Tilt does for
//! `docker_compose` services whose image has `live_update` steps: deleted
//! files are removed (`docker exec rm -rf`), changed files copied in one tar
//! stream (`docker cp - CONTAINER:/`, which needs nothing in the image), the
//! `run()` steps executed (`docker exec`), and the container restarted
//! (`docker restart`) for `restart_container()`.

use std::path::Path;
use std::process::Stdio;

use loop_lang::model::{Cmd, ComposeService};
use tokio::io::AsyncWriteExt;

use crate::live_update::SyncPlan;
use crate::process::{self, Output};
use crate::report::LineSink;
use crate::run::compose;

/// Grace for what a finished command left running.
const GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Applies `plan` to the running container of `service`.
pub async fn sync(
    service: &ComposeService,
    root: &Path,
    plan: &SyncPlan,
    log: &LineSink,
) -> Result<(), String> {
    let id = compose::container_id(service, root).await?;
    if !plan.deletes.is_empty() {
        let mut argv = vec!["docker", "exec", &id, "rm", "-rf", "--"];
        argv.extend(plan.deletes.iter().map(String::as_str));
        run(&argv, root, log).await?;
    }
    if !plan.copies.is_empty() {
        let copies = plan.copies.clone();
        let archive = tokio::task::spawn_blocking(move || archive(&copies))
            .await
            .map_err(|e| format!("building the tar stream failed: {e}"))??;
        copy_in(&id, &archive).await?;
    }
    for cmd in &plan.runs {
        let mut argv: Vec<String> = vec!["docker".into(), "exec".into(), id.clone()];
        argv.extend(cmd.argv());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        run(&argv, root, log).await?;
    }
    if plan.restart {
        log("[loop] live update: restarting the container");
        run(&["docker", "restart", &id], root, log).await?;
    }
    Ok(())
}

/// Runs a command to its end, its output in `log`.
async fn run(argv: &[&str], root: &Path, log: &LineSink) -> Result<(), String> {
    let cmd = Cmd::Argv(argv.iter().map(|s| s.to_string()).collect());
    let output = Output::merged(log.clone());
    let status = process::run_to_end(&cmd, root, &Default::default(), output, GRACE).await?;
    if status.success() {
        Ok(())
    } else {
        Err(process::failed(&cmd, status))
    }
}

/// The files at their destinations (without the leading `/`), with their
/// permission bits.
fn archive(copies: &[(std::path::PathBuf, String)]) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::MetadataExt;
    let mut builder = tar::Builder::new(Vec::new());
    for (src, dest) in copies {
        let data = std::fs::read(src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
        let mode = std::fs::metadata(src)
            .map(|m| m.mode() & 0o7777)
            .unwrap_or(0o644);
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        builder
            .append_data(&mut header, dest.trim_start_matches('/'), data.as_slice())
            .map_err(|e| format!("cannot add {dest} to the tar stream: {e}"))?;
    }
    builder
        .into_inner()
        .map_err(|e| format!("cannot finish the tar stream: {e}"))
}

/// `docker cp - ID:/` with the archive on its standard input.
async fn copy_in(id: &str, archive: &[u8]) -> Result<(), String> {
    let mut child = tokio::process::Command::new("docker")
        .args(["cp", "-", &format!("{id}:/")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run docker cp: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(archive)
            .await
            .map_err(|e| format!("docker cp: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("docker cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`docker cp - {id}:/` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
