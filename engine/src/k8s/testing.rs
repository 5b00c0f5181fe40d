//! Shared by the tests of the Kubernetes runtime that need the loopback API server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loop_lang::data::Data;
use loop_lang::location::Location;
use loop_lang::model::ObjectRef;
use loop_test_apiserver::ApiServer;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use super::logs::workload_pods;
use crate::k8s::{Applier, Cluster};
use crate::report::LineSink;

/// Every wait is bounded by this; nothing asserts on timing.
pub const WAIT: Duration = Duration::from_secs(90);

/// Runs `f` to completion or panics after [`WAIT`], naming `what`.
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Polls `check` until it returns `Some`, or panics after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// An applier talking to `url` (the API server or a proxy in front of it).
pub async fn applier(server: &ApiServer, url: &str) -> Arc<Applier> {
    let yaml = server.kubeconfig("loop-test").replace(&server.url(), url);
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    Arc::new(Applier::new(Cluster {
        client,
        context: "loop-test".into(),
        server: url.into(),
        namespace: "default".into(),
    }))
}

/// The object declared by `yaml`.
pub fn object(yaml: &str) -> ObjectRef {
    let body = Data::from_yaml(yaml).expect("yaml");
    let json = serde_json::to_value(&body).expect("json");
    ObjectRef {
        api_version: json["apiVersion"].as_str().unwrap().into(),
        kind: json["kind"].as_str().unwrap().into(),
        name: json["metadata"]["name"].as_str().unwrap().into(),
        namespace: None,
        defined_at: Location::default(),
        body,
    }
}

/// A Deployment `name` with one replica of one container `app` running `image`.
pub fn deployment(name: &str, image: &str) -> ObjectRef {
    object(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\n\
         spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  \
         template:\n    metadata: {{labels: {{app: {name}}}}}\n    \
         spec: {{containers: [{{name: app, image: '{image}', ports: [{{containerPort: 80}}]}}]}}\n"
    ))
}

pub async fn apply(applier: &Applier, object: &ObjectRef) {
    applier
        .apply(std::slice::from_ref(object), &object.name, "loop-test")
        .await
        .expect("apply");
}

/// The name of a Running pod of `workload` other than those in `except`.
pub async fn running_pod(applier: &Applier, workload: &ObjectRef, except: &[&str]) -> String {
    eventually("a running pod", || async {
        let pods = workload_pods(applier, workload, &[]).await.ok()?;
        pods.iter()
            .filter(|p| {
                p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    && crate::k8s::pods::pod_problem(p).is_none()
            })
            .filter_map(|p| p.metadata.name.clone())
            .find(|n| !except.contains(&n.as_str()))
    })
    .await
}

/// A sink that records every line.
pub fn recorder() -> (LineSink, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let keep = lines.clone();
    let sink: LineSink = Arc::new(move |line: &str| keep.lock().unwrap().push(line.to_owned()));
    (sink, lines)
}

/// A TCP proxy in front of the API server whose connections can be cut, as a
/// network failure would.
pub struct Proxy {
    pub url: String,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    pub async fn start(server: &ApiServer) -> Proxy {
        let upstream: SocketAddr = server
            .url()
            .trim_start_matches("http://")
            .parse()
            .expect("server address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let keep = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                    }
                });
                let mut conns = keep.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(task.abort_handle());
            }
        })
        .abort_handle();
        Proxy { url, conns, accept }
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
