//! `loop lsp` spoken to over stdio like an editor does (JSON-RPC with
//! Content-Length framing): diagnostics that follow the buffer, completion,
//! hover, definition and symbols, and the same errors as `loop check` for
//! every single-file case of the bad-input corpus.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{bad_cases, project, run_loop, Background};

/// Every wait for the server is bounded by this.
const BOUND: Duration = Duration::from_secs(60);

pub struct Lsp {
    child: Child,
    stdin: ChildStdin,
    incoming: mpsc::Receiver<Value>,
    /// Notifications read while waiting for something else.
    pending: VecDeque<Value>,
    next: u64,
}

fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// The `file://` URI of a path.
pub fn uri(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

impl Lsp {
    /// Starts `loop lsp` in `dir` and initializes it.
    pub fn start(dir: &Path) -> Lsp {
        Lsp::start_with(dir, &[])
    }

    /// Starts `loop lsp ARGS` in `dir` and initializes it.
    pub fn start_with(dir: &Path, args: &[&str]) -> Lsp {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loop"))
            .arg("lsp")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, incoming) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        let mut lsp = Lsp {
            child,
            stdin,
            incoming,
            pending: VecDeque::new(),
            next: 1,
        };
        let root = uri(dir);
        let init = lsp.request(
            "initialize",
            json!({"processId": null, "rootUri": root, "capabilities": {},
                   "workspaceFolders": [{"uri": root, "name": "p"}]}),
        );
        assert!(
            init["result"]["capabilities"]["completionProvider"].is_object(),
            "{init}"
        );
        lsp.notify("initialized", json!({}));
        lsp
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn receive(&mut self, deadline: Instant, what: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        self.incoming
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {what} within {BOUND:?}"))
    }

    /// Sends a request and returns its response (keeping notifications).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + BOUND;
        loop {
            let message = self.receive(deadline, &format!("reply to {method}"));
            if message["id"] == id && message.get("method").is_none() {
                return message;
            }
            self.pending.push_back(message);
        }
    }

    /// The next diagnostics published for `uri`.
    pub fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        let is_ours = |m: &Value| {
            m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri
        };
        if let Some(i) = self.pending.iter().position(is_ours) {
            let m = self.pending.remove(i).unwrap();
            return m["params"]["diagnostics"].as_array().unwrap().clone();
        }
        let deadline = Instant::now() + BOUND;
        loop {
            let message = self.receive(deadline, &format!("diagnostics for {uri}"));
            if is_ours(&message) {
                return message["params"]["diagnostics"].as_array().unwrap().clone();
            }
            self.pending.push_back(message);
        }
    }

    pub fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "starlark", "version": 1, "text": text}}),
        );
    }

    pub fn change(&mut self, uri: &str, version: i64, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        );
    }

    pub fn at(&mut self, method: &str, uri: &str, line: u32, character: u32) -> Value {
        let reply = self.request(
            method,
            json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}),
        );
        reply["result"].clone()
    }
}

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn labels(items: &Value) -> Vec<String> {
    let items = items.get("items").unwrap_or(items);
    items
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["label"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn diagnostics_follow_the_buffer() {
    let dir = project(&[("Loopfile", "local_resource('web', cmd='true')\n")]);
    let file = uri(&dir.path().join("Loopfile"));
    let mut lsp = Lsp::start(dir.path());
    lsp.open(&file, "local_resource('web', cmd='true')\n");
    assert_eq!(lsp.diagnostics(&file), Vec::<Value>::new());
    lsp.change(&file, 2, "x = 1\nlocal_resource(\"web\", cmdd=\"make\")\n");
    let diags = lsp.diagnostics(&file);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!(d["range"]["start"], json!({"line": 1, "character": 0}));
    assert_eq!(d["range"]["end"], json!({"line": 1, "character": 34}));
    let message = d["message"].as_str().unwrap();
    assert!(
        message.starts_with("Found `cmdd` extra named parameter(s) for call to local_resource"),
        "{message}"
    );
    assert!(message.contains("help: did you mean `cmd`?"), "{message}");
    lsp.change(&file, 3, "x = 1\nlocal_resource(\"web\", cmd=\"make\")\n");
    assert_eq!(lsp.diagnostics(&file), Vec::<Value>::new());
    let shutdown = lsp.request("shutdown", Value::Null);
    assert!(shutdown.get("error").is_none(), "{shutdown}");
}

#[test]
fn an_error_in_a_loaded_file_is_reported_there() {
    let lib = "def make(name):\n    local_resource(name, cmd='true', deps=1)\n";
    let top = "load('lib.star', 'make')\nmake('api')\n";
    let dir = project(&[("Loopfile", top), ("lib.star", lib)]);
    let (top_uri, lib_uri) = (
        uri(&dir.path().join("Loopfile")),
        uri(&dir.path().join("lib.star")),
    );
    let mut lsp = Lsp::start(dir.path());
    lsp.open(&top_uri, top);
    let diags = lsp.diagnostics(&lib_uri);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["range"]["start"]["line"], 1, "{diags:?}");
    // Fixing the loaded file's buffer (unsaved) clears it.
    lsp.open(
        &lib_uri,
        "def make(name):\n    local_resource(name, cmd='true')\n",
    );
    assert_eq!(lsp.diagnostics(&lib_uri), Vec::<Value>::new());
}

#[test]
fn an_included_file_is_checked_within_its_composition() {
    // (An unknown `resource_deps` entry is only a warning, as in Tilt; an unknown
    // `data_deps` entry is an error.)
    let top = "include('svc/Loopfile')\nlocal_resource('web', cmd='true', resource_deps=['api'])\n";
    let svc = "local_resource('api', cmd='true', data_deps=['db'])\n";
    let dir = project(&[("Loopfile", top), ("svc/Loopfile", svc)]);
    let (top_uri, svc_uri) = (
        uri(&dir.path().join("Loopfile")),
        uri(&dir.path().join("svc/Loopfile")),
    );
    let mut lsp = Lsp::start(dir.path());
    // Opening the included file checks the whole composition, from the top.
    lsp.open(&svc_uri, svc);
    let diags = lsp.diagnostics(&svc_uri);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0]["message"].as_str().unwrap().contains("`db`"),
        "{diags:?}"
    );
    // `web`, declared in the top-level file, is known in the included one.
    let text = "local_resource('api', cmd='true', data_deps=[''])\n";
    lsp.change(&svc_uri, 2, text);
    assert_eq!(lsp.diagnostics(&svc_uri).len(), 1);
    let names = labels(&lsp.at("textDocument/completion", &svc_uri, 0, 46));
    assert!(names.contains(&"web".to_owned()), "{names:?}");
    lsp.change(&svc_uri, 3, "local_resource('api', cmd='true')\n");
    assert_eq!(lsp.diagnostics(&svc_uri), Vec::<Value>::new());
    // Definition from the top-level file into the included one.
    lsp.open(&top_uri, top);
    lsp.diagnostics(&top_uri);
    let def = lsp.at("textDocument/definition", &top_uri, 1, 51);
    assert_eq!(def["uri"], json!(svc_uri), "{def}");
}

#[test]
fn completes_built_ins_with_their_docs() {
    let dir = project(&[("Loopfile", "")]);
    let file = uri(&dir.path().join("Loopfile"));
    let mut lsp = Lsp::start(dir.path());
    lsp.open(&file, "local_res");
    lsp.diagnostics(&file);
    let result = lsp.at("textDocument/completion", &file, 0, 9);
    let items = result
        .get("items")
        .unwrap_or(&result)
        .as_array()
        .unwrap()
        .clone();
    let item = items
        .iter()
        .find(|i| i["label"] == "local_resource")
        .unwrap_or_else(|| panic!("no local_resource in {:?}", labels(&result)));
    let doc = item["documentation"]["value"].as_str().unwrap();
    assert!(
        doc.contains("local_resource") && doc.contains("serve_cmd"),
        "{doc}"
    );
    lsp.change(&file, 2, "local_resource('x', cmd='true')\n");
    assert_eq!(lsp.diagnostics(&file), Vec::<Value>::new());
    let hover = lsp.at("textDocument/hover", &file, 0, 3);
    let text = hover["contents"].to_string();
    assert!(text.contains("serve_cmd"), "{hover}");
}

#[test]
fn definition_follows_load_and_completes_exports() {
    let lib = "# helpers\n\ndef helper(name):\n    return name\n\nOTHER = 1\n";
    let top = "load('lib.star', 'helper')\nhelper('x')\n";
    let dir = project(&[("Loopfile", top), ("lib.star", lib)]);
    let (top_uri, lib_uri) = (
        uri(&dir.path().join("Loopfile")),
        uri(&dir.path().join("lib.star")),
    );
    let mut lsp = Lsp::start(dir.path());
    lsp.open(&top_uri, top);
    lsp.diagnostics(&top_uri);
    let def = lsp.at("textDocument/definition", &top_uri, 1, 2);
    let def = if def.is_array() { def[0].clone() } else { def };
    let target = def.get("targetUri").or(def.get("uri")).unwrap();
    assert_eq!(target, &json!(lib_uri), "{def}");
    let range = def.get("targetRange").or(def.get("range")).unwrap();
    assert_eq!(range["start"]["line"], 2, "{def}");
    // Exported symbols of the loaded file, inside load().
    let text = "load('lib.star', 'helper', '')\nhelper('x')\n";
    lsp.change(&top_uri, 2, text);
    lsp.diagnostics(&top_uri);
    let exported = labels(&lsp.at("textDocument/completion", &top_uri, 0, 28));
    assert!(exported.contains(&"OTHER".to_owned()), "{exported:?}");
    // load() paths.
    lsp.change(&top_uri, 3, "load('')\n");
    lsp.diagnostics(&top_uri);
    let paths = labels(&lsp.at("textDocument/completion", &top_uri, 0, 6));
    assert_eq!(paths, vec!["lib.star".to_owned()]);
    // A file path in a string leads to the file.
    lsp.change(&top_uri, 4, "include('lib.star')\n");
    lsp.diagnostics(&top_uri);
    let def = lsp.at("textDocument/definition", &top_uri, 0, 11);
    assert!(def.to_string().contains(&lib_uri), "{def}");
    // `//` starts at the project root, in load() and in strings.
    lsp.change(
        &top_uri,
        5,
        "load('//lib.star', 'helper')\nhelper('x')\nread_file('//lib.star')\n",
    );
    lsp.diagnostics(&top_uri);
    let def = lsp.at("textDocument/definition", &top_uri, 1, 2);
    assert!(def.to_string().contains(&lib_uri), "{def}");
    let def = lsp.at("textDocument/definition", &top_uri, 2, 14);
    assert!(def.to_string().contains(&lib_uri), "{def}");
}

/// A file with `while` loops (run as Tilt runs them) is parsed for the editor
/// too, every position kept: go-to-definition finds a function below a loop,
/// and the check reports no error.
#[test]
fn definitions_below_a_while_loop_are_found() {
    let top = "n = 3\nwhile n > 0:\n    n -= 1\n    if n == 1:\n        break\n\ndef later():\n    return n\n\nlater()\n";
    let dir = project(&[("Loopfile", top)]);
    let top_uri = uri(&dir.path().join("Loopfile"));
    let mut lsp = Lsp::start(dir.path());
    lsp.open(&top_uri, top);
    assert_eq!(lsp.diagnostics(&top_uri), Vec::<Value>::new());
    let def = lsp.at("textDocument/definition", &top_uri, 9, 1);
    let def = if def.is_array() { def[0].clone() } else { def };
    let range = def.get("targetRange").or(def.get("range")).unwrap();
    assert_eq!(range["start"]["line"], 6, "{def}");
}

#[test]
fn resource_names_complete_hover_and_lead_to_their_declaration() {
    let top = "local_resource('api', cmd='true')\nlocal_resource('db', cmd='true')\nlocal_resource('web', cmd='true', resource_deps=['api'])\n";
    let dir = project(&[("Loopfile", top)]);
    let file = uri(&dir.path().join("Loopfile"));
    let mut lsp = Lsp::start(dir.path());
    lsp.open(&file, top);
    lsp.diagnostics(&file);
    let result = lsp.at("textDocument/completion", &file, 2, 51);
    let mut names = labels(&result);
    names.sort();
    assert_eq!(names, vec!["api", "db", "web"], "{result}");
    let def = lsp.at("textDocument/definition", &file, 2, 51);
    assert_eq!(def["uri"], json!(file), "{def}");
    assert_eq!(
        def["range"]["start"],
        json!({"line": 0, "character": 0}),
        "{def}"
    );
    let hover = lsp.at("textDocument/hover", &file, 2, 51);
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("**api** (local resource)"),
        "{hover}"
    );
    let symbols = lsp.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": file}}),
    );
    let names = labels(&json!(symbols["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!({"label": s["name"]}))
        .collect::<Vec<_>>()));
    assert_eq!(names, vec!["api", "db", "web"], "{symbols}");
    // Still complete names while the buffer does not evaluate.
    let broken = format!("{top}local_resource('x', resource_deps=['");
    lsp.change(&file, 2, &broken);
    assert_eq!(lsp.diagnostics(&file).len(), 1);
    assert!(labels(&lsp.at("textDocument/completion", &file, 3, 37)).contains(&"db".to_owned()));
}

#[test]
fn hover_shows_the_live_state_of_a_running_session() {
    let top = "local_resource('gen', cmd='true')\nlocal_resource('deploy', cmd='true', trigger_mode=TRIGGER_MODE_MANUAL, auto_init=False, resource_deps=['gen'])\n";
    let dir = project(&[("Loopfile", top)]);
    let file = uri(&dir.path().join("Loopfile"));
    let mut lsp = Lsp::start(dir.path());
    lsp.open(&file, top);
    assert_eq!(lsp.diagnostics(&file), Vec::<Value>::new());
    let hover = lsp.at("textDocument/hover", &file, 1, 17);
    let text = hover["contents"]["value"].as_str().unwrap().to_owned();
    assert!(
        text.contains("**deploy**") && !text.contains("live:"),
        "{text}"
    );
    let run = Background::start(dir.path(), &["run", "--port", "0"]);
    run.wait_for_output("watching for changes", 60);
    let hover = lsp.at("textDocument/hover", &file, 1, 17);
    let text = hover["contents"]["value"].as_str().unwrap().to_owned();
    assert!(text.contains("live: **"), "{text}");
    assert!(text.contains("waits to be triggered"), "{text}");
    drop(run);
}

#[test]
fn survives_garbage() {
    let dir = project(&[("Loopfile", "")]);
    let file = uri(&dir.path().join("Loopfile"));
    let mut lsp = Lsp::start(dir.path());
    lsp.notify("textDocument/didOpen", json!({"textDocument": 7}));
    lsp.notify("textDocument/didChange", json!("nonsense"));
    let reply = lsp.request("textDocument/hover", json!({"bogus": true}));
    assert!(reply["error"].is_object(), "{reply}");
    let reply = lsp.request("workspace/noSuchThing", json!({}));
    assert_eq!(reply["error"]["code"], -32601, "{reply}");
    lsp.open("untitled:Untitled-1", "x = (");
    lsp.open("file:///no/such/dir/Loopfile", "local_resource(");
    lsp.diagnostics("file:///no/such/dir/Loopfile");
    let garbage = "\u{0}\u{fffd}((([[[ def def \"\"\" '''\n\t\u{1F600}";
    lsp.open(&file, garbage);
    assert_eq!(lsp.diagnostics(&file).len(), 1);
    for (line, col) in [(0, 0), (0, 5), (1, 3), (40, 900)] {
        for method in [
            "textDocument/completion",
            "textDocument/hover",
            "textDocument/definition",
        ] {
            let reply = lsp.request(method, json!({"textDocument": {"uri": file}, "position": {"line": line, "character": col}}));
            assert!(
                reply.get("result").is_some() || reply.get("error").is_some(),
                "{reply}"
            );
        }
    }
    let reply = lsp.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": "file:///nowhere"}}),
    );
    assert_eq!(reply["result"], json!([]), "{reply}");
}

/// The first `error:` line of `loop check` and its ` --> FILE:LINE:COL`.
fn check_error(stderr: &str) -> (String, Option<(String, u64, u64)>) {
    let message = stderr
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or_default()
        .to_owned();
    let at = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
        .map(|at| {
            let mut parts = at.rsplitn(3, ':');
            let col = parts.next().unwrap().parse().unwrap();
            let line = parts.next().unwrap().parse().unwrap();
            (parts.next().unwrap().to_owned(), line, col)
        });
    (message, at)
}

#[test]
fn every_single_file_bad_case_gets_the_same_error_as_check() {
    let cases = bad_cases();
    let mut compared = 0;
    let mut failed = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let files: Vec<String> = std::fs::read_dir(case)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        if files != ["Loopfile"] {
            continue; // more than one file, or check arguments: not single-file
        }
        let text = std::fs::read_to_string(case.join("Loopfile")).unwrap();
        let dir = project(&[("Loopfile", &text)]);
        let check = run_loop(dir.path(), &["check"]);
        assert_eq!(check.code, 1, "{name}: {}", check.stderr);
        let (message, at) = check_error(&check.stderr);
        if at.as_ref().is_some_and(|(file, _, _)| file != "Loopfile") {
            continue; // the error points into another file
        }
        let file = uri(&dir.path().join("Loopfile"));
        let mut lsp = Lsp::start(dir.path());
        lsp.open(&file, &text);
        let diags = lsp.diagnostics(&file);
        compared += 1;
        let Some(d) = diags.first() else {
            failed.push(format!("{name}: no diagnostic, check says {message}"));
            continue;
        };
        let first_line = d["message"].as_str().unwrap().lines().next().unwrap_or("");
        if first_line != message {
            failed.push(format!(
                "{name}: message {first_line:?}, check says {message:?}"
            ));
        }
        let start = &d["range"]["start"];
        let want = at.map_or(
            json!({"line": 0, "character": 0}),
            |(_, line, col)| json!({"line": line - 1, "character": col - 1}),
        );
        if start != &want {
            failed.push(format!("{name}: at {start}, check says {want}"));
        }
    }
    assert!(compared >= 30, "only {compared} cases compared");
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn definition_follows_an_ext_load_into_the_extension_folder() {
    let ext = "# an extension\ndef hello(name):\n    return name\n";
    let top = "load('ext://hello', 'hello')\nhello('x')\n";
    let dir = project(&[("Loopfile", top), ("extensions/hello/Tiltfile", ext)]);
    let top_uri = uri(&dir.path().join("Loopfile"));
    let ext_uri = uri(&dir.path().join("extensions/hello/Tiltfile"));
    let mut lsp = Lsp::start(dir.path());
    lsp.open(&top_uri, top);
    assert!(lsp.diagnostics(&top_uri).is_empty());
    let def = lsp.at("textDocument/definition", &top_uri, 1, 2);
    let def = if def.is_array() { def[0].clone() } else { def };
    let target = def.get("targetUri").or(def.get("uri")).unwrap();
    assert_eq!(target, &json!(ext_uri), "{def}");
    let range = def.get("targetRange").or(def.get("range")).unwrap();
    assert_eq!(range["start"]["line"], 1, "{def}");
}

/// A burst of edits is checked once after its last message, not once per edit
/// (each check evaluates the composition in a process of its own).
#[test]
fn a_burst_of_edits_is_checked_once_after_the_last() {
    let good = "local_resource('a', cmd='true')\n";
    let dir = project(&[("Loopfile", good)]);
    let file = uri(&dir.path().join("Loopfile"));
    let mut lsp = Lsp::start(dir.path());
    lsp.open(&file, good);
    assert!(lsp.diagnostics(&file).is_empty());
    let edits = 30;
    for version in 2..=edits {
        lsp.change(&file, version, &format!("{good}# edit {version}\n"));
    }
    lsp.change(&file, edits + 1, "local_resource('a', cmd=\n");
    let mut checks = 1;
    while lsp.diagnostics(&file).is_empty() {
        checks += 1;
    }
    assert!(
        checks <= 5,
        "{checks} diagnostics published for {} edits in a burst",
        edits
    );
}

/// `loop lsp --root DIR -- ARGS` checks as `loop run --root DIR -- ARGS` would:
/// an include above the file's own folder resolves, and config.parse() sees ARGS.
#[test]
fn root_and_arguments_reach_every_check() {
    let top = "include('../shared/Loopfile')\nconfig.define_string('env')\ncfg = config.parse()\nif cfg.get('env') != 'dev':\n    fail('env is ' + str(cfg.get('env')))\n";
    let dir = project(&[
        ("app/Loopfile", top),
        ("shared/Loopfile", "local_resource('db', cmd='true')\n"),
    ]);
    let app = dir.path().join("app");
    let file = uri(&app.join("Loopfile"));
    // Without them: the include leaves the project (the file's folder).
    let mut plain = Lsp::start(&app);
    plain.open(&file, top);
    let diags = plain.diagnostics(&file);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0]["message"].as_str().unwrap().contains("outside"),
        "{diags:?}"
    );
    let root = dir.path().to_str().unwrap();
    let mut lsp = Lsp::start_with(&app, &["--root", root, "--", "--env", "dev"]);
    lsp.open(&file, top);
    assert_eq!(lsp.diagnostics(&file), Vec::<Value>::new());
}
