//! The CRD controller: CustomResourceDefinitions get `NamesAccepted` and
//! `Established` conditions (their types then appear in discovery).

use serde_json::{json, Value};

use super::{carry_times, condition, terminating};
use crate::store::{self, Store};

pub(super) fn crds(store: &mut Store) {
    for key in store.keys("apiextensions.k8s.io", "customresourcedefinitions") {
        let Some(mut crd) = store.get(&key).cloned() else {
            continue;
        };
        if terminating(&crd) {
            continue;
        }
        let t = store::now();
        let conds = carry_times(
            &crd["status"]["conditions"],
            vec![
                condition(
                    "NamesAccepted",
                    true,
                    Some("NoConflicts"),
                    Some("no conflicts found"),
                    &t,
                ),
                condition(
                    "Established",
                    true,
                    Some("InitialNamesAccepted"),
                    Some("the initial names have been accepted"),
                    &t,
                ),
            ],
        );
        let stored: Vec<Value> = crd["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["storage"] == true)
            .map(|v| v["name"].clone())
            .collect();
        let mut status = json!({"conditions": conds, "acceptedNames": crd["spec"]["names"], "storedVersions": stored});
        for c in status["conditions"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("lastProbeTime");
        }
        if crd["status"] != status {
            crd["status"] = status;
            store.put(key, crd);
        }
    }
}
