//! Real Tiltfiles run unchanged: the repository as the project root, Tilt's
//! command-line habits, and Tilt's built-ins and dialect.

use serde_json::Value;

use crate::support::{project, run_loop};

/// A repository (`.git`) whose service Tiltfile reaches up for shared files.
fn repo() -> tempfile::TempDir {
    let dir = project(&[
        (
            "lib.star",
            "def svc(name):\n    local_resource(name, serve_cmd='sleep 60')\n",
        ),
        ("Tiltfile", "local_resource('shared', cmd='true')\n"),
        (
            "svc/api/Tiltfile",
            "load('../../lib.star', 'svc')\ninclude('../../Tiltfile')\nsvc('api')\n",
        ),
    ]);
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    dir
}

#[test]
fn the_repository_is_the_root_and_f_names_the_tiltfile() {
    let dir = repo();
    let run = run_loop(dir.path(), &["check", "-f", "svc/api/Tiltfile"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "ok: 2 resources (2 local, 0 kubernetes), 0 images, 2 Tiltfiles, 3 watched files\n"
    );
    // --file works as well, from the service's own folder.
    let run = run_loop(
        &dir.path().join("svc/api"),
        &["graph", "--file", "Tiltfile"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("api (local) svc/api/Tiltfile:3:1"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_narrower_root_refuses_and_says_how_it_was_chosen() {
    let dir = repo();
    let api = dir.path().join("svc/api");
    let run = run_loop(&api, &["check", "--root", ".", "Tiltfile"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("outside the project root")
            && run
                .stderr
                .contains("(chosen with --root); pass --root DIR to widen the root"),
        "{}",
        run.stderr
    );
    // Without a repository, the root is the file's folder, and the error says so.
    std::fs::remove_dir(dir.path().join(".git")).unwrap();
    let run = run_loop(&api, &["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("(the folder of the top-level file)"),
        "{}",
        run.stderr
    );
    // --root widens it again.
    let root = dir.path().to_string_lossy().into_owned();
    let run = run_loop(&api, &["check", "--root", &root]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

const TILT_BUILTINS: &str = r#"
print(os.name, config.tilt_subcommand, shlex.quote("a b"))
print(__file__ == config.main_path, config.main_dir == os.getcwd())
os.putenv("GREETING", "hello")
print(str(local("echo $GREETING", quiet=True)).strip())
print(os.getenv("GREETING"))
os.putenv("GONE", "x")
os.unsetenv("GONE")
print(os.getenv("GONE", "unset"))
version_settings(check_updates=False, constraint=">=0.33")
enable_feature("labels")
set_team("team")
analytics_settings(False)
secret_settings(disable_scrub=True)
docker_prune_settings(disable=True)
update_settings(k8s_upsert_timeout_secs=60)
print("context=" + k8s_context())
yaml = blob("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {tier: front}
spec:
  template:
    spec:
      containers: [{name: web, image: web}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
""")
front, rest = filter_yaml(yaml, labels={"tier": "front"})
print(len(decode_yaml_stream(front)), len(decode_yaml_stream(rest)))
k8s_yaml(front)
workload_to_resource_function(lambda id: "%s-%s" % (id.kind.lower(), id.name))
local_resource("env", cmd="true", env={"OWN": "1"})

# The dialect: sets, recursion, global reassignment, top-level for/if.
def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)
seen = set([1, 2, 2])
total = 0
for i in range(depth(3)):
    if i in seen:
        total = total + i
print("total", total, len(seen))
exit()
local_resource("never", cmd="true")
"#;

#[test]
fn tilt_builtins_evaluate_with_tilt_semantics() {
    let dir = project(&[("Tiltfile", TILT_BUILTINS)]);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "current-context: kind-dev\ncontexts: []\n").unwrap();
    let env = [("KUBECONFIG", kubeconfig.as_path())];
    let run = crate::support::run_loop_with(dir.path(), &["graph", "--format", "json"], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in [
        "[Tiltfile] posix alpha tiltfile-result 'a b'",
        "[Tiltfile] True True",
        "[Tiltfile] hello\n[Tiltfile] hello",
        "[Tiltfile] unset",
        "[Tiltfile] warning: version_settings: the Tilt version constraint \">=0.33\" is ignored by loop",
        "[Tiltfile] warning: enable_feature: Tilt feature \"labels\" has no effect in loop",
        "[Tiltfile] warning: set_team: ignored",
        "[Tiltfile] warning: analytics_settings: ignored",
        "[Tiltfile] warning: update_settings: k8s_upsert_timeout_secs is ignored by loop",
        "[Tiltfile] context=kind-dev",
        "[Tiltfile] 1 1",
        "[Tiltfile] total 3 2",
    ] {
        assert!(run.stderr.contains(line), "missing {line:?} in\n{}", run.stderr);
    }
    // Settings that only turn a Tilt feature off have nothing to warn about.
    assert!(!run.stderr.contains("secret_settings"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("docker_prune_settings"),
        "{}",
        run.stderr
    );
    let graph: Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = graph["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["env", "deployment-web"]);
    // os.putenv reaches the resources' commands; their own env wins.
    let env = &graph["resources"][0]["env"];
    assert_eq!(env["GREETING"], "hello");
    assert_eq!(env["OWN"], "1");
    assert!(env.get("GONE").is_none(), "{env}");
}

/// `while` loops as ext://helm_remote and ext://git_resource write them.
const WHILE_LOOPS: &str = r#"
def find_root(start):
    current = os.path.abspath(start)
    while current != '/':
        if os.path.exists(os.path.join(current, 'Tiltfile')):
            return current
        current = os.path.dirname(current)
    fail('no root')

i = 0
evens = []
while i < 10:
    i += 1
    if i % 2:
        continue
    if i > 6: break
    j = 0
    while j < i: j += 1
    evens.append(j)
n = 0
while (n <
       3):
    n += 1
print("loops", find_root("sub/deeper") == config.main_dir, evens, n)
local_resource("after-loops", cmd="true", deps=[evens[10]])
"#;

#[test]
fn while_loops_run_as_in_tilt_and_errors_keep_their_lines() {
    let dir = project(&[("Tiltfile", WHILE_LOOPS)]);
    std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
    let run = run_loop(dir.path(), &["check"]);
    assert!(
        run.stderr.contains("[Tiltfile] loops True [2, 4, 6] 3"),
        "{}",
        run.stderr
    );
    // Line 25 as written, below four loops (one nested, one with its body on
    // its own line), whose rewrites added lines.
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--> Tiltfile:25:49"), "{}", run.stderr);
    assert!(
        run.stderr.contains("25 | local_resource(\"after-loops\""),
        "{}",
        run.stderr
    );

    // An error in a condition points into the `while` line as written.
    std::fs::write(
        dir.path().join("Tiltfile"),
        "x = 1\nwhile x < limit:\n    x += 1\n",
    )
    .unwrap();
    let run = run_loop(dir.path(), &["check"]);
    assert!(run.stderr.contains("--> Tiltfile:2:11"), "{}", run.stderr);
    assert!(
        run.stderr.contains("2 | while x < limit:"),
        "{}",
        run.stderr
    );

    // So does a syntax error below a loop (the parser read the rewritten text).
    std::fs::write(
        dir.path().join("Tiltfile"),
        "x = 1\nwhile x < 2:\n    x += 1\nz = = 3\n",
    )
    .unwrap();
    let run = run_loop(dir.path(), &["check"]);
    assert!(run.stderr.contains("--> Tiltfile:4:5"), "{}", run.stderr);
    assert!(run.stderr.contains("4 | z = = 3"), "{}", run.stderr);

    // A loop that never ends stops at the step budget, at the loop's line.
    std::fs::write(
        dir.path().join("Tiltfile"),
        "x = 0\nwhile True:\n    x += 1\n",
    )
    .unwrap();
    let steps = std::path::Path::new("10000");
    let run =
        crate::support::run_loop_with(dir.path(), &["check"], &[("LOOP_EVAL_MAX_STEPS", steps)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("10000"), "{}", run.stderr);
    assert!(run.stderr.contains("--> Tiltfile:3:5"), "{}", run.stderr);
}

/// What ext://uibutton does: it runs `tilt apply` (here `sys.executable`,
/// the `loop` binary) from `local()` with a UIButton and the Cmd it starts;
/// `loop apply` hands them to the evaluation, which declares the button.
const APPLIED_BUTTON: &str = r#"
local_resource("web", serve_cmd="sleep 60")
button = {"apiVersion": "tilt.dev/v1alpha1", "kind": "UIButton", "metadata": {"name": "hello"},
          "spec": {"text": "Say hi", "iconName": "waving_hand",
                   "location": {"componentType": "Resource", "componentID": "web"},
                   "inputs": [{"name": "WHO", "label": "", "text": {"defaultValue": "you"}}]}}
cmd = {"apiVersion": "tilt.dev/v1alpha1", "kind": "Cmd", "metadata": {"name": "btn-hello"},
       "spec": {"args": ["sh", "-c", "echo hi $WHO"], "dir": config.main_dir, "env": ["A=1"],
                "startOn": {"uiButtons": ["hello"]}}}
other = {"apiVersion": "tilt.dev/v1alpha1", "kind": "FileWatch", "metadata": {"name": "fw"}, "spec": {}}
local('echo "${TILT_APPLY_YAML}" | %s apply -f -' % sys.executable,
      env={"TILT_APPLY_YAML": str(encode_yaml_stream([button, cmd, other]))}, echo_off=True)
# Applied again (a second evaluation of the extension's call): replaced, not doubled.
local('echo "${TILT_APPLY_YAML}" | %s apply -f -' % sys.executable,
      env={"TILT_APPLY_YAML": str(encode_yaml_stream([button, cmd]))}, echo_off=True)
"#;

#[test]
fn objects_applied_from_local_declare_buttons_as_tilt_apply_would() {
    let dir = project(&[("Tiltfile", APPLIED_BUTTON)]);
    let run = run_loop(dir.path(), &["graph", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("loop apply: FileWatch \"fw\": ignored: loop takes UIButton objects"),
        "{}",
        run.stderr
    );
    let graph: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(graph["buttons"].as_array().unwrap().len(), 1, "{graph:#}");
    let button = &graph["buttons"][0];
    assert_eq!(button["name"], "hello", "{graph:#}");
    assert_eq!(button["text"], "Say hi");
    assert_eq!(button["resource"], "web");
    assert_eq!(button["icon"], "waving_hand");
    assert_eq!(
        button["inputs"],
        serde_json::json!([{"name": "WHO", "label": "WHO", "type": "text", "default": "you", "placeholder": ""}])
    );
    assert_eq!(
        button["commands"],
        serde_json::json!([{"name": "btn-hello", "argv": ["sh", "-c", "echo hi $WHO"], "dir": ".", "env": {"A": "1"}}])
    );
    // Outside a local() there is nothing to apply to.
    let run = run_loop(dir.path(), &["apply", "-f", "Tiltfile"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("works only in a command that a Loopfile's local() runs"),
        "{}",
        run.stderr
    );
}

/// What ext://file_sync_only does with live-update steps: it picks the sync
/// steps by `type()` and reads their paths from `str()`.
const STEP_VALUES: &str = r#"
def sync_params(step):
    parts = str(step).split("'")
    return parts[1], parts[3]

steps = [sync("src", "/app/src"), run("make", trigger=["src/a.c"]), restart_container()]
syncs = [sync_params(s) for s in steps if type(s) == "live_update_sync_step"]
print(syncs[0][0] == os.path.abspath("src"), syncs[0][1], len(syncs))
print(type(steps[1]), str(steps[1]).startswith('command: "make" ; triggers: ['))
print(type(steps[2]), steps[0] == sync("src", "/app/src"))
local_resource("app", serve_cmd="sleep 60", live_update=steps[:1])
"#;

#[test]
fn live_update_steps_have_tilts_types_and_string_forms() {
    let dir = project(&[("Tiltfile", STEP_VALUES)]);
    let run = crate::support::run_loop(dir.path(), &["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in [
        "[Tiltfile] True /app/src 1",
        "[Tiltfile] live_update_run_step True",
        "[Tiltfile] live_update_restart_container_step True",
    ] {
        assert!(
            run.stderr.contains(line),
            "missing {line:?} in\n{}",
            run.stderr
        );
    }
}

#[test]
fn a_forged_step_struct_is_not_a_live_update_step() {
    let forged = "local_resource('app', serve_cmd='sleep 60', live_update=[struct(__kind__='sync', local_path='src', remote_path='/app')])\n";
    let dir = project(&[("Tiltfile", forged)]);
    let run = crate::support::run_loop(dir.path(), &["check"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("must hold sync(), run(), restart_container()")
            && run.stderr.contains("Tiltfile:1:1"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_subcommand_and_context_follow_the_command_line() {
    let dir = project(&[(
        "Tiltfile",
        "print('sub=' + config.tilt_subcommand, 'ctx=' + k8s_context())\nlocal_resource('a', cmd='true')\n",
    )]);
    let run = run_loop(dir.path(), &["ci", "--context", "given"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("sub=ci ctx=given"), "{}", run.stderr);
}

/// A folder of programs for PATH: each `(name, script)` is written executable;
/// `(name, "@/abs/path")` links to an existing program instead.
fn bin_dir(root: &std::path::Path, programs: &[(&str, &str)]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, script) in programs {
        let path = bin.join(name);
        match script.strip_prefix('@') {
            Some(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
            None => {
                std::fs::write(&path, script).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
    }
    bin
}

/// Where a program is on loop's own PATH.
fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

const KUSTOMIZE_PROJECT: &[(&str, &str)] = &[
    (
        "k8s/base/kustomization.yaml",
        "resources:\n- deploy.yaml\n",
    ),
    (
        "k8s/base/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: web}]\n",
    ),
    (
        "k8s/overlay/kustomization.yaml",
        "resources:\n- ../base\nnamePrefix: dev-\n",
    ),
    ("Tiltfile", "k8s_yaml(kustomize('k8s/overlay'))\n"),
];

fn resource_names(graph_json: &str) -> Vec<String> {
    let graph: Value = serde_json::from_str(graph_json).unwrap();
    graph["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn kustomize_runs_kubectl_kustomize_when_kustomize_is_missing() {
    // The real kubectl (Debian's kubernetes-client, which .ci/run installs), alone
    // on the PATH, so that the fallback from `kustomize build` is taken.
    let kubectl =
        which("kubectl").expect("kubectl is on the PATH (.ci/run installs kubernetes-client)");
    let dir = project(KUSTOMIZE_PROJECT);
    let bin = bin_dir(
        dir.path(),
        &[("kubectl", &format!("@{}", kubectl.display()))],
    );
    let run = crate::support::run_loop_with(
        dir.path(),
        &["graph", "--format", "json"],
        &[("PATH", bin.as_path())],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(resource_names(&run.stdout), ["dev-web"]);
    assert!(
        run.stderr.contains("falling back to `kubectl kustomize`")
            && run
                .stderr
                .contains("Running: kubectl kustomize k8s/overlay"),
        "{}",
        run.stderr
    );
    // The base folder is watched too (it is outside the overlay's folder).
    let run = crate::support::run_loop_with(dir.path(), &["check"], &[("PATH", bin.as_path())]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("3 watched files"), "{}", run.stdout);
}

#[test]
fn kustomize_bin_and_flags_are_passed_as_tilt_passes_them() {
    // A stand-in for kustomize at the process boundary: it records its arguments
    // and prints a fixed ConfigMap.
    let dir = project(&[
        ("k8s/kustomization.yaml", "resources: []\n"),
        (
            "tools/kz",
            "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: from-kz\\n'\n",
        ),
        (
            "Tiltfile",
            "print(decode_yaml(kustomize('k8s', kustomize_bin='./tools/kz', flags=['--enable-helm']))['metadata']['name'])\n",
        ),
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("tools/kz"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let run = run_loop(dir.path(), &["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("[Tiltfile] from-kz"), "{}", run.stderr);
    let args = std::fs::read_to_string(dir.path().join("tools/args")).unwrap();
    assert_eq!(args, "build --enable-helm k8s\n");
}

#[test]
fn kustomize_without_a_tool_or_folder_says_what_to_install_or_fix() {
    let dir = project(KUSTOMIZE_PROJECT);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = crate::support::run_loop_with(dir.path(), &["check"], &[("PATH", empty.as_path())]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(
            "kustomize: neither `kustomize` nor `kubectl` was found on the PATH; install kubectl (Debian/Ubuntu: `apt-get install kubernetes-client`"
        ) && run.stderr.contains("--> Tiltfile:1:10"),
        "{}",
        run.stderr
    );
    std::fs::write(
        dir.path().join("Tiltfile"),
        "\nk8s_yaml(kustomize('k8s/nope'))\n",
    )
    .unwrap();
    let run = run_loop(dir.path(), &["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("kustomize: the kustomization folder k8s/nope does not exist")
            && run.stderr.contains("--> Tiltfile:2:10"),
        "{}",
        run.stderr
    );
    // A failing kustomize: its exit code and standard error.
    std::fs::write(
        dir.path().join("k8s/base/kustomization.yaml"),
        "resources:\n- missing.yaml\n",
    )
    .unwrap();
    let kubectl =
        which("kubectl").expect("kubectl is on the PATH (.ci/run installs kubernetes-client)");
    let bin = bin_dir(
        dir.path(),
        &[("kubectl", &format!("@{}", kubectl.display()))],
    );
    std::fs::write(
        dir.path().join("Tiltfile"),
        "k8s_yaml(kustomize('k8s/overlay'))\n",
    )
    .unwrap();
    let run = crate::support::run_loop_with(dir.path(), &["check"], &[("PATH", bin.as_path())]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("kustomize: command `kubectl kustomize k8s/overlay` failed with code 1")
            && run.stderr.contains("missing.yaml"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_change_in_a_kustomization_folder_reevaluates() {
    let kubectl =
        which("kubectl").expect("kubectl is on the PATH (.ci/run installs kubernetes-client)");
    let dir = project(&[
        ("k8s/kustomization.yaml", "resources:\n- cm.yaml\n"),
        (
            "k8s/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n",
        ),
        (
            "Tiltfile",
            "for doc in decode_yaml_stream(kustomize('k8s')):\n    local_resource(doc['metadata']['name'], cmd='true')\n",
        ),
    ]);
    let bin = bin_dir(
        dir.path(),
        &[
            ("kubectl", &format!("@{}", kubectl.display())),
            ("sh", "@/bin/sh"),
            ("true", "@/bin/true"),
        ],
    );
    let run = crate::support::Background::start_with_env(
        dir.path(),
        &["run"],
        &[("PATH", bin.as_path())],
    );
    run.wait_for_output("first", 60);
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::write(
        dir.path().join("k8s/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: second\n",
    )
    .unwrap();
    run.wait_for_output("reloaded: 1 added, 0 changed, 1 removed", 60);
}

/// A stand-in for `helm` at the process boundary (no package registry here
/// ships Helm): it records each call's arguments in `$HELM_CALLS`, answers
/// `version` as Helm 3 does, and prints what `helm template` prints for a chart
/// with a Deployment, a CRD and a chart test.
const FAKE_HELM: &str = r#"#!/bin/sh
echo "$@" >> "$HELM_CALLS"
if [ "$1" = version ]; then echo "v3.14.2+gc309b6f"; exit 0; fi
cat <<'YAML'
---
# Source: chart/templates/deploy.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers: [{name: web, image: web}]
---
# Source: chart/crds/widgets.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
---
# Source: chart/templates/tests/test-connection.yaml
apiVersion: v1
kind: Pod
metadata:
  name: web-test-connection
YAML
"#;

#[test]
fn helm_runs_helm_template_with_tilts_arguments() {
    let dir = project(&[
        ("chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n"),
        ("values-dev.yaml", "replicas: 2\n"),
        (
            "Tiltfile",
            "k8s_yaml(helm('chart', name='rel', namespace='dev', values=['values-dev.yaml'], set=['a=1', 'b=2'], kube_version='1.29.0'))\nprint(len(decode_yaml_stream(helm('chart', skip_crds=True))))\n",
        ),
    ]);
    let bin = bin_dir(
        dir.path(),
        &[
            ("helm", FAKE_HELM),
            ("sh", "@/bin/sh"),
            ("cat", "@/bin/cat"),
        ],
    );
    let calls = dir.path().join("calls");
    let run = crate::support::run_loop_with(
        dir.path(),
        &["graph", "--format", "json"],
        &[("PATH", bin.as_path()), ("HELM_CALLS", calls.as_path())],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let chart = dir.path().canonicalize().unwrap().join("chart");
    let chart = chart.display();
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        format!(
            "version --client --short\n\
             template rel {chart} --include-crds --namespace dev --kube-version 1.29.0 --values values-dev.yaml --set a=1 --set b=2\n\
             version --client --short\n\
             template chart {chart}\n"
        )
    );
    // The chart's test pod is left out; the namespace goes on namespaced objects.
    assert!(run.stderr.contains("[Tiltfile] 2\n"), "{}", run.stderr);
    let graph: Value = serde_json::from_str(&run.stdout).unwrap();
    let text = graph.to_string();
    assert!(!text.contains("web-test-connection"), "{text}");
    let web = graph["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "web")
        .unwrap_or_else(|| panic!("no resource `web` in {text}"));
    assert_eq!(web["objects"][0]["namespace"], "dev", "{web}");
    // The chart folder and the values file are watched.
    let run = crate::support::run_loop_with(
        dir.path(),
        &["check"],
        &[("PATH", bin.as_path()), ("HELM_CALLS", calls.as_path())],
    );
    assert!(run.stdout.contains("3 watched files"), "{}", run.stdout);
}

#[test]
fn helm_errors_name_the_missing_tool_chart_or_values_file() {
    let dir = project(&[
        (
            "chart/Chart.yaml",
            "apiVersion: v2\nname: chart\nversion: 0.1.0\n",
        ),
        ("Tiltfile", "k8s_yaml(helm('chart'))\n"),
    ]);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = crate::support::run_loop_with(dir.path(), &["check"], &[("PATH", empty.as_path())]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("helm: `helm` was not found on the PATH; install Helm 3 (https://helm.sh/docs/intro/install/)")
            && run.stderr.contains("--> Tiltfile:1:10"),
        "{}",
        run.stderr
    );
    std::fs::write(
        dir.path().join("Tiltfile"),
        "k8s_yaml(helm('charts/none'))\n",
    )
    .unwrap();
    let run = run_loop(dir.path(), &["check"]);
    assert!(
        run.stderr
            .contains("helm: the chart folder charts/none does not exist"),
        "{}",
        run.stderr
    );
    std::fs::write(
        dir.path().join("Tiltfile"),
        "k8s_yaml(helm('chart', values='nope.yaml'))\n",
    )
    .unwrap();
    let run = run_loop(dir.path(), &["check"]);
    assert!(
        run.stderr
            .contains("helm: the values file nope.yaml does not exist"),
        "{}",
        run.stderr
    );
    std::fs::write(
        dir.path().join("Tiltfile"),
        "k8s_yaml(helm('chart', set=[1]))\n",
    )
    .unwrap();
    let run = run_loop(dir.path(), &["check"]);
    assert!(
        run.stderr
            .contains("helm: argument `set`[0] must be a string, got"),
        "{}",
        run.stderr
    );
    // A failing helm: its exit code and standard error.
    let bin = bin_dir(
        dir.path(),
        &[(
            "helm",
            "#!/bin/sh\nif [ \"$1\" = version ]; then echo v3.14.2; exit 0; fi\necho 'Error: chart broken' >&2\nexit 1\n",
        ), ("sh", "@/bin/sh")],
    );
    std::fs::write(dir.path().join("Tiltfile"), "k8s_yaml(helm('chart'))\n").unwrap();
    let run = crate::support::run_loop_with(dir.path(), &["check"], &[("PATH", bin.as_path())]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("failed with code 1") && run.stderr.contains("Error: chart broken"),
        "{}",
        run.stderr
    );
}

#[test]
fn helm_renders_a_real_chart_when_helm_is_installed() {
    let Some(_) = which("helm") else {
        eprintln!("skipped: helm is not on the PATH (no package registry here ships it)");
        return;
    };
    let dir = project(&[
        ("chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n"),
        ("chart/values.yaml", "greeting: hello\n"),
        (
            "chart/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  greeting: {{ .Values.greeting }}\n",
        ),
        (
            "chart/templates/tests/test.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n",
        ),
        (
            "Tiltfile",
            "docs = decode_yaml_stream(helm('chart', name='rel', namespace='dev', set=['greeting=hi']))\nprint([d['metadata']['name'] + '/' + d['metadata']['namespace'] + '/' + d['data']['greeting'] for d in docs])\n",
        ),
    ]);
    let run = run_loop(dir.path(), &["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("[Tiltfile] [\"rel-settings/dev/hi\"]"),
        "{}",
        run.stderr
    );
}

#[test]
fn v1alpha1_objects_are_accepted_with_a_warning_naming_them() {
    let dir = project(&[(
        "Tiltfile",
        r#"
v1alpha1.extension_repo(name="default", url="file:///tmp/exts")
v1alpha1.extension(name="hello", repo_name="default", repo_path="hello")
loc = v1alpha1.ui_component_location(component_id="a", component_type="Resource")
print(loc.component_id)
v1alpha1.ui_button(name="greet", location=loc, text="Greet", icon_name="waving_hand")
v1alpha1.cmd(name="greet-cmd", args=["echo", "hi"], start_on=v1alpha1.start_on_spec(ui_buttons=["greet"]))
v1alpha1.cmd(name="alone", args=["echo", "hi"])
v1alpha1.config_map(name="settings", data={"a": "b"})
local_resource("a", cmd="true")
"#,
    )]);
    let run = run_loop(dir.path(), &["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in [
        "[Tiltfile] warning: v1alpha1.config_map(\"settings\"): ignored: loop does not implement Tilt's API objects",
        "[Tiltfile] a",
        "[Tiltfile] warning: v1alpha1.cmd(\"alone\"): ignored: loop runs a v1alpha1.cmd only when a ui_button starts it",
        "[Tiltfile] warning: v1alpha1.config_map(\"settings\"): ignored",
    ] {
        assert!(run.stderr.contains(line), "missing {line:?} in\n{}", run.stderr);
    }
    // A button and the command it starts are supported: no warning.
    assert!(
        !run.stderr.contains("v1alpha1.ui_button("),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("greet-cmd"), "{}", run.stderr);
    // Extension registrations are used by ext:// loads (tests/e2e/extensions.rs).
    assert!(!run.stderr.contains("v1alpha1.extension"), "{}", run.stderr);
}

#[test]
fn k8s_custom_deploy_declares_a_kubernetes_resource_with_its_commands() {
    let dir = project(&[(
        "Tiltfile",
        r#"
custom_build("shop/web", "true", deps=["src"])
os.putenv("FROM_PUTENV", "yes")
k8s_custom_deploy(
    "web",
    apply_cmd="kubectl apply -f app.yaml -o yaml",
    delete_cmd=["kubectl", "delete", "-f", "app.yaml"],
    deps=["app.yaml", "src"],
    image_deps=["shop/web"],
    apply_env={"A": "1"},
    live_update=[sync("src", "/app")],
    image_selector="nginx",
)
k8s_resource("web", port_forwards=8080, labels=["backend"])
"#,
    )]);
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let run = run_loop(dir.path(), &["graph", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let graph: Value = serde_json::from_str(&run.stdout).unwrap();
    let web = &graph["resources"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["kind"], "k8s");
    // The image_selector is a live-update target that is never built.
    assert_eq!(web["images"], serde_json::json!(["shop/web", "nginx"]));
    let nginx = &graph["images"][1];
    assert_eq!(nginx["ref"], "nginx");
    assert_eq!(nginx["kind"], "live_update_only");
    assert_eq!(nginx["live_update"][0]["step"], "sync", "{nginx}");
    assert_eq!(nginx["live_update"][0]["remote"], "/app", "{nginx}");
    assert_eq!(web["deps"], serde_json::json!(["app.yaml", "src"]));
    assert_eq!(web["labels"], serde_json::json!(["backend"]));
    let deploy = &web["custom_deploy"];
    assert_eq!(deploy["apply_cmd"], "kubectl apply -f app.yaml -o yaml");
    assert_eq!(
        deploy["delete_cmd"],
        serde_json::json!(["kubectl", "delete", "-f", "app.yaml"])
    );
    assert_eq!(deploy["apply_env"]["A"], "1");
    assert_eq!(deploy["apply_env"]["FROM_PUTENV"], "yes");
    assert_eq!(deploy["delete_env"]["FROM_PUTENV"], "yes");
}

/// An image_deps image built FROM another image of the Tiltfile brings that
/// base along, built first (as ext://restart_process's hidden base image is).
#[test]
fn k8s_custom_deploy_builds_the_bases_of_its_images_first() {
    let dir = project(&[
        (
            "Tiltfile",
            "docker_build('shop/base', 'base')\ndocker_build('shop/web', 'web')\nk8s_custom_deploy('web', apply_cmd='true', delete_cmd='true', deps=[], image_deps=['shop/web'])\n",
        ),
        ("base/Dockerfile", "FROM scratch\n"),
        ("web/Dockerfile", "FROM shop/base\nCOPY . /\n"),
    ]);
    let run = run_loop(dir.path(), &["graph", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let graph: Value = serde_json::from_str(&run.stdout).unwrap();
    let web = &graph["resources"][0];
    assert_eq!(web["images"], serde_json::json!(["shop/base", "shop/web"]));
}

/// The calls ext://helm_resource makes: k8s_custom_deploy with argv commands,
/// empty selectors and `live_update=None`, then one k8s_resource call per option.
#[test]
fn k8s_custom_deploy_takes_the_calls_of_the_helm_resource_extension() {
    let dir = project(&[(
        "Tiltfile",
        r#"
def release(name, resource_deps=None, labels=None, port_forwards=[], auto_init=True, pod_readiness=''):
    env = {'CHART': 'charts/db', 'RELEASE_NAME': name, 'NAMESPACE': '', 'TILT_IMAGE_COUNT': '0'}
    k8s_custom_deploy(name, apply_cmd=['python3', 'apply.py'], apply_env=env,
        delete_cmd=['python3', 'delete.py'], delete_env=env, deps=[], image_deps=[],
        image_selector='', container_selector='', live_update=None)
    if resource_deps:
        k8s_resource(name, resource_deps=resource_deps)
    if labels:
        k8s_resource(name, labels=labels)
    if len(port_forwards):
        k8s_resource(name, port_forwards=port_forwards)
    if not auto_init:
        k8s_resource(name, auto_init=auto_init)
    if pod_readiness:
        k8s_resource(name, pod_readiness=pod_readiness)
local_resource('repo', cmd='true')
release('db', resource_deps=['repo'], labels=['infra'], port_forwards=[5432], auto_init=False, pod_readiness='wait')
"#,
    )]);
    let run = run_loop(dir.path(), &["graph", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let graph: Value = serde_json::from_str(&run.stdout).unwrap();
    let db = &graph["resources"][1];
    assert_eq!(db["name"], "db");
    assert_eq!(db["resource_deps"], serde_json::json!(["repo"]));
    assert_eq!(db["labels"], serde_json::json!(["infra"]));
    assert_eq!(db["port_forwards"][0]["local_port"], 5432);
    assert_eq!(db["auto_init"], false);
    assert_eq!(db["custom_deploy"]["delete_env"]["RELEASE_NAME"], "db");
}
