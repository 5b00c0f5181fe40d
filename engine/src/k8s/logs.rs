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
use super::pods::PodWatch;
use crate::report::LineSink;

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
    let watch = applier.follow_pods(workload, extra).await?;
    let snapshot = watch
        .wait_for(LIST_WAIT, |s| {
            if let Some(e) = &s.error {
                return Some(Err(e.message.clone()));
            }
            s.synced.then(|| Ok(s.pods.clone()))
        })
        .await;
    snapshot.unwrap_or_else(|| {
        Err(format!(
            "the pods of {} were not listed within {}s",
            workload.name,
            LIST_WAIT.as_secs()
        ))
    })
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
    sink: LineSink,
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
    sink: LineSink,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let watch = loop {
        match applier.follow_pods(&workload, &extra).await {
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
            Some(e) if e.message != last_error => {
                sink(&format!("cannot list the pods of {}: {e}", workload.name));
                last_error = e.message.clone();
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
            followers
                .retain(|_, f| f.seen == now || (!f.task.0.is_finished() && now - f.seen < GRACE));
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
    sink: LineSink,
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

#[cfg(test)]
mod tests;
