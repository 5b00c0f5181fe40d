//! Graph and affected-set benchmarks on a synthetic project of 10,000 local
//! resources watching 100,000 files.
//!
//! Run with `cargo bench -p loop-engine --bench graph`. Criterion runs first; then
//! a summary prints medians measured directly: every one of the 100,000 files is
//! queried once and timed on its own, and each build is repeated.
//!
//! The project: resource `svc{i}` lives in folder `svc{i}` and depends on
//! `svc{i}/src/**/*.py` and `svc{i}/config`; every third one ignores `*.pyc`,
//! `__pycache__/` and `/src/generated`; every hundredth one also depends on
//! `shared/lib`. Resources form data chains of ten (`svc{i}` has
//! `data_deps = [svc{i-1}]` unless `i % 10 == 0`), and the chain heads form one
//! ordering chain. Each resource has ten files: seven `.py` sources, three configs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use loop_engine::affected::AffectedIndex;
use loop_engine::graph::Graph;
use loop_lang::model::{Manifest, Resource, ResourceKind};
use loop_lang::Location;

const RESOURCES: usize = 10_000;
const FILES_PER_RESOURCE: usize = 10;

fn resource(i: usize) -> Resource {
    let name = format!("svc{i}");
    // Position within the chain of ten, and within the hundred and the three.
    let (in_chain, in_hundred, in_three) = (i % 10, i % 100, i % 3);
    let mut deps = vec![format!("svc{i}/src/**/*.py"), format!("svc{i}/config")];
    if in_hundred == 0 {
        deps.push("shared/lib".into());
    }
    let ignore = if in_three == 0 {
        vec![
            "*.pyc".into(),
            "__pycache__/".into(),
            "/src/generated".into(),
        ]
    } else {
        vec![]
    };
    let data_deps = if in_chain != 0 {
        vec![format!("svc{}", i - 1)]
    } else {
        vec![]
    };
    let resource_deps = if in_chain == 0 && i > 0 {
        vec![format!("svc{}", i - 10)]
    } else {
        vec![]
    };
    let at = Location {
        file: format!("svc{i}/Loopfile"),
        line: 1,
        col: 1,
        width: 14,
    };
    let mut r = Resource::new(&name, ResourceKind::Local, at);
    r.resource_deps = resource_deps;
    r.data_deps = data_deps;
    r.deps = deps;
    r.ignore = ignore;
    r
}

fn manifest() -> Manifest {
    let mut m = Manifest {
        resources: (0..RESOURCES).map(resource).collect(),
        ..Manifest::default()
    };
    m.settings.watch_ignore = vec!["**/.git".into(), "*.swp".into(), "node_modules/".into()];
    m
}

/// The 100,000 watched files, visited in a scattered order.
fn files() -> Vec<String> {
    let mut files = Vec::with_capacity(RESOURCES * FILES_PER_RESOURCE);
    for i in 0..RESOURCES {
        for j in 0..7 {
            files.push(format!("svc{i}/src/pkg{}/mod{j}.py", j % 2));
        }
        for j in 0..3 {
            files.push(format!("svc{i}/config/app{j}.yaml"));
        }
    }
    // A stride coprime with the length visits every file once, far from the last.
    let n = files.len();
    (0..n).map(|k| files[(k * 7919) % n].clone()).collect()
}

fn build(m: &Manifest) -> (Graph, AffectedIndex) {
    let graph = Graph::build(m).expect("valid graph");
    let index = AffectedIndex::build(m, &graph).expect("valid patterns");
    (graph, index)
}

fn criterion_benches(c: &mut Criterion, m: &Manifest, index: &AffectedIndex, files: &[String]) {
    let mut group = c.benchmark_group("affected_10k_resources_100k_files");
    let mut k = 0;
    group.bench_function("one_changed_file", |b| {
        b.iter(|| {
            k = (k + 1) % files.len();
            black_box(index.affected(&[files[k].as_str()]))
        })
    });
    group.bench_function("shared_dir_100_direct_1000_total", |b| {
        b.iter(|| black_box(index.affected(&["shared/lib/util.py"])))
    });
    group.bench_function("unmatched_file", |b| {
        b.iter(|| black_box(index.affected(&["docs/guide/intro.md"])))
    });
    group.bench_function("ignored_file", |b| {
        b.iter(|| black_box(index.affected(&["svc42/src/__pycache__/mod.py"])))
    });
    group.finish();

    let mut group = c.benchmark_group("build_10k_resources");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("graph", |b| b.iter(|| black_box(Graph::build(m).unwrap())));
    let graph = Graph::build(m).unwrap();
    group.bench_function("affected_index", |b| {
        b.iter(|| black_box(AffectedIndex::build(m, &graph).ok().unwrap()))
    });
    group.bench_function("graph_and_affected_index", |b| {
        b.iter(|| black_box(build(m)))
    });
    group.finish();
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(m: &Manifest, index: &AffectedIndex, files: &[String]) {
    println!("\nsummary ({RESOURCES} resources, {} files):", files.len());
    // Warm up, then time every file's query on its own.
    for f in files.iter().take(10_000) {
        black_box(index.affected(&[f.as_str()]));
    }
    let mut times = Vec::with_capacity(files.len());
    let mut total_affected = 0;
    for f in files {
        let start = Instant::now();
        let result = black_box(index.affected(&[f.as_str()]));
        times.push(start.elapsed());
        total_affected += result.len();
    }
    times.sort();
    println!(
        "  affected(one file):  median {:?}  p99 {:?}  max {:?}  (mean {:.1} resources affected)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
        total_affected as f64 / files.len() as f64
    );
    for (label, path) in [
        ("affected(shared dir)", "shared/lib/util.py"),
        ("affected(unmatched)", "docs/guide/intro.md"),
    ] {
        let runs: Vec<Duration> = (0..101)
            .map(|_| {
                let start = Instant::now();
                black_box(index.affected(&[path]));
                start.elapsed()
            })
            .collect();
        let n = index.affected(&[path]).len();
        println!(
            "  {label}:  median {:?}  ({n} resources affected)",
            median(runs)
        );
    }
    let all: Vec<&str> = files.iter().map(String::as_str).collect();
    let start = Instant::now();
    let n = black_box(index.affected(&all)).len();
    println!(
        "  affected(all {} files in one batch):  {:?}  ({n} resources)",
        all.len(),
        start.elapsed()
    );

    let mut graph_times = Vec::new();
    let mut index_times = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let graph = black_box(Graph::build(m).unwrap());
        graph_times.push(start.elapsed());
        let start = Instant::now();
        black_box(AffectedIndex::build(m, &graph).ok().unwrap());
        index_times.push(start.elapsed());
    }
    let (g, i) = (median(graph_times), median(index_times));
    println!("  Graph::build:  median {g:?}");
    println!("  AffectedIndex::build:  median {i:?}");
    println!("  both:  {:?}", g + i);
}

fn main() {
    let m = manifest();
    let files = files();
    let (_, index) = build(&m);
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &m, &index, &files);
    c.final_summary();
    summary(&m, &index, &files);
}
