//! kube-rs against the loopback API server, exactly as against a cluster.
//!
//! Every wait is bounded by a generous timeout and nothing asserts on timing.

use std::time::Duration;

use futures_util::AsyncBufReadExt;
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, AttachParams, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use kube::runtime::{conditions, wait::await_condition, watcher};
use kube::{Client, ResourceExt};
use loop_test_apiserver::{ApiServer, PodBehaviour};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(60);

async fn client(server: &ApiServer) -> Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&server.kubeconfig("loop-test"))
        .expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    assert_eq!(config.default_namespace, "default");
    Client::try_from(config).expect("client")
}

fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, "tier": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }))
    .unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "workingDir": "/app"}]},
    }))
    .unwrap()
}

fn ssa() -> PatchParams {
    PatchParams::apply("loop").force()
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn running_pod(pods: &Api<Pod>, name: &str) {
    within(
        "pod running",
        await_condition(pods.clone(), name, conditions::is_pod_running()),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_builtin_groups_and_crds() {
    let server = ApiServer::start().await;
    let client = client(&server).await;

    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.major, "1");

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let find = |d: &Discovery, group: &str, plural: &str| {
        d.groups()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.plural == plural)
    };
    let (pods, caps) = find(&discovery, "", "pods").expect("pods discovered");
    assert_eq!(pods.kind, "Pod");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.subresources.iter().any(|(ar, _)| ar.plural == "exec"));
    assert!(caps.subresources.iter().any(|(ar, _)| ar.plural == "log"));
    assert!(caps
        .subresources
        .iter()
        .any(|(ar, _)| ar.plural == "portforward"));
    for (g, p) in [
        ("", "services"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "namespaces"),
        ("", "serviceaccounts"),
        ("", "persistentvolumeclaims"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    ] {
        assert!(find(&discovery, g, p).is_some(), "{g}/{p} discovered");
    }
    let (_, ns_caps) = find(&discovery, "", "namespaces").unwrap();
    assert_eq!(ns_caps.scope, Scope::Cluster);
    assert!(find(&discovery, "example.com", "widgets").is_none());

    // A CRD: once Established, its type is discovered and its objects can be applied.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap();
    crds.patch("widgets.example.com", &ssa(), &Patch::Apply(&crd))
        .await
        .unwrap();
    within(
        "crd established",
        await_condition(
            crds.clone(),
            "widgets.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap();

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (ar, _) = find(&discovery, "example.com", "widgets").expect("custom resource discovered");
    assert_eq!(ar.kind, "Widget");
    let aggregated = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert!(find(&aggregated, "example.com", "widgets").is_some());
    assert!(find(&aggregated, "apps", "deployments").is_some());

    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut w = DynamicObject::new("blue", &ar).data(json!({"spec": {"size": 3}}));
    w.types = Some(kube::core::TypeMeta {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
    });
    widgets
        .patch("blue", &ssa(), &Patch::Apply(&w))
        .await
        .unwrap();
    let got = widgets.get("blue").await.unwrap();
    assert_eq!(got.data["spec"]["size"], 3);
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    assert_eq!(ApiResource::from_gvk(&gvk).plural, "widgets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_get_list_and_selectors() {
    let server = ApiServer::start().await;
    let client = client(&server).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());

    let created = deploys
        .patch(
            "web",
            &ssa(),
            &Patch::Apply(&deployment("web", "web:v1", 2)),
        )
        .await
        .unwrap();
    let rv1 = created.resource_version().unwrap();
    assert!(created.uid().is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let managers: Vec<_> = created
        .managed_fields()
        .iter()
        .map(|m| m.manager.clone().unwrap())
        .collect();
    assert_eq!(managers, vec!["loop".to_string()]);
    assert!(server.requests().iter().any(|r| r
        .starts_with("PATCH /apis/apps/v1/namespaces/default/deployments/web?")
        && r.contains("fieldManager=loop")
        && r.contains("force=true")));

    // Re-applying the same thing changes nothing.
    let same = deploys
        .patch(
            "web",
            &ssa(),
            &Patch::Apply(&deployment("web", "web:v1", 2)),
        )
        .await
        .unwrap();
    // (Controllers update the status, so only the generation stays put here.)
    assert_eq!(same.metadata.generation, Some(1));
    // Without a controller, a no-op apply does not even bump resourceVersion.
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}),
    )
    .unwrap();
    let c1 = cms.patch("c", &ssa(), &Patch::Apply(&cm)).await.unwrap();
    let c2 = cms.patch("c", &ssa(), &Patch::Apply(&cm)).await.unwrap();
    assert_eq!(c1.resource_version(), c2.resource_version());

    // A spec change bumps generation and resourceVersion.
    let changed = deploys
        .patch(
            "web",
            &ssa(),
            &Patch::Apply(&deployment("web", "web:v2", 2)),
        )
        .await
        .unwrap();
    assert_eq!(changed.metadata.generation, Some(2));
    assert!(
        changed.resource_version().unwrap().parse::<u64>().unwrap() > rv1.parse::<u64>().unwrap()
    );

    // Fields dropped from the applied config are removed.
    let mut less = deployment("web", "web:v2", 2);
    less.metadata.labels.as_mut().unwrap().remove("tier");
    let after = deploys
        .patch("web", &ssa(), &Patch::Apply(&less))
        .await
        .unwrap();
    assert!(!after.labels().contains_key("tier"));

    deploys
        .patch(
            "api",
            &ssa(),
            &Patch::Apply(&deployment("api", "api:v1", 1)),
        )
        .await
        .unwrap();
    let names = |l: kube::core::ObjectList<Deployment>| {
        l.items.iter().map(|d| d.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(deploys.list(&ListParams::default()).await.unwrap()),
        vec!["api", "web"]
    );
    assert_eq!(
        names(
            deploys
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
        ),
        vec!["web"]
    );
    assert_eq!(
        names(
            deploys
                .list(&ListParams::default().labels("app!=web"))
                .await
                .unwrap()
        ),
        vec!["api"]
    );
    assert_eq!(
        names(
            deploys
                .list(&ListParams::default().labels("tier"))
                .await
                .unwrap()
        ),
        vec!["api"]
    );
    assert_eq!(
        names(
            deploys
                .list(&ListParams::default().labels("app,tier=web"))
                .await
                .unwrap()
        ),
        vec!["api"]
    );
    assert_eq!(
        names(
            deploys
                .list(&ListParams::default().labels("app in (web,api)"))
                .await
                .unwrap()
        ),
        vec!["api", "web"]
    );
    assert_eq!(
        names(
            deploys
                .list(&ListParams::default().fields("metadata.name=web"))
                .await
                .unwrap()
        ),
        vec!["web"]
    );
    let got = deploys.get("web").await.unwrap();
    assert_eq!(
        got.spec.template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("web:v2")
    );

    // All-namespaces list, and the object store seen from the test.
    let all: Api<Deployment> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    assert!(server
        .objects()
        .iter()
        .any(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "api"));

    // Another manager setting a field "loop" owns conflicts unless forced.
    let mut other = deployment("web", "web:v3", 2);
    other.metadata.labels = None;
    let err = deploys
        .patch(
            "web",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&other),
        )
        .await
        .expect_err("conflict");
    let e = api_error(err);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("conflict with \"loop\""),
        "{}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_status_objects() {
    let server = ApiServer::start().await;
    let client = client(&server).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());

    server.forbid("patch", "deployments");
    let e = api_error(
        deploys
            .patch(
                "web",
                &ssa(),
                &Patch::Apply(&deployment("web", "web:v1", 1)),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code, e.reason.as_str(), e.is_failure()),
        (403, "Forbidden", true)
    );
    assert!(
        e.message
            .contains("cannot patch resource \"deployments\" in API group \"apps\""),
        "{}",
        e.message
    );
    server.allow_all();

    let e = api_error(
        deploys
            .patch(
                "Bad_Name",
                &ssa(),
                &Patch::Apply(&deployment("Bad_Name", "web:v1", 1)),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message
            .contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{}",
        e.message
    );

    let mut nameless = deployment("x", "web:v1", 1);
    nameless.metadata.name = None;
    let e = api_error(
        deploys
            .patch("x", &ssa(), &Patch::Apply(&nameless))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));

    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let cm: ConfigMap = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
    )
    .unwrap();
    let e = api_error(
        elsewhere
            .patch("c", &ssa(), &Patch::Apply(&cm))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "namespaces \"nowhere\" not found");

    let e = api_error(deploys.get("missing").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "deployments.apps \"missing\" not found");

    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&Default::default(), &cm).await.unwrap();
    let e = api_error(cms.create(&Default::default(), &cm).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));

    // A stale resourceVersion on replace is a 409 Conflict.
    let mut stale = cms.get("c").await.unwrap();
    stale.metadata.resource_version = Some("1".into());
    let e = api_error(
        cms.replace("c", &Default::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_deployment_pods_become_ready_then_replaced_then_deleted() {
    let server = ApiServer::start().await;
    let client = client(&server).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());

    let mut events = watcher(pods.clone(), watcher::Config::default().labels("app=web")).boxed();
    // The initial (empty) list completes before anything is applied.
    loop {
        if let watcher::Event::InitDone = within("init", events.try_next()).await.unwrap().unwrap()
        {
            break;
        }
    }
    deploys
        .patch(
            "web",
            &ssa(),
            &Patch::Apply(&deployment("web", "web:v1", 2)),
        )
        .await
        .unwrap();

    let mut saw_pending = false;
    let mut ready = std::collections::BTreeSet::new();
    while ready.len() < 2 {
        if let watcher::Event::Apply(p) = within("ready pods", events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            saw_pending |= phase == "Pending";
            let is_ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if is_ready {
                let labels = p.labels();
                assert!(labels.contains_key("pod-template-hash"));
                let owner = &p.owner_references()[0];
                assert_eq!(
                    (owner.kind.as_str(), owner.controller),
                    ("ReplicaSet", Some(true))
                );
                assert!(owner.name.starts_with("web-"));
                ready.insert(p.name_any());
            }
        }
    }
    assert!(saw_pending, "pods start Pending");

    let available = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
            s.ready_replicas == Some(2)
                && s.updated_replicas == Some(2)
                && s.conditions.as_ref().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_.as_deref() == Some("Available")
                            && c.status.as_deref() == Some("True")
                    })
                })
        })
    };
    within(
        "deployment available",
        await_condition(deploys.clone(), "web", available),
    )
    .await
    .unwrap();
    let d = deploys.get("web").await.unwrap();
    assert_eq!(d.status.unwrap().observed_generation, Some(1));

    // New image: old pods go, new ones come with the new image.
    deploys
        .patch(
            "web",
            &ssa(),
            &Patch::Apply(&deployment("web", "web:v2", 2)),
        )
        .await
        .unwrap();
    within("rollout", async {
        loop {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap();
            let images: Vec<_> = list
                .items
                .iter()
                .map(|p| {
                    p.spec.as_ref().unwrap().containers[0]
                        .image
                        .clone()
                        .unwrap()
                })
                .collect();
            if images.len() == 2 && images.iter().all(|i| i == "web:v2") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    assert_eq!(
        rss.list(&ListParams::default()).await.unwrap().items.len(),
        2,
        "old ReplicaSet kept at 0"
    );

    // Delete with background propagation: the Status comes back, pods go away, the watch says DELETED.
    let res = deploys
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    assert!(res.is_right(), "a deleted Deployment answers with a Status");
    let mut deleted = 0;
    while deleted < 2 {
        if let watcher::Event::Delete(_) = within("pod deletions", events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            deleted += 1;
        }
    }
    within("all gone", async {
        loop {
            if pods
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
                && rss
                    .list(&ListParams::default())
                    .await
                    .unwrap()
                    .items
                    .is_empty()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/default/pods?")
                && r.contains("watch=true"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_framing_and_resource_versions() {
    let server = ApiServer::start().await;
    let client = client(&server).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = |v: &str| -> ConfigMap {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"k": v}}, "data": {"v": v}})).unwrap()
    };
    let first = cms
        .patch("c", &ssa(), &Patch::Apply(&cm("1")))
        .await
        .unwrap();
    let rv = first.resource_version().unwrap();
    cms.patch("c", &ssa(), &Patch::Apply(&cm("2")))
        .await
        .unwrap();
    cms.delete("c", &DeleteParams::default()).await.unwrap();

    // Replaying from the first version: MODIFIED then DELETED, one JSON object per line.
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=2",
        server.url()
    );
    let body = raw_get(&url).await;
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["MODIFIED", "DELETED"]);
    assert_eq!(lines[0]["object"]["data"]["v"], "2");

    // A selector turns "stopped matching" into DELETED.
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=true&labelSelector=k%3D1&resourceVersion={}&timeoutSeconds=2",
        server.url(),
        rv.parse::<u64>().unwrap() - 1
    );
    let body = raw_get(&url).await;
    let types: Vec<String> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, vec!["ADDED", "DELETED"]);

    // kube's own watch API sees the framing as events.
    let stream = cms
        .watch(&kube::api::WatchParams::default().timeout(2), "0")
        .await
        .unwrap();
    let events: Vec<_> = stream.try_collect().await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| matches!(e, kube::api::WatchEvent::Bookmark(_))),
        "nothing left to list: {events:?}"
    );
}

/// A plain HTTP/1.1 GET over a TCP socket, returning the de-chunked body.
async fn raw_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    within("raw watch", s.read_to_end(&mut raw)).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, mut body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size, 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_fault_behaviours_and_jobs() {
    let server = ApiServer::start().await;
    let client = client(&server).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    server.set_pod_behaviour("pull", PodBehaviour::ImagePullBackOff);
    server.set_pod_behaviour("crash", PodBehaviour::CrashLoopBackOff);
    server.set_pod_behaviour("nosched", PodBehaviour::Unschedulable);
    server.set_pod_behaviour("lazy", PodBehaviour::NeverReady);
    for name in ["pull", "crash", "nosched", "lazy"] {
        deploys
            .patch(name, &ssa(), &Patch::Apply(&deployment(name, "img:1", 1)))
            .await
            .unwrap();
    }
    let pod_of = |name: &'static str, check: fn(&Pod) -> bool| {
        let pods = pods.clone();
        async move {
            within(name, async {
                loop {
                    let list = pods
                        .list(&ListParams::default().labels(&format!("app={name}")))
                        .await
                        .unwrap();
                    if let Some(p) = list.items.into_iter().find(check) {
                        return p;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await
        }
    };
    let waiting = |p: &Pod, reason: &str| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs[0]
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some(reason)
            })
    };
    let p = pod_of("pull", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs[0]
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some("ImagePullBackOff")
            })
    })
    .await;
    assert!(waiting(&p, "ImagePullBackOff"));
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));

    let p = pod_of("crash", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs[0].restart_count > 0)
    })
    .await;
    assert!(waiting(&p, "CrashLoopBackOff"));
    let cs = &p
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        cs.last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        1
    );

    let p = pod_of("nosched", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
    })
    .await;
    assert!(p.spec.unwrap().node_name.is_none());

    let p = pod_of("lazy", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    assert!(!p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True"));

    // Not-ready workloads report it in their status.
    let d = deploys.get("pull").await.unwrap();
    let conds = d.status.unwrap().conditions.unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("False")));

    // Switching the behaviour back heals existing pods.
    server.set_pod_behaviour("lazy", PodBehaviour::Ready);
    pod_of("lazy", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await;

    // A Job's pod completes and the Job gets Complete.
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "migrate:1"}]}}},
    }))
    .unwrap();
    jobs.patch("migrate", &ssa(), &Patch::Apply(&job))
        .await
        .unwrap();
    within(
        "job complete",
        await_condition(jobs.clone(), "migrate", conditions::is_job_completed()),
    )
    .await
    .unwrap();
    let j = jobs.get("migrate").await.unwrap();
    assert_eq!(j.status.unwrap().succeeded, Some(1));
    let jp = pods
        .list(&ListParams::default().labels("job-name=migrate"))
        .await
        .unwrap();
    assert_eq!(
        jp.items[0].status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );

    // StatefulSet pods get ordinal names.
    let sts: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let s: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "pg:16"}]}}},
    }))
    .unwrap();
    sts.patch("db", &ssa(), &Patch::Apply(&s)).await.unwrap();
    let ready2 = |s: Option<&StatefulSet>| {
        s.and_then(|s| s.status.as_ref())
            .is_some_and(|s| s.ready_replicas == Some(2))
    };
    within(
        "statefulset ready",
        await_condition(sts.clone(), "db", ready2),
    )
    .await
    .unwrap();
    pods.get("db-0").await.unwrap();
    pods.get("db-1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_and_follow() {
    let server = ApiServer::start().await;
    let client = client(&server).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.patch("p", &ssa(), &Patch::Apply(&pod("p")))
        .await
        .unwrap();
    running_pod(&pods, "p").await;

    server.append_log("p", "main", "one");
    server.append_log("p", "main", "two");
    server.append_log("p", "main", "three");
    assert_eq!(
        pods.logs("p", &LogParams::default()).await.unwrap(),
        "one\ntwo\nthree\n"
    );
    let tail = LogParams {
        tail_lines: Some(1),
        ..Default::default()
    };
    assert_eq!(pods.logs("p", &tail).await.unwrap(), "three\n");
    let stamped = LogParams {
        timestamps: true,
        container: Some("main".into()),
        ..Default::default()
    };
    let text = pods.logs("p", &stamped).await.unwrap();
    let first = text.lines().next().unwrap();
    let (ts, line) = first.split_once(' ').unwrap();
    assert_eq!(line, "one");
    assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");

    let e = api_error(
        pods.logs(
            "p",
            &LogParams {
                container: Some("nope".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 400);

    let follow = LogParams {
        follow: true,
        tail_lines: Some(1),
        ..Default::default()
    };
    let mut lines = Box::pin(pods.log_stream("p", &follow).await.unwrap().lines());
    assert_eq!(
        within("first line", lines.next())
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        "three"
    );
    server.append_log("p", "main", "four");
    assert_eq!(
        within("followed line", lines.next())
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        "four"
    );
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        within("end of stream", lines.next())
            .await
            .map(|l| l.unwrap()),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_real_processes_in_the_container_dir() {
    let server = ApiServer::start().await;
    let client = client(&server).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.patch("p", &ssa(), &Patch::Apply(&pod("p")))
        .await
        .unwrap();
    running_pod(&pods, "p").await;
    let dir = server.container_dir("p", "main");

    // stdout
    let mut run = pods
        .exec(
            "p",
            vec!["echo", "hello"],
            &AttachParams::default().stderr(false),
        )
        .await
        .unwrap();
    let mut out = String::new();
    run.stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let status = run.take_status().unwrap().await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"));
    run.join().await.unwrap();
    assert_eq!(out, "hello\n");

    // non-zero exit, stderr
    let mut run = pods
        .exec(
            "p",
            vec!["sh", "-c", "echo oops >&2; exit 3"],
            &AttachParams::default().stderr(true),
        )
        .await
        .unwrap();
    let mut err = String::new();
    run.stderr()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    let status = run.take_status().unwrap().await.unwrap();
    run.join().await.unwrap();
    assert_eq!(err, "oops\n");
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let causes = status.details.unwrap().causes.unwrap();
    assert_eq!(
        (causes[0].reason.as_deref(), causes[0].message.as_deref()),
        (Some("ExitCode"), Some("3"))
    );

    // A tar archive piped into `tar -x -C /app` lands in <container_dir>/app.
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("sub")).unwrap();
    std::fs::write(src.path().join("sub/hello.txt"), "hi there\n").unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-c")
        .arg("-C")
        .arg(src.path())
        .arg("-f")
        .arg("-")
        .arg("sub")
        .output()
        .unwrap();
    assert!(tar.status.success());
    std::fs::create_dir_all(dir.join("app")).unwrap();
    let params = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let mut run = pods
        .exec("p", vec!["tar", "-x", "-C", "/app", "-f", "-"], &params)
        .await
        .unwrap();
    let mut stdin = run.stdin().unwrap();
    stdin.write_all(&tar.stdout).await.unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let status = within("tar status", run.take_status().unwrap())
        .await
        .unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");
    run.join().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("app/sub/hello.txt")).unwrap(),
        "hi there\n"
    );

    // Relative paths resolve against workingDir (/app); absolute ones are rewritten.
    let mut run = pods
        .exec(
            "p",
            vec!["cat", "sub/hello.txt", "/app/sub/hello.txt"],
            &AttachParams::default().stderr(false),
        )
        .await
        .unwrap();
    let mut out = String::new();
    run.stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    run.join().await.unwrap();
    assert_eq!(out, "hi there\nhi there\n");

    let mut run = pods
        .exec("p", vec!["rm", "-rf", "/app/sub"], &AttachParams::default())
        .await
        .unwrap();
    let status = run.take_status().unwrap().await.unwrap();
    run.join().await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"));
    assert!(!dir.join("app/sub").exists());

    // A missing program fails like the container runtime says it.
    let mut run = pods
        .exec(
            "p",
            vec!["definitely-not-a-program"],
            &AttachParams::default(),
        )
        .await
        .unwrap();
    let status = run.take_status().unwrap().await.unwrap();
    let _ = run.join().await;
    assert!(status
        .message
        .unwrap()
        .contains("executable file not found"));

    // Exec into a missing pod: a 404 Status.
    let e = match pods
        .exec("nope", vec!["true"], &AttachParams::default())
        .await
    {
        Ok(_) => panic!("exec into a missing pod must fail"),
        Err(e) => e,
    };
    assert!(
        format!("{e:?}").contains("404") || format!("{e:?}").contains("NotFound"),
        "{e:?}"
    );
    assert!(server.requests().iter().any(|r| r
        .starts_with("GET /api/v1/namespaces/default/pods/p/exec?")
        && r.contains("command=tar")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reaches_a_real_local_port() {
    let server = ApiServer::start().await;
    let client = client(&server).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());

    // A TCP echo server standing in for the container's port 8080.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = echo.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    server.expose_port("web", 8080, echo_addr);
    deploys
        .patch(
            "web",
            &ssa(),
            &Patch::Apply(&deployment("web", "web:v1", 1)),
        )
        .await
        .unwrap();
    let pod_name = within("web pod", async {
        loop {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap();
            if let Some(p) = list
                .items
                .iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            {
                return p.name_any();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    let mut pf = pods.portforward(&pod_name, &[8080]).await.unwrap();
    let mut stream = pf.take_stream(8080).unwrap();
    stream.write_all(b"ping over the tunnel").await.unwrap();
    let mut buf = vec![0u8; 20];
    within("echo", stream.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"ping over the tunnel");
    drop(stream);
    within("join", pf.join()).await.unwrap();

    // A port nobody exposed: the error channel says so.
    let mut pf = pods.portforward(&pod_name, &[9999]).await.unwrap();
    let err = within("error", pf.take_error(9999).unwrap()).await;
    assert!(err.unwrap().contains("error forwarding port 9999"));
    drop(pf);

    // break_port_forwards drops live tunnels; a new one works again.
    let mut pf = pods.portforward(&pod_name, &[8080]).await.unwrap();
    let mut stream = pf.take_stream(8080).unwrap();
    stream.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    within("echo", stream.read_exact(&mut one)).await.unwrap();
    server.break_port_forwards();
    let mut rest = Vec::new();
    let n = within("broken tunnel", stream.read_to_end(&mut rest))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
    let _ = within("join broken", pf.join()).await;

    let mut pf = pods.portforward(&pod_name, &[8080]).await.unwrap();
    let mut stream = pf.take_stream(8080).unwrap();
    stream.write_all(b"again").await.unwrap();
    let mut buf = vec![0u8; 5];
    within("echo again", stream.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf, b"again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_propagation_and_namespaces() {
    let server = ApiServer::start().await;
    let client = client(&server).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let ready = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.ready_replicas == Some(1))
    };

    // Orphan: the ReplicaSet and its pod stay, without the owner reference.
    deploys
        .patch("keep", &ssa(), &Patch::Apply(&deployment("keep", "k:1", 1)))
        .await
        .unwrap();
    within("ready", await_condition(deploys.clone(), "keep", ready))
        .await
        .unwrap();
    deploys
        .delete("keep", &DeleteParams::orphan())
        .await
        .unwrap();
    let left = rss
        .list(&ListParams::default().labels("app=keep"))
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1);
    assert!(left.items[0].owner_references().is_empty());
    assert_eq!(
        pods.list(&ListParams::default().labels("app=keep"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Foreground: dependents are gone by the time the answer (the object) arrives.
    deploys
        .patch("fg", &ssa(), &Patch::Apply(&deployment("fg", "f:1", 1)))
        .await
        .unwrap();
    within("ready", await_condition(deploys.clone(), "fg", ready))
        .await
        .unwrap();
    let res = deploys
        .delete("fg", &DeleteParams::foreground())
        .await
        .unwrap();
    assert!(res.is_left());
    assert!(rss
        .list(&ListParams::default().labels("app=fg"))
        .await
        .unwrap()
        .items
        .is_empty());

    // Deleting a pod answers with the pod, marked for deletion; then it goes.
    pods.patch("solo", &ssa(), &Patch::Apply(&pod("solo")))
        .await
        .unwrap();
    let answer = pods.delete("solo", &DeleteParams::default()).await.unwrap();
    let marked = answer.left().expect("pod object");
    assert!(marked.metadata.deletion_timestamp.is_some());
    within("pod removed", async {
        while pods.get_opt("solo").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    // A new namespace makes namespaced applies there possible; deleting it removes its contents.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    )
    .unwrap();
    namespaces
        .patch("team", &ssa(), &Patch::Apply(&ns))
        .await
        .unwrap();
    let team: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let cm: ConfigMap = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
    )
    .unwrap();
    team.patch("c", &ssa(), &Patch::Apply(&cm)).await.unwrap();
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    within("namespace gone", async {
        while namespaces.get_opt("team").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(server.object("", "configmaps", "team", "c").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_with_streaming_list() {
    let server = ApiServer::start().await;
    let client = client(&server).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "before"}}),
    )
    .unwrap();
    cms.patch("before", &ssa(), &Patch::Apply(&cm))
        .await
        .unwrap();
    let config = watcher::Config::default().streaming_lists();
    let mut events = watcher(cms.clone(), config).boxed();
    let mut initial = Vec::new();
    loop {
        match within("init", events.try_next()).await.unwrap().unwrap() {
            watcher::Event::InitApply(c) => initial.push(c.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, vec!["before"]);
    let mut after = cm.clone();
    after.metadata.name = Some("after".into());
    cms.patch("after", &ssa(), &Patch::Apply(&after))
        .await
        .unwrap();
    loop {
        if let watcher::Event::Apply(c) = within("apply", events.try_next()).await.unwrap().unwrap()
        {
            assert_eq!(c.name_any(), "after");
            break;
        }
    }
    assert!(server
        .requests()
        .iter()
        .any(|r| r.contains("sendInitialEvents=true")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_accepts_yaml_bodies() {
    let server = ApiServer::start().await;
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n  labels:\n    n: \"1\"\ndata:\n  port: \"8080\"\n  text: |\n    two\n    lines\n";
    let host = server.url().trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&host).await.unwrap();
    let req = format!(
        "PATCH /api/v1/namespaces/default/configmaps/from-yaml?fieldManager=yaml-test HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/apply-patch+yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{yaml}",
        yaml.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    within("yaml apply", s.read_to_string(&mut raw))
        .await
        .unwrap();
    assert!(raw.starts_with("HTTP/1.1 201"), "{raw}");
    let client = client(&server).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cm = cms.get("from-yaml").await.unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data["port"], "8080");
    assert_eq!(data["text"], "two\nlines\n");
    assert_eq!(
        cm.metadata.managed_fields.unwrap()[0].manager.as_deref(),
        Some("yaml-test")
    );
}
