use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use loop_lang::data::Data;
use loop_test_apiserver::ApiServer;

use super::*;
use crate::k8s::Cluster;
use std::sync::Arc;

// ---- archive and batching --------------------------------------------------

#[test]
fn delete_batches_stay_under_the_limit_and_keep_every_path_in_order() {
    let paths: Vec<String> = (0..3000)
        .map(|i| format!("/app/{}/file-{i}.txt", "some folder/".repeat(20)))
        .collect();
    let batches = delete_batches(&paths);
    assert!(batches.len() > 1, "{} batches", batches.len());
    let base: usize = ["rm", "-rf", "--"].iter().map(|a| argument_cost(a)).sum();
    for batch in &batches {
        let cost: usize = base + batch.iter().map(|p| argument_cost(p)).sum::<usize>();
        assert!(cost <= MAX_COMMAND_BYTES, "{cost} > {MAX_COMMAND_BYTES}");
        // Raw arguments (what ARG_MAX counts) are never longer than their cost.
        let raw: usize = batch.iter().map(|p| p.len() + 1).sum();
        assert!(raw <= cost);
    }
    // Batches are full: the next path would not have fitted.
    for pair in batches.windows(2) {
        let cost: usize = base + pair[0].iter().map(|p| argument_cost(p)).sum::<usize>();
        assert!(cost + argument_cost(&pair[1][0]) > MAX_COMMAND_BYTES);
    }
    assert_eq!(batches.concat(), paths);
}

#[test]
fn delete_batches_small_empty_and_oversized() {
    assert!(delete_batches(&[]).is_empty());
    let few = vec!["/a".to_owned(), "/b c".to_owned()];
    assert_eq!(delete_batches(&few), vec![few.clone()]);
    let huge = format!("/{}", "x".repeat(MAX_COMMAND_BYTES));
    let paths = vec!["/a".to_owned(), huge.clone(), "/b".to_owned()];
    assert_eq!(
        delete_batches(&paths),
        vec![vec!["/a".to_owned()], vec![huge], vec!["/b".to_owned()]]
    );
}

#[test]
fn argument_cost_counts_url_encoding() {
    assert_eq!(argument_cost("abc"), "command=".len() + 3 + 1);
    assert_eq!(argument_cost("/a b"), "command=".len() + 3 + 1 + 3 + 1 + 1);
    assert_eq!(argument_cost("é"), "command=".len() + 6 + 1);
}

#[test]
fn archive_holds_files_at_their_destinations_with_modes() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    let text = dir.path().join("a.txt");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&text, "hello").unwrap();
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o640)).unwrap();
    let long = format!("/app/{}/deep.txt", "long-folder-name".repeat(12));
    let copies = vec![
        (text.clone(), "/app/a.txt".to_owned()),
        (script, "/app/bin/run.sh".to_owned()),
        (text, long.clone()),
        (dir.path().join("gone"), "/app/gone".to_owned()),
    ];
    let archive = build_archive(&copies).unwrap();
    assert_eq!(archive.copied, 3);
    assert_eq!(archive.vanished, vec!["/app/gone".to_owned()]);
    let mut reader = tar::Archive::new(archive.bytes.as_slice());
    let mut seen = Vec::new();
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mode = entry.header().mode().unwrap();
        let uid = entry.header().uid().unwrap();
        let mut content = String::new();
        std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
        seen.push((path, mode, uid, content));
    }
    assert_eq!(
        seen,
        vec![
            ("app/a.txt".to_owned(), 0o640, 0, "hello".to_owned()),
            (
                "app/bin/run.sh".to_owned(),
                0o755,
                0,
                "#!/bin/sh\necho hi\n".to_owned()
            ),
            (long[1..].to_owned(), 0o640, 0, "hello".to_owned()),
        ]
    );
}

#[test]
fn exit_statuses_become_sync_errors() {
    let status: Status = serde_json::from_value(serde_json::json!({
        "status": "Failure", "reason": "NonZeroExitCode", "message": "exit code 3",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }))
    .unwrap();
    let err = Done::from_status(&status, vec!["oops".into()])
        .check(|| "make".into())
        .unwrap_err();
    assert!(
        matches!(&err, SyncError::Failed { cmd, code: Some(3), output } if cmd == "make" && output == &["oops"]),
        "{err:?}"
    );
    let status: Status = serde_json::from_value(serde_json::json!({
        "status": "Failure", "reason": "InternalError", "message": "executable file not found in $PATH",
    }))
    .unwrap();
    let err = Done::from_status(&status, vec![])
        .check(|| "nope".into())
        .unwrap_err();
    assert!(
        matches!(&err, SyncError::Spawn { cmd, .. } if cmd == "nope"),
        "{err:?}"
    );
    let ok: Status = serde_json::from_value(serde_json::json!({"status": "Success"})).unwrap();
    assert!(Done::from_status(&ok, vec![]).check(String::new).is_ok());
}

#[test]
fn restart_signals_the_main_process() {
    assert_eq!(RESTART_COMMAND, ["/bin/sh", "-c", "kill 1"]);
}

// ---- against the loopback API server ---------------------------------------

const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    server: ApiServer,
    applier: Applier,
    workload: ObjectRef,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Setup {
    /// A Deployment `name` with `replicas` pods running `image`, plus a sidecar
    /// with another image.
    async fn new(name: &str, replicas: u32, image: &str) -> Setup {
        let server = ApiServer::start().await;
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&server.kubeconfig("loop-test")).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let cluster = Cluster {
            client: kube::Client::try_from(config).unwrap(),
            context: "loop-test".into(),
            server: server.url(),
            namespace: "default".into(),
        };
        let applier = Applier::new(cluster);
        let body = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [
                        {"name": "app", "image": image},
                        {"name": "sidecar", "image": "busybox:1.36"},
                    ]},
                },
            },
        });
        let workload = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: name.into(),
            namespace: None,
            defined_at: Default::default(),
            body: Data::from_json(&body.to_string()).unwrap(),
        };
        applier
            .apply(std::slice::from_ref(&workload), name, "test")
            .await
            .unwrap();
        Setup {
            server,
            applier,
            workload,
            lines: Arc::default(),
        }
    }

    /// Waits until `n` containers of the image run, and targets them.
    async fn target(&self, image_ref: &str, n: usize) -> ContainerTarget {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found = containers_for(&self.applier, &self.workload, &[], image_ref)
                .await
                .unwrap();
            if found.len() == n {
                let lines = self.lines.clone();
                return ContainerTarget {
                    client: self.applier.cluster.client.clone(),
                    containers: found,
                    log: Arc::new(move |line| lines.lock().unwrap().push(line.to_owned())),
                };
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} containers expected, found {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn dir(&self, target: &ContainerTarget, i: usize) -> PathBuf {
        let (_, pod, container) = &target.containers[i];
        self.server.container_dir(pod, container)
    }

    fn execs(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.contains("/exec?"))
            .count()
    }
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_the_running_containers_of_the_image_by_name() {
    let setup = Setup::new("web", 2, "example.com/web:v1").await;
    // Another tag, a digest: the same image.
    let target = setup.target("example.com/web:loop-1234", 2).await;
    assert!(target
        .containers
        .iter()
        .all(|(ns, pod, c)| ns == "default" && pod.starts_with("web-") && c == "app"));
    let found = containers_for(
        &setup.applier,
        &setup.workload,
        &[],
        "example.com/web@sha256:00",
    )
    .await
    .unwrap();
    assert_eq!(found, target.containers);
    let sidecar = containers_for(&setup.applier, &setup.workload, &[], "busybox")
        .await
        .unwrap();
    assert_eq!(sidecar.len(), 2);
    assert!(sidecar.iter().all(|(_, _, c)| c == "sidecar"));
    let none = containers_for(&setup.applier, &setup.workload, &[], "example.com/other")
        .await
        .unwrap();
    assert!(none.is_empty());
    let mut missing = setup.workload.clone();
    missing.name = "absent".into();
    assert!(
        containers_for(&setup.applier, &missing, &[], "example.com/web")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_deletes_and_runs_in_every_container() {
    let setup = Setup::new("api", 2, "api:dev").await;
    let target = setup.target("api", 2).await;
    let src = tempfile::tempdir().unwrap();
    let main = src.path().join("main.py");
    let tool = src.path().join("bin/tool.sh");
    write(&main, "print('v1')\n", 0o644);
    write(&tool, "#!/bin/sh\necho tool\n", 0o750);
    let plan = SyncPlan {
        copies: vec![
            (main.clone(), "/app/main.py".into()),
            (tool.clone(), "/app/bin/tool.sh".into()),
        ],
        deletes: vec![],
        runs: vec![
            // Relative paths resolve in the container's working folder; argv
            // paths are absolute container paths.
            Cmd::Shell("cat app/main.py > ran.txt; echo ran it".into()),
            Cmd::Argv(vec![
                "cp".into(),
                "/app/main.py".into(),
                "/app/copy.py".into(),
            ]),
        ],
        restart: false,
        target: None,
    };
    let before = setup.execs();
    let report = target.apply(&plan).await.unwrap();
    assert_eq!(
        report,
        SyncReport {
            copied: 2,
            deleted: 0,
            ran: 2
        }
    );
    assert_eq!(
        setup.execs() - before,
        2 * 3,
        "per container: tar and 2 runs"
    );
    for i in 0..2 {
        let dir = setup.dir(&target, i);
        assert_eq!(
            std::fs::read_to_string(dir.join("app/main.py")).unwrap(),
            "print('v1')\n"
        );
        assert_eq!(mode(&dir.join("app/main.py")), 0o644);
        assert_eq!(mode(&dir.join("app/bin/tool.sh")), 0o750);
        assert_eq!(
            std::fs::read_to_string(dir.join("ran.txt")).unwrap(),
            "print('v1')\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("app/copy.py")).unwrap(),
            "print('v1')\n"
        );
    }
    let lines = setup.lines.lock().unwrap().clone();
    for (_, pod, _) in &target.containers {
        assert!(lines.contains(&format!("{pod}/app: ran it")), "{lines:?}");
    }

    // Deletes (a file and a folder; a missing path is fine), and a source that
    // vanished since planning is deleted instead of copied.
    std::fs::remove_file(&main).unwrap();
    let plan = SyncPlan {
        copies: vec![(main.clone(), "/app/main.py".into())],
        deletes: vec![
            "/app/bin".into(),
            "/app/copy.py".into(),
            "/app/never".into(),
        ],
        runs: vec![],
        restart: false,
        target: None,
    };
    let before = setup.execs();
    let report = target.apply(&plan).await.unwrap();
    assert_eq!(
        report,
        SyncReport {
            copied: 0,
            deleted: 4,
            ran: 0
        }
    );
    assert_eq!(setup.execs() - before, 2, "one rm per container, no tar");
    for i in 0..2 {
        let dir = setup.dir(&target, i);
        assert!(!dir.join("app/bin").exists());
        assert!(!dir.join("app/copy.py").exists());
        assert!(!dir.join("app/main.py").exists());
        assert!(dir.join("ran.txt").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_step_stops_the_batch_with_its_exit_code_and_output() {
    let setup = Setup::new("worker", 1, "worker:dev").await;
    let target = setup.target("worker:dev", 1).await;
    let plan = SyncPlan {
        copies: vec![],
        deletes: vec![],
        runs: vec![
            Cmd::Shell("echo first; echo second >&2; exit 3".into()),
            Cmd::Shell("touch never-ran".into()),
        ],
        restart: false,
        target: None,
    };
    let err = target.apply(&plan).await.unwrap_err();
    let SyncError::Failed { cmd, code, output } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(cmd, "echo first; echo second >&2; exit 3");
    assert_eq!(*code, Some(3));
    let mut sorted = output.clone();
    sorted.sort();
    assert_eq!(sorted, ["first", "second"]);
    assert!(err.to_string().contains("exit code 3"), "{err}");
    assert!(!setup.dir(&target, 0).join("never-ran").exists());

    // A command the container does not have.
    let plan = SyncPlan {
        runs: vec![Cmd::Argv(vec!["no-such-program-here".into()])],
        ..SyncPlan::default()
    };
    let err = target.apply(&plan).await.unwrap_err();
    assert!(
        matches!(&err, SyncError::Spawn { cmd, .. } if cmd == "no-such-program-here"),
        "{err:?}"
    );

    // A container that is gone.
    let gone = ContainerTarget {
        containers: vec![("default".into(), "no-such-pod".into(), "app".into())],
        ..target.clone()
    };
    let err = gone.apply(&SyncPlan::default()).await;
    assert!(err.is_ok(), "nothing to do, no exec: {err:?}");
    let err = gone
        .apply(&SyncPlan {
            runs: vec![Cmd::Shell("true".into())],
            ..SyncPlan::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SyncError::Target(m) if m.contains("no-such-pod")),
        "{err:?}"
    );
    let nobody = ContainerTarget {
        containers: vec![],
        ..target.clone()
    };
    assert!(matches!(
        nobody.apply(&SyncPlan::default()).await,
        Err(SyncError::Target(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_files_take_one_exec_and_many_deletes_are_batched() {
    let setup = Setup::new("many", 1, "many:dev").await;
    let target = setup.target("many:dev", 1).await;
    let src = tempfile::tempdir().unwrap();
    let folder = "a-rather-long-folder-name-for-batching/".repeat(4);
    let mut copies = Vec::new();
    for i in 0..1000 {
        let file = src.path().join(format!("f{i:04}.txt"));
        write(&file, &format!("file {i}\n"), 0o644);
        copies.push((file, format!("/srv/{folder}f{i:04}.txt")));
    }
    let plan = SyncPlan {
        copies: copies.clone(),
        ..SyncPlan::default()
    };
    let before = setup.execs();
    let report = target.apply(&plan).await.unwrap();
    assert_eq!(report.copied, 1000);
    assert_eq!(setup.execs() - before, 1, "one exec for 1,000 files");
    let dir = setup.dir(&target, 0);
    for (i, (_, dest)) in copies.iter().enumerate() {
        let path = dir.join(&dest[1..]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("file {i}\n")
        );
    }

    let deletes: Vec<String> = copies.iter().map(|(_, d)| d.clone()).collect();
    let batches = delete_batches(&deletes).len();
    assert!(batches > 1, "the paths need more than one rm");
    let before = setup.execs();
    let report = target
        .apply(&SyncPlan {
            deletes,
            ..SyncPlan::default()
        })
        .await
        .unwrap();
    assert_eq!(report.deleted, 1000);
    assert_eq!(setup.execs() - before, batches);
    let left = std::fs::read_dir(dir.join(format!("srv/{folder}")))
        .unwrap()
        .count();
    assert_eq!(left, 0);
}
