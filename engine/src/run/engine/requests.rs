//! Actions from the control plane (`loop trigger`, the dashboard's buttons):
//! checked, applied through the scheduler, answered.

use super::Engine;
use crate::control::server::Request;

impl Engine {
    pub(super) fn on_request(&mut self, request: Request) {
        match request {
            Request::Trigger(name, reply) => {
                let result = self.known(&name).and_then(|()| {
                    if !self.scheduler.is_enabled(&name) {
                        return Err(format!(
                            "{name} is disabled: enable it first (`loop enable {name}`)"
                        ));
                    }
                    self.logs.status(&name, "triggered");
                    self.scheduler.trigger(&name);
                    Ok(())
                });
                let _ = reply.send(result);
            }
            Request::Enable(name, reply) | Request::Disable(name, reply)
                if self.known(&name).is_err() =>
            {
                let _ = reply.send(self.known(&name));
            }
            Request::Enable(name, reply) => {
                let actions = self.scheduler.set_enabled(&name, true);
                self.logs.status(&name, "enabled");
                self.perform(actions);
                let _ = reply.send(Ok(()));
            }
            Request::Disable(name, reply) => {
                let actions = self.scheduler.set_enabled(&name, false);
                self.perform(actions);
                let _ = reply.send(Ok(()));
            }
            Request::Args(args, reply) => {
                self.logs
                    .engine(&format!("new arguments: {}", shell_words(&args)));
                self.options.args = args.clone();
                if let Some(control) = &self.control {
                    control.board.update_session(|s| s.args = args);
                }
                self.reload();
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn known(&self, name: &str) -> Result<(), String> {
        if self.nodes.contains_key(name) {
            return Ok(());
        }
        let hint = loop_lang::diag::closest(name, self.order.iter().map(String::as_str))
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        Err(format!("no resource named `{name}`{hint}"))
    }
}

fn shell_words(args: &[String]) -> String {
    if args.is_empty() {
        return "(none)".to_owned();
    }
    args.join(" ")
}
