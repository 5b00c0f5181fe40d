//! Evaluating generated Loopfiles into a built graph: 1,000 and 10,000
//! `local_resource`s, each with its own deps glob, without and with a `while`
//! loop. Prints the median of several runs. Run: `cargo bench -p loop-engine --bench eval`.

use std::fmt::Write;
use std::time::{Duration, Instant};

use loop_engine::affected::AffectedIndex;
use loop_engine::graph::Graph;

/// A Loopfile declaring `n` resources through a custom function, with ordering
/// and data edges every few resources.
fn loopfile(n: usize) -> String {
    let mut src = String::from(
        "def svc(name: str, i: int, after: list[str], data: list[str]):\n    local_resource(name, cmd = \"echo %d\" % i, deps = [\"svc%d/src/**/*.py\" % i, \"svc%d/config.yaml\" % i], ignore = [\"**/*.tmp\"], resource_deps = after, data_deps = data, labels = [\"bench\"])\n\n",
    );
    for i in 0..n {
        let after = if i % 10 == 5 {
            format!("[\"r{}\"]", i - 1)
        } else {
            "[]".into()
        };
        let data = if i % 10 == 7 {
            format!("[\"r{}\"]", i - 2)
        } else {
            "[]".into()
        };
        let _ = writeln!(src, "svc(\"r{i}\", {i}, {after}, {data})");
    }
    src
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The same Loopfile with a `while` loop at its top: the whole file is then
/// lexed once more and rewritten before parsing (`loop_lang::while_loops`).
const WHILE_LOOP: &str = "i = 0\nwhile i < 3:\n    i += 1\n";

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (n, with_while) in [
        (1_000, false),
        (1_000, true),
        (10_000, false),
        (10_000, true),
    ] {
        let path = dir.path().join(format!("Loopfile.{n}.{with_while}"));
        let prefix = if with_while { WHILE_LOOP } else { "" };
        std::fs::write(&path, format!("{prefix}{}", loopfile(n))).unwrap();
        let runs = if n <= 1_000 { 21 } else { 9 };
        let mut eval = Vec::new();
        let mut total = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let evaluation =
                loop_stdlib::evaluate(std::slice::from_ref(&path), &Default::default())
                    .expect("the generated Loopfile evaluates");
            let evaluated = start.elapsed();
            let graph = Graph::build(&evaluation.manifest).expect("valid graph");
            let index = AffectedIndex::build(&evaluation.manifest, &graph).expect("valid globs");
            total.push(start.elapsed());
            eval.push(evaluated);
            assert_eq!(evaluation.manifest.resources.len(), n);
            std::hint::black_box(index);
        }
        let what = if with_while { " and a while loop" } else { "" };
        println!(
            "evaluate {n:>6} resources{what}: median {:>8.2} ms evaluation, {:>8.2} ms evaluation + graph + affected index ({runs} runs)",
            median(eval).as_secs_f64() * 1e3,
            median(total).as_secs_f64() * 1e3,
        );
    }
}
