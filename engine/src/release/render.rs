//! The objects of a composition as plain YAML, without what only a dev loop
//! needs: one document per object, in run order, each built image pinned.

use std::collections::BTreeMap;

use loop_lang::model::{Manifest, ObjectRef, Resource, ResourceKind};
use loop_lang::Location;

use crate::graph::Graph;

/// One rendered object.
#[derive(Clone, Debug)]
pub struct Document {
    /// [`ObjectRef::key`].
    pub key: String,
    pub defined_at: Location,
    pub yaml: String,
}

/// The objects `loop render` ships, and what it left out.
pub struct Shipped<'a> {
    /// In run order: each object with the resource it belongs to.
    pub objects: Vec<(&'a Resource, &'a ObjectRef)>,
    /// What was left out, one line each (local resources, live updates,
    /// port-forwards, dev-only objects).
    pub stripped: Vec<String>,
}

/// The objects to ship, in the graph's run order.
pub fn shipped<'a>(manifest: &'a Manifest, graph: &Graph) -> Shipped<'a> {
    let release = &manifest.release;
    let mut out = Shipped {
        objects: Vec::new(),
        stripped: Vec::new(),
    };
    for name in graph.topo_order() {
        let Some(resource) = manifest.resource(name) else {
            continue;
        };
        if resource.kind == ResourceKind::Local {
            out.stripped
                .push(format!("local resource `{name}` ({})", resource.defined_at));
            continue;
        }
        if release.dev_only_resources.iter().any(|r| r == name) {
            out.stripped.push(format!(
                "resource `{name}` (dev_only=True), {} object(s)",
                resource.objects.len()
            ));
            continue;
        }
        if !resource.port_forwards.is_empty() {
            out.stripped.push(format!(
                "port-forwards of `{name}` ({})",
                resource.port_forwards.len()
            ));
        }
        for object in &resource.objects {
            let key = object.key();
            if release.dev_only_objects.contains(&key) {
                out.stripped
                    .push(format!("{key} (dev_only=True at {})", object.defined_at));
            } else {
                out.objects.push((resource, object));
            }
        }
    }
    for image in &manifest.images {
        if !image.live_update.is_empty() {
            out.stripped
                .push(format!("live update of image `{}`", image.image_ref));
        }
    }
    out
}

/// Each shipped object as YAML, with every image of `pins` (declared ref ->
/// pinned ref) put in, and `loop`'s ownership labels when `labels` names the
/// project.
pub fn documents(
    manifest: &Manifest,
    shipped: &Shipped,
    pins: &BTreeMap<String, String>,
    labels: Option<&str>,
) -> Result<Vec<Document>, String> {
    let mut out = Vec::new();
    for (resource, object) in &shipped.objects {
        let mut body = object.body.clone();
        for image in &manifest.images {
            if let Some(entrypoint) = &image.entrypoint {
                crate::image::set_entrypoint(&mut body, &image.image_ref, &entrypoint.argv());
            }
            if let Some(pinned) = pins.get(&image.image_ref) {
                crate::image::inject(&mut body, &image.image_ref, pinned, image.match_in_env_vars);
            }
        }
        if let Some(project) = labels {
            body = crate::k8s::apply::with_labels(
                &body,
                &crate::k8s::owner::labels(project, &resource.name),
            );
        }
        let yaml = body
            .to_yaml()
            .map_err(|e| format!("{}: cannot write it as YAML: {e}", object.key()))?;
        out.push(Document {
            key: object.key(),
            defined_at: object.defined_at.clone(),
            yaml,
        });
    }
    Ok(out)
}

/// The documents as one YAML stream.
pub fn stream(documents: &[Document]) -> String {
    let mut out = String::new();
    for doc in documents {
        out.push_str("---\n");
        out.push_str(&doc.yaml);
        if !doc.yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The file a document is written to under `--out DIR`: `NN-kind-name.yaml`
/// (the number keeps the run order; the namespace joins the name when set).
pub fn file_name(index: usize, key: &str) -> String {
    let slug: String = key
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{:02}-{slug}.yaml", index + 1)
}

/// Whether a file name is one [`file_name`] gives (`NN-...yaml`).
pub fn is_rendered_file(name: &str) -> bool {
    let digits = name.chars().take_while(char::is_ascii_digit).count();
    digits >= 2 && name[digits..].starts_with('-') && name.ends_with(".yaml")
}
