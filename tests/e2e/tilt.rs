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
