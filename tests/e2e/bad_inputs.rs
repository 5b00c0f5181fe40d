//! The corpus of bad Loopfiles under `tests/bad/`: each case must fail `loop check`
//! with exactly the message in its snapshot (`tests/e2e/snapshots`). Update the
//! snapshots after an intended change with `INSTA_UPDATE=always cargo test`. A case
//! may add arguments (an `args` file) and environment variables (an `env` file).

use std::panic::{catch_unwind, AssertUnwindSafe};

use std::path::Path;

use crate::support::{bad_cases, run_loop_with};

#[test]
fn every_bad_loopfile_gets_its_exact_error() {
    let cases = bad_cases();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let mut failed = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let extra = std::fs::read_to_string(case.join("args")).unwrap_or_default();
        // Each case is a project of its own (the repository would be the root).
        let mut args = vec!["check", "--root", ".", "--"];
        args.extend(extra.split_whitespace());
        // An `env` file holds `NAME=value` lines (lower limits, to keep the case fast).
        let env_text = std::fs::read_to_string(case.join("env")).unwrap_or_default();
        let env: Vec<(&str, &Path)> = env_text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k, Path::new(v)))
            .collect();
        let run = run_loop_with(case, &args, &env);
        let result = catch_unwind(AssertUnwindSafe(|| {
            assert_eq!(
                run.code, 1,
                "{name}: a bad Loopfile must exit 1\n{}",
                run.stderr
            );
            assert!(
                !run.stderr.contains("panicked"),
                "{name} panicked:\n{}",
                run.stderr
            );
            insta::assert_snapshot!(format!("bad_{name}"), run.transcript());
        }));
        if result.is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "cases whose output changed: {failed:?}");
}
