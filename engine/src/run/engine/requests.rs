//! Actions from the control plane (`loop trigger`, the dashboard's buttons):
//! checked, applied through the scheduler, answered.

use std::sync::Arc;

use super::Engine;
use crate::control::server::Request;
use crate::report::LineSink;

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
            Request::Button(name, inputs, reply) => {
                let _ = reply.send(self.press(&name, &inputs));
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

    /// Runs the commands of a button, each in a task of its own, with the
    /// values of its inputs (given, else their defaults) in their environment;
    /// their output goes to the log of the button's resource (else loop's own
    /// log).
    fn press(
        &self,
        name: &str,
        given: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<(), String> {
        let Some(button) = self.manifest.buttons.iter().find(|b| b.name == name) else {
            let hint = loop_lang::diag::closest(
                name,
                self.manifest.buttons.iter().map(|b| b.name.as_str()),
            )
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
            return Err(format!("no button named `{name}`{hint}"));
        };
        if button.commands.is_empty() {
            return Err(format!(
                "button `{name}` starts no command: give it one with v1alpha1.cmd(name=..., args=[...], start_on=v1alpha1.start_on_spec(ui_buttons=[\"{name}\"]))"
            ));
        }
        if let Some(unknown) = given
            .keys()
            .find(|k| !button.inputs.iter().any(|i| &i.name == *k))
        {
            return Err(format!(
                "button `{name}` has no input `{unknown}` (its inputs: {})",
                button
                    .inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut values = std::collections::BTreeMap::new();
        for input in &button.inputs {
            let value = input
                .value(given.get(&input.name))
                .map_err(|e| format!("button `{name}`: {e}"))?;
            values.insert(input.name.clone(), value);
        }
        let logs = self.logs.clone();
        let sink: LineSink = match &button.resource {
            Some(resource) => self.sink(resource),
            None => Arc::new(move |line: &str| logs.engine(line)),
        };
        for command in &button.commands {
            let cmd = loop_lang::model::Cmd::Argv(command.argv.clone());
            let dir = self.root.join(&command.dir);
            let mut env = command.env.clone();
            env.extend(values.clone());
            let sink = sink.clone();
            let label = format!("button {name}: {}", cmd.display());
            sink(&format!("[loop] {label}"));
            tokio::spawn(async move {
                let output = crate::process::Output::merged(sink.clone());
                let end = match crate::process::run_to_end(&cmd, &dir, &env, output, BUTTON_GRACE)
                    .await
                {
                    Ok(status) if status.success() => "done".to_owned(),
                    Ok(status) => {
                        format!("failed: {}", crate::process::describe_exit(status))
                    }
                    Err(e) => format!("failed: {e}"),
                };
                sink(&format!("[loop] {label}: {end}"));
            });
        }
        Ok(())
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

/// Grace given to what a button's command left running in its group.
const BUTTON_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn shell_words(args: &[String]) -> String {
    if args.is_empty() {
        return "(none)".to_owned();
    }
    args.join(" ")
}
