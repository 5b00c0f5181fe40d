//! What evaluating in a process of its own costs: the same Loopfiles evaluated
//! in this process (`eval_thread::evaluate_here`) and in `loop __eval`
//! (`isolation::evaluate`, the way every `loop` command evaluates), medians of
//! several runs. Run: `cargo bench --bench isolation`.

use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;

mod bench_support;
use bench_support::{median, LOOP};

/// `n` local resources, each with deps, ignores and an edge every few resources.
fn loopfile(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        let after = if i % 10 == 5 {
            format!("'r{}'", i - 1)
        } else {
            String::new()
        };
        let _ = writeln!(
            src,
            "local_resource('r{i}', cmd='echo {i}', deps=['svc{i}/src'], ignore=['**/*.tmp'], resource_deps=[{after}])"
        );
    }
    src
}

fn time(runs: usize, mut f: impl FnMut()) -> f64 {
    let samples = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(samples)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let shop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/shop/Loopfile");
    let mut cases = vec![("examples/shop".to_owned(), shop)];
    for n in [1_000, 10_000] {
        let path = dir.path().join(format!("Loopfile.{n}"));
        std::fs::write(&path, loopfile(n)).unwrap();
        cases.push((format!("{n} resources"), path));
    }
    let options = Default::default();
    let here = |file: &PathBuf| {
        loop_engine::eval_thread::evaluate_here(std::slice::from_ref(file), &options)
            .expect("the Loopfile evaluates");
    };
    loop_engine::isolation::enable(PathBuf::from(LOOP));
    let isolated = |file: &PathBuf| {
        loop_engine::isolation::evaluate(std::slice::from_ref(file), &options)
            .expect("the Loopfile evaluates");
    };
    for (name, file) in &cases {
        let runs = if name.starts_with("10000") { 7 } else { 21 };
        let in_process = time(runs, || here(file));
        let in_child = time(runs, || isolated(file));
        println!(
            "{name:>16}: in process {in_process:>8.2} ms, in loop __eval {in_child:>8.2} ms ({:+.2} ms, {:.2}x; median of {runs})",
            in_child - in_process,
            in_child / in_process
        );
    }
}
