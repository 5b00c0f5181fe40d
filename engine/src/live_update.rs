//! Live update: for a batch of changed files of one resource or image, decide
//! between a sync (copy the files into the running target, run the `run()` steps,
//! keep the process running) and a full update; then apply a sync to a target.
//!
//! [`plan`] is pure path logic plus `stat`s of the changed files, independent of
//! the target: a [`SyncPlan`] lists a whole batch (copies, deletes, commands) so a
//! target can apply it in one operation (a folder copy here, one tar stream over
//! exec for a container). [`SyncTarget`] is where a plan goes; [`LocalTarget`] is a
//! folder on this machine.
//!
//! Semantics follow Tilt: a changed file is covered by the first `sync(local,
//! remote)` whose `local` is the file itself or a folder holding it, and goes to
//! `remote` joined with its path below `local` (`remote` itself when `local` is the
//! file). A change matching `fall_back_on`, or covered by no sync, means a full
//! update. `run(cmd, trigger)` runs when it has no trigger or a changed file
//! matches one.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use loop_lang::model::{Cmd, LiveUpdateStep};

mod local;

pub(crate) use local::pump_lines;

pub use local::LocalTarget;

/// What to do about a batch of changed files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Rebuild / full update, with the reason to show the user
    /// (e.g. "src/requirements.txt matches fall_back_on").
    Full { reason: String },
    /// Nothing in the batch concerns this live update (an empty batch, or only
    /// folders with no files in them).
    Nothing,
    /// Copy files into the running target and run commands.
    Sync(SyncPlan),
}

/// One batch of a live update, independent of the target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Files to copy: absolute local source -> destination path in the target (for
    /// local targets an absolute path, for containers a container path). Only
    /// files, never folders; sorted by source.
    pub copies: Vec<(PathBuf, String)>,
    /// Destination paths to delete (their sources no longer exist locally): files
    /// or whole folders, the target removes them recursively. Sorted.
    pub deletes: Vec<String>,
    /// The `run()` commands whose trigger matched (or that have no trigger), in order.
    pub runs: Vec<Cmd>,
    /// `restart_container()` was given: restart the target's process after syncing.
    pub restart: bool,
    /// For Kubernetes: the image whose running containers get it.
    pub target: Option<String>,
}

/// What [`SyncTarget::apply`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub copied: usize,
    pub deleted: usize,
    pub ran: usize,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A file could not be copied or deleted.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: io::Error,
    },
    /// A `run()` command could not be started.
    #[error("cannot start `{cmd}`: {source}")]
    Spawn { cmd: String, source: io::Error },
    /// A `run()` command failed; the rest of the batch did not run.
    #[error("{}", describe_failure(cmd, *code, output))]
    Failed {
        cmd: String,
        /// The exit code; `None` when a signal ended it.
        code: Option<i32>,
        /// Its last output lines (stdout and stderr), oldest first.
        output: Vec<String>,
    },
    /// A failure specific to the target (e.g. the container is gone).
    #[error("{0}")]
    Target(String),
}

fn describe_failure(cmd: &str, code: Option<i32>, output: &[String]) -> String {
    let text = match code {
        Some(code) => format!("`{cmd}` failed with exit code {code}"),
        None => format!("`{cmd}` was killed by a signal"),
    };
    crate::report::with_output(text, "; its last output:", output, "")
}

/// Where synced files go.
pub trait SyncTarget {
    /// Deletes and copies the files of one batch, then runs its commands in order;
    /// returns what it did, or an error naming what failed (for a command: which
    /// one, its exit code and its last output lines). Restarting is the caller's
    /// job ([`SyncPlan::restart`]).
    fn apply(
        &self,
        plan: &SyncPlan,
    ) -> impl std::future::Future<Output = Result<SyncReport, SyncError>> + Send;
}

/// Whether the steps hold at least one `sync()`, i.e. live update is possible.
pub fn has_live_update(steps: &[LiveUpdateStep]) -> bool {
    steps
        .iter()
        .any(|s| matches!(s, LiveUpdateStep::Sync { .. }))
}

/// Decides what to do about `changed` (absolute paths, existing or deleted).
///
/// `root` is the project root: paths in `steps` (sync sources, run triggers,
/// fall_back_on paths) are root-relative with `/`, or absolute. `remote_base`
/// resolves relative sync destinations (for local resources: the resource's
/// folder); they may not leave it.
pub fn plan(
    steps: &[LiveUpdateStep],
    root: &Path,
    remote_base: &Path,
    changed: &[PathBuf],
) -> Plan {
    let mut changed: Vec<PathBuf> = changed.iter().map(|p| normalize(&root.join(p))).collect();
    changed.sort();
    changed.dedup();
    if changed.is_empty() {
        return Plan::Nothing;
    }
    if !has_live_update(steps) {
        return Plan::Full {
            reason: "there is no live update (no sync() step)".to_owned(),
        };
    }
    // Existing folders stand for the files in them; missing paths were deleted.
    let mut files = Vec::new();
    for path in &changed {
        let unreadable = |e: io::Error| Plan::Full {
            reason: format!("cannot read {}: {e}", display(root, path)),
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => match files_under(path) {
                Ok(inner) => files.extend(inner.into_iter().map(|f| (f, true))),
                Err(e) => return unreadable(e),
            },
            Ok(_) => files.push((path.clone(), true)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => files.push((path.clone(), false)),
            Err(e) => return unreadable(e),
        }
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Plan::Nothing;
    }

    let fall_back: Vec<Pattern> = steps
        .iter()
        .filter_map(|s| match s {
            LiveUpdateStep::FallBackOn { paths } => Some(paths),
            _ => None,
        })
        .flatten()
        .map(|p| Pattern::new(root, p))
        .collect();
    if let Some((file, _)) = files
        .iter()
        .find(|(f, _)| fall_back.iter().any(|p| p.matches(root, f)))
    {
        return Plan::Full {
            reason: format!("{} matches fall_back_on", display(root, file)),
        };
    }

    let syncs = Sync::all(steps, root);
    let mut copies = Vec::new();
    let mut deletes = Vec::new();
    for (file, exists) in &files {
        let Some(sync) = syncs.iter().find(|s| file.starts_with(&s.local)) else {
            return Plan::Full {
                reason: format!("{} is not covered by any sync()", display(root, file)),
            };
        };
        if !exists && *file == sync.local {
            return Plan::Full {
                reason: format!("{} (a sync() source) was deleted", display(root, file)),
            };
        }
        match sync.destination(remote_base, file) {
            Ok(dest) if *exists => copies.push((file.clone(), dest)),
            Ok(dest) => deletes.push(dest),
            Err(reason) => return Plan::Full { reason },
        }
    }
    deletes.sort();
    deletes.dedup();

    let runs = steps
        .iter()
        .filter_map(|s| match s {
            LiveUpdateStep::Run { cmd, trigger } => {
                let patterns: Vec<Pattern> =
                    trigger.iter().map(|t| Pattern::new(root, t)).collect();
                let fires = patterns.is_empty()
                    || files
                        .iter()
                        .any(|(f, _)| patterns.iter().any(|p| p.matches(root, f)));
                fires.then(|| cmd.clone())
            }
            _ => None,
        })
        .collect();
    Plan::Sync(SyncPlan {
        copies,
        deletes,
        runs,
        restart: steps.contains(&LiveUpdateStep::RestartContainer),
        target: None,
    })
}

/// The plan for `initial_sync()`: every file currently under each sync source (a
/// missing source is skipped), and every `run()` step regardless of its trigger.
/// `restart` is false: the target is just starting.
pub fn initial_plan(
    steps: &[LiveUpdateStep],
    root: &Path,
    remote_base: &Path,
) -> io::Result<SyncPlan> {
    let mut copies: BTreeMap<PathBuf, String> = BTreeMap::new();
    for sync in Sync::all(steps, root) {
        let files = match std::fs::metadata(&sync.local) {
            Ok(meta) if meta.is_dir() => files_under(&sync.local)?,
            Ok(_) => vec![sync.local.clone()],
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for file in files {
            if let Entry::Vacant(entry) = copies.entry(file) {
                let dest = sync
                    .destination(remote_base, entry.key())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                entry.insert(dest);
            }
        }
    }
    let runs = steps
        .iter()
        .filter_map(|s| match s {
            LiveUpdateStep::Run { cmd, .. } => Some(cmd.clone()),
            _ => None,
        })
        .collect();
    Ok(SyncPlan {
        copies: copies.into_iter().collect(),
        deletes: Vec::new(),
        runs,
        restart: false,
        target: None,
    })
}

/// A `sync()` step with its source resolved.
struct Sync<'a> {
    /// Absolute, normalized.
    local: PathBuf,
    remote: &'a str,
}

impl<'a> Sync<'a> {
    fn all(steps: &'a [LiveUpdateStep], root: &Path) -> Vec<Sync<'a>> {
        steps
            .iter()
            .filter_map(|s| match s {
                LiveUpdateStep::Sync { local, remote } => Some(Sync {
                    local: normalize(&root.join(local)),
                    remote,
                }),
                _ => None,
            })
            .collect()
    }

    /// Where `file` (under `self.local`) goes in the target. A relative `remote`
    /// is resolved against `remote_base` and may not leave it.
    fn destination(&self, remote_base: &Path, file: &Path) -> Result<String, String> {
        let base = normalize(remote_base);
        let remote = normalize(&base.join(self.remote));
        if !Path::new(self.remote).is_absolute() && !remote.starts_with(&base) {
            return Err(format!(
                "sync() destination `{}` leaves {}",
                self.remote,
                base.display()
            ));
        }
        let below = file
            .strip_prefix(&self.local)
            .map_err(|_| format!("{} is not under {}", file.display(), self.local.display()))?;
        if !below
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(format!("{} cannot be synced", file.display()));
        }
        let dest = if below.as_os_str().is_empty() {
            remote
        } else {
            remote.join(below)
        };
        dest.to_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{} is not valid UTF-8 and cannot be synced", file.display()))
    }
}

/// A trigger or fall_back_on path: matches a path equal to it or inside it; with
/// `*`, `?`, `[..]` or `{..}`, a glob (`*` does not cross `/`) that matches the path
/// or one of its folders.
enum Pattern {
    Path(PathBuf),
    /// A glob over root-relative paths (`relative`) or absolute ones.
    Glob {
        glob: GlobMatcher,
        relative: bool,
    },
}

impl Pattern {
    fn new(root: &Path, text: &str) -> Pattern {
        if text.contains(['*', '?', '[', '{']) {
            let relative = !Path::new(text).is_absolute();
            let text = text.strip_prefix("./").unwrap_or(text);
            if let Ok(glob) = GlobBuilder::new(text).literal_separator(true).build() {
                return Pattern::Glob {
                    glob: glob.compile_matcher(),
                    relative,
                };
            }
        }
        Pattern::Path(normalize(&root.join(text)))
    }

    fn matches(&self, root: &Path, file: &Path) -> bool {
        match self {
            Pattern::Path(path) => file.starts_with(path),
            Pattern::Glob { glob, relative } => {
                let file = if *relative {
                    match file.strip_prefix(root) {
                        Ok(rel) => rel,
                        Err(_) => return false,
                    }
                } else {
                    file
                };
                file.ancestors()
                    .take_while(|p| !p.as_os_str().is_empty())
                    .any(|p| glob.is_match(p))
            }
        }
    }
}

/// Every file below `dir`, sorted; symbolic links to folders are not followed.
fn files_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `path` relative to the root with `/`, or absolute outside it.
fn display(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
        _ => path.display().to_string(),
    }
}

/// Removes `.` and resolves `..` lexically.
fn normalize(path: &Path) -> PathBuf {
    loop_lang::project::normalize(path)
}

#[cfg(test)]
mod tests;
