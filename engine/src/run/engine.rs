//! The engine loop: starts resources in graph order, reacts to file changes,
//! process exits and probe results, reloads changed Loopfiles, and stops
//! everything on Ctrl-C.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loop_lang::model::{LiveUpdateStep, Manifest, Resource, ResourceKind};
use loop_stdlib::{EvalFailure, Evaluation};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::k8s_update::K8sRuntime;
use super::logs::Logs;
use super::process::{self, LineSink};
use super::state::{Node, Phase};
use super::{probe, Mode, RunOptions};
use crate::affected::AffectedIndex;
use crate::graph::Graph;
use crate::live_update::{self, LocalTarget, SyncPlan, SyncTarget};
use crate::watch::{WatchConfig, WatchEvent, Watcher};
use crate::{load, report};

mod changes;
mod kube;
use kube::connect_k8s;
mod reload;

/// Longest wait between restarts of a crashing serve process.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// First wait before restarting a crashed serve process.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How often long-running updates report that they are still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Lines of a failing resource's log shown in the `loop ci` summary.
const SUMMARY_LINES: usize = 20;

/// Reports from the tasks the engine starts.
enum Msg {
    /// A `cmd` finished (or there was none).
    CmdDone {
        name: String,
        generation: u64,
        result: Result<(), String>,
    },
    /// A serve process exited.
    ServeExited {
        name: String,
        generation: u64,
        exit: String,
    },
    /// A readiness probe passed.
    Ready { name: String, generation: u64 },
    /// A live update finished.
    SyncDone {
        name: String,
        generation: u64,
        result: Result<bool, String>,
    },
    /// A backoff wait ended: restart the serve process.
    RestartDue { name: String, generation: u64 },
    /// A background re-evaluation finished.
    Evaluated(Box<Result<Evaluation, Box<EvalFailure>>>),
}

/// The result of a run.
enum Outcome {
    Done,
    Failed,
    Interrupted,
}

struct Engine {
    options: RunOptions,
    root: PathBuf,
    logs: Arc<Logs>,
    manifest: Manifest,
    graph: Graph,
    index: AffectedIndex,
    nodes: HashMap<String, Node>,
    /// Resource names in run order.
    order: Vec<String>,
    /// Absolute paths whose change re-evaluates the Loopfiles.
    loopfile_inputs: HashSet<PathBuf>,
    tx: UnboundedSender<Msg>,
    updates_running: usize,
    serial_running: bool,
    reloading: bool,
    reload_again: bool,
    started: Instant,
    announced_up: bool,
    watcher: Option<Watcher>,
    /// The cluster runtime, or why there is none, when Kubernetes resources exist.
    k8s: Result<Option<Arc<K8sRuntime>>, String>,
}

/// Evaluates, then runs until stopped (run) or until everything is up (ci).
pub async fn run(options: RunOptions) -> ExitCode {
    let Some(loaded) = load::load(&options.files, &options.args) else {
        return ExitCode::FAILURE;
    };
    let index = match AffectedIndex::build(&loaded.evaluation.manifest, &loaded.graph) {
        Ok(index) => index,
        Err(err) => {
            for diag in err.diagnostics() {
                report::diagnostic(&diag, &loaded.evaluation.sources);
            }
            return ExitCode::FAILURE;
        }
    };
    let root = loaded.evaluation.project.root.clone();
    let log_dir = root.join(".loop").join("logs");
    let _ = std::fs::remove_dir_all(&log_dir);
    let logs = match Logs::new(&log_dir) {
        Ok(logs) => Arc::new(logs),
        Err(e) => {
            report::error(&format!(
                "cannot create the log folder {}: {e}",
                log_dir.display()
            ));
            return ExitCode::FAILURE;
        }
    };
    let (tx, mut rx) = unbounded_channel();
    let mut engine = Engine {
        root,
        logs,
        manifest: Manifest::default(),
        graph: loaded.graph,
        index,
        nodes: HashMap::new(),
        order: Vec::new(),
        loopfile_inputs: HashSet::new(),
        tx,
        updates_running: 0,
        serial_running: false,
        reloading: false,
        reload_again: false,
        started: Instant::now(),
        announced_up: false,
        watcher: None,
        k8s: Ok(None),
        options,
    };
    engine.k8s = connect_k8s(
        &engine.options,
        &loaded.evaluation.manifest,
        &engine.root,
        &engine.logs,
    )
    .await;
    engine.install(loaded.evaluation.manifest);
    let (watch_tx, mut watch_rx) = unbounded_channel();
    if engine.options.watch {
        engine.start_watcher(watch_tx.clone());
    }
    let outcome = engine.event_loop(&mut rx, &mut watch_rx, watch_tx).await;
    engine.shutdown().await;
    match outcome {
        Outcome::Done | Outcome::Interrupted => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::FAILURE,
    }
}

impl Engine {
    /// Takes a new manifest as the current one, creating nodes for new resources.
    fn install(&mut self, manifest: Manifest) {
        let enabled = enabled_set(&manifest, &self.graph);
        self.order = self.graph.topo_order().map(str::to_owned).collect();
        for resource in &manifest.resources {
            self.logs.register(&resource.name);
            let on = enabled
                .as_ref()
                .is_none_or(|set| set.contains(&resource.name));
            self.nodes
                .entry(resource.name.clone())
                .or_insert_with(|| Node::new(resource.clone(), on))
                .enabled = on;
        }
        self.loopfile_inputs = manifest
            .watched_files
            .iter()
            .map(|f| self.absolute(f))
            .collect();
        self.manifest = manifest;
    }

    fn absolute(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.root.join(p)
        }
    }

    fn start_watcher(&mut self, tx: UnboundedSender<WatchEvent>) {
        let mut extra: Vec<PathBuf> = self
            .loopfile_inputs
            .iter()
            .filter(|p| !p.starts_with(&self.root))
            .cloned()
            .collect();
        for r in &self.manifest.resources {
            extra.extend(
                r.deps
                    .iter()
                    .map(|d| self.absolute(glob_base(d)))
                    .filter(|p| !p.starts_with(&self.root)),
            );
        }
        let config = WatchConfig {
            root: self.root.clone(),
            extra,
            ignore: self.manifest.settings.watch_ignore.clone(),
            debounce: self.options.debounce,
            max_wait: Duration::from_secs(2),
        };
        self.watcher = None;
        match tokio::task::block_in_place(|| Watcher::start(config)) {
            Ok((watcher, mut events)) => {
                self.watcher = Some(watcher);
                tokio::spawn(async move {
                    while let Some(event) = events.recv().await {
                        if tx.send(event).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(err) => self.logs.engine(&format!("not watching files: {err}")),
        }
    }

    async fn event_loop(
        &mut self,
        rx: &mut UnboundedReceiver<Msg>,
        watch_rx: &mut UnboundedReceiver<WatchEvent>,
        watch_tx: UnboundedSender<WatchEvent>,
    ) -> Outcome {
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(self.options.timeout)
            .unwrap_or(now + Duration::from_secs(365 * 86_400));
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        progress.tick().await;
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            self.schedule();
            if self.options.mode == Mode::Ci {
                if let Some(outcome) = self.ci_outcome() {
                    return outcome;
                }
            }
            self.announce_up();
            tokio::select! {
                Some(msg) = rx.recv() => {
                    if let Some(restart_watcher) = self.handle(msg) {
                        if restart_watcher && self.options.watch {
                            self.start_watcher(watch_tx.clone());
                        }
                    }
                }
                Some(event) = watch_rx.recv() => self.on_watch(event),
                _ = tokio::signal::ctrl_c() => return Outcome::Interrupted,
                _ = async { match sigterm.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => return Outcome::Interrupted,
                _ = tokio::time::sleep_until(deadline), if self.options.mode == Mode::Ci => {
                    let waiting: Vec<String> = self.order.iter().filter(|n| self.nodes[*n].required() && !self.nodes[*n].phase.is_ready()).map(|n| format!("{n} ({})", self.nodes[n].phase)).collect();
                    self.logs.engine(&format!("ci timed out after {:?} waiting for: {}", self.options.timeout, waiting.join(", ")));
                    return Outcome::Failed;
                }
                _ = progress.tick() => self.report_progress(),
            }
        }
    }

    /// Starts every queued resource whose upstreams are ready, within the limits.
    fn schedule(&mut self) {
        let max = self.manifest.settings.max_parallel_updates.max(1) as usize;
        for i in 0..self.order.len() {
            if self.updates_running >= max {
                return;
            }
            let name = &self.order[i];
            let node = &self.nodes[name];
            if !node.queued || !node.enabled || node.phase.is_busy() {
                continue;
            }
            let upstreams_ready = self
                .graph
                .upstreams(name)
                .iter()
                .all(|(up, _)| self.nodes.get(*up).is_some_and(|n| n.phase.is_ready()));
            if !upstreams_ready {
                continue;
            }
            if !runs_in_parallel(&node.resource) && self.serial_running {
                continue;
            }
            let name = name.clone();
            self.start_update(&name);
        }
    }

    fn sink(&self, name: &str) -> LineSink {
        let logs = self.logs.clone();
        let name = name.to_owned();
        Arc::new(move |line: &str| logs.line(&name, line))
    }

    /// Runs a full update: stop the serve process, run `cmd`, then (on
    /// [`Msg::CmdDone`]) start the serve process.
    fn start_update(&mut self, name: &str) {
        let grace = self.options.grace;
        let sink = self.sink(name);
        let tx = self.tx.clone();
        let root = self.root.clone();
        if self.nodes[name].resource.kind != ResourceKind::Local {
            self.start_k8s_update(name);
            return;
        }
        let node = self.nodes.get_mut(name).expect("scheduled resources exist");
        let first_run = node.generation == 0;
        node.queued = false;
        node.generation += 1;
        node.phase = Phase::Updating;
        node.since = Instant::now();
        if let Some(probe) = node.probe.take() {
            probe.abort();
        }
        let old_group = node.serve_group.take();
        let generation = node.generation;
        let cmd = node.resource.cmd.clone();
        let dir = root.join(&node.resource.cmd_dir);
        let env = node.resource.env.clone();
        let parallel = runs_in_parallel(&node.resource);
        let steps = &node.resource.live_update;
        let initial_sync = (first_run
            && steps
                .iter()
                .any(|s| matches!(s, LiveUpdateStep::InitialSync)))
        .then(|| {
            let target = LocalTarget {
                run_dir: root.join(&node.resource.serve_dir),
                env: env.clone(),
                log: sink.clone(),
            };
            (
                target,
                live_update::initial_plan(steps, &root, &root.join(&node.resource.serve_dir)),
            )
        });
        self.updates_running += 1;
        if !parallel {
            self.serial_running = true;
        }
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Some(group) = old_group {
                process::stop_group(group, grace).await;
            }
            if let Some((target, plan)) = initial_sync {
                let synced = match plan {
                    Ok(plan) => target.apply(&plan).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = synced {
                    let _ = tx.send(Msg::CmdDone {
                        name,
                        generation,
                        result: Err(format!("initial_sync failed: {e}")),
                    });
                    return;
                }
            }
            let result = match cmd {
                None => Ok(()),
                Some(cmd) => {
                    sink(&format!("[loop] running: {}", cmd.display()));
                    match process::spawn(&cmd, &dir, &env, sink.clone()) {
                        Err(e) => Err(e),
                        Ok(mut child) => {
                            let group = child.id();
                            let status = child.wait().await;
                            if let Some(group) = group {
                                // Children the command left behind die with it.
                                process::stop_group(group, grace).await;
                            }
                            match status {
                                Ok(s) if s.success() => Ok(()),
                                Ok(s) => Err(format!(
                                    "`{}` failed with {}",
                                    cmd.display(),
                                    process::describe_exit(s)
                                )),
                                Err(e) => Err(format!("waiting for `{}`: {e}", cmd.display())),
                            }
                        }
                    }
                }
            };
            let _ = tx.send(Msg::CmdDone {
                name,
                generation,
                result,
            });
        });
    }

    /// Starts the serve process and its readiness probe.
    fn start_serve(&mut self, name: &str) {
        let sink = self.sink(name);
        let tx = self.tx.clone();
        let logs = self.logs.clone();
        let root = self.root.clone();
        let node = self.nodes.get_mut(name).expect("known resource");
        let Some(serve) = node.resource.serve_cmd.clone() else {
            return;
        };
        node.generation += 1;
        let generation = node.generation;
        let dir = root.join(&node.resource.serve_dir);
        let mut env = node.resource.env.clone();
        env.extend(node.resource.serve_env.clone());
        sink(&format!("[loop] starting: {}", serve.display()));
        let mut child = match process::spawn(&serve, &dir, &env, sink) {
            Ok(child) => child,
            Err(e) => {
                let _ = tx.send(Msg::ServeExited {
                    name: name.to_owned(),
                    generation,
                    exit: e,
                });
                node.phase = Phase::Starting;
                return;
            }
        };
        node.serve_group = child.id();
        node.phase = Phase::Starting;
        node.since = Instant::now();
        let owned = name.to_owned();
        let exit_tx = tx.clone();
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => process::describe_exit(status),
                Err(e) => e.to_string(),
            };
            let _ = exit_tx.send(Msg::ServeExited {
                name: owned,
                generation,
                exit,
            });
        });
        let probe = node.resource.readiness_probe.clone();
        let owned = name.to_owned();
        let task = tokio::spawn(async move {
            if let Some(probe) = probe {
                let log_name = owned.clone();
                probe::wait_ready(&probe, &dir, |failures, reason| {
                    logs.status(
                        &log_name,
                        &format!("not ready: {reason} ({failures} failed checks)"),
                    )
                })
                .await;
            }
            let _ = tx.send(Msg::Ready {
                name: owned,
                generation,
            });
        });
        node.probe = Some(task.abort_handle());
    }

    /// Applies a live update to a running local resource.
    fn start_sync(&mut self, name: &str, plan: SyncPlan) {
        let tx = self.tx.clone();
        let logs = self.logs.clone();
        let root = self.root.clone();
        let node = self.nodes.get_mut(name).expect("known resource");
        node.generation += 1;
        let generation = node.generation;
        node.phase = Phase::Syncing;
        node.since = Instant::now();
        let log_name = name.to_owned();
        let target = LocalTarget {
            run_dir: root.join(&node.resource.serve_dir),
            env: node.resource.env.clone(),
            log: Arc::new(move |line: &str| logs.line(&log_name, line)),
        };
        let restart = plan.restart;
        let name = name.to_owned();
        tokio::spawn(async move {
            let result = target
                .apply(&plan)
                .await
                .map(|_| restart)
                .map_err(|e| e.to_string());
            let _ = tx.send(Msg::SyncDone {
                name,
                generation,
                result,
            });
        });
    }

    /// Handles a report; returns `Some(true)` when the watcher must be restarted.
    fn handle(&mut self, msg: Msg) -> Option<bool> {
        match msg {
            Msg::CmdDone {
                name,
                generation,
                result,
            } => {
                let Some(node) = self.current(&name, generation) else {
                    self.release_slot_of(&name);
                    return None;
                };
                let took = node.since.elapsed();
                let has_serve = node.resource.serve_cmd.is_some();
                let is_k8s = node.resource.kind != ResourceKind::Local;
                let parallel = runs_in_parallel(&node.resource);
                self.release_slot(parallel);
                match result {
                    Ok(()) if is_k8s => {
                        self.set_phase(&name, Phase::Ready);
                        self.logs
                            .status(&name, &format!("ready in {}", seconds(took)));
                        self.start_k8s_followers(&name);
                    }
                    Err(e)
                        if is_k8s
                            && self.options.mode == Mode::Run
                            && e.contains(crate::k8s::apply::UNREACHABLE) =>
                    {
                        let generation = self.nodes[&name].generation;
                        self.logs.status(&name, &format!("{e}; retrying in 5s"));
                        self.set_phase(&name, Phase::Failed(e));
                        let tx = self.tx.clone();
                        let owned = name.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            let _ = tx.send(Msg::RestartDue {
                                name: owned,
                                generation,
                            });
                        });
                    }
                    Ok(()) if has_serve => self.start_serve(&name),
                    Ok(()) => {
                        self.set_phase(&name, Phase::Succeeded);
                        self.logs
                            .status(&name, &format!("succeeded in {}", seconds(took)));
                    }
                    Err(e) => self.fail(&name, e),
                }
                self.after_run(&name);
            }
            Msg::ServeExited {
                name,
                generation,
                exit,
            } => {
                let node = self.current(&name, generation)?;
                node.serve_group = None;
                if let Some(probe) = node.probe.take() {
                    probe.abort();
                }
                let restarts = node.restarts;
                if self.options.mode == Mode::Ci {
                    self.fail(&name, format!("the serve process exited ({exit})"));
                    return None;
                }
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << restarts.min(10))
                    .min(MAX_BACKOFF);
                self.logs.status(
                    &name,
                    &format!(
                        "serve process exited ({exit}); restarting in {} (restart {})",
                        seconds(backoff),
                        restarts + 1
                    ),
                );
                let node = self.nodes.get_mut(&name).expect("known");
                node.restarts += 1;
                node.phase = Phase::Crashing {
                    exit,
                    restarts: restarts + 1,
                };
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(backoff).await;
                    let _ = tx.send(Msg::RestartDue { name, generation });
                });
            }
            Msg::RestartDue { name, generation } => {
                let node = self.current(&name, generation)?;
                if node.resource.kind == ResourceKind::Local {
                    self.start_serve(&name);
                } else {
                    node.queued = true;
                }
            }
            Msg::Ready { name, generation } => {
                let node = self.current(&name, generation)?;
                let took = node.since.elapsed();
                node.probe = None;
                self.set_phase(&name, Phase::Ready);
                self.logs
                    .status(&name, &format!("ready in {}", seconds(took)));
                self.after_run(&name);
            }
            Msg::SyncDone {
                name,
                generation,
                result,
            } => {
                self.current(&name, generation)?;
                match result {
                    Ok(true) => {
                        let group = self.nodes.get_mut(&name).and_then(|n| n.serve_group.take());
                        self.restart_serve(&name, group);
                    }
                    Ok(false) => {
                        self.set_phase(&name, Phase::Ready);
                        self.logs.status(&name, "live update done");
                    }
                    Err(e) => self.fail(&name, format!("live update failed: {e}")),
                }
                self.after_run(&name);
            }
            Msg::Evaluated(result) => {
                self.reloading = false;
                let restart = self.reloaded(*result);
                if self.reload_again {
                    self.reload_again = false;
                    self.reload();
                }
                return Some(restart);
            }
        }
        None
    }

    /// The node, if `generation` is still its current one.
    fn current(&mut self, name: &str, generation: u64) -> Option<&mut Node> {
        self.nodes
            .get_mut(name)
            .filter(|n| n.generation == generation)
    }

    fn release_slot(&mut self, parallel: bool) {
        self.updates_running = self.updates_running.saturating_sub(1);
        if !parallel {
            self.serial_running = false;
        }
    }

    /// A stale `CmdDone` still frees its slot (the resource was removed or re-queued).
    fn release_slot_of(&mut self, name: &str) {
        let parallel = self
            .nodes
            .get(name)
            .is_some_and(|n| n.resource.allow_parallel);
        self.release_slot(parallel);
    }

    fn set_phase(&mut self, name: &str, phase: Phase) {
        if let Some(node) = self.nodes.get_mut(name) {
            node.phase = phase;
            node.since = Instant::now();
        }
    }

    fn fail(&mut self, name: &str, why: String) {
        self.logs.status(name, &format!("failed: {why}"));
        self.set_phase(name, Phase::Failed(why));
    }

    /// Restarts the serve process after a live update (`restart_container()`).
    fn restart_serve(&mut self, name: &str, group: Option<u32>) {
        let grace = self.options.grace;
        let tx = self.tx.clone();
        let node = self.nodes.get_mut(name).expect("known");
        node.generation += 1;
        let generation = node.generation;
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Some(group) = group {
                process::stop_group(group, grace).await;
            }
            let _ = tx.send(Msg::RestartDue { name, generation });
        });
    }

    /// In `loop ci`: done when every required resource is ready; failed on the first failure.
    fn ci_outcome(&self) -> Option<Outcome> {
        if let Some(name) = self
            .order
            .iter()
            .find(|n| self.nodes[*n].required() && matches!(self.nodes[*n].phase, Phase::Failed(_)))
        {
            let Phase::Failed(why) = &self.nodes[name].phase else {
                unreachable!()
            };
            self.logs.engine(&format!("ci failed: {name}: {why}"));
            eprintln!(
                "--- last lines of {name} (full log: {}):",
                self.logs.path(name).display()
            );
            for line in self.logs.tail(name, SUMMARY_LINES) {
                eprintln!("{line}");
            }
            return Some(Outcome::Failed);
        }
        let done = self
            .nodes
            .values()
            .all(|n| !n.required() || (n.phase.is_ready() && !n.queued));
        if done {
            let count = self.nodes.values().filter(|n| n.required()).count();
            self.logs.engine(&format!(
                "ci: all {} up in {}",
                plural(count, "resource"),
                seconds(self.started.elapsed())
            ));
            return Some(Outcome::Done);
        }
        None
    }

    /// Says once when everything first came up.
    fn announce_up(&mut self) {
        if self.announced_up || self.options.mode == Mode::Ci {
            return;
        }
        let up = self
            .nodes
            .values()
            .all(|n| !n.required() || (n.phase.is_ready() && !n.queued));
        if up {
            self.announced_up = true;
            let ready = self.nodes.values().filter(|n| n.required()).count();
            self.logs.engine(&format!(
                "{} up in {}; watching for changes (Ctrl-C to stop)",
                plural(ready, "resource"),
                seconds(self.started.elapsed())
            ));
        }
    }

    fn report_progress(&self) {
        for name in &self.order {
            let node = &self.nodes[name];
            if matches!(
                node.phase,
                Phase::Updating | Phase::Syncing | Phase::Starting
            ) && node.since.elapsed() >= PROGRESS_EVERY
            {
                self.logs.status(
                    name,
                    &format!(
                        "still {} after {}",
                        node.phase,
                        seconds(node.since.elapsed())
                    ),
                );
            }
        }
    }

    /// Stops every process `loop` started: whole groups, SIGTERM then SIGKILL; a
    /// second Ctrl-C kills at once.
    async fn shutdown(&mut self) {
        self.watcher = None;
        for node in self.nodes.values_mut() {
            if let Some(followers) = node.followers.take() {
                followers.abort();
            }
        }
        let groups: Vec<u32> = process::live_groups();
        if groups.is_empty() {
            return;
        }
        self.logs
            .engine(&format!("stopping {} process group(s)", groups.len()));
        let grace = self.options.grace;
        let stop_all = futures_join(
            groups
                .iter()
                .map(|g| process::stop_group(*g, grace))
                .collect(),
        );
        tokio::select! {
            _ = stop_all => {}
            _ = tokio::signal::ctrl_c() => {
                for group in process::live_groups() {
                    process::signal_group(group, nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
    }

    fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) => loop_lang::project::slash(rel),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }
}

/// Whether a resource's updates may overlap others': Kubernetes resources and
/// `allow_parallel=True` local resources may; other local resources run one at a time.
fn runs_in_parallel(resource: &Resource) -> bool {
    resource.allow_parallel || resource.kind != ResourceKind::Local
}

/// Runs futures concurrently to completion.
async fn futures_join<F: std::future::Future<Output = ()> + Send + 'static>(futures: Vec<F>) {
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    while set.join_next().await.is_some() {}
}

/// The enabled resources (`config.set_enabled_resources` plus everything they
/// depend on), or `None` for all.
fn enabled_set(manifest: &Manifest, graph: &Graph) -> Option<BTreeSet<String>> {
    let wanted = manifest.settings.enabled_resources.as_ref()?;
    let mut set = BTreeSet::new();
    let mut todo: Vec<String> = wanted.clone();
    while let Some(name) = todo.pop() {
        if set.insert(name.clone()) {
            todo.extend(
                graph
                    .upstreams(&name)
                    .into_iter()
                    .map(|(n, _)| n.to_owned()),
            );
        }
    }
    Some(set)
}

/// The literal folder of a deps entry (the whole entry when it is no glob).
fn glob_base(dep: &str) -> &str {
    match dep.find(['*', '?', '[', '{']) {
        Some(i) => dep[..i].rsplit_once('/').map_or("", |(base, _)| base),
        None => dep,
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
