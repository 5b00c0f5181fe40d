//! The policy rules of `loop check` and `loop render`: what a reviewer of a
//! production manifest would flag, found where the object is declared. Each rule
//! has a name ([`loop_lang::model::LINT_RULES`]) that `lint_settings(disable=[...])` turns off.

use std::collections::BTreeMap;

use loop_lang::data::Data;
use loop_lang::model::{Manifest, ObjectRef};
use loop_lang::workload::{self, image_name};
use loop_lang::Diagnostic;

/// The findings of every rule not disabled, on `objects` (as warnings).
pub fn lint(manifest: &Manifest, objects: &[&ObjectRef]) -> Vec<Diagnostic> {
    let built: Vec<&str> = manifest
        .images
        .iter()
        .map(|i| image_name(&i.image_ref))
        .collect();
    let selectors: Vec<BTreeMap<String, String>> = objects
        .iter()
        .filter(|o| o.kind == "Service")
        .filter_map(|o| string_map(o.body.path(&["spec", "selector"])?))
        .filter(|s| !s.is_empty())
        .collect();
    let mut out = Vec::new();
    for object in objects.iter().filter(|o| workload::is_workload(&o.body)) {
        let Some(spec) = workload::pod_spec(&object.body) else {
            continue;
        };
        let labels = workload::pod_labels(&object.body)
            .and_then(string_map)
            .unwrap_or_default();
        let served = selectors
            .iter()
            .any(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)));
        let mut finding = |rule: &'static str, message: String, help: &str| {
            if !manifest.release.lint_disabled.iter().any(|r| r == rule) {
                let key = object.key();
                let what = match manifest.release.object_sources.get(&key) {
                    Some(source) => format!("{key} ({source})"),
                    None => key,
                };
                out.push(
                    Diagnostic::new(format!("{what}: {message} [{rule}]"))
                        .at(object.defined_at.clone(), "declared here")
                        .help(format!(
                            "{help}; or turn the rule off with lint_settings(disable=[\"{rule}\"])"
                        ))
                        .warning(),
                );
            }
        };
        let pod_security = spec.get("securityContext");
        for volume in list(spec.get("volumes")) {
            if volume.get("hostPath").is_some() {
                let name = text(volume.get("name"));
                finding(
                    "host-path",
                    format!("volume `{name}` mounts a path of the node (hostPath)"),
                    "use a PersistentVolumeClaim, a ConfigMap or an emptyDir",
                );
            }
        }
        let containers = list(spec.get("initContainers"))
            .iter()
            .chain(list(spec.get("containers")));
        for container in containers {
            let name = text(container.get("name"));
            let resources = container.get("resources");
            let missing: Vec<&str> = ["requests", "limits"]
                .into_iter()
                .filter(|k| {
                    resources
                        .and_then(|r| r.get(k))
                        .is_none_or(|v| v.as_map().is_empty())
                })
                .collect();
            if !missing.is_empty() {
                finding(
                    "resources",
                    format!(
                        "container `{name}` sets no resource {}",
                        missing.join(" or ")
                    ),
                    "set resources.requests and resources.limits (cpu, memory)",
                );
            }
            let security = container.get("securityContext");
            if security.and_then(|s| s.get("privileged")) == Some(&Data::Bool(true)) {
                finding(
                    "privileged",
                    format!("container `{name}` is privileged"),
                    "remove securityContext.privileged, or grant only the capabilities it needs",
                );
            }
            let setting = |key: &str| {
                security
                    .and_then(|s| s.get(key))
                    .or_else(|| pod_security.and_then(|s| s.get(key)))
            };
            let user = match setting("runAsUser") {
                Some(Data::Int(n)) => Some(*n),
                _ => None,
            };
            let non_root = setting("runAsNonRoot") == Some(&Data::Bool(true));
            if user == Some(0) {
                finding(
                    "run-as-root",
                    format!("container `{name}` runs as root (runAsUser: 0)"),
                    "run as a non-root user (runAsUser > 0, runAsNonRoot: true)",
                );
            } else if !non_root && user.is_none() {
                finding(
                    "run-as-root",
                    format!("container `{name}` may run as root (neither runAsNonRoot nor runAsUser is set)"),
                    "set securityContext.runAsNonRoot: true (and runAsUser) on the pod or the container",
                );
            }
            let image = text(container.get("image"));
            let pinned = image.contains('@') || built.contains(&image_name(&image));
            let tag = tag_of(&image);
            if !pinned && (tag.is_none() || tag == Some("latest")) {
                finding(
                    "latest-tag",
                    format!(
                        "container `{name}` uses `{image}`, {}",
                        if tag.is_none() {
                            "an image without a tag"
                        } else {
                            "the `latest` tag"
                        }
                    ),
                    "name a fixed tag or a digest (repo@sha256:...)",
                );
            }
            if served && container.get("readinessProbe").is_none() {
                finding(
                    "readiness-probe",
                    format!(
                        "container `{name}` has no readinessProbe, and a Service sends it traffic"
                    ),
                    "add a readinessProbe, so that traffic waits until the container is ready",
                );
            }
        }
    }
    out
}

/// The tag of an image reference, if it names one.
fn tag_of(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    without_digest
        .strip_prefix(image_name(image))?
        .strip_prefix(':')
}

fn list(v: Option<&Data>) -> &[Data] {
    v.map(Data::as_list).unwrap_or_default()
}

fn text(v: Option<&Data>) -> String {
    v.and_then(Data::as_str).unwrap_or_default().to_owned()
}

fn string_map(v: &Data) -> Option<BTreeMap<String, String>> {
    match v {
        Data::Map(entries) => Some(
            entries
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect(),
        ),
        _ => None,
    }
}
