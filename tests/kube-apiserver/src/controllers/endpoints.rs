//! The endpoint and endpoint-slice controllers, without addresses: a Service
//! with a selector gets an `Endpoints` object of the same name and an
//! `EndpointSlice` (`{service}-{hash}`, owned by the Service) that copy the
//! Service's labels; the `Endpoints` goes when its Service goes.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::{name, ns, owner_ref, put_if_changed, rt, terminating, uid};
use crate::apply::{delete_key, insert_new};
use crate::store::{self, ObjKey, Store};

/// Marks the `Endpoints` objects this controller made (a real cluster deletes
/// them when their Service goes; user-made ones are left alone here).
const ENDPOINTS_CONTROLLER: &str = "loop-test.dev/endpoints-controller";

/// The endpoint and endpoint-slice controllers, without addresses.
pub(super) fn endpoints(store: &mut Store) {
    let mut wanted: HashSet<(String, String)> = HashSet::new();
    for key in store.keys("", "services") {
        let Some(svc) = store.get(&key).cloned() else {
            continue;
        };
        let has_selector = svc["spec"]["selector"]
            .as_object()
            .is_some_and(|m| !m.is_empty());
        if terminating(&svc) || !has_selector {
            continue;
        }
        wanted.insert((key.namespace.clone(), name(&svc).to_owned()));
        let labels = svc["metadata"]["labels"].clone();
        let ep_key = ObjKey::new("", "endpoints", &key.namespace, name(&svc));
        match store.get(&ep_key).cloned() {
            None => {
                let ep = json!({
                    "metadata": {"name": name(&svc), "namespace": ns(&svc), "labels": labels,
                                 "annotations": {ENDPOINTS_CONTROLLER: "true"}},
                    "subsets": [],
                });
                insert_new(store, &rt("", "endpoints"), ep);
            }
            Some(mut ep) if ep["metadata"]["labels"] != labels => {
                ep["metadata"]["labels"] = labels.clone();
                put_if_changed(store, &ep_key, ep);
            }
            Some(_) => {}
        }
        let mut slice_labels = labels.as_object().cloned().unwrap_or_default();
        slice_labels.insert("kubernetes.io/service-name".into(), json!(name(&svc)));
        slice_labels.insert(
            "endpointslice.kubernetes.io/managed-by".into(),
            json!("endpointslice-controller.k8s.io"),
        );
        let slice_name = format!(
            "{}-{}",
            name(&svc),
            &store::stable_hash(&json!(uid(&svc)))[..5]
        );
        let slice_key = ObjKey::new(
            "discovery.k8s.io",
            "endpointslices",
            &key.namespace,
            &slice_name,
        );
        match store.get(&slice_key).cloned() {
            None => {
                let slice = json!({
                    "metadata": {"name": slice_name, "namespace": ns(&svc), "labels": slice_labels,
                                 "ownerReferences": [owner_ref(&svc)]},
                    "addressType": "IPv4",
                    "endpoints": [],
                });
                insert_new(store, &rt("discovery.k8s.io", "endpointslices"), slice);
            }
            Some(mut slice) => {
                slice["metadata"]["labels"] = Value::Object(slice_labels);
                put_if_changed(store, &slice_key, slice);
            }
        }
    }
    for key in store.keys("", "endpoints") {
        let Some(ep) = store.get(&key) else { continue };
        let made_here = ep["metadata"]["annotations"][ENDPOINTS_CONTROLLER] == "true";
        if made_here && !wanted.contains(&(key.namespace.clone(), name(ep).to_owned())) {
            delete_key(store, &key, "Background", None);
        }
    }
}
