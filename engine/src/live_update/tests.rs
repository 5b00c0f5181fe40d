use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use tempfile::TempDir;

use super::*;

/// A project root holding `files` (each containing its own name).
fn project(files: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        let path = dir.path().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, file).unwrap();
    }
    dir
}

fn sync(local: &str, remote: &str) -> LiveUpdateStep {
    LiveUpdateStep::Sync {
        local: local.into(),
        remote: remote.into(),
    }
}

fn run(cmd: &str, trigger: &[&str]) -> LiveUpdateStep {
    LiveUpdateStep::Run {
        cmd: Cmd::Shell(cmd.into()),
        trigger: trigger.iter().map(|t| t.to_string()).collect(),
    }
}

fn fall_back_on(paths: &[&str]) -> LiveUpdateStep {
    LiveUpdateStep::FallBackOn {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    }
}

fn changed(root: &Path, files: &[&str]) -> Vec<PathBuf> {
    files.iter().map(|f| root.join(f)).collect()
}

fn sync_plan(plan: Plan) -> SyncPlan {
    match plan {
        Plan::Sync(plan) => plan,
        other => panic!("expected a sync, got {other:?}"),
    }
}

fn full_reason(plan: Plan) -> String {
    match plan {
        Plan::Full { reason } => reason,
        other => panic!("expected a full update, got {other:?}"),
    }
}

fn shells(runs: &[Cmd]) -> Vec<String> {
    runs.iter().map(Cmd::display).collect()
}

#[test]
fn covered_files_are_copied_to_their_destinations() {
    let dir = project(&["src/a.txt", "src/sub/b.txt", "config.json", "web/x.js"]);
    let root = dir.path();
    let base = root.join("svc");
    let steps = [
        sync("src", "/app/src"),
        sync("config.json", "/etc/app.json"),
        sync("web", "static"),
    ];
    let files = changed(
        root,
        &["src/sub/b.txt", "web/x.js", "config.json", "src/a.txt"],
    );
    let plan = sync_plan(plan(&steps, root, &base, &files));
    let mut expected = vec![
        (root.join("config.json"), "/etc/app.json".to_owned()),
        (root.join("src/a.txt"), "/app/src/a.txt".to_owned()),
        (root.join("src/sub/b.txt"), "/app/src/sub/b.txt".to_owned()),
        (
            root.join("web/x.js"),
            format!("{}/static/x.js", base.display()),
        ),
    ];
    expected.sort();
    assert_eq!(plan.copies, expected);
    assert!(plan.deletes.is_empty());
    assert!(!plan.restart);
}

#[test]
fn the_first_covering_sync_wins() {
    let dir = project(&["src/special/s.txt", "src/a.txt"]);
    let root = dir.path();
    let steps = [sync("src/special", "/special"), sync("src", "/app")];
    let files = changed(root, &["src/special/s.txt", "src/a.txt"]);
    let plan = sync_plan(plan(&steps, root, root, &files));
    assert_eq!(
        plan.copies,
        vec![
            (root.join("src/a.txt"), "/app/a.txt".to_owned()),
            (root.join("src/special/s.txt"), "/special/s.txt".to_owned()),
        ]
    );
}

#[test]
fn a_file_not_covered_by_any_sync_means_a_full_update() {
    let dir = project(&["src/a.txt", "web/index.js"]);
    let root = dir.path();
    let steps = [sync("src", "/app")];
    let files = changed(root, &["src/a.txt", "web/index.js"]);
    let reason = full_reason(plan(&steps, root, root, &files));
    assert_eq!(reason, "web/index.js is not covered by any sync()");
    // A sibling whose name merely starts with the source is not inside it.
    let dir = project(&["src2/a.txt"]);
    let files = changed(dir.path(), &["src2/a.txt"]);
    let reason = full_reason(plan(&steps, dir.path(), dir.path(), &files));
    assert_eq!(reason, "src2/a.txt is not covered by any sync()");
}

#[test]
fn fall_back_on_files_folders_and_globs_mean_a_full_update() {
    let dir = project(&[
        "src/requirements.txt",
        "src/deps/x.txt",
        "src/a.lock",
        "src/sub/b.lock",
        "src/main.py",
    ]);
    let root = dir.path();
    let steps = [
        sync("src", "/app"),
        fall_back_on(&["src/requirements.txt", "src/deps", "src/*.lock"]),
    ];
    let full = |file: &str| full_reason(plan(&steps, root, root, &changed(root, &[file])));
    assert_eq!(
        full("src/requirements.txt"),
        "src/requirements.txt matches fall_back_on"
    );
    assert_eq!(
        full("src/deps/x.txt"),
        "src/deps/x.txt matches fall_back_on"
    );
    assert_eq!(full("src/a.lock"), "src/a.lock matches fall_back_on");
    // `*` does not cross `/`; other files sync.
    for file in ["src/sub/b.lock", "src/main.py"] {
        let plan = sync_plan(plan(&steps, root, root, &changed(root, &[file])));
        assert_eq!(plan.copies.len(), 1, "{file}");
    }
    // One matching file in a batch is enough.
    let files = changed(root, &["src/main.py", "src/requirements.txt"]);
    full_reason(plan(&steps, root, root, &files));
}

#[test]
fn a_glob_matches_files_inside_matching_folders() {
    let dir = project(&["pkgs/a/setup.cfg", "pkgs/a/src/m.py"]);
    let root = dir.path();
    let steps = [
        sync("pkgs", "/app"),
        fall_back_on(&["pkgs/*/setup.cfg", "pkgs/*/gen"]),
    ];
    let files = changed(root, &["pkgs/a/setup.cfg"]);
    full_reason(plan(&steps, root, root, &files));
    let files = changed(root, &["pkgs/a/gen/out.py"]);
    full_reason(plan(&steps, root, root, &files));
    let files = changed(root, &["pkgs/a/src/m.py"]);
    sync_plan(plan(&steps, root, root, &files));
}

#[test]
fn deleted_files_and_folders_become_deletes() {
    let dir = project(&["src/a.txt"]);
    let root = dir.path();
    let steps = [sync("src", "/app")];
    let files = changed(root, &["src/gone.txt", "src/a.txt", "src/old_folder"]);
    let plan = sync_plan(plan(&steps, root, root, &files));
    assert_eq!(
        plan.copies,
        vec![(root.join("src/a.txt"), "/app/a.txt".to_owned())]
    );
    assert_eq!(plan.deletes, vec!["/app/gone.txt", "/app/old_folder"]);
}

#[test]
fn a_deleted_sync_source_means_a_full_update() {
    let dir = project(&[]);
    let root = dir.path();
    let steps = [sync("src", "/app")];
    let reason = full_reason(plan(&steps, root, root, &changed(root, &["src"])));
    assert_eq!(reason, "src (a sync() source) was deleted");
}

#[test]
fn a_changed_folder_syncs_the_files_in_it() {
    let dir = project(&["src/new/a.txt", "src/new/deep/b.txt"]);
    fs::create_dir(dir.path().join("src/empty")).unwrap();
    let root = dir.path();
    let steps = [sync("src", "/app")];
    let plan_ = sync_plan(plan(&steps, root, root, &changed(root, &["src/new"])));
    assert_eq!(
        plan_.copies,
        vec![
            (root.join("src/new/a.txt"), "/app/new/a.txt".to_owned()),
            (
                root.join("src/new/deep/b.txt"),
                "/app/new/deep/b.txt".to_owned()
            ),
        ]
    );
    // Each file goes through the first sync covering it, and fall_back_on.
    let steps = [
        sync("src/new/deep", "/deep"),
        sync("src", "/app"),
        fall_back_on(&["src/old/lock"]),
    ];
    let plan_ = sync_plan(plan(&steps, root, root, &changed(root, &["src"])));
    assert_eq!(
        plan_.copies,
        vec![
            (root.join("src/new/a.txt"), "/app/new/a.txt".to_owned()),
            (root.join("src/new/deep/b.txt"), "/deep/b.txt".to_owned()),
        ]
    );
    fs::create_dir(root.join("src/old")).unwrap();
    fs::write(root.join("src/old/lock"), "").unwrap();
    let reason = full_reason(plan(&steps, root, root, &changed(root, &["src/old"])));
    assert_eq!(reason, "src/old/lock matches fall_back_on");
    // A new empty folder alone concerns nothing.
    assert_eq!(
        plan(&steps, root, root, &changed(root, &["src/empty"])),
        Plan::Nothing
    );
}

#[test]
fn runs_follow_their_triggers_in_order() {
    let dir = project(&["src/a.txt", "src/deps.txt", "src/m.py", "src/sub/x.py"]);
    let root = dir.path();
    let steps = [
        sync("src", "/app"),
        run("install", &["src/deps.txt"]),
        run("always", &[]),
        run("compile", &["src/*.py"]),
    ];
    let runs =
        |files: &[&str]| shells(&sync_plan(plan(&steps, root, root, &changed(root, files))).runs);
    assert_eq!(runs(&["src/a.txt"]), ["always"]);
    assert_eq!(runs(&["src/deps.txt"]), ["install", "always"]);
    assert_eq!(runs(&["src/sub/x.py"]), ["always"]);
    assert_eq!(
        runs(&["src/m.py", "src/deps.txt"]),
        ["install", "always", "compile"]
    );
}

#[test]
fn restart_container_sets_the_restart_flag() {
    let dir = project(&["src/a.txt"]);
    let root = dir.path();
    let files = changed(root, &["src/a.txt"]);
    let with = [sync("src", "/app"), LiveUpdateStep::RestartContainer];
    assert!(sync_plan(plan(&with, root, root, &files)).restart);
    assert!(!sync_plan(plan(&with[..1], root, root, &files)).restart);
}

#[test]
fn without_sync_steps_or_changes() {
    let dir = project(&["src/a.txt"]);
    let root = dir.path();
    let files = changed(root, &["src/a.txt"]);
    let steps = [run("make", &[])];
    assert!(!has_live_update(&steps));
    assert!(has_live_update(&[sync("src", "/app")]));
    let reason = full_reason(plan(&steps, root, root, &files));
    assert!(reason.contains("no live update"), "{reason}");
    assert_eq!(plan(&steps, root, root, &[]), Plan::Nothing);
    assert_eq!(plan(&[sync("src", "/app")], root, root, &[]), Plan::Nothing);
}

#[test]
fn relative_destinations_may_not_leave_the_remote_base() {
    let dir = project(&["src/a.txt"]);
    let root = dir.path();
    let base = root.join("svc");
    let files = changed(root, &["src/a.txt"]);
    let steps = [sync("src", "../outside")];
    let reason = full_reason(plan(&steps, root, &base, &files));
    assert!(reason.contains("leaves"), "{reason}");
    assert!(initial_plan(&steps, root, &base).is_err());
    // `..` that stays inside is fine; an absolute destination is the user's choice.
    let steps = [sync("src", "out/../in")];
    let copies = sync_plan(plan(&steps, root, &base, &files)).copies;
    assert_eq!(copies[0].1, format!("{}/in/a.txt", base.display()));
}

#[test]
fn initial_plan_lists_every_file_and_every_run() {
    let dir = project(&["src/a.txt", "src/sub/b.txt", "main.cfg", "other/c.txt"]);
    let root = dir.path();
    let steps = [
        sync("src/sub", "/sub"),
        sync("src", "/app"),
        sync("main.cfg", "/etc/main.cfg"),
        sync("missing", "/nowhere"),
        run("install", &["src/deps.txt"]),
        run("always", &[]),
        LiveUpdateStep::InitialSync,
        LiveUpdateStep::RestartContainer,
    ];
    let plan = initial_plan(&steps, root, root).unwrap();
    assert_eq!(
        plan.copies,
        vec![
            (root.join("main.cfg"), "/etc/main.cfg".to_owned()),
            (root.join("src/a.txt"), "/app/a.txt".to_owned()),
            (root.join("src/sub/b.txt"), "/sub/b.txt".to_owned()),
        ]
    );
    assert!(plan.deletes.is_empty());
    assert_eq!(shells(&plan.runs), ["install", "always"]);
    assert!(!plan.restart);
}

/// A local target whose log lines are collected.
fn local_target(run_dir: &Path) -> (LocalTarget, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let target = LocalTarget {
        run_dir: run_dir.to_path_buf(),
        env: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
        log: Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_owned())),
    };
    (target, lines)
}

fn dest(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn local_target_copies_deletes_and_runs() {
    let src = project(&["src/a.txt", "src/sub/b.txt"]);
    let out = project(&["old.txt", "old_dir/x.txt", "sub/b.txt"]);
    let (target, lines) = local_target(out.path());
    let o = out.path();
    let plan = SyncPlan {
        copies: vec![
            (
                src.path().join("src/a.txt"),
                dest(&o.join("new/deep/a.txt")),
            ),
            (src.path().join("src/sub/b.txt"), dest(&o.join("sub/b.txt"))),
        ],
        deletes: vec![
            dest(&o.join("old.txt")),
            dest(&o.join("old_dir")),
            dest(&o.join("never.txt")),
        ],
        runs: vec![
            Cmd::Shell("echo \"$GREETING from $(pwd)\" > ran.txt; echo one; echo two >&2".into()),
            Cmd::Argv(vec!["touch".into(), "argv.txt".into()]),
        ],
        restart: true,
        target: None,
    };
    let report = target.apply(&plan).await.unwrap();
    assert_eq!(
        report,
        SyncReport {
            copied: 2,
            deleted: 2,
            ran: 2
        }
    );
    assert_eq!(
        fs::read_to_string(o.join("new/deep/a.txt")).unwrap(),
        "src/a.txt"
    );
    assert_eq!(
        fs::read_to_string(o.join("sub/b.txt")).unwrap(),
        "src/sub/b.txt"
    );
    assert!(!o.join("old.txt").exists());
    assert!(!o.join("old_dir").exists());
    let ran = fs::read_to_string(o.join("ran.txt")).unwrap();
    assert_eq!(
        ran.trim(),
        format!("hello from {}", o.canonicalize().unwrap().display())
    );
    assert!(o.join("argv.txt").is_file());
    let mut lines = lines.lock().unwrap().clone();
    lines.sort();
    assert_eq!(lines, ["one", "two"]);
}

#[tokio::test]
async fn local_target_reports_a_failing_command_and_stops() {
    let out = project(&[]);
    let (target, _) = local_target(out.path());
    let plan = SyncPlan {
        runs: vec![
            Cmd::Shell("seq 1 25; exit 3".into()),
            Cmd::Shell("touch after.txt".into()),
        ],
        ..SyncPlan::default()
    };
    let err = target.apply(&plan).await.unwrap_err();
    let SyncError::Failed { cmd, code, output } = &err else {
        panic!("expected a failed command, got {err:?}");
    };
    assert_eq!(cmd, "seq 1 25; exit 3");
    assert_eq!(*code, Some(3));
    let expected: Vec<String> = (16..=25).map(|n| n.to_string()).collect();
    assert_eq!(output, &expected);
    let text = err.to_string();
    assert!(
        text.contains("`seq 1 25; exit 3` failed with exit code 3"),
        "{text}"
    );
    assert!(text.contains("\n    25"), "{text}");
    assert!(!out.path().join("after.txt").exists());

    let missing = SyncPlan {
        runs: vec![Cmd::Argv(vec!["/no/such/program".into()])],
        ..SyncPlan::default()
    };
    let err = target.apply(&missing).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot start `/no/such/program`"),
        "{err}"
    );
}

#[tokio::test]
async fn local_target_keeps_the_executable_bit() {
    let src = project(&["bin/tool", "bin/data"]);
    fs::write(src.path().join("bin/tool"), "#!/bin/sh\necho tool ran\n").unwrap();
    fs::set_permissions(
        src.path().join("bin/tool"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::set_permissions(
        src.path().join("bin/data"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = project(&[]);
    let plan = SyncPlan {
        copies: vec![
            (src.path().join("bin/data"), dest(&out.path().join("data"))),
            (src.path().join("bin/tool"), dest(&out.path().join("tool"))),
        ],
        runs: vec![Cmd::Shell("./tool".into())],
        ..SyncPlan::default()
    };
    let (target, lines) = local_target(out.path());
    target.apply(&plan).await.unwrap();
    assert_eq!(*lines.lock().unwrap(), ["tool ran"]);
    let mode = |name: &str| {
        fs::metadata(out.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("tool"), 0o755);
    assert_eq!(mode("data"), 0o644);
}

#[tokio::test]
async fn local_target_never_empties_a_file_copied_onto_itself() {
    let dir = project(&["a.txt"]);
    let root = dir.path();
    let steps = [sync(".", ".")];
    let plan = sync_plan(plan(&steps, root, root, &changed(root, &["a.txt"])));
    assert_eq!(
        plan.copies,
        vec![(root.join("a.txt"), dest(&root.join("a.txt")))]
    );
    let (target, _) = local_target(root);
    target.apply(&plan).await.unwrap();
    assert_eq!(fs::read_to_string(root.join("a.txt")).unwrap(), "a.txt");
}

#[tokio::test]
async fn local_target_deletes_the_destination_of_a_vanished_source() {
    let src = project(&[]);
    let out = project(&["a.txt"]);
    let (target, _) = local_target(out.path());
    let plan = SyncPlan {
        copies: vec![(src.path().join("a.txt"), dest(&out.path().join("a.txt")))],
        ..SyncPlan::default()
    };
    let report = target.apply(&plan).await.unwrap();
    assert_eq!(
        report,
        SyncReport {
            copied: 0,
            deleted: 1,
            ran: 0
        }
    );
    assert!(!out.path().join("a.txt").exists());
}
