use super::*;
use crate::k8s::testing::*;
use loop_test_apiserver::ApiServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP server on loopback that answers every read with `tag` + the bytes read.
async fn echo(tag: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let mut out = tag.as_bytes().to_vec();
                            out.extend_from_slice(&buf[..n]);
                            if socket.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A loopback address where nothing listens.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn forward(local_port: u16, container_port: u16) -> PortForward {
    PortForward {
        local_port,
        container_port,
        host: String::new(),
        name: None,
        service: None,
    }
}

/// Sends `message` through a new connection to `addr`; the reply, or `None` when
/// the connection closed first.
async fn exchange(addr: SocketAddr, message: &str, reply_len: usize) -> Option<String> {
    let mut socket = TcpStream::connect(addr).await.ok()?;
    socket.write_all(message.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; reply_len];
    match tokio::time::timeout(Duration::from_secs(20), socket.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&buf).into_owned()),
        _ => None,
    }
}

/// Retries [`exchange`] until the reply is `expected`.
async fn reaches(addr: SocketAddr, message: &str, expected: &str) {
    eventually(expected, || async {
        (exchange(addr, message, expected.len()).await.as_deref() == Some(expected)).then_some(())
    })
    .await
}

fn quick() -> Tuning {
    Tuning {
        health_interval: Duration::from_millis(300),
        wedged_after: 3,
        health_grace: Duration::from_millis(300),
        client_wait: Duration::from_secs(60),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        open_timeout: Duration::from_secs(20),
    }
}

#[test]
fn service_ports_map_to_numbered_and_named_container_ports() {
    let service = serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"ports": [
            {"port": 80, "targetPort": "http"},
            {"port": 81, "targetPort": 9000},
            {"port": 82},
            {"port": 83, "targetPort": "metrics"},
        ]},
    });
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-1"},
        "spec": {"containers": [{"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}]},
    }))
    .unwrap();
    assert_eq!(target_port(&service, 80, &pod), Ok(8080));
    assert_eq!(target_port(&service, 81, &pod), Ok(9000));
    assert_eq!(target_port(&service, 82, &pod), Ok(82));
    assert_eq!(
        target_port(&service, 83, &pod),
        Err("Service web port 83 targets the container port named \"metrics\", which pod web-1 does not declare".into())
    );
    assert_eq!(
        target_port(&service, 90, &pod),
        Err("Service web has no port 90 (its ports: 80, 81, 82, 83)".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_reconnects_follows_the_pod_and_releases_the_port() {
    let server = ApiServer::start().await;
    let applier = applier(&server, &server.url()).await;
    let web = deployment("web", "web:v1");
    apply(&applier, &web).await;
    let first = running_pod(&applier, &web, &[]).await;
    server.expose_port(&first, 80, echo("v1:").await);

    let (sink, lines) = recorder();
    let forwarder = PortForwarder::start_with(
        applier.clone(),
        web.clone(),
        Vec::new(),
        forward(0, 80),
        sink,
        Tuning::default(),
    )
    .await
    .unwrap();
    let addr = forwarder.local_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_eq!(exchange(addr, "ping", 7).await.as_deref(), Some("v1:ping"));

    // A live connection is cut when the forward breaks; the next one works.
    let mut live = TcpStream::connect(addr).await.unwrap();
    live.write_all(b"a").await.unwrap();
    let mut buf = [0u8; 4];
    within("echo on the live connection", live.read_exact(&mut buf))
        .await
        .unwrap();
    server.break_port_forwards();
    let mut rest = Vec::new();
    let n = within(
        "the broken connection to close",
        live.read_to_end(&mut rest),
    )
    .await
    .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(
        exchange(addr, "again", 8).await.as_deref(),
        Some("v1:again")
    );

    // A changed template replaces the pod; connections reach the new one.
    apply(&applier, &deployment("web", "web:v2")).await;
    let second = running_pod(&applier, &web, &[&first]).await;
    server.expose_port(&second, 80, echo("v2:").await);
    reaches(addr, "new", "v2:new").await;
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&format!("(pod {second})"))),
        "{:?}",
        lines.lock().unwrap()
    );

    // Stopping releases the port at once.
    forwarder.stop().await;
    let again = std::net::TcpListener::bind(addr);
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_forward_is_recreated() {
    let server = ApiServer::start().await;
    let applier = applier(&server, &server.url()).await;
    let web = deployment("web", "web:v1");
    apply(&applier, &web).await;
    running_pod(&applier, &web, &[]).await;
    // The pod's port leads nowhere: every forward fails.
    server.expose_port("web", 80, closed_port().await);

    let (sink, lines) = recorder();
    let forwarder = PortForwarder::start_with(
        applier.clone(),
        web.clone(),
        Vec::new(),
        forward(0, 80),
        sink,
        quick(),
    )
    .await
    .unwrap();
    let label = forwarder.label().to_owned();
    assert_eq!(
        label,
        format!("port-forward {} -> web:80", forwarder.local_addr().port())
    );
    eventually("the wedged forward to be noticed", || async {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| *l == format!("{label} is wedged; re-creating"))
            .then_some(())
    })
    .await;

    // Once the port answers, connections work again.
    server.expose_port("web", 80, echo("ok:").await);
    reaches(forwarder.local_addr(), "x", "ok:x").await;
    drop(forwarder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_waits_for_a_ready_pod_then_gives_up() {
    let server = ApiServer::start().await;
    let applier = applier(&server, &server.url()).await;
    let web = deployment("web", "web:v1");
    let (sink, lines) = recorder();
    let forwarder = PortForwarder::start_with(
        applier.clone(),
        web.clone(),
        Vec::new(),
        forward(0, 80),
        sink,
        Tuning {
            client_wait: Duration::from_secs(1),
            ..quick()
        },
    )
    .await
    .unwrap();
    // Nothing deployed: the connection is closed after client_wait.
    let mut socket = TcpStream::connect(forwarder.local_addr()).await.unwrap();
    let mut rest = Vec::new();
    let n = within(
        "the waiting connection to close",
        socket.read_to_end(&mut rest),
    )
    .await
    .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("waiting for a ready pod of web")),
        "{:?}",
        lines.lock().unwrap()
    );

    // Deployed later: a connection made while it starts gets through.
    server.expose_port("web", 80, echo("up:").await);
    apply(&applier, &web).await;
    reaches(forwarder.local_addr(), "y", "up:y").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_local_port_is_a_clear_error() {
    let server = ApiServer::start().await;
    let applier = applier(&server, &server.url()).await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (sink, _) = recorder();
    let err = PortForwarder::start(
        applier,
        deployment("web", "web:v1"),
        Vec::new(),
        forward(port, 80),
        sink,
    )
    .await
    .err()
    .expect("the bind fails");
    assert!(err.contains(&port.to_string()), "{err}");
    assert!(err.contains("already in use"), "{err}");
}
