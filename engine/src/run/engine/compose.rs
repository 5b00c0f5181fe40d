//! Docker Compose services in the engine: a full update builds the images the
//! Loopfiles build for the service and brings the service up with Docker
//! Compose; then its container's log is followed and its state watched until it
//! is ready, and on until it exits.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Engine, Msg};
use crate::failure::{Failure, FailureKind};
use crate::image::{self, Destination, Record};
use crate::live_update::SyncPlan;
use crate::run::compose::{self, State};
use crate::run::compose_sync;

impl Engine {
    /// Builds the service's images and runs `up` for it; reports [`Msg::CmdDone`].
    pub(super) fn start_compose_update(&mut self, name: &str, first: bool) {
        let sink = self.sink(name);
        let tx = self.tx.clone();
        let root = self.root.clone();
        let images: Vec<_> = self.nodes[name]
            .resource
            .images
            .iter()
            .filter_map(|r| self.manifest.image(r).cloned())
            .collect();
        let node = self.nodes.get_mut(name).expect("scheduled resources exist");
        if let Some(followers) = node.followers.take() {
            followers.abort();
        }
        let generation = node.next_generation();
        let Some(service) = node.resource.compose.clone() else {
            return;
        };
        let owned = name.to_owned();
        let task = tokio::spawn(async move {
            let result = async {
                compose::tool()
                    .await
                    .map_err(|why| Failure::new(FailureKind::NotFound, why))?;
                let warn = |w: &str| sink(&format!("[loop] {w}"));
                let record = Record::load(&root, &warn);
                let mut built_ref = None;
                let mut rebuilt = false;
                // The service's image comes last, after the images it is built FROM.
                let mut built_refs: Vec<(String, String)> = Vec::new();
                for image in &images {
                    sink(&format!("[loop] building image {}", image.image_ref));
                    let image = image::with_built_bases(image, &root, &built_refs)
                        .map_err(|e| Failure::other(format!("image {}: {e}", image.image_ref)))?;
                    let built =
                        image::build_to(&image, &root, sink.clone(), &record, &Destination::Local)
                            .await?;
                    rebuilt |= !built.skipped;
                    built_refs.push((image.image_ref.clone(), built.built_ref.clone()));
                    built_ref = Some(built.deploy_ref);
                }
                let since = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let recreate = !first || rebuilt;
                let id = compose::up(&service, &root, built_ref.as_deref(), recreate, &sink)
                    .await
                    .map_err(|why| Failure::new(FailureKind::CommandFailed, why))?;
                Ok::<_, Failure>((id, since))
            }
            .await;
            let result = result.map(|(id, since)| super::CmdResult {
                container: Some((id, since)),
                ..Default::default()
            });
            let _ = tx.send(Msg::CmdDone {
                name: owned,
                generation,
                result,
            });
        });
        node.update = Some(task.abort_handle());
    }

    /// Follows the service's container once up: its log, ready once it runs
    /// (and is healthy), and how it exits.
    pub(super) fn start_compose_followers(&mut self, name: &str, id: String, since: u64) {
        let sink = self.sink(name);
        let logs = self.logs.clone();
        let tx = self.tx.clone();
        let root = self.root.clone();
        let node = self.nodes.get_mut(name).expect("known resource");
        let generation = node.next_generation();
        let owned = name.to_owned();
        let task = tokio::spawn(async move {
            let status_name = owned.clone();
            let status = std::sync::Arc::new(move |line: &str| logs.status(&status_name, line));
            let ready_tx = tx.clone();
            let ready_name = owned.clone();
            let end = compose::follow(&id, since, &root, sink, status, move || {
                let _ = ready_tx.send(Msg::Ready {
                    name: ready_name,
                    generation,
                });
            })
            .await;
            let end = match end {
                State::Exited(code) => Ok(code),
                State::Gone(why) => Err(why),
                State::Ready | State::Starting(_) => return,
            };
            let _ = tx.send(Msg::ContainerExited {
                name: owned,
                generation,
                end,
            });
        });
        node.followers = Some(task.abort_handle());
    }

    /// Applies a live update to the service's container. The followers keep
    /// their generation (the container is the same), so the sync reports with it.
    pub(super) fn start_compose_sync(&mut self, name: &str, plan: SyncPlan) {
        let sink = self.sink(name);
        let tx = self.tx.clone();
        let root = self.root.clone();
        let node = self.nodes.get_mut(name).expect("known resource");
        node.begin();
        let generation = node.generation;
        let Some(service) = node.resource.compose.clone() else {
            return;
        };
        let name = name.to_owned();
        tokio::spawn(async move {
            let result = compose_sync::sync(&service, &root, &plan, &sink)
                .await
                .map(|()| false);
            let _ = tx.send(Msg::SyncDone {
                name,
                generation,
                result,
            });
        });
    }

    /// A service's container exited with a code (0: a run that ends, else it
    /// fails) or could no longer be inspected.
    pub(super) fn container_exited(
        &mut self,
        name: &str,
        generation: u64,
        end: Result<i64, String>,
    ) {
        let Some(node) = self.current(name, generation) else {
            return;
        };
        node.followers = None;
        let code = match end {
            Ok(code) => code,
            Err(why) => {
                self.fail(name, format!("the container is gone: {why}"));
                return;
            }
        };
        if code == 0 {
            self.logs.status(name, "container exited with code 0");
            self.finished(
                name,
                crate::run::scheduler::RunEnd::Succeeded {
                    outputs_changed: true,
                },
            );
        } else {
            self.fail(name, format!("container exited with code {code}"));
        }
    }
}
