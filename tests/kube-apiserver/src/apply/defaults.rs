//! Defaulting: the fields the real API server fills in on write for the common
//! types (container pull policies, Service type and cluster IP, replicas,
//! Deployment strategy, Job completions, ...).

use serde_json::{json, Value};

use crate::discovery::ResourceType;
use crate::store;

fn default_containers(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            let image = c["image"].as_str().unwrap_or("").to_string();
            let last = image.rsplit('/').next().unwrap_or("");
            let policy = if !last.contains(':') || last.ends_with(":latest") {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(c, "imagePullPolicy", json!(policy));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            for p in c["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
}

fn set_default(obj: &mut Value, k: &str, v: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(k.to_string()).or_insert(v);
    }
}

/// The defaults the real API server fills in, for the common types.
pub fn apply_defaults(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => default_containers(&mut obj["spec"]),
        ("", "Namespace") => {
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            set_default(&mut obj["spec"], "finalizers", json!(["kubernetes"]));
            if obj["status"]["phase"].is_null() {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        ("", "Service") => {
            let spec = &mut obj["spec"];
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, "protocol", json!("TCP"));
                let port = p["port"].clone();
                set_default(p, "targetPort", port);
            }
            if spec["clusterIP"].is_null() {
                let h = store::stable_hash(&obj["metadata"]["uid"]);
                let b = h.as_bytes();
                let ip = format!("10.96.{}.{}", b[0] % 250 + 1, b[1] % 250 + 2);
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
                obj["spec"]["ipFamilies"] = json!(["IPv4"]);
                obj["spec"]["ipFamilyPolicy"] = json!("SingleStack");
                obj["spec"]["internalTrafficPolicy"] = json!("Cluster");
            }
            if obj["status"].is_null() {
                obj["status"] = json!({"loadBalancer": {}});
            }
        }
        ("apps", kind) => {
            if kind != "DaemonSet" {
                set_default(&mut obj["spec"], "replicas", json!(1));
            }
            if kind == "Deployment" {
                set_default(
                    &mut obj["spec"],
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                );
                set_default(&mut obj["spec"], "revisionHistoryLimit", json!(10));
                set_default(&mut obj["spec"], "progressDeadlineSeconds", json!(600));
            }
            default_containers(&mut obj["spec"]["template"]["spec"]);
        }
        ("batch", "Job") => {
            set_default(&mut obj["spec"], "completions", json!(1));
            set_default(&mut obj["spec"], "parallelism", json!(1));
            set_default(&mut obj["spec"], "backoffLimit", json!(6));
            default_containers(&mut obj["spec"]["template"]["spec"]);
        }
        _ => {}
    }
}
