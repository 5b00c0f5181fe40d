//! `loop check`, `loop graph` and `loop affected` on good projects.

use serde_json::Value;

use crate::support::{project, repo, run_loop, run_loop_with};

fn shop() -> std::path::PathBuf {
    repo().join("examples/shop")
}

fn graph_json(dir: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["graph", "--format", "json"];
    all.extend(args);
    let run = run_loop(dir, &all);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).expect("graph --format json prints JSON")
}

fn resource<'a>(graph: &'a Value, name: &str) -> &'a Value {
    graph["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no resource {name}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn check_summarizes_the_composed_example_and_print_goes_to_the_log() {
    let run = run_loop(&shop(), &["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "ok: 3 resources (3 local, 0 kubernetes), 0 images, 3 Loopfiles, 4 watched files\n"
    );
    assert!(
        run.stderr.contains("[Loopfile] flavour: dev"),
        "{}",
        run.stderr
    );
}

#[test]
fn graph_json_has_the_documented_fields() {
    let g = graph_json(&shop(), &[]);
    let api = resource(&g, "api");
    assert_eq!(api["kind"], "local");
    assert_eq!(api["defined_at"], "services/api/Loopfile:4:1");
    assert_eq!(strings(&api["deps"]), ["services/api/public"]);
    assert_eq!(strings(&api["ignore"]), ["**/*.tmp"]);
    assert_eq!(strings(&api["data_deps"]), ["codegen"]);
    assert_eq!(strings(&api["labels"]), ["services"]);
    assert!(api["serve_cmd"]
        .as_str()
        .unwrap()
        .starts_with("python3 -m http.server 8081"));
    assert_eq!(strings(&resource(&g, "web")["resource_deps"]), ["api"]);
    assert_eq!(
        strings(&resource(&g, "codegen")["deps"]),
        ["schema", "gen.sh"]
    );
    assert_eq!(
        strings(&g["watched_files"]),
        [
            "Loopfile",
            "lib/services.star",
            "services/api/Loopfile",
            "services/web/Loopfile"
        ]
    );
    for key in ["images", "objects", "cmd", "resource_deps"] {
        assert!(api.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn config_args_after_double_dash_reach_config_parse() {
    let run = run_loop(&shop(), &["check", "--", "--env=demo"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("flavour: demo"), "{}", run.stderr);
}

#[test]
fn affected_follows_data_edges_but_not_ordering_edges() {
    let run = run_loop(&shop(), &["affected", "schema/api.txt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "codegen\napi\n");
    let run = run_loop(
        &shop(),
        &[
            "affected",
            "services/api/public/index.html",
            "services/web/static",
        ],
    );
    assert_eq!(run.stdout, "api\nweb\n");
    let run = run_loop(&shop(), &["affected", "services/api/public/draft.tmp"]);
    assert_eq!(run.stdout, "", "ignored files re-run nothing");
}

#[test]
fn affected_names_the_loopfiles_a_loaded_file_re_evaluates() {
    let run = run_loop(&shop(), &["affected", "lib/services.star"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "re-evaluate: services/api/Loopfile\nre-evaluate: services/web/Loopfile\n"
    );
    let run = run_loop(&shop(), &["affected", "Loopfile"]);
    assert_eq!(run.stdout, "re-evaluate: Loopfile\n");
}

#[test]
fn graph_text_and_dot_show_both_edge_kinds() {
    let run = run_loop(&shop(), &["graph", "--format", "dot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("\"codegen\" -> \"api\";"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\"api\" -> \"web\" [style=dashed];"),
        "{}",
        run.stdout
    );
    let run = run_loop(&shop(), &["graph"]);
    assert!(
        run.stdout
            .contains("api (local) services/api/Loopfile:4:1\n  re-runs with: codegen\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("web (local) services/web/Loopfile:4:1\n  after: api\n"),
        "{}",
        run.stdout
    );
}

const TILTFILE: &str = r#"
# A Tiltfile that uses only Tilt's API.
k8s_yaml(["k8s/app.yaml", "k8s/namespace.yaml"])
docker_build("registry.local/app", ".", dockerfile="Dockerfile", only=["src"],
    live_update=[fall_back_on(["src/requirements.txt"]), sync("src", "/app"), run("pip install -r /app/requirements.txt", trigger=["src/requirements.txt"])])
k8s_resource("app", port_forwards=["8000:80", 9000], resource_deps=["migrate"], labels="backend")
local_resource("migrate", "echo migrate", ["db"], TRIGGER_MODE_MANUAL, auto_init=False)
cfg = read_yaml("settings.yaml")
if cfg["debug"] and os.getenv("HOME") != None:
    local_resource("debug", serve_cmd=["sleep", "60"], readiness_probe=probe(period_secs=1, exec=exec_action(["true"])))
s = struct(a=1)
update_settings(max_parallel_updates=2)
watch_settings(ignore=["*.log"])
allow_k8s_contexts("my-cluster")
"#;

const APP_YAML: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app, tier: web}}
    spec:
      containers:
      - name: app
        image: registry.local/app:latest
        envFrom: [{configMapRef: {name: app-config}}]
---
apiVersion: v1
kind: Service
metadata: {name: app}
spec: {selector: {app: app}, ports: [{port: 80}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {MODE: dev}
"#;

#[test]
fn a_tiltfile_evaluates_unchanged_and_objects_group_by_workload() {
    let dir = project(&[
        ("Tiltfile", TILTFILE),
        ("k8s/app.yaml", APP_YAML),
        (
            "k8s/namespace.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
        ),
        ("settings.yaml", "debug: true\n"),
        ("src/main.py", "print('hi')\n"),
        ("Dockerfile", "FROM python\n"),
    ]);
    let run = run_loop(dir.path(), &["check", "Tiltfile"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "ok: 4 resources (2 local, 2 kubernetes), 1 image, 1 Tiltfile, 5 watched files\n\
         image registry.local/app: built by Docker (docker_build: needs a Docker daemon; \
         the base python is not in a registry named by host (e.g. localhost:5000/python))\n"
    );

    let g = graph_json(dir.path(), &["Tiltfile"]);
    let app = resource(&g, "app");
    assert_eq!(app["kind"], "k8s");
    let objects: Vec<String> = app["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    // As in Tilt, the ConfigMap the pods use is not the workload's.
    assert_eq!(objects, ["Deployment/app", "Service/app"]);
    assert_eq!(strings(&app["images"]), ["registry.local/app"]);
    assert_eq!(strings(&app["resource_deps"]), ["migrate"]);
    assert_eq!(strings(&app["labels"]), ["backend"]);
    assert_eq!(app["port_forwards"][0]["local_port"], 8000);
    assert_eq!(app["port_forwards"][0]["container_port"], 80);
    assert_eq!(app["port_forwards"][1]["container_port"], 9000);
    let migrate = resource(&g, "migrate");
    assert_eq!(migrate["trigger_mode"], "manual");
    assert_eq!(migrate["auto_init"], false);
    assert_eq!(strings(&migrate["deps"]), ["db"]);
    let uncategorized: Vec<&str> = resource(&g, "uncategorized")["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(uncategorized, ["ConfigMap", "Namespace"]);
    assert_eq!(
        resource(&g, "debug")["readiness_probe"]["action"]["type"],
        "exec"
    );
    let image = &g["images"][0];
    assert_eq!(image["ref"], "registry.local/app");
    assert_eq!(strings(&image["deps"]), ["src"]);
    let steps: Vec<&str> = image["live_update"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["fall_back_on", "sync", "run"]);
    assert_eq!(g["settings"]["max_parallel_updates"], 2);

    // The image's sources re-run the workload that uses it.
    let run = run_loop(
        dir.path(),
        &["affected", "src/main.py", "--files", "Tiltfile"],
    );
    assert_eq!(run.stdout, "app\n", "{}", run.stderr);
    // A file read during evaluation re-evaluates the Tiltfile.
    let run = run_loop(
        dir.path(),
        &["affected", "settings.yaml", "--files", "Tiltfile"],
    );
    assert_eq!(run.stdout, "re-evaluate: Tiltfile\n");
}

#[test]
fn several_top_level_loopfiles_compose_into_one_graph() {
    let dir = project(&[
        ("a/Loopfile", "local_resource('db', serve_cmd='sleep 60')\n"),
        (
            "b/Loopfile",
            "local_resource('api', serve_cmd='sleep 60', resource_deps=['db'])\n",
        ),
    ]);
    let run = run_loop(dir.path(), &["graph", "a/Loopfile", "b/Loopfile"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("db (local) a/Loopfile:1:1\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("api (local) b/Loopfile:1:1\n  after: db\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn extensions_load_dynamic_and_root_marker() {
    let dir = project(&[
        (".loop-root", ""),
        ("extensions/greeter/Loopfile", "def greet(name):\n    local_resource('hello-' + name, cmd='echo hi')\n"),
        ("more/extra.star", "def extra():\n    local_resource('extra', cmd='true')\n"),
        ("tools/defs.star", "SUFFIX = '-x'\n_private = 1\n"),
        (
            "svc/Loopfile",
            "load('ext://greeter', 'greet')\nload('//tools/defs.star', 'SUFFIX')\ngreet('svc' + SUFFIX)\nm = load_dynamic('//tools/defs.star')\nif '_private' in m or m['SUFFIX'] != '-x':\n    fail('load_dynamic')\nload('ext://extra', 'extra')\nextra()\n",
        ),
    ]);
    let ext = dir.path().join("more");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loop"))
        .args(["graph", "svc/Loopfile", "--format", "json"])
        .current_dir(dir.path())
        .env("LOOP_EXTENSIONS_PATH", &ext)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let g: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        resource(&g, "hello-svc-x")["defined_at"],
        "svc/Loopfile:3:1"
    );
    assert_eq!(resource(&g, "extra")["kind"], "local");
}

#[test]
fn missing_loopfile_named_on_the_command_line_is_an_error() {
    let dir = project(&[]);
    let run = run_loop(dir.path(), &["check", "nope/Loopfile"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("cannot read Loopfile nope/Loopfile: no such file"),
        "{}",
        run.stderr
    );
}

/// A `local()` command that runs too long is stopped with the limit and how to
/// raise it, and nothing it started is left running.
#[test]
fn a_slow_local_command_is_stopped_at_the_time_limit() {
    let dir = project(&[("Loopfile", "x = local('sleep 3711 & sleep 3712')\n")]);
    let started = std::time::Instant::now();
    let run = run_loop_with(
        dir.path(),
        &["check"],
        &[("LOOP_LOCAL_TIMEOUT", std::path::Path::new("1s"))],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(
        run.stderr.contains(
            "ran longer than 1s and was stopped; raise the limit with LOOP_LOCAL_TIMEOUT"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Loopfile:1:5"), "{}", run.stderr);
    assert!(
        crate::support::processes_with("sleep 3711").is_empty()
            && crate::support::processes_with("sleep 3712").is_empty()
    );
}

/// A FIFO is refused, not read (reading one blocked `loop` forever); a UTF-8
/// byte-order mark is accepted.
#[test]
fn a_fifo_is_refused_and_a_bom_is_accepted() {
    let dir = project(&[
        ("Loopfile", "x = read_file('pipe')\n"),
        ("bom/Loopfile", "\u{feff}local_resource('a', cmd='true')\n"),
    ]);
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    let run = run_loop(dir.path(), &["check"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "read_file: cannot read pipe: it is not a regular file (a FIFO, socket or device)"
        ),
        "{}",
        run.stderr
    );
    std::fs::write(dir.path().join("Loopfile"), "load('pipe', 'x')\n").unwrap();
    let run = run_loop(dir.path(), &["check"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr.contains("it is not a regular file"),
        "{}",
        run.stderr
    );
    let bom = run_loop(&dir.path().join("bom"), &["check"]);
    assert_eq!(bom.code, 0, "{}", bom.transcript());
}

/// A 30,000-deep `load()` chain evaluates (it used to take minutes: every load
/// scanned the chain of files being evaluated).
#[test]
fn a_thirty_thousand_deep_load_chain_evaluates() {
    let depth = 30_000;
    let mut files: Vec<(String, String)> = (0..depth)
        .map(|i| {
            let text = if i + 1 < depth {
                format!("load('m{}.star', 'v')\n", i + 1)
            } else {
                "v = 1\n".to_owned()
            };
            (format!("m{i}.star"), text)
        })
        .collect();
    files.push((
        "Loopfile".into(),
        "load('m0.star', 'v')\nlocal_resource('r', cmd='echo %d' % v)\n".into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let dir = project(&refs);
    let check = run_loop(dir.path(), &["check"]);
    assert_eq!(check.code, 0, "{}", check.transcript());
    assert!(
        check.stdout.contains("30001 watched files"),
        "{}",
        check.stdout
    );
}

/// `loop graph --format json` is a promised format: the whole of it, for both
/// examples, is pinned (absolute paths, if any, are replaced by `[ROOT]`).
#[test]
fn graph_json_of_the_examples_is_stable() {
    for example in ["shop", "k8s-shop"] {
        let dir = repo().join("examples").join(example);
        let run = run_loop(&dir, &["graph", "--format", "json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        serde_json::from_str::<Value>(&run.stdout).expect("JSON");
        let text = run.stdout;
        let root = dir.canonicalize().unwrap();
        let text = text.replace(&root.display().to_string(), "[ROOT]");
        insta::assert_snapshot!(format!("graph_json_{example}"), text);
    }
}

/// Object bodies are in the graph JSON; a Secret's values are not.
#[test]
fn graph_json_replaces_secret_values() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2-s3cret}\ndata: {token: c2VjcmV0LXRva2Vu}\n";
    let dir = project(&[
        ("Loopfile", "k8s_yaml('secret.yaml')\n"),
        ("secret.yaml", secret),
    ]);
    let run = run_loop(dir.path(), &["graph", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for value in ["hunter2-s3cret", "c2VjcmV0LXRva2Vu", "secret-token"] {
        assert!(
            !run.stdout.contains(value),
            "{value} printed:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("[redacted secret db:password]"),
        "{}",
        run.stdout
    );
}
