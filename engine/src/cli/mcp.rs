//! `loop mcp`: a Model Context Protocol server over stdio, for coding agents.
//!
//! JSON-RPC 2.0, one message per line. The tools that need a running session
//! (`status`, `logs`, `trigger`, `enable`, `disable`, `wait_settled`) use its
//! API like the CLI verbs; `affected`, `graph` and `check` evaluate the
//! Loopfiles themselves (in the current folder, or the `files` given).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::control::encode;
use crate::control::client::Client;
use crate::load::try_load;

/// The protocol version this server speaks (it answers with the client's when
/// the client asks for another).
const PROTOCOL: &str = "2025-06-18";

/// Serves until stdin closes.
pub fn run(project: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(message) => runtime.block_on(answer(&message, project.as_deref())),
            Err(e) => Some(error(Value::Null, -32700, &format!("parse error: {e}"))),
        };
        if let Some(reply) = reply {
            writeln!(stdout, "{reply}")?;
            stdout.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The reply to one message (none for a notification).
async fn answer(message: &Value, project: Option<&std::path::Path>) -> Option<Value> {
    let id = message.get("id").cloned();
    let method = message["method"].as_str().unwrap_or("");
    let id = id?; // notifications (no id) get no answer
    let result = match method {
        "initialize" => {
            let version = message["params"]["protocolVersion"]
                .as_str()
                .unwrap_or(PROTOCOL);
            Ok(json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "loop", "version": env!("CARGO_PKG_VERSION")},
                "instructions": "Tools for the loop dev session of this project: after editing files, call wait_settled to learn what re-ran and what failed."
            }))
        }
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({ "tools": tools() })),
        "tools/call" => {
            let name = message["params"]["name"].as_str().unwrap_or("");
            let args = &message["params"]["arguments"];
            Ok(match call(name, args, project).await {
                Ok(text) => json!({"content": [{"type": "text", "text": text}], "isError": false}),
                Err(text) => json!({"content": [{"type": "text", "text": text}], "isError": true}),
            })
        }
        other => Err((-32601, format!("method not found: {other}"))),
    };
    Some(match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, text)) => error(id, code, &text),
    })
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn tools() -> Value {
    let names = json!({"type": "array", "items": {"type": "string"}});
    let files = json!({"type": "array", "items": {"type": "string"}, "description": "Loopfiles to evaluate (default: ./Loopfile, else ./Tiltfile)"});
    json!([
        {"name": "status", "description": "Every resource of the running loop session: phase, why it waits or runs, last run, last error.",
         "inputSchema": {"type": "object", "properties": {}}},
        {"name": "logs", "description": "The last log lines of one resource (or of all).",
         "inputSchema": {"type": "object", "properties": {
            "resource": {"type": "string"},
            "since_seq": {"type": "integer", "description": "only lines after this sequence number"},
            "limit": {"type": "integer", "description": "at most this many lines (default 200)"}}}},
        {"name": "trigger", "description": "Run resources now (a serve resource restarts).",
         "inputSchema": {"type": "object", "properties": {"resources": names}, "required": ["resources"]}},
        {"name": "enable", "description": "Enable resources: they start and take updates again.",
         "inputSchema": {"type": "object", "properties": {"resources": names}, "required": ["resources"]}},
        {"name": "disable", "description": "Disable resources: their processes stop and they take no updates.",
         "inputSchema": {"type": "object", "properties": {"resources": names}, "required": ["resources"]}},
        {"name": "wait_settled", "description": "Block until every run caused by changes made before the call has finished and nothing is queued; returns what ran and what failed, with the failing lines.",
         "inputSchema": {"type": "object", "properties": {"timeout_secs": {"type": "integer", "description": "default 600"}}}},
        {"name": "affected", "description": "What a change to these paths would re-run (and which Loopfiles it would re-evaluate).",
         "inputSchema": {"type": "object", "properties": {"paths": names, "files": files}, "required": ["paths"]}},
        {"name": "graph", "description": "The resource graph: each resource with its edges, images, deps and objects, in run order.",
         "inputSchema": {"type": "object", "properties": {"files": files}}},
        {"name": "check", "description": "Evaluate and validate the Loopfiles; the diagnostics with file:line:col, or a summary.",
         "inputSchema": {"type": "object", "properties": {"files": files}}}
    ])
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

async fn call(
    name: &str,
    args: &Value,
    project: Option<&std::path::Path>,
) -> Result<String, String> {
    match name {
        "affected" | "graph" | "check" => return evaluate(name, args),
        "status" | "logs" | "trigger" | "enable" | "disable" | "wait_settled" => {}
        other => return Err(format!("unknown tool `{other}`")),
    }
    let client = Client::find(project)?;
    match name {
        "status" => {
            let answer = client.call(Method::GET, "/api/snapshot", None).await?;
            let snapshot = answer.json()?;
            Ok(serde_json::to_string_pretty(&json!({
                "resources": snapshot["resources"].as_array().into_iter().flatten().map(|r| json!({
                    "name": r["name"], "kind": r["kind"], "phase": r["phase"], "reason": r["reason"],
                    "enabled": r["enabled"], "last_run": r["last_run"], "last_error": r["last_error"],
                })).collect::<Vec<_>>(),
                "loopfile_error": snapshot["session"]["loopfile_error"],
            }))
            .unwrap_or_default())
        }
        "logs" => {
            let limit = args["limit"].as_u64().unwrap_or(200).min(5_000);
            let since = args["since_seq"].as_u64().unwrap_or(0);
            let mut path = format!("/api/logs?limit={limit}&since={since}");
            if let Some(resource) = args["resource"].as_str() {
                path.push_str(&format!("&resource={}", encode(resource)));
            }
            let lines = client.call(Method::GET, &path, None).await?.json()?;
            let text: Vec<String> = lines
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    format!(
                        "{} {} │ {}",
                        l["seq"],
                        l["resource"].as_str().unwrap_or(""),
                        l["text"].as_str().unwrap_or("")
                    )
                })
                .collect();
            Ok(text.join("\n"))
        }
        "wait_settled" => {
            let timeout = args["timeout_secs"].as_u64().unwrap_or(600);
            let path = format!("/api/wait?for=settled&timeout_ms={}", timeout * 1000);
            let body = client.call(Method::GET, &path, None).await?.json()?;
            let text = serde_json::to_string_pretty(&body).unwrap_or_default();
            if body["ok"].as_bool() == Some(true) {
                Ok(text)
            } else {
                Err(text)
            }
        }
        verb => {
            let mut done = Vec::new();
            for resource in strings(&args["resources"]) {
                let path = format!("/api/resources/{}/{verb}", encode(&resource));
                let answer = client.call(Method::POST, &path, None).await?;
                if answer.status != StatusCode::OK {
                    let body = answer.json().unwrap_or_default();
                    return Err(body["error"].as_str().unwrap_or("failed").to_owned());
                }
                done.push(resource);
            }
            if done.is_empty() {
                return Err("name at least one resource in `resources`".to_owned());
            }
            Ok(format!("{verb}: {}", done.join(", ")))
        }
    }
}

/// The tools that evaluate the Loopfiles in this process.
fn evaluate(name: &str, args: &Value) -> Result<String, String> {
    let files: Vec<PathBuf> = strings(&args["files"])
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let options = loop_stdlib::EvalOptions {
        subcommand: loop_stdlib::EVAL_ONLY_SUBCOMMAND.to_owned(),
        ..Default::default()
    };
    let loaded = try_load(&files, &options).map_err(|failure| failure.render())?;
    let manifest = &loaded.evaluation.manifest;
    match name {
        "check" => Ok(format!(
            "ok: {} resources, {} images, {} Loopfiles",
            manifest.resources.len(),
            manifest.images.len(),
            manifest.loopfiles.len()
        )),
        "graph" => Ok(super::graph::text(manifest, &loaded.graph)),
        _ => {
            let project = &loaded.evaluation.project;
            let changed: Vec<String> = strings(&args["paths"])
                .iter()
                .map(|p| project.display(&loop_lang::project::absolute(std::path::Path::new(p))))
                .collect();
            let affected = loaded.index.affected(&changed);
            let reevaluate: Vec<&str> = manifest
                .loopfiles
                .iter()
                .filter(|l| changed.iter().any(|c| l.depends_on.contains(c)))
                .map(|l| l.path.as_str())
                .collect();
            Ok(
                serde_json::to_string_pretty(&json!({"rerun": affected, "reevaluate": reevaluate}))
                    .unwrap_or_default(),
            )
        }
    }
}
