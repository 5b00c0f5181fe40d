//! `port_forwards` of a `k8s_resource`: a local port that reaches a container port of
//! the workload's current ready pod through the API server, or a port of a
//! Service (`port_forward(8080, 80, service="web")`): then the newest ready pod
//! behind the Service's selector, at the container port the Service port's
//! `targetPort` names (a number, or a named container port of that pod).
//!
//! Every accepted connection is bridged to its own port-forward stream to the pod
//! (kube-rs `Api::<Pod>::portforward`). The pod is picked for each connection from
//! the shared watch of the workload's (or Service's) pods ([`super::pods`]), so a
//! replaced pod is picked up by the next connection. When there is no ready pod or
//! the API server refuses the forward, the connection waits, retrying with a capped
//! backoff, for a bounded time, and is then closed.
//!
//! A health check opens a forward to the current pod every few seconds and checks
//! that the tunnel comes up and reaches the port. After several failures in a row
//! the forward is declared wedged (the known failure of long-lived forwards after a
//! pod restart): live connections are closed, so that the next connection starts
//! from scratch. Stopping releases the local port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Portforwarder};
use loop_lang::model::{ObjectRef, PortForward};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use serde_json::Value;

use super::apply::{error_text, Applier};
use super::logs::Backoff;
use super::pods::{namespace_of, pod_problem, PodWatch};
use crate::report::LineSink;

/// Timings of a forwarder; the defaults suit people, tests shorten them.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// How often the health check runs.
    pub health_interval: Duration,
    /// Failed health checks in a row that make a forward wedged.
    pub wedged_after: u32,
    /// How long the health check waits for an error before calling a forward healthy.
    pub health_grace: Duration,
    /// How long a connection waits for a ready pod and a forward before it is closed.
    pub client_wait: Duration,
    /// Retry delays: from `backoff_min`, doubling, up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Bound on opening one forward through the API server.
    pub open_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            health_interval: Duration::from_secs(5),
            wedged_after: 3,
            health_grace: Duration::from_millis(500),
            client_wait: Duration::from_secs(30),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            open_timeout: Duration::from_secs(10),
        }
    }
}

/// A running port-forward; stops (and releases its local port) on [`PortForwarder::stop`]
/// or when dropped.
pub struct PortForwarder {
    addr: SocketAddr,
    label: String,
    /// `None` once stopped.
    task: Option<JoinHandle<()>>,
}

impl PortForwarder {
    /// Binds `host:local_port` (host `127.0.0.1` when empty; port 0 picks a free one)
    /// and starts forwarding. Must be called inside a tokio runtime.
    pub async fn start(
        applier: Arc<Applier>,
        workload: ObjectRef,
        extra: Vec<BTreeMap<String, String>>,
        forward: PortForward,
        sink: LineSink,
    ) -> Result<PortForwarder, String> {
        Self::start_with(applier, workload, extra, forward, sink, Tuning::default()).await
    }

    /// [`PortForwarder::start`] with explicit timings.
    pub async fn start_with(
        applier: Arc<Applier>,
        workload: ObjectRef,
        extra: Vec<BTreeMap<String, String>>,
        forward: PortForward,
        sink: LineSink,
        tuning: Tuning,
    ) -> Result<PortForwarder, String> {
        let host = match forward.host.trim() {
            "" => "127.0.0.1",
            h => h.trim_start_matches('[').trim_end_matches(']'),
        };
        let target = match &forward.service {
            Some(service) => format!("service/{service}:{}", forward.container_port),
            None if forward.container_port == 0 => format!("{} (its pod's port)", workload.name),
            None => format!("{}:{}", workload.name, forward.container_port),
        };
        let destination = match &forward.service {
            Some(service) => Destination::Service(service_ref(&workload, &applier, service)),
            None => Destination::Workload(workload, extra),
        };
        let listener = TcpListener::bind((host, forward.local_port))
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    format!(
                        "cannot forward local port {port} to {target}: port {port} on {host} is already in use \
                         (another program, or another loop, is listening on it); \
                         stop it or choose another local port",
                        port = forward.local_port
                    )
                } else {
                    format!(
                        "cannot forward local port {} to {target}: cannot listen on {host}: {e}",
                        forward.local_port
                    )
                }
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot forward to {target}: {e}"))?;
        let label = format!("port-forward {} -> {target}", addr.port());
        let shared = Arc::new(Shared {
            pods: Api::namespaced(
                applier.cluster.client.clone(),
                &namespace_of(&applier.cluster, destination.object()),
            ),
            applier,
            destination,
            port: forward.container_port,
            local_port: forward.local_port,
            label: label.clone(),
            sink,
            tuning,
            watch: tokio::sync::Mutex::new(None),
            announced: Mutex::new(String::new()),
            reported: Mutex::new(String::new()),
            generation: watch::Sender::new(0),
        });
        let task = tokio::spawn(async move {
            tokio::join!(accept(shared.clone(), listener), health(shared));
        });
        Ok(PortForwarder {
            addr,
            label,
            task: Some(task),
        })
    }

    /// The local address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `port-forward LOCAL -> workload:PORT`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Stops forwarding and closes its connections; the local port is free on return.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for PortForwarder {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Where a forward goes.
enum Destination {
    /// The pods of a workload (with extra selectors), at a container port.
    Workload(ObjectRef, Vec<BTreeMap<String, String>>),
    /// The pods behind a Service, at the target of a Service port.
    Service(ObjectRef),
}

impl Destination {
    fn object(&self) -> &ObjectRef {
        match self {
            Destination::Workload(o, _) | Destination::Service(o) => o,
        }
    }
}

/// A Service named by a forward, in the namespace of the resource's workload (its
/// declared body is filled in from the server when the forward first needs it).
fn service_ref(workload: &ObjectRef, applier: &Applier, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: name.into(),
        namespace: Some(namespace_of(&applier.cluster, workload)),
        defined_at: workload.defined_at.clone(),
        body: loop_lang::data::Data::default(),
    }
}

/// The container port a forward that names none reaches, as Tilt picks it from
/// the pod: the local port when a container declares it, else the first port a
/// container declares, else the local port. (Assembly does the same from the
/// objects when it knows them; a `k8s_custom_deploy` prints them only when it
/// runs.)
pub fn pod_port(pod: &Pod, local_port: u16) -> u16 {
    let declared: Vec<u16> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect();
    if declared.contains(&local_port) {
        local_port
    } else {
        declared.first().copied().unwrap_or(local_port)
    }
}

/// The container port a Service port leads to on `pod`: its `targetPort`, a number
/// or the name of a container port (absent: the same number).
pub fn target_port(service: &Value, port: u16, pod: &Pod) -> Result<u16, String> {
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(found) = ports
        .iter()
        .find(|p| p["port"].as_u64() == Some(u64::from(port)))
    else {
        let known: Vec<String> = ports
            .iter()
            .filter_map(|p| p["port"].as_u64())
            .map(|p| p.to_string())
            .collect();
        return Err(format!(
            "Service {name} has no port {port} (its ports: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ));
    };
    match &found["targetPort"] {
        Value::Null => Ok(port),
        Value::String(named) => match named.parse::<u16>() {
            Ok(number) => Ok(number),
            Err(_) => pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(named.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| {
                    format!(
                        "Service {name} port {port} targets the container port named {named:?}, \
                         which pod {} does not declare",
                        pod.metadata.name.as_deref().unwrap_or_default()
                    )
                }),
        },
        other => other
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("Service {name} port {port} has an invalid targetPort {other}")),
    }
}

/// What the connections and the health check share.
struct Shared {
    applier: Arc<Applier>,
    pods: Api<Pod>,
    destination: Destination,
    /// The container port (0: the pod's, see [`pod_port`]), or the Service port.
    port: u16,
    local_port: u16,
    label: String,
    sink: LineSink,
    tuning: Tuning,
    /// The watch of the destination's pods, once started.
    watch: tokio::sync::Mutex<Option<Arc<PodWatch>>>,
    /// The pod last announced as the target.
    announced: Mutex<String>,
    /// The last problem reported (each is said once).
    reported: Mutex<String>,
    /// Bumped when the forward is re-created: live connections close.
    generation: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One port-forward stream through the API server, closed when dropped (also when
/// the task using it is aborted).
struct Tunnel(Portforwarder);

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a forward could not be opened.
enum OpenError {
    /// No pod to forward to (not a failure of the forward).
    NoPod(String),
    Failed(String),
}

impl OpenError {
    fn text(&self) -> &str {
        match self {
            OpenError::NoPod(t) | OpenError::Failed(t) => t,
        }
    }
}

impl Shared {
    /// Tells the sink about a problem, once until something else happens.
    fn report(&self, problem: &str) {
        let mut last = lock(&self.reported);
        if *last != problem {
            *last = problem.to_owned();
            (self.sink)(&format!("{}: {problem}", self.label));
        }
    }

    /// The shared watch of the destination's pods (started on first use).
    async fn watch(&self) -> Result<Arc<PodWatch>, OpenError> {
        let mut watch = self.watch.lock().await;
        if let Some(found) = watch.as_ref() {
            return Ok(found.clone());
        }
        let found = match &self.destination {
            Destination::Workload(workload, extra) => {
                self.applier.follow_pods(workload, extra).await
            }
            Destination::Service(service) => {
                let body = self
                    .applier
                    .current(service)
                    .await
                    .map_err(|e| {
                        OpenError::Failed(format!("cannot read Service {}: {e}", service.name))
                    })?
                    .ok_or_else(|| {
                        OpenError::NoPod(format!("Service {} does not exist (yet)", service.name))
                    })?;
                let mut service = service.clone();
                service.body = serde_json::from_value(body)
                    .map_err(|e| OpenError::Failed(format!("Service {}: {e}", service.name)))?;
                self.applier.follow_pods(&service, &[]).await
            }
        }
        .map_err(|e| OpenError::Failed(format!("cannot follow the pods: {e}")))?;
        *watch = Some(found.clone());
        Ok(found)
    }

    /// The newest ready pod of the destination, and the container port to reach.
    async fn pod(&self) -> Result<(String, u16), OpenError> {
        let snapshot = self.watch().await?.snapshot();
        if let Some(e) = &snapshot.error {
            return Err(OpenError::Failed(format!("cannot list the pods: {e}")));
        }
        let Some(pod) = snapshot.ready_pod() else {
            let why = snapshot
                .pods
                .iter()
                .find_map(pod_problem)
                .unwrap_or_else(|| "it has no pods".into());
            return Err(OpenError::NoPod(format!(
                "waiting for a ready pod of {}: {why}",
                self.destination.object().name
            )));
        };
        let port = match (&self.destination, &snapshot.workload) {
            (Destination::Workload(..), _) if self.port == 0 => pod_port(pod, self.local_port),
            (Destination::Workload(..), _) => self.port,
            (Destination::Service(_), Some(service)) => {
                target_port(service, self.port, pod).map_err(OpenError::NoPod)?
            }
            (Destination::Service(s), None) => {
                return Err(OpenError::NoPod(format!(
                    "Service {} does not exist (yet)",
                    s.name
                )))
            }
        };
        Ok((pod.metadata.name.clone().unwrap_or_default(), port))
    }

    /// Opens a forward to the current pod.
    async fn open(&self) -> Result<(String, u16, Tunnel), OpenError> {
        let (pod, port) = self.pod().await?;
        let opened = tokio::time::timeout(
            self.tuning.open_timeout,
            self.pods.portforward(&pod, &[port]),
        )
        .await;
        match opened {
            Ok(Ok(forwarder)) => Ok((pod, port, Tunnel(forwarder))),
            Ok(Err(e)) => Err(OpenError::Failed(format!(
                "cannot forward to pod {pod}: {}",
                error_text(&e)
            ))),
            Err(_) => Err(OpenError::Failed(format!(
                "the API server did not open a forward to pod {pod} within {}s",
                self.tuning.open_timeout.as_secs()
            ))),
        }
    }

    /// Says which pod the forward reaches, when that changes.
    fn announce(&self, pod: &str) {
        let mut announced = lock(&self.announced);
        if *announced != pod {
            *announced = pod.to_owned();
            lock(&self.reported).clear();
            (self.sink)(&format!("{} (pod {pod})", self.label));
        }
    }
}

async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    // Dropping the set (when the forwarder stops) closes every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    let _ = client.set_nodelay(true);
                    connections.spawn(serve(shared.clone(), client));
                }
                Err(e) => {
                    shared.report(&format!("cannot accept a connection: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Bridges one client connection to the pod, retrying until a forward opens.
async fn serve(shared: Arc<Shared>, mut client: TcpStream) {
    let deadline = Instant::now() + shared.tuning.client_wait;
    let mut backoff = Backoff::new(shared.tuning.backoff_min, shared.tuning.backoff_max);
    let mut generation = shared.generation.subscribe();
    generation.borrow_and_update();
    let (pod, port, mut forwarder) = loop {
        match shared.open().await {
            Ok(opened) => break opened,
            Err(e) => {
                shared.report(e.text());
                let delay = backoff.next_delay();
                if Instant::now() + delay > deadline {
                    shared.report(&format!(
                        "gave up on a connection after {}s: {}",
                        shared.tuning.client_wait.as_secs(),
                        e.text()
                    ));
                    return;
                }
                tokio::time::sleep(delay).await;
            }
        }
    };
    let (Some(mut upstream), Some(error)) =
        (forwarder.0.take_stream(port), forwarder.0.take_error(port))
    else {
        return;
    };
    shared.announce(&pod);
    let error = async move {
        match error.await {
            Some(message) => message,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        message = error => {
            shared.report(&format!("error from pod {pod}: {}", message.trim()));
        }
        _ = generation.changed() => {}
    }
}

/// Opens a forward to the current pod now and then; re-creates a wedged forward.
async fn health(shared: Arc<Shared>) {
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(shared.tuning.health_interval).await;
        match probe(&shared).await {
            Ok(pod) => {
                failures = 0;
                lock(&shared.reported).clear();
                shared.announce(&pod);
            }
            Err(OpenError::NoPod(why)) => {
                failures = 0;
                shared.report(&why);
            }
            Err(OpenError::Failed(why)) => {
                failures += 1;
                shared.report(&why);
                if failures >= shared.tuning.wedged_after {
                    failures = 0;
                    (shared.sink)(&format!("{} is wedged; re-creating", shared.label));
                    lock(&shared.announced).clear();
                    lock(&shared.reported).clear();
                    shared.generation.send_modify(|g| *g += 1);
                }
            }
        }
    }
}

/// One health check: a fresh forward to the current pod that reaches the port (no
/// error from the pod within `health_grace`, and the tunnel stays up meanwhile).
async fn probe(shared: &Shared) -> Result<String, OpenError> {
    let (pod, port, mut forwarder) = shared.open().await?;
    let stream = forwarder.0.take_stream(port);
    let outcome = match forwarder.0.take_error(port) {
        Some(error) => match tokio::time::timeout(shared.tuning.health_grace, error).await {
            Err(_) => Ok(pod.clone()),
            Ok(Some(message)) => Err(OpenError::Failed(format!(
                "health check: error from pod {pod}: {}",
                message.trim()
            ))),
            Ok(None) => Err(OpenError::Failed(format!(
                "health check: the forward to pod {pod} closed at once"
            ))),
        },
        None => Err(OpenError::Failed("health check: no error channel".into())),
    };
    drop(stream);
    drop(forwarder);
    outcome
}

#[cfg(test)]
mod tests;
