//! `loop ci` and `loop down` against a Kubernetes API server on loopback that
//! speaks the real wire protocol (`tests/kube-apiserver`), so that kube-rs is
//! exercised as against a cluster.

use std::path::{Path, PathBuf};

use loop_test_apiserver::{ApiServer, PodBehaviour};
use serde_json::Value;

use crate::support::{project, run_loop_with, Run};

/// The API server, running on its own runtime, and a kubeconfig for it.
pub(crate) struct Cluster {
    pub(crate) server: ApiServer,
    pub(crate) kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl Cluster {
    pub(crate) fn start(context: &str) -> Cluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(ApiServer::start());
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, server.kubeconfig(context)).unwrap();
        Cluster {
            server,
            kubeconfig,
            _dir: dir,
            _runtime: runtime,
        }
    }

    pub(crate) fn run(&self, dir: &Path, args: &[&str]) -> Run {
        run_loop_with(dir, args, &[("KUBECONFIG", &self.kubeconfig)])
    }

    pub(crate) fn deployment(&self, name: &str) -> Option<Value> {
        self.server.object("apps", "deployments", "default", name)
    }
}

const APP_YAML: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: shop/web
        ports: [{containerPort: 8080}]
        envFrom: [{configMapRef: {name: web-config}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {MODE: dev}
"#;

const LOOPFILE: &str = r#"
k8s_yaml("app.yaml")
custom_build("shop/web", "echo built $EXPECTED_REF > built.txt", deps=["src"])
k8s_resource("web", port_forwards=8080, objects=["web-config:configmap"])
local_resource("seed", cmd="echo seeded > seeded.txt", resource_deps=["web"])
"#;

fn shop() -> tempfile::TempDir {
    project(&[
        ("Loopfile", LOOPFILE),
        ("app.yaml", APP_YAML),
        ("src/main.go", "package main\n"),
    ])
}

#[test]
fn ci_builds_applies_waits_for_the_rollout_and_down_deletes_it() {
    let cluster = Cluster::start("kind-test");
    let dir = shop();
    let run = cluster.run(dir.path(), &["ci", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    let built = std::fs::read_to_string(dir.path().join("built.txt")).unwrap();
    let tag = built
        .trim()
        .strip_prefix("built shop/web:")
        .expect("EXPECTED_REF is name:tag")
        .to_owned();
    assert!(tag.starts_with("loop-"), "{built}");
    let web = cluster
        .deployment("web")
        .expect("the Deployment was applied");
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("shop/web:{tag}")
    );
    assert_eq!(
        web["spec"]["replicas"], 2,
        "numbers survive the trip: {web}"
    );
    assert_eq!(
        web["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "loop"
    );
    assert_eq!(web["metadata"]["labels"]["loop.dev/resource"], "web");
    assert!(cluster
        .server
        .object("", "services", "default", "web")
        .is_some());
    assert!(cluster
        .server
        .object("", "configmaps", "default", "web-config")
        .is_some());
    assert!(
        cluster.server.requests().iter().any(|r| r
            .starts_with("PATCH /apis/apps/v1/namespaces/default/deployments/web?")
            && r.contains("fieldManager=loop")
            && r.contains("force=true")),
        "{:?}",
        cluster.server.requests()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("seeded.txt")).unwrap(),
        "seeded\n",
        "dependents start after the rollout"
    );
    assert!(
        run.stdout.contains("web │ [loop] ready in"),
        "{}",
        run.stdout
    );

    // Unchanged inputs: no second build, also across runs of loop.
    std::fs::remove_file(dir.path().join("built.txt")).unwrap();
    let again = cluster.run(dir.path(), &["ci", "--timeout", "60s"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(
        !dir.path().join("built.txt").exists(),
        "the image was rebuilt although nothing changed\n{}",
        again.stdout
    );

    // The endpoint controllers copied the Service's labels onto objects of their own.
    let slices = cluster
        .server
        .objects()
        .into_iter()
        .filter(|o| o["kind"] == "EndpointSlice")
        .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "loop")
        .count();
    assert_eq!(
        slices, 1,
        "the test server copies labels as the endpoint controllers do"
    );
    let down = cluster.run(dir.path(), &["down"]);
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
    assert!(
        down.stdout.contains("deleting Deployment/default/web"),
        "{}",
        down.stdout
    );
    assert!(
        !down.stdout.contains("Endpoint"),
        "down deletes only what loop applied\n{}",
        down.stdout
    );
    assert!(
        down.stdout.contains("deleted 3 object(s)"),
        "exactly the Deployment, Service and ConfigMap it applied\n{}",
        down.stdout
    );
    assert!(cluster.deployment("web").is_none());
    assert!(cluster
        .server
        .object("", "configmaps", "default", "web-config")
        .is_none());
    assert!(
        cluster
            .server
            .object("", "namespaces", "", "default")
            .is_some(),
        "namespaces are kept"
    );
}

#[test]
fn a_context_that_does_not_look_local_is_refused() {
    let dir = shop();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: 'https://k8s.example.com'}\nusers:\n- name: prod\n  user: {token: x}\ncontexts:\n- name: prod\n  context: {cluster: prod, user: prod}\ncurrent-context: prod\n").unwrap();
    let run = run_loop_with(
        dir.path(),
        &["ci", "--timeout", "20s"],
        &[("KUBECONFIG", &kubeconfig)],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(
            "refusing to change Kubernetes context \"prod\" (server https://k8s.example.com/)"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("allow_k8s_contexts(\"prod\")"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_unreachable_cluster_is_a_clear_failure() {
    let dir = shop();
    let port = crate::support::free_port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: kind-x\n  cluster: {{server: 'http://127.0.0.1:{port}'}}\nusers:\n- name: kind-x\n  user: {{token: x}}\ncontexts:\n- name: kind-x\n  context: {{cluster: kind-x, user: kind-x}}\ncurrent-context: kind-x\n")).unwrap();
    let run = run_loop_with(
        dir.path(),
        &["ci", "--timeout", "30s"],
        &[("KUBECONFIG", &kubeconfig)],
    );
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("cluster unreachable"), "{}", run.stdout);
}

/// Under `loop run`, an unreachable cluster is retried: the failure is said
/// once, then each retry of the same failure waits twice as long.
#[test]
fn loop_run_retries_an_unreachable_cluster_with_a_growing_wait() {
    let dir = shop();
    let port = crate::support::free_port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: kind-x\n  cluster: {{server: 'http://127.0.0.1:{port}'}}\nusers:\n- name: kind-x\n  user: {{token: x}}\ncontexts:\n- name: kind-x\n  context: {{cluster: kind-x, user: kind-x}}\ncurrent-context: kind-x\n")).unwrap();
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run", "--port", "0"],
        &[("KUBECONFIG", &kubeconfig)],
    );
    loop_run.wait_for_output("retrying in 5.0s", 30);
    loop_run.wait_for_output("still failing: ", 30);
    loop_run.wait_for_output("retrying in 10.0s", 30);
    // Each resource says the failure in full once; the retries say "still".
    let out = loop_run.output();
    let mut first: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("retrying in") && !l.contains("still failing"))
        .map(|l| l.split('│').next().unwrap_or("").trim())
        .collect();
    let said = first.len();
    first.sort();
    first.dedup();
    assert_eq!(said, first.len(), "{out}");
}

#[test]
fn a_forbidden_apply_shows_the_server_message_and_the_loopfile_line() {
    let cluster = Cluster::start("kind-test");
    cluster.server.forbid("patch", "deployments");
    let dir = shop();
    let run = cluster.run(dir.path(), &["ci", "--timeout", "30s"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("Deployment/web (declared at Loopfile:2:1)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Forbidden, HTTP 403"), "{}", run.stdout);
}

#[test]
fn an_invalid_object_is_rejected_with_the_server_message() {
    let cluster = Cluster::start("kind-test");
    let dir = project(&[(
        "Loopfile",
        "k8s_yaml(blob('apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: Not_Valid}\\n'))\n",
    )]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "30s"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("ConfigMap/Not_Valid (declared at Loopfile:1:1)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Invalid, HTTP 422"), "{}", run.stdout);
}

#[test]
fn a_pod_that_never_becomes_ready_names_the_reason() {
    let cluster = Cluster::start("kind-test");
    cluster
        .server
        .set_pod_behaviour("web", PodBehaviour::ImagePullBackOff);
    let dir = shop();
    let run = cluster.run(dir.path(), &["ci", "--timeout", "8s"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("Deployment/web: ImagePullBackOff"),
        "{}",
        run.stdout
    );
    assert!(!dir.path().join("seeded.txt").exists());
}

#[test]
fn a_failing_build_fails_the_resource() {
    let cluster = Cluster::start("kind-test");
    let dir = project(&[
        ("Loopfile", "k8s_yaml('app.yaml')\ncustom_build('shop/web', 'echo cannot compile >&2; exit 2', deps=['src'])\n"),
        ("app.yaml", APP_YAML),
        ("src/main.go", "x"),
    ]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "30s"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("ci failed: web"), "{}", run.stdout);
    assert!(run.stdout.contains("exit code 2"), "{}", run.stdout);
    assert!(run.stderr.contains("cannot compile"), "{}", run.stderr);
    assert!(
        cluster.deployment("web").is_none(),
        "nothing is applied when the build fails"
    );
}

fn pod_names(server: &ApiServer, app: &str) -> Vec<String> {
    server
        .objects()
        .into_iter()
        .filter(|o| {
            o["kind"] == "Pod"
                && o["metadata"]["labels"]["app"] == app
                && o["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn run_streams_pod_logs_forwards_ports_and_live_updates_containers() {
    use std::io::{Read, Write};

    let cluster = Cluster::start("kind-test");
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 64];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    cluster.server.expose_port("web", 8080, echo_addr);
    let local_port = crate::support::free_port();
    let loopfile = format!(
        r#"
k8s_yaml("app.yaml")
custom_build("shop/web", "echo build >> builds.txt", deps=["src"],
    live_update=[sync("src", "/srv/app"), run(["touch", "/srv/app/ran"])])
k8s_resource("web", port_forwards="{local_port}:8080")
"#
    );
    let dir = project(&[
        ("Loopfile", &loopfile),
        ("app.yaml", APP_YAML),
        ("src/index.html", "v1"),
    ]);
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run"],
        &[("KUBECONFIG", &cluster.kubeconfig)],
    );
    loop_run.wait_for_output("web │ [loop] ready in", 60);
    let pods = pod_names(&cluster.server, "web");
    assert_eq!(pods.len(), 2, "{pods:?}");

    cluster
        .server
        .append_log(&pods[0], "web", "hello from the pod");
    loop_run.wait_for_output("hello from the pod", 30);

    crate::support::wait_until(
        30,
        "the port-forward to answer",
        || {
            let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", local_port)) else {
                return false;
            };
            conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0u8; 4];
            conn.write_all(b"ping").is_ok() && conn.read_exact(&mut buf).is_ok() && &buf == b"ping"
        },
        || loop_run.output(),
    );

    std::fs::write(dir.path().join("src/index.html"), "v2").unwrap();
    for pod in &pods {
        let synced = cluster
            .server
            .container_dir(pod, "web")
            .join("srv/app/index.html");
        crate::support::wait_until(
            30,
            "the file to be synced into the container",
            || std::fs::read_to_string(&synced).is_ok_and(|s| s == "v2"),
            || loop_run.output(),
        );
        let ran = cluster.server.container_dir(pod, "web").join("srv/app/ran");
        crate::support::wait_until(
            30,
            "the run() step in the container",
            || ran.exists(),
            || loop_run.output(),
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        crate::support::lines(&dir.path().join("builds.txt")),
        1,
        "a synced change must not rebuild\n{}",
        loop_run.output()
    );
    assert_eq!(
        pod_names(&cluster.server, "web"),
        pods,
        "a synced change must not replace pods"
    );
}

#[test]
fn secret_values_are_scrubbed_from_logs_unless_disabled() {
    let cluster = Cluster::start("kind-test");
    // "hunter22" is aHVudGVyMjI= in base64.
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ndata: {password: aHVudGVyMjI=}\nstringData: {token: s3cr3t-t0ken}\n";
    let leak = "local_resource('leak', cmd='echo pw=hunter22 raw=aHVudGVyMjI= tok=s3cr3t-t0ken; echo err=hunter22 >&2')\n";
    let dir = project(&[
        ("Loopfile", &format!("k8s_yaml('secret.yaml')\n{leak}")),
        ("secret.yaml", secret),
    ]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let log = std::fs::read_to_string(dir.path().join(".loop/logs/leak.log")).unwrap();
    for text in [&run.stdout, &run.stderr, &log] {
        for value in ["hunter22", "aHVudGVyMjI=", "s3cr3t-t0ken"] {
            assert!(!text.contains(value), "{value} leaked:\n{text}");
        }
    }
    assert!(
        run.stdout.contains("pw=[redacted secret db:password] raw=[redacted secret db:password] tok=[redacted secret db:token]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("err=[redacted secret db:password]"),
        "{}",
        run.stdout
    );

    let dir = project(&[
        (
            "Loopfile",
            &format!("secret_settings(disable_scrub=True)\nk8s_yaml('secret.yaml')\n{leak}"),
        ),
        ("secret.yaml", secret),
    ]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("pw=hunter22"), "{}", run.stdout);
}

#[test]
fn crds_come_before_their_custom_resources_in_the_loopfile_namespace() {
    let cluster = Cluster::start("kind-test");
    let objects = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: gizmo}
spec: {size: 3}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
"#;
    let dir = project(&[
        (
            "Loopfile",
            "k8s_namespace('shop')\nk8s_yaml('objects.yaml')\n",
        ),
        ("objects.yaml", objects),
    ]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let widget = cluster
        .server
        .object("example.com", "widgets", "shop", "gizmo")
        .expect("the custom resource was applied in namespace shop");
    assert_eq!(widget["spec"]["size"], 3);
    let down = cluster.run(dir.path(), &["down", "--delete-namespaces"]);
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
    assert!(cluster
        .server
        .object("example.com", "widgets", "shop", "gizmo")
        .is_none());
    assert!(
        down.stdout.contains("deleting Namespace/shop"),
        "{}",
        down.stdout
    );
}

#[test]
fn crash_loop_back_off_is_reported_with_the_last_logs() {
    let cluster = Cluster::start("kind-test");
    cluster
        .server
        .set_pod_behaviour("web", PodBehaviour::CrashLoopBackOff);
    let dir = shop();
    let ci = crate::support::Background::start_with_env(
        dir.path(),
        &["ci", "--timeout", "60s"],
        &[("KUBECONFIG", &cluster.kubeconfig)],
    );
    crate::support::wait_until(
        30,
        "pods",
        || !pod_names(&cluster.server, "web").is_empty(),
        || ci.output(),
    );
    for pod in pod_names(&cluster.server, "web") {
        cluster
            .server
            .append_log(&pod, "web", "panic: cannot open config");
    }
    ci.wait_for_output("Deployment/web: CrashLoopBackOff", 30);
    ci.wait_for_output("| panic: cannot open config", 30);
}

/// A fix made while a rollout fails is applied at once: the new version cancels
/// the wait for the old one (before, it waited for the 300 s rollout timeout).
#[test]
fn a_fix_during_a_failing_rollout_is_applied_at_once() {
    let cluster = Cluster::start("kind-test");
    cluster
        .server
        .set_pod_behaviour("web", PodBehaviour::ImagePullBackOff);
    let dir = shop();
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run", "--port", "0"],
        &[("KUBECONFIG", &cluster.kubeconfig)],
    );
    loop_run.wait_for_output("Deployment/web: ImagePullBackOff", 60);
    // The user fixes the image; only the fixed version's pods can pull it (the
    // rollout, which follows the pods by watch, must not see them ready first).
    let fixed = APP_YAML.replace(
        "image: shop/web",
        "image: shop/web\n        imagePullPolicy: IfNotPresent",
    );
    std::fs::write(dir.path().join("app.yaml"), fixed).unwrap();
    loop_run.wait_for_output(
        "web │ [loop] a newer version replaces the update in progress",
        30,
    );
    cluster.server.set_pod_behaviour("web", PodBehaviour::Ready);
    loop_run.wait_for_output("web │ [loop] ready in", 30);
    let web = cluster.deployment("web").unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent",
        "the fix was applied\n{}",
        loop_run.output()
    );
}

/// A context named like production is refused even when its server is on
/// loopback (a tunnel or `kubectl proxy` to production looks exactly like that).
#[test]
fn a_production_name_is_refused_even_on_loopback() {
    let cluster = Cluster::start("prod-eu");
    let dir = shop();
    let run = cluster.run(dir.path(), &["ci", "--timeout", "20s"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("refusing to change Kubernetes context \"prod-eu\"")
            && run.stdout.contains("its name says production (\"prod\")")
            && run.stdout.contains("allow_k8s_contexts(\"prod-eu\")"),
        "{}",
        run.stdout
    );
    assert!(cluster.deployment("web").is_none(), "nothing was applied");
    let allowed = project(&[
        (
            "Loopfile",
            &format!("allow_k8s_contexts('prod-eu')\n{LOOPFILE}"),
        ),
        ("app.yaml", APP_YAML),
        ("src/main.go", "package main\n"),
    ]);
    let run = cluster.run(allowed.path(), &["ci", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "allowed by name\n{}", run.stdout);
}

/// An edited image definition (not only its files) rebuilds and redeploys: a
/// reload diffs images as well as resources.
#[test]
fn an_edited_build_definition_rebuilds_and_redeploys() {
    let cluster = Cluster::start("kind-test");
    let dir = shop();
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run", "--port", "0"],
        &[("KUBECONFIG", &cluster.kubeconfig)],
    );
    loop_run.wait_for_output("web │ [loop] ready in", 60);
    let first = cluster.deployment("web").unwrap()["spec"]["template"]["spec"]["containers"][0]
        ["image"]
        .clone();
    let loopfile = LOOPFILE.replace(
        "\"echo built $EXPECTED_REF > built.txt\"",
        "\"echo built with -O2 $EXPECTED_REF > built.txt\"",
    );
    assert_ne!(loopfile, LOOPFILE);
    std::fs::write(dir.path().join("Loopfile"), loopfile).unwrap();
    loop_run.wait_for_output("changed: web", 30);
    crate::support::wait_until(
        30,
        "the new build to be deployed",
        || {
            std::fs::read_to_string(dir.path().join("built.txt")).is_ok_and(|b| b.contains("-O2"))
                && cluster.deployment("web").is_some_and(|d| {
                    d["spec"]["template"]["spec"]["containers"][0]["image"] != first
                })
        },
        || loop_run.output(),
    );
}

/// A TCP server on loopback that answers every read with `tag` + the bytes read.
fn tagged_echo(tag: &'static str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 64];
                while let Ok(n) = stream.read(&mut buf) {
                    let mut out = tag.as_bytes().to_vec();
                    out.extend_from_slice(&buf[..n]);
                    if n == 0 || stream.write_all(&out).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// The reply to `ping` through a new connection to `port` on loopback, if any.
fn ping(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    conn.write_all(b"ping").ok()?;
    let mut buf = [0u8; 7];
    conn.read_exact(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

const SERVICE_YAML: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: api
        image: busybox
        env: [{name: ROUND, value: "1"}]
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: api-svc}
spec: {selector: {app: api}, ports: [{port: 80, targetPort: http}]}
"#;

#[test]
fn a_port_forward_to_a_service_reaches_its_pod_and_moves_with_it() {
    let cluster = Cluster::start("kind-test");
    let local_port = crate::support::free_port();
    let loopfile = format!(
        "k8s_yaml('app.yaml')\n\
         k8s_resource('api', port_forwards=[port_forward({local_port}, 80, service='api-svc')])\n"
    );
    let dir = project(&[("Loopfile", &loopfile), ("app.yaml", SERVICE_YAML)]);
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run"],
        &[("KUBECONFIG", &cluster.kubeconfig)],
    );
    loop_run.wait_for_output("api │ [loop] ready in", 60);
    let first = pod_names(&cluster.server, "api");
    assert_eq!(first.len(), 1, "{first:?}");
    // Only the named target port (8080) of the pod answers.
    cluster
        .server
        .expose_port(&first[0], 8080, tagged_echo("v1:"));
    cluster
        .server
        .expose_port(&first[0], 80, tagged_echo("no:"));
    crate::support::wait_until(
        30,
        "the forward to the Service to reach the pod's named port",
        || ping(local_port).as_deref() == Some("v1:ping"),
        || loop_run.output(),
    );
    loop_run.wait_for_output(
        &format!("port-forward {local_port} -> service/api-svc:80"),
        10,
    );

    // A changed template replaces the pod; the forward moves to the new one.
    std::fs::write(
        dir.path().join("app.yaml"),
        SERVICE_YAML.replace("value: \"1\"", "value: \"2\""),
    )
    .unwrap();
    crate::support::wait_until(
        60,
        "the pod to be replaced",
        || {
            let now = pod_names(&cluster.server, "api");
            now.len() == 1 && now != first
        },
        || loop_run.output(),
    );
    let second = pod_names(&cluster.server, "api");
    cluster
        .server
        .expose_port(&second[0], 8080, tagged_echo("v2:"));
    crate::support::wait_until(
        30,
        "the forward to reach the new pod",
        || ping(local_port).as_deref() == Some("v2:ping"),
        || loop_run.output(),
    );
    loop_run.wait_for_output(&format!("(pod {})", second[0]), 10);
}

/// A `k8s_custom_deploy` port forward that names no container port: the
/// objects are known only once apply_cmd runs, so the port comes from the pod,
/// as Tilt picks it (the first port a container declares, here).
#[test]
fn a_custom_deploy_port_forward_without_a_container_port_reaches_the_pods_port() {
    if which_kubectl().is_none() {
        panic!("kubectl is on the PATH (.ci/run installs kubernetes-client)");
    }
    let cluster = Cluster::start("kind-test");
    let local_port = crate::support::free_port();
    let tiltfile = format!(
        "k8s_custom_deploy('web', apply_cmd='kubectl apply --server-side --validate=false -f app.yaml -o yaml', delete_cmd='true', deps=['app.yaml'])\n\
         k8s_resource('web', port_forwards={local_port})\n"
    );
    let app = CUSTOM_APP.replace(
        "        image: shop/web\n",
        "        image: shop/web\n        ports: [{containerPort: 8080}]\n",
    );
    let dir = project(&[("Tiltfile", &tiltfile), ("app.yaml", &app)]);
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run"],
        &[("KUBECONFIG", &cluster.kubeconfig)],
    );
    loop_run.wait_for_output("web │ [loop] ready in", 60);
    let pods = pod_names(&cluster.server, "web");
    assert_eq!(pods.len(), 1, "{pods:?}");
    cluster
        .server
        .expose_port(&pods[0], 8080, tagged_echo("wb:"));
    crate::support::wait_until(
        30,
        "the forward to reach the pod's declared port",
        || ping(local_port).as_deref() == Some("wb:ping"),
        || loop_run.output(),
    );
    loop_run.wait_for_output(
        &format!("port-forward {local_port} -> web (its pod's port)"),
        10,
    );
}

#[test]
fn a_missing_kubeconfig_is_said_once_with_what_to_do() {
    let dir = shop();
    let missing = dir.path().join("no-such-kubeconfig");
    let run = run_loop_with(
        dir.path(),
        &["ci", "--timeout", "20s"],
        &[("KUBECONFIG", &missing)],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    let path = missing.display().to_string();
    assert_eq!(
        run.stdout.matches(&path).count(),
        1,
        "the path is said once\n{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("not connected to Kubernetes: there is no kubeconfig at {path} (KUBECONFIG); point KUBECONFIG at a kubeconfig, pick a context with --context, or create a local cluster (`kind create cluster` or `k3d cluster create`)")),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("'\""),
        "no double quoting\n{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("failing: web (not connected to Kubernetes"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_unknown_context_lists_the_contexts_that_exist() {
    let cluster = Cluster::start("kind-test");
    let dir = shop();
    let run = run_loop_with(
        dir.path(),
        &["ci", "--timeout", "20s", "--context", "nope"],
        &[("KUBECONFIG", &cluster.kubeconfig)],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.contains(&format!(
            "not connected to Kubernetes: the kubeconfig {} has no context \"nope\" (its contexts: kind-test); pass one of them with --context",
            cluster.kubeconfig.display()
        )),
        "{}",
        run.stdout
    );
    assert!(cluster.deployment("web").is_none());
}

#[test]
fn run_keeps_trying_until_the_kubeconfig_exists() {
    let cluster = Cluster::start("kind-test");
    let dir = project(&[
        ("Loopfile", "k8s_yaml('app.yaml')\n"),
        ("app.yaml", APP_YAML),
    ]);
    let later = dir.path().join("later-kubeconfig");
    let loop_run =
        crate::support::Background::start_with_env(dir.path(), &["run"], &[("KUBECONFIG", &later)]);
    loop_run.wait_for_output("there is no kubeconfig at", 30);
    std::fs::copy(&cluster.kubeconfig, &later).unwrap();
    loop_run.wait_for_output("web │ [loop] ready in", 90);
    assert!(cluster.deployment("web").is_some());
    assert_eq!(
        loop_run
            .output()
            .matches("there is no kubeconfig at")
            .count(),
        1,
        "the same reason is said once\n{}",
        loop_run.output()
    );
}

/// A CronJob is a workload like the others: its image is injected, and the
/// runtime follows it (ready once stored: its pods come on the schedule).
#[test]
fn a_cron_job_is_deployed_and_followed() {
    let cluster = Cluster::start("kind-test");
    let cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  schedule: '0 3 * * *'\n  jobTemplate:\n    spec:\n      template:\n        metadata: {labels: {app: nightly}}\n        spec:\n          restartPolicy: Never\n          containers: [{name: job, image: tools/job}]\n";
    let dir = project(&[
        (
            "Loopfile",
            "k8s_yaml('cron.yaml')\ncustom_build('tools/job', 'true', deps=['src'])\n",
        ),
        ("cron.yaml", cron),
        ("src/job.sh", "echo\n"),
    ]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "30s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("CronJob/nightly: runs on its schedule (0 3 * * *)"),
        "{}",
        run.stdout
    );
    let stored = cluster
        .server
        .object("batch", "cronjobs", "default", "nightly")
        .expect("the CronJob was applied");
    let image =
        &stored["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"];
    assert!(
        image.as_str().unwrap().starts_with("tools/job:loop-"),
        "{stored}"
    );
}

/// A `k8s_custom_deploy` whose commands are the real kubectl against the API
/// server: apply_cmd deploys with the built image and prints what it deployed.
const CUSTOM_DEPLOY: &str = r#"
custom_build("shop/web", "echo built", deps=["src"])
k8s_custom_deploy(
    "web",
    apply_cmd="echo $TILT_IMAGE_MAP_0 $TILT_IMAGE_0 $OWN > image.txt && sed \"s|image: shop/web|image: $TILT_IMAGE_0|\" app.yaml | kubectl apply --server-side --validate=false --field-manager=custom -f - -o yaml",
    delete_cmd=["sh", "-c", "kubectl delete deployment web && touch deleted.txt"],
    deps=["app.yaml"],
    image_deps=["shop/web"],
    apply_env={"OWN": "own"},
)
local_resource("after", cmd="echo after > after.txt", resource_deps=["web"])
"#;

const CUSTOM_APP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: shop/web
"#;

#[test]
fn a_custom_deploy_runs_apply_cmd_follows_its_objects_and_down_runs_delete_cmd() {
    if which_kubectl().is_none() {
        panic!("kubectl is on the PATH (.ci/run installs kubernetes-client)");
    }
    let cluster = Cluster::start("kind-test");
    let dir = project(&[
        ("Tiltfile", CUSTOM_DEPLOY),
        ("app.yaml", CUSTOM_APP),
        ("src/main.go", "package main\n"),
    ]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "90s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let image = std::fs::read_to_string(dir.path().join("image.txt")).unwrap();
    let parts: Vec<&str> = image.split_whitespace().collect();
    assert_eq!(parts[0], "shop/web", "{image}");
    assert!(parts[1].starts_with("shop/web:loop-"), "{image}");
    assert_eq!(parts[2], "own", "{image}");
    let web = cluster.deployment("web").expect("apply_cmd deployed it");
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        parts[1]
    );
    assert!(
        run.stdout
            .contains("[loop] apply_cmd deployed 1 object(s): Deployment/web"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("after.txt")).unwrap(),
        "after\n",
        "dependents start once the rollout of what apply_cmd printed is done"
    );
    let down = cluster.run(dir.path(), &["down"]);
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
    assert!(
        down.stdout
            .contains("running delete_cmd of web: sh -c kubectl delete deployment web"),
        "{}",
        down.stdout
    );
    assert!(dir.path().join("deleted.txt").exists(), "{}", down.stdout);
    assert!(cluster.deployment("web").is_none());
}

#[test]
fn a_custom_deploy_whose_apply_cmd_fails_or_prints_no_objects_fails_clearly() {
    let cluster = Cluster::start("kind-test");
    let dir = project(&[(
        "Tiltfile",
        "k8s_custom_deploy('web', apply_cmd='echo broken >&2; exit 3', delete_cmd='true', deps=[])\n",
    )]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "30s"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("broken")
            && run
                .stdout
                .contains("apply_cmd `echo broken >&2; exit 3` failed: exit code 3"),
        "{}",
        run.stdout
    );
    std::fs::write(
        dir.path().join("Tiltfile"),
        "k8s_custom_deploy('web', apply_cmd='echo deployed', delete_cmd='true', deps=[])\n",
    )
    .unwrap();
    let run = cluster.run(dir.path(), &["ci", "--timeout", "30s"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("apply_cmd printed a document that is not a Kubernetes object"),
        "{}",
        run.stdout
    );
}

fn which_kubectl() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|p| p.is_file())
    })
}

#[test]
fn a_custom_deploy_streams_its_pods_logs_and_reruns_apply_cmd_when_a_dep_changes() {
    if which_kubectl().is_none() {
        panic!("kubectl is on the PATH (.ci/run installs kubernetes-client)");
    }
    let cluster = Cluster::start("kind-test");
    let dir = project(&[
        (
            "Tiltfile",
            r#"
k8s_custom_deploy(
    "web",
    apply_cmd="echo applied >> applies.txt && kubectl apply --server-side --validate=false --field-manager=custom -f app.yaml -o json",
    delete_cmd="kubectl delete -f app.yaml",
    deps=["app.yaml"],
)
"#,
        ),
        ("app.yaml", CUSTOM_APP),
    ]);
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run"],
        &[("KUBECONFIG", &cluster.kubeconfig)],
    );
    loop_run.wait_for_output("web │ [loop] ready in", 60);
    let pods = pod_names(&cluster.server, "web");
    assert_eq!(pods.len(), 1, "{pods:?}");
    cluster
        .server
        .append_log(&pods[0], "web", "hello from the custom pod");
    loop_run.wait_for_output("hello from the custom pod", 30);

    std::fs::write(
        dir.path().join("app.yaml"),
        CUSTOM_APP.replace("replicas: 1", "replicas: 2"),
    )
    .unwrap();
    crate::support::wait_until(
        60,
        "apply_cmd to run again",
        || crate::support::lines(&dir.path().join("applies.txt")) == 2,
        || loop_run.output(),
    );
    crate::support::wait_until(
        60,
        "the new replica",
        || {
            cluster
                .deployment("web")
                .is_some_and(|d| d["spec"]["replicas"] == 2)
        },
        || loop_run.output(),
    );
}

#[test]
fn a_custom_deploy_live_updates_the_containers_of_its_image_selector() {
    custom_deploy_live_update(r#"image_selector="shop/web""#);
}

#[test]
fn a_custom_deploy_live_updates_the_containers_named_by_its_container_selector() {
    custom_deploy_live_update(r#"container_selector="web""#);
}

/// A live update of a `k8s_custom_deploy` with `selector` (an argument).
fn custom_deploy_live_update(selector: &str) {
    if which_kubectl().is_none() {
        panic!("kubectl is on the PATH (.ci/run installs kubernetes-client)");
    }
    let cluster = Cluster::start("kind-test");
    let dir = project(&[
        (
            "Tiltfile",
            &format!(
                r#"
k8s_custom_deploy(
    "web",
    apply_cmd="echo applied >> applies.txt && kubectl apply --server-side --validate=false --field-manager=custom -f app.yaml -o yaml",
    delete_cmd="kubectl delete -f app.yaml",
    deps=["app.yaml", "src"],
    {selector},
    live_update=[sync("src", "/srv/app")],
)
"#
            ),
        ),
        ("app.yaml", CUSTOM_APP),
        ("src/index.html", "v1"),
    ]);
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run"],
        &[("KUBECONFIG", &cluster.kubeconfig)],
    );
    loop_run.wait_for_output("web │ [loop] ready in", 60);
    let pods = pod_names(&cluster.server, "web");
    assert_eq!(pods.len(), 1, "{pods:?}");
    std::fs::write(dir.path().join("src/index.html"), "v2").unwrap();
    let synced = cluster
        .server
        .container_dir(&pods[0], "web")
        .join("srv/app/index.html");
    crate::support::wait_until(
        30,
        "the file to be synced into the container",
        || std::fs::read_to_string(&synced).is_ok_and(|s| s == "v2"),
        || loop_run.output(),
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        crate::support::lines(&dir.path().join("applies.txt")),
        1,
        "a live update, not a new apply\n{}",
        loop_run.output()
    );
}

#[test]
fn down_reports_a_failing_delete_cmd_and_exits_one() {
    let cluster = Cluster::start("kind-test");
    let dir = project(&[(
        "Tiltfile",
        "k8s_custom_deploy('web', apply_cmd='true', delete_cmd='echo cannot delete >&2; exit 4', deps=[])\n",
    )]);
    let down = cluster.run(dir.path(), &["down"]);
    assert_eq!(down.code, 1, "{}{}", down.stdout, down.stderr);
    assert!(
        down.stdout.contains("[web] cannot delete"),
        "{}",
        down.stdout
    );
    assert!(
        down.stderr
            .contains("web: delete_cmd `echo cannot delete >&2; exit 4` failed: exit code 4"),
        "{}",
        down.stderr
    );
}

/// A workload with two live-updated images: a change to the files of the
/// second image syncs into its containers only (the first image's steps are
/// not the ones that decide), with no rebuild.
#[test]
fn each_image_of_a_resource_takes_its_own_live_update() {
    let cluster = Cluster::start("kind-test");
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, image: shop/web}\n      - {name: side, image: shop/side}\n";
    let loopfile = r#"
k8s_yaml("app.yaml")
custom_build("shop/web", "echo web >> builds.txt", deps=["web"],
    live_update=[fall_back_on(["web/requirements.txt"]), sync("web", "/srv/web")])
custom_build("shop/side", "echo side >> builds.txt", deps=["side"],
    live_update=[sync("side", "/srv/side")])
"#;
    let dir = project(&[
        ("Loopfile", loopfile),
        ("app.yaml", yaml),
        ("web/index.html", "v1"),
        ("side/conf.txt", "v1"),
    ]);
    let loop_run = crate::support::Background::start_with_env(
        dir.path(),
        &["run"],
        &[("KUBECONFIG", &cluster.kubeconfig)],
    );
    loop_run.wait_for_output("web │ [loop] ready in", 60);
    let pods = pod_names(&cluster.server, "web");
    assert_eq!(pods.len(), 1, "{pods:?}");
    std::fs::write(dir.path().join("side/conf.txt"), "v2").unwrap();
    let synced = cluster
        .server
        .container_dir(&pods[0], "side")
        .join("srv/side/conf.txt");
    crate::support::wait_until(
        30,
        "the side file to be synced into the side container",
        || std::fs::read_to_string(&synced).is_ok_and(|s| s == "v2"),
        || loop_run.output(),
    );
    loop_run.wait_for_output("into the containers of shop/side", 10);
    assert!(!cluster
        .server
        .container_dir(&pods[0], "web")
        .join("srv/side/conf.txt")
        .exists());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        crate::support::lines(&dir.path().join("builds.txt")),
        2,
        "a synced change must not rebuild\n{}",
        loop_run.output()
    );
}
