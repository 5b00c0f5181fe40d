//! `loop lsp` answering completions in a 1,000-resource Loopfile: a built-in
//! name (the Starlark backend: scope, loaded symbols, built-ins with docs) and
//! a resource name inside `resource_deps` (the front end's index). Times are
//! request written to reply read, over stdio, median of 51.
//! Run: `cargo bench --bench lsp`.

#[path = "bench_support.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};
use support::{median, LOOP};

fn send(stdin: &mut ChildStdin, message: Value) {
    let body = message.to_string();
    write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    stdin.flush().unwrap();
}

fn read(reader: &mut impl BufRead) -> Value {
    let mut length = 0;
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "loop lsp closed stdout"
        );
        match line.trim_end() {
            "" => break,
            l => {
                if let Some(n) = l.strip_prefix("Content-Length: ") {
                    length = n.parse().unwrap();
                }
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Reads until the reply to `id` (or the first diagnostics when `id` is 0).
fn until(reader: &mut impl BufRead, id: u64) -> Value {
    loop {
        let m = read(reader);
        if (id == 0 && m["method"] == "textDocument/publishDiagnostics") || m["id"] == id {
            return m;
        }
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut text: String = (0..1000)
        .map(|i| {
            let deps = if i > 0 {
                format!(", resource_deps=['r{}']", i - 1)
            } else {
                String::new()
            };
            format!("local_resource('r{i}', cmd='true', deps=['src/{i}']{deps})\n")
        })
        .collect();
    text.push_str("local_resource('last', cmd='true', resource_deps=['r0'])\nx = local_resource\n");
    let path = dir.path().join("Loopfile");
    std::fs::write(&path, &text).unwrap();
    let uri = format!("file://{}", path.canonicalize().unwrap().display());
    let mut child = Command::new(LOOP)
        .arg("lsp")
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}),
    );
    until(&mut reader, 1);
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
    );
    let t = Instant::now();
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params":
        {"textDocument": {"uri": uri, "languageId": "starlark", "version": 1, "text": text}}}),
    );
    until(&mut reader, 0);
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut id = 1;
    let mut time = |line: u32, character: u32, want: &str| {
        let times: Vec<f64> = (0..51)
            .map(|_| {
                id += 1;
                let t = Instant::now();
                send(&mut stdin, json!({"jsonrpc": "2.0", "id": id, "method": "textDocument/completion", "params":
                    {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}}));
                let reply = until(&mut reader, id);
                let took = t.elapsed().as_secs_f64() * 1e3;
                assert!(reply["result"].to_string().contains(want), "no {want} in the completion");
                took
            })
            .collect();
        median(times)
    };
    let builtin = time(1001, 13, "\"local_resource\"");
    let resource = time(1000, 51, "\"r999\"");
    println!("| figure | result | target |");
    println!("| --- | --- | --- |");
    println!("| didOpen of a 1,000-resource Loopfile -> diagnostics published (one run) | {open_ms:.1} ms | |");
    println!("| completion of a built-in name (`x = local_res|ource`), median of 51 | {builtin:.2} ms | < 50 ms |");
    println!("| completion of a resource name in `resource_deps`, median of 51 | {resource:.2} ms | < 50 ms |");
    let _ = child.kill();
    let _ = child.wait();
}
