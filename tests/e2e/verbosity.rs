//! `--quiet` and `--verbose`: how much `loop` prints (the logs it keeps do not change).

use crate::support::{project, run_loop, Background};

const TWO: &str = r#"
print("evaluated")
local_resource("fine", cmd="echo hello-from-fine")
local_resource("bad", cmd="echo compiling; exit 3")
"#;

#[test]
fn quiet_prints_only_problems_and_the_verdict() {
    let dir = project(&[("Loopfile", TWO)]);
    let normal = run_loop(dir.path(), &["ci"]);
    assert!(
        normal.stdout.contains("hello-from-fine"),
        "{}",
        normal.stdout
    );
    assert!(
        normal.stderr.contains("[Loopfile] evaluated"),
        "{}",
        normal.stderr
    );

    let quiet = run_loop(dir.path(), &["ci", "--quiet"]);
    assert_eq!(quiet.code, 1, "{}{}", quiet.stdout, quiet.stderr);
    let all = format!("{}{}", quiet.stdout, quiet.stderr);
    // The verdict ends with the failed resource's last log lines, as always.
    let before_tail = all.split("--- last lines of bad").next().unwrap();
    for absent in ["hello-from-fine", "[Loopfile] evaluated", "running:"] {
        assert!(
            !before_tail.contains(absent),
            "{absent:?} printed under --quiet:\n{all}"
        );
    }
    for present in [
        "failed: `echo compiling; exit 3` failed with exit code 3",
        "ci failed: bad",
    ] {
        assert!(
            all.contains(present),
            "{present:?} missing under --quiet:\n{all}"
        );
    }
    // The resource's own log still has every line.
    let kept = std::fs::read_to_string(dir.path().join(".loop/logs/fine.log")).unwrap();
    assert!(kept.contains("hello-from-fine"), "{kept}");
}

#[test]
fn verbose_names_the_changed_files_and_the_evaluation_time() {
    let dir = project(&[
        (
            "Loopfile",
            "local_resource('app', serve_cmd='sleep 600', deps=['src'])\n",
        ),
        ("src/a.txt", "1"),
    ]);
    let run = Background::start(dir.path(), &["run", "--verbose", "--port", "0"]);
    run.wait_for_output("1 resource up", 20);
    std::fs::write(dir.path().join("src/a.txt"), "2").unwrap();
    run.wait_for_output("changed: src/a.txt", 20);
    std::fs::write(
        dir.path().join("Loopfile"),
        "local_resource('app', serve_cmd='sleep 601', deps=['src'])\n",
    )
    .unwrap();
    run.wait_for_output("evaluated 1 Loopfile(s) in ", 20);
    let (_, output) = run.interrupt();
    assert!(output.contains("reloaded: 0 added, 1 changed"), "{output}");
}

#[test]
fn quiet_and_verbose_together_are_refused() {
    let dir = project(&[("Loopfile", TWO)]);
    let run = run_loop(dir.path(), &["check", "-q", "-v"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
}
