//! Removal: terminating namespaces are emptied and removed; objects of types
//! no longer served are dropped; objects whose every owner is gone are deleted
//! (garbage collection).

use std::collections::HashSet;

use super::{terminating, uid};
use crate::apply::delete_key;
use crate::discovery;
use crate::store::{ObjKey, Store};

pub(super) fn namespaces(store: &mut Store) {
    for key in store.keys("", "namespaces") {
        let Some(n) = store.get(&key).cloned() else {
            continue;
        };
        if !terminating(&n) {
            continue;
        }
        let inside: Vec<ObjKey> = store
            .all()
            .filter(|(k, _)| k.namespace == key.name)
            .map(|(k, _)| k.clone())
            .collect();
        for k in inside {
            store.remove(&k);
        }
        store.remove(&key);
    }
}

pub(super) fn gc(store: &mut Store) {
    let uids: HashSet<String> = store.all().map(|(_, v)| uid(v).to_string()).collect();
    let served: HashSet<(String, String)> = discovery::all(store)
        .into_iter()
        .map(|r| (r.group, r.plural))
        .collect();
    let mut orphans = Vec::new();
    let mut unserved = Vec::new();
    for (k, v) in store.all() {
        if !served.contains(&(k.group.clone(), k.plural.clone())) {
            unserved.push(k.clone());
            continue;
        }
        if let Some(refs) = v["metadata"]["ownerReferences"].as_array() {
            if !refs.is_empty()
                && refs
                    .iter()
                    .all(|r| !uids.contains(r["uid"].as_str().unwrap_or("")))
            {
                orphans.push(k.clone());
            }
        }
    }
    for k in unserved {
        store.remove(&k);
    }
    for k in orphans {
        delete_key(store, &k, "Background", None);
    }
}
