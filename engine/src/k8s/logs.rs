//! Following the logs of a workload: every container of its current pods, into one
//! stream, across pod replacements and reconnects, without printing a line twice.
//!
//! After every change of the workload's pods (their shared watch, see
//! [`super::pods`]), each (pod, container) not yet followed gets a follower that streams `log?follow=true&timestamps=true`. When a
//! stream ends or breaks while the pod still runs, the follower reconnects with a
//! capped backoff from the second of the last line it saw (`sinceTime` has
//! one-second precision), and drops the lines it already printed: those older than
//! the last timestamp, and those at the last timestamp whose text it printed there.
//! A follower stops when its pod is gone (or finished and fully read); followers of
//! pods that left the workload are stopped after a grace period that lets them read
//! the last lines of a terminating pod.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, LogParams};
use loop_lang::model::ObjectRef;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::apply::{error_text, Applier};
use super::pods::{PodWatch, Pods};

/// Where log lines and status lines go.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// How long [`workload_pods`] waits for the first list.
const LIST_WAIT: Duration = Duration::from_secs(30);
/// How often followers of pods that left are looked at when nothing changes.
const SWEEP: Duration = Duration::from_secs(10);
/// How long a follower of a pod that left the workload may keep reading.
const GRACE: Duration = Duration::from_secs(60);

/// A capped exponential backoff.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait now; the one after is twice as long, up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The current pods of a workload (a bare Pod is its own workload), once its
/// watch has listed them. A workload that does not exist (yet) has no pods, unless
/// extra selectors find some.
pub async fn workload_pods(
    applier: &Applier,
    workload: &ObjectRef,
    extra: &[BTreeMap<String, String>],
) -> Result<Vec<Pod>, String> {
    let watch = Pods::follow(applier, workload, extra).await?;
    let snapshot = watch
        .wait_for(LIST_WAIT, |s| {
            if let Some(e) = &s.error {
                return Some(Err(e.clone()));
            }
            s.synced.then(|| Ok(s.pods.clone()))
        })
        .await;
    snapshot.unwrap_or_else(|| Err(format!("the pods of {} were not listed within {}s", workload.name, LIST_WAIT.as_secs())))
}

/// Follows a workload's logs until stopped (or dropped).
pub struct LogFollower {
    task: JoinHandle<()>,
}

impl LogFollower {
    /// Stops following; every stream it opened is closed.
    pub fn stop(&self) {
        self.task.abort();
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Streams the logs of every container of the workload's current pods into `sink`,
/// one line per call (`[pod/container] text` when the workload has more than one pod
/// or container, else just `text`). Must be called inside a tokio runtime.
pub fn follow_logs(
    applier: Arc<Applier>,
    workload: ObjectRef,
    extra: Vec<BTreeMap<String, String>>,
    sink: Sink,
) -> LogFollower {
    LogFollower {
        task: tokio::spawn(watch_pods(applier, workload, extra, sink)),
    }
}

/// A spawned task, aborted when dropped.
struct Child(JoinHandle<()>);

impl Drop for Child {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Follower {
    task: Child,
    /// When the pod was last among the workload's pods.
    seen: Instant,
}

/// A container to follow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Target {
    pod: String,
    uid: String,
    container: String,
    init: bool,
}

fn targets(pod: &Pod) -> Vec<Target> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_else(|| name.clone());
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let init = spec.init_containers.iter().flatten().map(|c| (c, true));
    init.chain(spec.containers.iter().map(|c| (c, false)))
        .map(|(c, init)| Target {
            pod: name.clone(),
            uid: uid.clone(),
            container: c.name.clone(),
            init,
        })
        .collect()
}

async fn watch_pods(
    applier: Arc<Applier>,
    workload: ObjectRef,
    extra: Vec<BTreeMap<String, String>>,
    sink: Sink,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let watch = loop {
        match Pods::follow(&applier, &workload, &extra).await {
            Ok(watch) => break watch,
            Err(e) => {
                sink(&format!("cannot follow the pods of {}: {e}", workload.name));
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    };
    let api: Api<Pod> = Api::namespaced(applier.cluster.client.clone(), watch.namespace());
    let multi = Arc::new(AtomicBool::new(false));
    let mut followers: HashMap<Target, Follower> = HashMap::new();
    let mut last_error = String::new();
    let mut changes = watch.subscribe();
    loop {
        changes.borrow_and_update();
        let snapshot = watch.snapshot();
        match &snapshot.error {
            Some(e) if *e != last_error => {
                sink(&format!("cannot list the pods of {}: {e}", workload.name));
                last_error = e.clone();
            }
            Some(_) => {}
            None => last_error.clear(),
        }
        if snapshot.synced {
            let now = Instant::now();
            let current: Vec<Target> = snapshot.pods.iter().flat_map(targets).collect();
            multi.store(current.len() > 1, Ordering::Relaxed);
            for target in current {
                match followers.get_mut(&target) {
                    Some(f) => f.seen = now,
                    None => {
                        let task = tokio::spawn(follow_container(
                            api.clone(),
                            watch.clone(),
                            target.clone(),
                            sink.clone(),
                            multi.clone(),
                        ));
                        followers.insert(
                            target,
                            Follower {
                                task: Child(task),
                                seen: now,
                            },
                        );
                    }
                }
            }
            // A finished follower of a current pod stays, so that its pod's
            // logs are not printed again; one whose pod left is forgotten.
            followers.retain(|_, f| {
                f.seen == now || (!f.task.0.is_finished() && now - f.seen < GRACE)
            });
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(SWEEP) => {}
        }
    }
}

/// What a follower does after its stream ended.
enum Next {
    Reconnect,
    Stop,
}

async fn follow_container(
    api: Api<Pod>,
    watch: Arc<PodWatch>,
    target: Target,
    sink: Sink,
    multi: Arc<AtomicBool>,
) {
    let mut dedupe = Dedupe::default();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut last_error = String::new();
    loop {
        let params = LogParams {
            container: Some(target.container.clone()),
            follow: true,
            timestamps: true,
            since_time: dedupe.resume_from(),
            ..LogParams::default()
        };
        dedupe.reconnect();
        let mut clean = false;
        match api.log_stream(&target.pod, &params).await {
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                let mut raw = Vec::new();
                loop {
                    raw.clear();
                    match stream.read_until(b'\n', &mut raw).await {
                        Ok(0) => {
                            clean = true;
                            break;
                        }
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&raw);
                            let line = line.trim_end_matches(['\n', '\r']);
                            if let Some(text) = dedupe.accept(line) {
                                backoff.reset();
                                last_error.clear();
                                if multi.load(Ordering::Relaxed) {
                                    sink(&format!("[{}/{}] {text}", target.pod, target.container));
                                } else {
                                    sink(text);
                                }
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return,
            // 400: the container is waiting to start; the next try will do.
            Err(kube::Error::Api(status)) if status.code == 400 => {}
            Err(e) => {
                let e = error_text(&e);
                if e != last_error {
                    sink(&format!(
                        "cannot read the logs of {}/{}: {e}",
                        target.pod, target.container
                    ));
                    last_error = e;
                }
            }
        }
        if let Next::Stop = after_stream(&watch, &target, clean) {
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Whether to reconnect: not when the pod is gone or replaced, nor after a clean end
/// of the stream of a finished pod or a finished init container.
fn after_stream(watch: &PodWatch, target: &Target, clean: bool) -> Next {
    let pod = match watch.find(&target.pod) {
        Some(pod) => pod,
        None if watch.snapshot().synced => return Next::Stop,
        None => return Next::Reconnect,
    };
    if pod.metadata.uid.as_deref().is_some_and(|u| u != target.uid) {
        return Next::Stop;
    }
    if !clean {
        return Next::Reconnect;
    }
    let status = pod.status.unwrap_or_default();
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return Next::Stop;
    }
    if target.init {
        let done = status
            .init_container_statuses
            .iter()
            .flatten()
            .filter(|c| c.name == target.container)
            .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
            .any(|t| t.exit_code == 0);
        if done {
            return Next::Stop;
        }
    }
    Next::Reconnect
}

/// Splits `2024-01-02T03:04:05.123456789Z text` into its timestamp and text.
fn split_timestamp(line: &str) -> (Option<Timestamp>, &str) {
    let (head, text) = line.split_once(' ').unwrap_or((line, ""));
    match head.parse::<Timestamp>() {
        Ok(ts) => (Some(ts), text),
        Err(_) => (None, line),
    }
}

/// Remembers what one container's stream printed, to drop the lines a reconnect
/// sends again.
#[derive(Default, Debug)]
struct Dedupe {
    /// The timestamp of the last line printed.
    last: Option<Timestamp>,
    /// The texts printed at `last` (with repeats).
    at_last: Vec<String>,
    /// How many times each text came at `last` in the current stream.
    repeated: HashMap<String, usize>,
}

impl Dedupe {
    /// Where a new stream starts: the whole second of the last line printed (the
    /// API's `sinceTime` has one-second precision, and kube-rs rounds it).
    fn resume_from(&self) -> Option<Timestamp> {
        let last = self.last?;
        Some(Timestamp::from_second(last.as_second()).unwrap_or(last))
    }

    /// A new stream begins.
    fn reconnect(&mut self) {
        self.repeated.clear();
    }

    /// The text of a line to print, or `None` when it was printed already.
    fn accept<'a>(&mut self, line: &'a str) -> Option<&'a str> {
        let (ts, text) = split_timestamp(line);
        let Some(ts) = ts else {
            return Some(text);
        };
        match self.last {
            Some(last) if ts < last => None,
            Some(last) if ts == last => {
                let count = self.repeated.entry(text.to_owned()).or_default();
                *count += 1;
                let printed = self.at_last.iter().filter(|t| *t == text).count();
                if *count <= printed {
                    None
                } else {
                    self.at_last.push(text.to_owned());
                    Some(text)
                }
            }
            _ => {
                self.last = Some(ts);
                self.at_last = vec![text.to_owned()];
                self.repeated.clear();
                self.repeated.insert(text.to_owned(), 1);
                Some(text)
            }
        }
    }
}

/// Shared by the tests of the Kubernetes runtime that need the loopback API server.
#[cfg(test)]
pub(crate) mod testing {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use loop_lang::data::Data;
    use loop_lang::location::Location;
    use loop_lang::model::ObjectRef;
    use loop_test_apiserver::ApiServer;
    use tokio::net::TcpListener;
    use tokio::task::AbortHandle;

    use super::{workload_pods, Sink};
    use crate::k8s::{Applier, Cluster};

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
                        && crate::k8s::rollout::pod_problem(p).is_none()
                })
                .filter_map(|p| p.metadata.name.clone())
                .find(|n| !except.contains(&n.as_str()))
        })
        .await
    }

    /// A sink that records every line.
    pub fn recorder() -> (Sink, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let keep = lines.clone();
        let sink: Sink = Arc::new(move |line: &str| keep.lock().unwrap().push(line.to_owned()));
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
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use loop_test_apiserver::ApiServer;

    fn ts(s: &str) -> String {
        s.to_owned()
    }

    #[test]
    fn timestamps_are_split_off() {
        let (t, text) = split_timestamp("2024-01-02T03:04:05.123456789Z hello world");
        assert_eq!(
            t.unwrap(),
            "2024-01-02T03:04:05.123456789Z".parse().unwrap()
        );
        assert_eq!(text, "hello world");
        assert_eq!(split_timestamp("no stamp here"), (None, "no stamp here"));
        let (t, text) = split_timestamp("2024-01-02T03:04:05Z");
        assert!(t.is_some());
        assert_eq!(text, "");
    }

    #[test]
    fn a_reconnect_prints_only_new_lines() {
        let mut d = Dedupe::default();
        assert_eq!(d.resume_from(), None);
        let first = [
            ts("2024-01-02T03:04:05.1Z one"),
            ts("2024-01-02T03:04:05.2Z two"),
            ts("2024-01-02T03:04:05.2Z two"),
            ts("2024-01-02T03:04:05.2Z twin"),
        ];
        let printed: Vec<_> = first.iter().filter_map(|l| d.accept(l)).collect();
        assert_eq!(printed, ["one", "two", "two", "twin"]);
        assert_eq!(
            d.resume_from().unwrap(),
            "2024-01-02T03:04:05Z".parse().unwrap()
        );
        // The server sends the whole second again, then new lines, one of them a
        // third "two" at the same instant.
        d.reconnect();
        let second = [
            ts("2024-01-02T03:04:05.1Z one"),
            ts("2024-01-02T03:04:05.2Z two"),
            ts("2024-01-02T03:04:05.2Z two"),
            ts("2024-01-02T03:04:05.2Z twin"),
            ts("2024-01-02T03:04:05.2Z two"),
            ts("2024-01-02T03:04:06Z three"),
            ts("2024-01-02T03:04:06Z three"),
        ];
        let printed: Vec<_> = second.iter().filter_map(|l| d.accept(l)).collect();
        assert_eq!(printed, ["two", "three", "three"]);
        d.reconnect();
        let third = [
            ts("2024-01-02T03:04:06Z three"),
            ts("2024-01-02T03:04:06Z three"),
            ts("2024-01-02T03:04:07Z four"),
        ];
        let printed: Vec<_> = third.iter().filter_map(|l| d.accept(l)).collect();
        assert_eq!(printed, ["four"]);
        // Lines without a timestamp are never dropped.
        assert_eq!(d.accept("plain"), Some("plain"));
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }

    fn snapshot(lines: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
        lines.lock().unwrap().clone()
    }

    async fn wait_for(lines: &std::sync::Mutex<Vec<String>>, what: &str) -> Vec<String> {
        eventually(what, || async {
            let now = snapshot(lines);
            now.iter().any(|l| l.ends_with(what)).then_some(now)
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_reconnects_and_replaced_pods_without_repeating() {
        let server = ApiServer::start().await;
        let proxy = Proxy::start(&server).await;
        let applier = applier(&server, &proxy.url).await;
        let web = deployment("web", "web:v1");
        apply(&applier, &web).await;
        let first = running_pod(&applier, &web, &[]).await;

        let (sink, lines) = recorder();
        let follower = follow_logs(applier.clone(), web.clone(), Vec::new(), sink);
        for line in ["one", "two", "two", "three"] {
            server.append_log(&first, "app", line);
        }
        wait_for(&lines, "three").await;
        assert_eq!(snapshot(&lines), ["one", "two", "two", "three"]);

        // Break every connection, several times; lines appended meanwhile arrive,
        // and those sent again after each reconnect are not printed twice.
        proxy.cut();
        server.append_log(&first, "app", "four");
        wait_for(&lines, "four").await;
        proxy.cut();
        proxy.cut();
        server.append_log(&first, "app", "five");
        server.append_log(&first, "app", "five");
        wait_for(&lines, "five").await;
        proxy.cut();
        server.append_log(&first, "app", "six");
        wait_for(&lines, "six").await;
        assert_eq!(
            snapshot(&lines),
            ["one", "two", "two", "three", "four", "five", "five", "six"]
        );

        // The follower did reconnect, from the second of the last line seen.
        let resumed = server
            .requests()
            .iter()
            .filter(|r| r.contains(&format!("/pods/{first}/log?")) && r.contains("sinceTime="))
            .count();
        assert!(resumed >= 1, "{:?}", server.requests());

        // A changed template replaces the pod; the new pod's logs follow.
        apply(&applier, &deployment("web", "web:v2")).await;
        let second = running_pod(&applier, &web, &[&first]).await;
        server.append_log(&second, "app", "from the new pod");
        wait_for(&lines, "from the new pod").await;
        // Wait until the old pod is gone, then check nothing was repeated.
        eventually("the old pod to go", || async {
            let pods = workload_pods(&applier, &web, &[]).await.ok()?;
            pods.iter()
                .all(|p| p.metadata.name.as_deref() != Some(first.as_str()))
                .then_some(())
        })
        .await;
        server.append_log(&second, "app", "last");
        let all = wait_for(&lines, "last").await;
        let texts: Vec<&str> = all
            .iter()
            .map(|l| match l.strip_prefix('[') {
                Some(rest) => rest.split_once("] ").map_or(l.as_str(), |(_, t)| t),
                None => l.as_str(),
            })
            .collect();
        assert_eq!(
            texts,
            [
                "one",
                "two",
                "two",
                "three",
                "four",
                "five",
                "five",
                "six",
                "from the new pod",
                "last"
            ],
            "{all:?}"
        );
        follower.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_containers_are_prefixed() {
        let server = ApiServer::start().await;
        let applier = applier(&server, &server.url()).await;
        let pod = object(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: duo, labels: {app: duo}}\n\
             spec: {containers: [{name: a, image: 'a:1'}, {name: b, image: 'b:1'}]}\n",
        );
        apply(&applier, &pod).await;
        running_pod(&applier, &pod, &[]).await;
        let (sink, lines) = recorder();
        let _follower = follow_logs(applier.clone(), pod.clone(), Vec::new(), sink);
        server.append_log("duo", "a", "from a");
        server.append_log("duo", "b", "from b");
        wait_for(&lines, "from a").await;
        wait_for(&lines, "from b").await;
        let mut all = snapshot(&lines);
        all.sort();
        assert_eq!(all, ["[duo/a] from a", "[duo/b] from b"]);
    }
}
