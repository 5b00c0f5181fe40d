//! Live update into a container over exec, against the loopback API server: the
//! time from `ContainerTarget::apply` on a plan to its completion, for 1 and for
//! 1,000 changed files (one tar stream either way), and one bare exec for
//! comparison. Prints the median of several runs. Run:
//! `cargo bench -p loop-engine --bench sync` (or with `--profile dev`).
//! The loopback server extracts with the host's `tar` into a temporary folder,
//! so the 1,000-file figure includes creating 1,000 files on this machine.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loop_engine::k8s::sync::{containers_for, ContainerTarget};
use loop_engine::k8s::{Applier, Cluster};
use loop_engine::live_update::{SyncPlan, SyncTarget};
use loop_lang::data::Data;
use loop_lang::model::{Cmd, ObjectRef};
use loop_test_apiserver::ApiServer;

const RUNS: usize = 11;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let server = ApiServer::start().await;
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&server.kubeconfig("bench")).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    let applier = Applier::new(Cluster {
        client: kube::Client::try_from(config).expect("client"),
        context: "bench".into(),
        server: server.url(),
        namespace: "default".into(),
    });
    let body = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "app", "image": "bench:dev"}]},
            },
        },
    });
    let workload = ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "bench".into(),
        namespace: None,
        defined_at: Default::default(),
        body: Data::from_json(&body.to_string()).expect("json"),
    };
    applier
        .apply(std::slice::from_ref(&workload), "bench", "bench")
        .await
        .expect("apply");
    let deadline = Instant::now() + Duration::from_secs(30);
    let containers = loop {
        let found = containers_for(&applier, &workload, &[], "bench")
            .await
            .expect("containers");
        if !found.is_empty() {
            break found;
        }
        assert!(Instant::now() < deadline, "the pod never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let target = ContainerTarget {
        client: applier.cluster.client.clone(),
        containers,
        log: Arc::new(|_| {}),
    };

    let src = tempfile::tempdir().expect("temp dir");
    let mut copies: Vec<(PathBuf, String)> = Vec::new();
    for i in 0..1000 {
        let file = src.path().join(format!("src/module{i:04}.py"));
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, format!("# module {i}\n{}", "x = 1\n".repeat(300))).expect("write");
        copies.push((file, format!("/app/src/module{i:04}.py")));
    }
    // The cost of one exec round trip alone: a `true` run step, no files.
    let baseline = SyncPlan {
        runs: vec![Cmd::Argv(vec!["true".into()])],
        ..SyncPlan::default()
    };
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        target.apply(&baseline).await.expect("exec");
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "one exec (`true`), no files:               median {:>8.2?} (min {:.2?}, max {:.2?}, {RUNS} runs)",
        times[RUNS / 2],
        times[0],
        times[RUNS - 1]
    );
    for n in [1, 1000] {
        let plan = SyncPlan {
            copies: copies[..n].to_vec(),
            ..SyncPlan::default()
        };
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let report = target.apply(&plan).await.expect("sync");
            times.push(start.elapsed());
            assert_eq!(report.copied, n);
        }
        times.sort();
        println!(
            "sync {n:>5} changed file(s) into 1 container: median {:>8.2?} (min {:.2?}, max {:.2?}, {RUNS} runs)",
            times[RUNS / 2],
            times[0],
            times[RUNS - 1]
        );
    }
}
