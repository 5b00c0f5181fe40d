//! The control plane: `loop run` serves its state and takes actions over HTTP on
//! loopback (the session API), for the CLI verbs (`loop status`, `trigger`,
//! `wait`, ...), the browser dashboard, editors and agents.
//!
//! The engine writes every resource's view to the [`board::Board`] after each
//! event; the [`server`] reads it and forwards actions to the engine as
//! [`server::Request`]s. `.loop/session.json` tells clients where to connect.

pub mod board;
pub mod client;
mod dashboard;
mod http;
pub mod server;
pub mod session_file;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use self::board::Board;
use self::server::{Context, Request};
use self::session_file::SessionFile;
use crate::run::logs::Logs;

/// The OpenAPI document of the session API (served at `/api/openapi.json`).
pub const OPENAPI: &str = include_str!("control/openapi.json");

/// The port `loop run` tries first (Tilt's is 10350).
pub const DEFAULT_PORT: u16 = 10360;

/// A running control plane.
pub struct Control {
    pub board: Arc<Board>,
    /// The engine takes this to receive the actions.
    pub requests: Option<mpsc::Receiver<Request>>,
    pub port: u16,
    pub token: String,
    root: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Control {
    /// Binds the port (`DEFAULT_PORT` falls back to a free one when taken; any
    /// other port must be free), starts serving and writes `.loop/session.json`.
    pub async fn start(
        root: &Path,
        port: u16,
        board: Arc<Board>,
        logs: Arc<Logs>,
        settle: Duration,
    ) -> Result<Control, String> {
        let (listener, port) = server::bind(port, port == DEFAULT_PORT)
            .await
            .map_err(|e| format!("cannot serve the session API on 127.0.0.1:{port}: {e}; choose another with --port (0: any free port)"))?;
        let token =
            session_file::new_token().map_err(|e| format!("cannot make a session token: {e}"))?;
        SessionFile {
            port,
            pid: std::process::id(),
            token: token.clone(),
        }
        .write(root)
        .map_err(|e| format!("cannot write {}: {e}", SessionFile::path(root).display()))?;
        let (tx, requests) = mpsc::channel(64);
        let ctx = Context {
            board: board.clone(),
            logs,
            requests: tx,
            token: token.clone().into(),
            port,
            settle,
        };
        let server = tokio::spawn(server::serve(listener, ctx));
        Ok(Control {
            board,
            requests: Some(requests),
            port,
            token,
            root: root.to_owned(),
            server,
        })
    }

    /// The dashboard's address, with the token that opens it.
    pub fn dashboard_url(&self) -> String {
        format!("http://127.0.0.1:{}/?token={}", self.port, self.token)
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.server.abort();
        SessionFile::remove(&self.root);
    }
}
