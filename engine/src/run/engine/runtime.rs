//! The runtimes behind one seam: how a local resource and a Kubernetes resource
//! are updated, live-updated and followed once up. The engine core (starting
//! runs, handling reports) calls these and never branches on a resource's kind;
//! the scheduler knows nothing of kinds at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use loop_lang::model::ResourceKind;

use super::{seconds, CmdResult, Engine, Msg, RETRY_UNREACHABLE};
use crate::failure::Failure;
use crate::live_update::{self, Plan, SyncPlan};
use crate::run::scheduler::{RunEnd, SkipReason};
use crate::run::Mode;

/// How the engine runs one kind of resource.
pub(super) trait Runtime: Sync {
    /// Starts a full update; it reports [`Msg::CmdDone`].
    fn update(&self, engine: &mut Engine, name: &str, first: bool);

    /// The live-update plan for changed `paths`, when the resource is up and
    /// has live-update steps for them.
    fn plan(&self, engine: &Engine, name: &str, paths: &[PathBuf]) -> Option<Plan>;

    /// Starts a live update; it reports [`Msg::SyncDone`].
    fn sync(&self, engine: &mut Engine, name: &str, plan: SyncPlan);

    /// An update succeeded after `took`: start what comes next and tell the scheduler.
    fn updated(&self, engine: &mut Engine, name: &str, result: CmdResult, took: Duration);

    /// How long to wait before retrying a failed update whose failure may pass.
    fn retry_after(&self, engine: &Engine, failure: &Failure) -> Option<Duration>;
}

/// The runtime of a kind of resource.
pub(super) fn runtime_of(kind: ResourceKind) -> &'static dyn Runtime {
    match kind {
        ResourceKind::Local => &Local,
        ResourceKind::K8s | ResourceKind::K8sUncategorized => &Kube,
        ResourceKind::DockerCompose => &Compose,
    }
}

/// Processes on this machine: `cmd`, then `serve_cmd` with its probe.
struct Local;

impl Runtime for Local {
    fn update(&self, engine: &mut Engine, name: &str, first: bool) {
        engine.start_local_update(name, first);
    }

    fn plan(&self, engine: &Engine, name: &str, paths: &[PathBuf]) -> Option<Plan> {
        let node = &engine.nodes[name];
        let steps = &node.resource.live_update;
        if node.serve_group.is_none() || !live_update::has_live_update(steps) {
            return None;
        }
        let run_dir = engine.root.join(&node.resource.serve_dir);
        Some(live_update::plan(steps, &engine.root, &run_dir, paths))
    }

    fn sync(&self, engine: &mut Engine, name: &str, plan: SyncPlan) {
        let files = plan.copies.len() + plan.deletes.len();
        engine.logs.status(
            name,
            &format!("live update: syncing {files} file(s), no restart"),
        );
        engine.start_sync(name, plan);
    }

    fn updated(&self, engine: &mut Engine, name: &str, result: CmdResult, took: Duration) {
        if engine.nodes[name].resource.serve_cmd.is_some() {
            engine.start_serve(name);
            engine.finished(name, RunEnd::Starting);
        } else if result.skipped {
            let skip = SkipReason::InputsUnchanged;
            engine.logs.status(name, &format!("skipped: {skip}"));
            engine.finished(name, RunEnd::Skipped);
        } else {
            engine
                .logs
                .status(name, &format!("succeeded in {}", seconds(took)));
            engine.finished(
                name,
                RunEnd::Succeeded {
                    outputs_changed: result.outputs_changed,
                },
            );
        }
    }

    fn retry_after(&self, _: &Engine, _: &Failure) -> Option<Duration> {
        None
    }
}

/// Kubernetes: build the images, apply, follow the rollout; logs and
/// port-forwards once up; live update into the containers of an image.
struct Kube;

impl Kube {
    /// The images of the resource that have live-update steps.
    fn live_images<'m>(engine: &'m Engine, name: &str) -> Vec<&'m loop_lang::model::Image> {
        engine.nodes[name]
            .resource
            .images
            .iter()
            .filter_map(|r| engine.manifest.image(r))
            .filter(|i| live_update::has_live_update(&i.live_update))
            .collect()
    }
}

impl Runtime for Kube {
    fn update(&self, engine: &mut Engine, name: &str, _first: bool) {
        engine.start_k8s_update(name);
    }

    /// The image whose inputs the changed files are (its `deps`, globs and
    /// ignores as the affected-set index matches them) decides, and syncs into
    /// its own containers; files of two live-updated images at once, or of
    /// none, take a full update.
    fn plan(&self, engine: &Engine, name: &str, paths: &[PathBuf]) -> Option<Plan> {
        let images = Self::live_images(engine, name);
        if images.is_empty() {
            return None;
        }
        let mut owners: Vec<&loop_lang::model::Image> = Vec::new();
        for path in paths {
            let matching = engine.index.images_matching(&engine.display(path));
            for image in images
                .iter()
                .filter(|i| matching.contains(&i.image_ref.as_str()))
            {
                if !owners.iter().any(|o| o.image_ref == image.image_ref) {
                    owners.push(image);
                }
            }
        }
        let image = match owners.as_slice() {
            [one] => *one,
            [] => {
                return Some(Plan::Full {
                    reason: "the changed files are inputs of no live-updated image".to_owned(),
                })
            }
            several => {
                let refs: Vec<&str> = several.iter().map(|i| i.image_ref.as_str()).collect();
                return Some(Plan::Full {
                    reason: format!(
                        "files of several live-updated images changed at once ({})",
                        refs.join(", ")
                    ),
                });
            }
        };
        Some(
            match live_update::plan(&image.live_update, &engine.root, Path::new("/"), paths) {
                Plan::Sync(plan) => Plan::Sync(SyncPlan {
                    target: Some(image.image_ref.clone()),
                    ..plan
                }),
                other => other,
            },
        )
    }

    fn sync(&self, engine: &mut Engine, name: &str, plan: SyncPlan) {
        let Some(image) = plan
            .target
            .as_deref()
            .and_then(|r| engine.manifest.image(r))
        else {
            return;
        };
        let (image_ref, container_name) = (image.image_ref.clone(), image.container_name.clone());
        let target = match &container_name {
            Some(container) => format!("containers named {container}"),
            None => format!("the containers of {image_ref}"),
        };
        let files = plan.copies.len() + plan.deletes.len();
        engine.logs.status(
            name,
            &format!("live update: syncing {files} file(s) into {target}"),
        );
        engine.start_container_sync(name, image_ref, container_name, plan);
    }

    fn updated(&self, engine: &mut Engine, name: &str, _: CmdResult, took: Duration) {
        engine
            .logs
            .status(name, &format!("ready in {}", seconds(took)));
        engine.finished(name, RunEnd::Ready);
        engine.start_k8s_followers(name);
    }

    fn retry_after(&self, engine: &Engine, failure: &Failure) -> Option<Duration> {
        (engine.options.mode == Mode::Run && failure.may_pass_later()).then_some(RETRY_UNREACHABLE)
    }
}

/// Docker Compose services: build the images the Loopfiles build for them, `up`
/// the service, then follow its container.
struct Compose;

impl Runtime for Compose {
    fn update(&self, engine: &mut Engine, name: &str, first: bool) {
        engine.start_compose_update(name, first);
    }

    /// As for Kubernetes: the image whose inputs changed decides; only while
    /// the container is followed (up).
    fn plan(&self, engine: &Engine, name: &str, paths: &[PathBuf]) -> Option<Plan> {
        engine.nodes[name].followers.as_ref()?;
        Kube.plan(engine, name, paths)
    }

    fn sync(&self, engine: &mut Engine, name: &str, plan: SyncPlan) {
        let files = plan.copies.len() + plan.deletes.len();
        engine.logs.status(
            name,
            &format!("live update: syncing {files} file(s) into the container"),
        );
        engine.start_compose_sync(name, plan);
    }

    fn updated(&self, engine: &mut Engine, name: &str, result: CmdResult, _: Duration) {
        let Some((id, since)) = result.container else {
            engine.fail(name, "docker compose up started no container".to_owned());
            return;
        };
        let short: String = id.chars().take(12).collect();
        engine
            .logs
            .status(name, &format!("container {short} started"));
        engine.start_compose_followers(name, id, since);
        engine.finished(name, RunEnd::Starting);
    }

    fn retry_after(&self, _: &Engine, _: &Failure) -> Option<Duration> {
        None
    }
}

impl Engine {
    /// The runtime of a resource.
    pub(super) fn runtime(&self, name: &str) -> &'static dyn Runtime {
        runtime_of(self.nodes[name].resource.kind)
    }

    /// Retries an update after `wait` (unless something newer happened by then).
    pub(super) fn retry_later(&self, name: &str, generation: u64, wait: Duration) {
        let tx = self.tx.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = tx.send(Msg::RetryDue { name, generation });
        });
    }
}
