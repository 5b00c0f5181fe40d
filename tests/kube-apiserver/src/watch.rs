//! LIST and WATCH.
//!
//! A watch is a chunked `application/json` response with one JSON event per
//! line: `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}`, as
//! the API server frames it. It starts after `resourceVersion` (or, with
//! `resourceVersion` unset/"0" or `sendInitialEvents=true`, with synthetic ADDED
//! events for the current objects), streams changes until `timeoutSeconds`,
//! sends BOOKMARKs when `allowWatchBookmarks=true`, and applies label/field
//! selectors to both the old and new state of an object, so an object that stops
//! matching is reported DELETED and one that starts matching ADDED.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::Response;
use serde_json::{json, Value};

use crate::server::{streaming_response, Body, Query, Target};
use crate::status::ApiError;
use crate::store::{EventType, FieldSelector, LabelSelector, Store};
use crate::Shared;

/// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

struct Filter {
    group: String,
    plural: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn new(t: &Target, q: &Query) -> Result<Filter, ApiError> {
        Ok(Filter {
            group: t.rt.group.clone(),
            plural: t.rt.plural.clone(),
            namespace: t.namespace.clone(),
            labels: LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
                .map_err(ApiError::bad_request)?,
            fields: FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
                .map_err(ApiError::bad_request)?,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn current<'a>(&'a self, store: &'a Store) -> impl Iterator<Item = &'a Value> + 'a {
        store
            .list(&self.group, &self.plural, self.namespace.as_deref())
            .filter(|o| self.matches(o))
    }
}

/// LIST: `{Kind}List` with the current resourceVersion. Built-in types' items carry no
/// apiVersion/kind (as the real server writes them); custom resources' items do.
pub fn list(shared: &Shared, t: &Target, q: &Query) -> Result<Value, ApiError> {
    if t.rt.namespaced && t.namespace.is_none() && t.name.is_some() {
        return Err(ApiError::no_such_resource());
    }
    let f = Filter::new(t, q)?;
    let st = shared.lock();
    let builtin = t.rt.is_builtin();
    let items: Vec<Value> = f
        .current(&st.store)
        .map(|o| {
            let mut o = o.clone();
            if builtin {
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
            }
            o
        })
        .collect();
    Ok(json!({
        "kind": format!("{}List", t.rt.kind),
        "apiVersion": t.rt.api_version(),
        "metadata": {"resourceVersion": st.store.rv().to_string()},
        "items": items,
    }))
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(t: &Target, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": t.rt.kind, "apiVersion": t.rt.api_version(), "metadata": meta}),
    )
}

/// WATCH (`?watch=1` / `?watch=true`).
pub fn watch(shared: Arc<Shared>, t: Target, q: Query) -> Result<Response<Body>, ApiError> {
    let f = Filter::new(&t, &q)?;
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.flag("sendInitialEvents");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let rv_param = q.get("resourceVersion").unwrap_or("").to_string();
    let start: Option<u64> = match rv_param.as_str() {
        "" | "0" => None,
        s => Some(s.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: \"{s}\": must be a valid integer"
            ))
        })?),
    };
    let (tx, resp) = streaming_response("application/json");
    let mut changes = shared.changes.subscribe();
    let s2 = shared.clone();
    shared.spawn(async move {
        let shared = s2;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out: Vec<Bytes> = Vec::new();
        let mut cursor = {
            let st = shared.lock();
            match start {
                Some(rv) if !send_initial => rv,
                _ => {
                    for o in f.current(&st.store) {
                        out.push(line("ADDED", o));
                    }
                    if send_initial {
                        out.push(bookmark(&t, st.store.rv(), true));
                    }
                    st.store.rv()
                }
            }
        };
        let mut next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
        loop {
            for b in out.drain(..) {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
            changes.borrow_and_update();
            {
                let st = shared.lock();
                for e in st.store.events_after(cursor) {
                    cursor = e.rv;
                    let k = &e.key;
                    if k.group != f.group
                        || k.plural != f.plural
                        || f.namespace.as_ref().is_some_and(|n| *n != k.namespace)
                    {
                        continue;
                    }
                    let was =
                        e.old.as_ref().is_some_and(|o| f.matches(o)) && e.kind != EventType::Added;
                    let is = f.matches(&e.object);
                    let kind = match (e.kind, was, is) {
                        (EventType::Deleted, true, _) => "DELETED",
                        (EventType::Deleted, false, _) => continue,
                        (_, false, true) => "ADDED",
                        (_, true, true) => "MODIFIED",
                        (_, true, false) => "DELETED",
                        (_, false, false) => continue,
                    };
                    out.push(line(kind, &e.object));
                }
                cursor = cursor.max(st.store.rv());
            }
            if !out.is_empty() {
                continue;
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tokio::time::sleep_until(next_bookmark), if bookmarks => {
                    next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                    out.push(bookmark(&t, cursor, false));
                }
                _ = tx.closed() => return,
            }
        }
    });
    Ok(resp)
}
