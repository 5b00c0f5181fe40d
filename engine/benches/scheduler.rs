//! The scheduler at 1,000 and 10,000 resources, and hashing 10,000 output files.
//! Prints medians of several runs. Run: `cargo bench -p loop-engine --bench scheduler`.
//!
//! The graph: data chains of ten (`r{i}` has `data_deps = [r{i-1}]` unless
//! `i % 10 == 0`), the chain heads on one ordering chain, every resource
//! parallel (so up to `max_parallel_updates` run at once, as Kubernetes
//! resources do). "First start" drives every resource from wanted to settled,
//! finishing runs in start order; "one change" is a batch touching the head of
//! one chain in a settled graph (ten runs).

use std::time::Instant;

use loop_engine::graph::Graph;
use loop_engine::run::outputs::hash_files;
use loop_engine::run::scheduler::{Action, RunEnd, RunReason, Scheduler};
use loop_lang::model::{Manifest, Resource, ResourceKind};
use loop_lang::Location;

fn manifest(n: usize) -> Manifest {
    let mut m = Manifest::default();
    for i in 0..n {
        let mut r = Resource::new(&format!("r{i}"), ResourceKind::Local, Location::default());
        r.allow_parallel = true;
        if i % 10 != 0 {
            r.data_deps.push(format!("r{}", i - 1));
        } else if i > 0 {
            r.resource_deps.push(format!("r{}", i - 10));
        }
        m.resources.push(r);
    }
    m
}

/// Finishes runs in start order until nothing runs; returns the number of events.
fn drain(s: &mut Scheduler, mut running: std::collections::VecDeque<String>) -> usize {
    let mut events = 0;
    while let Some(name) = running.pop_front() {
        events += 1;
        s.finished(
            &name,
            RunEnd::Succeeded {
                outputs_changed: true,
            },
        );
        for action in s.next_actions() {
            if let Action::Start { name, .. } = action {
                running.push_back(name);
            }
        }
    }
    events
}

fn started(actions: Vec<Action>) -> std::collections::VecDeque<String> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Start { name, .. } => Some(name),
            _ => None,
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    println!("| resources | first start, all settled | per event | one change (10 runs) |");
    println!("| --- | --- | --- | --- |");
    for n in [1_000, 10_000] {
        let m = manifest(n);
        let graph = Graph::build(&m).unwrap();
        let (mut totals, mut per_event, mut change) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..7 {
            let t = Instant::now();
            let mut s = Scheduler::new(&m, &graph, None);
            s.start_all();
            let first = started(s.next_actions());
            let events = drain(&mut s, first);
            let took = t.elapsed().as_secs_f64();
            assert_eq!(s.ci_outcome(), Some(Ok(())));
            totals.push(took * 1e3);
            per_event.push(took * 1e6 / events as f64);
            let t = Instant::now();
            let head = format!("r{}", n / 2);
            s.changes(&[(head, Vec::new(), RunReason::Triggered)]);
            let next = started(s.next_actions());
            let runs = drain(&mut s, next);
            change.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(runs, 10);
        }
        println!(
            "| {n} | {:.1} ms | {:.2} µs | {:.0} µs |",
            median(totals),
            median(per_event),
            median(change)
        );
    }

    let dir = tempfile::tempdir().unwrap();
    for i in 0..10_000 {
        let sub = dir.path().join(format!("out/d{}", i % 100));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            sub.join(format!("f{i}.o")),
            format!("object file {i} {}", "x".repeat(i % 512)),
        )
        .unwrap();
    }
    let entries = vec!["out".to_owned()];
    let globbed = vec!["out/**/*.o".to_owned()];
    let mut plain = Vec::new();
    let mut glob = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        hash_files(dir.path(), &entries, false);
        plain.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        hash_files(dir.path(), &globbed, false);
        glob.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!();
    println!(
        "hashing 10,000 output files (~2.7 MB): folder entry {:.1} ms, glob entry {:.1} ms",
        median(plain),
        median(glob)
    );
}
