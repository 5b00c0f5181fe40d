//! The file watcher: it watches the project folder (minus ignored folders) and
//! any extra files and folders, and reports debounced batches of changed paths.
//!
//! How it works:
//! - Every kept folder gets its own non-recursive inotify watch. notify's
//!   recursive mode would also watch ignored folders (`node_modules`, `target`)
//!   and run into the kernel's watch limit; instead the watcher walks the tree
//!   itself and asks its ignore rules (see `rules.rs`) about every entry. The same rules filter the
//!   events, so a folder that gets no watch never reports, and an ignored file in
//!   a watched folder is dropped.
//! - A new folder is walked and watched as soon as its creation is seen; the
//!   files already inside it are reported, since they may have been written
//!   before its watch existed.
//! - A change to a `.gitignore` or `.loopignore` is reported like any other
//!   change, and the rules are re-read live: when the batch is flushed, the
//!   folder holding the file is walked again, newly ignored folders lose their
//!   watch and newly kept ones get one.
//! - A removed subfolder is simply reported (its parent sees it come back). A
//!   removed root or extra folder is also a [`WatchEvent::Problem`], as nothing
//!   watches it again.
//! - notify's callback only forwards events to a channel; a dedicated thread
//!   owns the state, filters, debounces and sends [`WatchEvent`]s.

mod limits;
mod rules;
pub use rules::{listing, ALWAYS_SKIPPED};
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use std::{fs, io};

use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use limits::WatchFailure;
pub use limits::{InotifyLimit, LimitReached};
pub use rules::ImageInput;
pub(crate) use rules::Rules;
use rules::IGNORE_FILES;

/// What the watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A debounced batch of changed paths (absolute, deduplicated, sorted):
    /// files and folders that were created, modified or deleted.
    Changes(Vec<PathBuf>),
    /// The kernel's event queue overflowed and changes were lost: treat every
    /// watched file as possibly changed. It replaces the batch it ended, and
    /// the watcher has walked its folders again, so watching goes on.
    Overflow,
    /// A problem worth showing that does not stop watching, such as a watched
    /// folder that was removed or a folder that could not be watched.
    Problem(String),
}

/// What to watch and how to batch the changes.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The project root (absolute): watched recursively, except ignored folders.
    pub root: PathBuf,
    /// Absolute files and folders to watch too, typically outside the root. A
    /// folder is watched recursively like the root; for a file (or a path that
    /// does not exist yet) its parent folder is watched and only that file is
    /// reported. Ignore rules do not apply to these paths themselves.
    pub extra: Vec<PathBuf>,
    /// Gitignore-style patterns, relative to the root (from
    /// `watch_settings(ignore=...)`).
    pub ignore: Vec<String>,
    /// The `docker_build` contexts, with their builds' filters: there, the
    /// filter decides in place of `.gitignore` (see [`rules`]).
    pub image_inputs: Vec<ImageInput>,
    /// The quiet window: a batch is sent once no event arrived for this long.
    pub debounce: Duration,
    /// The longest a batch is held while events keep coming.
    pub max_wait: Duration,
}

impl WatchConfig {
    /// Watches `root` with no extra paths or patterns, a 20 ms quiet window and
    /// batches held at most 2 s.
    pub fn new(root: impl Into<PathBuf>) -> WatchConfig {
        WatchConfig {
            root: root.into(),
            extra: Vec::new(),
            ignore: Vec::new(),
            image_inputs: Vec::new(),
            debounce: Duration::from_millis(20),
            max_wait: Duration::from_secs(2),
        }
    }
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// An inotify limit of the kernel is reached; the message says how to raise it.
    #[error("cannot watch the project's files: {0}")]
    Limit(LimitReached),
    /// A pattern of `WatchConfig::ignore` does not parse.
    #[error("invalid pattern {pattern:?} in watch_settings(ignore=...): {reason}")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The root folder is missing, not a folder, or cannot be watched.
    #[error("cannot watch the project folder {}: {reason}", .path.display())]
    Root {
        /// The root.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The operating system's file watcher could not be created.
    #[error("cannot start the file watcher: {0}")]
    Start(String),
}

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    control: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    dirs: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("watched_dirs", &self.watched_dirs())
            .finish()
    }
}

impl Watcher {
    /// Walks the root and the extra paths, adds the watches and starts
    /// reporting. The walk happens before this returns (call it from
    /// `spawn_blocking` in async code: a big tree takes a moment). Problems met
    /// on the way (an unreadable folder, a missing extra path) are already
    /// waiting in the receiver as [`WatchEvent::Problem`].
    pub fn start(
        config: WatchConfig,
    ) -> Result<(Watcher, UnboundedReceiver<WatchEvent>), WatchError> {
        let root = absolute(&config.root);
        match fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(WatchError::Root {
                    path: root,
                    reason: "it is not a folder".into(),
                })
            }
            Err(err) => {
                return Err(WatchError::Root {
                    path: root,
                    reason: err.to_string(),
                })
            }
        }
        let mut rules = Rules::new(&root, &config.ignore)
            .map_err(|(pattern, reason)| WatchError::BadPattern { pattern, reason })?;
        let inputs: Vec<ImageInput> = config
            .image_inputs
            .iter()
            .map(|input| ImageInput {
                dir: absolute(&input.dir),
                excludes: input.excludes.clone(),
            })
            .collect();
        rules.add_image_inputs(inputs);

        let (control, inbox) = mpsc::channel();
        let forward = control.clone();
        let notify = RecommendedWatcher::new(
            move |event| {
                let _ = forward.send(Msg::Event(event));
            },
            notify::Config::default(),
        )
        .map_err(|err| match limits::start_failure(err) {
            Ok(limit) => WatchError::Limit(limit),
            Err(message) => WatchError::Start(message),
        })?;

        let (out, receiver) = unbounded_channel();
        let dirs = Arc::new(AtomicUsize::new(0));
        let mut state = State {
            notify,
            rules,
            dirs: BTreeMap::new(),
            tops: BTreeMap::new(),
            extra_files: HashSet::new(),
            dir_count: dirs.clone(),
            out,
            batch: Batch::default(),
            debounce: config.debounce,
            max_wait: config.max_wait.max(config.debounce),
            limit_reported: false,
        };
        state.tops.insert(root.clone(), Scope::Tree);
        state
            .sync_tree(&root, false, false)
            .map_err(WatchError::Limit)?;
        if !state.dirs.contains_key(&root) {
            let reason = state
                .batch
                .problems
                .pop()
                .unwrap_or_else(|| "it vanished".into());
            return Err(WatchError::Root { path: root, reason });
        }
        for extra in &config.extra {
            state
                .watch_extra(&absolute(extra))
                .map_err(WatchError::Limit)?;
        }
        state.set_count();
        // Problems met while walking go out now, not with the first batch.
        let problems = std::mem::take(&mut state.batch.problems);
        for problem in problems.into_iter().chain(state.rules.take_problems()) {
            let _ = state.out.send(WatchEvent::Problem(problem));
        }

        let thread = std::thread::Builder::new()
            .name("loop-watch".into())
            .spawn(move || state.run(inbox))
            .map_err(|err| WatchError::Start(err.to_string()))?;
        Ok((
            Watcher {
                control,
                thread: Some(thread),
                dirs,
            },
            receiver,
        ))
    }

    /// How many folders hold a watch.
    pub fn watched_dirs(&self) -> usize {
        self.dirs.load(Ordering::SeqCst)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.control.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

enum Msg {
    Event(notify::Result<notify::Event>),
    Stop,
}

/// How a folder is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every kept entry is reported, and new subfolders are watched too.
    Tree,
    /// Only the extra files inside it are reported.
    Files,
}

/// How many changed paths make a batch a burst.
const BURST_FILES: usize = 100;
/// The quiet window of a burst.
const BURST_QUIET: Duration = Duration::from_millis(250);
/// The longest a burst is held while files keep changing.
const BURST_MAX_WAIT: Duration = Duration::from_secs(10);

/// What is waiting to be sent.
#[derive(Default)]
struct Batch {
    changes: BTreeSet<PathBuf>,
    problems: Vec<String>,
    /// Folders whose ignore files changed: walked again at flush.
    rescan: BTreeSet<PathBuf>,
    overflow: bool,
    /// When the first and the last event of the batch arrived.
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Batch {
    fn note(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the batch is due: after the quiet window, or `max_wait` after its
    /// first event, whichever comes first. `None` while nothing is waiting.
    ///
    /// A burst (at least [`BURST_FILES`] paths, such as a checkout) waits for a
    /// longer quiet window and up to [`BURST_MAX_WAIT`], so that a burst slowed
    /// down by a busy machine still comes out as one batch.
    fn deadline(&self, debounce: Duration, max_wait: Duration) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        let (quiet, cap) = if self.changes.len() >= BURST_FILES {
            (debounce.max(BURST_QUIET), max_wait.max(BURST_MAX_WAIT))
        } else {
            (debounce, max_wait)
        };
        Some((last + quiet).min(first + cap))
    }
}

/// Everything the watcher thread owns.
struct State {
    notify: RecommendedWatcher,
    rules: Rules,
    /// Every folder that holds a watch.
    dirs: BTreeMap<PathBuf, Scope>,
    /// The folders watched on request (the root, extra folders, the parents of
    /// extra files): their removal is a problem, as nothing watches them again.
    tops: BTreeMap<PathBuf, Scope>,
    extra_files: HashSet<PathBuf>,
    dir_count: Arc<AtomicUsize>,
    out: UnboundedSender<WatchEvent>,
    batch: Batch,
    debounce: Duration,
    max_wait: Duration,
    limit_reported: bool,
}

impl State {
    fn run(mut self, inbox: mpsc::Receiver<Msg>) {
        loop {
            let msg = match self.batch.deadline(self.debounce, self.max_wait) {
                None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(due) => inbox.recv_timeout(due.saturating_duration_since(Instant::now())),
            };
            match msg {
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Msg::Event(event)) => {
                    if self.handle(event) {
                        self.batch.note(Instant::now());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let due = self.batch.deadline(self.debounce, self.max_wait);
            if due.is_some_and(|due| Instant::now() >= due) {
                self.flush();
                if self.out.is_closed() {
                    return;
                }
            }
        }
    }

    /// Takes in one notify event; returns whether it belongs to the batch.
    fn handle(&mut self, event: notify::Result<notify::Event>) -> bool {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                self.batch
                    .problems
                    .push(format!("the file watcher reported an error: {err}"));
                return true;
            }
        };
        if event.need_rescan() {
            self.batch.overflow = true;
            return true;
        }
        // Whether the paths may be folders that went away, folders that just
        // appeared, and whether they are folders (when the event says so).
        let (removed, created, is_dir) = match event.kind {
            EventKind::Create(CreateKind::File) => (false, false, Some(false)),
            EventKind::Create(CreateKind::Folder) => (false, true, Some(true)),
            EventKind::Create(_) => (false, true, None),
            EventKind::Remove(RemoveKind::File) => (true, false, Some(false)),
            EventKind::Remove(RemoveKind::Folder) => (true, false, Some(true)),
            EventKind::Remove(_) => (true, false, None),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => (true, false, None),
            // notify also sends the two halves, as `From` and `To`.
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => return false,
            EventKind::Modify(ModifyKind::Name(_)) => (false, true, None),
            EventKind::Modify(_) => (false, false, None),
            EventKind::Any => (true, true, None),
            // Opening, reading and closing change nothing.
            EventKind::Access(_) | EventKind::Other => return false,
        };
        let mut relevant = false;
        for path in event.paths {
            // The common case in a burst: one more write to a file already in the batch.
            if !removed && !created && self.batch.changes.contains(&path) {
                relevant = true;
                continue;
            }
            let was_watched = removed && self.dirs.contains_key(&path);
            if was_watched {
                self.forget_dir(&path);
            }
            let is_dir = is_dir.unwrap_or_else(|| was_watched || is_real_dir(&path));
            if !was_watched && !self.is_reported(&path, is_dir) {
                continue;
            }
            relevant = true;
            if created && is_dir && !self.dirs.contains_key(&path) {
                if let Err(limit) = self.sync_tree(&path, true, false) {
                    self.report_limit(limit);
                }
            }
            if let Some(parent) = path.parent() {
                if path
                    .file_name()
                    .is_some_and(|n| IGNORE_FILES.iter().any(|f| n == *f))
                {
                    self.rules.forget(parent);
                    if self.dirs.get(parent) == Some(&Scope::Tree) {
                        self.batch.rescan.insert(parent.to_path_buf());
                    }
                }
            }
            self.batch.changes.insert(path);
        }
        self.set_count();
        relevant
    }

    /// Whether a change to `path`, an entry of a watched folder, is reported.
    fn is_reported(&mut self, path: &Path, is_dir: bool) -> bool {
        if self.extra_files.contains(path) {
            return true;
        }
        match path.parent().and_then(|parent| self.dirs.get(parent)) {
            Some(Scope::Tree) => !self.rules.is_ignored(path, is_dir),
            _ => false,
        }
    }

    /// Sends the batch.
    fn flush(&mut self) {
        if self.batch.overflow {
            self.rescan_everything();
        } else {
            for dir in std::mem::take(&mut self.batch.rescan) {
                if self.dirs.get(&dir) == Some(&Scope::Tree) {
                    if let Err(limit) = self.sync_tree(&dir, false, false) {
                        self.report_limit(limit);
                    }
                }
            }
        }
        self.set_count();
        let batch = std::mem::take(&mut self.batch);
        let problems = batch.problems.into_iter().chain(self.rules.take_problems());
        for problem in problems {
            let _ = self.out.send(WatchEvent::Problem(problem));
        }
        if batch.overflow {
            let _ = self.out.send(WatchEvent::Overflow);
        } else if !batch.changes.is_empty() {
            let _ = self
                .out
                .send(WatchEvent::Changes(batch.changes.into_iter().collect()));
        }
    }

    /// After an overflow, events were lost: walk every top again and renew
    /// every watch (a folder may have been replaced by another one).
    fn rescan_everything(&mut self) {
        self.rules.forget(Path::new("/"));
        let tops: Vec<(PathBuf, Scope)> = self
            .tops
            .iter()
            .map(|(top, scope)| (top.clone(), *scope))
            .collect();
        for (top, scope) in tops {
            if !self.dirs.contains_key(&top) {
                continue;
            }
            if !is_real_dir(&top) {
                self.forget_dir(&top);
                continue;
            }
            let result = match scope {
                Scope::Tree => self.sync_tree(&top, false, true),
                Scope::Files => self.add_watch(&top, Scope::Files, true).map(|_| ()),
            };
            if let Err(limit) = result {
                self.report_limit(limit);
            }
        }
    }

    /// Watches `top` and every kept folder below it, and drops the watches of
    /// folders below it that are gone or now ignored. With `report`, the entries
    /// of newly watched folders join the batch; with `renew`, folders already
    /// watched are watched again.
    fn sync_tree(&mut self, top: &Path, report: bool, renew: bool) -> Result<(), LimitReached> {
        let mut seen = HashSet::new();
        let mut stack = vec![top.to_path_buf()];
        while let Some(dir) = stack.pop() {
            // Watch first, then list: whatever is created in between is seen twice
            // at worst, never missed.
            let Some(new) = self.add_watch(&dir, Scope::Tree, renew)? else {
                continue;
            };
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) => {
                    if err.kind() != io::ErrorKind::NotFound {
                        self.batch.problems.push(format!(
                            "cannot read folder {}: {err}; changes inside it may be missed",
                            dir.display()
                        ));
                    }
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if self.rules.is_ignored(&path, is_dir) {
                    continue;
                }
                if report && new {
                    self.batch.changes.insert(path.clone());
                }
                if is_dir {
                    stack.push(path);
                }
            }
            seen.insert(dir);
        }
        let stale: Vec<PathBuf> = descendants(&self.dirs, top)
            .filter(|(dir, scope)| **scope == Scope::Tree && !seen.contains(*dir))
            .map(|(dir, _)| dir.clone())
            .filter(|dir| !self.inside_other_top(dir, top))
            .collect();
        for dir in stale {
            if self.tops.get(&dir) == Some(&Scope::Files) {
                self.dirs.insert(dir, Scope::Files);
            } else {
                self.dirs.remove(&dir);
                let _ = self.notify.unwatch(&dir);
            }
        }
        Ok(())
    }

    /// Whether `dir` belongs to another watched tree nested in `top`'s.
    fn inside_other_top(&self, dir: &Path, top: &Path) -> bool {
        self.tops.iter().any(|(other, scope)| {
            *scope == Scope::Tree
                && other != top
                && other.starts_with(top)
                && dir.starts_with(other)
        })
    }

    /// Adds a watch on `dir`. Returns whether it is new, `None` when the folder
    /// cannot be watched (vanished, or a problem was recorded), and the error
    /// when a kernel limit is reached.
    fn add_watch(
        &mut self,
        dir: &Path,
        scope: Scope,
        renew: bool,
    ) -> Result<Option<bool>, LimitReached> {
        let known = self.dirs.get(dir).copied();
        if known.is_none() || renew {
            if let Err(err) = self.notify.watch(dir, RecursiveMode::NonRecursive) {
                match limits::watch_failure(err) {
                    WatchFailure::Vanished => return Ok(None),
                    WatchFailure::Limit(limit) => return Err(limit),
                    WatchFailure::Other(reason) => {
                        self.batch.problems.push(format!(
                            "cannot watch folder {}: {reason}; changes inside it are not seen",
                            dir.display()
                        ));
                        return Ok(None);
                    }
                }
            }
        }
        let scope = if known == Some(Scope::Tree) {
            Scope::Tree
        } else {
            scope
        };
        self.dirs.insert(dir.to_path_buf(), scope);
        Ok(Some(known.is_none()))
    }

    /// Watches an extra file or folder.
    fn watch_extra(&mut self, path: &Path) -> Result<(), LimitReached> {
        if path.is_dir() {
            self.tops.insert(path.to_path_buf(), Scope::Tree);
            self.rules.add_top(path);
            return self.sync_tree(path, false, false);
        }
        // A file, or a path that does not exist yet: watch its folder.
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        if !parent.is_dir() {
            self.batch.problems.push(format!(
                "cannot watch {}: its folder does not exist",
                path.display()
            ));
            return Ok(());
        }
        self.extra_files.insert(path.to_path_buf());
        self.tops
            .entry(parent.to_path_buf())
            .or_insert(Scope::Files);
        self.add_watch(parent, Scope::Files, false).map(|_| ())
    }

    /// Forgets a folder that was removed or moved away, and the folders below it.
    fn forget_dir(&mut self, dir: &Path) {
        let gone: Vec<PathBuf> = descendants(&self.dirs, dir)
            .map(|(d, _)| d.clone())
            .collect();
        for gone in gone {
            self.dirs.remove(&gone);
            // notify drops the watch itself on a deletion, not when a top is moved.
            let _ = self.notify.unwatch(&gone);
            if self.tops.contains_key(&gone) {
                self.batch.problems.push(format!(
                    "watched folder {} was removed; changes inside it are no longer seen \
                     (restart loop once it is back)",
                    gone.display()
                ));
            }
        }
        self.rules.forget(dir);
    }

    fn report_limit(&mut self, limit: LimitReached) {
        if !self.limit_reported {
            self.limit_reported = true;
            self.batch.problems.push(format!(
                "some new folders are not watched: {limit}\nThen restart loop."
            ));
        }
    }

    fn set_count(&self) {
        self.dir_count.store(self.dirs.len(), Ordering::SeqCst);
    }
}

/// `dir` and the entries below it, in a map sorted by path.
fn descendants<'a, V>(
    map: &'a BTreeMap<PathBuf, V>,
    dir: &'a Path,
) -> impl Iterator<Item = (&'a PathBuf, &'a V)> + 'a {
    // Paths compare component by component, so a folder's descendants follow it.
    map.range(dir.to_path_buf()..)
        .take_while(move |(path, _)| path.starts_with(dir))
}

/// Whether `path` is a folder, not following symbolic links.
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn a_batch_is_due_after_the_quiet_window_or_the_max_wait() {
        let debounce = Duration::from_millis(20);
        let max_wait = Duration::from_secs(2);
        let mut batch = Batch::default();
        assert_eq!(batch.deadline(debounce, max_wait), None);
        let start = Instant::now();
        batch.note(start);
        assert_eq!(batch.deadline(debounce, max_wait), Some(start + debounce));
        // Events every 10 ms keep the batch open...
        let mut now = start;
        for _ in 0..150 {
            now += Duration::from_millis(10);
            batch.note(now);
            assert!(batch.deadline(debounce, max_wait).unwrap() > now);
        }
        assert_eq!(batch.deadline(debounce, max_wait), Some(now + debounce));
        // ...but never longer than max_wait after the first one.
        for _ in 0..100 {
            now += Duration::from_millis(10);
            batch.note(now);
        }
        assert_eq!(batch.deadline(debounce, max_wait), Some(start + max_wait));
        // A burst of many files waits for a longer quiet window.
        let mut burst = Batch::default();
        burst.note(start);
        for i in 0..BURST_FILES {
            burst.changes.insert(PathBuf::from(format!("f{i}")));
        }
        assert_eq!(
            burst.deadline(debounce, max_wait),
            Some(start + BURST_QUIET)
        );
    }
}
