//! The object store: every object keyed by (group, plural, namespace, name),
//! a global `resourceVersion` counter, and the full event history that
//! watches replay from any resourceVersion.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Value};
use tokio::sync::watch;

/// Identity of a stored object. `namespace` is "" for cluster-scoped objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(group: &str, plural: &str, namespace: &str, name: &str) -> ObjKey {
        ObjKey {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// Watch event types as they appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, kept forever so a watch can start from any resourceVersion.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    /// The object before the change (for selector transitions).
    pub old: Option<Value>,
    /// The object after the change (the last state for DELETED).
    pub object: Value,
}

/// All objects plus history.
pub struct Store {
    rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    events: Vec<Event>,
    changes: Arc<watch::Sender<u64>>,
}

impl Store {
    pub fn new(changes: Arc<watch::Sender<u64>>) -> Store {
        Store {
            rv: 1,
            objects: BTreeMap::new(),
            events: Vec::new(),
            changes,
        }
    }

    /// The current (latest) resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one type, optionally in one namespace.
    pub fn list<'a>(
        &'a self,
        group: &'a str,
        plural: &'a str,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |(k, _)| {
                k.group == group && k.plural == plural && ns.is_none_or(|n| k.namespace == n)
            })
            .map(|(_, v)| v)
    }

    /// Keys of one type.
    pub fn keys(&self, group: &str, plural: &str) -> Vec<ObjKey> {
        self.objects
            .keys()
            .filter(|k| k.group == group && k.plural == plural)
            .cloned()
            .collect()
    }

    /// Every stored object.
    pub fn all(&self) -> impl Iterator<Item = (&ObjKey, &Value)> {
        self.objects.iter()
    }

    /// Find an object by uid.
    pub fn by_uid(&self, uid: &str) -> Option<(&ObjKey, &Value)> {
        self.objects
            .iter()
            .find(|(_, v)| v["metadata"]["uid"] == uid)
    }

    /// Store (create or replace) an object, bumping its resourceVersion; returns the stored copy.
    pub fn put(&mut self, key: ObjKey, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let old = self.objects.insert(key.clone(), obj.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.events.push(Event {
            rv: self.rv,
            kind,
            key,
            old,
            object: obj.clone(),
        });
        self.changes.send_replace(self.rv);
        obj
    }

    /// Remove an object; the returned copy carries the deletion's resourceVersion.
    pub fn remove(&mut self, key: &ObjKey) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.events.push(Event {
            rv: self.rv,
            kind: EventType::Deleted,
            key: key.clone(),
            old: Some(obj.clone()),
            object: obj.clone(),
        });
        self.changes.send_replace(self.rv);
        Some(obj)
    }

    /// Events after `rv`, in order.
    pub fn events_after(&self, rv: u64) -> &[Event] {
        let i = self.events.partition_point(|e| e.rv <= rv);
        &self.events[i..]
    }
}

/// The key of an object body for a given type.
pub fn key_of(group: &str, plural: &str, obj: &Value) -> ObjKey {
    let m = &obj["metadata"];
    ObjKey::new(
        group,
        plural,
        m["namespace"].as_str().unwrap_or(""),
        m["name"].as_str().unwrap_or(""),
    )
}

/// RFC 3339 timestamp with seconds, as metav1.Time is written.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Now, as a metav1.Time string.
pub fn now() -> String {
    timestamp(SystemTime::now())
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn hash_u64(v: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

fn fresh() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hash_u64((n, t, std::process::id()))
}

/// A fresh UUID-shaped uid.
pub fn new_uid() -> String {
    let (a, b) = (fresh(), fresh());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// The alphabet Kubernetes uses for generated name suffixes and hashes.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn encode(mut v: u64, len: usize) -> String {
    let mut s = String::new();
    for _ in 0..len {
        s.push(SAFE[(v % SAFE.len() as u64) as usize] as char);
        v /= SAFE.len() as u64;
    }
    s
}

/// A random 5-character suffix, as `generateName` gets.
pub fn random_suffix() -> String {
    encode(fresh(), 5)
}

/// A stable short hash of a JSON value (the `pod-template-hash` of a template).
pub fn stable_hash(v: &Value) -> String {
    encode(hash_u64(v.to_string()), 10)
}

/// Label selector: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`, comma-separated.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<Req>);

#[derive(Debug, Clone)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl LabelSelector {
    /// Parse; errors are messages for a 400 BadRequest.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut parts = Vec::new();
        let (mut depth, mut cur) = (0, String::new());
        for c in s.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        parts.push(cur);
        let mut reqs = Vec::new();
        for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let set = |rest: &str| -> Result<Vec<String>, String> {
                let rest = rest.trim();
                let inner = rest
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| {
                        format!("unable to parse requirement: found '{rest}', expected: '('")
                    })?;
                Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
            };
            let req = if let Some((k, v)) = p.split_once("!=") {
                Req::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                Req::NotIn(k.trim().into(), set(rest)?)
            } else if let Some((k, rest)) = p.split_once(" in ") {
                Req::In(k.trim().into(), set(rest)?)
            } else if let Some(k) = p.strip_prefix('!') {
                Req::NotExists(k.trim().into())
            } else if p.contains(' ') || p.contains('(') {
                return Err(format!("unable to parse requirement: {p}"));
            } else {
                Req::Exists(p.into())
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether an object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(|v| v.as_str());
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        })
    }
}

/// Field selector: `path=value`, `path==value`, `path!=value`, comma-separated; the path
/// is any dotted field path (`metadata.name`, `metadata.namespace`, `status.phase`, ...).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut reqs = Vec::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, eq, v) = if let Some((k, v)) = p.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = p.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!("invalid selector: '{p}'; can't understand '{p}'"));
            };
            reqs.push((k.trim().to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = obj;
            for seg in path.split('.') {
                cur = &cur[seg];
            }
            let got = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_selectors() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app!=web"));
        assert!(m("app"));
        assert!(!m("!app"));
        assert!(m("!missing"));
        assert!(m("app=web,tier"));
        assert!(!m("app=web,tier=back"));
        assert!(m("tier in (front, back)"));
        assert!(!m("tier notin (front,back)"));
        assert!(m("app in (web),tier notin (back)"));
        assert!(LabelSelector::parse("app in web").is_err());
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(m("metadata.name=web"));
        assert!(!m("metadata.name!=web"));
        assert!(m("metadata.namespace==default,status.phase=Running"));
        assert!(m("spec.nodeName="));
        assert!(FieldSelector::parse("nonsense").is_err());
    }

    #[test]
    fn store_versions_and_history() {
        let mut s = Store::new(Arc::new(watch::Sender::new(0)));
        let k = ObjKey::new("", "configmaps", "default", "c");
        let a = s.put(k.clone(), json!({"metadata": {"name": "c"}}));
        let b = s.put(
            k.clone(),
            json!({"metadata": {"name": "c"}, "data": {"x": "1"}}),
        );
        let gone = s.remove(&k).unwrap();
        let rv = |v: &Value| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(rv(&a) < rv(&b) && rv(&b) < rv(&gone));
        let kinds: Vec<EventType> = s.events_after(rv(&a)).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventType::Modified, EventType::Deleted]);
        assert_eq!(s.rv(), rv(&gone));
    }

    #[test]
    fn generated_names_and_hashes() {
        assert_eq!(random_suffix().len(), 5);
        assert_ne!(new_uid(), new_uid());
        assert_eq!(stable_hash(&json!({"a": 1})), stable_hash(&json!({"a": 1})));
        assert_ne!(stable_hash(&json!({"a": 1})), stable_hash(&json!({"a": 2})));
    }
}
