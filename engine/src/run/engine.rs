//! The engine loop: owns the state of a `loop run`/`loop ci` session, feeds every
//! event (file changes, reports from processes, probes, syncs and applies,
//! reloads, stop signals) to the [`Scheduler`], and carries out the actions it
//! gives through the local and Kubernetes runtimes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use loop_lang::model::{ImageKind, Manifest};
use loop_stdlib::{EvalFailure, Evaluation};
use tokio::sync::mpsc::{self, unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::logs::Logs;
use super::scheduler::{Action, RunEnd, Scheduler};
use super::secrets::Scrubber;
use super::signals::StopSignals;
use super::state::Node;
use super::{Mode, RunOptions};
use crate::affected::AffectedIndex;
use crate::control::board::Board;
use crate::control::server::Request;
use crate::control::view::{unix_ms, SessionView};
use crate::control::Control;
use crate::graph::Graph;
use crate::process;
use crate::watch::{ImageInput, WatchConfig, WatchEvent, Watcher};
use crate::{load, report};

mod changes;
mod compose;
mod kube;
use crate::failure::Failure;
use crate::report::LineSink;
use kube::connect_k8s;
mod local;
mod reload;
mod reports;
mod requests;
mod runtime;
mod session;
mod views;

/// Longest wait between restarts of a crashing serve process.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// First wait before restarting a crashed serve process.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How often long-running updates report that they are still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Lines of a failing resource's log shown in the `loop ci` summary.
const SUMMARY_LINES: usize = 20;
/// How long after a `wait --for settled` call file events may still arrive
/// (beyond the debounce): the watcher's burst window and delivery.
const SETTLE_MARGIN: Duration = Duration::from_millis(400);
/// Wait before retrying a Kubernetes update whose cluster did not answer.
const RETRY_UNREACHABLE: Duration = Duration::from_secs(5);
/// How often adopted orphans are looked for (besides on every SIGCHLD): a daemon
/// that left its group is known to the watchdog within this time.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// Reports from the tasks the engine starts.
enum Msg {
    /// A `cmd` (or a Kubernetes update) finished.
    CmdDone {
        name: String,
        generation: u64,
        result: Result<CmdResult, Failure>,
    },
    /// A serve process exited.
    ServeExited {
        name: String,
        generation: u64,
        exit: String,
    },
    /// A readiness probe passed.
    Ready { name: String, generation: u64 },
    /// A Compose service's container exited with a code, or is gone (why).
    ContainerExited {
        name: String,
        generation: u64,
        end: Result<i64, String>,
    },
    /// A live update finished: `Ok(true)` when the serve process must restart.
    SyncDone {
        name: String,
        generation: u64,
        result: Result<bool, String>,
    },
    /// A backoff wait ended: restart the serve process.
    RestartDue { name: String, generation: u64 },
    /// The wait before retrying an update ended.
    RetryDue { name: String, generation: u64 },
    /// A background re-evaluation finished.
    Evaluated(Box<Result<Evaluation, Box<EvalFailure>>>),
}

/// What a successful `cmd` run found.
#[derive(Clone, Debug)]
struct CmdResult {
    /// False only when the resource declares outputs and they did not change.
    outputs_changed: bool,
    /// It did not run: a warm start (inputs and outputs unchanged).
    skipped: bool,
    /// A Compose service: its container, and when `up` began (unix seconds).
    container: Option<(String, u64)>,
}

impl Default for CmdResult {
    /// A run that happened and may have changed anything.
    fn default() -> CmdResult {
        CmdResult {
            outputs_changed: true,
            skipped: false,
            container: None,
        }
    }
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
    scheduler: Scheduler,
    nodes: HashMap<String, Node>,
    /// Resource names in run order.
    order: Vec<String>,
    /// Absolute paths whose change re-evaluates the Loopfiles.
    loopfile_inputs: HashSet<PathBuf>,
    tx: UnboundedSender<Msg>,
    reloading: bool,
    reload_again: bool,
    started: Instant,
    announced_up: bool,
    watcher: Option<Watcher>,
    /// The cluster runtime, or why there is none, when Kubernetes resources exist.
    k8s: kube::K8sLink,
    /// The session API (`loop run`).
    control: Option<Control>,
    /// Resources whose view changed outside the scheduler (runs, errors).
    dirty: Vec<String>,
    /// Runs started in this session.
    runs: usize,
}

/// Evaluates, then runs until stopped (run) or until everything is up (ci).
pub async fn run(options: RunOptions) -> ExitCode {
    let mut signals = match StopSignals::listen() {
        Ok(signals) => signals,
        Err(e) => {
            report::error(&format!("cannot listen for stop signals: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // Orphaned descendants are re-parented to `loop`, which stops them on exit.
    let subreaper = process::tree::become_subreaper();
    // Evaluation may run `local()` commands: a stop signal ends the wait for it.
    let (files, eval_options) = (options.files.clone(), options.eval_options());
    let loading = tokio::task::spawn_blocking(move || load::load(&files, &eval_options));
    let loaded = tokio::select! {
        loaded = loading => loaded.ok().flatten(),
        signal = signals.recv() => {
            report::error(&format!("{signal} while evaluating the Loopfiles: stopped"));
            return ExitCode::FAILURE;
        }
    };
    let Some(loaded) = loaded else {
        return ExitCode::FAILURE;
    };
    let manifest = loaded.evaluation.manifest;
    let enabled = match enabled_set(&manifest, &loaded.graph) {
        Ok(enabled) => enabled,
        Err(message) => {
            report::error(&message);
            return ExitCode::FAILURE;
        }
    };
    let mut scheduler = Scheduler::new(&manifest, &loaded.graph, enabled.as_ref());
    if options.mode == Mode::Ci && scheduler.required_count() == 0 {
        report::error(
            "loop ci: no resource is enabled to run (every resource is disabled or has auto_init=False)",
        );
        return ExitCode::FAILURE;
    }
    scheduler.start_all();
    let root = loaded.evaluation.project.root.clone();
    let _lock = match super::lock::acquire(&root) {
        Ok(lock) => lock,
        Err(message) => {
            report::error(&message);
            return ExitCode::FAILURE;
        }
    };
    let log_dir = root.join(".loop").join("logs");
    let _ = std::fs::remove_dir_all(&log_dir);
    let logs = match Logs::new(&log_dir, options.log_lines) {
        Ok(logs) => Arc::new(logs),
        Err(e) => {
            report::error(&format!(
                "cannot create the log folder {}: {e}",
                log_dir.display()
            ));
            return ExitCode::FAILURE;
        }
    };
    if let Err(message) = subreaper {
        logs.engine(&format!(
            "{message}: processes that leave their group may survive `loop`"
        ));
    }
    if let Err(message) = process::watchdog::start(options.grace) {
        logs.engine(&format!(
            "{message}: if `loop` is killed, only its direct children die with it"
        ));
    }
    let (tx, mut rx) = unbounded_channel();
    let mut engine = Engine {
        root,
        logs,
        manifest: Manifest::default(),
        graph: loaded.graph,
        index: loaded.index,
        scheduler,
        nodes: HashMap::new(),
        order: Vec::new(),
        loopfile_inputs: HashSet::new(),
        tx,
        reloading: false,
        reload_again: false,
        started: Instant::now(),
        announced_up: false,
        watcher: None,
        k8s: kube::K8sLink::default(),
        control: None,
        dirty: Vec::new(),
        runs: 0,
        options,
    };
    let mut requests = None;
    if let (Mode::Run, Some(port)) = (engine.options.mode, engine.options.port) {
        let board = Board::new(SessionView {
            loopfiles: manifest.loopfiles.iter().map(|l| l.path.clone()).collect(),
            args: engine.options.args.clone(),
            pid: std::process::id(),
            start_ms: unix_ms(SystemTime::now()),
            loopfile_error: None,
            buttons: Vec::new(),
        });
        let settle = engine.options.debounce + SETTLE_MARGIN;
        match Control::start(&engine.root, port, board, engine.logs.clone(), settle).await {
            Ok(mut control) => {
                engine
                    .logs
                    .engine(&format!("dashboard: {}", control.dashboard_url()));
                requests = control.requests.take();
                engine.control = Some(control);
            }
            Err(message) => {
                report::error(&message);
                return ExitCode::FAILURE;
            }
        }
    }
    engine.k8s = connect_k8s(&engine.options, &manifest, &engine.root, &engine.logs).await;
    engine.install(manifest);
    engine.publish_all();
    let (watch_tx, mut watch_rx) = unbounded_channel();
    if engine.options.watch {
        engine.start_watcher(watch_tx.clone());
    }
    let outcome = engine
        .event_loop(
            &mut rx,
            &mut watch_rx,
            watch_tx,
            &mut signals,
            &mut requests,
        )
        .await;
    engine.shutdown(&mut signals).await;
    match outcome {
        Outcome::Done | Outcome::Interrupted => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::FAILURE,
    }
}

impl Engine {
    /// Takes a new manifest as the current one, creating nodes for new resources
    /// (the scheduler for it is already in place).
    fn install(&mut self, manifest: Manifest) {
        self.logs.scrub_with(Scrubber::of(&manifest));
        self.order = self.graph.topo_order().map(str::to_owned).collect();
        for resource in &manifest.resources {
            self.logs.register(&resource.name);
            self.nodes
                .entry(resource.name.clone())
                .and_modify(|node| node.resource = resource.clone())
                .or_insert_with(|| Node::new(resource.clone()));
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
            image_inputs: self.image_inputs(),
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
            Err(err) => self.logs.engine_at(
                report::Verbosity::Quiet,
                &format!("not watching files: {err}"),
            ),
        }
    }

    async fn event_loop(
        &mut self,
        rx: &mut UnboundedReceiver<Msg>,
        watch_rx: &mut UnboundedReceiver<WatchEvent>,
        watch_tx: UnboundedSender<WatchEvent>,
        signals: &mut StopSignals,
        requests: &mut Option<mpsc::Receiver<Request>>,
    ) -> Outcome {
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(self.options.timeout)
            .unwrap_or(now + Duration::from_secs(365 * 86_400));
        let mut progress = tokio::time::interval(Duration::from_secs(1));
        let mut reap = tokio::time::interval(REAP_EVERY);
        reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut child_exits =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
        loop {
            let actions = self.scheduler.next_actions();
            self.perform(actions);
            if self.options.mode == Mode::Ci {
                if let Some(outcome) = self.ci_outcome() {
                    return outcome;
                }
            }
            self.announce_up();
            self.publish();
            tokio::select! {
                Some(msg) = rx.recv() => {
                    if self.handle(msg) && self.options.watch {
                        self.start_watcher(watch_tx.clone());
                    }
                }
                Some(event) = watch_rx.recv() => self.on_watch(event),
                Some(request) = async {
                    match requests.as_mut() {
                        Some(r) => r.recv().await,
                        None => std::future::pending().await,
                    }
                } => self.on_request(request),
                signal = signals.recv() => {
                    self.logs.engine(&format!("{signal}: stopping"));
                    return Outcome::Interrupted;
                }
                _ = tokio::time::sleep_until(deadline), if self.options.mode == Mode::Ci => {
                    self.report_timeout();
                    return Outcome::Failed;
                }
                _ = progress.tick() => self.report_progress(),
                _ = reap.tick() => process::reap_adopted(),
                Some(()) = recv_opt(&mut child_exits) => process::reap_adopted(),
            }
        }
    }

    /// Carries out what the scheduler decided.
    fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Start {
                    name,
                    reason,
                    paths,
                    first,
                    previous,
                } => self.start(&name, &reason, &paths, first, &previous),
                Action::Skip { name, reason } => {
                    self.logs.status(&name, &format!("skipped: {reason}"));
                }
                Action::Wait { name, reason } => self.logs.status(&name, &reason.to_string()),
                Action::Cancel { name } => {
                    if let Some(node) = self.nodes.get_mut(&name) {
                        node.generation += 1;
                        if let Some(update) = node.update.take() {
                            update.abort();
                        }
                    }
                    self.logs
                        .status(&name, "a newer version replaces the update in progress");
                }
                Action::Stop { name } => {
                    self.stop_resource(&name);
                    self.logs.status(&name, "disabled: stopped");
                    self.dirty.push(name);
                }
            }
        }
    }

    fn sink(&self, name: &str) -> LineSink {
        let logs = self.logs.clone();
        let name = name.to_owned();
        Arc::new(move |line: &str| logs.line(&name, line))
    }

    /// Where a resource's processes write: stdout and stderr kept apart.
    fn output(&self, name: &str) -> process::Output {
        let logs = self.logs.clone();
        let owned = name.to_owned();
        process::Output {
            stdout: self.sink(name),
            stderr: Arc::new(move |line: &str| logs.stderr_line(&owned, line)),
        }
    }

    /// Tells the scheduler how a run ended, and does what it says next.
    fn finished(&mut self, name: &str, end: RunEnd) {
        if let Some(node) = self.nodes.get_mut(name) {
            let result = match &end {
                RunEnd::Failed(why) => Err(why.clone()),
                _ => Ok(()),
            };
            node.last_error = result.clone().err();
            if let Some(run) = node.last_run.as_mut().filter(|r| r.ended.is_none()) {
                let took = run.started.elapsed().unwrap_or_default();
                run.ended = Some((took, result));
            }
            self.dirty.push(name.to_owned());
        }
        let actions = self.scheduler.finished(name, end);
        self.perform(actions);
    }

    /// The node, if `generation` is still its current one.
    fn current(&mut self, name: &str, generation: u64) -> Option<&mut Node> {
        self.nodes
            .get_mut(name)
            .filter(|n| n.generation == generation)
    }

    fn fail(&mut self, name: &str, why: String) {
        self.logs.problem(name, &format!("failed: {why}"));
        self.finished(name, RunEnd::Failed(why));
    }

    /// The `docker_build` contexts, each with its build's filter
    /// (`.dockerignore`, `ignore`, `only`), which decides there what is watched.
    fn image_inputs(&self) -> Vec<ImageInput> {
        let mut inputs = Vec::new();
        for image in &self.manifest.images {
            if image.kind != ImageKind::Docker {
                continue;
            }
            // A context that cannot be read yet keeps `.gitignore`'s rules.
            let Ok(context) = crate::image::Context::new(image, &self.root) else {
                continue;
            };
            let dir = context.root.clone();
            let context = Arc::new(context);
            let excludes = move |path: &Path, is_dir: bool| {
                path.strip_prefix(&context.root)
                    .is_ok_and(|rel| context.excludes(&rel.to_string_lossy(), is_dir))
            };
            inputs.push(ImageInput {
                dir,
                excludes: Some(Arc::new(excludes)),
            });
        }
        inputs
    }

    /// Stops whatever runs for a resource (disabled or removed): its serve process,
    /// probe and followers; reports from them are ignored from now on.
    fn stop_resource(&mut self, name: &str) {
        let grace = self.options.grace;
        let Some(node) = self.nodes.get_mut(name) else {
            return;
        };
        node.generation += 1;
        if let Some(probe) = node.probe.take() {
            probe.abort();
        }
        if let Some(followers) = node.followers.take() {
            followers.abort();
        }
        if let Some(group) = node.serve_group.take() {
            tokio::spawn(process::stop_group(group, grace));
        }
    }

    fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) => loop_lang::project::slash(rel),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }
}

/// The wait before the next restart of a serve process that exited `restarts` times.
fn backoff(restarts: u32) -> Duration {
    super::state::doubled(FIRST_BACKOFF, restarts, MAX_BACKOFF)
}

/// The next SIGCHLD, or never when it could not be listened for.
async fn recv_opt(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
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
/// depend on), or `None` for all; an unknown name is an error.
fn enabled_set(manifest: &Manifest, graph: &Graph) -> Result<Option<BTreeSet<String>>, String> {
    let Some(wanted) = manifest.settings.enabled_resources.as_ref() else {
        return Ok(None);
    };
    if let Some(unknown) = wanted.iter().find(|n| graph.index_of(n).is_none()) {
        let hint = match loop_lang::diag::closest(unknown, graph.names()) {
            Some(name) => format!("did you mean `{name}`?"),
            None => format!(
                "the resources are: {}",
                graph.names().take(10).collect::<Vec<_>>().join(", ")
            ),
        };
        return Err(format!(
            "no resource named `{unknown}` to enable (config.set_enabled_resources or the arguments after `--`); {hint}"
        ));
    }
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
    Ok(Some(set))
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
