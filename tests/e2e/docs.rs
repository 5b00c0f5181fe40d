//! `loop docs`: the reference of the built-ins, and the checked-in
//! `docs/builtins.md` that must match it.

use crate::support::{repo, run_loop};

#[test]
fn the_checked_in_reference_is_current() {
    let run = run_loop(&repo(), &["docs", "--markdown"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let checked_in = std::fs::read_to_string(repo().join("docs/builtins.md")).unwrap_or_default();
    assert!(
        checked_in == run.stdout,
        "docs/builtins.md is stale: regenerate it with\n    cargo run --bin loop -- docs --markdown > docs/builtins.md"
    );
}

#[test]
fn one_builtin_and_a_misspelt_one() {
    let run = run_loop(&repo(), &["docs", "local_resource"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("def local_resource("), "{}", run.stdout);
    assert!(run.stdout.contains("serve_cmd"), "{}", run.stdout);
    let run = run_loop(&repo(), &["docs", "os.path.join"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = run_loop(&repo(), &["docs", "local_resourse"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("no built-in named `local_resourse`; did you mean `local_resource`?"),
        "{}",
        run.stderr
    );
}

/// A reader that goes away (`loop docs --markdown | head -1`) ends the output,
/// never with a panic: the reference is larger than a pipe's buffer.
#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_loop"))
        .args(["docs", "--markdown"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "{:?} {stderr}", output.status);
}
