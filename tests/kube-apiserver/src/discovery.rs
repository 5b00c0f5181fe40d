//! Resource types and the discovery documents: `/version`, `/api`, `/api/v1`,
//! `/apis`, `/apis/{group}`, `/apis/{group}/{version}`, plus aggregated
//! discovery (`apidiscovery.k8s.io/v2`) when the client asks for it.
//!
//! The served types are the built-ins below plus every established
//! CustomResourceDefinition in the store.

use serde_json::{json, Value};

use crate::store::Store;

/// The Kubernetes version this server claims to be.
pub const SERVER_MINOR: &str = "34";

/// One served resource type (one group/version/plural).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group, "" for core.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Plural resource name as used in URLs (`deployments`).
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Subresources served (`status`, `log`, `exec`, `portforward`, `scale`).
    pub subresources: Vec<String>,
}

impl ResourceType {
    fn new(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
        subs: &[&str],
    ) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            subresources: subs.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` or `pods`, as error messages name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps` or `Pod`, as validation errors name a kind.
    pub fn kind_qualified(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Built-in types whose list items omit `apiVersion`/`kind` (custom resources keep them).
    pub fn is_builtin(&self) -> bool {
        builtins()
            .iter()
            .any(|b| b.group == self.group && b.plural == self.plural)
    }

    /// Whether the metadata.name must be a DNS-1123 label (no dots) rather than a subdomain.
    pub fn name_is_label(&self) -> bool {
        self.group.is_empty() && matches!(self.plural.as_str(), "namespaces" | "services")
    }
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The built-in resource types.
pub fn builtins() -> Vec<ResourceType> {
    let r = ResourceType::new;
    vec![
        r(
            "",
            "v1",
            "Pod",
            "pods",
            true,
            &["po"],
            &["status", "log", "exec", "portforward", "attach"],
        ),
        r("", "v1", "Service", "services", true, &["svc"], &["status"]),
        r("", "v1", "ConfigMap", "configmaps", true, &["cm"], &[]),
        r("", "v1", "Secret", "secrets", true, &[], &[]),
        r(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &["ns"],
            &["status"],
        ),
        r(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            &[],
        ),
        r(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
            &["status"],
        ),
        r("", "v1", "Event", "events", true, &["ev"], &[]),
        r("", "v1", "Endpoints", "endpoints", true, &["ep"], &[]),
        r("", "v1", "Node", "nodes", false, &["no"], &["status"]),
        r(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            &["status", "scale"],
        ),
        r(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            &["sts"],
            &["status", "scale"],
        ),
        r(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            true,
            &["ds"],
            &["status"],
        ),
        r(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            &["rs"],
            &["status", "scale"],
        ),
        r("batch", "v1", "Job", "jobs", true, &[], &["status"]),
        r(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            &[],
            &[],
        ),
        r(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            true,
            &["cj"],
            &["status"],
        ),
        r(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            &["ing"],
            &["status"],
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
            &[],
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            &[],
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            &[],
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            &[],
        ),
        r(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            &["status"],
        ),
    ]
}

/// Resource types served by established CRDs (one per served version).
fn custom(store: &Store) -> Vec<ResourceType> {
    let mut out = Vec::new();
    for crd in store.list("apiextensions.k8s.io", "customresourcedefinitions", None) {
        let established = crd["status"]["conditions"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            })
            .unwrap_or(false);
        if !established {
            continue;
        }
        let spec = &crd["spec"];
        let names = &spec["names"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        for v in spec["versions"].as_array().into_iter().flatten() {
            if v["served"] == false {
                continue;
            }
            let mut subs = Vec::new();
            if v["subresources"]["status"].is_object() {
                subs.push("status".to_string());
            }
            if v["subresources"]["scale"].is_object() {
                subs.push("scale".to_string());
            }
            let singular = match s(&names["singular"]) {
                x if x.is_empty() => s(&names["kind"]).to_lowercase(),
                x => x,
            };
            out.push(ResourceType {
                group: s(&spec["group"]),
                version: s(&v["name"]),
                kind: s(&names["kind"]),
                plural: s(&names["plural"]),
                singular,
                namespaced: spec["scope"] != "Cluster",
                short_names: names["shortNames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                subresources: subs,
            });
        }
    }
    out
}

/// Every served resource type.
pub fn all(store: &Store) -> Vec<ResourceType> {
    let mut v = builtins();
    v.extend(custom(store));
    v
}

/// Look up a type by group, version and plural name.
pub fn find(store: &Store, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
    all(store)
        .into_iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Group names and their versions in a stable order (core excluded).
fn groups(store: &Store) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in all(store).into_iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) => {
                if !vs.contains(&r.version) {
                    vs.push(r.version.clone())
                }
            }
            None => out.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    out
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": SERVER_MINOR,
        "emulationMajor": "1",
        "emulationMinor": SERVER_MINOR,
        "gitVersion": format!("v1.{SERVER_MINOR}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-08-27T00:00:00Z",
        "goVersion": "go1.24.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api` (APIVersions).
pub fn api_versions(server_addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_addr}],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": vs,
        "preferredVersion": vs[0],
    })
}

/// `/apis` (APIGroupList).
pub fn api_group_list(store: &Store) -> Value {
    let gs: Vec<Value> = groups(store)
        .iter()
        .map(|(g, vs)| {
            let mut d = group_doc(g, vs);
            let o = d.as_object_mut().unwrap();
            o.remove("kind");
            o.remove("apiVersion");
            d
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

/// `/apis/{group}` (APIGroup).
pub fn api_group(store: &Store, group: &str) -> Option<Value> {
    groups(store)
        .into_iter()
        .find(|(g, _)| g == group)
        .map(|(g, vs)| group_doc(&g, &vs))
}

fn sub_kind(rt: &ResourceType, sub: &str) -> (String, Vec<&'static str>) {
    match sub {
        "log" => (rt.kind.clone(), vec!["get"]),
        "exec" => ("PodExecOptions".into(), vec!["create", "get"]),
        "attach" => ("PodAttachOptions".into(), vec!["create", "get"]),
        "portforward" => ("PodPortForwardOptions".into(), vec!["create", "get"]),
        "scale" => ("Scale".into(), vec!["get", "patch", "update"]),
        _ => (rt.kind.clone(), vec!["get", "patch", "update"]),
    }
}

/// `/api/v1` or `/apis/{group}/{version}` (APIResourceList); None if not served.
pub fn resource_list(store: &Store, group: &str, version: &str) -> Option<Value> {
    let types: Vec<ResourceType> = all(store)
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for rt in &types {
        let mut main = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": VERBS,
            "storageVersionHash": "",
        });
        if !rt.short_names.is_empty() {
            main["shortNames"] = json!(rt.short_names);
        }
        resources.push(main);
        for sub in &rt.subresources {
            let (kind, verbs) = sub_kind(rt, sub);
            let mut d = json!({
                "name": format!("{}/{sub}", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if sub == "scale" {
                d["group"] = json!("autoscaling");
                d["version"] = json!("v1");
            }
            resources.push(d);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// Whether the client asked for aggregated discovery (it lists several media types,
/// the aggregated one first; a server that supports it answers with it).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.contains("as=APIGroupDiscoveryList")
}

/// The content type of aggregated discovery answers.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Aggregated discovery for `/api` (core = true) or `/apis`.
pub fn aggregated(store: &Store, core: bool) -> Value {
    let all = all(store);
    let group_names: Vec<String> = if core {
        vec![String::new()]
    } else {
        groups(store).into_iter().map(|(g, _)| g).collect()
    };
    let mut items = Vec::new();
    for g in group_names {
        let mut versions: Vec<String> = Vec::new();
        for r in all.iter().filter(|r| r.group == g) {
            if !versions.contains(&r.version) {
                versions.push(r.version.clone());
            }
        }
        let vdocs: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = all
                    .iter()
                    .filter(|r| r.group == g && &r.version == v)
                    .map(|r| {
                        let subs: Vec<Value> = r
                            .subresources
                            .iter()
                            .map(|s| {
                                let (kind, verbs) = sub_kind(r, s);
                                json!({"subresource": s,
                                       "responseKind": {"group": if s == "scale" {"autoscaling"} else {r.group.as_str()}, "version": "v1", "kind": kind},
                                       "verbs": verbs})
                            })
                            .collect();
                        json!({
                            "resource": r.plural,
                            "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                            "scope": if r.namespaced {"Namespaced"} else {"Cluster"},
                            "singularResource": r.singular,
                            "verbs": VERBS,
                            "shortNames": r.short_names,
                            "subresources": subs,
                        })
                    })
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vdocs}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
