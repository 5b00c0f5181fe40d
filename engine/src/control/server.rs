//! The session API's HTTP server: loopback only, every `/api/` request needs the
//! session token, requests for a foreign `Host` are refused (DNS rebinding), and
//! state-changing requests from a foreign `Origin` are refused (CSRF).
//!
//! Reads are served from the [`Board`]; actions go to the engine as
//! [`Request`]s and wait for its answer.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, StreamBody};
use hyper::body::Bytes;
use hyper::body::{Frame, Incoming};
use hyper::header;
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::board::{Board, Resume};
use super::http::{
    authorized, decode_segment, first, full, json, loopback_host, parse_query, same_origin, text,
    Body, Query,
};
use super::view::Event;
use crate::run::logs::Logs;

/// An action for the engine, with where to send its answer.
pub enum Request {
    Trigger(String, oneshot::Sender<Result<(), String>>),
    Enable(String, oneshot::Sender<Result<(), String>>),
    Disable(String, oneshot::Sender<Result<(), String>>),
    /// New arguments for `config.parse()`: re-evaluates.
    Args(Vec<String>, oneshot::Sender<Result<(), String>>),
    /// A press of a `v1alpha1.ui_button`, with the values of its inputs: runs
    /// its commands.
    Button(
        String,
        BTreeMap<String, serde_json::Value>,
        oneshot::Sender<Result<(), String>>,
    ),
}

/// What the server needs.
#[derive(Clone)]
pub struct Context {
    pub board: Arc<Board>,
    pub logs: Arc<Logs>,
    pub requests: mpsc::Sender<Request>,
    pub token: Arc<str>,
    pub port: u16,
    /// How long after a `wait --for settled` call file events may still arrive.
    pub settle: Duration,
}

/// Binds 127.0.0.1:`port` (`0`: any free port; a taken port falls back to a
/// free one when `fallback`), and returns the listener and its port.
pub async fn bind(port: u16, fallback: bool) -> std::io::Result<(TcpListener, u16)> {
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) if fallback && e.kind() == std::io::ErrorKind::AddrInUse => {
            TcpListener::bind(("127.0.0.1", 0)).await?
        }
        Err(e) => return Err(e),
    };
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Serves until the task is aborted.
pub async fn serve(listener: TcpListener, ctx: Context) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if !peer.ip().is_loopback() {
            continue;
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(req, &ctx, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(req: HttpRequest<Incoming>, ctx: &Context, _peer: SocketAddr) -> Response<Body> {
    if !loopback_host(req.headers().get(header::HOST), ctx.port) {
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: the Host header must name 127.0.0.1, localhost or [::1] with this port",
        );
    }
    let state_changing = req.method() != Method::GET && req.method() != Method::HEAD;
    if state_changing && !same_origin(req.headers().get(header::ORIGIN), ctx.port) {
        return text(StatusCode::FORBIDDEN, "forbidden: cross-origin request");
    }
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query().unwrap_or(""));
    if path == "/" || path == "/index.html" {
        return super::dashboard::page(&req, &query, &ctx.token);
    }
    if let Some(asset) = path.strip_prefix("/assets/") {
        return super::dashboard::asset(asset);
    }
    if !path.starts_with("/api/") {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    if !authorized(&req, &ctx.token) {
        return text(
            StatusCode::UNAUTHORIZED,
            "unauthorized: send the token from .loop/session.json (Authorization: Bearer TOKEN)",
        );
    }
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/api/openapi.json") => Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(super::OPENAPI))
            .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "")),
        (Method::GET, "/api/snapshot") => json(StatusCode::OK, &ctx.board.snapshot()),
        (Method::GET, "/api/events") => {
            // A reconnecting EventSource sends the last id it saw as a header.
            let since = first(&query, "since")
                .or_else(|| req.headers().get("last-event-id")?.to_str().ok())
                .and_then(|s| s.trim().parse().ok());
            events(ctx, since)
        }
        (Method::GET, "/api/logs") => logs(ctx, &query),
        (Method::GET, "/api/wait") => wait(ctx, &query).await,
        (Method::POST, "/api/args") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return text(StatusCode::BAD_REQUEST, "cannot read the body"),
            };
            #[derive(serde::Deserialize)]
            struct Args {
                args: Vec<String>,
            }
            match serde_json::from_slice::<Args>(&body) {
                Ok(args) => act(ctx, |reply| Request::Args(args.args, reply)).await,
                Err(e) => text(
                    StatusCode::BAD_REQUEST,
                    &format!("expected {{\"args\": [\"...\"]}}: {e}"),
                ),
            }
        }
        (Method::POST, p) if p.starts_with("/api/buttons/") => {
            let name = decode_segment(&p["/api/buttons/".len()..]);
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return text(StatusCode::BAD_REQUEST, "cannot read the body"),
            };
            #[derive(serde::Deserialize)]
            struct Press {
                #[serde(default)]
                inputs: BTreeMap<String, serde_json::Value>,
            }
            let press = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(Press {
                    inputs: BTreeMap::new(),
                })
            } else {
                serde_json::from_slice::<Press>(&body)
            };
            match press {
                Ok(press) => act(ctx, |r| Request::Button(name, press.inputs, r)).await,
                Err(e) => text(
                    StatusCode::BAD_REQUEST,
                    &format!("expected no body or {{\"inputs\": {{\"NAME\": value}}}}: {e}"),
                ),
            }
        }
        (Method::POST, p) if p.starts_with("/api/resources/") => {
            let rest = &p["/api/resources/".len()..];
            let Some((name, verb)) = rest.rsplit_once('/') else {
                return text(StatusCode::NOT_FOUND, "not found");
            };
            let name = decode_segment(name);
            match verb {
                "trigger" => act(ctx, |r| Request::Trigger(name, r)).await,
                "enable" => act(ctx, |r| Request::Enable(name, r)).await,
                "disable" => act(ctx, |r| Request::Disable(name, r)).await,
                _ => text(
                    StatusCode::NOT_FOUND,
                    "not found: the actions are trigger, enable and disable",
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found: see /api/openapi.json"),
    }
}

/// Sends an action to the engine and answers with its result.
async fn act(
    ctx: &Context,
    request: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Request,
) -> Response<Body> {
    let (tx, rx) = oneshot::channel();
    if ctx.requests.send(request(tx)).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "the session is stopping");
    }
    match rx.await {
        Ok(Ok(())) => json(StatusCode::OK, &serde_json::json!({"ok": true})),
        Ok(Err(e)) if e.starts_with("no resource") || e.starts_with("no button") => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"ok": false, "error": e}),
        ),
        Ok(Err(e)) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({"ok": false, "error": e}),
        ),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "the session is stopping"),
    }
}

/// The event stream (server-sent events): what changed after `since`, then live.
fn events(ctx: &Context, since: Option<u64>) -> Response<Body> {
    let (resume, mut live) = ctx.board.follow(since);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let board = ctx.board.clone();
    tokio::spawn(async move {
        let mut last = match resume {
            Resume::Events(events) => {
                let mut last = since.unwrap_or(0);
                for e in events {
                    last = e.seq();
                    if tx.send(sse_event(&e)).await.is_err() {
                        return;
                    }
                }
                last
            }
            Resume::Snapshot(snapshot) => {
                let seq = snapshot.seq;
                if tx.send(sse("resync", Some(seq), &snapshot)).await.is_err() {
                    return;
                }
                seq
            }
        };
        loop {
            match live.recv().await {
                Ok(e) if e.seq() <= last => {}
                Ok(e) => {
                    last = e.seq();
                    if tx.send(sse_event(&e)).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let snapshot = board.snapshot();
                    last = snapshot.seq;
                    if tx.send(sse("resync", Some(last), &snapshot)).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    stream_response(rx)
}

fn sse_event(e: &Event) -> Bytes {
    let kind = match e {
        Event::Resource { .. } => "resource",
        Event::Removed { .. } => "removed",
        Event::Session { .. } => "session",
    };
    sse(kind, Some(e.seq()), e)
}

fn sse(kind: &str, id: Option<u64>, data: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_default();
    let id = id.map(|i| format!("id: {i}\n")).unwrap_or_default();
    Bytes::from(format!("{id}event: {kind}\ndata: {data}\n\n"))
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, ""))
}

/// Log lines: `resource` (repeatable; all when absent), `since` (a sequence
/// number), `limit` (default 1,000), `follow=1` for a live stream.
fn logs(ctx: &Context, query: &Query) -> Response<Body> {
    let resources = query.get("resource").cloned().unwrap_or_default();
    let since: u64 = first(query, "since")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let limit: usize = first(query, "limit")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let follow = first(query, "follow").is_some_and(|f| f == "1" || f == "true");
    if !follow {
        return json(StatusCode::OK, &ctx.logs.lines(&resources, since, limit));
    }
    let mut live = ctx.logs.subscribe();
    let backlog = ctx.logs.lines(&resources, since, limit);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let logs = ctx.logs.clone();
    tokio::spawn(async move {
        let mut last = since;
        for line in backlog {
            last = line.seq;
            if tx.send(sse("line", Some(line.seq), &*line)).await.is_err() {
                return;
            }
        }
        loop {
            match live.recv().await {
                Ok(line) => {
                    if line.seq <= last
                        || !(resources.is_empty() || resources.contains(&line.resource))
                    {
                        continue;
                    }
                    last = line.seq;
                    if tx.send(sse("line", Some(line.seq), &*line)).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Catch up from the ring; what it no longer holds is lost, and said so.
                    let missed = logs.lines(&resources, last, usize::MAX);
                    let gap = missed.first().is_some_and(|l| l.seq > last + 1);
                    if gap
                        && tx
                            .send(sse("gap", None, &serde_json::json!({"after": last})))
                            .await
                            .is_err()
                    {
                        return;
                    }
                    for line in missed {
                        last = line.seq;
                        if tx.send(sse("line", Some(line.seq), &*line)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    stream_response(rx)
}

/// Waits until the named resources (all when none) are ready (`for=ready`), or
/// until everything caused by changes made before the call has finished and
/// nothing is queued (`for=settled`); `timeout_ms` bounds the wait.
async fn wait(ctx: &Context, query: &Query) -> Response<Body> {
    let names = query.get("resource").cloned().unwrap_or_default();
    let settled = first(query, "for") == Some("settled");
    let timeout = Duration::from_millis(
        first(query, "timeout_ms")
            .and_then(|t| t.parse().ok())
            .unwrap_or(600_000),
    );
    let called = super::view::unix_ms(SystemTime::now());
    let start = Instant::now();
    for name in &names {
        if ctx.board.resource(name).is_none() {
            return json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"ok": false, "error": format!("no resource named `{name}`")}),
            );
        }
    }
    loop {
        let snapshot = ctx.board.snapshot();
        let chosen: Vec<_> = snapshot
            .resources
            .iter()
            .filter(|r| {
                if names.is_empty() {
                    r.enabled && r.auto_init
                } else {
                    names.contains(&r.name)
                }
            })
            .collect();
        let done = if settled {
            start.elapsed() >= ctx.settle && ctx.board.is_quiet()
        } else {
            chosen
                .iter()
                .all(|r| (r.phase == "ready" || r.phase == "succeeded") && !r.queued)
        };
        let timed_out = start.elapsed() >= timeout;
        if done || timed_out {
            let ran: Vec<&str> = chosen
                .iter()
                .filter(|r| {
                    r.last_run
                        .as_ref()
                        .is_some_and(|run| run.start_ms >= called)
                })
                .map(|r| r.name.as_str())
                .collect();
            let failed: Vec<serde_json::Value> = chosen
                .iter()
                .filter(|r| r.phase == "failed")
                .map(|r| {
                    serde_json::json!({
                        "name": r.name,
                        "error": r.last_error,
                        "last_lines": ctx.logs.tail(&r.name, 20),
                    })
                })
                .collect();
            let status = if done {
                StatusCode::OK
            } else {
                StatusCode::REQUEST_TIMEOUT
            };
            return json(
                status,
                &serde_json::json!({"ok": done && failed.is_empty(), "timed_out": !done, "ran": ran, "failed": failed}),
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
