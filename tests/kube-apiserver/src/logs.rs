//! Pod logs: `GET /api/v1/namespaces/{ns}/pods/{name}/log` with `container`,
//! `follow`, `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`.
//!
//! Each container has an append-only buffer of timestamped lines, filled by
//! [`crate::ApiServer::append_log`]. A `follow` request streams new lines as
//! they are appended and ends when the pod is deleted (or marked for deletion).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::body::Bytes;
use hyper::Response;
use serde_json::Value;

use crate::server::{bytes_response, streaming_response, Body, Query, Target};
use crate::status::ApiError;
use crate::Shared;

/// One log line.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: SystemTime,
    pub text: String,
}

/// Log buffers by (namespace, pod, container).
#[derive(Default)]
pub struct Logs {
    buffers: HashMap<(String, String, String), Vec<LogLine>>,
}

impl Logs {
    pub fn append(&mut self, ns: &str, pod: &str, container: &str, line: &str) {
        self.buffers
            .entry((ns.to_string(), pod.to_string(), container.to_string()))
            .or_default()
            .push(LogLine {
                time: SystemTime::now(),
                text: line.trim_end_matches('\n').to_string(),
            });
    }

    pub fn lines(&self, ns: &str, pod: &str, container: &str) -> &[LogLine] {
        self.buffers
            .get(&(ns.to_string(), pod.to_string(), container.to_string()))
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }
}

/// Pick the container of a pod for logs/exec: the named one, or the only one.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// The `state.waiting.reason` of a container, if it is waiting.
pub fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == container)?["state"]["waiting"]["reason"]
        .as_str()
        .map(String::from)
}

#[derive(Clone, Copy)]
struct Options {
    timestamps: bool,
    since: Option<SystemTime>,
    tail: Option<usize>,
    limit: Option<usize>,
}

fn render(lines: &[LogLine], o: &Options, apply_tail: bool) -> Vec<u8> {
    let selected: Vec<&LogLine> = lines
        .iter()
        .filter(|l| o.since.is_none_or(|s| l.time >= s))
        .collect();
    let skip = match (apply_tail, o.tail) {
        (true, Some(n)) => selected.len().saturating_sub(n),
        _ => 0,
    };
    let mut out = Vec::new();
    for l in &selected[skip..] {
        if o.timestamps {
            out.extend_from_slice(
                humantime::format_rfc3339_nanos(l.time)
                    .to_string()
                    .as_bytes(),
            );
            out.push(b' ');
        }
        out.extend_from_slice(l.text.as_bytes());
        out.push(b'\n');
    }
    out
}

pub fn handle(shared: Arc<Shared>, t: Target, q: Query) -> Result<Response<Body>, ApiError> {
    let key = crate::apply::target_key(&t)?;
    let opts = Options {
        timestamps: q.flag("timestamps"),
        since: match (q.get("sinceSeconds"), q.get("sinceTime")) {
            (Some(s), _) => Some(
                SystemTime::now()
                    - Duration::from_secs(
                        s.parse()
                            .map_err(|_| ApiError::bad_request("invalid sinceSeconds"))?,
                    ),
            ),
            (None, Some(t)) => Some(
                humantime::parse_rfc3339_weak(t)
                    .map_err(|e| ApiError::bad_request(format!("invalid sinceTime: {e}")))?,
            ),
            _ => None,
        },
        tail: q.get("tailLines").and_then(|n| n.parse().ok()),
        limit: q.get("limitBytes").and_then(|n| n.parse().ok()),
    };
    let (container, uid, initial, seen) = {
        let st = shared.lock();
        let pod = st
            .store
            .get(&key)
            .ok_or_else(|| ApiError::not_found(&t.rt, &key.name))?;
        let container = pick_container(pod, q.get("container"))?;
        let lines = st.logs.lines(&key.namespace, &key.name, &container);
        if lines.is_empty() {
            if let Some(reason) = waiting_reason(pod, &container) {
                let why = if reason == "ImagePullBackOff" {
                    "trying and failing to pull image".to_string()
                } else {
                    reason
                };
                return Err(ApiError::bad_request(format!(
                    "container \"{container}\" in pod \"{}\" is waiting to start: {why}",
                    key.name
                )));
            }
        }
        let mut initial = render(lines, &opts, true);
        if let Some(l) = opts.limit {
            initial.truncate(l);
        }
        (
            container,
            pod["metadata"]["uid"].clone(),
            initial,
            lines.len(),
        )
    };
    if !q.flag("follow") {
        return Ok(bytes_response(200, "text/plain", initial));
    }
    let (tx, resp) = streaming_response("text/plain");
    let s2 = shared.clone();
    shared.spawn(async move {
        let shared = s2;
        let mut changes = shared.changes.subscribe();
        let mut seen = seen;
        let mut sent = initial.len();
        if !initial.is_empty() && tx.send(Bytes::from(initial)).await.is_err() {
            return;
        }
        loop {
            changes.borrow_and_update();
            let (chunk, alive) = {
                let st = shared.lock();
                let lines = st.logs.lines(&key.namespace, &key.name, &container);
                let chunk = render(
                    &lines[seen.min(lines.len())..],
                    &Options { tail: None, ..opts },
                    false,
                );
                seen = lines.len();
                let alive = st.store.get(&key).is_some_and(|p| {
                    p["metadata"]["uid"] == uid && p["metadata"]["deletionTimestamp"].is_null()
                });
                (chunk, alive)
            };
            let mut chunk = chunk;
            if let Some(l) = opts.limit {
                chunk.truncate(l.saturating_sub(sent));
            }
            sent += chunk.len();
            if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            if !alive || opts.limit.is_some_and(|l| sent >= l) {
                return;
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    });
    Ok(resp)
}
