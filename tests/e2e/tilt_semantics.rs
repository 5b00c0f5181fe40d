//! Tilt's semantics that the real Tiltfiles of `tests/tilt-corpus` rely on, each
//! checked on a small Tiltfile through `loop graph --format json`.

use serde_json::Value;

use crate::support::{project, run_loop};

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME}
spec:
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers:
        - name: main
          image: IMAGE
          PORTS
";

fn deployment(name: &str, image: &str, ports: &[u16]) -> String {
    let ports = if ports.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = ports
            .iter()
            .map(|p| format!("{{containerPort: {p}}}"))
            .collect();
        format!("ports: [{}]", list.join(", "))
    };
    DEPLOY
        .replace("NAME", name)
        .replace("IMAGE", image)
        .replace("PORTS", &ports)
}

/// `loop graph --format json -f FILE` in `dir`: the graph and the standard error.
fn graph(dir: &std::path::Path, file: &str) -> (Value, String) {
    let run = run_loop(dir, &["graph", "--format", "json", "-f", file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    (serde_json::from_str(&run.stdout).unwrap(), run.stderr)
}

fn resource<'a>(graph: &'a Value, name: &str) -> &'a Value {
    graph["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no resource {name} in {graph:#}"))
}

/// The port-forwards of a resource of the graph JSON, as `host:local:container`.
pub(crate) fn forwards(resource: &Value) -> Vec<String> {
    resource["port_forwards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}:{}",
                p["host"].as_str().unwrap(),
                p["local_port"],
                p["container_port"]
            )
        })
        .collect()
}

#[test]
fn tabs_indent_blocks_and_separate_list_items() {
    let dir = project(&[(
        "Tiltfile",
        "def svc(name):\n\tlocal_resource(name, cmd='true', deps=[\n\t\t'a.txt',\n\t])\n\nfor n in ['one', 'two']:\n\tsvc(n)\nprint('tab\\there')\n",
    )]);
    let (graph, stderr) = graph(dir.path(), "Tiltfile");
    assert_eq!(graph["resources"].as_array().unwrap().len(), 2, "{graph:#}");
    assert!(stderr.contains("tab\there"), "{stderr}");
}

#[test]
fn resource_names_may_hold_spaces_and_punctuation() {
    let dir = project(&[(
        "Tiltfile",
        "local_resource('make manifests', cmd='true')\nlocal_resource('Watch & Compile (go)', cmd='true', resource_deps=['make manifests'])\n",
    )]);
    let (graph, _) = graph(dir.path(), "Tiltfile");
    assert_eq!(
        resource(&graph, "Watch & Compile (go)")["resource_deps"],
        serde_json::json!(["make manifests"])
    );
}

#[test]
fn a_build_context_made_later_is_accepted_and_a_subfolder_finds_its_dockerfile() {
    let dir = project(&[
        (
            "svc/Tiltfile",
            "docker_build('app', '.')\ndocker_build('jar', 'build/libs', dockerfile='Dockerfile')\nk8s_yaml('app.yaml')\n",
        ),
        ("svc/Dockerfile", "FROM scratch\n"),
        ("svc/app.yaml", &deployment("app", "app", &[])),
    ]);
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let (graph, stderr) = graph(dir.path(), "svc/Tiltfile");
    let images = graph["images"].as_array().unwrap();
    assert_eq!(images[0]["dockerfile"], "svc/Dockerfile", "{graph:#}");
    assert_eq!(images[1]["context"], "svc/build/libs", "{graph:#}");
    assert!(
        stderr.contains("the build context svc/build/libs does not exist yet"),
        "{stderr}"
    );
}

#[test]
fn port_forwards_take_a_host_and_resolve_the_container_port_as_tilt_does() {
    let yaml = [
        deployment("two", "nginx", &[2200, 4001]),
        deployment("none", "nginx", &[]),
    ]
    .join("---\n");
    let dir = project(&[
        ("k8s.yaml", &yaml),
        (
            "Tiltfile",
            "k8s_yaml('k8s.yaml')\n\
             k8s_resource('two', port_forwards=[4001, '9000', '127.0.0.1:9001:80', port_forward(9002)])\n\
             k8s_resource('none', port_forwards=['0.0.0.0:8080:80', 8081])\n",
        ),
    ]);
    let (graph, _) = graph(dir.path(), "Tiltfile");
    // The local port when a container declares it, else the first declared port.
    assert_eq!(
        forwards(resource(&graph, "two")),
        [
            "localhost:4001:4001",
            "localhost:9000:2200",
            "127.0.0.1:9001:80",
            "localhost:9002:2200"
        ]
    );
    // No declared port: the local port.
    assert_eq!(
        forwards(resource(&graph, "none")),
        ["0.0.0.0:8080:80", "localhost:8081:8081"]
    );
}

#[test]
fn an_image_ref_with_a_tag_matches_only_that_tag() {
    let yaml = [
        deployment("dev", "app:dev", &[]),
        deployment("prod", "app:prod", &[]),
        deployment("any", "worker:1.2", &[]),
    ]
    .join("---\n");
    let dir = project(&[
        ("k8s.yaml", &yaml),
        ("Dockerfile", "FROM scratch\n"),
        (
            "Tiltfile",
            "k8s_yaml('k8s.yaml')\ndocker_build('app:dev', '.')\ndocker_build('worker', '.')\n",
        ),
    ]);
    let (graph, _) = graph(dir.path(), "Tiltfile");
    assert_eq!(
        resource(&graph, "dev")["images"],
        serde_json::json!(["app:dev"])
    );
    assert_eq!(resource(&graph, "prod")["images"], serde_json::json!([]));
    assert_eq!(
        resource(&graph, "any")["images"],
        serde_json::json!(["worker"])
    );
}

#[test]
fn a_resource_dep_naming_no_resource_is_a_warning_and_ignored() {
    let dir = project(&[(
        "Tiltfile",
        "local_resource('database', cmd='true')\nlocal_resource('api', cmd='true', resource_deps=['databse', 'database'])\ndisable_snapshots()\n",
    )]);
    let (graph, stderr) = graph(dir.path(), "Tiltfile");
    assert_eq!(
        resource(&graph, "api")["resource_deps"],
        serde_json::json!(["database"])
    );
    assert!(
        stderr.contains("resource `api` lists `databse` in resource_deps, which is not a resource; the dependency is ignored, as in Tilt (did you mean `database`?)")
            && stderr.contains("disable_snapshots: ignored"),
        "{stderr}"
    );
    // loop's own data_deps stay strict.
    let dir = project(&[(
        "Tiltfile",
        "local_resource('api', cmd='true', data_deps=['nothing'])\n",
    )]);
    let run = run_loop(dir.path(), &["check", "-f", "Tiltfile"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("which is not a resource"),
        "{}",
        run.stderr
    );
}

#[test]
fn ci_settings_realpath_and_clear_enabled_resources_are_accepted() {
    let dir = project(&[
        ("real/file.txt", "x"),
        (
            "Tiltfile",
            "ci_settings(timeout='10m', k8s_grace_period='5s')\n\
             config.clear_enabled_resources()\n\
             local_resource('api', cmd='true')\n\
             print('real:', os.path.relpath(os.path.realpath('link/file.txt')))\n",
        ),
    ]);
    std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
    let (graph, stderr) = graph(dir.path(), "Tiltfile");
    assert_eq!(
        graph["settings"]["enabled_resources"],
        serde_json::json!([])
    );
    assert!(
        stderr.contains("ci_settings: ignored") && stderr.contains("real: real/file.txt"),
        "{stderr}"
    );
}

#[test]
fn an_object_whose_label_selector_matches_the_pods_joins_the_workload() {
    let pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web-pdb}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: web}}\n";
    let other = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: other-pdb}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: other}}\n";
    let yaml = [
        deployment("web", "nginx", &[]),
        pdb.to_owned(),
        other.to_owned(),
    ]
    .join("---\n");
    let dir = project(&[("k8s.yaml", &yaml), ("Tiltfile", "k8s_yaml('k8s.yaml')\n")]);
    let (graph, _) = graph(dir.path(), "Tiltfile");
    let kinds = |name: &str| -> Vec<String> {
        resource(&graph, name)["objects"]
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
            .collect()
    };
    assert_eq!(
        kinds("web"),
        ["Deployment/web", "PodDisruptionBudget/web-pdb"]
    );
    assert_eq!(kinds("uncategorized"), ["PodDisruptionBudget/other-pdb"]);
}
