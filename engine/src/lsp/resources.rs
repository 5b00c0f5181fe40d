//! The requests the front end answers itself: what needs the evaluated
//! composition (resource names) or the file system (`load()` paths), and the
//! check that a request is well formed before the backend sees it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lsp_server::Request;
use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionParams, CompletionResponse, CompletionTextEdit,
    DocumentSymbol, DocumentSymbolParams, DocumentSymbolResponse, GotoDefinitionParams,
    GotoDefinitionResponse, Hover, HoverContents, HoverParams, InitializeParams, Location,
    MarkupContent, MarkupKind, Range, SymbolKind, TextDocumentPositionParams, TextEdit,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::check::{path_of, uri_of, ResourceInfo};
use super::text::{list_argument, offset, position, string_at, StringAt, RESOURCE_LISTS};
use super::State;

/// What to do with a request.
pub enum Answer {
    Reply(Value),
    Invalid(String),
    Forward,
    Unknown,
}

pub fn answer(state: &State, req: &Request) -> Answer {
    match req.method.as_str() {
        "initialize" => {
            valid::<InitializeParams>(req).map_or_else(Answer::Invalid, |_| Answer::Forward)
        }
        "shutdown" => Answer::Forward,
        "textDocument/completion" => with::<CompletionParams>(req, |p| {
            completion(state, &p.text_document_position).map(|items| {
                serde_json::to_value(CompletionResponse::Array(items)).unwrap_or(Value::Null)
            })
        }),
        "textDocument/hover" => with::<HoverParams>(req, |p| {
            hover(state, &p.text_document_position_params)
                .map(|h| serde_json::to_value(h).unwrap_or(Value::Null))
        }),
        "textDocument/definition" => with::<GotoDefinitionParams>(req, |p| {
            definition(state, &p.text_document_position_params).map(|l| {
                serde_json::to_value(GotoDefinitionResponse::Scalar(l)).unwrap_or(Value::Null)
            })
        }),
        "textDocument/documentSymbol" => match valid::<DocumentSymbolParams>(req) {
            Ok(p) => Answer::Reply(symbols(state, &p)),
            Err(e) => Answer::Invalid(e),
        },
        _ => Answer::Unknown,
    }
}

fn valid<P: DeserializeOwned>(req: &Request) -> Result<P, String> {
    serde_json::from_value(req.params.clone())
        .map_err(|e| format!("invalid parameters for {}: {e}", req.method))
}

/// Answers with `ours` when it has something to say, else lets the backend.
fn with<P: DeserializeOwned>(req: &Request, ours: impl FnOnce(P) -> Option<Value>) -> Answer {
    match valid::<P>(req) {
        Ok(params) => ours(params).map_or(Answer::Forward, Answer::Reply),
        Err(e) => Answer::Invalid(e),
    }
}

/// The open buffer, its path, and the string literal at the cursor.
fn string_under(state: &State, at: &TextDocumentPositionParams) -> Option<(PathBuf, StringAt)> {
    let path = path_of(&at.text_document.uri)?;
    let text = state.docs.get(&path)?;
    let cursor = offset(text, at.position.line, at.position.character);
    let found = string_at(text, cursor)?;
    Some((path, found))
}

fn range_of(text: &str, start: usize, end: usize) -> Range {
    let (l1, c1) = position(text, start);
    let (l2, c2) = position(text, end);
    Range::new(
        lsp_types::Position::new(l1, c1),
        lsp_types::Position::new(l2, c2),
    )
}

fn completion(state: &State, at: &TextDocumentPositionParams) -> Option<Vec<CompletionItem>> {
    let (path, s) = string_under(state, at)?;
    let text = state.docs.get(&path)?;
    let quote = s.start.checked_sub(1)?;
    let edit_range = range_of(text, s.start, s.end);
    let edit = |new_text: String| {
        Some(CompletionTextEdit::Edit(TextEdit {
            range: edit_range,
            new_text,
        }))
    };
    if list_argument(text, quote).is_some_and(|a| RESOURCE_LISTS.contains(&a)) {
        let items = state
            .resources_of(&path)
            .iter()
            .map(|r| CompletionItem {
                label: r.name.clone(),
                kind: Some(CompletionItemKind::VALUE),
                detail: Some(format!("{} resource, {}", r.kind, declared(r))),
                text_edit: edit(r.name.clone()),
                ..CompletionItem::default()
            })
            .collect();
        return Some(items);
    }
    if text[..quote].trim_end().ends_with("load(") {
        let items = load_paths(&path, &s.value)
            .into_iter()
            .map(|(value, folder)| CompletionItem {
                label: value.clone(),
                kind: Some(if folder {
                    CompletionItemKind::FOLDER
                } else {
                    CompletionItemKind::FILE
                }),
                text_edit: edit(value),
                ..CompletionItem::default()
            })
            .collect();
        return Some(items);
    }
    None
}

/// Where a resource is declared, as `loop check` shows places.
fn declared(r: &ResourceInfo) -> String {
    format!(
        "declared at {}:{}",
        r.file.display(),
        r.range.start.line + 1
    )
}

/// Modules a `load()` may name, completing `typed` (relative to the file, or
/// `//` from the project root): `.star` files, Loopfiles, Tiltfiles, folders.
fn load_paths(file: &Path, typed: &str) -> Vec<(String, bool)> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    let (prefix, base) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[..=i]),
        None => ("", ""),
    };
    let folder = match base.strip_prefix("//") {
        Some(rest) => match super::project_of(file) {
            Ok(project) => project.root.join(rest),
            Err(_) => return Vec::new(),
        },
        None => dir.join(base),
    };
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Vec::new();
    };
    let mut out: Vec<(String, bool)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().ok()?.is_dir();
            if name.starts_with('.') {
                return None;
            }
            let module = name.ends_with(".star")
                || name.starts_with("Loopfile")
                || name.starts_with("Tiltfile");
            match (is_dir, module) {
                (true, _) => Some((format!("{prefix}{name}/"), true)),
                (false, true) if folder.join(&name) != file => {
                    Some((format!("{prefix}{name}"), false))
                }
                _ => None,
            }
        })
        .collect();
    out.sort();
    out
}

/// The resource a string names, in the composition of the open file.
fn resource_named<'a>(state: &'a State, path: &PathBuf, name: &str) -> Option<&'a ResourceInfo> {
    state.resources_of(path).iter().find(|r| r.name == name)
}

fn hover(state: &State, at: &TextDocumentPositionParams) -> Option<Hover> {
    let (path, s) = string_under(state, at)?;
    let r = resource_named(state, &path, &s.value)?;
    let text = state.docs.get(&path)?;
    let mut value = format!("**{}** ({} resource), {}", r.name, r.kind, declared(r));
    let root = state
        .tops
        .get(&path)
        .and_then(|top| super::project_of(top).ok().map(|p| p.root));
    if let Some(live) = root.and_then(|root| live_state(&root, &r.name)) {
        value.push_str(&format!("\n\n{live}"));
    }
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: Some(range_of(text, s.start, s.end)),
    })
}

/// The phase and reason of a resource in the `loop run` session of `root`, if
/// one is running (bounded: a hover never waits long for it).
fn live_state(root: &Path, name: &str) -> Option<String> {
    let client = crate::control::client::Client::find(Some(root)).ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let answer = runtime.block_on(async {
        let call = client.call(hyper::Method::GET, "/api/snapshot", None);
        tokio::time::timeout(Duration::from_millis(800), call).await
    });
    let snapshot = answer.ok()?.ok()?.json().ok()?;
    let resource = snapshot["resources"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)?;
    let phase = resource["phase"].as_str().unwrap_or("unknown");
    let mut line = format!("live: **{phase}**");
    if let Some(reason) = resource["reason"].as_str().filter(|r| !r.is_empty()) {
        line.push_str(&format!(": {reason}"));
    }
    if let Some(error) = resource["last_error"].as_str().filter(|e| !e.is_empty()) {
        line.push_str(&format!("\n\nlast error: {error}"));
    }
    Some(line)
}

fn definition(state: &State, at: &TextDocumentPositionParams) -> Option<Location> {
    let (path, s) = string_under(state, at)?;
    let r = resource_named(state, &path, &s.value)?;
    Some(Location::new(uri_of(&r.file)?, r.range))
}

/// The resources a file declares.
fn symbols(state: &State, params: &DocumentSymbolParams) -> Value {
    let Some(path) = path_of(&params.text_document.uri) else {
        return Value::Array(Vec::new());
    };
    #[allow(deprecated)] // `deprecated` is a required field of the LSP type
    let symbols: Vec<DocumentSymbol> = state
        .resources_of(&path)
        .iter()
        .filter(|r| r.file == path)
        .map(|r| DocumentSymbol {
            name: r.name.clone(),
            detail: Some(format!("{} resource", r.kind)),
            kind: SymbolKind::OBJECT,
            tags: None,
            deprecated: None,
            range: r.range,
            selection_range: r.range,
            children: None,
        })
        .collect();
    serde_json::to_value(DocumentSymbolResponse::Nested(symbols)).unwrap_or(Value::Null)
}
