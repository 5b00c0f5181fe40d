#![doc = include_str!("../README.md")]

mod apply;
mod controllers;
mod discovery;
mod exec;
mod logs;
mod portforward;
mod server;
mod status;
mod store;
mod watch;
mod ws;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::task::AbortHandle;

use crate::store::Store;

/// The user name that RBAC-style error messages name.
pub const TEST_USER: &str = "loop-test";

/// The bearer token written into [`ApiServer::kubeconfig`].
pub const TEST_TOKEN: &str = "loop-test-token";

/// How the simulated kubelet runs the pods of a workload (see [`ApiServer::set_pod_behaviour`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodBehaviour {
    /// Pending briefly, then Running with every container ready (Jobs: Succeeded).
    #[default]
    Ready,
    /// Pending; containers waiting with reason `ImagePullBackOff`.
    ImagePullBackOff,
    /// Running; containers waiting with reason `CrashLoopBackOff`, a restart count and a
    /// terminated `lastState` (Jobs: the pod fails and the Job gets `Failed`).
    CrashLoopBackOff,
    /// Pending; `PodScheduled=False` with reason `Unschedulable`.
    Unschedulable,
    /// Running with containers running but never ready (`Ready=False`).
    NeverReady,
}

/// Everything behind the lock.
pub(crate) struct State {
    pub store: Store,
    pub requests: Vec<String>,
    /// (verb, resource) pairs answered with 403; verb may be "*".
    pub forbidden: HashSet<(String, String)>,
    /// Workload (or bare pod) name → behaviour.
    pub behaviours: HashMap<String, PodBehaviour>,
    pub logs: logs::Logs,
    /// (namespace, pod-or-workload name, container port) → local address.
    pub ports: HashMap<(String, String, u16), SocketAddr>,
    pub kubelet: controllers::Kubelet,
}

/// State shared by the server tasks.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Bumped on every change (objects or logs); watchers and followers wait on it.
    pub changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Bumped by [`ApiServer::break_port_forwards`].
    pub breaker: tokio::sync::watch::Sender<u64>,
    /// Root of the per-container folders.
    pub root: tempfile::TempDir,
    pub addr: SocketAddr,
    /// Every spawned task, aborted when the server is dropped.
    pub tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bump the change counter without touching the store (log appends).
    pub fn poke(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    pub fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let h = tokio::spawn(f);
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(h.abort_handle());
    }

    /// Folder emulating the filesystem of one container (created on demand).
    pub fn container_dir(&self, ns: &str, pod: &str, container: &str) -> PathBuf {
        let p = self.root.path().join(ns).join(pod).join(container);
        let _ = std::fs::create_dir_all(&p);
        p
    }
}

/// Split `"ns/name"` or `"name"` (namespace `default`).
pub(crate) fn split_ns(pod: &str) -> (String, String) {
    match pod.split_once('/') {
        Some((ns, n)) => (ns.to_string(), n.to_string()),
        None => ("default".to_string(), pod.to_string()),
    }
}

/// A running API server; stops serving when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
}

impl ApiServer {
    /// Binds 127.0.0.1:0 (plain HTTP, no TLS) and serves until dropped.
    /// Must be called inside a tokio runtime.
    pub async fn start() -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let changes = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let mut store = Store::new(changes.clone());
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            apply::seed_namespace(&mut store, ns);
        }
        controllers::seed_node(&mut store);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                store,
                requests: Vec::new(),
                forbidden: HashSet::new(),
                behaviours: HashMap::new(),
                logs: logs::Logs::default(),
                ports: HashMap::new(),
                kubelet: controllers::Kubelet::default(),
            }),
            changes,
            breaker: tokio::sync::watch::Sender::new(0),
            root: tempfile::tempdir().expect("temp dir"),
            addr,
            tasks: Mutex::new(Vec::new()),
        });
        shared.spawn(server::accept_loop(listener, shared.clone()));
        shared.spawn(controllers::run(shared.clone()));
        ApiServer { shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// A kubeconfig YAML text pointing at this server: cluster, user (dummy bearer token)
    /// and context all named `context`, namespace `default`, selected as current context.
    pub fn kubeconfig(&self, context: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {url}\n\
             users:\n- name: {context}\n  user:\n    token: {TEST_TOKEN}\n\
             contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n    namespace: default\n\
             current-context: {context}\npreferences: {{}}\n",
            url = self.url()
        )
    }

    /// Every stored object (including the seeded namespaces and node).
    pub fn objects(&self) -> Vec<Value> {
        self.shared
            .lock()
            .store
            .all()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// One stored object, by API group ("" for core), plural resource, namespace ("" if
    /// cluster-scoped) and name.
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .store
            .get(&store::ObjKey::new(group, plural, namespace, name))
            .cloned()
    }

    /// Stores `obj` as if created by a client (by API group, "" for core, and
    /// plural resource), e.g. a ConfigMap a cluster tool left behind.
    pub fn put_object(&self, group: &str, plural: &str, obj: Value) {
        let key = store::key_of(group, plural, &obj);
        self.shared.lock().store.put(key, obj);
    }

    /// Every request received, as `"METHOD /path?query"` (query as sent, undecoded).
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// Answer 403 Forbidden (a real `Status`) for `verb` on `resource`, e.g.
    /// `("patch", "deployments")`, `("create", "pods/exec")`, `("*", "secrets")`.
    /// Verbs: get, list, watch, create, update, patch, delete, deletecollection.
    pub fn forbid(&self, verb: &str, resource: &str) {
        self.shared
            .lock()
            .forbidden
            .insert((verb.to_string(), resource.to_string()));
    }

    /// Undo every [`ApiServer::forbid`].
    pub fn allow_all(&self) {
        self.shared.lock().forbidden.clear();
    }

    /// How pods of the workload named `workload` (Deployment, StatefulSet, DaemonSet,
    /// ReplicaSet, Job, or a bare pod's own name; any namespace) behave. Takes effect
    /// on existing pods too.
    pub fn set_pod_behaviour(&self, workload: &str, behaviour: PodBehaviour) {
        self.shared
            .lock()
            .behaviours
            .insert(workload.to_string(), behaviour);
        self.shared.poke();
    }

    /// Append a line to a container's log (`pod` is `"name"` in `default`, or `"ns/name"`).
    pub fn append_log(&self, pod: &str, container: &str, line: &str) {
        let (ns, name) = split_ns(pod);
        self.shared.lock().logs.append(&ns, &name, container, line);
        self.shared.poke();
    }

    /// The folder that stands for the filesystem of a container (`pod` is `"name"` or
    /// `"ns/name"`); exec runs commands there. Created on demand.
    pub fn container_dir(&self, pod: &str, container: &str) -> PathBuf {
        let (ns, name) = split_ns(pod);
        self.shared.container_dir(&ns, &name, container)
    }

    /// Make port-forwards to `container_port` of a pod reach `local_addr`. `pod` is a
    /// pod name or a workload name (matching all its pods), optionally `"ns/..."`.
    pub fn expose_port(&self, pod: &str, container_port: u16, local_addr: SocketAddr) {
        let (ns, name) = split_ns(pod);
        self.shared
            .lock()
            .ports
            .insert((ns, name, container_port), local_addr);
    }

    /// Drop every active port-forward websocket connection (abruptly, as a network
    /// failure or a restarted pod would), to test reconnects.
    pub fn break_port_forwards(&self) {
        self.shared.breaker.send_modify(|n| *n += 1);
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        for t in self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}
