//! The built-in functions, grouped by what they declare or read.

pub mod args;
pub mod bounded;
pub mod compose;
pub mod compose_file;
pub mod config;
pub mod custom_deploy;
pub mod docker_compose;
pub mod files;
pub mod images;
pub mod k8s;
pub mod live_update;
pub mod local;
pub mod os;
pub mod release;
pub mod render;
pub mod settings;
pub mod tilt;
pub mod v1alpha1;

use starlark::values::structs::{AllocStruct, StructRef};
use starlark::values::{Heap, Value};

/// Field naming what a struct made by a built-in is (`probe`, `sync`, ...).
const KIND_FIELD: &str = "__loop_kind";

/// A struct tagged as made by the built-in `kind`.
pub fn tagged<'v>(heap: Heap<'v>, kind: &str, fields: Vec<(&str, Value<'v>)>) -> Value<'v> {
    let mut all = vec![(KIND_FIELD, heap.alloc(kind))];
    all.extend(fields);
    heap.alloc(AllocStruct(all))
}

/// The kind of a tagged struct, if `v` is one.
pub fn kind_of(v: Value) -> Option<String> {
    field(v, KIND_FIELD).and_then(|k| k.unpack_str().map(str::to_owned))
}

/// A field of a struct (`None` when absent or when `v` is not a struct).
pub fn field<'v>(v: Value<'v>, name: &str) -> Option<Value<'v>> {
    StructRef::from_value(v)?
        .iter()
        .find(|(k, _)| k.as_str() == name)
        .map(|(_, v)| v)
}
