//! Tests on real files and real processes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use loop_lang::data::Data;
use loop_lang::model::{Cmd, Image, ImageKind};
use loop_lang::Location;

use super::build::build_with;
use super::docker::{docker_build_argv, Tools};
use super::*;
use crate::report::LineSink;

fn custom(image_ref: &str, command: &str, deps: &[&str]) -> Image {
    let mut image = Image::new(image_ref, ImageKind::Custom, Location::default());
    image.command = Some(Cmd::Shell(command.to_owned()));
    image.command_dir = ".".to_owned();
    image.deps = deps.iter().map(|d| d.to_string()).collect();
    image
}

fn docker(image_ref: &str, context: &str) -> Image {
    let mut image = Image::new(image_ref, ImageKind::Docker, Location::default());
    image.context = Some(context.to_owned());
    image.dockerfile = Some(format!("{context}/Dockerfile"));
    image.deps = vec![context.to_owned()];
    image
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A project with a source folder.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "src/main.c", "int main() { return 0; }\n");
    write(dir.path(), "src/lib/util.c", "int util;\n");
    write(dir.path(), "README.md", "hello\n");
    dir
}

fn hash(image: &Image, root: &Path) -> String {
    content_hash(image, root).unwrap()
}

/// A log that keeps its lines.
fn logger() -> (LineSink, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = lines.clone();
    let log: LineSink = Arc::new(move |line: &str| kept.lock().unwrap().push(line.to_owned()));
    (log, lines)
}

fn no_warning() -> impl Fn(&str) {
    |w: &str| panic!("unexpected warning: {w}")
}

// ---- hashing ----

#[test]
fn hash_is_stable_and_independent_of_where_the_project_lives() {
    let (a, b) = (project(), project());
    let image = custom("app", "make", &["src"]);
    let first = hash(&image, a.path());
    assert_eq!(first.len(), 64);
    assert_eq!(first, hash(&image, a.path()));
    assert_eq!(first, hash(&image, b.path()), "same files elsewhere");
    let mut reordered = custom("app", "make", &["README.md", "src"]);
    let forward = hash(&reordered, a.path());
    reordered.deps.reverse();
    assert_eq!(
        forward,
        hash(&reordered, a.path()),
        "deps order is irrelevant"
    );
}

#[test]
fn tag_is_loop_and_sixteen_hex_digits() {
    let dir = project();
    let t = tag(&hash(&custom("app", "make", &["src"]), dir.path()));
    assert_eq!(t.len(), "loop-".len() + 16, "{t}");
    assert!(t.starts_with("loop-"));
    assert!(t[5..].chars().all(|c| c.is_ascii_hexdigit()), "{t}");
}

#[test]
fn hash_changes_with_contents_new_files_and_exec_bits() {
    let dir = project();
    let root = dir.path();
    let image = custom("app", "make", &["src"]);
    let mut seen = vec![hash(&image, root)];
    let mut changed = |what: &str| {
        let h = hash(&image, root);
        assert!(!seen.contains(&h), "hash unchanged after {what}");
        seen.push(h);
    };
    write(root, "src/main.c", "int main() { return 1; }\n");
    changed("a content change");
    write(root, "src/lib/new.c", "");
    changed("a new empty file");
    let path = root.join("src/lib/util.c");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    changed("an exec-bit change");
    fs::rename(root.join("src/lib/new.c"), root.join("src/lib/renamed.c")).unwrap();
    changed("a rename");
    std::os::unix::fs::symlink("main.c", root.join("src/link.c")).unwrap();
    changed("a new symlink");
    fs::remove_file(root.join("src/lib/renamed.c")).unwrap();
    changed("a removal");
    // Only the exec bit counts, not the other permission bits.
    let before = hash(&image, root);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(before, hash(&image, root));
}

#[test]
fn hash_changes_with_the_build_definition() {
    let dir = project();
    fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let root = dir.path();
    let base = docker("app", ".");
    let h = hash(&base, root);
    type Change = Box<dyn Fn(&mut Image)>;
    let variants: Vec<(&str, Change)> = vec![
        (
            "a build arg",
            Box::new(|i| {
                i.build_args.insert("MODE".into(), "dev".into());
            }),
        ),
        ("a target", Box::new(|i| i.target = Some("final".into()))),
        ("the ref", Box::new(|i| i.image_ref = "other".into())),
        ("the kind", Box::new(|i| i.kind = ImageKind::Custom)),
        (
            "a command",
            Box::new(|i| i.command = Some(Cmd::Shell("x".into()))),
        ),
        ("a tag", Box::new(|i| i.tag = Some("dev".into()))),
        ("only", Box::new(|i| i.only = vec!["src".into()])),
    ];
    for (what, change) in variants {
        let mut image = base.clone();
        change(&mut image);
        assert_ne!(
            h,
            hash(&image, root),
            "hash unchanged after changing {what}"
        );
    }
    // A build arg's value counts too.
    let mut a = base.clone();
    a.build_args.insert("MODE".into(), "dev".into());
    let mut b = base.clone();
    b.build_args.insert("MODE".into(), "prod".into());
    assert_ne!(hash(&a, root), hash(&b, root));
    // The Dockerfile's contents count even when it is outside the deps.
    let mut outside = base.clone();
    outside.deps = vec!["src".into()];
    let before = hash(&outside, root);
    fs::write(root.join("Dockerfile"), "FROM alpine\n").unwrap();
    assert_ne!(before, hash(&outside, root));
}

#[test]
fn hash_ignores_ignored_files_git_and_loop() {
    let dir = project();
    let root = dir.path();
    let mut image = custom("app", "make", &["src", "."]);
    image.ignore = vec!["*.log".into(), "src/build/".into()];
    let h = hash(&image, root);
    write(root, "src/debug.log", "noise");
    write(root, "src/build/out.o", "object");
    write(root, ".git/HEAD", "ref: refs/heads/main\n");
    write(root, "src/.git/config", "");
    write(root, ".loop/images.json", "{}");
    assert_eq!(h, hash(&image, root));
    // A dep inside an ignored folder is ignored too.
    let mut inner = image.clone();
    inner.deps = vec!["src/build/out.o".into()];
    let h_inner = hash(&inner, root);
    write(root, "src/build/out.o", "other object");
    assert_eq!(h_inner, hash(&inner, root));
    // A file that is not ignored still counts.
    write(root, "src/keep.txt", "x");
    assert_ne!(h, hash(&image, root));
}

#[test]
fn ignore_patterns_are_relative_to_the_context_or_command_dir() {
    let dir = project();
    let root = dir.path();
    write(root, "app/Dockerfile", "FROM scratch\n");
    write(root, "app/tmp/scratch.txt", "1");
    let mut image = docker("app", "app");
    image.ignore = vec!["/tmp".into()];
    let h = hash(&image, root);
    write(root, "app/tmp/scratch.txt", "2");
    assert_eq!(h, hash(&image, root), "app/tmp is ignored by /tmp");

    let mut cb = custom("app", "make", &["svc"]);
    cb.command_dir = "svc".into();
    cb.ignore = vec!["/gen".into()];
    write(root, "svc/gen/out.txt", "1");
    write(root, "svc/main.go", "package main\n");
    let h = hash(&cb, root);
    write(root, "svc/gen/out.txt", "2");
    assert_eq!(h, hash(&cb, root), "svc/gen is ignored by /gen");
    write(root, "svc/main.go", "package main // changed\n");
    assert_ne!(h, hash(&cb, root));
}

#[test]
fn missing_deps_count_and_absolute_deps_work() {
    let dir = project();
    let other = tempfile::tempdir().unwrap();
    let root = dir.path();
    let abs = other.path().join("shared");
    let image = custom(
        "app",
        "make",
        &["src", "generated.h", abs.to_str().unwrap()],
    );
    let h = hash(&image, root);
    write(root, "generated.h", "#define X 1\n");
    let h2 = hash(&image, root);
    assert_ne!(h, h2, "creating a missing dep changes the hash");
    write(other.path(), "shared/common.h", "");
    assert_ne!(h2, hash(&image, root), "a file in an absolute dep counts");
}

#[test]
fn bad_ignore_pattern_is_an_error() {
    let dir = project();
    let mut image = custom("app", "make", &["src"]);
    image.ignore = vec!["src/{a".into()];
    let err = content_hash(&image, dir.path()).unwrap_err();
    assert!(err.to_string().contains("src/{a"), "{err}");
}

// ---- the record ----

#[test]
fn record_round_trips_and_saves_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let record = Record::load(dir.path(), &no_warning());
    assert_eq!(record.get("app"), None);
    record
        .insert("app", Entry::now("abc", "app:loop-abc"))
        .unwrap();
    let again = Record::load(dir.path(), &no_warning());
    let entry = again.get("app").unwrap();
    assert_eq!(
        (entry.hash.as_str(), entry.built_ref.as_str()),
        ("abc", "app:loop-abc")
    );
    assert!(entry.built_at.ends_with('Z'), "{}", entry.built_at);
    let files: Vec<_> = fs::read_dir(dir.path().join(".loop"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, ["images.json"], "no temporary file is left");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(Record::path_in(dir.path())).unwrap()).unwrap();
    assert_eq!(json["app"]["built_ref"], "app:loop-abc");
    again.remove("app").unwrap();
    assert_eq!(Record::load(dir.path(), &no_warning()).get("app"), None);
}

#[test]
fn corrupt_record_is_empty_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".loop/images.json", "{\"app\": {\"hash\": 3");
    let warnings = Mutex::new(Vec::new());
    let record = Record::load(dir.path(), &|w: &str| {
        warnings.lock().unwrap().push(w.to_owned())
    });
    assert_eq!(record.get("app"), None);
    let warnings = warnings.into_inner().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("corrupt"), "{}", warnings[0]);
    assert!(warnings[0].contains(".loop/images.json"), "{}", warnings[0]);
    // Saving replaces the corrupt file with a good one.
    record.insert("app", Entry::now("h", "app:t")).unwrap();
    assert!(Record::load(dir.path(), &no_warning()).get("app").is_some());
}

// ---- custom_build ----

#[tokio::test]
async fn custom_build_runs_with_expected_ref_and_is_recorded() {
    let dir = project();
    let root = dir.path();
    let image = custom(
        "localhost:5000/app",
        "mkdir -p out && echo \"$EXPECTED_REF\" > out/ref && echo \"$EXPECTED_IMAGE $EXPECTED_TAG\" >> out/ref && echo built \"$EXPECTED_REF\"",
        &["src"],
    );
    let record = Record::load(root, &no_warning());
    let (log, lines) = logger();
    let built = build(&image, root, log, &record).await.unwrap();
    let expected = format!("localhost:5000/app:{}", tag(&built.hash));
    assert_eq!(built.built_ref, expected);
    assert_eq!(built.image_ref, "localhost:5000/app");
    assert!(!built.skipped);
    let out = fs::read_to_string(root.join("out/ref")).unwrap();
    assert_eq!(
        out,
        format!("{expected}\nlocalhost:5000/app {}\n", tag(&built.hash))
    );
    assert!(
        lines.lock().unwrap().contains(&format!("built {expected}")),
        "{:?}",
        lines.lock().unwrap()
    );
    let entry = Record::load(root, &no_warning())
        .get("localhost:5000/app")
        .unwrap();
    assert_eq!((entry.hash, entry.built_ref), (built.hash, expected));
}

#[tokio::test]
async fn unchanged_inputs_skip_the_build_also_after_a_restart() {
    let dir = project();
    let root = dir.path();
    // Each run appends a line to runs.txt (outside the deps).
    let image = custom("app", "echo run >> runs.txt", &["src"]);
    let runs = || {
        fs::read_to_string(root.join("runs.txt"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let record = Record::load(root, &no_warning());
    let first = build(&image, root, logger().0, &record).await.unwrap();
    assert_eq!(runs(), 1);

    let second = build(&image, root, logger().0, &record).await.unwrap();
    assert!(second.skipped);
    assert_eq!(second.built_ref, first.built_ref);
    assert_eq!(runs(), 1, "no build for an unchanged hash");

    // A new `loop` process: the record comes back from disk.
    let reloaded = Record::load(root, &no_warning());
    let (log, lines) = logger();
    let third = build(&image, root, log, &reloaded).await.unwrap();
    assert!(third.skipped);
    assert_eq!(third.built_ref, first.built_ref);
    assert_eq!(runs(), 1, "no build after a restart either");
    assert!(lines.lock().unwrap()[0].contains("inputs unchanged"));

    write(root, "src/main.c", "int main() { return 2; }\n");
    let fourth = build(&image, root, logger().0, &reloaded).await.unwrap();
    assert!(!fourth.skipped);
    assert_ne!(fourth.built_ref, first.built_ref);
    assert_eq!(runs(), 2, "a changed source rebuilds");
}

#[tokio::test]
async fn custom_build_with_a_tag_argv_command_and_dir() {
    let dir = project();
    let root = dir.path();
    write(root, "svc/input.txt", "x");
    let mut image = custom("registry.example.com/team/app", "", &["svc"]);
    image.command = Some(Cmd::Argv(vec![
        "sh".into(),
        "-c".into(),
        "printf '%s' \"$EXPECTED_REF\" > ref.txt".into(),
    ]));
    image.command_dir = "svc".into();
    image.tag = Some("dev".into());
    let record = Record::empty(root);
    let built = build(&image, root, logger().0, &record).await.unwrap();
    assert_eq!(built.built_ref, "registry.example.com/team/app:dev");
    assert_eq!(
        fs::read_to_string(root.join("svc/ref.txt")).unwrap(),
        "registry.example.com/team/app:dev"
    );
}

#[tokio::test]
async fn failing_build_names_command_exit_code_and_last_output() {
    let dir = project();
    let root = dir.path();
    let command = "echo compiling; echo 'error: missing semicolon' >&2; exit 3";
    let image = custom("app", command, &["src"]);
    let record = Record::empty(root);
    let (log, lines) = logger();
    let err = build(&image, root, log, &record).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("image app"), "{text}");
    assert!(text.contains(command), "{text}");
    assert!(text.contains("exit code 3"), "{text}");
    assert!(text.contains("error: missing semicolon"), "{text}");
    assert!(text.contains("compiling"), "{text}");
    assert!(lines.lock().unwrap().iter().any(|l| l == "compiling"));
    assert_eq!(record.get("app"), None, "a failed build is not recorded");
    assert!(!Record::path_in(root).exists());

    let mut missing = custom("app", "", &["src"]);
    missing.command = Some(Cmd::Argv(vec!["loop-test-no-such-builder".into()]));
    let err = build(&missing, root, Arc::new(|_: &str| {}), &record)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("loop-test-no-such-builder"),
        "{err}"
    );
}

#[tokio::test]
async fn failing_build_keeps_only_the_last_lines() {
    let dir = project();
    let image = custom("app", "seq 1 100; exit 1", &["src"]);
    let err = build(&image, dir.path(), logger().0, &Record::empty(dir.path()))
        .await
        .unwrap_err();
    let BuildError::Failed { output, .. } = &err else {
        panic!("{err}");
    };
    let expected: Vec<String> = (81..=100).map(|i| i.to_string()).collect();
    assert_eq!(output, &expected);
}

// ---- docker_build ----

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[tokio::test]
async fn docker_build_without_a_daemon_says_what_it_needs() {
    let dir = project();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    let image = docker("app", ".");
    let record = Record::empty(dir.path());
    let result = build(&image, dir.path(), logger().0, &record).await;
    if !on_path("docker") {
        let text = result.unwrap_err().to_string();
        assert!(text.contains("docker_build needs the docker CLI"), "{text}");
        return;
    }
    match result {
        Ok(built) => eprintln!(
            "skipped: a Docker daemon is reachable here, and built {}",
            built.built_ref
        ),
        Err(BuildError::DockerFailed { .. }) => {
            eprintln!("skipped: a Docker daemon is reachable here (the scratch build failed)")
        }
        Err(err) => {
            let text = err.to_string();
            eprintln!("{text}");
            assert!(
                text.starts_with(
                    "docker_build needs a Docker daemon: none is reachable (docker CLI said: "
                ),
                "{text}"
            );
            assert!(
                text.contains("Start Docker, set DOCKER_HOST, or use custom_build"),
                "{text}"
            );
            // What the CLI said is passed on, not swallowed.
            let said = text.split("docker CLI said: ").nth(1).unwrap();
            assert!(!said.starts_with(')'), "{text}");
            assert_eq!(record.get("app"), None);
        }
    }
}

#[tokio::test]
async fn docker_build_without_the_cli_says_so() {
    let dir = project();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    let tools = Tools {
        docker: "loop-test-no-such-docker".into(),
        ..Tools::default()
    };
    let err = build_with(
        &docker("app", "."),
        dir.path(),
        logger().0,
        &Record::empty(dir.path()),
        &tools,
        &Destination::Local,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("docker_build needs the docker CLI"),
        "{text}"
    );
    assert!(text.contains("loop-test-no-such-docker"), "{text}");
}

#[tokio::test]
async fn docker_build_with_a_reachable_daemon_runs_docker_build() {
    // A stand-in `docker` that answers `version` like a reachable daemon and
    // records the arguments of `build`.
    let dir = project();
    let root = dir.path();
    write(root, "app/Dockerfile", "FROM scratch\n");
    write(root, "app/main.go", "package main\n");
    let fake = root.join("bin/docker");
    write(
        root,
        "bin/docker",
        "#!/bin/sh\nif [ \"$1\" = version ]; then echo 99.0.0; exit 0; fi\n\
         printf '%s\\n' \"$@\" > \"$(dirname \"$0\")/args\"\n\
         cat > \"$(dirname \"$0\")/context.tar\"\necho step 1/1\n",
    );
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let mut image = docker("app", "app");
    image.target = Some("dev".into());
    image.build_args.insert("A".into(), "1".into());
    let tools = Tools {
        docker: fake.to_string_lossy().into_owned(),
        ..Tools::default()
    };
    let record = Record::empty(root);
    let (log, lines) = logger();
    let built = build_with(&image, root, log, &record, &tools, &Destination::Local)
        .await
        .unwrap();
    let args = fs::read_to_string(root.join("bin/args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args,
        [
            "build",
            "-t",
            &built.built_ref,
            "-f",
            "Dockerfile",
            "--target",
            "dev",
            "--build-arg",
            "A=1",
            "-",
        ]
    );
    // The context went on standard input, as a tar of the context folder.
    let tar = fs::read(root.join("bin/context.tar")).unwrap();
    let mut names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Dockerfile", "main.go"]);
    assert!(built.built_ref.starts_with("app:loop-"));
    let lines = lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("Docker 99.0.0")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "step 1/1"), "{lines:?}");
    assert_eq!(record.get("app").unwrap().built_ref, built.built_ref);
    assert_eq!(docker_build_argv(&image, "x", "Dockerfile")[0], "docker");
}

// ---- injection ----

fn yaml(text: &str) -> Data {
    Data::from_yaml(text).unwrap()
}

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
      - name: migrate
        image: localhost:5000/app:old
      containers:
      - name: web
        image: localhost:5000/app
        env:
        - {name: WORKER_IMAGE, value: localhost:5000/app:latest}
        - {name: OTHER, value: localhost:5000/application}
        - {name: FROM_SECRET, valueFrom: {secretKeyRef: {name: s, key: k}}}
      - name: sidecar
        image: envoyproxy/envoy:v1.30
      - name: similar
        image: localhost:5000/app-sidecar:1
";

fn images_of(body: &Data, path: &[&str]) -> Vec<String> {
    let spec = body.path(path).unwrap();
    ["initContainers", "containers"]
        .iter()
        .flat_map(|l| spec.get(l).map(Data::as_list).unwrap_or_default())
        .map(|c| c.get("image").and_then(Data::as_str).unwrap().to_owned())
        .collect()
}

fn env_values(body: &Data) -> Vec<Option<String>> {
    body.path(&["spec", "template", "spec"])
        .unwrap()
        .get("containers")
        .unwrap()
        .as_list()[0]
        .get("env")
        .unwrap()
        .as_list()
        .iter()
        .map(|v| v.get("value").and_then(Data::as_str).map(str::to_owned))
        .collect()
}

#[test]
fn inject_replaces_containers_and_init_containers_by_name() {
    let mut body = yaml(DEPLOYMENT);
    let n = inject(
        &mut body,
        "localhost:5000/app",
        "localhost:5000/app:loop-1234",
        false,
    );
    assert_eq!(n, 2);
    assert_eq!(
        images_of(&body, &["spec", "template", "spec"]),
        [
            "localhost:5000/app:loop-1234",
            "localhost:5000/app:loop-1234",
            "envoyproxy/envoy:v1.30",
            "localhost:5000/app-sidecar:1",
        ]
    );
    assert_eq!(
        env_values(&body)[0].as_deref(),
        Some("localhost:5000/app:latest"),
        "env vars untouched without match_in_env_vars"
    );
}

#[test]
fn inject_replaces_env_vars_with_match_in_env_vars() {
    let mut body = yaml(DEPLOYMENT);
    let n = inject(
        &mut body,
        "localhost:5000/app",
        "localhost:5000/app:loop-1",
        true,
    );
    assert_eq!(n, 3);
    assert_eq!(
        env_values(&body),
        [
            Some("localhost:5000/app:loop-1".to_owned()),
            Some("localhost:5000/application".to_owned()),
            None,
        ]
    );
}

#[test]
fn inject_matches_refs_with_tags_and_digests() {
    let pod = "
kind: Pod
spec:
  containers:
  - {name: a, image: 'app@sha256:0123abcd'}
  - {name: b, image: 'app:1.0@sha256:0123abcd'}
  - {name: c, image: 'app:dev'}
  - {name: d, image: 'myapp'}
";
    // A declared ref without a tag matches every tag and digest of the name.
    let mut body = yaml(pod);
    assert_eq!(inject(&mut body, "app", "app:loop-9", false), 3);
    assert_eq!(
        images_of(&body, &["spec"]),
        ["app:loop-9", "app:loop-9", "app:loop-9", "myapp"]
    );
    // With a tag, as in Tilt, only that tag.
    let mut body = yaml(pod);
    assert_eq!(inject(&mut body, "app:dev", "app:loop-9", false), 1);
    assert_eq!(
        images_of(&body, &["spec"]),
        [
            "app@sha256:0123abcd",
            "app:1.0@sha256:0123abcd",
            "app:loop-9",
            "myapp"
        ]
    );
}

#[test]
fn inject_finds_the_pod_spec_of_a_cronjob() {
    let mut body = yaml(
        "
apiVersion: batch/v1
kind: CronJob
spec:
  schedule: '* * * * *'
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - {name: job, image: 'registry:5000/jobs/report:v1'}
          initContainers:
          - {name: init, image: busybox}
",
    );
    let n = inject(
        &mut body,
        "registry:5000/jobs/report",
        "registry:5000/jobs/report:loop-2",
        false,
    );
    assert_eq!(n, 1);
    assert_eq!(
        images_of(&body, &["spec", "jobTemplate", "spec", "template", "spec"]),
        ["busybox", "registry:5000/jobs/report:loop-2"]
    );
}

#[test]
fn inject_leaves_other_objects_alone() {
    let mut body = yaml(DEPLOYMENT);
    let before = body.clone();
    assert_eq!(inject(&mut body, "other", "other:loop-1", true), 0);
    assert_eq!(inject(&mut body, "localhost:5001/app", "x:1", true), 0);
    assert_eq!(body, before);
    let mut config = yaml("kind: ConfigMap\ndata: {image: app}\n");
    let before = config.clone();
    assert_eq!(inject(&mut config, "app", "app:loop-1", true), 0);
    assert_eq!(config, before);
}

#[test]
fn workloads_using_finds_exactly_the_users() {
    use loop_lang::model::{Resource, ResourceKind};
    let mut web = Resource::new("web", ResourceKind::K8s, Location::default());
    web.images = vec!["app".into()];
    let mut worker = Resource::new("worker", ResourceKind::K8s, Location::default());
    worker.images = vec!["app".into(), "tools".into()];
    let db = Resource::new("db", ResourceKind::K8s, Location::default());
    let resources = [web, worker, db];
    let names: Vec<_> = workloads_using(&resources, "app")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["web", "worker"]);
    let names: Vec<_> = workloads_using(&resources, "tools")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["worker"]);
}

#[test]
fn the_failing_dockerfile_step_is_found_in_docker_output() {
    let lines: Vec<String> = [
        "Sending build context to Docker daemon  10.24kB",
        "Step 1/3 : FROM base",
        " ---> 0733c0783b5a",
        "Step 3/3 : RUN make",
        " ---> Running in 07fb408de765",
        "compiling",
        "\u{1b}[91merror: boom",
        "\u{1b}[0mDEPRECATED: The legacy builder is deprecated and will be removed in a future release.",
        "            Install the buildx component to build images with BuildKit:",
        "            https://docs.docker.com/go/buildx/",
        "",
        "The command '/bin/sh -c make' returned a non-zero code: 3",
    ]
    .map(String::from)
    .to_vec();
    let (step, output) = super::docker::failing_step(&lines);
    assert_eq!(step.as_deref(), Some("Step 3/3 : RUN make"));
    assert_eq!(
        output,
        [
            "compiling",
            "error: boom",
            "",
            "The command '/bin/sh -c make' returned a non-zero code: 3"
        ]
    );
    let buildkit: Vec<String> = [
        "#5 [2/2] RUN make",
        "#5 0.215 compiling",
        "#5 0.216 error: boom",
        "#5 ERROR: process \"/bin/sh -c make\" did not complete successfully: exit code: 3",
        "------",
        " > [2/2] RUN make:",
    ]
    .map(String::from)
    .to_vec();
    let (step, output) = super::docker::failing_step(&buildkit);
    assert_eq!(step.as_deref(), Some("[2/2] RUN make"));
    assert!(output.contains(&"error: boom".to_owned()), "{output:?}");
}

/// Image inputs follow the same rules as watching: a `.loopignore`d file is
/// neither watched nor hashed (nor sent to Docker), so changing it rebuilds
/// nothing; a gitignored one counts in a `docker_build` context (Docker sends
/// it, and it is watched there) but not in a `custom_build`'s deps (not watched).
#[test]
fn loopignored_files_are_not_image_inputs_and_gitignored_ones_are() {
    let dir = project();
    let root = dir.path();
    write(root, "src/Dockerfile", "FROM scratch\nCOPY . /\n");
    write(root, ".loopignore", "scratch/\n");
    write(root, ".gitignore", "dist/\n");
    write(root, "src/scratch/notes.txt", "one");
    write(root, "src/dist/app.js", "one");
    for (image, gitignored_counts) in [
        (docker("app", "src"), true),
        (custom("tool", "true", &["src"]), false),
    ] {
        let before = hash(&image, root);
        write(root, "src/scratch/notes.txt", "two");
        assert_eq!(
            hash(&image, root),
            before,
            "{}: a loopignored file counted",
            image.image_ref
        );
        write(root, "src/dist/app.js", "two");
        assert_eq!(
            hash(&image, root) != before,
            gitignored_counts,
            "{}: a gitignored file",
            image.image_ref
        );
        write(root, "src/dist/app.js", "one");
    }
    let context = context::Context::new(&docker("app", "src"), root).unwrap();
    let sent: Vec<String> = context
        .files()
        .unwrap()
        .iter()
        .map(|e| e.rel().to_owned())
        .collect();
    assert!(sent.contains(&"dist/app.js".to_owned()), "{sent:?}");
    assert!(!sent.iter().any(|p| p.starts_with("scratch")), "{sent:?}");
}

/// `watch_settings(ignore=...)` counts as `.loopignore` lines do (Tilt treats
/// it as `.tiltignore`): the files it names are not image inputs.
#[test]
fn watch_settings_ignores_are_not_image_inputs() {
    let dir = project();
    let root = dir.path();
    write(root, "src/Dockerfile", "FROM scratch\nCOPY . /\n");
    write(root, "src/tmp/cache.bin", "one");
    write(root, "src/main.c", "one");
    for mut image in [docker("app", "src"), custom("tool", "true", &["src"])] {
        image.watch_ignore = vec!["src/tmp/".to_owned()];
        let before = hash(&image, root);
        write(root, "src/tmp/cache.bin", "two");
        assert_eq!(hash(&image, root), before, "{}", image.image_ref);
        write(root, "src/main.c", "two");
        assert_ne!(hash(&image, root), before, "{}", image.image_ref);
        write(root, "src/main.c", "one");
    }
    let mut image = docker("app", "src");
    image.watch_ignore = vec!["src/tmp/".to_owned()];
    let context = context::Context::new(&image, root).unwrap();
    let sent: Vec<String> = context
        .files()
        .unwrap()
        .iter()
        .map(|e| e.rel().to_owned())
        .collect();
    assert!(sent.contains(&"main.c".to_owned()), "{sent:?}");
    assert!(!sent.iter().any(|p| p.starts_with("tmp")), "{sent:?}");
}
