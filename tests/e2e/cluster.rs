//! The Kubernetes examples against a real cluster (kind, k3d, minikube, ...):
//! runs only when `LOOP_E2E_KUBECONFIG` names a kubeconfig, and says it is skipped
//! otherwise. Building the example image needs Docker and kind or k3d.

use std::path::PathBuf;

use crate::support::{repo, run_loop_with};

fn kubeconfig() -> Option<PathBuf> {
    match std::env::var_os("LOOP_E2E_KUBECONFIG") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            eprintln!("skipped: LOOP_E2E_KUBECONFIG is not set (point it at a kind/k3d/minikube kubeconfig to run the real-cluster suite)");
            None
        }
    }
}

#[test]
fn k8s_shop_example_comes_up_and_goes_down_on_a_real_cluster() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let example = repo().join("examples/k8s-shop");
    let env = [("KUBECONFIG", kubeconfig.as_path())];
    let up = run_loop_with(&example, &["ci", "--timeout", "10m"], &env);
    assert_eq!(up.code, 0, "loop ci failed\n{}{}", up.stdout, up.stderr);
    assert!(up.stdout.contains("web │ [loop] ready in"), "{}", up.stdout);
    let down = run_loop_with(&example, &["down"], &env);
    assert_eq!(
        down.code, 0,
        "loop down failed\n{}{}",
        down.stdout, down.stderr
    );
    assert!(
        down.stdout.contains("deleting Deployment/default/web"),
        "{}",
        down.stdout
    );
}

/// `kubectl` against the suite's cluster; its stdout, trimmed.
fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const LIVE_YAML: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: loop-e2e-web}
spec:
  replicas: 1
  selector: {matchLabels: {app: loop-e2e-web}}
  template:
    metadata: {labels: {app: loop-e2e-web}}
    spec:
      volumes: [{name: www, emptyDir: {}}]
      containers:
      - name: web
        image: docker.io/library/busybox
        volumeMounts: [{name: www, mountPath: /www}]
        ports: [{containerPort: 8080}]
        command: ["sh", "-c", "trap 'exit 0' TERM; echo hello-from-the-pod; echo up > /www/index.html; httpd -p 8080 -h /www; while true; do sleep 1; done"]
"#;

/// The image is "built" without a Docker daemon: the command only names a public
/// image by a fixed tag, which the cluster pulls.
const LIVE_LOOPFILE: &str = r#"
k8s_yaml("app.yaml")
custom_build(
    "docker.io/library/busybox",
    "echo no Docker daemon needed",
    deps = ["src"],
    tag = "1.36",
    skips_local_docker = True,
    live_update = [
        sync("src", "/www"),
        run("date > /www/ran.txt"),
        restart_container(),
    ],
)
k8s_resource("loop-e2e-web", port_forwards = "LOCAL:8080")
"#;

#[test]
fn logs_forwards_live_updates_restarts_and_down_on_a_real_cluster() {
    use std::io::{Read, Write};

    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let local = crate::support::free_port();
    let dir = crate::support::project(&[
        (
            "Loopfile",
            &LIVE_LOOPFILE.replace("LOCAL", &local.to_string()),
        ),
        ("app.yaml", LIVE_YAML),
        ("src/page.txt", "v1"),
    ]);
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run"],
        &[("KUBECONFIG", kubeconfig.as_path())],
    );
    loop_run.wait_for_output("loop-e2e-web │ [loop] ready in", 300);
    loop_run.wait_for_output("hello-from-the-pod", 60);

    crate::support::wait_until(
        60,
        "the port-forward to answer",
        || {
            let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", local)) else {
                return false;
            };
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut reply = String::new();
            conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").is_ok()
                && conn.read_to_string(&mut reply).is_ok()
                && reply.contains("up")
        },
        || loop_run.output(),
    );

    let selector = ["-l", "app=loop-e2e-web"];
    let uid = || {
        kubectl(
            &kubeconfig,
            &[
                &["get", "pods"][..],
                &selector,
                &["-o", "jsonpath={.items[*].metadata.uid}"],
            ]
            .concat(),
        )
    };
    let restarts = || {
        kubectl(
            &kubeconfig,
            &[
                &["get", "pods"][..],
                &selector,
                &[
                    "-o",
                    "jsonpath={.items[*].status.containerStatuses[0].restartCount}",
                ],
            ]
            .concat(),
        )
    };
    let pod_before = uid();
    let restarts_before = restarts();

    std::fs::write(dir.path().join("src/page.txt"), "v2").unwrap();
    crate::support::wait_until(
        120,
        "the live update to land and the container to restart",
        || {
            let page = kubectl(
                &kubeconfig,
                &["exec", "deploy/loop-e2e-web", "--", "cat", "/www/page.txt"],
            );
            page == "v2" && restarts() != restarts_before
        },
        || loop_run.output(),
    );
    assert_eq!(uid(), pod_before, "a live update must not replace the pod");
    assert!(
        !kubectl(
            &kubeconfig,
            &["exec", "deploy/loop-e2e-web", "--", "cat", "/www/ran.txt"]
        )
        .is_empty(),
        "the run() step ran"
    );
    drop(loop_run);

    let down = run_loop_with(
        dir.path(),
        &["down"],
        &[("KUBECONFIG", kubeconfig.as_path())],
    );
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
    crate::support::wait_until(
        120,
        "down to leave nothing it applied",
        || {
            kubectl(
                &kubeconfig,
                &[
                    "get",
                    "deploy,rs,svc,cm,pods",
                    "-l",
                    "app.kubernetes.io/managed-by=loop",
                    "-o",
                    "name",
                ],
            )
            .is_empty()
                && kubectl(
                    &kubeconfig,
                    &[&["get", "pods"][..], &selector, &["-o", "name"]].concat(),
                )
                .is_empty()
        },
        || down.stdout.clone(),
    );
}

#[test]
fn a_failing_rollout_names_the_reason_and_a_fix_applies_at_once_on_a_real_cluster() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let broken = LIVE_YAML
        .replace("loop-e2e-web", "loop-e2e-broken")
        .replace(
            "image: docker.io/library/busybox",
            "image: docker.io/library/busybox:loop-e2e-no-such-tag",
        );
    let dir = crate::support::project(&[
        ("Loopfile", "k8s_yaml('app.yaml')\n"),
        ("app.yaml", &broken),
    ]);
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run"],
        &[("KUBECONFIG", kubeconfig.as_path())],
    );
    crate::support::wait_until(
        180,
        "the rollout failure reason",
        || {
            let out = loop_run.output();
            out.contains("ErrImagePull") || out.contains("ImagePullBackOff")
        },
        || loop_run.output(),
    );
    std::fs::write(
        dir.path().join("app.yaml"),
        broken.replace(":loop-e2e-no-such-tag", ":1.36"),
    )
    .unwrap();
    // Well within the 300 s rollout deadline: the fix does not wait for the
    // failing rollout to time out.
    loop_run.wait_for_output("loop-e2e-broken │ [loop] ready in", 120);
    drop(loop_run);
    let down = run_loop_with(
        dir.path(),
        &["down"],
        &[("KUBECONFIG", kubeconfig.as_path())],
    );
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
}
