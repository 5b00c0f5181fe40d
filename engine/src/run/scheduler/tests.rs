//! The scheduler driven directly: examples of each rule, and property tests over
//! random graphs, random batches of changes and random completion orders.

use std::collections::BTreeSet;
use std::path::PathBuf;

use loop_lang::model::{Manifest, Resource, ResourceKind, TriggerMode};
use loop_lang::Location;
use proptest::prelude::*;

use super::*;

/// A resource declaration for tests: name, ordering deps, data deps, parallel.
struct Decl<'a> {
    name: &'a str,
    after: &'a [&'a str],
    data: &'a [&'a str],
    parallel: bool,
}

fn decl<'a>(name: &'a str, after: &'a [&'a str], data: &'a [&'a str], parallel: bool) -> Decl<'a> {
    Decl {
        name,
        after,
        data,
        parallel,
    }
}

fn manifest(decls: &[Decl]) -> Manifest {
    let mut manifest = Manifest::default();
    for d in decls {
        let mut r = Resource::new(d.name, ResourceKind::Local, Location::default());
        r.resource_deps = d.after.iter().map(|s| s.to_string()).collect();
        r.data_deps = d.data.iter().map(|s| s.to_string()).collect();
        r.allow_parallel = d.parallel;
        manifest.resources.push(r);
    }
    manifest
}

fn scheduler(manifest: &Manifest) -> Scheduler {
    let graph = Graph::build(manifest).expect("valid graph");
    let mut s = Scheduler::new(manifest, &graph, None);
    s.start_all();
    s
}

fn started(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn ok() -> RunEnd {
    RunEnd::Succeeded {
        outputs_changed: true,
    }
}

fn change(name: &str) -> (String, Vec<PathBuf>, RunReason) {
    let path = PathBuf::from(format!("{name}.txt"));
    let reason = RunReason::files(std::slice::from_ref(&path), |p| p.display().to_string());
    (name.to_owned(), vec![path], reason)
}

/// The reproduction from the scheduler issue: `slow` runs, `gen` is queued behind
/// it (serial), and `app` (parallel, `data_deps=["gen"]`) must wait for `gen`.
#[test]
fn a_data_downstream_waits_for_its_queued_upstream() {
    let m = manifest(&[
        decl("slow", &[], &[], false),
        decl("gen", &[], &[], false),
        decl("app", &[], &["gen"], true),
    ]);
    let mut s = scheduler(&m);
    assert_eq!(started(&s.next_actions()), ["slow"]);
    // First start: slow, then gen (serial), then app once gen succeeded.
    s.finished("slow", ok());
    assert_eq!(started(&s.next_actions()), ["gen"]);
    s.finished("gen", ok());
    assert_eq!(started(&s.next_actions()), ["app"]);
    s.finished("app", ok());
    assert_eq!(s.ci_outcome(), Some(Ok(())));

    s.changes(&[change("slow")]);
    assert_eq!(started(&s.next_actions()), ["slow"]);
    s.changes(&[change("gen")]);
    let actions = s.next_actions();
    assert!(started(&actions).is_empty(), "{actions:?}");
    assert_eq!(
        s.wait_reason("app").map(|r| r.to_string()).as_deref(),
        Some("waiting for gen (queued)")
    );
    assert_eq!(
        s.wait_reason("gen").map(|r| r.to_string()).as_deref(),
        Some("queued: one local update at a time")
    );
    s.finished("slow", ok());
    assert_eq!(started(&s.next_actions()), ["gen"]);
    s.finished("gen", ok());
    let actions = s.next_actions();
    assert_eq!(started(&actions), ["app"]);
    assert!(matches!(
        &actions[0],
        Action::Start { reason: RunReason::UpstreamRan { upstream }, .. } if upstream == "gen"
    ));
}

#[test]
fn a_failed_upstream_blocks_until_it_succeeds() {
    let m = manifest(&[
        decl("gen", &[], &[], true),
        decl("app", &[], &["gen"], true),
    ]);
    let mut s = scheduler(&m);
    assert_eq!(started(&s.next_actions()), ["gen"]);
    let actions = s.finished("gen", RunEnd::Failed("exit code 1".into()));
    assert!(actions.contains(&Action::Wait {
        name: "app".into(),
        reason: WaitReason::Blocked {
            upstream: "gen".into()
        }
    }));
    assert_eq!(
        s.wait_reason("app").unwrap().to_string(),
        "blocked: gen failed"
    );
    assert!(started(&s.next_actions()).is_empty());
    s.changes(&[change("gen")]);
    assert_eq!(started(&s.next_actions()), ["gen"]);
    s.finished("gen", ok());
    assert_eq!(started(&s.next_actions()), ["app"]);
}

#[test]
fn changes_during_a_run_give_exactly_one_more_run() {
    let m = manifest(&[
        decl("gen", &[], &[], true),
        decl("app", &[], &["gen"], true),
    ]);
    let mut s = scheduler(&m);
    s.next_actions();
    s.finished("gen", ok());
    s.next_actions();
    s.finished("app", ok());
    s.changes(&[change("gen")]);
    assert_eq!(started(&s.next_actions()), ["gen"]);
    for _ in 0..5 {
        s.changes(&[change("gen")]);
        assert!(started(&s.next_actions()).is_empty());
    }
    s.finished("gen", ok());
    // gen again (the collected changes); app still waits for it.
    assert_eq!(started(&s.next_actions()), ["gen"]);
    s.finished("gen", ok());
    assert_eq!(started(&s.next_actions()), ["app"]);
    s.finished("app", ok());
    assert!(started(&s.next_actions()).is_empty());
    assert_eq!(s.ci_outcome(), Some(Ok(())));
}

#[test]
fn unchanged_outputs_cut_off_the_data_downstream_chain() {
    let m = manifest(&[
        decl("gen", &[], &[], true),
        decl("lib", &[], &["gen"], true),
        decl("app", &[], &["lib"], true),
        decl("docs", &[], &[], true),
    ]);
    let mut s = scheduler(&m);
    for name in ["gen", "docs", "lib", "app"] {
        s.next_actions();
        s.finished(name, ok());
    }
    assert!(started(&s.next_actions()).is_empty());
    s.changes(&[change("gen")]);
    assert_eq!(started(&s.next_actions()), ["gen"]);
    let actions = s.finished(
        "gen",
        RunEnd::Succeeded {
            outputs_changed: false,
        },
    );
    let skipped: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Skip { name, reason } => Some(format!("{name}: {reason}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        skipped,
        [
            "lib: outputs of gen unchanged",
            "app: outputs of gen unchanged"
        ]
    );
    assert!(started(&s.next_actions()).is_empty());
    assert_eq!(s.ci_outcome(), Some(Ok(())));
    // A resource with a change of its own still runs.
    s.changes(&[change("gen"), change("app")]);
    assert_eq!(started(&s.next_actions()), ["gen"]);
    s.finished(
        "gen",
        RunEnd::Succeeded {
            outputs_changed: false,
        },
    );
    assert_eq!(started(&s.next_actions()), ["app"]);
}

#[test]
fn manual_resources_collect_changes_until_triggered() {
    let mut m = manifest(&[decl("m", &[], &[], true)]);
    m.resources[0].trigger_mode = TriggerMode::Manual;
    let mut s = scheduler(&m);
    s.next_actions();
    s.finished("m", ok());
    s.changes(&[change("m")]);
    assert!(started(&s.next_actions()).is_empty());
    assert_eq!(s.wait_reason("m"), Some(WaitReason::ManualPending));
    s.trigger("m");
    let actions = s.next_actions();
    assert!(matches!(
        &actions[..],
        [Action::Start { reason: RunReason::Triggered, paths, .. }] if paths.len() == 1
    ));
}

#[test]
fn disabling_stops_and_blocks_downstreams_enabling_starts_again() {
    let m = manifest(&[decl("db", &[], &[], true), decl("api", &["db"], &[], true)]);
    let mut s = scheduler(&m);
    s.next_actions();
    s.finished("db", ok());
    s.next_actions();
    s.finished("api", ok());
    assert_eq!(
        s.set_enabled("db", false),
        [Action::Stop { name: "db".into() }]
    );
    s.changes(&[change("db"), change("api")]);
    assert!(started(&s.next_actions()).is_empty());
    assert_eq!(
        s.wait_reason("api").unwrap().to_string(),
        "waiting for db (disabled)"
    );
    s.set_enabled("db", true);
    assert_eq!(started(&s.next_actions()), ["db"]);
    s.finished("db", ok());
    assert_eq!(started(&s.next_actions()), ["api"]);
}

#[test]
fn a_reload_keeps_state_and_starts_only_new_resources() {
    let m = manifest(&[decl("a", &[], &[], true)]);
    let mut s = scheduler(&m);
    s.next_actions();
    s.finished("a", ok());
    let m2 = manifest(&[decl("a", &[], &[], true), decl("b", &["a"], &[], true)]);
    let graph = Graph::build(&m2).unwrap();
    let mut s2 = Scheduler::new(&m2, &graph, None);
    s2.carry_over(&s);
    assert_eq!(started(&s2.next_actions()), ["b"]);
    s2.finished("b", ok());
    assert_eq!(s2.ci_outcome(), Some(Ok(())));
}

/// A random DAG: edges only from lower to higher index, each ordering or data.
#[derive(Clone, Debug)]
struct Dag {
    parallel: Vec<bool>,
    edges: Vec<(usize, usize, bool)>,
    max_parallel: u32,
}

fn dag() -> impl Strategy<Value = Dag> {
    (2usize..10).prop_flat_map(|n| {
        (
            proptest::collection::vec(any::<bool>(), n),
            proptest::collection::vec((0..n, 0..n, any::<bool>()), 0..(2 * n)),
            1u32..4,
        )
            .prop_map(|(parallel, raw, max_parallel)| Dag {
                parallel,
                edges: raw.into_iter().filter(|(a, b, _)| a < b).collect(),
                max_parallel,
            })
    })
}

fn dag_manifest(d: &Dag) -> Manifest {
    let mut m = Manifest::default();
    for (i, &parallel) in d.parallel.iter().enumerate() {
        let mut r = Resource::new(&format!("r{i}"), ResourceKind::Local, Location::default());
        r.allow_parallel = parallel;
        for &(a, b, data) in &d.edges {
            if b == i {
                let list = if data {
                    &mut r.data_deps
                } else {
                    &mut r.resource_deps
                };
                if !list.contains(&format!("r{a}")) {
                    list.push(format!("r{a}"));
                }
            }
        }
        m.resources.push(r);
    }
    m.settings.max_parallel_updates = d.max_parallel;
    m
}

/// One step of a random run.
#[derive(Clone, Debug)]
enum Step {
    /// A batch: resources whose own files changed.
    Batch(Vec<usize>),
    /// The running resource at this position (mod count) finishes; `fail` ends it badly.
    Finish { pick: usize, fail: bool },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(0usize..10, 1..4).prop_map(Step::Batch),
            (any::<usize>(), proptest::bool::weighted(0.15))
                .prop_map(|(pick, fail)| Step::Finish { pick, fail }),
            (any::<usize>(), Just(false)).prop_map(|(pick, fail)| Step::Finish { pick, fail }),
        ],
        1..60,
    )
}

/// What the test knows independently of the scheduler.
struct Model {
    n: usize,
    /// Transitive upstreams of each resource (both edge kinds).
    ancestors: Vec<BTreeSet<usize>>,
    /// Data-downstream closure of each resource (itself included).
    data_closure: Vec<BTreeSet<usize>>,
    /// A run is owed: affected by a change since its last start.
    owed: Vec<bool>,
    running: BTreeSet<usize>,
    /// Its last run succeeded.
    good: Vec<bool>,
    starts: Vec<usize>,
}

impl Model {
    fn new(d: &Dag) -> Model {
        let n = d.parallel.len();
        let mut ancestors = vec![BTreeSet::new(); n];
        let mut data_closure: Vec<BTreeSet<usize>> = (0..n).map(|i| BTreeSet::from([i])).collect();
        for b in 0..n {
            for &(a, bb, _) in &d.edges {
                if bb == b {
                    let up = ancestors[a].clone();
                    ancestors[b].insert(a);
                    ancestors[b].extend(up);
                }
            }
        }
        for a in (0..n).rev() {
            for &(aa, b, data) in &d.edges {
                if aa == a && data {
                    let down = data_closure[b].clone();
                    data_closure[a].extend(down);
                }
            }
        }
        Model {
            n,
            ancestors,
            data_closure,
            owed: vec![true; n],
            running: BTreeSet::new(),
            good: vec![false; n],
            starts: vec![0; n],
        }
    }

    /// Checks a start against the rules, then records it.
    fn start(&mut self, i: usize) -> Result<(), TestCaseError> {
        prop_assert!(self.owed[i], "r{i} started but no change affected it");
        for &a in &self.ancestors[i] {
            prop_assert!(
                !self.owed[a] && !self.running.contains(&a) && self.good[a],
                "r{i} started while its upstream r{a} was owed={} running={} good={}",
                self.owed[a],
                self.running.contains(&a),
                self.good[a]
            );
        }
        prop_assert!(!self.running.contains(&i), "r{i} started twice at once");
        self.owed[i] = false;
        self.running.insert(i);
        self.starts[i] += 1;
        Ok(())
    }

    fn batch(&mut self, direct: &[usize]) {
        for &i in direct {
            for &j in &self.data_closure[i].clone() {
                self.owed[j] = true;
            }
        }
    }
}

fn apply(model: &mut Model, actions: Vec<Action>) -> Result<(), TestCaseError> {
    for action in actions {
        if let Action::Start { name, .. } = action {
            let i: usize = name[1..].parse().unwrap();
            model.start(i)?;
        }
    }
    Ok(())
}

fn finish(s: &mut Scheduler, model: &mut Model, i: usize, fail: bool) -> Result<(), TestCaseError> {
    model.running.remove(&i);
    model.good[i] = !fail;
    let end = if fail {
        RunEnd::Failed("boom".into())
    } else {
        ok()
    };
    let actions = s.finished(&format!("r{i}"), end);
    apply(model, actions)?;
    let next = s.next_actions();
    apply(model, next)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// No resource starts before its upstreams settle; nothing starts that no
    /// change affected; every affected resource runs once the dust settles.
    #[test]
    fn runs_respect_edges_and_none_is_lost(d in dag(), steps in steps()) {
        let m = dag_manifest(&d);
        let mut s = scheduler(&m);
        let mut model = Model::new(&d);
        let first = s.next_actions();
        apply(&mut model, first)?;
        for step in steps {
            match step {
                Step::Batch(direct) => {
                    let direct: Vec<usize> = direct.into_iter().filter(|&i| i < model.n).collect();
                    model.batch(&direct);
                    let changes: Vec<_> = direct.iter().map(|i| change(&format!("r{i}"))).collect();
                    s.changes(&changes);
                    let next = s.next_actions();
                    apply(&mut model, next)?;
                }
                Step::Finish { pick, fail } => {
                    if model.running.is_empty() {
                        continue;
                    }
                    let i = *model.running.iter().nth(pick % model.running.len()).unwrap();
                    finish(&mut s, &mut model, i, fail)?;
                }
            }
        }
        // Settle: fix every failure with a change of its own, finish everything.
        for _ in 0..(4 * model.n + 4) {
            let failed: Vec<usize> = (0..model.n).filter(|&i| !model.good[i] && !model.owed[i] && !model.running.contains(&i)).collect();
            if !failed.is_empty() {
                model.batch(&failed);
                let changes: Vec<_> = failed.iter().map(|i| change(&format!("r{i}"))).collect();
                s.changes(&changes);
                let next = s.next_actions();
                apply(&mut model, next)?;
            }
            while let Some(&i) = model.running.iter().next() {
                finish(&mut s, &mut model, i, false)?;
            }
        }
        prop_assert!(model.running.is_empty());
        for i in 0..model.n {
            prop_assert!(!model.owed[i], "r{} was affected but never ran", i);
        }
        prop_assert_eq!(s.ci_outcome(), Some(Ok(())));
    }

    /// One batch on a settled graph runs each affected resource exactly once and
    /// nothing else, whatever order runs finish in.
    #[test]
    fn one_batch_runs_each_affected_resource_once(d in dag(), direct in proptest::collection::vec(0usize..10, 1..4), picks in proptest::collection::vec(any::<usize>(), 64)) {
        let m = dag_manifest(&d);
        let mut s = scheduler(&m);
        let mut model = Model::new(&d);
        let first = s.next_actions();
        apply(&mut model, first)?;
        while let Some(&i) = model.running.iter().next() {
            finish(&mut s, &mut model, i, false)?;
        }
        let direct: Vec<usize> = direct.into_iter().filter(|&i| i < model.n).collect();
        let before = model.starts.clone();
        model.batch(&direct);
        let affected: BTreeSet<usize> = direct.iter().flat_map(|&i| model.data_closure[i].clone()).collect();
        let changes: Vec<_> = direct.iter().map(|i| change(&format!("r{i}"))).collect();
        s.changes(&changes);
        let next = s.next_actions();
        apply(&mut model, next)?;
        let mut k = 0;
        while !model.running.is_empty() {
            let pick = picks[k % picks.len()];
            k += 1;
            let i = *model.running.iter().nth(pick % model.running.len()).unwrap();
            finish(&mut s, &mut model, i, false)?;
        }
        for (i, (&started, &was)) in model.starts.iter().zip(&before).enumerate().take(model.n) {
            let runs = started - was;
            prop_assert_eq!(runs, usize::from(affected.contains(&i)), "r{} ran {} times", i, runs);
        }
    }
}

#[test]
fn a_newer_version_cancels_a_kubernetes_update_in_progress_but_not_a_local_cmd() {
    let mut m = manifest(&[decl("web", &[], &[], true), decl("gen", &[], &[], true)]);
    m.resources[0].kind = ResourceKind::K8s;
    let mut s = scheduler(&m);
    assert_eq!(started(&s.next_actions()), ["web", "gen"]);
    s.redefined("web");
    s.changes(&[change("gen")]);
    let actions = s.next_actions();
    assert_eq!(actions[0], Action::Cancel { name: "web".into() });
    assert_eq!(
        started(&actions),
        ["web"],
        "web starts again at once; gen waits for its run"
    );
    s.finished("gen", ok());
    assert_eq!(started(&s.next_actions()), ["gen"]);
}
