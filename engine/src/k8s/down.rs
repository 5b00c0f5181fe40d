//! `loop down`: delete everything a project applied, found by its labels, and
//! only that: controllers copy labels onto objects they make (the endpoint
//! controllers copy a Service's labels onto its Endpoints and EndpointSlices),
//! so an object counts only when its managed fields show `loop`'s server-side
//! apply.

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::{verbs, Scope};

use super::apply::{discover, error_text};
use super::context::Cluster;
use super::owner;

/// Deletion order: custom resources and workloads first, namespaces last.
fn rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 3,
        "CustomResourceDefinition" => 2,
        "Service" | "ConfigMap" | "Secret" | "ServiceAccount" | "PersistentVolumeClaim" => 1,
        _ => 0,
    }
}

/// Whether `loop` applied this object (server-side apply as its field manager).
fn applied_by_loop(object: &DynamicObject) -> bool {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|entry| {
            entry.manager.as_deref() == Some(owner::FIELD_MANAGER)
                && entry.operation.as_deref() == Some("Apply")
        })
}

/// Deletes every object labelled with `project` that `loop` applied, waits until they are gone, and
/// returns what was deleted (`Kind/namespace/name`). Namespaces are kept unless
/// `delete_namespaces`.
pub async fn down(
    cluster: &Cluster,
    project: &str,
    delete_namespaces: bool,
    log: impl Fn(&str),
) -> Result<Vec<String>, String> {
    let discovery = discover(&cluster.client).await?;
    let selector = owner::project_selector(project);
    let mut found: Vec<(u8, String, Api<DynamicObject>, String)> = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || !caps.supports_operation(verbs::DELETE) {
                continue;
            }
            if resource.kind == "Namespace" && !delete_namespaces {
                continue;
            }
            let all: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &resource);
            let list = all
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| error_text(&e))?;
            for object in list.items.into_iter().filter(applied_by_loop) {
                let name = object.metadata.name.clone().unwrap_or_default();
                let (api, label) = match (&caps.scope, object.metadata.namespace.as_deref()) {
                    (Scope::Namespaced, Some(ns)) => (
                        Api::namespaced_with(cluster.client.clone(), ns, &resource),
                        format!("{}/{ns}/{name}", resource.kind),
                    ),
                    _ => (
                        Api::all_with(cluster.client.clone(), &resource),
                        format!("{}/{name}", resource.kind),
                    ),
                };
                found.push((rank(&resource.kind), label, api, name));
            }
        }
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut deleted = Vec::new();
    for (_, label, api, name) in &found {
        log(&format!("deleting {label}"));
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(label.clone()),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(format!("cannot delete {label}: {}", error_text(&e))),
        }
    }
    for (_, label, api, name) in &found {
        let mut gone = false;
        for _ in 0..600 {
            match api.get_opt(name).await {
                Ok(None) => {
                    gone = true;
                    break;
                }
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => {
                    return Err(format!(
                        "waiting for {label} to be deleted: {}",
                        error_text(&e)
                    ))
                }
            }
        }
        if !gone {
            return Err(format!("{label} was not deleted within 60s"));
        }
    }
    Ok(deleted)
}
