//! Real Tiltfiles, evaluated unchanged. The Tiltfiles are public files of other
//! projects, so they are not in this repository: `tests/tilt-corpus` holds, per
//! entry, our `source.json` (the repository, path and commit of the Tiltfile,
//! the recorded outcome and the hand-checked expectation) and the stand-in
//! files we wrote for what it reads; SOURCES.md lists them all. The files
//! themselves are fetched into a folder of the same layout, named by
//! `LOOP_TILT_CORPUS`; the test is ignored by default for that reason:
//! `LOOP_TILT_CORPUS=DIR cargo test --test e2e tilt_corpus -- --ignored --nocapture`.
//! Each is evaluated with `loop graph --format json` in a copy of its folder
//! made into a repository, offline, with a fixed set of programs on the PATH
//! (a shell, a few text tools and `kubectl`, for `kustomize()`), and classified:
//!
//! * `ok`: it evaluates;
//! * `extension`: it loads an `ext://` extension that is not there offline;
//! * `tool`: it needs a program the machine lacks (`helm`, its own scripts);
//! * `unsupported`: it calls a built-in `loop` lacks (the error names it);
//! * `error`: anything else. An entry that Tilt rejects as well (a syntax error,
//!   a call Tilt refuses) says why in `tilt_rejects`; it counts as `invalid`.
//!
//! `source.json` records the outcome (and for a failure, a text its error must
//! contain); an entry whose outcome changes fails the test, a regression as
//! well as an improvement (then record the new outcome). Entries checked by hand
//! against Tilt's semantics also hold `expect`: their resources (kind,
//! `resource_deps`, images, port-forwards) and images, compared with the graph.
//!
//! `cargo test --test e2e tilt_corpus -- --nocapture` prints one line per entry
//! and the counts (the figures in BENCHMARKS.md).
//!
//! With `LOOP_TILT_EXTENSIONS=DIR`, a git repository laid out as Tilt's
//! extension repository (tilt-dev/tilt-extensions), `ext://` extensions are
//! fetched from it (`LOOP_EXTENSIONS_REPO`, with `git` on the PATH), and an
//! entry's `with_extensions` (`outcome`, `reason`) is the recorded outcome
//! where it differs from the offline one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::repo;

/// The programs the corpus may run during evaluation (when the machine has them).
const TOOLS: &[&str] = &[
    "sh", "bash", "cat", "echo", "printf", "true", "false", "test", "date", "uname", "whoami",
    "tr", "sed", "grep", "head", "tail", "cut", "basename", "dirname", "ls", "mkdir", "env",
    "kubectl",
];

struct Entry {
    name: String,
    /// Our files of the entry: `source.json` and the stand-ins.
    dir: PathBuf,
    /// The fetched files of the entry (`$LOOP_TILT_CORPUS/<name>`).
    files: PathBuf,
    source: Value,
}

fn entries() -> Vec<Entry> {
    let fetched = PathBuf::from(std::env::var_os("LOOP_TILT_CORPUS").expect(
        "LOOP_TILT_CORPUS names the folder of fetched Tiltfiles (tests/tilt-corpus/SOURCES.md lists them)",
    ));
    let root = repo().join("tests/tilt-corpus");
    let mut out: Vec<Entry> = std::fs::read_dir(&root)
        .expect("tests/tilt-corpus exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("source.json").is_file())
        .map(|dir| {
            let text = std::fs::read_to_string(dir.join("source.json")).unwrap();
            let source: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.join("source.json").display()));
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let files = fetched.join(&name);
            assert!(
                files.is_dir(),
                "{name} is not fetched into {}",
                fetched.display()
            );
            Entry {
                name,
                dir,
                files,
                source,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A folder of links to the allowed programs that this machine has.
fn tool_dir(base: &Path) -> PathBuf {
    let bin = base.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let git: &[&str] = if extensions().is_some() {
        &["git"]
    } else {
        &[]
    };
    for tool in TOOLS.iter().chain(git) {
        if let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
        {
            std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
        }
    }
    bin
}

/// The extension repository of `LOOP_TILT_EXTENSIONS`, if given.
fn extensions() -> Option<PathBuf> {
    std::env::var_os("LOOP_TILT_EXTENSIONS").map(PathBuf::from)
}

struct Outcome {
    class: &'static str,
    stderr: String,
    graph: Option<Value>,
}

fn classify(code: i32, stderr: &str) -> &'static str {
    if code == 0 {
        "ok"
    } else if stderr.contains("cannot load `ext://") {
        "extension"
    } else if stderr.contains("error: Variable `") && stderr.contains("` not found") {
        "unsupported"
    } else if stderr.contains("was not found on the PATH")
        || stderr.contains("was not found or is not executable")
        || stderr.contains("not found\n")
        || stderr.contains("exit code 127")
    {
        "tool"
    } else {
        "error"
    }
}

fn evaluate(entry: &Entry, bin: &Path, scratch: &Path) -> Outcome {
    let work = scratch.join(&entry.name);
    copy_tree(&entry.files, &work);
    // The stand-ins we wrote for what the Tiltfile reads.
    copy_tree(&entry.dir, &work);
    std::fs::create_dir_all(work.join(".git")).unwrap();
    let path = entry.source["path"].as_str().expect("source.json: path");
    let mut args = vec!["graph", "--format", "json", "-f", path];
    let extra: Vec<String> = entry.source["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !extra.is_empty() {
        args.push("--");
        args.extend(extra.iter().map(String::as_str));
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_loop"));
    command.env_clear();
    if let Some(repo) = extensions() {
        command.env("LOOP_EXTENSIONS_REPO", repo);
    }
    let output = command
        .args(&args)
        .current_dir(&work)
        .env("PATH", bin)
        .env("HOME", &work)
        .env("KUBECONFIG", work.join(".no-kubeconfig"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the loop binary runs");
    let code = output.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let class = classify(code, &stderr);
    let graph = (code == 0).then(|| {
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{}: graph JSON: {e}", entry.name))
    });
    Outcome {
        class,
        stderr,
        graph,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// What a hand-checked entry records, read from the graph: per resource its
/// kind, resource_deps, images and port-forwards (`host:local:container`), and
/// the images the resources use.
fn summary(graph: &Value) -> Value {
    let mut resources = BTreeMap::new();
    for r in graph["resources"].as_array().unwrap() {
        let forwards = crate::tilt_semantics::forwards(r);
        let mut deps = strings(&r["resource_deps"]);
        deps.sort();
        resources.insert(
            r["name"].as_str().unwrap().to_owned(),
            serde_json::json!({
                "kind": r["kind"],
                "resource_deps": deps,
                "images": r["images"],
                "port_forwards": forwards,
            }),
        );
    }
    // The images some resource uses: Tilt builds no other (it warns of them).
    let mut images: Vec<String> = resources
        .values()
        .flat_map(|r| strings(&r["images"]))
        .collect();
    images.sort();
    images.dedup();
    serde_json::json!({ "resources": resources, "images": images })
}

fn first_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_else(|| stderr.lines().next().unwrap_or(""))
}

#[test]
#[ignore = "needs the fetched Tiltfiles: LOOP_TILT_CORPUS=DIR (see tests/tilt-corpus/SOURCES.md)"]
fn real_tiltfiles_keep_their_outcome() {
    let scratch = tempfile::tempdir().unwrap();
    let bin = tool_dir(scratch.path());
    // kustomize() runs `kubectl kustomize`; without it the outcomes differ.
    assert!(
        bin.join("kubectl").exists(),
        "the Tilt corpus needs kubectl on the PATH (Debian's kubernetes-client; .ci/run installs it)"
    );
    let entries = entries();
    assert!(
        entries.len() >= 80,
        "the corpus has {} entries",
        entries.len()
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut checked = (0, 0);
    let mut failures = Vec::new();
    for entry in &entries {
        let outcome = evaluate(entry, &bin, scratch.path());
        let counted = match entry.source.get("tilt_rejects") {
            Some(_) if outcome.class == "error" => "invalid",
            _ => outcome.class,
        };
        *counts.entry(counted).or_default() += 1;
        eprintln!(
            "{:<10} {} {}",
            outcome.class,
            entry.name,
            first_line(&outcome.stderr)
        );
        let record = match &entry.source["with_extensions"] {
            with @ Value::Object(_) if extensions().is_some() => with,
            _ => &entry.source,
        };
        let recorded = record["outcome"].as_str().unwrap_or("(none)");
        if recorded != outcome.class {
            failures.push(format!(
                "{}: recorded outcome {recorded}, now {}\n{}",
                entry.name, outcome.class, outcome.stderr
            ));
            continue;
        }
        if let Some(reason) = record["reason"].as_str() {
            if !outcome.stderr.contains(reason) {
                failures.push(format!(
                    "{}: the error no longer says {reason:?}:\n{}",
                    entry.name, outcome.stderr
                ));
            }
        }
        if let (Some(expect), Some(graph)) = (entry.source.get("expect"), &outcome.graph) {
            checked.0 += 1;
            let actual = summary(graph);
            if &actual == expect {
                checked.1 += 1;
            } else {
                failures.push(format!(
                    "{}: differs from the hand-checked expectation\nexpected: {expect:#}\nactual:   {actual:#}",
                    entry.name
                ));
            }
        }
    }
    eprintln!(
        "{} Tiltfiles: {counts:?}; {} of {} hand-checked agree",
        entries.len(),
        checked.1,
        checked.0
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
