//! The content-addressed files of daemonless builds under `.loop/oci`: blobs
//! named by their SHA-256 digest, written whole or not at all.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The hex SHA-256 of `bytes`, as `sha256:…`.
pub fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
    )
}

/// Lower-case hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the blob of `digest` is kept under `cache`.
pub(super) fn blob_path(cache: &Path, digest: &str) -> PathBuf {
    cache.join("blobs").join(digest.replace(':', "-"))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(super) fn store(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}
