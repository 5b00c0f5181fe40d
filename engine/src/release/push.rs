//! Building and pushing the images `loop render` pins: each is built as `loop
//! run` builds it (skipped when `.loop/images.json` holds its inputs' hash and
//! the registry still has it) and pushed to `default_registry`, and the ref the
//! registry answers (`repo@sha256:...`) is what the objects name.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use loop_lang::model::{Image, ImageKind, Manifest};

use crate::image::{build_to, Destination, Record};
use crate::report;
use crate::report::LineSink;

/// An image pinned by `loop render`: the ref it was pushed as and the hash of
/// the inputs it was built from.
pub struct Pinned {
    pub pushed: String,
    pub inputs: String,
}

/// Builds and pushes each image; returns each, by declared ref.
pub fn pin(
    images: &[&Image],
    root: &Path,
    manifest: &Manifest,
) -> Result<BTreeMap<String, Pinned>, String> {
    let mut pins = BTreeMap::new();
    if images.is_empty() {
        return Ok(pins);
    }
    let unpushable: Vec<String> = images
        .iter()
        .filter(|i| matches!(i.kind, ImageKind::Custom | ImageKind::LiveUpdateOnly))
        .map(|i| format!("{} ({})", i.image_ref, i.defined_at))
        .collect();
    if !unpushable.is_empty() {
        return Err(format!(
            "loop pushes docker_build and oci_build images, not custom_build ones: {}; pin them with --no-build from {}",
            unpushable.join(", "),
            super::lock::FILE
        ));
    }
    let Some(registry) = &manifest.settings.default_registry else {
        return Err(format!(
            "loop render pins images by the digest a registry gives them, and the Loopfiles name no registry for {}: declare one with default_registry(\"HOST\"), or pin from {} with --no-build",
            images.iter().map(|i| i.image_ref.as_str()).collect::<Vec<_>>().join(", "),
            super::lock::FILE
        ));
    };
    let destination = Destination::Registry(registry.clone());
    let record = Record::load(root, &|warning| {
        report::stderr_line(&format!("[render] {warning}"))
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    for image in images {
        let prefix = image.image_ref.clone();
        let log: LineSink =
            Arc::new(move |line: &str| report::stderr_line(&format!("[render] {prefix} │ {line}")));
        let built = runtime
            .block_on(build_to(image, root, log, &record, &destination))
            .map_err(|e| e.to_string())?;
        if !built.deploy_ref.contains("@sha256:") {
            return Err(format!(
                "image {}: the push gave no digest ({})",
                image.image_ref, built.deploy_ref
            ));
        }
        let pinned = Pinned {
            pushed: built.deploy_ref,
            inputs: built.hash,
        };
        pins.insert(image.image_ref.clone(), pinned);
    }
    Ok(pins)
}
