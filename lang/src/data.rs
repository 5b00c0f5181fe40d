//! Plain data values (JSON/YAML documents) that are independent of Starlark.
//!
//! `starlark` turns on serde_json's `arbitrary_precision`, under which a
//! `serde_json::Value` must never be handed to another format's serializer. All
//! documents therefore pass through [`Data`], whose serde impls use only plain
//! integers, floats and strings.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON/YAML value. Maps keep their key order.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Data {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Data>),
    Map(Vec<(String, Data)>),
}

impl Data {
    /// Looks up a key of a map.
    pub fn get(&self, key: &str) -> Option<&Data> {
        match self {
            Data::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Looks up a path of map keys.
    pub fn path(&self, keys: &[&str]) -> Option<&Data> {
        keys.iter().try_fold(self, |d, k| d.get(k))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_list(&self) -> &[Data] {
        match self {
            Data::List(items) => items,
            _ => &[],
        }
    }

    pub fn as_map(&self) -> &[(String, Data)] {
        match self {
            Data::Map(entries) => entries,
            _ => &[],
        }
    }

    /// Parses one JSON document, keeping the key order of objects.
    pub fn from_json(text: &str) -> Result<Data, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// Parses a single YAML document (an empty text is `Null`).
    pub fn from_yaml(text: &str) -> Result<Data, String> {
        let mut docs = Data::from_yaml_stream(text)?;
        match docs.len() {
            0 => Ok(Data::Null),
            1 => Ok(docs.remove(0)),
            n => Err(format!(
                "expected one YAML document, found {n} (use the _stream variant)"
            )),
        }
    }

    /// Parses a stream of YAML documents separated by `---`; empty documents are skipped.
    pub fn from_yaml_stream(text: &str) -> Result<Vec<Data>, String> {
        serde_saphyr::from_multiple_with_options::<Data>(text, yaml_options()).map_err(|e| {
            // The first line says where and what; the rest is a rendered snippet.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            match &e {
                serde_saphyr::Error::Budget { breach, .. } => {
                    let at = first.split(": budget").next().unwrap_or_default();
                    format!("{at}: {}", budget_message(breach))
                }
                _ if first.ends_with("recursion limit exceeded") => {
                    let at = first.trim_end_matches("recursion limit exceeded");
                    format!(
                        "{at}{}",
                        too_large(format!("nesting deeper than {YAML_MAX_DEPTH} levels"))
                    )
                }
                _ => match first.split_once(", set DuplicateKeyPolicy") {
                    Some((duplicate, _)) => format!(
                        "{duplicate}; a key may appear once in each mapping: remove or rename one"
                    ),
                    None => first.to_owned(),
                },
            }
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("Data always serializes to JSON")
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("Data always serializes to JSON")
    }

    pub fn to_yaml(&self) -> Result<String, String> {
        serde_saphyr::to_string_with_options(self, yaml_out()).map_err(|e| e.to_string())
    }

    pub fn to_yaml_stream(docs: &[Data]) -> Result<String, String> {
        serde_saphyr::to_string_multiple_with_options(docs, yaml_out()).map_err(|e| e.to_string())
    }
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Null => s.serialize_unit(),
            Data::Bool(b) => s.serialize_bool(*b),
            Data::Int(i) => s.serialize_i64(*i),
            Data::Float(f) => s.serialize_f64(*f),
            Data::String(v) => s.serialize_str(v),
            Data::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Data::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Data, D::Error> {
        d.deserialize_any(DataVisitor)
    }
}

struct DataVisitor;

/// How serde_json (with `arbitrary_precision`, which `starlark` enables) hands a
/// number to a visitor: a one-entry map from this key to the number's digits.
const ARBITRARY_PRECISION_NUMBER: &str = "$serde_json::private::Number";

fn parse_number(digits: &str) -> Option<Data> {
    digits
        .parse::<i64>()
        .map(Data::Int)
        .or_else(|_| digits.parse::<f64>().map(Data::Float))
        .ok()
}

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON/YAML value")
    }
    fn visit_unit<E>(self) -> Result<Data, E> {
        Ok(Data::Null)
    }
    fn visit_none<E>(self) -> Result<Data, E> {
        Ok(Data::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Data, D::Error> {
        Data::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Data, E> {
        Ok(Data::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Data, E> {
        Ok(Data::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Data, E> {
        Ok(i64::try_from(v).map_or(Data::Float(v as f64), Data::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Data, E> {
        Ok(i64::try_from(v).map_or(Data::Float(v as f64), Data::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Data, E> {
        Ok(i64::try_from(v).map_or(Data::Float(v as f64), Data::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Data, E> {
        Ok(Data::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Data, E> {
        Ok(Data::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Data, E> {
        Ok(Data::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Data::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let mut entries: Vec<(String, Data)> = Vec::new();
        while let Some(key) = map.next_key::<Data>()? {
            if entries.is_empty() && key == Data::String(ARBITRARY_PRECISION_NUMBER.to_owned()) {
                let digits: String = map.next_value()?;
                return parse_number(&digits)
                    .ok_or_else(|| de::Error::custom(format!("invalid number {digits}")));
            }
            let key = match key {
                Data::String(s) => s,
                Data::Int(i) => i.to_string(),
                Data::Bool(b) => b.to_string(),
                Data::Float(f) => f.to_string(),
                Data::Null => "null".to_owned(),
                _ => return Err(de::Error::custom("map keys must be scalars")),
            };
            let value = map.next_value()?;
            entries.retain(|(k, _)| *k != key);
            entries.push((key, value));
        }
        Ok(Data::Map(entries))
    }
}

/// How much YAML one stream may hold. Far above the largest real manifests
/// (operator bundles of thousands of objects), still a bound on hostile input.
pub const YAML_MAX_DOCUMENTS: usize = 100_000;
/// The most nodes (mappings, sequences, scalars) in one YAML stream.
pub const YAML_MAX_NODES: usize = 20_000_000;
/// The deepest nesting of mappings and sequences in a YAML document.
pub const YAML_MAX_DEPTH: usize = 256;

/// How YAML is written: a long line stays one plain scalar (an image digest is
/// never folded with `>-`); text with newlines is a literal block (`|`).
fn yaml_out() -> serde_saphyr::SerializerOptions {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = usize::MAX;
    options
}

fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = YAML_MAX_DOCUMENTS;
    budget.max_nodes = YAML_MAX_NODES;
    budget.max_events = 4 * YAML_MAX_NODES;
    budget.max_depth = YAML_MAX_DEPTH;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// A YAML budget breach in words, with the limit.
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let what = match breach {
        B::Documents { .. } => format!("more than {YAML_MAX_DOCUMENTS} documents"),
        B::Nodes { .. } | B::Events { .. } => format!("more than {YAML_MAX_NODES} nodes"),
        B::Depth { .. } => format!("nesting deeper than {YAML_MAX_DEPTH} levels"),
        B::Aliases { .. } | B::Anchors { .. } => {
            "too many anchors or aliases (an alias bomb?)".to_owned()
        }
        other => format!("a size limit ({other:?})"),
    };
    too_large(what)
}

fn too_large(what: String) -> String {
    format!(
        "the YAML holds {what}, the most loop reads from one stream; split it into several files"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // `starlark` enables serde_json's arbitrary_precision for the whole build; these
    // round trips break if a serde_json::Value ever reaches the YAML serializer.
    #[test]
    fn numbers_survive_json_and_yaml_round_trips() {
        let d =
            Data::from_json(r#"{"a": 1, "b": 1.5, "c": [true, null, "x"], "big": 12345678901234}"#)
                .unwrap();
        assert_eq!(d.get("a"), Some(&Data::Int(1)));
        assert_eq!(d.get("b"), Some(&Data::Float(1.5)));
        let yaml = d.to_yaml().unwrap();
        assert!(yaml.contains("a: 1\n"), "{yaml}");
        assert!(!yaml.contains("serde_json"), "{yaml}");
        assert_eq!(Data::from_yaml(&yaml).unwrap(), d);
        assert_eq!(
            d.to_json(),
            r#"{"a":1,"b":1.5,"c":[true,null,"x"],"big":12345678901234}"#
        );
    }

    #[test]
    fn yaml_streams_skip_empty_documents_and_keep_key_order() {
        let docs = Data::from_yaml_stream("---\nkind: A\nz: 1\na: 2\n---\n---\nkind: B\n").unwrap();
        assert_eq!(docs.len(), 2);
        let keys: Vec<_> = docs[0].as_map().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["kind", "z", "a"]);
    }

    #[test]
    fn invalid_yaml_is_an_error_with_a_position() {
        let err = Data::from_yaml_stream("kind: [unclosed\n").unwrap_err();
        assert!(err.contains("line") || err.contains(':'), "{err}");
    }

    #[test]
    fn large_streams_are_read_and_limits_are_named() {
        let doc = "kind: ConfigMap\nmetadata:\n  name: c\n";
        let stream = vec![doc; 1_100].join("---\n");
        assert_eq!(Data::from_yaml_stream(&stream).unwrap().len(), 1_100);
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        let err = Data::from_yaml_stream(&deep).unwrap_err();
        assert!(err.contains("deeper than 256 levels"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_an_error_that_says_what_to_do() {
        let err = Data::from_yaml_stream("metadata:\n  name: c\n  name: d\n").unwrap_err();
        assert!(err.contains("duplicate mapping key: name"), "{err}");
        assert!(err.contains("remove or rename one"), "{err}");
        assert!(!err.contains("DuplicateKeyPolicy"), "{err}");
    }
}
