//! Exec over websocket: `GET /api/v1/namespaces/{ns}/pods/{name}/exec?command=..`
//! upgraded with subprotocol `v5.channel.k8s.io` (preferred) or `v4.channel.k8s.io`.
//!
//! Channel framing: every binary message starts with a channel byte — 0 stdin,
//! 1 stdout, 2 stderr, 3 error/status (one `Status` JSON when the command ends),
//! 4 resize (ignored); with v5, `[255, 0]` from the client closes stdin.
//!
//! The container's filesystem is a real folder ([`crate::ApiServer::container_dir`])
//! and the command runs as a real local process:
//!
//! - **Path rewrite rule**: every argument (after the program) that starts with
//!   `/` is rewritten to `<container_dir>` + the argument (`/app/x` →
//!   `<container_dir>/app/x`, `/` → `<container_dir>/`); an option of the form
//!   `--opt=/path` gets its value rewritten the same way. Nothing else is
//!   rewritten (in particular not paths inside `sh -c` scripts).
//! - The program: an absolute program path that exists under the container folder
//!   is run from there; otherwise its file name is looked up on the host `PATH`
//!   (`/bin/sh` → `sh`).
//! - Working directory: the container's `workingDir` under the container folder if
//!   that folder exists, else the container folder itself. Literal `env` values of
//!   the container spec are set.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::logs::pick_container;
use crate::server::{Body, Query, Target};
use crate::status::ApiError;
use crate::Shared;

/// Apply the path rewrite rule to one argument.
pub fn rewrite_arg(root: &Path, arg: &str) -> String {
    if let Some(rel) = arg.strip_prefix('/') {
        return format!("{}/{rel}", root.display());
    }
    if arg.starts_with('-') {
        if let Some((opt, val)) = arg.split_once('=') {
            if let Some(rel) = val.strip_prefix('/') {
                return format!("{opt}={}/{rel}", root.display());
            }
        }
    }
    arg.to_string()
}

/// The program to run for `command[0]`.
pub fn resolve_program(root: &Path, program: &str) -> PathBuf {
    match program.strip_prefix('/') {
        Some(rel) => {
            let inside = root.join(rel);
            if inside.is_file() {
                inside
            } else {
                PathBuf::from(Path::new(program).file_name().unwrap_or_default())
            }
        }
        None => PathBuf::from(program),
    }
}

fn exit_status(command: &[String], code: Option<i32>) -> Value {
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        code => {
            let code = code.unwrap_or(137);
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
        }
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}

struct Session {
    command: Vec<String>,
    dir: PathBuf,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

pub fn handle(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    t: Target,
    q: Query,
) -> Result<Response<Body>, ApiError> {
    let key = crate::apply::target_key(&t)?;
    let command = q.all("command");
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let (stdin, stdout, stderr, tty) = (
        q.flag("stdin"),
        q.flag("stdout"),
        q.flag("stderr"),
        q.flag("tty"),
    );
    if !stdin && !stdout && !stderr {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let (container, spec) = {
        let st = shared.lock();
        let pod = st
            .store
            .get(&key)
            .ok_or_else(|| ApiError::not_found(&t.rt, &key.name))?;
        let container = pick_container(pod, q.get("container"))?;
        let running = pod["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == container.as_str() && c["state"]["running"].is_object());
        if !running {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade connection: container not found (\"{container}\")"
            )));
        }
        let spec = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == container.as_str())
            .cloned()
            .unwrap_or_default();
        (container, spec)
    };
    let (resp, protocol, on) =
        crate::ws::upgrade(&mut req, &["v5.channel.k8s.io", "v4.channel.k8s.io"])?;
    let _ = protocol;
    let dir = shared.container_dir(&key.namespace, &key.name, &container);
    let cwd = spec["workingDir"]
        .as_str()
        .map(|w| PathBuf::from(rewrite_arg(&dir, w)))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| dir.clone());
    let env = spec["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let session = Session {
        command,
        dir,
        cwd,
        env,
        stdin,
        stdout,
        stderr,
        tty,
    };
    shared.spawn(async move {
        if let Some(ws) = crate::ws::accept(on).await {
            run(ws, session).await;
        }
    });
    Ok(resp)
}

async fn pump(
    mut r: impl tokio::io::AsyncRead + Unpin,
    channel: u8,
    send: bool,
    tx: mpsc::Sender<Message>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if send && tx.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn run(ws: crate::ws::Ws, s: Session) {
    let (mut sink, mut stream) = ws.split();
    let program = resolve_program(&s.dir, &s.command[0]);
    let args: Vec<String> = s.command[1..]
        .iter()
        .map(|a| rewrite_arg(&s.dir, a))
        .collect();
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&args)
        .current_dir(&s.cwd)
        .envs(s.env.iter().map(|(k, v)| (k, v)))
        .stdin(if s.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": executable file not found in $PATH: unknown",
                    s.command[0]
                )
            } else {
                format!("OCI runtime exec failed: exec failed: unable to start container process: {e}: unknown")
            };
            let status = json!({"metadata": {}, "status": "Failure", "message": msg, "reason": "InternalError",
                                "details": {"causes": [{"message": msg}]}, "code": 500});
            let _ = sink.send(frame(3, status.to_string().as_bytes())).await;
            let _ = sink.send(Message::Close(None)).await;
            return;
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    let stdout = tokio::spawn(pump(
        child.stdout.take().expect("piped"),
        1,
        s.stdout || s.tty,
        out_tx.clone(),
    ));
    let stderr = tokio::spawn(pump(
        child.stderr.take().expect("piped"),
        if s.tty { 1 } else { 2 },
        s.stderr || s.tty,
        out_tx,
    ));
    // Client → stdin. `None` closes stdin.
    let (in_tx, mut in_rx) = mpsc::channel::<Option<Vec<u8>>>(16);
    let mut child_stdin = child.stdin.take();
    let stdin_task = tokio::spawn(async move {
        while let Some(chunk) = in_rx.recv().await {
            let Some(b) = chunk else {
                child_stdin = None;
                continue;
            };
            let failed = match child_stdin.as_mut() {
                Some(w) => w.write_all(&b).await.is_err(),
                None => false,
            };
            if failed {
                child_stdin = None;
            }
        }
    });
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(b) if !b.is_empty() => match b[0] {
                    0 => {
                        let _ = in_tx.send(Some(b[1..].to_vec())).await;
                    }
                    255 if b.get(1) == Some(&0) => {
                        let _ = in_tx.send(None).await;
                    }
                    _ => {}
                },
                Message::Close(_) => {
                    let _ = in_tx.send(None).await;
                    break;
                }
                _ => {}
            }
        }
    });
    while let Some(m) = out_rx.recv().await {
        if sink.send(m).await.is_err() {
            reader.abort();
            stdin_task.abort();
            return;
        }
    }
    let _ = (stdout.await, stderr.await);
    let code = child.wait().await.ok().and_then(|st| {
        use std::os::unix::process::ExitStatusExt;
        st.code().or(st.signal().map(|s| 128 + s))
    });
    let status = exit_status(&s.command, code);
    let _ = sink.send(frame(3, status.to_string().as_bytes())).await;
    let _ = sink.send(Message::Close(None)).await;
    let _ = sink.flush().await;
    stdin_task.abort();
    // Let the client answer the close handshake, briefly.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rewrite_rule() {
        let root = Path::new("/tmp/c");
        assert_eq!(rewrite_arg(root, "/app/x"), "/tmp/c/app/x");
        assert_eq!(rewrite_arg(root, "/"), "/tmp/c/");
        assert_eq!(
            rewrite_arg(root, "--directory=/app"),
            "--directory=/tmp/c/app"
        );
        assert_eq!(rewrite_arg(root, "-rf"), "-rf");
        assert_eq!(rewrite_arg(root, "relative/path"), "relative/path");
        assert_eq!(rewrite_arg(root, "echo /app"), "echo /app");
        assert_eq!(resolve_program(root, "/bin/sh"), PathBuf::from("sh"));
        assert_eq!(resolve_program(root, "tar"), PathBuf::from("tar"));
    }

    #[test]
    fn exit_status_like_the_kubelet() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(exit_status(&cmd, Some(0))["status"], "Success");
        let s = exit_status(&cmd, Some(3));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(
            s["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
    }
}
