//! The Job controller: a Job that is not done or suspended runs one pod.

use serde_json::{json, Value};

use super::{name, new_pod, owned, terminating, uid};
use crate::store::{self, Store};

pub(super) fn job_done(j: &Value) -> bool {
    j["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    })
}

pub(super) fn jobs(store: &mut Store) {
    for key in store.keys("batch", "jobs") {
        let Some(j) = store.get(&key).cloned() else {
            continue;
        };
        if terminating(&j) || job_done(&j) || j["spec"]["suspend"] == true {
            continue;
        }
        if owned(store, "", "pods", uid(&j)).is_empty() {
            let n = format!("{}-{}", name(&j), store::random_suffix());
            let extra = json!({
                "batch.kubernetes.io/controller-uid": uid(&j), "controller-uid": uid(&j),
                "batch.kubernetes.io/job-name": name(&j), "job-name": name(&j),
            });
            new_pod(
                store,
                &j,
                &n,
                &j["spec"]["template"],
                extra,
                Some(format!("{}-", name(&j))),
            );
        }
    }
}
