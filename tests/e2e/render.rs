//! `loop render`, profiles, `loop.lock.json` and the policy rules.

use crate::support::{project, run_loop};

const APP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000}
      containers:
      - name: api
        image: registry.example/api:1.4.2
        resources: {requests: {cpu: 100m}, limits: {memory: 64Mi}}
        readinessProbe: {httpGet: {path: /, port: 8080}}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
";

const DEBUG: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: debug-flags}
data: {VERBOSE: '1'}
";

const LOOPFILE: &str = "\
k8s_yaml('app.yaml')
k8s_yaml('debug.yaml', dev_only=True)
if profile('prod'):
    k8s_yaml(blob('apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: tier}\\ndata: {TIER: prod}\\n'))
elif profile('staging'):
    pass
k8s_resource('api', port_forwards=8080)
local_resource('gen', cmd='true')
";

fn shop() -> tempfile::TempDir {
    let dir = project(&[
        ("Loopfile", LOOPFILE),
        ("app.yaml", APP),
        ("debug.yaml", DEBUG),
    ]);
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    dir
}

#[test]
fn render_ships_the_objects_without_the_dev_parts() {
    let dir = shop();
    let run = run_loop(dir.path(), &["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("render_default", run.transcript());
    let prod = run_loop(dir.path(), &["render", "--profile", "prod"]);
    assert_eq!(prod.code, 0, "{}", prod.stderr);
    assert!(prod.stdout.contains("name: tier"), "{}", prod.stdout);
    assert!(!run.stdout.contains("name: tier"));
    // Both renders are in the lock, by profile.
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("loop.lock.json")).unwrap())
            .unwrap();
    assert_eq!(
        lock["renders"]["default"].as_object().unwrap().len(),
        2,
        "{lock}"
    );
    assert_eq!(
        lock["renders"]["prod"].as_object().unwrap().len(),
        3,
        "{lock}"
    );
}

#[test]
fn render_with_labels_keeps_the_ownership_labels() {
    let dir = shop();
    let run = run_loop(dir.path(), &["render", "--labels"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("app.kubernetes.io/managed-by: loop"),
        "{}",
        run.stdout
    );
    // Recorded apart from a render without labels.
    assert_eq!(
        run_loop(dir.path(), &["render", "--check", "--labels"]).code,
        0
    );
}

#[test]
fn an_unknown_profile_lists_the_profiles_the_loopfiles_use() {
    let dir = shop();
    for command in ["render", "check", "graph"] {
        let run = run_loop(dir.path(), &[command, "--profile", "prdo"]);
        assert_eq!(run.code, 1, "{command}: {}", run.stderr);
        assert!(
            run.stderr.contains("--profile prdo: no Loopfile uses this profile; the profiles used: `prod` (Loopfile:3:4), `staging` (Loopfile:5:6); did you mean `prod`?"),
            "{command}: {}",
            run.stderr
        );
    }
    let none = project(&[("Loopfile", "local_resource('a', cmd='true')\n")]);
    let run = run_loop(none.path(), &["check", "--profile", "prod"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("the Loopfiles use no profiles"),
        "{}",
        run.stderr
    );
}

#[test]
fn render_check_finds_a_changed_a_new_and_a_removed_object() {
    let dir = shop();
    let missing = run_loop(dir.path(), &["render", "--check"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("has no loop.lock.json"),
        "{}",
        missing.stderr
    );
    assert_eq!(run_loop(dir.path(), &["render"]).code, 0);
    let same = run_loop(dir.path(), &["render", "--check"]);
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert!(
        same.stderr.contains("loop.lock.json matches: 2 object(s)"),
        "{}",
        same.stderr
    );
    assert_eq!(same.stdout, "", "--check writes nothing");
    let app = dir.path().join("app.yaml");
    std::fs::write(&app, APP.replace("replicas: 1", "replicas: 3")).unwrap();
    std::fs::write(
        dir.path().join("Loopfile"),
        LOOPFILE.replace(
            "k8s_yaml('debug.yaml', dev_only=True)",
            "k8s_yaml('debug.yaml')",
        ),
    )
    .unwrap();
    let drift = run_loop(dir.path(), &["render", "--check"]);
    assert_eq!(drift.code, 1, "{}", drift.stderr);
    assert!(
        drift
            .stderr
            .contains("Deployment/api (Loopfile:1:1): changed"),
        "{}",
        drift.stderr
    );
    assert!(
        drift
            .stderr
            .contains("ConfigMap/debug-flags (Loopfile:2:1): new since the lock"),
        "{}",
        drift.stderr
    );
    std::fs::write(&app, APP.split("---").next().unwrap()).unwrap();
    let removed = run_loop(dir.path(), &["render", "--check"]);
    assert!(
        removed
            .stderr
            .contains("Service/api: in the lock, no longer declared"),
        "{}",
        removed.stderr
    );
}

#[test]
fn render_out_writes_one_file_per_object_and_replaces_the_last_render() {
    let dir = shop();
    let out = dir.path().join("deploy");
    std::fs::create_dir(&out).unwrap();
    // A file an earlier render wrote goes; files of the user's stay.
    std::fs::write(
        out.join("07-stale-object.yaml"),
        "# Rendered by `loop render`; edit the Loopfiles instead.\nkind: X\n",
    )
    .unwrap();
    std::fs::write(out.join("00-namespace.yaml"), "kind: Namespace\n").unwrap();
    std::fs::write(out.join("kustomization.yaml"), "resources: []\n").unwrap();
    let run = run_loop(dir.path(), &["render", "--out", "deploy"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00-namespace.yaml",
            "01-deployment-api.yaml",
            "02-service-api.yaml",
            "kustomization.yaml"
        ]
    );
    let written = std::fs::read_to_string(out.join("01-deployment-api.yaml")).unwrap();
    assert!(
        written.starts_with("# Rendered by `loop render`"),
        "{written}"
    );
    assert!(written.contains("kind: Deployment"), "{written}");
}

#[test]
fn a_corrupt_lock_is_an_error_naming_its_position() {
    let dir = shop();
    std::fs::write(
        dir.path().join("loop.lock.json"),
        "{\"version\": 1,\n \"images\": 3}\n",
    )
    .unwrap();
    let run = run_loop(dir.path(), &["render"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("loop.lock.json:2:"), "{}", run.stderr);
}

const RISKY: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: risky}
spec:
  selector: {matchLabels: {app: risky}}
  template:
    metadata: {labels: {app: risky}}
    spec:
      volumes: [{name: docker, hostPath: {path: /var/run/docker.sock}}]
      containers:
      - name: main
        image: busybox
        securityContext: {privileged: true, runAsUser: 0}
      - name: side
        image: nginx:latest
        securityContext: {runAsNonRoot: true}
        resources: {requests: {cpu: 1m}, limits: {cpu: 1m}}
---
apiVersion: v1
kind: Service
metadata: {name: risky}
spec: {selector: {app: risky}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: '0 3 * * *'
  jobTemplate:
    spec:
      template:
        spec:
          securityContext: {runAsUser: 1000}
          containers:
          - {name: job, image: 'tools/job@sha256:0000000000000000000000000000000000000000000000000000000000000000', resources: {requests: {cpu: 1m}, limits: {cpu: 1m}}}
";

#[test]
fn the_policy_rules_warn_in_check_and_fail_under_strict() {
    let dir = project(&[
        ("Loopfile", "k8s_yaml('risky.yaml')\n"),
        ("risky.yaml", RISKY),
    ]);
    let run = run_loop(dir.path(), &["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("lint_check", run.transcript());
    let strict = run_loop(dir.path(), &["check", "--strict"]);
    assert_eq!(strict.code, 1);
    assert!(
        strict.stderr.contains(
            "error: Deployment/risky (risky.yaml:1): container `main` is privileged [privileged]"
        ),
        "{}",
        strict.stderr
    );
    let render = run_loop(dir.path(), &["render", "--strict"]);
    assert_eq!(render.code, 1);
    assert_eq!(render.stdout, "", "nothing rendered when a rule fails");
}

#[test]
fn lint_settings_turns_rules_off_by_name() {
    let loopfile = "lint_settings(disable=['privileged', 'host-path', 'run-as-root', 'resources', 'latest-tag', 'readiness-probe'])\nk8s_yaml('risky.yaml')\n";
    let dir = project(&[("Loopfile", loopfile), ("risky.yaml", RISKY)]);
    let run = run_loop(dir.path(), &["check", "--strict"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let typo = project(&[("Loopfile", "lint_settings(disable=['host_path'])\n")]);
    let run = run_loop(typo.path(), &["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("lint_settings: no rule named \"host_path\"; did you mean \"host-path\"?"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Loopfile:1:1"), "{}", run.stderr);
}
