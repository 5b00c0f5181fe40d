//! The record of built images, kept in `<root>/.loop/images.json` so that an
//! unchanged image is not rebuilt, also after `loop` restarts.
//!
//! The file maps each image ref to its last successful build:
//! `{"app": {"hash": "…", "built_ref": "app:loop-…", "built_at": "2025-…Z", …}}`.
//! A missing file is an empty record; an unreadable or corrupt one is too, with a
//! warning. Saving writes a temporary file beside it and renames it over, so a
//! crash never leaves a half-written record.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The last successful build of one image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The content hash of the inputs it was built from.
    pub hash: String,
    /// The ref it was built as (`name:tag`), which workloads are deployed with.
    pub built_ref: String,
    /// When it was built (RFC 3339, UTC).
    pub built_at: String,
    /// `custom_build(skips_local_docker=...)`, as declared.
    #[serde(default)]
    pub skips_local_docker: bool,
    /// `custom_build(disable_push=...)`, as declared.
    #[serde(default)]
    pub disable_push: bool,
    /// Where the image was delivered (`host/repo:tag` pushed, or the kind/k3d
    /// cluster it was loaded into, with the ref), so that it is not done again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_to: Option<String>,
    /// The ref pods run after that delivery (`repo@sha256:…` once pushed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_ref: Option<String>,
}

impl Entry {
    /// An entry for a build that finished now.
    pub fn now(hash: &str, built_ref: &str) -> Entry {
        Entry {
            hash: hash.to_owned(),
            built_ref: built_ref.to_owned(),
            built_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            skips_local_docker: false,
            disable_push: false,
            delivered_to: None,
            deploy_ref: None,
        }
    }
}

/// The record of built images of one project; shareable between concurrent builds.
#[derive(Debug)]
pub struct Record {
    path: PathBuf,
    images: Mutex<BTreeMap<String, Entry>>,
}

/// Distinguishes the temporary files of concurrent saves.
static SAVES: AtomicU64 = AtomicU64::new(0);

impl Record {
    /// Where the record of the project at `root` lives.
    pub fn path_in(root: &Path) -> PathBuf {
        root.join(".loop").join("images.json")
    }

    /// An empty record that will be saved under `root`.
    pub fn empty(root: &Path) -> Record {
        Record {
            path: Record::path_in(root),
            images: Mutex::new(BTreeMap::new()),
        }
    }

    /// Loads the record of the project at `root`. A missing file gives an empty
    /// record; an unreadable or corrupt one gives an empty record and a call to
    /// `warn` saying why (every image then builds once more).
    pub fn load(root: &Path, warn: &dyn Fn(&str)) -> Record {
        let record = Record::empty(root);
        let text = match fs::read_to_string(&record.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return record,
            Err(e) => {
                warn(&format!(
                    "cannot read the image record {}: {e}; every image will be rebuilt",
                    record.path.display()
                ));
                return record;
            }
        };
        match serde_json::from_str::<BTreeMap<String, Entry>>(&text) {
            Ok(images) => Record {
                images: Mutex::new(images),
                ..record
            },
            Err(e) => {
                warn(&format!(
                    "the image record {} is corrupt ({e}); ignoring it, every image will be rebuilt",
                    record.path.display()
                ));
                record
            }
        }
    }

    /// The file this record is saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last successful build of `image_ref`, if any.
    pub fn get(&self, image_ref: &str) -> Option<Entry> {
        self.lock().get(image_ref).cloned()
    }

    /// Records a successful build of `image_ref` and saves the record.
    pub fn insert(&self, image_ref: &str, entry: Entry) -> io::Result<()> {
        let mut images = self.lock();
        images.insert(image_ref.to_owned(), entry);
        // Saved under the lock, so concurrent saves land in order.
        self.write(&images)
    }

    /// Forgets `image_ref` (the next build of it runs) and saves the record.
    pub fn remove(&self, image_ref: &str) -> io::Result<()> {
        let mut images = self.lock();
        if images.remove(image_ref).is_some() {
            self.write(&images)?;
        }
        Ok(())
    }

    /// Saves the record atomically: a temporary file, then a rename.
    pub fn save(&self) -> io::Result<()> {
        let images = self.lock();
        self.write(&images)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.images.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, images: &BTreeMap<String, Entry>) -> io::Result<()> {
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("cannot save the image record {}: {e}", self.path.display()),
            )
        };
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(context)?;
        }
        let text = serde_json::to_string_pretty(images).map_err(io::Error::other)?;
        let tmp = self.path.with_extension(format!(
            "json.{}.{}.tmp",
            std::process::id(),
            SAVES.fetch_add(1, Ordering::Relaxed)
        ));
        let written = fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &self.path)) {
            let _ = fs::remove_file(&tmp);
            return Err(context(e));
        }
        Ok(())
    }
}
