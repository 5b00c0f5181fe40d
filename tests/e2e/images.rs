//! Images built by a real Docker daemon (`DOCKER_HOST`, started by `.ci/run`
//! through `.ci/dockerd.sh`), deployed to the test API server.
//!
//! Without `DOCKER_HOST` these tests fail and say how to run them; with
//! `LOOP_E2E_NO_DOCKER=1` they are skipped, saying so. Nothing is pulled: the
//! base image is imported from Debian's busybox-static binary.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::k8s::Cluster;
use crate::support::{project, run_loop};

/// The base image every test Dockerfile starts `FROM`.
pub(crate) const BASE: &str = "loop-test/busybox:1";

/// Whether the Docker tests run: `DOCKER_HOST` is set, or they are skipped on
/// request. Panics with what to do otherwise.
pub(crate) fn docker_ready(test: &str) -> bool {
    if std::env::var_os("DOCKER_HOST").is_some() {
        base_image();
        return true;
    }
    if std::env::var("LOOP_E2E_NO_DOCKER").as_deref() == Ok("1") {
        eprintln!("skipped {test}: LOOP_E2E_NO_DOCKER=1 (it needs a Docker daemon)");
        return false;
    }
    panic!(
        "{test} needs a Docker daemon and DOCKER_HOST is not set: run the tests through \
         `bash .ci/run` (it starts a private dockerd), or set DOCKER_HOST yourself; \
         LOOP_E2E_NO_DOCKER=1 skips these tests"
    );
}

/// Runs `docker ARGS`, returning stdout; panics with stderr on failure.
pub(crate) fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `docker image inspect REF` finds the image.
fn image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Imports [`BASE`] once per test run: busybox and its applets under `/bin`.
fn base_image() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if image_exists(BASE) {
            return;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("busybox-static is installed (.ci/dockerd.sh installs it)");
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        for applet in [
            "sh", "cat", "echo", "ls", "env", "false", "true", "sleep", "find",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let file = dir.path().join("base.tar");
        let tarred = Command::new("tar")
            .args(["-C", dir.path().to_str().unwrap(), "-cf"])
            .arg(&file)
            .arg("bin")
            .status()
            .unwrap();
        assert!(tarred.success());
        docker(&["import", file.to_str().unwrap(), BASE]);
    });
}

/// The output of `docker run --rm --network none IMAGE CMD...`.
fn run_in(image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "none", image];
    args.extend(cmd);
    docker(&args)
}

const WEB_YAML: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: shop/web
        args: ["--old"]
"#;

fn image_of(cluster: &Cluster) -> String {
    let web = cluster
        .deployment("web")
        .expect("the Deployment was applied");
    web["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The context loop sends is `context/`, filtered by `.dockerignore` and
/// `ignore`, never `.git` or `.loop`; an ignored file's change does not rebuild,
/// a kept file's change does.
#[test]
fn docker_build_sends_the_filtered_context_and_rebuilds_only_for_kept_files() {
    if !docker_ready("docker_build_sends_the_filtered_context_and_rebuilds_only_for_kept_files") {
        return;
    }
    let cluster = Cluster::start("kind-test");
    let dir = project(&[
        (
            "Loopfile",
            "k8s_yaml('app.yaml')\ndocker_build('shop/web', 'web', ignore=['*.tmp'])\n",
        ),
        ("app.yaml", WEB_YAML),
        (
            "web/Dockerfile",
            &format!("FROM {BASE}\nCOPY . /app\nCMD [\"cat\", \"/app/main.txt\"]\n"),
        ),
        ("web/.dockerignore", "secret.txt\nnotes\n"),
        ("web/main.txt", "v1\n"),
        ("web/secret.txt", "do not send\n"),
        ("web/notes/todo.md", "later\n"),
        ("web/scratch.tmp", "x\n"),
        ("web/.git/HEAD", "ref: refs/heads/main\n"),
        ("web/.loop/images.json", "{}\n"),
        ("web/src/lib.txt", "lib\n"),
    ]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let first = image_of(&cluster);
    assert!(first.starts_with("shop/web:loop-"), "{first}");
    assert!(image_exists(&first), "{first} is in the daemon");
    let listing = run_in(&first, &["find", "/app"]);
    let mut files: Vec<&str> = listing.lines().collect();
    files.sort();
    assert_eq!(
        files,
        [
            "/app",
            "/app/.dockerignore",
            "/app/Dockerfile",
            "/app/main.txt",
            "/app/src",
            "/app/src/lib.txt"
        ],
        "{}",
        run.stderr
    );
    assert_eq!(run_in(&first, &[]), "v1\n", "CMD of the image");

    // Ignored files change: no build, the same image stays deployed.
    std::fs::write(dir.path().join("web/secret.txt"), "changed\n").unwrap();
    std::fs::write(dir.path().join("web/notes/todo.md"), "changed\n").unwrap();
    std::fs::write(dir.path().join("web/scratch.tmp"), "changed\n").unwrap();
    std::fs::write(dir.path().join("web/.git/HEAD"), "changed\n").unwrap();
    let again = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("is up to date")
            && !again.stderr.contains("building shop/web")
            && !again.stdout.contains("building shop/web:"),
        "an ignored file rebuilt the image\n{}{}",
        again.stdout,
        again.stderr
    );
    assert_eq!(image_of(&cluster), first);

    // A kept file changes: a new image, deployed.
    std::fs::write(dir.path().join("web/main.txt"), "v2\n").unwrap();
    let third = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(third.code, 0, "{}{}", third.stdout, third.stderr);
    let second = image_of(&cluster);
    assert_ne!(second, first);
    assert_eq!(run_in(&second, &[]), "v2\n");
}

/// `dockerfile` is relative to the Loopfile and may live outside the context (it
/// is not copied by `COPY . .`); `dockerfile_contents`, `build_args`, `target`,
/// `extra_tag`, `network` and `entrypoint` reach the build and the pod spec.
#[test]
fn docker_build_options_reach_docker_and_the_pod_spec() {
    if !docker_ready("docker_build_options_reach_docker_and_the_pod_spec") {
        return;
    }
    let cluster = Cluster::start("kind-test");
    let dockerfile = format!(
        "FROM {BASE} AS base\nARG GREETING=none\nENV GREETING=$GREETING\n\
         FROM base AS dev\nCOPY . /app\n\
         FROM base AS prod\nCOPY hello.txt /only-prod\n"
    );
    let loopfile = format!(
        "k8s_yaml('app.yaml')\n\
         docker_build('shop/web', 'web', dockerfile='build/web.Dockerfile', \
         build_args={{'GREETING': 'hi'}}, target='dev', extra_tag=['shop/web:extra-{tag}'], \
         network='none', entrypoint=['cat', '/app/hello.txt'])\n\
         docker_build('shop/inline', 'web', dockerfile_contents='''{dockerfile}''', target='prod')\n",
        tag = std::process::id()
    );
    let yaml = format!(
        "{WEB_YAML}---\n{}",
        WEB_YAML
            .replace("web", "api")
            .replace("shop/api", "shop/inline")
    );
    let dir = project(&[
        ("Loopfile", &loopfile),
        ("app.yaml", &yaml),
        ("build/web.Dockerfile", &dockerfile),
        ("web/hello.txt", "hello\n"),
    ]);
    let check = crate::support::run_loop(dir.path(), &["check"]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let built = image_of(&cluster);
    let listing = run_in(&built, &["find", "/app"]);
    let mut files: Vec<&str> = listing.lines().collect();
    files.sort();
    assert_eq!(
        files,
        ["/app", "/app/hello.txt"],
        "the Dockerfile from outside the context is not in it"
    );
    assert_eq!(run_in(&built, &["sh", "-c", "echo $GREETING"]), "hi\n");
    assert!(image_exists(&format!(
        "shop/web:extra-{}",
        std::process::id()
    )));
    let web = cluster.deployment("web").unwrap();
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["command"],
        serde_json::json!(["cat", "/app/hello.txt"])
    );
    assert!(
        container.get("args").is_none(),
        "entrypoint replaces args: {container}"
    );
    // The inline Dockerfile, its prod stage.
    let api = cluster
        .server
        .object("apps", "deployments", "default", "api")
        .unwrap();
    let inline = api["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(inline.starts_with("shop/inline:loop-"), "{inline}");
    assert_eq!(run_in(&inline, &["cat", "/only-prod"]), "hello\n");
    assert!(
        run_in(&inline, &["sh", "-c", "ls /app 2>&1 || true"]).contains("No such file"),
        "the prod stage has no /app"
    );
}

/// A failing `RUN` step is reported with the step and what it printed, and
/// nothing is applied.
#[test]
fn a_failing_dockerfile_step_is_shown_with_its_output() {
    if !docker_ready("a_failing_dockerfile_step_is_shown_with_its_output") {
        return;
    }
    let cluster = Cluster::start("kind-test");
    let dir = project(&[
        (
            "Loopfile",
            "k8s_yaml('app.yaml')\ndocker_build('shop/web', 'web')\n",
        ),
        ("app.yaml", WEB_YAML),
        (
            "web/Dockerfile",
            &format!(
                "FROM {BASE}\nCOPY main.txt /main.txt\nRUN echo compiling; echo 'error: boom at main.txt:3' >&2; exit 3\n"
            ),
        ),
        ("web/main.txt", "v1\n"),
    ]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("docker build failed at Step 3/3 : RUN echo compiling;"),
        "{all}"
    );
    assert!(all.contains("error: boom at main.txt:3"), "{all}");
    assert!(
        all.contains("exit code 1") || all.contains("exit code 3"),
        "{all}"
    );
    assert!(cluster.deployment("web").is_none(), "nothing is applied");
}

/// The build waits for the cluster: with no API server answering, no image is
/// built and the error is about the cluster.
#[test]
fn no_image_is_built_before_the_cluster_answers() {
    if !docker_ready("no_image_is_built_before_the_cluster_answers") {
        return;
    }
    let port = crate::support::free_port();
    let dir = project(&[
        (
            "Loopfile",
            "k8s_yaml('app.yaml')\ndocker_build('shop/unbuilt', 'web')\n",
        ),
        ("app.yaml", &WEB_YAML.replace("shop/web", "shop/unbuilt")),
        ("web/Dockerfile", &format!("FROM {BASE}\n")),
    ]);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: kind-x\n  cluster: {{server: 'http://127.0.0.1:{port}'}}\nusers:\n- name: kind-x\n  user: {{token: x}}\ncontexts:\n- name: kind-x\n  context: {{cluster: kind-x, user: kind-x}}\ncurrent-context: kind-x\n")).unwrap();
    let run = crate::support::run_loop_with(
        dir.path(),
        &["ci", "--timeout", "60s"],
        &[("KUBECONFIG", &kubeconfig)],
    );
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("cluster unreachable"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("images are built once the cluster answers"),
        "{}",
        run.stdout
    );
    assert!(
        !format!("{}{}", run.stdout, run.stderr).contains("building shop/unbuilt"),
        "{}{}",
        run.stdout,
        run.stderr
    );
}

// ---- registries ----

/// The password of the test registry with basic auth, and its bcrypt hash.
const REGISTRY_USER: &str = "loop";
const REGISTRY_PASSWORD: &str = "loop-test-secret-4711";
const REGISTRY_HTPASSWD: &str = "loop:$2b$12$m7CgmylxVm4b.crhOi1PruHkSX1dQPpa52q8WBZLx3u3L7wqxx8IS";
/// base64 of `loop:loop-test-secret-4711`, as `docker login` writes it.
const REGISTRY_AUTH: &str = "bG9vcDpsb29wLXRlc3Qtc2VjcmV0LTQ3MTE=";

/// A Docker distribution registry (Debian's `docker-registry`) on loopback,
/// plain HTTP (Docker trusts 127.0.0.0/8 without TLS), stopped when dropped.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(basic_auth: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::support::free_port();
        let mut config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if basic_auth {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{REGISTRY_HTPASSWD}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: loop-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry runs (.ci/dockerd.sh installs it)");
        let registry = Registry {
            child,
            port,
            _dir: dir,
        };
        crate::support::wait_until(
            20,
            "the registry to listen",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            String::new,
        );
        registry
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `GET path` with optional basic auth: status line, headers and body.
    fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Basic {REGISTRY_AUTH}\r\n\
             Accept: application/vnd.docker.distribution.manifest.v2+json\r\n\
             Accept: application/vnd.oci.image.manifest.v1+json\r\n\r\n",
            self.host()
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    /// The tags of `repo`.
    fn tags(&self, repo: &str) -> Vec<String> {
        let answer = self.get(&format!("/v2/{repo}/tags/list"));
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        json["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The digest the registry serves for `repo:tag`.
    fn digest(&self, repo: &str, tag: &str) -> String {
        let answer = self.get(&format!("/v2/{repo}/manifests/{tag}"));
        answer
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("docker-content-digest:")
                    .then(|| l.split_once(':').unwrap().1.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no digest for {repo}:{tag}: {answer}"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn web_project(loopfile_head: &str) -> tempfile::TempDir {
    project(&[
        (
            "Loopfile",
            &format!("{loopfile_head}k8s_yaml('app.yaml')\ndocker_build('shop/web', 'web')\n"),
        ),
        ("app.yaml", WEB_YAML),
        (
            "web/Dockerfile",
            &format!("FROM {BASE}\nCOPY main.txt /main.txt\n"),
        ),
        ("web/main.txt", "v1\n"),
    ])
}

/// The one tag of `repo` and the digest the registry serves for it.
fn pushed(registry: &Registry, repo: &str) -> (String, String) {
    let tags = registry.tags(repo);
    assert_eq!(tags.len(), 1, "{tags:?}");
    let digest = registry.digest(repo, &tags[0]);
    (tags[0].clone(), digest)
}

#[test]
fn images_are_pushed_to_the_default_registry_and_deployed_by_digest() {
    if !docker_ready("images_are_pushed_to_the_default_registry_and_deployed_by_digest") {
        return;
    }
    let registry = Registry::start(false);
    let cluster = Cluster::start("kind-test");
    let dir = web_project(&format!("default_registry('{}')\n", registry.host()));
    let run = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let (tag, digest) = pushed(&registry, "shop_web");
    assert!(tag.starts_with("loop-"), "{tag}");
    assert_eq!(
        image_of(&cluster),
        format!("{}/shop_web@{digest}", registry.host()),
        "deployed by the digest the registry serves"
    );
    // loop ci records what it pushed: render --no-build pins the same digest.
    let lock = std::fs::read_to_string(dir.path().join("loop.lock.json")).unwrap();
    let lock: serde_json::Value = serde_json::from_str(&lock).unwrap();
    assert_eq!(
        lock["images"]["shop/web"]["pushed"],
        format!("{}/shop_web@{digest}", registry.host()),
        "{lock}"
    );
    let render = run_loop(dir.path(), &["render", "--no-build"]);
    assert_eq!(render.code, 0, "{}", render.stderr);
    assert!(
        render.stdout.contains(&format!("shop_web@{digest}")),
        "{}",
        render.stdout
    );
    // Unchanged: neither built nor pushed again.
    let again = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    let all = format!("{}{}", again.stdout, again.stderr);
    assert!(all.contains("already pushed as"), "{all}");
    assert!(!all.contains("pushing"), "{all}");
    assert_eq!(
        image_of(&cluster),
        format!("{}/shop_web@{digest}", registry.host())
    );
}

#[test]
fn a_registry_with_basic_auth_uses_the_docker_config_and_never_prints_it() {
    if !docker_ready("a_registry_with_basic_auth_uses_the_docker_config_and_never_prints_it") {
        return;
    }
    let registry = Registry::start(true);
    let cluster = Cluster::start("kind-test");
    let dir = web_project(&format!(
        "default_registry('{}', single_name='dev/all')\n",
        registry.host()
    ));
    let no_creds = tempfile::tempdir().unwrap();
    std::fs::write(no_creds.path().join("config.json"), "{}").unwrap();
    let env = |config: &Path| {
        crate::support::run_loop_with(
            dir.path(),
            &["ci", "--timeout", "120s"],
            &[
                ("KUBECONFIG", &cluster.kubeconfig),
                ("DOCKER_CONFIG", config),
            ],
        )
    };
    let refused = env(no_creds.path());
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stdout
            .contains(&format!("docker push {}/dev/all:loop-", registry.host())),
        "{}",
        refused.stdout
    );
    assert!(cluster.deployment("web").is_none());

    let creds = tempfile::tempdir().unwrap();
    std::fs::write(
        creds.path().join("config.json"),
        format!(
            "{{\"auths\": {{\"{}\": {{\"auth\": \"{REGISTRY_AUTH}\"}}}}}}",
            registry.host()
        ),
    )
    .unwrap();
    let run = env(creds.path());
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let (_, digest) = pushed(&registry, "dev/all");
    assert_eq!(
        image_of(&cluster),
        format!("{}/dev/all@{digest}", registry.host())
    );
    for out in [&refused.stdout, &refused.stderr, &run.stdout, &run.stderr] {
        assert!(!out.contains(REGISTRY_PASSWORD) && !out.contains(REGISTRY_AUTH));
    }
    let _ = REGISTRY_USER;
}

/// Without `default_registry`, the registry a cluster advertises (KEP-1755) is
/// used: pushed through `host`, pulled by the nodes through
/// `hostFromContainerRuntime`.
#[test]
fn the_registry_a_cluster_advertises_is_used_without_default_registry() {
    if !docker_ready("the_registry_a_cluster_advertises_is_used_without_default_registry") {
        return;
    }
    let registry = Registry::start(false);
    let cluster = Cluster::start("kind-test");
    cluster.server.put_object(
        "",
        "configmaps",
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "local-registry-hosting", "namespace": "kube-public"},
            "data": {"localRegistryHosting.v1": format!(
                "host: \"{}\"\nhostFromContainerRuntime: \"kind-registry:5000\"\n",
                registry.host()
            )}
        }),
    );
    let dir = web_project("");
    let run = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let (_, digest) = pushed(&registry, "shop_web");
    assert_eq!(
        image_of(&cluster),
        format!("kind-registry:5000/shop_web@{digest}")
    );
    assert!(
        run.stdout.contains("the cluster advertises the registry"),
        "{}",
        run.stdout
    );
}

/// A kind cluster without a registry gets the image through `kind load
/// docker-image`; without the kind CLI, `loop` says what to do.
#[test]
fn a_kind_cluster_without_a_registry_loads_the_image_with_kind() {
    if !docker_ready("a_kind_cluster_without_a_registry_loads_the_image_with_kind") {
        return;
    }
    let cluster = Cluster::start("kind-dev");
    let dir = web_project("");
    let missing = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(missing.code, 0, "{}{}", missing.stdout, missing.stderr);
    let all = format!("{}{}", missing.stdout, missing.stderr);
    assert!(
        all.contains("the kind cluster dev has no registry and `kind` is not on PATH"),
        "{all}"
    );

    let bin = tempfile::tempdir().unwrap();
    let kind = bin.path().join("kind");
    std::fs::write(
        &kind,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}/args\n",
            bin.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&kind, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = crate::support::run_loop_with(
        dir.path(),
        &["ci", "--timeout", "120s"],
        &[
            ("KUBECONFIG", &cluster.kubeconfig),
            ("PATH", Path::new(&path)),
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let args = std::fs::read_to_string(bin.path().join("args")).unwrap();
    let image = image_of(&cluster);
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        ["load", "docker-image", image.as_str(), "--name", "dev"]
    );
}

// ---- builds without Docker ----

/// Pushes [`BASE`] to `registry` as `base/busybox:1`; returns its reference there.
fn push_base(registry: &Registry) -> String {
    let target = format!("{}/base/busybox:1", registry.host());
    docker(&["tag", BASE, &target]);
    docker(&["push", &target]);
    target
}

fn oci_project(registry: &Registry, base: &str) -> tempfile::TempDir {
    project(&[
        (
            "Loopfile",
            &format!(
                "default_registry('{}')\nk8s_yaml('app.yaml')\n\
                 oci_build('shop/web', '{base}', files={{'/app/': 'web', '/usr/local/bin/hello': 'hello.sh'}}, \
                 entrypoint=['sh', '-c', 'cat /app/main.txt; hello'], env={{'MODE': 'dev'}}, workdir='/app')\n",
                registry.host()
            ),
        ),
        ("app.yaml", WEB_YAML),
        ("web/main.txt", "v1\n"),
        ("web/sub/data.txt", "data\n"),
        ("hello.sh", "#!/bin/sh\necho hello from $MODE in $(pwd)\n"),
    ])
}

/// `oci_build` pushes an image that Docker pulls from the registry and runs;
/// two builds of the same inputs (other folders, other mtimes, empty caches)
/// give the same digest; a one-file change sends only that file's layer.
#[test]
fn oci_build_pushes_a_runnable_image_with_a_reproducible_digest() {
    if !docker_ready("oci_build_pushes_a_runnable_image_with_a_reproducible_digest") {
        return;
    }
    let registry = Registry::start(false);
    let base = push_base(&registry);
    let cluster = Cluster::start("kind-test");
    let dir = oci_project(&registry, &base);
    std::fs::set_permissions(
        dir.path().join("hello.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let run = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("without Docker (oci_build from"), "{all}");
    let (tag, digest) = pushed(&registry, "shop_web");
    let deployed = image_of(&cluster);
    assert_eq!(deployed, format!("{}/shop_web@{digest}", registry.host()));
    assert!(tag.starts_with("loop-"), "{tag}");

    // Docker pulls it from the registry and runs it.
    assert!(
        !image_exists(&deployed),
        "not in the daemon before the pull"
    );
    assert_eq!(run_in(&deployed, &[]), "v1\nhello from dev in /app\n");

    // The same inputs elsewhere, written later, with an empty cache: same bytes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let other = oci_project(&registry, &base);
    std::fs::set_permissions(
        other.path().join("hello.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cluster2 = Cluster::start("kind-test");
    let again = cluster2.run(other.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(image_of(&cluster2), deployed, "byte-identical image");
    let all = format!("{}{}", again.stdout, again.stderr);
    assert!(
        all.contains("0 blob(s), 0 B sent"),
        "everything was in the registry\n{all}"
    );

    // One file changes: one layer, the config and the manifest go.
    std::fs::write(other.path().join("web/main.txt"), "v2\n").unwrap();
    let third = cluster2.run(other.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(third.code, 0, "{}{}", third.stdout, third.stderr);
    let all = format!("{}{}", third.stdout, third.stderr);
    assert!(
        all.contains("2 blob(s)"),
        "the new layer and config only\n{all}"
    );
    assert!(all.contains("1 of 2 layer(s) from the cache"), "{all}");
    let changed = image_of(&cluster2);
    assert_ne!(changed, deployed);
    assert_eq!(run_in(&changed, &[]), "v2\nhello from dev in /app\n");
}

#[test]
fn oci_build_without_a_registry_says_what_to_declare() {
    let cluster = Cluster::start("kind-test");
    let dir = project(&[
        (
            "Loopfile",
            "k8s_yaml('app.yaml')\noci_build('shop/web', 'localhost:5000/busybox:1', files={'/app': 'web'})\n",
        ),
        ("app.yaml", WEB_YAML),
        ("web/main.txt", "v1\n"),
    ]);
    let run = cluster.run(dir.path(), &["ci", "--timeout", "60s"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("oci_build pushes the image it assembles to a registry, and there is none: declare default_registry"),
        "{}",
        run.stdout
    );
}

/// A value no other build used.
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// `secret` turns BuildKit on; a `RUN --mount=type=secret` step reads it and
/// the build output never shows it. (Debian's docker CLI, which has BuildKit
/// built in, is put first on PATH; the daemon has no bridge, hence
/// `network='none'`.)
#[test]
fn a_buildkit_secret_reaches_the_run_step() {
    if !docker_ready("a_buildkit_secret_reaches_the_run_step") {
        return;
    }
    if !Path::new("/usr/bin/docker").is_file() {
        panic!("Debian's docker CLI (/usr/bin/docker, package docker.io) is needed for BuildKit");
    }
    let cluster = Cluster::start("kind-test");
    let secret_dir = tempfile::tempdir().unwrap();
    let token = secret_dir.path().join("token");
    std::fs::write(&token, "s3cret-for-loop\n").unwrap();
    let dir = project(&[
        (
            "Loopfile",
            &format!(
                "k8s_yaml('app.yaml')\ndocker_build('shop/web', 'web', network='none', secret=['id=token,src={}'])\n",
                token.display()
            ),
        ),
        ("app.yaml", WEB_YAML),
        (
            "web/Dockerfile",
            // The marker keeps BuildKit's cache (which ignores secrets) out of it.
            &format!(
                "FROM {BASE}\nRUN --mount=type=secret,id=token cat /run/secrets/token > /token.txt; : {}\n",
                unique()
            ),
        ),
    ]);
    let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
    let run = crate::support::run_loop_with(
        dir.path(),
        &["ci", "--timeout", "120s"],
        &[
            ("KUBECONFIG", &cluster.kubeconfig),
            ("PATH", Path::new(&path)),
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("s3cret-for-loop"));
    let image = image_of(&cluster);
    assert_eq!(run_in(&image, &["cat", "/token.txt"]), "s3cret-for-loop\n");
}

/// `loop render` builds and pushes the image, pins the digest the registry
/// serves, and records it in loop.lock.json; `--no-build` pins from the lock
/// and `--check` finds a changed input.
#[test]
fn render_pins_the_pushed_digest_and_the_lock_finds_drift() {
    if !docker_ready("render_pins_the_pushed_digest_and_the_lock_finds_drift") {
        return;
    }
    let registry = Registry::start(false);
    let dir = web_project(&format!("default_registry('{}')\n", registry.host()));
    let run = run_loop(dir.path(), &["render"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let (_, digest) = pushed(&registry, "shop_web");
    let pinned = format!("{}/shop_web@{digest}", registry.host());
    assert!(
        run.stdout.contains(&format!("image: {pinned}")),
        "{}",
        run.stdout
    );
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("loop.lock.json")).unwrap())
            .unwrap();
    assert_eq!(
        lock["images"]["shop/web"]["pushed"],
        pinned.as_str(),
        "{lock}"
    );
    let no_build = run_loop(dir.path(), &["render", "--no-build"]);
    assert_eq!(no_build.code, 0, "{}", no_build.stderr);
    assert_eq!(no_build.stdout, run.stdout);
    assert_eq!(run_loop(dir.path(), &["render", "--check"]).code, 0);
    std::fs::write(dir.path().join("web/main.txt"), "v2\n").unwrap();
    let drift = run_loop(dir.path(), &["render", "--check"]);
    assert_eq!(drift.code, 1, "{}", drift.stderr);
    assert!(
        drift.stderr.contains(&format!(
            "image shop/web: its inputs changed since it was pushed as {pinned}"
        )),
        "{}",
        drift.stderr
    );
    let stale = run_loop(dir.path(), &["render", "--no-build"]);
    assert_eq!(stale.code, 1);
    assert!(
        stale
            .stderr
            .contains("run `loop render` without --no-build"),
        "{}",
        stale.stderr
    );
}

#[test]
fn render_without_a_registry_says_what_to_declare() {
    let dir = web_project("");
    let run = run_loop(dir.path(), &["render"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("declare one with default_registry(\"HOST\")"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
}

/// A Dockerfile without `RUN` (a base in a registry, `COPY`, `ENV`, `WORKDIR`,
/// `CMD`) is built without Docker when there is a registry, with the same
/// context Docker would get (`.dockerignore` applied).
#[test]
fn a_dockerfile_without_run_is_built_without_docker() {
    if !docker_ready("a_dockerfile_without_run_is_built_without_docker") {
        return;
    }
    let registry = Registry::start(false);
    let base = push_base(&registry);
    let cluster = Cluster::start("kind-test");
    let dir = project(&[
        (
            "Loopfile",
            &format!(
                "default_registry('{}')\nk8s_yaml('app.yaml')\ndocker_build('shop/web', 'web')\n",
                registry.host()
            ),
        ),
        ("app.yaml", WEB_YAML),
        (
            "web/Dockerfile",
            &format!(
                "FROM {base}\nWORKDIR /app\nCOPY . .\nENV MODE=dev\nCMD [\"cat\", \"main.txt\"]\n"
            ),
        ),
        ("web/.dockerignore", "secret.txt\n"),
        ("web/main.txt", "v1\n"),
        ("web/secret.txt", "no\n"),
        ("web/src/lib.txt", "lib\n"),
    ]);
    let check = crate::support::run_loop(dir.path(), &["check"]);
    assert!(
        check.stdout.contains(
            "image shop/web: built and pushed by loop without Docker when there is a registry"
        ),
        "{}",
        check.stdout
    );
    let run = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("without Docker (its Dockerfile has no RUN step"),
        "{all}"
    );
    assert!(!all.contains("Sending build context"), "{all}");
    let (_, digest) = pushed(&registry, "shop_web");
    let image = image_of(&cluster);
    assert_eq!(image, format!("{}/shop_web@{digest}", registry.host()));
    assert_eq!(run_in(&image, &[]), "v1\n");
    assert_eq!(
        run_in(&image, &["sh", "-c", "echo $MODE $PWD"]),
        "dev /app\n"
    );
    let listing = run_in(&image, &["find", "/app"]);
    let mut files: Vec<&str> = listing.lines().collect();
    files.sort();
    assert_eq!(
        files,
        [
            "/app",
            "/app/.dockerignore",
            "/app/Dockerfile",
            "/app/main.txt",
            "/app/src",
            "/app/src/lib.txt"
        ]
    );
}

/// An image built `FROM` another image of the project (Tilt's image
/// dependencies): the base is built first and listed on the resource, the
/// dependent's `FROM` names the built base, and a change to the base's files
/// rebuilds both.
#[test]
fn an_image_built_from_another_builds_after_it_and_with_it() {
    if !docker_ready("an_image_built_from_another_builds_after_it_and_with_it") {
        return;
    }
    let cluster = Cluster::start("kind-test");
    let dir = project(&[
        (
            "Loopfile",
            "k8s_yaml('app.yaml')\ndocker_build('shop/web', 'web')\ndocker_build('shop/base', 'base')\n",
        ),
        ("app.yaml", WEB_YAML),
        (
            "base/Dockerfile",
            &format!("FROM {BASE}\nCOPY base.txt /base.txt\n"),
        ),
        ("base/base.txt", "base v1\n"),
        (
            "web/Dockerfile",
            "FROM shop/base AS runtime\nCOPY main.txt /main.txt\nCMD [\"cat\", \"/base.txt\", \"/main.txt\"]\n",
        ),
        ("web/main.txt", "web\n"),
    ]);
    let graph = run_loop(dir.path(), &["graph", "--format", "json"]);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    let graph: serde_json::Value = serde_json::from_str(&graph.stdout).unwrap();
    assert_eq!(
        graph["resources"][0]["images"],
        serde_json::json!(["shop/base", "shop/web"]),
        "the base first, on the resource of its dependent"
    );
    let run = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let first = image_of(&cluster);
    assert_eq!(run_in(&first, &[]), "base v1\nweb\n");

    std::fs::write(dir.path().join("base/base.txt"), "base v2\n").unwrap();
    let again = cluster.run(dir.path(), &["ci", "--timeout", "120s"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    let second = image_of(&cluster);
    assert_ne!(second, first, "a change to the base rebuilt the dependent");
    assert_eq!(run_in(&second, &[]), "base v2\nweb\n");
}
