//! Building and pushing the images `loop render` pins.

use std::collections::BTreeMap;
use std::path::Path;

use loop_lang::model::{Image, Manifest};

/// Builds and pushes each image; returns the pinned ref of each (by digest).
pub fn pin(
    images: &[&Image],
    _inputs: &BTreeMap<String, String>,
    _root: &Path,
    _manifest: &Manifest,
) -> Result<BTreeMap<String, String>, String> {
    if images.is_empty() {
        return Ok(BTreeMap::new());
    }
    Err("loop render cannot push images yet: use --no-build with a loop.lock.json".to_owned())
}
