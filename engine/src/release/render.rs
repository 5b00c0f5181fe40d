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
        if resource.kind == ResourceKind::DockerCompose {
            out.stripped.push(format!(
                "Docker Compose service `{name}` ({})",
                resource.defined_at
            ));
            continue;
        }
        if resource.custom_deploy.is_some() {
            out.stripped.push(format!(
                "resource `{name}` (k8s_custom_deploy: its objects are what apply_cmd prints when it runs)"
            ));
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
            let pinned = pins.get(&image.image_ref).map(String::as_str);
            crate::image::put(&mut body, image, pinned);
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

/// The first line of every file written under `--out DIR`: only files that
/// start with it are replaced by the next render.
pub const MARKER: &str = "# Rendered by `loop render`; edit the Loopfiles instead.";

/// The file a document is written to under `--out DIR`: `NN-kind-name.yaml`
/// (the number, as wide as the count needs, keeps the run order; the
/// namespace joins the name when set).
pub fn file_name(index: usize, count: usize, key: &str) -> String {
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
    let width = count.to_string().len().max(2);
    format!("{:0width$}-{slug}.yaml", index + 1)
}

/// Whether a file was written by a render: a `.yaml` file that starts with
/// [`MARKER`].
pub fn is_rendered_file(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml")
        && std::fs::read_to_string(path).is_ok_and(|text| text.starts_with(MARKER))
}
