//! Declared outputs of a local resource (`local_resource(..., outputs=[...])`):
//! after each successful run their contents are hashed (blake3, as images are),
//! and a run whose outputs hash the same as the previous success does not re-run
//! data-downstreams (early cut-off).
//!
//! Entries are root-relative paths or globs, like `deps`: a plain path names a
//! file or a folder (everything under it); a glob is matched under its literal
//! leading folder. Outputs are usually gitignored build products, so no ignore
//! rules apply. The last hash is kept in `.loop/cache/outputs/NAME`.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use loop_lang::model::Resource;

/// The outputs of one resource, and where their last hash is kept.
pub struct Outputs {
    root: PathBuf,
    entries: Vec<String>,
    record: PathBuf,
}

impl Outputs {
    /// The outputs `resource` declares (none: every run counts as a change).
    pub fn new(root: &Path, name: &str, resource: &Resource) -> Outputs {
        Outputs {
            root: root.to_owned(),
            entries: resource.outputs.clone(),
            record: root
                .join(".loop")
                .join("cache")
                .join("outputs")
                .join(crate::run::logs::file_name(name)),
        }
    }

    /// Hashes the outputs after a successful run and records the hash; true
    /// unless outputs are declared and hash the same as after the previous run.
    pub async fn changed(self) -> bool {
        if self.entries.is_empty() {
            return true;
        }
        tokio::task::spawn_blocking(move || {
            let hash = hash_outputs(&self.root, &self.entries).to_hex().to_string();
            let previous = std::fs::read_to_string(&self.record).ok();
            if let Some(parent) = self.record.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::write(&self.record, &hash);
            previous.as_deref() != Some(hash.as_str())
        })
        .await
        .unwrap_or(true)
    }
}

/// One hash over every file the entries name: each file's root-relative path,
/// then its length and contents, in path order. Missing entries hash as absent.
pub fn hash_outputs(root: &Path, entries: &[String]) -> blake3::Hash {
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = root.join(entry);
        match glob_split(entry) {
            None if path.is_dir() => walk(&path, None, root, &mut files),
            None if path.is_file() => files.push(path),
            None => {}
            Some((base, matcher)) => walk(&root.join(base), Some(&matcher), root, &mut files),
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
    hasher.finalize()
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

fn walk(dir: &Path, matcher: Option<&GlobMatcher>, root: &Path, out: &mut Vec<PathBuf>) {
    let walker = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
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
        let first = hash_outputs(root, &entries);
        std::fs::write(root.join("gen/notes.txt"), "changed").unwrap();
        assert_eq!(hash_outputs(root, &entries), first, "unmatched file");
        std::fs::write(root.join("gen/sub/b.rs"), "B").unwrap();
        let second = hash_outputs(root, &entries);
        assert_ne!(second, first, "changed contents");
        std::fs::rename(root.join("gen/sub/b.rs"), root.join("gen/sub/c.rs")).unwrap();
        assert_ne!(hash_outputs(root, &entries), second, "renamed file");
        let folder = vec!["gen".to_owned()];
        let before = hash_outputs(root, &folder);
        std::fs::write(root.join("gen/notes.txt"), "again").unwrap();
        assert_ne!(
            hash_outputs(root, &folder),
            before,
            "a folder covers every file"
        );
    }
}
