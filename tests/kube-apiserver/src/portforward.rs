//! Port-forward over websocket: `GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=N[,M]`
//! upgraded with subprotocol `v4.channel.k8s.io` (what the kubelet's websocket
//! port-forward speaks).
//!
//! Framing as the kubelet does it: port `i` (in request order) uses channel `2i`
//! for data and `2i+1` for errors; the first frame the server sends on each of
//! the two channels is the port number as 2 bytes little-endian. Data frames
//! from the client on channel `2i` go to the port; bytes from the port come back
//! on `2i`. A failure to reach the port is one UTF-8 message on `2i+1`.
//!
//! A pod's container port reaches a real local address registered with
//! [`crate::ApiServer::expose_port`] (by pod name or by the name of a workload
//! owning the pod). The websocket closes when every port's connection has ended,
//! when the pod goes away, or abruptly on [`crate::ApiServer::break_port_forwards`].

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::server::{Body, Query, Target};
use crate::status::ApiError;
use crate::store::ObjKey;
use crate::Shared;

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}

pub fn handle(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    t: Target,
    q: Query,
) -> Result<Response<Body>, ApiError> {
    let key = crate::apply::target_key(&t)?;
    let mut ports = Vec::new();
    for v in q.all("ports").iter().chain(q.all("port").iter()) {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let n: u16 = p
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::bad_request(format!("invalid port value \"{p}\"")))?;
            ports.push(n);
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request("at least one port must be specified"));
    }
    if ports.len() > 127 {
        return Err(ApiError::bad_request("too many ports"));
    }
    let (targets, uid) = {
        let st = shared.lock();
        let pod = st
            .store
            .get(&key)
            .ok_or_else(|| ApiError::not_found(&t.rt, &key.name))?;
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        if phase != "Running" {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade connection: pod {} is not running (phase {phase})",
                key.name
            )));
        }
        let names = crate::controllers::owner_names(&st.store, pod);
        let targets: Vec<(u16, Option<SocketAddr>)> = ports
            .iter()
            .map(|p| {
                let addr = names.iter().rev().find_map(|n| {
                    st.ports
                        .get(&(key.namespace.clone(), n.clone(), *p))
                        .copied()
                });
                (*p, addr)
            })
            .collect();
        (targets, pod["metadata"]["uid"].clone())
    };
    let (resp, _protocol, on) = crate::ws::upgrade(&mut req, &["v4.channel.k8s.io"])?;
    let s2 = shared.clone();
    shared.spawn(async move {
        if let Some(ws) = crate::ws::accept(on).await {
            session(s2, ws, key, uid, targets).await;
        }
    });
    Ok(resp)
}

enum Out {
    Frame(Message),
    PortDone,
}

async fn session(
    shared: Arc<Shared>,
    ws: crate::ws::Ws,
    key: ObjKey,
    uid: Value,
    targets: Vec<(u16, Option<SocketAddr>)>,
) {
    let mut breaker = shared.breaker.subscribe();
    breaker.borrow_and_update();
    let mut changes = shared.changes.subscribe();
    let (mut sink, mut stream) = ws.split();
    for (i, (port, _)) in targets.iter().enumerate() {
        let ch = 2 * i as u8;
        if sink.send(frame(ch, &port.to_le_bytes())).await.is_err()
            || sink.send(frame(ch + 1, &port.to_le_bytes())).await.is_err()
        {
            return;
        }
    }
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    let mut writers: Vec<Option<mpsc::Sender<Option<Vec<u8>>>>> = Vec::new();
    let mut tasks = Vec::new();
    for (i, (port, addr)) in targets.iter().enumerate() {
        let ch = 2 * i as u8;
        let conn = match addr {
            Some(a) => tokio::net::TcpStream::connect(a)
                .await
                .map_err(|e| e.to_string()),
            None => Err("connect: connection refused".to_string()),
        };
        let tcp = match conn {
            Ok(t) => t,
            Err(e) => {
                let msg = format!(
                    "error forwarding port {port} to pod {}, uid {}: failed to connect to localhost:{port} inside namespace \"{}\", IPv4: dial tcp4 127.0.0.1:{port}: {e}",
                    key.name,
                    uid.as_str().unwrap_or(""),
                    key.namespace
                );
                let _ = out_tx.send(Out::Frame(frame(ch + 1, msg.as_bytes()))).await;
                let _ = out_tx.send(Out::PortDone).await;
                writers.push(None);
                continue;
            }
        };
        let (mut rd, mut wr) = tcp.into_split();
        let tx = out_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Out::Frame(frame(ch, &buf[..n]))).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Out::PortDone).await;
        }));
        let (wtx, mut wrx) = mpsc::channel::<Option<Vec<u8>>>(64);
        tasks.push(tokio::spawn(async move {
            while let Some(chunk) = wrx.recv().await {
                match chunk {
                    Some(b) => {
                        if wr.write_all(&b).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        let _ = wr.shutdown().await;
                        return;
                    }
                }
            }
            let _ = wr.shutdown().await;
        }));
        writers.push(Some(wtx));
    }
    drop(out_tx);
    let mut done = 0;
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(Out::Frame(m)) => if sink.send(m).await.is_err() { break },
                Some(Out::PortDone) => {
                    done += 1;
                    if done == targets.len() {
                        let _ = sink.send(Message::Close(None)).await;
                        break;
                    }
                }
                None => break,
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let i = (b[0] / 2) as usize;
                    if b[0] % 2 == 0 {
                        if let Some(Some(w)) = writers.get(i) {
                            let _ = w.send(Some(b[1..].to_vec())).await;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    for w in writers.iter().flatten() {
                        let _ = w.send(None).await;
                    }
                    break;
                }
                _ => {}
            },
            _ = breaker.changed() => {
                // Abrupt: drop the connection without a close frame.
                for t in &tasks { t.abort(); }
                return;
            }
            _ = changes.changed() => {
                let alive = shared.lock().store.get(&key).is_some_and(|p| p["metadata"]["uid"] == uid);
                if !alive {
                    for t in &tasks { t.abort(); }
                    return;
                }
            }
        }
    }
    let _ = sink.flush().await;
    // Give pending writes to the ports a moment before the tasks are dropped.
    drop(writers);
    for mut t in tasks {
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut t)
            .await
            .is_err()
        {
            t.abort();
        }
    }
}
