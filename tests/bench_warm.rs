//! Warm starts of build steps: a chain of three build steps (each a 1 s "compile"
//! that declares `outputs`) and one service, `loop ci` on a fresh tree, then again
//! on the unchanged tree. Prints medians. Run: `cargo bench --bench warm`.

use std::process::Command;
use std::time::Instant;

#[path = "bench_support.rs"]
mod support;

use support::{median, LOOP};

const LOOPFILE: &str = r#"
local_resource('proto', cmd='sleep 1; cp schema.txt proto.out', deps=['schema.txt'], outputs=['proto.out'])
local_resource('lib', cmd='sleep 1; cat proto.out > lib.out', data_deps=['proto'], outputs=['lib.out'])
local_resource('bin', cmd='sleep 1; cat lib.out > bin.out', data_deps=['lib'], outputs=['bin.out'])
local_resource('server', serve_cmd='exec sleep 60', data_deps=['bin'])
"#;

fn ci(dir: &std::path::Path) -> f64 {
    let start = Instant::now();
    let out = Command::new(LOOP)
        .args(["ci"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    start.elapsed().as_secs_f64()
}

fn main() {
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Loopfile"), LOOPFILE).unwrap();
        std::fs::write(dir.path().join("schema.txt"), "v1").unwrap();
        cold.push(ci(dir.path()));
        warm.push(ci(dir.path()));
    }
    let (cold, warm) = (median(cold), median(warm));
    println!("| first `loop ci` | second `loop ci` (unchanged tree) | ratio |");
    println!("| --- | --- | --- |");
    println!("| {cold:.2} s | {warm:.3} s | {:.0}x |", cold / warm);
}
