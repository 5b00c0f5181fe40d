//! A client of a running session's API, for the CLI verbs (and editors and
//! agents through them): finds the session, sends the token, reads JSON or a
//! server-sent event stream.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use super::session_file::SessionFile;

/// A connection to one session.
pub struct Client {
    pub root: PathBuf,
    pub session: SessionFile,
    http: HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// An answer: status and body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("the session answered with invalid JSON: {e}"))
    }
}

impl Client {
    /// The session of `project`, or of the current folder or one above it.
    pub fn find(project: Option<&Path>) -> Result<Client, String> {
        let cwd =
            std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?;
        let (root, session) = SessionFile::find(project, &cwd)?;
        Ok(Client {
            root,
            session,
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let uri = format!("http://127.0.0.1:{}{path}", self.session.port);
        Request::builder()
            .method(method)
            .uri(uri)
            .header("host", format!("127.0.0.1:{}", self.session.port))
            .header("authorization", format!("Bearer {}", self.session.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())
    }

    /// Sends a request and reads the whole answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Answer, String> {
        let request = self.request(method, path, body)?;
        let response = self.http.request(request).await.map_err(|e| {
            format!(
                "cannot reach the session on port {}: {e}",
                self.session.port
            )
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the session's answer: {e}"))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// Follows a server-sent event stream, calling `on_event(kind, data)` for
    /// each event until the stream ends or `on_event` returns false.
    pub async fn follow(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> bool,
    ) -> Result<(), String> {
        let request = self.request(Method::GET, path, None)?;
        let response = self.http.request(request).await.map_err(|e| {
            format!(
                "cannot reach the session on port {}: {e}",
                self.session.port
            )
        })?;
        if !response.status().is_success() {
            return Err(format!("the session answered {}", response.status()));
        }
        let mut body = response.into_body();
        let mut buffer = String::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut kind = "message";
                let mut payload = String::new();
                for line in block.lines() {
                    if let Some(k) = line.strip_prefix("event: ") {
                        kind = k;
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        payload.push_str(d);
                    }
                }
                if !on_event(kind, &payload) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
