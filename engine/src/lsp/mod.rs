//! `loop lsp`: a Language Server Protocol server over stdio for Loopfiles,
//! Tiltfiles and `.star` modules.
//!
//! Two layers. Behind, `starlark_lsp` (starlark-rust's server) runs on its own
//! thread over an in-memory connection with [`context::LoopContext`] as its
//! host: completion and hover of built-ins, locals and loaded symbols, go to
//! definition across `load()` and file paths. In front, this module reads the
//! client's messages and answers itself what only `loop` knows, forwarding the
//! rest:
//! - diagnostics: every open buffer is checked within its composition exactly
//!   as `loop check` does ([`check`]); the backend's own are dropped;
//! - resource names: completion inside `resource_deps`/`data_deps`, hover (with
//!   the live state of a running `loop run`), definition, document symbols
//!   ([`resources`]); `load()` path completion.
//!
//! The front also guards the backend, which panics on malformed parameters and
//! never answers a method it does not know: only well-formed messages of the
//! methods it serves are forwarded, every other request gets an error reply.

mod check;
mod context;
mod resources;
mod text;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crossbeam_channel::Sender;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, Exit, Notification as _,
    PublishDiagnostics,
};
use lsp_types::{PublishDiagnosticsParams, Uri};
use serde_json::Value;

use check::{path_of, uri_of, ResourceInfo};

/// What every evaluation of the server is given: `loop lsp --root DIR -- ARGS`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The project root instead of the discovered one.
    pub root: Option<PathBuf>,
    /// Arguments for `config.parse()`.
    pub args: Vec<String>,
}

static OPTIONS: std::sync::OnceLock<Options> = std::sync::OnceLock::new();

fn options() -> &'static Options {
    OPTIONS.get_or_init(Options::default)
}

/// The project of a file, with the server's `--root`.
pub(crate) fn project_of(file: &std::path::Path) -> Result<loop_lang::Project, String> {
    loop_lang::Project::discover(&[file.to_owned()], options().root.as_deref())
}

/// Serves on stdin/stdout until the client says `exit` or closes stdin.
pub fn run(options: Options) -> anyhow::Result<ExitCode> {
    let _ = OPTIONS.set(options);
    let (client, _io) = Connection::stdio();
    let (front, back) = Connection::memory();
    std::thread::Builder::new()
        .name("starlark-lsp".into())
        .spawn(move || {
            if let Err(e) =
                starlark_lsp::server::server_with_connection(back, context::LoopContext::new())
            {
                crate::report::stderr_line(&format!("loop lsp: the Starlark server stopped: {e}"));
            }
        })?;
    let to_client = client.sender.clone();
    let from_back = front.receiver;
    std::thread::Builder::new()
        .name("lsp-pump".into())
        .spawn(move || {
            for message in from_back {
                if let Some(message) = from_backend(message) {
                    if to_client.send(message).is_err() {
                        break;
                    }
                }
            }
        })?;
    let mut server = Server {
        client: client.sender,
        backend: front.sender,
        state: State::default(),
        shutdown: false,
        pending: BTreeMap::new(),
    };
    // lsp-server hands over stdin one message at a time (a rendezvous channel):
    // queue them here, so that what is waiting can be seen.
    let (queue, incoming) = crossbeam_channel::unbounded();
    let from_client = client.receiver;
    std::thread::Builder::new()
        .name("lsp-read".into())
        .spawn(move || {
            for message in from_client {
                if queue.send(message).is_err() {
                    break;
                }
            }
        })?;
    for message in &incoming {
        if !server.handle(message) {
            break;
        }
        // A burst of edits is checked once, after its last message.
        if incoming.is_empty() {
            server.check_pending();
        }
    }
    Ok(if server.shutdown {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the backend says, as the client should see it: its diagnostics are
/// dropped (ours replace them) and its capabilities gain ours.
fn from_backend(message: Message) -> Option<Message> {
    match message {
        Message::Notification(n) if n.method == PublishDiagnostics::METHOD => None,
        Message::Response(mut r) => {
            let result = r.result.as_mut().and_then(Value::as_object_mut);
            if let Some(result) = result.filter(|r| r.contains_key("capabilities")) {
                if let Some(caps) = result["capabilities"].as_object_mut() {
                    caps.insert("documentSymbolProvider".into(), Value::Bool(true));
                    caps.insert(
                        "completionProvider".into(),
                        serde_json::json!({"triggerCharacters": ["\"", "'", "/"]}),
                    );
                }
                result.insert(
                    "serverInfo".into(),
                    serde_json::json!({"name": "loop", "version": env!("CARGO_PKG_VERSION")}),
                );
            }
            Some(Message::Response(r))
        }
        other => Some(other),
    }
}

/// The open buffers and what their last check found.
#[derive(Default)]
pub(crate) struct State {
    /// Open buffers by absolute, symlink-resolved path.
    docs: HashMap<PathBuf, String>,
    overlay: loop_stdlib::Overlay,
    /// Open file -> the top-level Loopfile of its composition.
    tops: HashMap<PathBuf, PathBuf>,
    /// Top-level Loopfile -> the resources of its last evaluation.
    resources: HashMap<PathBuf, Vec<ResourceInfo>>,
    /// Top-level Loopfile -> files that have diagnostics shown.
    published: HashMap<PathBuf, HashSet<PathBuf>>,
}

impl State {
    /// The resources of the composition an open file belongs to.
    pub(crate) fn resources_of(&self, file: &PathBuf) -> &[ResourceInfo] {
        self.tops
            .get(file)
            .and_then(|top| self.resources.get(top))
            .map_or(&[], Vec::as_slice)
    }
}

struct Server {
    client: Sender<Message>,
    backend: Sender<Message>,
    state: State,
    shutdown: bool,
    /// Buffers edited since their last check, and whether each was just opened.
    pending: BTreeMap<PathBuf, bool>,
}

impl Server {
    /// Handles one client message; false when the session is over.
    fn handle(&mut self, message: Message) -> bool {
        match message {
            Message::Request(req) => self.request(req),
            Message::Notification(n) => return self.notification(n),
            Message::Response(_) => {}
        }
        true
    }

    fn request(&mut self, req: Request) {
        // Answers (resource names, hover) come from the latest text.
        self.check_pending();
        let method = req.method.as_str();
        if method == "shutdown" {
            self.shutdown = true;
        }
        match resources::answer(&self.state, &req) {
            resources::Answer::Reply(value) => {
                self.reply(Response::new_ok(req.id, value));
            }
            resources::Answer::Invalid(e) => {
                let code = ErrorCode::InvalidParams as i32;
                self.reply(Response::new_err(req.id, code, e));
            }
            resources::Answer::Forward => {
                let id = req.id.clone();
                if self.backend.send(Message::Request(req)).is_err() {
                    let code = ErrorCode::InternalError as i32;
                    let text = "the Starlark server has stopped".to_owned();
                    self.reply(Response::new_err(id, code, text));
                }
            }
            resources::Answer::Unknown => {
                let code = ErrorCode::MethodNotFound as i32;
                let text = format!("loop lsp does not serve `{method}`");
                self.reply(Response::new_err(req.id, code, text));
            }
        }
    }

    fn reply(&self, response: Response) {
        let _ = self.client.send(Message::Response(response));
    }

    fn notification(&mut self, n: Notification) -> bool {
        let opened = match n.method.as_str() {
            Exit::METHOD => {
                let _ = self.backend.send(Message::Notification(n));
                return false;
            }
            DidOpenTextDocument::METHOD => {
                match serde_json::from_value::<lsp_types::DidOpenTextDocumentParams>(
                    n.params.clone(),
                ) {
                    Ok(p) => Some((p.text_document.uri, p.text_document.text, true)),
                    Err(_) => None,
                }
            }
            DidChangeTextDocument::METHOD => {
                match serde_json::from_value::<lsp_types::DidChangeTextDocumentParams>(
                    n.params.clone(),
                ) {
                    // Full sync: the last change holds the whole text.
                    Ok(p) => p
                        .content_changes
                        .into_iter()
                        .next_back()
                        .map(|c| (p.text_document.uri, c.text, false)),
                    Err(_) => None,
                }
            }
            DidCloseTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp_types::DidCloseTextDocumentParams>(
                    n.params.clone(),
                ) {
                    if let Some(path) = path_of(&p.text_document.uri) {
                        self.pending.remove(&path);
                        self.state.docs.remove(&path);
                        self.state.overlay = Arc::new(self.state.docs.clone());
                    }
                    let _ = self.backend.send(Message::Notification(n));
                }
                return true;
            }
            // `initialized` and the rest: the backend ignores what it does not serve.
            _ => {
                let _ = self.backend.send(Message::Notification(n));
                return true;
            }
        };
        let Some((uri, text, opened)) = opened else {
            return true;
        };
        let _ = self.backend.send(Message::Notification(n));
        if let Some(path) = path_of(&uri) {
            self.state.docs.insert(path.clone(), text);
            *self.pending.entry(path).or_default() |= opened;
        }
        true
    }

    /// Checks the buffers edited since their last check.
    fn check_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // The buffers as checks see them: rebuilt once per burst, not per edit.
        self.state.overlay = Arc::new(self.state.docs.clone());
        for (path, opened) in std::mem::take(&mut self.pending) {
            self.changed(path, opened);
        }
    }

    /// Re-checks the composition of a changed buffer and publishes the result.
    fn changed(&mut self, path: PathBuf, opened: bool) {
        let state = &mut self.state;
        let known = state.tops.get(&path).filter(|_| !opened).cloned();
        let (top, outcome) = match known {
            Some(top) => {
                let outcome = check::check(&top, &state.overlay);
                (top, outcome)
            }
            None => {
                let mut found = None;
                for candidate in check::candidates(&path, &state.overlay) {
                    let outcome = check::check(&candidate, &state.overlay);
                    if candidate == path || outcome.reached(&path) {
                        found = Some((candidate, outcome));
                        break;
                    }
                }
                let Some(found) = found else { return };
                found
            }
        };
        state.tops.insert(path.clone(), top.clone());
        if let Some(resources) = outcome.resources.clone() {
            state.resources.insert(top.clone(), resources);
        }
        let before = state.published.remove(&top).unwrap_or_default();
        let mut now: HashSet<PathBuf> = outcome.diagnostics.keys().cloned().collect();
        for (file, diags) in &outcome.diagnostics {
            self.publish(file, diags.clone());
        }
        for file in before.iter().chain([&path]) {
            if !now.contains(file) {
                self.publish(file, Vec::new());
            }
        }
        now.retain(|f| outcome.diagnostics.get(f).is_some_and(|d| !d.is_empty()));
        self.state.published.insert(top, now);
    }

    fn publish(&self, file: &std::path::Path, diagnostics: Vec<lsp_types::Diagnostic>) {
        let Some(uri): Option<Uri> = uri_of(file) else {
            return;
        };
        let params = PublishDiagnosticsParams::new(uri, diagnostics, None);
        let note = Notification::new(PublishDiagnostics::METHOD.to_owned(), params);
        let _ = self.client.send(Message::Notification(note));
    }
}
