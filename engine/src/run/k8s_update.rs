//! A full update of a Kubernetes resource: build its images, inject the built
//! refs, apply its objects, and follow the rollout until its pods are ready.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use loop_lang::model::{DefaultRegistry, Image, ObjectRef, Resource};

use crate::failure::{Failure, FailureKind};
use crate::image::{self, Destination, Record};
use crate::k8s::apply::{error_text, failure, UNREACHABLE};
use crate::k8s::{rollout, Applier};
use crate::report::LineSink;

/// How long a rollout may take before the update fails.
const ROLLOUT_DEADLINE: Duration = Duration::from_secs(300);

/// What Kubernetes updates share: the cluster, the image record, the project id.
pub struct K8sRuntime {
    pub applier: Arc<Applier>,
    pub record: Record,
    pub project: String,
    pub root: PathBuf,
    /// The objects each `k8s_custom_deploy` resource's `apply_cmd` last
    /// printed, by resource name: what its followers follow.
    pub deployed: std::sync::Mutex<BTreeMap<String, Vec<ObjectRef>>>,
    /// The registry the cluster advertises (KEP-1755), read once.
    pub advertised: tokio::sync::OnceCell<Option<DefaultRegistry>>,
    /// Record each image pushed by digest in `loop.lock.json` (`loop ci`).
    pub lock_images: bool,
}

impl K8sRuntime {
    /// The objects of a resource: those it declares, or for a custom deploy,
    /// those its `apply_cmd` last printed.
    pub fn objects_of(&self, resource: &Resource) -> Vec<ObjectRef> {
        if resource.custom_deploy.is_none() {
            return resource.objects.clone();
        }
        self.deployed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&resource.name)
            .cloned()
            .unwrap_or_default()
    }
}

/// Whether an object runs pods (its rollout, logs and containers are followed).
pub fn is_workload(o: &ObjectRef) -> bool {
    loop_lang::workload::is_workload(&o.body)
}

/// Runs the update; `Err` says what failed. `log` receives build output and
/// rollout reasons.
pub async fn update(
    runtime: Arc<K8sRuntime>,
    resource: Resource,
    images: Vec<Image>,
    registry: Option<DefaultRegistry>,
    log: LineSink,
) -> Result<(), Failure> {
    let mut objects = resource.objects.clone();
    let mut destination = Destination::Local;
    if !images.is_empty() {
        // A cluster problem is reported as one, not as a build that ran for nothing.
        cluster_answers(&runtime).await?;
        let advertised = if registry.is_none() {
            advertised_registry(&runtime, &log).await
        } else {
            None
        };
        destination = Destination::choose(
            &runtime.applier.cluster.context,
            registry.as_ref(),
            advertised.as_ref(),
        );
    }
    let mut built_refs: Vec<(String, String)> = Vec::new();
    // The refs in the local daemon (what a dependent's FROM can name; a pushed
    // ref may name a host only the cluster reaches).
    let mut local_refs: Vec<(String, String)> = Vec::new();
    // A LiveUpdateOnly image is never built: apply_cmd deploys it as it is.
    for image in images
        .iter()
        .filter(|i| i.kind != loop_lang::model::ImageKind::LiveUpdateOnly)
    {
        log(&format!("[loop] building image {}", image.image_ref));
        // Built FROM an image built just before: its FROM names that build.
        let image = &image::with_built_bases(image, &runtime.root, &local_refs)
            .map_err(|e| Failure::other(format!("image {}: {e}", image.image_ref)))?;
        let built = image::build_to(
            image,
            &runtime.root,
            log.clone(),
            &runtime.record,
            &destination,
        )
        .await?;
        if built.skipped {
            log(&format!(
                "[loop] image {} is up to date ({})",
                image.image_ref, built.built_ref
            ));
        }
        if runtime.lock_images && built.deploy_ref.contains("@sha256:") {
            let locked = crate::release::lock::LockedImage {
                inputs: built.hash.clone(),
                pushed: built.deploy_ref.clone(),
            };
            if let Err(e) =
                crate::release::lock::record_image(&runtime.root, &image.image_ref, locked)
            {
                log(&format!("[loop] image {} pushed, but {e}", image.image_ref));
            }
        }
        built_refs.push((image.image_ref.clone(), built.deploy_ref.clone()));
        local_refs.push((image.image_ref.clone(), built.built_ref.clone()));
        for object in objects.iter_mut() {
            image::put(&mut object.body, image, Some(&built.deploy_ref));
        }
    }
    let versions: Vec<rollout::Applied>;
    if let Some(deploy) = &resource.custom_deploy {
        // The images in image_deps order, as apply_cmd numbers them.
        let built: Vec<(String, String)> = deploy
            .image_deps
            .iter()
            .filter_map(|dep| built_refs.iter().find(|(name, _)| name == dep).cloned())
            .collect();
        let env = super::custom_deploy::apply_env(deploy, &built);
        let dir = runtime.root.join(&deploy.apply_dir);
        objects = super::custom_deploy::apply(deploy, &dir, env, log.clone()).await?;
        log(&format!(
            "[loop] apply_cmd deployed {} object(s): {}",
            objects.len(),
            objects
                .iter()
                .map(|o| format!("{}/{}", o.kind, o.name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        versions = objects
            .iter()
            .map(super::custom_deploy::printed_version)
            .collect();
        runtime
            .deployed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(resource.name.clone(), objects.clone());
    } else {
        let applied = runtime
            .applier
            .apply(&objects, &resource.name, &runtime.project)
            .await?;
        log(&format!("[loop] applied {} object(s)", applied.len()));
        versions = objects
            .iter()
            .map(|o| rollout::Applied::find(&applied, o))
            .collect();
    }
    let extra: Vec<BTreeMap<String, String>> = resource.extra_pod_selectors.clone();
    for (workload, version) in objects
        .iter()
        .zip(&versions)
        .filter(|(o, _)| is_workload(o))
    {
        if loop_lang::workload::runs_on_schedule(&workload.kind) {
            let schedule = workload
                .body
                .path(&["spec", "schedule"])
                .and_then(|s| s.as_str());
            log(&format!(
                "[loop] {}/{}: runs on its schedule ({}); its pods' logs are followed when they run",
                workload.kind,
                workload.name,
                schedule.unwrap_or("none given")
            ));
        }
        let log = log.clone();
        rollout::wait_ready(
            &runtime.applier,
            workload,
            &extra,
            version,
            ROLLOUT_DEADLINE,
            move |reason| {
                log(&format!(
                    "[loop] {}/{}: {reason}",
                    workload.kind, workload.name
                ))
            },
        )
        .await?;
    }
    Ok(())
}

/// The registry the cluster advertises in the ConfigMap `local-registry-hosting`
/// of `kube-public` (KEP-1755), read once per connection; `None` when there is
/// none or it cannot be read (said in the log).
async fn advertised_registry(runtime: &K8sRuntime, log: &LineSink) -> Option<DefaultRegistry> {
    runtime
        .advertised
        .get_or_init(|| async {
            use k8s_openapi::api::core::v1::ConfigMap;
            let api: kube::Api<ConfigMap> =
                kube::Api::namespaced(runtime.applier.cluster.client.clone(), "kube-public");
            let found = match api.get_opt("local-registry-hosting").await {
                Ok(found) => found,
                Err(e) => {
                    log(&format!(
                        "[loop] cannot read ConfigMap kube-public/local-registry-hosting: {}; images are not pushed",
                        error_text(&e)
                    ));
                    return None;
                }
            };
            let document = found
                .and_then(|cm| cm.data)
                .and_then(|data| data.get("localRegistryHosting.v1").cloned())?;
            match image::from_local_registry_hosting(&document) {
                Ok(Some(registry)) => {
                    log(&format!(
                        "[loop] the cluster advertises the registry {} (ConfigMap kube-public/local-registry-hosting)",
                        registry.host
                    ));
                    Some(registry)
                }
                Ok(None) => None,
                Err(e) => {
                    log(&format!(
                        "[loop] ConfigMap kube-public/local-registry-hosting: {e}; images are not pushed"
                    ));
                    None
                }
            }
        })
        .await
        .clone()
}

/// How long the cluster may take to answer `/version` before an image build.
const CLUSTER_ANSWER: Duration = Duration::from_secs(30);

/// Asks the cluster for `/version`; an error says that nothing was built (and,
/// starting with [`UNREACHABLE`], is retried by `loop run`).
async fn cluster_answers(runtime: &K8sRuntime) -> Result<(), Failure> {
    let cluster = &runtime.applier.cluster;
    let fail = |failure: Failure| {
        failure.reworded(|why| {
            format!(
                "{why} (server {}, context {:?}); images are built once the cluster answers",
                cluster.server, cluster.context
            )
        })
    };
    match tokio::time::timeout(CLUSTER_ANSWER, cluster.client.apiserver_version()).await {
        Err(_) => Err(fail(Failure::new(
            FailureKind::Unreachable,
            format!(
                "{UNREACHABLE}: no answer to /version within {}s",
                CLUSTER_ANSWER.as_secs()
            ),
        ))),
        Ok(Err(e)) => Err(fail(failure(&e))),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Follows the logs of a ready resource's workloads and opens its port-forwards;
/// aborting the returned task stops all of it and releases the local ports.
pub fn start_followers(
    runtime: Arc<K8sRuntime>,
    resource: &Resource,
    sink: LineSink,
) -> tokio::task::AbortHandle {
    let workloads: Vec<ObjectRef> = runtime
        .objects_of(resource)
        .into_iter()
        .filter(is_workload)
        .collect();
    let extra = resource.extra_pod_selectors.clone();
    let forwards = resource.port_forwards.clone();
    let task = tokio::spawn(async move {
        let Some(first) = workloads.first().cloned() else {
            return;
        };
        let _logs: Vec<_> = workloads
            .iter()
            .map(|w| {
                crate::k8s::logs::follow_logs(
                    runtime.applier.clone(),
                    w.clone(),
                    extra.clone(),
                    sink.clone(),
                )
            })
            .collect();
        let mut _forwarders = Vec::new();
        for forward in forwards {
            match crate::k8s::portforward::PortForwarder::start(
                runtime.applier.clone(),
                first.clone(),
                extra.clone(),
                forward,
                sink.clone(),
            )
            .await
            {
                Ok(forwarder) => {
                    sink(&format!(
                        "[loop] {} on {}",
                        forwarder.label(),
                        forwarder.local_addr()
                    ));
                    _forwarders.push(forwarder);
                }
                Err(e) => sink(&format!("[loop] port-forward failed: {e}")),
            }
        }
        std::future::pending::<()>().await;
    });
    task.abort_handle()
}

/// Syncs a live update into every running container of the resource's workloads
/// that uses `image` (or, with `container_name`, that has this name).
pub async fn sync_containers(
    runtime: Arc<K8sRuntime>,
    resource: Resource,
    image_ref: String,
    container_name: Option<String>,
    plan: crate::live_update::SyncPlan,
    log: LineSink,
) -> Result<bool, String> {
    use crate::live_update::SyncTarget;
    let mut containers = Vec::new();
    for workload in runtime
        .objects_of(&resource)
        .iter()
        .filter(|o| is_workload(o))
    {
        containers.extend(
            crate::k8s::sync::containers_selected(
                &runtime.applier,
                workload,
                &resource.extra_pod_selectors,
                match &container_name {
                    Some(name) => crate::k8s::sync::Selector::Name(name),
                    None => crate::k8s::sync::Selector::Image(&image_ref),
                },
            )
            .await?,
        );
    }
    let target = crate::k8s::sync::ContainerTarget {
        client: runtime.applier.cluster.client.clone(),
        containers,
        log,
    };
    target
        .apply(&plan)
        .await
        .map(|_| false)
        .map_err(|e| e.to_string())
}
