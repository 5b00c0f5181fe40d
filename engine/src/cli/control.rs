//! The verbs that talk to a running `loop run`: `status`, `logs`, `trigger`,
//! `enable`, `disable`, `wait`, `args`. Each finds the session from the current
//! folder (walking up) or `--project`; with none running it says so in one line
//! and exits 1.
//!
//! Exit codes: 0 done; 1 no session, an unknown resource, a failed resource or a
//! timeout (`wait`); 2 bad usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use hyper::{Method, StatusCode};

use crate::control::client::Client;
use crate::control::view::{unix_ms, Snapshot};
use crate::report;

/// What to wait for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// The resources are ready (serve processes up, commands succeeded).
    Ready,
    /// Every run caused by changes made before the call has finished and nothing
    /// is queued.
    Settled,
}

/// One verb and its arguments.
pub enum Verb {
    Status {
        json: bool,
    },
    Logs {
        names: Vec<String>,
        follow: bool,
        since: Option<Duration>,
        timestamps: bool,
    },
    Action {
        verb: &'static str,
        names: Vec<String>,
    },
    Wait {
        names: Vec<String>,
        until: WaitFor,
        timeout: Duration,
        json: bool,
    },
    Args {
        args: Vec<String>,
    },
}

/// Runs a verb against the session of `project` (or the current folder's).
pub fn run(project: Option<PathBuf>, verb: Verb) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async move {
        let client = match Client::find(project.as_deref()) {
            Ok(client) => client,
            Err(message) => {
                report::error(&message);
                return ExitCode::FAILURE;
            }
        };
        match execute(&client, verb).await {
            Ok(code) => code,
            Err(message) => {
                report::error(&message);
                ExitCode::FAILURE
            }
        }
    }))
}

async fn execute(client: &Client, verb: Verb) -> Result<ExitCode, String> {
    match verb {
        Verb::Status { json } => status(client, json).await,
        Verb::Logs {
            names,
            follow,
            since,
            timestamps,
        } => logs(client, &names, follow, since, timestamps).await,
        Verb::Action { verb, names } => {
            let mut code = ExitCode::SUCCESS;
            for name in names {
                let path = format!("/api/resources/{}/{verb}", encode(&name));
                let answer = client.call(Method::POST, &path, None).await?;
                if answer.status == StatusCode::OK {
                    crate::report::out_line(&format!("{verb}: {name}"));
                } else {
                    let body = answer.json().unwrap_or_default();
                    let error = body["error"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned());
                    report::error(&error);
                    code = ExitCode::FAILURE;
                }
            }
            Ok(code)
        }
        Verb::Wait {
            names,
            until,
            timeout,
            json,
        } => {
            let mut path = format!(
                "/api/wait?for={}&timeout_ms={}",
                if until == WaitFor::Settled {
                    "settled"
                } else {
                    "ready"
                },
                timeout.as_millis()
            );
            for name in &names {
                path.push_str(&format!("&resource={}", encode(name)));
            }
            let answer = client.call(Method::GET, &path, None).await?;
            let body = answer.json()?;
            if answer.status == StatusCode::NOT_FOUND {
                return Err(body["error"]
                    .as_str()
                    .unwrap_or("unknown resource")
                    .to_owned());
            }
            if json {
                crate::report::out_line(&body.to_string());
            } else {
                print_wait(&body);
            }
            Ok(if body["ok"].as_bool() == Some(true) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Verb::Args { args } => {
            let body = serde_json::json!({ "args": args }).to_string();
            let answer = client.call(Method::POST, "/api/args", Some(body)).await?;
            if answer.status != StatusCode::OK {
                return Err(String::from_utf8_lossy(&answer.body).into_owned());
            }
            crate::report::out_line(&format!(
                "re-evaluating with: {}",
                if args.is_empty() {
                    "(no arguments)".to_owned()
                } else {
                    args.join(" ")
                }
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn snapshot(client: &Client) -> Result<Snapshot, String> {
    let answer = client.call(Method::GET, "/api/snapshot", None).await?;
    if answer.status != StatusCode::OK {
        return Err(format!(
            "the session answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| format!("the session answered with an unexpected snapshot: {e}"))
}

async fn status(client: &Client, json: bool) -> Result<ExitCode, String> {
    let snapshot = snapshot(client).await?;
    let url = format!(
        "http://127.0.0.1:{}/?token={}",
        client.session.port, client.session.token
    );
    if json {
        let mut value = serde_json::to_value(&snapshot).map_err(|e| e.to_string())?;
        value["dashboard_url"] = serde_json::Value::String(url);
        crate::report::out_line(&serde_json::to_string_pretty(&value).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let now = unix_ms(SystemTime::now());
    let rows: Vec<[String; 7]> = snapshot
        .resources
        .iter()
        .map(|r| {
            let last = match &r.last_run {
                None => "-".to_owned(),
                Some(run) => {
                    let ago = humantime::format_duration(Duration::from_secs(
                        now.saturating_sub(run.start_ms) / 1000,
                    ));
                    match (&run.duration_ms, &run.result) {
                        (Some(d), Some(result)) => {
                            let outcome = if result == "ok" { "ok" } else { "failed" };
                            format!("{outcome} in {:.1}s, {ago} ago", *d as f64 / 1000.0)
                        }
                        _ => format!("running for {ago}"),
                    }
                }
            };
            let phase = if r.enabled {
                r.phase.clone()
            } else {
                "disabled".to_owned()
            };
            let links = r
                .links
                .iter()
                .map(|l| l.url.clone())
                .chain(r.port_forwards.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            [
                r.name.clone(),
                r.kind.clone(),
                phase,
                r.reason.clone().unwrap_or_default(),
                last,
                r.restarts.to_string(),
                links,
            ]
        })
        .collect();
    let header = [
        "NAME", "KIND", "PHASE", "REASON", "LAST RUN", "RESTARTS", "LINKS",
    ]
    .map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        crate::report::out_line(line.join("  ").trim_end());
    }
    if let Some(error) = &snapshot.session.loopfile_error {
        crate::report::out_line(&format!(
            "\nthe Loopfile has an error (the previous graph keeps running):\n{error}"
        ));
    }
    crate::report::out_line(&format!("\ndashboard: {url}"));
    Ok(ExitCode::SUCCESS)
}

async fn logs(
    client: &Client,
    names: &[String],
    follow: bool,
    since: Option<Duration>,
    timestamps: bool,
) -> Result<ExitCode, String> {
    if !names.is_empty() {
        let snapshot = snapshot(client).await?;
        if let Some(unknown) = names
            .iter()
            .find(|n| !snapshot.resources.iter().any(|r| &r.name == *n))
        {
            return Err(format!("no resource named `{unknown}`"));
        }
    }
    let mut query = format!("limit={}", usize::MAX);
    for name in names {
        query.push_str(&format!("&resource={}", encode(name)));
    }
    let cutoff = since
        .map(|d| unix_ms(SystemTime::now()).saturating_sub(d.as_millis() as u64))
        .unwrap_or(0);
    let print = |line: &serde_json::Value| {
        if line["time_ms"].as_u64().unwrap_or(0) < cutoff {
            return;
        }
        let resource = line["resource"].as_str().unwrap_or("");
        let text = line["text"].as_str().unwrap_or("");
        if timestamps {
            let ms = line["time_ms"].as_u64().unwrap_or(0);
            let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
            crate::report::out_line(&format!(
                "{} {resource} │ {text}",
                humantime::format_rfc3339_millis(at)
            ));
        } else {
            crate::report::out_line(&format!("{resource} │ {text}"));
        }
    };
    if !follow {
        let answer = client
            .call(Method::GET, &format!("/api/logs?{query}"), None)
            .await?;
        let lines = answer.json()?;
        for line in lines.as_array().into_iter().flatten() {
            print(line);
        }
        return Ok(ExitCode::SUCCESS);
    }
    client
        .follow(&format!("/api/logs?{query}&follow=1"), |kind, data| {
            if kind == "line" {
                if let Ok(line) = serde_json::from_str::<serde_json::Value>(data) {
                    print(&line);
                }
            } else if kind == "gap" {
                crate::report::out_line(
                    "[loop logs] some lines were dropped (the reader fell behind)",
                );
            }
            true
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}

fn print_wait(body: &serde_json::Value) {
    let ran: Vec<&str> = body["ran"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    if body["timed_out"].as_bool() == Some(true) {
        crate::report::out_line("timed out");
    }
    if !ran.is_empty() {
        crate::report::out_line(&format!("ran: {}", ran.join(", ")));
    }
    for failed in body["failed"].as_array().into_iter().flatten() {
        crate::report::out_line(&format!(
            "failed: {}: {}",
            failed["name"].as_str().unwrap_or(""),
            failed["error"].as_str().unwrap_or("")
        ));
        for line in failed["last_lines"].as_array().into_iter().flatten() {
            crate::report::out_line(&format!("  {}", line.as_str().unwrap_or("")));
        }
    }
    if body["ok"].as_bool() == Some(true) {
        crate::report::out_line("ok");
    }
}

/// Percent-encodes a resource name for a URL path or query.
pub(super) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
