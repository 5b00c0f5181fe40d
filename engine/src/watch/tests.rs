//! Tests on real files in temporary folders. They wait on the channel with
//! generous timeouts and never assert on timing.

use super::*;
use std::fmt::Write as _;

const PATIENCE: Duration = Duration::from_secs(10);

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

fn config(root: &Path) -> WatchConfig {
    WatchConfig {
        debounce: Duration::from_millis(50),
        max_wait: Duration::from_secs(5),
        ..WatchConfig::new(root)
    }
}

fn write(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, "x").unwrap();
}

/// Everything received so far.
#[derive(Debug, Default)]
struct Seen {
    changes: BTreeSet<PathBuf>,
    batches: Vec<Vec<PathBuf>>,
    problems: Vec<String>,
    overflow: bool,
}

impl Seen {
    fn has(&self, path: &Path) -> bool {
        self.changes.contains(path)
    }

    fn summary(&self) -> String {
        let mut text = format!(
            "{} batches, overflow: {}, problems: {:?}, changes:",
            self.batches.len(),
            self.overflow,
            self.problems
        );
        for path in self.changes.iter().take(20) {
            let _ = write!(text, " {}", path.display());
        }
        text
    }
}

/// Receives events until `done` holds for what was seen, or fails after
/// `PATIENCE` without an event.
async fn until(events: &mut UnboundedReceiver<WatchEvent>, done: impl Fn(&Seen) -> bool) -> Seen {
    let mut seen = Seen::default();
    while !done(&seen) {
        match tokio::time::timeout(PATIENCE, events.recv()).await {
            Ok(Some(WatchEvent::Changes(paths))) => {
                let mut sorted = paths.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(paths, sorted, "a batch is sorted and deduplicated");
                assert!(!paths.is_empty(), "no empty batches");
                seen.changes.extend(paths.iter().cloned());
                seen.batches.push(paths);
            }
            Ok(Some(WatchEvent::Problem(problem))) => seen.problems.push(problem),
            Ok(Some(WatchEvent::Overflow)) => seen.overflow = true,
            Ok(None) => panic!("the watcher stopped; {}", seen.summary()),
            Err(_) => panic!("no event for {PATIENCE:?}; {}", seen.summary()),
        }
    }
    seen
}

#[tokio::test]
async fn created_modified_and_deleted_files_are_reported() {
    let (_dir, root) = temp();
    write(&root.join("a.txt"));
    write(&root.join("sub/b.txt"));
    let (watcher, mut events) = Watcher::start(config(&root)).unwrap();
    assert_eq!(watcher.watched_dirs(), 2);

    let created = root.join("sub/c.txt");
    write(&created);
    until(&mut events, |seen| seen.has(&created)).await;

    let modified = root.join("a.txt");
    fs::write(&modified, "changed").unwrap();
    until(&mut events, |seen| seen.has(&modified)).await;

    let deleted = root.join("sub/b.txt");
    fs::remove_file(&deleted).unwrap();
    let seen = until(&mut events, |seen| seen.has(&deleted)).await;
    assert!(seen.problems.is_empty(), "{}", seen.summary());
}

#[tokio::test]
async fn ignored_folders_get_no_watch_and_no_events() {
    let (_dir, root) = temp();
    fs::write(root.join(".gitignore"), "by_git/\n*.log\n").unwrap();
    fs::write(root.join(".loopignore"), "by_loop\n").unwrap();
    for dir in [
        "by_git/x",
        "by_loop",
        "by_config/deep",
        "kept/inner",
        ".git/objects",
        ".loop",
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    let mut config = config(&root);
    config.ignore = vec!["by_config/".into()];
    let (watcher, mut events) = Watcher::start(config).unwrap();
    // The root, kept and kept/inner.
    assert_eq!(watcher.watched_dirs(), 3);

    let ignored = [
        "by_git/x/f.txt",
        "by_loop/f.txt",
        "by_config/deep/f.txt",
        "app.log",
        "kept/inner/debug.log",
        ".git/HEAD",
        ".loop/state",
    ];
    for path in ignored {
        write(&root.join(path));
    }
    let sentinel = root.join("kept/inner/ok.txt");
    write(&sentinel);
    let seen = until(&mut events, |seen| seen.has(&sentinel)).await;
    assert_eq!(
        seen.changes,
        BTreeSet::from([sentinel]),
        "{}",
        seen.summary()
    );
    // New folders that the rules ignore get no watch either.
    fs::create_dir_all(root.join("kept/by_git")).unwrap();
    fs::create_dir_all(root.join("kept/by_loop/deep")).unwrap();
    let sentinel = root.join("kept/ok2.txt");
    write(&sentinel);
    until(&mut events, |seen| seen.has(&sentinel)).await;
    assert_eq!(watcher.watched_dirs(), 3);
}

/// In a `docker_build` context the build's own filter decides in place of
/// `.gitignore` (Docker sends gitignored files): a gitignored `dist/` there is
/// watched, even under a gitignored folder on the way down; what the build
/// leaves out (a dockerignored `node_modules/`) is not; `.loopignore` still
/// applies; elsewhere `.gitignore` does.
#[tokio::test]
async fn gitignored_files_that_an_image_reads_are_watched() {
    let (_dir, root) = temp();
    fs::write(root.join(".gitignore"), "dist/\nbuild/\nnode_modules/\n").unwrap();
    fs::write(root.join(".loopignore"), "scratch/\n").unwrap();
    for dir in [
        "app/dist",
        "app/scratch",
        "app/node_modules",
        "other/dist",
        "build/image/dist",
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    let mut config = config(&root);
    let dockerignored = |path: &Path, _: bool| path.ends_with("node_modules");
    config.image_inputs = vec![
        crate::watch::ImageInput {
            dir: root.join("app"),
            excludes: Some(std::sync::Arc::new(dockerignored)),
        },
        crate::watch::ImageInput {
            dir: root.join("build/image"),
            excludes: None,
        },
    ];
    let (_watcher, mut events) = Watcher::start(config).unwrap();
    for path in [
        "other/dist/x.js",
        "app/scratch/x.js",
        "app/node_modules/x.js",
    ] {
        write(&root.join(path));
    }
    let read_by_images = [
        root.join("app/dist/x.js"),
        root.join("build/image/dist/y.js"),
    ];
    for path in &read_by_images {
        write(path);
    }
    let seen = until(&mut events, |seen| {
        read_by_images.iter().all(|p| seen.has(p))
    })
    .await;
    assert_eq!(
        seen.changes,
        BTreeSet::from(read_by_images.clone()),
        "{}",
        seen.summary()
    );
}

#[tokio::test]
async fn new_folders_are_watched_and_their_files_reported() {
    let (_dir, root) = temp();
    fs::write(root.join(".gitignore"), "node_modules/\n").unwrap();
    let (watcher, mut events) = Watcher::start(config(&root)).unwrap();
    assert_eq!(watcher.watched_dirs(), 1);

    // Written right after the folders were made, likely before their watch.
    let early = root.join("new/deep/early.txt");
    write(&early);
    write(&root.join("new/node_modules/pkg/index.js"));
    let seen = until(&mut events, |seen| seen.has(&early)).await;
    assert!(
        !seen.changes.iter().any(|p| p.ends_with("index.js")),
        "{}",
        seen.summary()
    );
    assert_eq!(watcher.watched_dirs(), 3, "the root, new and new/deep");

    let later = root.join("new/deep/later.txt");
    write(&later);
    until(&mut events, |seen| seen.has(&later)).await;
}

#[tokio::test]
async fn a_burst_of_10000_writes_is_one_batch() {
    let (_dir, root) = temp();
    fs::create_dir(root.join("burst")).unwrap();
    let config = WatchConfig {
        // Long enough that a busy machine cannot split the burst.
        debounce: Duration::from_secs(2),
        max_wait: Duration::from_secs(600),
        ..WatchConfig::new(&root)
    };
    let (_watcher, mut events) = Watcher::start(config).unwrap();
    let files: BTreeSet<PathBuf> = (0..10_000)
        .map(|i| root.join(format!("burst/file-{i:05}.txt")))
        .collect();
    for file in &files {
        fs::write(file, "burst").unwrap();
    }
    let seen = until(&mut events, |seen| {
        seen.overflow || files.iter().all(|file| seen.has(file))
    })
    .await;
    if seen.overflow {
        // The kernel queue (fs.inotify.max_queued_events) was too short for
        // this burst: the loss must be reported, as it was.
        eprintln!(
            "the inotify queue overflowed (max_queued_events: {:?}); Overflow was reported",
            fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        );
        return;
    }
    assert_eq!(seen.batches.len(), 1, "{}", seen.summary());
    assert_eq!(seen.changes, files);
}

#[tokio::test]
async fn an_extra_file_outside_the_root_is_watched_alone() {
    let (_dir, root) = temp();
    let (_other_dir, other) = temp();
    let conf = other.join("conf.yaml");
    write(&conf);
    let mut config = config(&root);
    config.extra = vec![conf.clone()];
    let (watcher, mut events) = Watcher::start(config).unwrap();
    assert_eq!(watcher.watched_dirs(), 2, "the root and the file's folder");

    let noise = other.join("noise.txt");
    write(&noise);
    fs::write(&conf, "changed").unwrap();
    let seen = until(&mut events, |seen| seen.has(&conf)).await;
    assert_eq!(seen.changes, BTreeSet::from([conf]), "{}", seen.summary());
}

#[tokio::test]
async fn an_extra_folder_is_watched_like_the_root_and_its_removal_is_a_problem() {
    let (_dir, root) = temp();
    let (_other_dir, other) = temp();
    let lib = other.join("lib");
    fs::create_dir_all(lib.join("sub")).unwrap();
    let mut config = config(&root);
    config.extra = vec![lib.clone()];
    let (watcher, mut events) = Watcher::start(config).unwrap();
    assert_eq!(watcher.watched_dirs(), 3);

    let file = lib.join("sub/x.star");
    write(&file);
    until(&mut events, |seen| seen.has(&file)).await;

    fs::remove_dir_all(&lib).unwrap();
    let seen = until(&mut events, |seen| {
        seen.has(&lib) && !seen.problems.is_empty()
    })
    .await;
    assert!(seen.has(&file), "{}", seen.summary());
    assert_eq!(seen.problems.len(), 1, "{}", seen.summary());
    assert!(
        seen.problems[0].contains(&format!("watched folder {} was removed", lib.display())),
        "{}",
        seen.problems[0]
    );
    assert_eq!(watcher.watched_dirs(), 1);
}

#[tokio::test]
async fn a_removed_subfolder_is_reported_and_watched_again_when_recreated() {
    let (_dir, root) = temp();
    let sub = root.join("sub");
    write(&sub.join("a.txt"));
    let (watcher, mut events) = Watcher::start(config(&root)).unwrap();
    assert_eq!(watcher.watched_dirs(), 2);

    fs::remove_dir_all(&sub).unwrap();
    let seen = until(&mut events, |seen| {
        seen.has(&sub) && seen.has(&sub.join("a.txt"))
    })
    .await;
    // Nothing is lost when a subfolder goes: its parent sees it come back.
    assert!(seen.problems.is_empty(), "{}", seen.summary());
    assert_eq!(watcher.watched_dirs(), 1);

    fs::create_dir(&sub).unwrap();
    until(&mut events, |seen| seen.has(&sub)).await;
    let again = sub.join("b.txt");
    write(&again);
    until(&mut events, |seen| seen.has(&again)).await;
    assert_eq!(watcher.watched_dirs(), 2);
}

#[tokio::test]
async fn removing_the_root_is_a_problem_reported_once() {
    let (_dir, parent) = temp();
    let root = parent.join("project");
    write(&root.join("sub/a.txt"));
    let (watcher, mut events) = Watcher::start(config(&root)).unwrap();

    fs::remove_dir_all(&root).unwrap();
    let mut seen = until(&mut events, |seen| {
        seen.has(&root) && !seen.problems.is_empty()
    })
    .await;
    // Anything still in flight arrives within a second; no second report.
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
        if let WatchEvent::Problem(problem) = event {
            seen.problems.push(problem);
        }
    }
    assert_eq!(seen.problems.len(), 1, "{}", seen.summary());
    assert!(
        seen.problems[0].contains("was removed"),
        "{}",
        seen.problems[0]
    );
    assert!(seen.has(&root.join("sub")), "{}", seen.summary());
    assert_eq!(watcher.watched_dirs(), 0);
}

#[tokio::test]
async fn ignore_files_are_reread_live() {
    let (_dir, root) = temp();
    write(&root.join("out/x.bin"));
    fs::create_dir(root.join("src")).unwrap();
    let (watcher, mut events) = Watcher::start(config(&root)).unwrap();
    assert_eq!(watcher.watched_dirs(), 3);

    let loopignore = root.join(".loopignore");
    fs::write(&loopignore, "out/\n").unwrap();
    until(&mut events, |seen| seen.has(&loopignore)).await;
    assert_eq!(watcher.watched_dirs(), 2, "out lost its watch");

    write(&root.join("out/y.bin"));
    let sentinel = root.join("src/main.rs");
    write(&sentinel);
    let seen = until(&mut events, |seen| seen.has(&sentinel)).await;
    assert!(!seen.has(&root.join("out/y.bin")), "{}", seen.summary());

    fs::write(&loopignore, "").unwrap();
    until(&mut events, |seen| seen.has(&loopignore)).await;
    assert_eq!(watcher.watched_dirs(), 3, "out is watched again");
}

#[tokio::test]
async fn dropping_the_watcher_stops_it() {
    let (_dir, root) = temp();
    let (watcher, mut events) = Watcher::start(config(&root)).unwrap();
    drop(watcher);
    let end = tokio::time::timeout(PATIENCE, events.recv()).await;
    assert_eq!(end, Ok(None));
}

#[test]
fn start_errors_are_clear() {
    let (_dir, root) = temp();
    let missing = root.join("missing");
    let err = Watcher::start(config(&missing)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot watch the project folder {}: ",
            missing.display()
        )),
        "{text}"
    );

    let mut bad = config(&root);
    bad.ignore = vec!["ok/".into(), "src/{a,b".into()];
    let text = Watcher::start(bad).unwrap_err().to_string();
    assert!(
        text.starts_with("invalid pattern \"src/{a,b\" in watch_settings(ignore=...)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_queue_overflow_is_reported_and_watching_goes_on() {
    let (_dir, root) = temp();
    fs::create_dir(root.join("sub")).unwrap();
    let (watcher, mut events) = Watcher::start(config(&root)).unwrap();
    // What notify's inotify backend sends on IN_Q_OVERFLOW.
    let overflow = notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
    watcher.control.send(Msg::Event(Ok(overflow))).unwrap();
    until(&mut events, |seen| seen.overflow).await;
    assert_eq!(watcher.watched_dirs(), 2);

    let file = root.join("sub/after.txt");
    write(&file);
    until(&mut events, |seen| seen.has(&file)).await;
}

#[tokio::test]
async fn a_renamed_folder_is_watched_under_its_new_name() {
    let (_dir, root) = temp();
    write(&root.join("old/deep/a.txt"));
    let (watcher, mut events) = Watcher::start(config(&root)).unwrap();
    assert_eq!(watcher.watched_dirs(), 3);

    fs::rename(root.join("old"), root.join("new")).unwrap();
    let moved = root.join("new/deep/a.txt");
    let seen = until(&mut events, |seen| {
        seen.has(&root.join("old")) && seen.has(&moved)
    })
    .await;
    assert!(seen.problems.is_empty(), "{}", seen.summary());
    assert_eq!(watcher.watched_dirs(), 3);

    let file = root.join("new/deep/b.txt");
    write(&file);
    let seen = until(&mut events, |seen| seen.has(&file)).await;
    assert!(
        !seen.changes.iter().any(|p| p.starts_with(root.join("old"))),
        "{}",
        seen.summary()
    );
}
