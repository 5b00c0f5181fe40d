//! Build steps: local resources that declare `outputs=[...]`.
//!
//! After each successful run the outputs are hashed (blake3, as images are); a
//! run whose outputs hash the same as the previous success does not re-run
//! data-downstreams (early cut-off). The step also records a fingerprint of its
//! inputs (its `cmd`, `dir`, `env` and the files its `deps` name) taken when the
//! run started, including the outputs of its data-upstreams (what it consumes):
//! on the first run of a later session, a step whose inputs and outputs both
//! match its last success is skipped (a warm start). A step with a
//! data-upstream that declares no outputs consumes something unknown and is
//! never skipped.
//!
//! Entries are root-relative paths or globs, like `deps`: a plain path names a
//! file or a folder (everything under it); a glob is matched under its literal
//! leading folder. Outputs are usually gitignored build products, so no ignore
//! rules apply to them; inputs skip what `.gitignore` excludes, as the watcher
//! does. The record is `.loop/cache/steps/NAME`: the inputs and outputs hashes.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use loop_lang::model::{Manifest, Resource};

use crate::watch::ALWAYS_SKIPPED;

/// A resource that declares outputs, and where its record is kept.
pub struct BuildStep {
    root: PathBuf,
    resource: Resource,
    /// The outputs of its data-upstreams; `None` when one declares none.
    consumed: Option<Vec<String>>,
    record: PathBuf,
}

/// The record of a step's last success.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    inputs: String,
    outputs: String,
}

impl BuildStep {
    /// The build step of `resource` in `manifest`, if it declares outputs.
    pub fn of(root: &Path, resource: &Resource, manifest: &Manifest) -> Option<BuildStep> {
        if resource.outputs.is_empty() {
            return None;
        }
        let consumed = resource
            .data_deps
            .iter()
            .map(|up| match manifest.resource(up) {
                Some(up) if !up.outputs.is_empty() => Some(up.outputs.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|lists| lists.concat());
        Some(BuildStep {
            root: root.to_owned(),
            resource: resource.clone(),
            consumed,
            record: root
                .join(".loop")
                .join("cache")
                .join("steps")
                .join(crate::run::logs::file_name(&resource.name)),
        })
    }

    /// A fingerprint of what the run depends on (blocking: reads the deps).
    pub fn inputs(&self) -> String {
        let r = &self.resource;
        let mut hasher = blake3::Hasher::new();
        for part in [
            r.cmd.as_ref().map(|c| format!("{c:?}")).unwrap_or_default(),
            r.cmd_dir.clone(),
            format!("{:?}", r.env),
        ] {
            hasher.update(part.as_bytes());
            hasher.update(&[0]);
        }
        hasher.update(hash_files(&self.root, &r.deps, true).as_bytes());
        if let Some(consumed) = &self.consumed {
            hasher.update(hash_files(&self.root, consumed, false).as_bytes());
        }
        hasher.finalize().to_hex().to_string()
    }

    /// Whether the last success had these inputs and its outputs are still
    /// there, unchanged: then the run can be skipped.
    pub fn is_warm(&self, inputs: &str) -> bool {
        self.consumed.is_some()
            && self
                .read()
                .is_some_and(|record| record.inputs == inputs && record.outputs == self.outputs())
    }

    /// Records a success whose run started with `inputs`; returns whether the
    /// outputs changed since the previous success.
    pub fn record_success(&self, inputs: String) -> bool {
        let outputs = self.outputs();
        let changed = self.read().is_none_or(|r| r.outputs != outputs);
        if let Some(parent) = self.record.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&self.record, format!("{inputs}\n{outputs}\n"));
        changed
    }

    fn outputs(&self) -> String {
        hash_files(&self.root, &self.resource.outputs, false)
    }

    fn read(&self) -> Option<Record> {
        let text = std::fs::read_to_string(&self.record).ok()?;
        let mut lines = text.lines();
        Some(Record {
            inputs: lines.next()?.to_owned(),
            outputs: lines.next()?.to_owned(),
        })
    }
}

/// One hash (hex) over every file the entries name: each file's root-relative
/// path, then its length and contents, in path order. Missing entries hash as
/// absent. `gitignore`: skip what `.gitignore` files exclude.
pub fn hash_files(root: &Path, entries: &[String], gitignore: bool) -> String {
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = root.join(entry);
        match glob_split(entry) {
            None if path.is_dir() => walk(&path, None, root, gitignore, &mut files),
            None if path.is_file() => files.push(path),
            None => {}
            Some((base, matcher)) => walk(
                &root.join(base),
                Some(&matcher),
                root,
                gitignore,
                &mut files,
            ),
        }
    }
    files.sort();
    files.dedup();
    let mut hasher = blake3::Hasher::new();
    for file in &files {
        let rel = file.strip_prefix(root).unwrap_or(file);
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update(&[0]);
        match std::fs::File::open(file) {
            Ok(mut f) => {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                hasher.update(&len.to_le_bytes());
                let _ = std::io::copy(&mut f, &mut hasher);
            }
            Err(_) => {
                hasher.update(b"unreadable");
            }
        }
    }
    hasher.finalize().to_hex().to_string()
}

/// A glob entry's literal leading folder and matcher (on root-relative paths);
/// `None` for a plain path.
fn glob_split(entry: &str) -> Option<(&str, GlobMatcher)> {
    let i = entry.find(['*', '?', '[', '{'])?;
    let base = entry[..i].rsplit_once('/').map_or("", |(b, _)| b);
    let glob = GlobBuilder::new(entry)
        .literal_separator(true)
        .build()
        .ok()?
        .compile_matcher();
    Some((base, glob))
}

fn walk(
    dir: &Path,
    matcher: Option<&GlobMatcher>,
    root: &Path,
    gitignore: bool,
    out: &mut Vec<PathBuf>,
) {
    let walker = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .git_ignore(gitignore)
        .require_git(false)
        .filter_entry(|e| !ALWAYS_SKIPPED.iter().any(|s| e.file_name() == *s))
        .follow_links(false)
        .build();
    for entry in walker.flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.into_path();
        let keep = matcher.is_none_or(|m| path.strip_prefix(root).is_ok_and(|rel| m.is_match(rel)));
        if keep {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_contents_and_names_of_matched_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("gen/sub")).unwrap();
        std::fs::write(root.join("gen/a.rs"), "a").unwrap();
        std::fs::write(root.join("gen/sub/b.rs"), "b").unwrap();
        std::fs::write(root.join("gen/notes.txt"), "n").unwrap();
        let entries = vec!["gen/**/*.rs".to_owned()];
        let first = hash_files(root, &entries, false);
        std::fs::write(root.join("gen/notes.txt"), "changed").unwrap();
        assert_eq!(hash_files(root, &entries, false), first, "unmatched file");
        std::fs::write(root.join("gen/sub/b.rs"), "B").unwrap();
        let second = hash_files(root, &entries, false);
        assert_ne!(second, first, "changed contents");
        std::fs::rename(root.join("gen/sub/b.rs"), root.join("gen/sub/c.rs")).unwrap();
        assert_ne!(hash_files(root, &entries, false), second, "renamed file");
        let folder = vec!["gen".to_owned()];
        let before = hash_files(root, &folder, false);
        std::fs::write(root.join("gen/notes.txt"), "again").unwrap();
        assert_ne!(
            hash_files(root, &folder, false),
            before,
            "a folder covers every file"
        );
    }
}
