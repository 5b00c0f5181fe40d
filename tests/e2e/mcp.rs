//! `loop mcp` spoken to over stdio like an agent does: initialize, tools/list,
//! and a tools/call of each tool against a running session.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{lines, project, wait_until, Background};

struct Mcp {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
    next: u64,
}

impl Mcp {
    fn start(dir: &std::path::Path) -> Mcp {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loop"))
            .arg("mcp")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Mcp {
            child,
            stdin,
            replies,
            next: 1,
        }
    }

    /// Sends a request and returns its reply (failing after 60 s).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(self.stdin, "{message}").unwrap();
        let line = self
            .replies
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no reply to {method} within 60 s"));
        let reply: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(reply["id"], id, "{reply}");
        reply
    }

    fn call(&mut self, tool: &str, arguments: Value) -> (bool, String) {
        let reply = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        let result = &reply["result"];
        (
            result["isError"].as_bool().unwrap_or(true),
            result["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_agent_drives_a_session_through_every_tool() {
    let dir = project(&[
        (
            "Loopfile",
            r#"
local_resource('gen', cmd='echo gen >> gen.runs', deps=['src'])
local_resource('app', cmd='cat src/a.txt; test "$(cat src/a.txt)" != broken', data_deps=['gen'])
local_resource('deploy', cmd='echo deployed >> deploy.runs', trigger_mode=TRIGGER_MODE_MANUAL, auto_init=False)
"#,
        ),
        ("src/a.txt", "1"),
    ]);
    let d = dir.path();
    let mut mcp = Mcp::start(d);
    let init = mcp.request("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}));
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "loop");
    writeln!(
        mcp.stdin,
        "{}",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    )
    .unwrap();
    let list = mcp.request("tools/list", json!({}));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "status",
            "logs",
            "trigger",
            "enable",
            "disable",
            "wait_settled",
            "affected",
            "graph",
            "check"
        ]
    );

    // Without a session: a clear error, not a crash.
    let (is_error, text) = mcp.call("status", json!({}));
    assert!(
        is_error && text.contains("no running loop session"),
        "{text}"
    );
    // The Loopfile tools need no session.
    let (is_error, text) = mcp.call("check", json!({}));
    assert!(!is_error && text.contains("ok: 3 resources"), "{text}");
    let (is_error, text) = mcp.call("affected", json!({"paths": ["src/a.txt"]}));
    assert!(!is_error, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["rerun"],
        json!(["gen", "app"])
    );
    let (is_error, text) = mcp.call("graph", json!({}));
    assert!(
        !is_error && text.contains("app (local)") && text.contains("re-runs with: gen"),
        "{text}"
    );

    let loop_run = Background::start(d, &["run", "--port", "0"]);
    loop_run.wait_for_output("2 resources up", 60);
    let (is_error, text) = mcp.call("status", json!({}));
    assert!(!is_error, "{text}");
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        status["resources"][2]["reason"],
        "not started: waits to be triggered"
    );

    let (is_error, text) = mcp.call("trigger", json!({"resources": ["deploy"]}));
    assert!(!is_error, "{text}");
    wait_until(
        10,
        "deploy to run",
        || lines(&d.join("deploy.runs")) == 1,
        || loop_run.output(),
    );
    let (is_error, text) = mcp.call("trigger", json!({"resources": ["nope"]}));
    assert!(
        is_error && text.contains("no resource named `nope`"),
        "{text}"
    );

    // The agent breaks app, then waits: the failure comes back with its lines.
    std::fs::write(d.join("src/a.txt"), "broken").unwrap();
    let (is_error, text) = mcp.call("wait_settled", json!({"timeout_secs": 60}));
    assert!(is_error, "a failure is an error result: {text}");
    let result: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(result["ran"], json!(["gen", "app"]), "{text}");
    assert_eq!(result["failed"][0]["name"], "app", "{text}");
    assert!(text.contains("broken"), "the failing lines: {text}");
    std::fs::write(d.join("src/a.txt"), "fixed").unwrap();
    let (is_error, text) = mcp.call("wait_settled", json!({"timeout_secs": 60}));
    assert!(!is_error, "{text}");

    let (is_error, text) = mcp.call("logs", json!({"resource": "app", "limit": 50}));
    assert!(!is_error && text.contains("app │ fixed"), "{text}");
    let (is_error, text) = mcp.call("disable", json!({"resources": ["gen"]}));
    assert!(!is_error && text == "disable: gen", "{text}");
    let (is_error, text) = mcp.call("enable", json!({"resources": ["gen"]}));
    assert!(!is_error && text == "enable: gen", "{text}");
    let unknown = mcp.request("tools/call", json!({"name": "nope", "arguments": {}}));
    assert_eq!(unknown["result"]["isError"], true);
    let bad = mcp.request("no/such/method", json!({}));
    assert_eq!(bad["error"]["code"], -32601);
    drop(loop_run);
}
