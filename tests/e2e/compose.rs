//! `docker_compose()` services run by the real Docker Compose against a real
//! Docker daemon (`DOCKER_HOST`, started by `.ci/dockerd.sh`), as the image
//! tests are. Every service uses `network_mode: none` (the test daemon has no
//! bridge) and images made from the local busybox base: nothing is pulled.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::images::{docker, docker_ready, BASE};
use crate::support::{project, run_loop, run_loop_with, wait_until, Background};

/// Runs `loop down` in the project when the test ends, passed or not.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_loop"))
            .arg("down")
            .current_dir(self.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The containers of a Compose project: `name image` lines.
fn containers(project: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Names}} {{.Image}}",
    ]);
    let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn compose_file(web_cmd: &str) -> String {
    format!(
        "version: '2.4'\nservices:\n  web:\n    image: shop/web\n    network_mode: none\n    command: [\"sh\", \"-c\", \"{web_cmd}\"]\n  db:\n    image: {BASE}\n    network_mode: none\n    command: [\"sh\", \"-c\", \"echo db is up; sleep 1000\"]\n    healthcheck: {{test: [\"CMD\", \"true\"], interval: 1s}}\n"
    )
}

fn loopfile(project: &str) -> String {
    format!(
        "docker_compose('docker-compose.yml', project_name='{project}')\ndocker_build('shop/web', 'app')\ndc_resource('web', resource_deps=['db'], labels=['front'])\n"
    )
}

/// `loop ci` brings every service up with Compose, the service whose image a
/// docker_build builds runs the built image, logs reach the resource's log,
/// and `loop down` removes the containers.
#[test]
fn compose_services_run_with_the_built_image_and_loop_down_removes_them() {
    if !docker_ready("compose_services_run_with_the_built_image_and_loop_down_removes_them") {
        return;
    }
    let dir = project(&[
        ("Loopfile", &loopfile("loopci")),
        (
            "docker-compose.yml",
            &compose_file("echo hello from web; cat /app/msg; sleep 1000"),
        ),
        (
            "app/Dockerfile",
            &format!("FROM {BASE}\nCOPY msg /app/msg\n"),
        ),
        ("app/msg", "message one\n"),
    ]);
    let down = Down(dir.path());
    let graph = run_loop(dir.path(), &["graph"]);
    assert!(
        graph.stdout.contains("web (docker_compose)"),
        "{}",
        graph.stdout
    );
    assert!(graph.stdout.contains("after: db"), "{}", graph.stdout);
    let check = run_loop(dir.path(), &["check"]);
    assert!(
        check.stdout.contains("2 docker compose"),
        "{}",
        check.transcript()
    );
    let ci = run_loop(dir.path(), &["ci"]);
    assert_eq!(ci.code, 0, "{}", ci.transcript());
    let out = ci.transcript();
    for line in [
        "db is up",
        "hello from web",
        "message one",
        "all 2 resources up",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // db has a health check: it is ready once healthy, and before web starts
    // (resource_deps).
    assert!(out.contains("container starting"), "{out}");
    assert!(
        out.find("db is up") < out.find("building image shop/web"),
        "{out}"
    );
    let running = containers("loopci");
    assert_eq!(running.len(), 2, "{running:?}");
    assert!(
        running
            .iter()
            .any(|c| c.starts_with("loopci_web_1 shop/web:loop-")),
        "{running:?}"
    );
    drop(down);
    assert_eq!(containers("loopci"), Vec::<String>::new());
}

/// Under `loop run`, a change to the files of the service's image, or of the
/// image it is built FROM, rebuilds it and recreates the service with the new
/// image.
#[test]
fn compose_change_to_a_built_image_rebuilds_and_recreates_the_service() {
    if !docker_ready("compose_change_to_a_built_image_rebuilds_and_recreates_the_service") {
        return;
    }
    // The service's image is built FROM another image the Loopfile builds.
    let loopfile = format!("docker_build('shop/base', 'base')\n{}", loopfile("looprun"));
    let dir = project(&[
        ("Loopfile", &loopfile),
        (
            "docker-compose.yml",
            &compose_file("cat /greeting /app/msg; sleep 1000"),
        ),
        (
            "base/Dockerfile",
            &format!("FROM {BASE}\nCOPY greeting /\n"),
        ),
        ("base/greeting", "greeting one\n"),
        ("app/Dockerfile", "FROM shop/base\nCOPY msg /app/msg\n"),
        ("app/msg", "version one\n"),
    ]);
    let _down = Down(dir.path());
    let run = Background::start(dir.path(), &["run"]);
    run.wait_for_output("version one", 120);
    let status = run_loop(dir.path(), &["status", "--json"]);
    let value: serde_json::Value =
        serde_json::from_str(&status.stdout).expect("status --json is JSON");
    let web = value["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "web")
        .cloned()
        .unwrap_or_default();
    assert_eq!(web["kind"], "docker_compose", "{web}");
    let before = containers("looprun");
    std::fs::write(dir.path().join("app/msg"), "version two\n").unwrap();
    run.wait_for_output("version two", 120);
    // A change to the base rebuilds it, then the service's image FROM it.
    std::fs::write(dir.path().join("base/greeting"), "greeting two\n").unwrap();
    run.wait_for_output("greeting two", 120);
    let (_, out) = run.interrupt();
    let after = containers("looprun");
    let web = |list: &[String]| list.iter().find(|c| c.contains("web")).cloned();
    assert_ne!(web(&before), web(&after), "the image changed\n{out}");
    assert!(out.contains("building image shop/web"), "{out}");
}

/// A container that exits fails `loop ci` with its exit code; Compose sees
/// the variables `os.putenv` set.
#[test]
fn compose_container_exit_fails_ci_with_its_code() {
    if !docker_ready("compose_container_exit_fails_ci_with_its_code") {
        return;
    }
    let dir = project(&[
        (
            "Loopfile",
            "os.putenv('GREETING', 'giving up')\ndocker_compose('compose.yaml', project_name='loopexit')\n",
        ),
        (
            "compose.yaml",
            &format!("version: '2.4'\nservices:\n  job:\n    image: {BASE}\n    network_mode: none\n    command: [\"sh\", \"-c\", \"echo ${{GREETING}}; exit 3\"]\n"),
        ),
    ]);
    let _down = Down(dir.path());
    let ci = run_loop(dir.path(), &["ci"]);
    assert_eq!(ci.code, 1, "{}", ci.transcript());
    let out = ci.transcript();
    assert!(out.contains("giving up"), "{out}");
    assert!(out.contains("container exited with code 3"), "{out}");
}

/// Without Docker Compose, the error names both commands and how to install one.
#[test]
fn compose_without_the_compose_tool_says_how_to_install_it() {
    let dir = project(&[
        ("Loopfile", "docker_compose('compose.yaml')\n"),
        ("compose.yaml", "services:\n  web:\n    image: busybox\n"),
    ]);
    let empty = tempfile::tempdir().unwrap();
    let ci = run_loop_with(dir.path(), &["ci"], &[("PATH", empty.path())]);
    assert_eq!(ci.code, 1, "{}", ci.transcript());
    let out = ci.transcript();
    assert!(out.contains("`docker compose`"), "{out}");
    assert!(out.contains("`docker-compose`"), "{out}");
    assert!(out.contains("apt-get install docker-compose"), "{out}");
}

/// Under `loop run`, a container that is killed fails its resource (the log
/// says how it ended); a trigger brings the service up again in a new container.
#[test]
fn compose_a_killed_container_fails_the_resource_and_a_trigger_brings_it_back() {
    if !docker_ready("compose_a_killed_container_fails_the_resource_and_a_trigger_brings_it_back") {
        return;
    }
    let dir = project(&[
        (
            "Loopfile",
            "docker_compose('compose.yaml', project_name='looptrig')\n",
        ),
        (
            "compose.yaml",
            &format!("version: '2.4'\nservices:\n  svc:\n    image: {BASE}\n    network_mode: none\n    command: [\"sh\", \"-c\", \"echo svc started; sleep 1000\"]\n"),
        ),
    ]);
    let _down = Down(dir.path());
    let run = Background::start(dir.path(), &["run"]);
    run.wait_for_output("ready in", 120);
    docker(&["kill", "looptrig_svc_1"]);
    run.wait_for_output("failed: container exited with code 137", 60);
    let trigger = run_loop(dir.path(), &["trigger", "svc"]);
    assert_eq!(trigger.code, 0, "{}", trigger.transcript());
    wait_until(
        120,
        "the service up again",
        || run.output().matches("ready in").count() >= 2,
        || run.output(),
    );
    let (_, out) = run.interrupt();
    assert_eq!(out.matches("svc started").count(), 2, "{out}");
    assert_eq!(containers("looptrig").len(), 1);
}

/// A change covered by the image's `live_update` is copied into the running
/// container, its `run()` steps executed there and the container restarted:
/// no rebuild, the same container, its log followed after the restart.
#[test]
fn compose_live_update_syncs_into_the_running_container() {
    if !docker_ready("compose_live_update_syncs_into_the_running_container") {
        return;
    }
    let dir = project(&[
        (
            "Loopfile",
            "docker_compose('docker-compose.yml', project_name='looplive')\n\
             docker_build('shop/web', 'app', live_update=[sync('app', '/app'), run('echo ran in the container'), restart_container()])\n",
        ),
        (
            "docker-compose.yml",
            "version: '2.4'\nservices:\n  web:\n    image: shop/web\n    network_mode: none\n    command: [\"sh\", \"-c\", \"cat /app/msg; sleep 1000\"]\n",
        ),
        ("app/Dockerfile", &format!("FROM {BASE}\nCOPY msg /app/msg\n")),
        ("app/msg", "version one\n"),
    ]);
    let _down = Down(dir.path());
    let run = Background::start(dir.path(), &["run"]);
    run.wait_for_output("ready in", 120);
    let before = containers("looplive");
    std::fs::write(dir.path().join("app/msg"), "version two\n").unwrap();
    run.wait_for_output("live update done", 60);
    // Printed by the restarted container: its log is still followed.
    run.wait_for_output("version two", 60);
    let (_, out) = run.interrupt();
    assert_eq!(out.matches("building image shop/web").count(), 1, "{out}");
    assert!(out.contains("ran in the container"), "{out}");
    assert_eq!(before, containers("looplive"), "the same container\n{out}");
    let inside = docker(&["exec", "looplive_web_1", "cat", "/app/msg"]);
    assert_eq!(inside, "version two\n");
}

/// Compose expands `${VAR}` in its files from the environment and `.env`;
/// `loop` reads the files the same way, so a service whose image is written
/// with a variable still gets the image a docker_build builds. (No daemon:
/// only the graph is read.)
#[test]
fn compose_variables_come_from_the_environment_then_dotenv() {
    let dir = project(&[
        (
            "Loopfile",
            "os.putenv('TAG', 'dev')\ndocker_compose('docker-compose.yml')\ndocker_build('shop/web:dev', 'app')\n",
        ),
        (
            "docker-compose.yml",
            "services:\n  web:\n    image: ${REGISTRY:-docker.io}/web:${TAG}\n  db:\n    image: ${DB_IMAGE}\n",
        ),
        (".env", "REGISTRY=shop\nTAG=prod\nDB_IMAGE=postgres:16\n"),
        ("app/Dockerfile", "FROM scratch\n"),
    ]);
    let graph = run_loop(dir.path(), &["graph", "--format", "json"]);
    assert_eq!(graph.code, 0, "{}", graph.transcript());
    let graph: serde_json::Value = serde_json::from_str(&graph.stdout).unwrap();
    let images = |name: &str| {
        graph["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no resource {name} in {graph:#}"))["images"]
            .clone()
    };
    // REGISTRY and DB_IMAGE from .env; TAG from os.putenv, which wins over it.
    assert_eq!(images("web"), serde_json::json!(["shop/web:dev"]));
    assert_eq!(images("db"), serde_json::json!([]));

    // From a Loopfile in a subfolder, env_file is relative to that Loopfile.
    let dir = project(&[
        ("Loopfile", "include('svc/Loopfile')\n"),
        (
            "svc/Loopfile",
            "docker_compose('dc.yml', env_file='dev.env')\ndocker_build('shop/api', 'app')\n",
        ),
        ("svc/dc.yml", "services:\n  api:\n    image: ${REG}/api\n"),
        ("svc/dev.env", "REG=shop\n"),
        ("svc/app/Dockerfile", "FROM scratch\n"),
    ]);
    let run = run_loop(dir.path(), &["graph", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let graph: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        graph["resources"][0]["images"],
        serde_json::json!(["shop/api"]),
        "{graph:#}"
    );
}
