//! Local resources in the engine: full updates (`cmd`, then the serve process and
//! its readiness probe), live updates into the serve folder, and restarts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use loop_lang::model::{LiveUpdateStep, Resource};

use super::{backoff, seconds, Engine, Msg};
use crate::failure::{Failure, FailureKind};
use crate::live_update::{self, LocalTarget, SyncPlan, SyncTarget};
use crate::process;
use crate::report::LineSink;
use crate::run::engine::CmdResult;
use crate::run::{outputs, probe};

impl Engine {
    /// Runs a full update of a local resource: stop the serve process, sync
    /// everything once on the first run (`initial_sync()`), run `cmd`, then (on
    /// [`Msg::CmdDone`]) start the serve process.
    pub(super) fn start_local_update(&mut self, name: &str, first_run: bool) {
        let grace = self.options.grace;
        let sink = self.sink(name);
        let output = self.output(name);
        let tx = self.tx.clone();
        let root = self.root.clone();
        let node = self.nodes.get_mut(name).expect("scheduled resources exist");
        let generation = node.next_generation();
        if let Some(probe) = node.probe.take() {
            probe.abort();
        }
        let old_group = node.serve_group.take();
        let resource = node.resource.clone();
        let dir = root.join(&resource.cmd_dir);
        let steps = &resource.live_update;
        let initial_sync = (first_run
            && steps
                .iter()
                .any(|s| matches!(s, LiveUpdateStep::InitialSync)))
        .then(|| {
            let target = LocalTarget {
                run_dir: root.join(&resource.serve_dir),
                env: resource.env.clone(),
                log: sink.clone(),
            };
            let plan = live_update::initial_plan(steps, &root, &root.join(&resource.serve_dir));
            (target, plan)
        });
        let step = outputs::BuildStep::of(&root, &resource, &self.manifest);
        let may_skip = first_run && !self.options.no_cache;
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Some(group) = old_group {
                stop_previous(group, grace, &sink).await;
            }
            if let Some((target, plan)) = initial_sync {
                let synced = match plan {
                    Ok(plan) => target.apply(&plan).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = synced {
                    let _ = tx.send(Msg::CmdDone {
                        name,
                        generation,
                        result: Err(Failure::other(format!("initial_sync failed: {e}"))),
                    });
                    return;
                }
            }
            let result = run_cmd(&resource, &dir, step, may_skip, output, grace).await;
            let _ = tx.send(Msg::CmdDone {
                name,
                generation,
                result,
            });
        });
    }

    /// Starts the serve process and its readiness probe. After a crash, with no
    /// probe, it counts as ready once it has stayed up as long as its last backoff.
    pub(super) fn start_serve(&mut self, name: &str) {
        let output = self.output(name);
        let tx = self.tx.clone();
        let logs = self.logs.clone();
        let root = self.root.clone();
        let node = self.nodes.get_mut(name).expect("known resource");
        let Some(serve) = node.resource.serve_cmd.clone() else {
            return;
        };
        let generation = node.next_generation();
        let dir = root.join(&node.resource.serve_dir);
        let mut env = node.resource.env.clone();
        env.extend(node.resource.serve_env.clone());
        logs.status(name, &format!("starting: {}", serve.display()));
        let mut child = match process::spawn(&serve, &dir, &env, output) {
            Ok(child) => child,
            Err(e) => {
                let _ = tx.send(Msg::ServeExited {
                    name: name.to_owned(),
                    generation,
                    exit: e.message,
                });
                return;
            }
        };
        node.serve_group = child.id();
        let owned = name.to_owned();
        let exit_tx = tx.clone();
        tokio::spawn(async move {
            let exit = match process::wait(&mut child).await {
                Ok(status) => process::describe_exit(status),
                Err(e) => e.to_string(),
            };
            let _ = exit_tx.send(Msg::ServeExited {
                name: owned,
                generation,
                exit,
            });
        });
        let probe = node.resource.readiness_probe.clone();
        let stay_up = (node.restarts > 0).then(|| backoff(node.restarts - 1));
        let owned = name.to_owned();
        let task = tokio::spawn(async move {
            match probe {
                Some(probe) => {
                    let log_name = owned.clone();
                    probe::wait_ready(&probe, &dir, |failures, reason| {
                        logs.status(
                            &log_name,
                            &format!("not ready: {reason} ({failures} failed checks)"),
                        )
                    })
                    .await;
                }
                None => {
                    if let Some(stay_up) = stay_up {
                        tokio::time::sleep(stay_up).await;
                    }
                }
            }
            let _ = tx.send(Msg::Ready {
                name: owned,
                generation,
            });
        });
        node.probe = Some(task.abort_handle());
    }

    /// Applies a live update to a running local resource.
    pub(super) fn start_sync(&mut self, name: &str, plan: SyncPlan) {
        let tx = self.tx.clone();
        let logs = self.logs.clone();
        let root = self.root.clone();
        let node = self.nodes.get_mut(name).expect("known resource");
        let generation = node.next_generation();
        let log_name = name.to_owned();
        let target = LocalTarget {
            run_dir: root.join(&node.resource.serve_dir),
            env: node.resource.env.clone(),
            log: Arc::new(move |line: &str| logs.line(&log_name, line)),
        };
        let restart = plan.restart;
        let name = name.to_owned();
        tokio::spawn(async move {
            let result = target
                .apply(&plan)
                .await
                .map(|_| restart)
                .map_err(|e| e.to_string());
            let _ = tx.send(Msg::SyncDone {
                name,
                generation,
                result,
            });
        });
    }

    /// Restarts the serve process after a live update (`restart_container()`).
    pub(super) fn restart_serve(&mut self, name: &str, group: Option<u32>) {
        let grace = self.options.grace;
        let tx = self.tx.clone();
        let sink = self.sink(name);
        let node = self.nodes.get_mut(name).expect("known");
        node.generation += 1;
        let generation = node.generation;
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Some(group) = group {
                stop_previous(group, grace, &sink).await;
            }
            let _ = tx.send(Msg::RestartDue { name, generation });
        });
    }
}

/// Runs a local resource's `cmd` (none: nothing to do). A build step records its
/// inputs and outputs; on its first run of the session (`may_skip`) it is skipped
/// when both match its last success.
async fn run_cmd(
    resource: &Resource,
    dir: &Path,
    step: Option<outputs::BuildStep>,
    may_skip: bool,
    output: process::Output,
    grace: Duration,
) -> Result<CmdResult, Failure> {
    let Some(cmd) = &resource.cmd else {
        return Ok(CmdResult::default());
    };
    let step = step.map(Arc::new);
    let inputs = match &step {
        Some(step) => {
            let step = step.clone();
            let checked = tokio::task::spawn_blocking(move || {
                let inputs = step.inputs();
                let warm = may_skip && step.is_warm(&inputs);
                (inputs, warm)
            })
            .await;
            match checked {
                Ok((_, true)) => {
                    return Ok(CmdResult {
                        outputs_changed: false,
                        skipped: true,
                        container: None,
                    })
                }
                Ok((inputs, false)) => Some(inputs),
                Err(_) => None,
            }
        }
        None => None,
    };
    (output.stdout)(&format!("[loop] running: {}", cmd.display()));
    let status = process::run_to_end(cmd, dir, &resource.env, output, grace).await?;
    if !status.success() {
        return Err(Failure::new(
            FailureKind::CommandFailed,
            process::failed(cmd, status),
        ));
    }
    let outputs_changed = match (step, inputs) {
        (Some(step), Some(inputs)) => {
            tokio::task::spawn_blocking(move || step.record_success(inputs))
                .await
                .unwrap_or(true)
        }
        _ => true,
    };
    Ok(CmdResult {
        outputs_changed,
        skipped: false,
        container: None,
    })
}

/// Stops the previous serve process of a resource before a restart, saying so in
/// its log when it had to be killed.
async fn stop_previous(group: u32, grace: std::time::Duration, sink: &LineSink) {
    if process::stop_group(group, grace).await == process::Stopped::Killed {
        sink(&format!(
            "[loop] the previous process ignored SIGTERM for {}: killed",
            seconds(grace)
        ));
    }
}
