//! Kubernetes figures against the loopback API server (`tests/kube-apiserver`):
//! server-side apply of 100 objects, and `loop run`'s memory while it follows 50
//! workloads, and the API requests per minute of an idle `loop run` with 20
//! workloads. Prints medians. Run: `cargo bench --bench k8s`; `-- requests` runs
//! only the request-rate figure.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loop_engine::k8s::{Applier, Cluster};
use loop_lang::data::Data;
use loop_lang::model::ObjectRef;
use loop_lang::Location;
use loop_test_apiserver::ApiServer;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn config_maps(n: usize, round: usize) -> Vec<ObjectRef> {
    (0..n)
        .map(|i| {
            let yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\ndata: {{round: '{round}'}}\n");
            ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: format!("cm-{i}"),
                namespace: None,
                defined_at: Location::default(),
                body: Data::from_yaml(&yaml).unwrap(),
            }
        })
        .collect()
}

async fn apply_hundred(server: &ApiServer) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, server.kubeconfig("kind-bench")).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let cluster = Cluster {
        client: kube::Client::try_from(config).unwrap(),
        context: "kind-bench".into(),
        server: server.url(),
        namespace: "default".into(),
    };
    let applier = Applier::new(cluster);
    let mut samples = Vec::new();
    for round in 0..7 {
        let objects = config_maps(100, round);
        let start = Instant::now();
        applier.apply(&objects, "bench", "p").await.unwrap();
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "server-side apply of 100 objects (one at a time):  median {:7.1} ms over {} rounds",
        median(samples),
        7
    );
}

/// Starts `loop run` in `dir` (with `dir/kubeconfig`) and returns once it printed `ready_text`.
fn start_run(dir: &std::path::Path, ready_text: &str) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loop"))
        .arg("run")
        .current_dir(dir)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains(ready_text) {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

fn fifty_workloads(server: &ApiServer) {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::new();
    for i in 0..50 {
        yaml.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: w{i}}}\nspec:\n  selector: {{matchLabels: {{app: w{i}}}}}\n  template:\n    metadata: {{labels: {{app: w{i}}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
        ));
    }
    std::fs::write(dir.path().join("app.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("Loopfile"), "k8s_yaml('app.yaml')\n").unwrap();
    std::fs::write(
        dir.path().join("kubeconfig"),
        server.kubeconfig("kind-bench"),
    )
    .unwrap();
    let start = Instant::now();
    let mut child = start_run(dir.path(), "50 resources up");
    let up = start.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = child.wait();
    println!(
        "loop run with 50 workloads: all ready in {:.2} s; loop RSS {rss:.1} MB",
        up.as_secs_f64()
    );
}

/// `loop run` with a live-updated Deployment: from saving files to all of them
/// being in the container (watcher, plan, one tar exec), for 1 and 1,000 files.
fn save_to_container(server: &ApiServer) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: live}\nspec:\n  selector: {matchLabels: {app: live}}\n  template:\n    metadata: {labels: {app: live}}\n    spec: {containers: [{name: c, image: live}]}\n";
    std::fs::write(dir.path().join("app.yaml"), yaml).unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("Loopfile"), "k8s_yaml('app.yaml')\ncustom_build('live', 'true', deps=['src'], live_update=[sync('src', '/app')])\n").unwrap();
    std::fs::write(
        dir.path().join("kubeconfig"),
        server.kubeconfig("kind-bench"),
    )
    .unwrap();
    let mut child = start_run(dir.path(), "1 resource up");
    let pod = server
        .objects()
        .into_iter()
        .find(|o| o["kind"] == "Pod" && o["metadata"]["labels"]["app"] == "live")
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .unwrap();
    let container = server.container_dir(&pod, "c").join("app");
    for files in [1usize, 1000] {
        let mut samples = Vec::new();
        for round in 0..5 {
            std::thread::sleep(Duration::from_millis(500));
            let content = format!("round {round} of {files}");
            let start = Instant::now();
            for i in 0..files {
                std::fs::write(dir.path().join(format!("src/f{i}.txt")), &content).unwrap();
            }
            let last = container.join(format!("f{}.txt", files - 1));
            let first = container.join("f0.txt");
            let deadline = Instant::now() + Duration::from_secs(60);
            while !(std::fs::read_to_string(&last).is_ok_and(|s| s == content)
                && std::fs::read_to_string(&first).is_ok_and(|s| s == content))
            {
                assert!(
                    Instant::now() < deadline,
                    "the files never reached the container"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            samples.push(start.elapsed().as_secs_f64() * 1e3);
        }
        println!("save -> {files:>4} file(s) in the container (loop run, tar over exec): median {:7.1} ms over 5 saves", median(samples));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = child.wait();
}

/// Requests the API server receives per minute from an idle `loop run` following 20
/// ready Deployments (their logs, rollouts and pods), counted over one minute after
/// they are all up (a watch counts once, when it is opened).
fn idle_requests(server: &ApiServer) {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::new();
    for i in 0..20 {
        yaml.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: idle{i}}}\nspec:\n  selector: {{matchLabels: {{app: idle{i}}}}}\n  template:\n    metadata: {{labels: {{app: idle{i}}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
        ));
    }
    std::fs::write(dir.path().join("app.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("Loopfile"), "k8s_yaml('app.yaml')\n").unwrap();
    std::fs::write(
        dir.path().join("kubeconfig"),
        server.kubeconfig("kind-bench"),
    )
    .unwrap();
    let mut child = start_run(dir.path(), "20 resources up");
    std::thread::sleep(Duration::from_secs(5));
    let before = server.requests().len();
    std::thread::sleep(Duration::from_secs(60));
    let during: Vec<String> = server.requests()[before..].to_vec();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = child.wait();
    let watches = during.iter().filter(|r| r.contains("watch=")).count();
    println!(
        "idle loop run with 20 workloads: {} API requests per minute ({watches} of them watches)",
        during.len()
    );
}

fn main() {
    let only_requests = std::env::args().any(|a| a == "requests");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(ApiServer::start());
    if only_requests {
        idle_requests(&server);
        return;
    }
    runtime.block_on(apply_hundred(&server));
    fifty_workloads(&server);
    save_to_container(&server);
    let fresh = runtime.block_on(ApiServer::start());
    idle_requests(&fresh);
}
