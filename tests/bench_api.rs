//! The session API's cost, against a real `loop run`: a snapshot of 1,000
//! resources, the idle CPU that 10 connected event-stream clients add, and
//! `loop`'s memory after 100 MB of log output. Prints medians.
//! Run: `cargo bench --bench api`.

#[path = "bench_support.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{cpu_ticks, interrupt, median, rss_mb, start_run, status_mb};

fn session(dir: &Path) -> (u16, String) {
    let text = std::fs::read_to_string(dir.join(".loop/session.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    (
        v["port"].as_u64().unwrap() as u16,
        v["token"].as_str().unwrap().to_owned(),
    )
}

fn get(port: u16, token: &str, path: &str) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    body.len()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let loopfile: String = (0..1000)
        .map(|i| format!("local_resource('r{i}', cmd='true', allow_parallel=True, links=['http://localhost:{}'])\n", 20000 + i))
        .collect();
    std::fs::write(dir.path().join("Loopfile"), loopfile).unwrap();
    let (mut child, _) = start_run(dir.path(), "1000 resources up");
    let pid = child.id();
    let (port, token) = session(dir.path());
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..21 {
        let t = Instant::now();
        bytes = get(port, &token, "/api/snapshot");
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("| figure | result | target |");
    println!("| --- | --- | --- |");
    println!("| snapshot of 1,000 resources ({} KB), request to last byte, median of 21 | {:.2} ms | < 10 ms |", bytes / 1024, median(times));

    let idle = |secs: u64| {
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(secs));
        (cpu_ticks(pid) - before) as f64 / (secs as f64 * 100.0) * 100.0
    };
    let alone = idle(5);
    let clients: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(s, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let with_clients = idle(5);
    drop(clients);
    println!("| CPU of `loop` while idle: no client / 10 event-stream clients (over 5 s) | {alone:.2} % / {with_clients:.2} % | no measurable difference |");
    interrupt(&mut child);

    // 100 MB of log output: 1,000,000 lines of 100 bytes from one process.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Loopfile"),
        "local_resource('chatty', serve_cmd=\"head -c 100000000 /dev/zero | tr '\\\\0' x | fold -w 99; exec sleep 600\")\n",
    )
    .unwrap();
    let (mut child, _) = start_run(dir.path(), "1 resource up");
    let pid = child.id();
    let log = dir.path().join(".loop/logs/chatty.log");
    let deadline = Instant::now() + Duration::from_secs(300);
    while std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) < 100_000_000
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "| RSS of `loop` after 100 MB of log lines (peak) | {:.1} MB ({:.1} MB) | bounded |",
        rss_mb(pid),
        status_mb(pid, "VmHWM")
    );
    interrupt(&mut child);
}
