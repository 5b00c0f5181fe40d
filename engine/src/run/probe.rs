//! Readiness probes: HTTP GET, TCP connect, or a command, with Kubernetes-style
//! period, timeout and thresholds.

use std::path::Path;
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use loop_lang::model::{Cmd, Probe, ProbeAction};

/// Runs one check of `action`; `Err` says why it failed.
pub async fn check(action: &ProbeAction, timeout: Duration, cwd: &Path) -> Result<(), String> {
    let attempt = async {
        match action {
            ProbeAction::Http {
                scheme,
                host,
                port,
                path,
            } => {
                if scheme != "http" {
                    return Err(format!(
                        "{scheme} probes are not supported; use http or a tcp_socket_action"
                    ));
                }
                let uri: hyper::Uri = format!("http://{host}:{port}{path}")
                    .parse()
                    .map_err(|e| format!("bad probe URL: {e}"))?;
                let client: Client<_, Empty<Bytes>> =
                    Client::builder(TokioExecutor::new()).build_http();
                let response = client
                    .get(uri.clone())
                    .await
                    .map_err(|e| format!("GET {uri}: {}", root_cause(&e)))?;
                let status = response.status();
                if status.is_success() || status.is_redirection() {
                    Ok(())
                } else {
                    Err(format!("GET {uri} answered {status}"))
                }
            }
            ProbeAction::Tcp { host, port } => {
                tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map(drop)
                    .map_err(|e| format!("connect {host}:{port}: {e}"))
            }
            ProbeAction::Exec { command } => {
                let cmd = Cmd::Argv(command.clone());
                let argv = cmd.argv();
                let status = tokio::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .current_dir(cwd)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .status()
                    .await
                    .map_err(|e| format!("cannot run `{}`: {e}", argv[0]))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(crate::process::failed(&cmd, status))
                }
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {:?}", timeout)),
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Probes until `success_threshold` consecutive successes. After every
/// `failure_threshold` consecutive failures, `on_failing` is told why; the probe
/// keeps trying (the caller bounds it).
pub async fn wait_ready(probe: &Probe, cwd: &Path, on_failing: impl Fn(u32, &str)) {
    tokio::time::sleep(Duration::from_secs_f64(probe.initial_delay_secs)).await;
    let period = Duration::from_secs_f64(probe.period_secs.max(0.01));
    let timeout = Duration::from_secs_f64(probe.timeout_secs.max(0.01));
    let (mut successes, mut failures) = (0, 0);
    loop {
        match check(&probe.action, timeout, cwd).await {
            Ok(()) => {
                successes += 1;
                failures = 0;
                if successes >= probe.success_threshold.max(1) {
                    return;
                }
            }
            Err(reason) => {
                successes = 0;
                failures += 1;
                if failures % probe.failure_threshold.max(1) == 0 {
                    on_failing(failures, &reason);
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_and_http_checks_against_real_sockets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = ProbeAction::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert!(check(&tcp, Duration::from_secs(2), Path::new("."))
            .await
            .is_ok());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let status = if String::from_utf8_lossy(&buf[..n]).starts_with("GET /ok ") {
                    "200 OK"
                } else {
                    "503 Unavailable"
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        let http = |path: &str| ProbeAction::Http {
            scheme: "http".into(),
            host: "127.0.0.1".into(),
            port,
            path: path.into(),
        };
        assert_eq!(
            check(&http("/ok"), Duration::from_secs(2), Path::new(".")).await,
            Ok(())
        );
        let err = check(&http("/down"), Duration::from_secs(2), Path::new("."))
            .await
            .unwrap_err();
        assert!(err.contains("503"), "{err}");
    }

    #[tokio::test]
    async fn closed_port_and_failing_command_fail() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = check(
            &ProbeAction::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            Duration::from_secs(2),
            Path::new("."),
        )
        .await
        .unwrap_err();
        assert!(err.contains("connect"), "{err}");
        let exec = ProbeAction::Exec {
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        };
        let err = check(&exec, Duration::from_secs(2), Path::new("."))
            .await
            .unwrap_err();
        assert!(err.contains("exit code 3"), "{err}");
    }
}
