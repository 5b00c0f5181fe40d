//! `loop.lock.json`, beside the project root's Loopfile: for each image, the
//! hash of its inputs and the reference it was pushed as (by digest); for each
//! profile rendered, the hash of each object. `loop render` writes it, `loop
//! render --no-build` pins images from it, and `loop render --check` compares
//! the Loopfiles' current output with it (drift in CI).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file's name, at the project root.
pub const FILE: &str = "loop.lock.json";

/// The profile key of a render without `--profile`.
pub const NO_PROFILE: &str = "default";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    pub version: u32,
    /// By declared image ref.
    pub images: BTreeMap<String, LockedImage>,
    /// By profile ([`NO_PROFILE`] without one): each object's hash, by key.
    pub renders: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockedImage {
    /// The content hash of the image's inputs (as `loop run` computes it).
    pub inputs: String,
    /// Where it was pushed, by digest (`registry/repo@sha256:...`).
    pub pushed: String,
}

impl Lock {
    /// An empty lock of the current version.
    pub fn new() -> Lock {
        Lock {
            version: 1,
            ..Lock::default()
        }
    }
}

pub fn path(root: &Path) -> PathBuf {
    root.join(FILE)
}

/// The lock of a project, if it has one; an unreadable or corrupt one is an
/// error that names the file and the position.
pub fn read(root: &Path) -> Result<Option<Lock>, String> {
    let path = path(root);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let lock: Lock = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}:{}: not a loop lock file: {e}; delete it and run `loop render` to write it again",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    if lock.version != 1 {
        return Err(format!(
            "{}: lock file version {} is not known to this loop (1 is)",
            path.display(),
            lock.version
        ));
    }
    Ok(Some(lock))
}

/// Writes the lock (to a temporary file first, so a reader never sees half).
pub fn write(root: &Path, lock: &Lock) -> Result<(), String> {
    let path = path(root);
    let text = serde_json::to_string_pretty(lock).map_err(|e| e.to_string())? + "\n";
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Records one pushed image in the project's lock (`loop ci` does, for each
/// image it pushed by digest); the rest of the lock stays as it was.
pub fn record_image(root: &Path, image_ref: &str, image: LockedImage) -> Result<(), String> {
    // Resources build in parallel: one read-modify-write at a time.
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let mut lock = read(root)?.unwrap_or_else(Lock::new);
    if lock.images.get(image_ref) == Some(&image) {
        return Ok(());
    }
    lock.images.insert(image_ref.to_owned(), image);
    write(root, &lock)
}

/// The hash of a rendered document.
pub fn hash(yaml: &str) -> String {
    blake3::hash(yaml.as_bytes()).to_hex()[..32].to_owned()
}

/// What differs between the lock and the current output: one line each.
pub fn drift(
    lock: &Lock,
    profile: &str,
    objects: &BTreeMap<String, (String, String)>,
    inputs: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (image, hash) in inputs {
        match lock.images.get(image) {
            None => out.push(format!("image {image}: not in the lock")),
            Some(locked) if &locked.inputs != hash => out.push(format!(
                "image {image}: its inputs changed since it was pushed as {}",
                locked.pushed
            )),
            Some(_) => {}
        }
    }
    let empty = BTreeMap::new();
    let locked = lock.renders.get(profile).unwrap_or(&empty);
    for (key, (hash, at)) in objects {
        match locked.get(key) {
            None => out.push(format!("{key} ({at}): new since the lock")),
            Some(h) if h != hash => out.push(format!("{key} ({at}): changed")),
            Some(_) => {}
        }
    }
    for key in locked.keys().filter(|k| !objects.contains_key(*k)) {
        out.push(format!("{key}: in the lock, no longer declared"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_names_changed_new_and_removed_objects_and_changed_inputs() {
        let mut lock = Lock::new();
        lock.images.insert(
            "app".into(),
            LockedImage {
                inputs: "h1".into(),
                pushed: "r/app@sha256:1".into(),
            },
        );
        lock.renders.insert(
            NO_PROFILE.into(),
            BTreeMap::from([
                ("Deployment/app".into(), "a".into()),
                ("Service/old".into(), "b".into()),
            ]),
        );
        let objects = BTreeMap::from([
            (
                "Deployment/app".into(),
                ("a2".into(), "Loopfile:1:1".into()),
            ),
            ("Service/new".into(), ("c".into(), "Loopfile:2:1".into())),
        ]);
        let inputs = BTreeMap::from([("app".into(), "h2".into())]);
        let lines = drift(&lock, NO_PROFILE, &objects, &inputs);
        assert_eq!(
            lines,
            [
                "image app: its inputs changed since it was pushed as r/app@sha256:1",
                "Deployment/app (Loopfile:1:1): changed",
                "Service/new (Loopfile:2:1): new since the lock",
                "Service/old: in the lock, no longer declared",
            ]
        );
        let same = BTreeMap::from([("app".into(), "h1".into())]);
        let objects = BTreeMap::from([
            ("Deployment/app".into(), ("a".into(), String::new())),
            ("Service/old".into(), ("b".into(), String::new())),
        ]);
        assert!(drift(&lock, NO_PROFILE, &objects, &same).is_empty());
    }

    #[test]
    fn a_corrupt_lock_names_its_position() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            "{\n  \"version\": 1,\n  \"images\": [}\n",
        )
        .unwrap();
        let e = read(dir.path()).unwrap_err();
        assert!(e.contains("loop.lock.json:3:"), "{e}");
        assert!(e.contains("delete it"), "{e}");
    }
}
