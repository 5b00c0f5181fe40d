//! Server-side apply of a resource's objects, for any kind the server knows.
//!
//! Namespaces and CustomResourceDefinitions go first; a custom resource waits until
//! its definition is established (discovery is re-run when a kind is unknown).

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use loop_lang::data::Data;
use loop_lang::model::ObjectRef;
use tokio::sync::Mutex;

use super::context::Cluster;
pub use super::errors::{error_text, failure, UNREACHABLE};
use super::owner;
use crate::failure::{Failure, FailureKind};

/// Applies objects, caching discovery.
pub struct Applier {
    pub cluster: Cluster,
    discovery: Mutex<Option<Discovery>>,
    /// The shared watches of workloads' pods.
    pub(crate) pods: super::pods::Pods,
}

/// An object the server rejected, with the Loopfile line that declared it.
#[derive(Debug)]
pub struct ApplyError {
    pub object: String,
    pub defined_at: String,
    pub failure: Failure,
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (declared at {}): {}",
            self.object, self.defined_at, self.failure
        )
    }
}

impl From<ApplyError> for Failure {
    fn from(err: ApplyError) -> Failure {
        let kind = err.failure.kind;
        Failure::new(kind, err.to_string())
    }
}

/// Apply order: namespaces, then CRDs, then everything else in declaration order.
fn rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        _ => 2,
    }
}

/// The `group/version` split of an `apiVersion`.
pub fn group_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// Every resource type the server serves (discovery).
pub async fn discover(client: &kube::Client) -> Result<Discovery, Failure> {
    Discovery::new(client.clone()).run().await.map_err(|e| {
        failure(&e).reworded(|m| format!("cannot list the server's resource types: {m}"))
    })
}

impl Applier {
    /// The watch of `workload`'s pods, shared with everyone following them
    /// (started now otherwise). Must be called inside a tokio runtime.
    pub async fn follow_pods(
        &self,
        workload: &ObjectRef,
        extra: &[std::collections::BTreeMap<String, String>],
    ) -> Result<std::sync::Arc<super::pods::PodWatch>, Failure> {
        let key = match self.pods.existing(&self.cluster, workload, extra) {
            Ok(found) => return Ok(found),
            Err(key) => key,
        };
        let object_api = if workload.kind == "Pod" {
            None
        } else {
            let api = self.api_for(
                &workload.api_version,
                &workload.kind,
                workload.namespace.as_deref(),
            );
            Some(api.await?.0)
        };
        Ok(self.pods.start(&self.cluster, key, workload, object_api))
    }

    pub fn new(cluster: Cluster) -> Applier {
        Applier {
            cluster,
            discovery: Mutex::new(None),
            pods: super::pods::Pods::default(),
        }
    }

    /// The API resource of a kind, running discovery again once if it is unknown.
    pub async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities), Failure> {
        let (group, version) = group_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let mut cached = self.discovery.lock().await;
        if let Some(found) = cached.as_ref().and_then(|d| d.resolve_gvk(&gvk)) {
            return Ok(found);
        }
        let discovery = discover(&self.cluster.client).await?;
        let found = discovery.resolve_gvk(&gvk);
        *cached = Some(discovery);
        found.ok_or_else(|| {
            Failure::new(
                FailureKind::NotFound,
                format!("the server does not know kind {kind} in {api_version}"),
            )
        })
    }

    /// The API handle for an object's kind and namespace.
    pub async fn api_for(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(Api<DynamicObject>, Scope), Failure> {
        let (resource, caps) = self.resolve(api_version, kind).await?;
        let api = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                self.cluster.client.clone(),
                namespace.unwrap_or(&self.cluster.namespace),
                &resource,
            ),
            Scope::Cluster => Api::all_with(self.cluster.client.clone(), &resource),
        };
        Ok((api, caps.scope))
    }

    /// The object as the server has it now, as JSON (`None` when it does not exist).
    pub async fn current(&self, object: &ObjectRef) -> Result<Option<serde_json::Value>, Failure> {
        let (api, _) = self
            .api_for(
                &object.api_version,
                &object.kind,
                object.namespace.as_deref(),
            )
            .await?;
        match api.get_opt(&object.name).await.map_err(|e| failure(&e))? {
            Some(found) => serde_json::to_value(&found)
                .map(Some)
                .map_err(|e| Failure::other(e.to_string())),
            None => Ok(None),
        }
    }

    /// Applies the objects of one resource (forced, field manager `loop`), with the
    /// ownership labels added. Returns the objects as the server stored them.
    pub async fn apply(
        &self,
        objects: &[ObjectRef],
        resource: &str,
        project: &str,
    ) -> Result<Vec<DynamicObject>, ApplyError> {
        let mut ordered: Vec<&ObjectRef> = objects.iter().collect();
        ordered.sort_by_key(|o| rank(&o.kind));
        let mut applied = Vec::new();
        for object in ordered {
            let failed = |failure: Failure| ApplyError {
                object: format!("{}/{}", object.kind, object.name),
                defined_at: object.defined_at.to_string(),
                failure,
            };
            let body = with_labels(&object.body, &owner::labels(project, resource));
            let (api, _) = self
                .api_for(
                    &object.api_version,
                    &object.kind,
                    object.namespace.as_deref(),
                )
                .await
                .map_err(failed)?;
            let params = PatchParams::apply(owner::FIELD_MANAGER).force();
            let json =
                serde_json::to_value(&body).map_err(|e| failed(Failure::other(e.to_string())))?;
            let stored = api
                .patch(&object.name, &params, &Patch::Apply(&json))
                .await
                .map_err(|e| failed(failure(&e)))?;
            if object.kind == "CustomResourceDefinition" {
                self.wait_established(&api, &object.name)
                    .await
                    .map_err(failed)?;
            }
            applied.push(stored);
        }
        Ok(applied)
    }

    async fn wait_established(&self, api: &Api<DynamicObject>, name: &str) -> Result<(), Failure> {
        for _ in 0..150 {
            let crd = api.get(name).await.map_err(|e| failure(&e))?;
            let established = crd.data["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                });
            if established {
                *self.discovery.lock().await = None;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(Failure::new(
            FailureKind::Timeout,
            format!("CustomResourceDefinition {name} was not established within 30s"),
        ))
    }
}

/// The object with the ownership labels merged into `metadata.labels`, and into the
/// pod template's labels so that pods can be traced back too.
pub fn with_labels(body: &Data, labels: &std::collections::BTreeMap<String, String>) -> Data {
    let mut body = body.clone();
    set_labels(&mut body, &["metadata", "labels"], labels);
    body
}

fn set_labels(body: &mut Data, path: &[&str], labels: &std::collections::BTreeMap<String, String>) {
    let mut node = body;
    for key in path {
        let Data::Map(entries) = node else { return };
        let index = match entries.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                entries.push(((*key).to_owned(), Data::Map(Vec::new())));
                entries.len() - 1
            }
        };
        node = &mut entries[index].1;
    }
    if let Data::Map(entries) = node {
        for (k, v) in labels {
            entries.retain(|(existing, _)| existing != k);
            entries.push((k.clone(), Data::String(v.clone())));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_errors_leave_out_empty_fields() {
        use super::super::errors::api_status_text;
        assert_eq!(
            api_status_text("container not found", "", 500),
            "container not found (HTTP 500)"
        );
        assert_eq!(
            api_status_text("nope", "Forbidden", 403),
            "nope (Forbidden, HTTP 403)"
        );
        assert_eq!(
            api_status_text("", "", 0),
            "the API server refused the request"
        );
    }

    use super::*;

    #[test]
    fn labels_are_merged_without_losing_numbers() {
        let body = Data::from_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {app: web}}\nspec: {replicas: 2}\n").unwrap();
        let labelled = with_labels(&body, &owner::labels("p1", "web"));
        let json = serde_json::to_value(&labelled).unwrap();
        assert_eq!(json["metadata"]["labels"]["app"], "web");
        assert_eq!(json["metadata"]["labels"]["loop.dev/project"], "p1");
        assert_eq!(json["spec"]["replicas"], 2);
        assert_eq!(
            serde_json::to_string(&json["spec"]).unwrap(),
            r#"{"replicas":2}"#
        );
    }
}
