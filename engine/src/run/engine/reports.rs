//! Reports from the tasks the engine started (a command finished, a serve
//! process exited or became ready, a sync ended, a timer fired, a reload was
//! evaluated), turned into scheduler events.

use super::{backoff, plural, seconds, CmdResult, Engine, Msg};
use crate::failure::Failure;
use crate::run::scheduler::RunEnd;
use crate::run::Mode;

impl Engine {
    /// Handles a report; returns whether the watcher must be restarted.
    pub(super) fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::CmdDone {
                name,
                generation,
                result,
            } => self.cmd_done(&name, generation, result),
            Msg::ServeExited {
                name,
                generation,
                exit,
            } => self.serve_exited(&name, generation, exit),
            Msg::ContainerExited {
                name,
                generation,
                end,
            } => self.container_exited(&name, generation, end),
            Msg::RestartDue { name, generation } => {
                if self.current(&name, generation).is_some() {
                    self.start_serve(&name);
                    self.scheduler.restarted(&name);
                }
            }
            Msg::RetryDue { name, generation } => {
                if self.current(&name, generation).is_some() {
                    self.scheduler.retry(&name);
                }
            }
            Msg::Ready { name, generation } => {
                let Some(node) = self.current(&name, generation) else {
                    return false;
                };
                let took = node.since.elapsed();
                node.probe = None;
                node.begin();
                let restarts = node.restarts;
                self.scheduler.ready(&name);
                let text = match restarts {
                    0 => format!("ready in {}", seconds(took)),
                    n => format!("ready: stayed up after {}", plural(n as usize, "restart")),
                };
                self.logs.status(&name, &text);
            }
            Msg::SyncDone {
                name,
                generation,
                result,
            } => {
                if self.current(&name, generation).is_none() {
                    return false;
                }
                match result {
                    Ok(true) => {
                        let group = self.nodes.get_mut(&name).and_then(|n| n.serve_group.take());
                        self.restart_serve(&name, group);
                        self.finished(&name, RunEnd::Starting);
                    }
                    Ok(false) => {
                        self.logs.status(&name, "live update done");
                        self.finished(&name, RunEnd::Ready);
                    }
                    Err(e) => self.fail(&name, format!("live update failed: {e}")),
                }
            }
            Msg::Evaluated(result) => {
                self.reloading = false;
                let restart = self.reloaded(*result);
                if self.reload_again {
                    self.reload_again = false;
                    self.reload();
                }
                return restart;
            }
        }
        false
    }

    pub(super) fn cmd_done(
        &mut self,
        name: &str,
        generation: u64,
        result: Result<CmdResult, Failure>,
    ) {
        let Some(node) = self.current(name, generation) else {
            return;
        };
        let took = node.since.elapsed();
        let runtime = self.runtime(name);
        match result {
            Ok(result) => runtime.updated(self, name, result, took),
            Err(e) => match runtime.retry_after(self, &e) {
                Some(first) => {
                    // The same failure again is said once, then waited out longer.
                    let (wait, again) = match self.nodes.get_mut(name) {
                        Some(node) => node.retry_wait(&e.message, first),
                        None => (first, false),
                    };
                    let line = format!("{e}; retrying in {}", seconds(wait));
                    if again {
                        self.logs.status(name, &format!("still failing: {line}"));
                    } else {
                        self.logs.problem(name, &line);
                    }
                    self.finished(name, RunEnd::Failed(e.message));
                    self.retry_later(name, generation, wait);
                }
                None => self.fail(name, e.message),
            },
        }
        if let Some(node) = self.nodes.get_mut(name) {
            node.begin();
        }
    }

    pub(super) fn serve_exited(&mut self, name: &str, generation: u64, exit: String) {
        let Some(node) = self.current(name, generation) else {
            return;
        };
        node.serve_group = None;
        if let Some(probe) = node.probe.take() {
            probe.abort();
        }
        let restarts = node.restarts;
        if self.options.mode == Mode::Ci {
            self.fail(name, format!("the serve process exited ({exit})"));
            return;
        }
        let backoff = backoff(restarts);
        self.logs.problem(
            name,
            &format!(
                "serve process exited ({exit}); restarting in {} (restart {})",
                seconds(backoff),
                restarts + 1
            ),
        );
        let node = self.nodes.get_mut(name).expect("known");
        node.restarts += 1;
        node.begin();
        self.scheduler.crashed(name, exit, restarts + 1);
        let tx = self.tx.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(backoff).await;
            let _ = tx.send(Msg::RestartDue { name, generation });
        });
    }
}
