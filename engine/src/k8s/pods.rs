//! The pods of a workload, followed by watch: the one place that knows which pods
//! belong to a workload, shared by rollouts, logs, port-forwards and live updates.
//!
//! [`super::Applier::follow_pods`] returns a [`PodWatch`] for a workload: kube-rs watchers (one
//! per pod selector, plus one on the workload object itself) keep an in-memory
//! copy of the workload and its pods, and bump a counter on every change. Callers
//! read a [`Snapshot`] and wait for the next change instead of listing pods on
//! every check, so an idle `loop run` costs the API server one long-lived watch
//! per selector (re-opened when the server ends it), not a LIST per second.
//! A workload's pods are selected by its `spec.selector.matchLabels` (else its
//! template's labels), OR-ed with the resource's `extra_pod_selectors`; a bare Pod
//! is its own workload. Watches are shared: every caller following the same
//! workload gets the same [`PodWatch`], which stops when the last one is dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use loop_lang::model::ObjectRef;
use loop_lang::workload::image_name;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::context::Cluster;
use crate::failure::Failure;

/// The namespace of a workload's pods.
pub fn namespace_of(cluster: &Cluster, workload: &ObjectRef) -> String {
    workload
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.namespace.clone())
}

/// Why a pod is not ready, if it is not.
pub fn pod_problem(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    for condition in status.conditions.iter().flatten() {
        if condition.type_ == "PodScheduled" && condition.status == "False" {
            let reason = condition
                .reason
                .clone()
                .unwrap_or_else(|| "Unschedulable".into());
            return Some(format!(
                "{reason}: pod {name}: {}",
                condition.message.clone().unwrap_or_default()
            ));
        }
    }
    for container in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            if let Some(reason) = &waiting.reason {
                if reason != "ContainerCreating" && reason != "PodInitializing" {
                    let restarts = if container.restart_count > 0 {
                        format!(" (restarted {} times)", container.restart_count)
                    } else {
                        String::new()
                    };
                    return Some(format!(
                        "{reason}: pod {name} container {}{restarts}: {}",
                        container.name,
                        waiting.message.clone().unwrap_or_default()
                    ));
                }
            }
        }
    }
    let phase = status.phase.clone().unwrap_or_default();
    if phase == "Running" {
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            return Some(format!(
                "pod {name} is running but not ready (its readiness probe is failing)"
            ));
        }
        return None;
    }
    if phase == "Succeeded" {
        return None;
    }
    Some(format!(
        "pod {name} is {}",
        if phase.is_empty() {
            "Pending".into()
        } else {
            phase
        }
    ))
}

/// The label selectors of a workload's pods (plus `extra`, OR-ed), from its body;
/// a Service's pods are those its `spec.selector` selects.
pub fn pod_selectors(workload: &Value, extra: &[BTreeMap<String, String>]) -> Vec<String> {
    let service = (workload["kind"] == "Service").then(|| workload["spec"]["selector"].as_object());
    let match_labels = service
        .flatten()
        .or_else(|| workload["spec"]["selector"]["matchLabels"].as_object())
        .or_else(|| workload["spec"]["template"]["metadata"]["labels"].as_object())
        .or_else(|| {
            workload["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].as_object()
        });
    let mut selectors = Vec::new();
    if let Some(labels) = match_labels {
        let parts: Vec<String> = labels
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
            .collect();
        if !parts.is_empty() {
            selectors.push(parts.join(","));
        }
    }
    for labels in extra {
        selectors.push(
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    selectors
}

/// What a [`PodWatch`] knows now.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The workload as the server has it (`None`: it does not exist, or is not
    /// listed yet). For a bare Pod, the pod.
    pub workload: Option<Value>,
    /// Its pods, oldest first, without those being deleted.
    pub pods: Vec<Pod>,
    /// Every watch has listed once: the snapshot is complete.
    pub synced: bool,
    /// The last watch error, until a watch works again.
    pub error: Option<Failure>,
}

impl Snapshot {
    /// The newest running pod with no problem (see [`pod_problem`]).
    pub fn ready_pod(&self) -> Option<&Pod> {
        self.pods
            .iter()
            .filter(|p| {
                p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    && pod_problem(p).is_none()
            })
            .max_by(|a, b| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
    }

    /// The pod named `name`, if it is one of the workload's.
    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    }

    /// (namespace, pod, container) of every running container whose image matches
    /// `image_ref` by name, ignoring the tag or digest (see
    /// [`image_name`]); sorted. Init containers are left out.
    pub fn running_containers(
        &self,
        namespace: &str,
        image_ref: &str,
    ) -> Vec<(String, String, String)> {
        let wanted = image_name(image_ref);
        self.running_containers_where(namespace, |_, image| image_name(image) == wanted)
    }

    /// (namespace, pod, container) of every running container named `container`; sorted.
    pub fn running_containers_named(
        &self,
        namespace: &str,
        container: &str,
    ) -> Vec<(String, String, String)> {
        self.running_containers_where(namespace, |name, _| name == container)
    }

    /// (namespace, pod, container) of every running container for which
    /// `wanted(name, image)` holds; sorted. Init containers are left out.
    fn running_containers_where(
        &self,
        namespace: &str,
        wanted: impl Fn(&str, &str) -> bool,
    ) -> Vec<(String, String, String)> {
        let mut found = Vec::new();
        for pod in &self.pods {
            let (Some(name), Some(spec), Some(status)) =
                (&pod.metadata.name, &pod.spec, &pod.status)
            else {
                continue;
            };
            if status.phase.as_deref() != Some("Running") {
                continue;
            }
            let namespace = pod.metadata.namespace.as_deref().unwrap_or(namespace);
            for container in &spec.containers {
                let image = container.image.as_deref().unwrap_or_default();
                let running = status.container_statuses.iter().flatten().any(|s| {
                    s.name == container.name
                        && s.state.as_ref().is_some_and(|st| st.running.is_some())
                });
                if running && wanted(&container.name, image) {
                    found.push((namespace.to_owned(), name.clone(), container.name.clone()));
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }
}

/// What a watch task shares with its readers.
#[derive(Default)]
struct State {
    workload: Option<Value>,
    /// Pods per selector stream, by uid.
    streams: Vec<HashMap<String, Pod>>,
    /// Objects received during a re-list, per stream (the workload's is last).
    pending: Vec<Option<HashMap<String, Value>>>,
    /// Which streams have listed once.
    listed: Vec<bool>,
    /// The last error per stream.
    errors: Vec<Option<Failure>>,
}

/// The followed state of one workload; the watches stop when it is dropped.
pub struct PodWatch {
    namespace: String,
    state: Arc<Mutex<State>>,
    changed: watch::Sender<u64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl PodWatch {
    /// The namespace of the workload's pods.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// What is known now.
    pub fn snapshot(&self) -> Snapshot {
        let st = lock(&self.state);
        let mut pods: Vec<Pod> = Vec::new();
        for pod in st.streams.iter().flat_map(|s| s.values()) {
            if pod.metadata.deletion_timestamp.is_none()
                && !pods.iter().any(|p| p.metadata.uid == pod.metadata.uid)
            {
                pods.push(pod.clone());
            }
        }
        pods.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, &a.metadata.name)
                .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
        });
        Snapshot {
            workload: st.workload.clone(),
            pods,
            synced: st.listed.iter().all(|l| *l),
            error: st.errors.iter().flatten().next().cloned(),
        }
    }

    /// The pod named `name` as last seen, being deleted or not; `None` when the
    /// pod is gone (or not listed yet: see [`Snapshot::synced`]).
    pub fn find(&self, name: &str) -> Option<Pod> {
        let st = lock(&self.state);
        let found = st
            .streams
            .iter()
            .flat_map(|s| s.values())
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .cloned();
        found
    }

    /// A receiver that sees a new value after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The snapshot once `accept` returns `Some` for it, checked after every change;
    /// `None` after `timeout`.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut accept: impl FnMut(&Snapshot) -> Option<T>,
    ) -> Option<T> {
        let mut changes = self.subscribe();
        tokio::time::timeout(timeout, async {
            loop {
                changes.borrow_and_update();
                if let Some(found) = accept(&self.snapshot()) {
                    return Some(found);
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

/// The key of a shared watch: kind, namespace, name and pod selectors.
pub type Key = (String, String, String, Vec<String>);

/// The watches of an [`super::Applier`], shared by everyone following the same workload.
#[derive(Default)]
pub struct Pods {
    watches: Mutex<HashMap<Key, Weak<PodWatch>>>,
}

impl Pods {
    /// The watch of `workload`'s pods if someone follows them already, else the
    /// key to [`Pods::start`] one under. Its selectors come from the declared
    /// body, which is what was applied.
    pub fn existing(
        &self,
        cluster: &Cluster,
        workload: &ObjectRef,
        extra: &[BTreeMap<String, String>],
    ) -> Result<Arc<PodWatch>, Key> {
        let namespace = namespace_of(cluster, workload);
        let body = serde_json::to_value(&workload.body).unwrap_or(Value::Null);
        let selectors = if workload.kind == "Pod" {
            Vec::new()
        } else {
            pod_selectors(&body, extra)
        };
        let key = (
            workload.kind.clone(),
            namespace,
            workload.name.clone(),
            selectors,
        );
        match lock_map(&self.watches).get(&key).and_then(Weak::upgrade) {
            Some(found) => Ok(found),
            None => Err(key),
        }
    }

    /// Starts the watch of `workload`'s pods under `key` (and of the workload
    /// itself through `object_api`), unless one started meanwhile. Must be
    /// called inside a tokio runtime.
    pub fn start(
        &self,
        cluster: &Cluster,
        key: Key,
        workload: &ObjectRef,
        object_api: Option<Api<kube::api::DynamicObject>>,
    ) -> Arc<PodWatch> {
        let (namespace, selectors) = (key.1.clone(), key.3.clone());
        let mut watches = lock_map(&self.watches);
        if let Some(found) = watches.get(&key).and_then(Weak::upgrade) {
            return found;
        }
        watches.retain(|_, w| w.strong_count() > 0);
        let pod_api: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
        let by_name = format!("metadata.name={}", workload.name);
        let mut configs: Vec<watcher::Config> = selectors
            .iter()
            .map(|s| watcher::Config::default().labels(s))
            .collect();
        if workload.kind == "Pod" {
            configs.push(watcher::Config::default().fields(&by_name));
        }
        let streams = configs.len() + usize::from(object_api.is_some());
        let state = Arc::new(Mutex::new(State {
            streams: vec![HashMap::new(); configs.len()],
            pending: vec![None; streams],
            listed: vec![false; streams],
            errors: vec![None; streams],
            workload: None,
        }));
        let changed = watch::Sender::new(0);
        let bare_pod = workload.kind == "Pod";
        let mut tasks = Vec::new();
        for (index, config) in configs.into_iter().enumerate() {
            let events = watcher::watcher(pod_api.clone(), config).default_backoff();
            tasks.push(tokio::spawn(run(
                events,
                state.clone(),
                changed.clone(),
                index,
                Target::Pods { bare_pod },
            )));
        }
        if let Some(api) = object_api {
            let events = watcher::watcher(api, watcher::Config::default().fields(&by_name))
                .default_backoff();
            tasks.push(tokio::spawn(run(
                events,
                state.clone(),
                changed.clone(),
                streams - 1,
                Target::Workload,
            )));
        }
        let found = Arc::new(PodWatch {
            namespace,
            state,
            changed,
            tasks,
        });
        watches.insert(key, Arc::downgrade(&found));
        found
    }
}

fn lock_map<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a stream's objects go.
#[derive(Clone, Copy)]
enum Target {
    /// Pods into their stream's map; for a bare Pod, the pod is also the workload.
    Pods {
        bare_pod: bool,
    },
    Workload,
}

/// Applies one watch stream's events to the shared state until it is aborted.
async fn run<K, S>(
    events: S,
    state: Arc<Mutex<State>>,
    changed: watch::Sender<u64>,
    index: usize,
    target: Target,
) where
    K: serde::Serialize + kube::Resource,
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        {
            let mut st = lock(&state);
            match event {
                Ok(event) => {
                    st.errors[index] = None;
                    apply_event(&mut st, index, target, event);
                }
                Err(e) => st.errors[index] = Some(watch_error(&e)),
            }
        }
        changed.send_modify(|n| *n += 1);
    }
}

fn apply_event<K: serde::Serialize + kube::Resource>(
    st: &mut State,
    index: usize,
    target: Target,
    event: Event<K>,
) {
    let value = |o: &K| serde_json::to_value(o).unwrap_or(Value::Null);
    let uid = |o: &K| o.meta().uid.clone().or(o.meta().name.clone());
    match event {
        Event::Init => st.pending[index] = Some(HashMap::new()),
        Event::InitApply(o) => {
            if let (Some(pending), Some(uid)) = (st.pending[index].as_mut(), uid(&o)) {
                pending.insert(uid, value(&o));
            }
        }
        Event::InitDone => {
            let listed = st.pending[index].take().unwrap_or_default();
            st.listed[index] = true;
            match target {
                Target::Workload => st.workload = listed.into_values().next(),
                Target::Pods { bare_pod } => {
                    if bare_pod {
                        st.workload = listed.values().next().cloned();
                    }
                    st.streams[index] = listed
                        .into_iter()
                        .filter_map(|(uid, v)| Some((uid, serde_json::from_value(v).ok()?)))
                        .collect();
                }
            }
        }
        Event::Apply(o) => match target {
            Target::Workload => st.workload = Some(value(&o)),
            Target::Pods { bare_pod } => {
                let v = value(&o);
                if bare_pod {
                    st.workload = Some(v.clone());
                }
                if let (Some(uid), Ok(pod)) = (uid(&o), serde_json::from_value(v)) {
                    st.streams[index].insert(uid, pod);
                }
            }
        },
        Event::Delete(o) => match target {
            Target::Workload => st.workload = None,
            Target::Pods { bare_pod } => {
                if bare_pod {
                    st.workload = None;
                }
                if let Some(uid) = uid(&o) {
                    st.streams[index].remove(&uid);
                }
            }
        },
    }
}

/// A watch error, of its kind, in words (the server's message when it sent one).
fn watch_error(e: &watcher::Error) -> Failure {
    let failure = match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => super::errors::failure(e),
        watcher::Error::WatchError(status) => Failure::new(
            super::errors::status_kind(status.code),
            status.message.clone(),
        ),
        other => Failure::other(other.to_string()),
    };
    failure.reworded(|m| format!("cannot watch: {m}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::testing::*;
    use loop_test_apiserver::ApiServer;

    #[test]
    fn a_service_selects_by_its_selector() {
        let service = serde_json::json!({"kind": "Service", "spec": {"selector": {"app": "web", "tier": "a"}}});
        assert_eq!(pod_selectors(&service, &[]), ["app=web,tier=a"]);
        let deployment = serde_json::json!({"kind": "Deployment", "spec": {"selector": {"matchLabels": {"app": "web"}}}});
        let extra = [BTreeMap::from([("role".to_owned(), "x".to_owned())])];
        assert_eq!(pod_selectors(&deployment, &extra), ["app=web", "role=x"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_shared_watch_follows_replaced_pods_without_polling() {
        let server = ApiServer::start().await;
        let applier = applier(&server, &server.url()).await;
        let web = deployment("web", "web:v1");
        apply(&applier, &web).await;
        let watch = applier.follow_pods(&web, &[]).await.unwrap();
        let again = applier.follow_pods(&web, &[]).await.unwrap();
        assert!(Arc::ptr_eq(&watch, &again), "one watch per workload");
        let first = watch
            .wait_for(WAIT, |s| s.ready_pod()?.metadata.name.clone())
            .await
            .expect("a ready pod");

        // Idle: no request reads pods or the workload (watches stay open).
        let before = server.requests().len();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle: Vec<String> = server.requests()[before..].to_vec();
        assert!(idle.is_empty(), "{idle:?}");

        // A changed template replaces the pod; the snapshot follows.
        apply(&applier, &deployment("web", "web:v2")).await;
        let second = watch
            .wait_for(WAIT, |s| {
                let name = s.ready_pod()?.metadata.name.clone()?;
                (name != first && s.pods.len() == 1).then_some(name)
            })
            .await
            .expect("the new pod");
        let snapshot = watch.snapshot();
        assert_eq!(
            snapshot.running_containers("default", "web:whatever"),
            [("default".to_owned(), second.clone(), "app".to_owned())]
        );
        // By container name (k8s_custom_deploy's container_selector).
        assert_eq!(
            snapshot.running_containers_named("default", "app"),
            [("default".to_owned(), second, "app".to_owned())]
        );
        assert!(snapshot
            .running_containers_named("default", "web")
            .is_empty());
        assert_eq!(snapshot.workload.unwrap()["metadata"]["name"], "web");
    }
}
