//! Conversions between Starlark values and plain data, the `blob` type, and
//! argument unpacking with errors that name the function and the argument.

use std::collections::BTreeMap;
use std::fmt;

use allocative::Allocative;
use anyhow::{anyhow, bail};
use std::path::PathBuf;

use loop_lang::data::Data;
use loop_lang::EvalEnv;
use starlark::starlark_simple_value;
use starlark::values::dict::{AllocDict, DictRef};
use starlark::values::float::StarlarkFloat;
use starlark::values::list::{AllocList, ListRef};
use starlark::values::none::NoneType;
use starlark::values::structs::StructRef;
use starlark::values::tuple::TupleRef;
use starlark::values::{
    Heap, NoSerialize, ProvidesStaticType, StarlarkPagable, StarlarkValue, UnpackValue, Value,
};
use starlark_derive::starlark_value;

/// Text produced by `read_file`, `local` or `blob`: `k8s_yaml` treats it as YAML
/// content, where a plain string is a file name (as in Tilt).
#[derive(Debug, ProvidesStaticType, NoSerialize, StarlarkPagable, Allocative)]
pub struct Blob(pub String);
starlark_simple_value!(Blob);

impl fmt::Display for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[starlark_value(type = "blob")]
impl<'v> StarlarkValue<'v> for Blob {
    fn to_bool(&self) -> bool {
        !self.0.is_empty()
    }

    fn length(&self) -> starlark::Result<i32> {
        Ok(self.0.len() as i32)
    }

    fn equals(&self, other: Value<'v>) -> starlark::Result<bool> {
        Ok(match Blob::from_value(other) {
            Some(b) => b.0 == self.0,
            None => other.unpack_str() == Some(self.0.as_str()),
        })
    }

    fn add(&self, rhs: Value<'v>, heap: Heap<'v>) -> Option<starlark::Result<Value<'v>>> {
        let rhs = Blob::from_value(rhs)
            .map(|b| b.0.as_str())
            .or_else(|| rhs.unpack_str())?;
        Some(Ok(heap.alloc(Blob(format!("{}{}", self.0, rhs)))))
    }
}

/// A string, or the text of a blob.
pub fn text_of(v: Value) -> Option<String> {
    v.unpack_str()
        .map(str::to_owned)
        .or_else(|| Blob::from_value(v).map(|b| b.0.clone()))
}

/// Where a value came from, for error messages: `local_resource: argument `deps``.
#[derive(Clone, Copy)]
pub struct Arg<'a> {
    pub function: &'a str,
    pub name: &'a str,
}

impl fmt::Display for Arg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: argument `{}`", self.function, self.name)
    }
}

pub fn is_none(v: Option<Value>) -> bool {
    v.is_none_or(|v| v.is_none())
}

/// The elements of a list or tuple.
pub fn list_items<'v>(v: Value<'v>) -> Option<Vec<Value<'v>>> {
    if let Some(l) = ListRef::from_value(v) {
        Some(l.content().to_vec())
    } else {
        TupleRef::from_value(v).map(|t| t.content().to_vec())
    }
}

/// A string (or blob).
pub fn string(arg: Arg, v: Value) -> anyhow::Result<String> {
    text_of(v).ok_or_else(|| anyhow!("{arg} must be a string, got {}", describe(v)))
}

/// An optional string: missing, `None` or `""` give `None`.
pub fn opt_string(arg: Arg, v: Option<Value>) -> anyhow::Result<Option<String>> {
    match v {
        Some(v) if !v.is_none() => Ok(Some(string(arg, v)?).filter(|s| !s.is_empty())),
        _ => Ok(None),
    }
}

/// A string or a list of strings (Tilt accepts both for deps, labels, ...).
pub fn string_list(arg: Arg, v: Option<Value>) -> anyhow::Result<Vec<String>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    if let Some(s) = text_of(v) {
        return Ok(vec![s]);
    }
    let items = list_items(v).ok_or_else(|| {
        anyhow!(
            "{arg} must be a string or a list of strings, got {}",
            describe(v)
        )
    })?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            text_of(item)
                .ok_or_else(|| anyhow!("{arg}[{i}] must be a string, got {}", describe(item)))
        })
        .collect()
}

/// Paths given as a string or a list, resolved against the folder of the Loopfile
/// being evaluated, as users see them (root-relative).
pub fn path_list(env: &EvalEnv, arg: Arg, v: Option<Value>) -> anyhow::Result<Vec<String>> {
    Ok(string_list(arg, v)?
        .iter()
        .map(|p| env.display(&env.resolve(p)))
        .collect())
}

/// An optional folder argument resolved against the Loopfile's folder; missing,
/// `None` or `""` mean that folder itself; one that is not an existing folder is an error.
pub fn folder(env: &EvalEnv, arg: Arg, v: Option<Value>) -> anyhow::Result<PathBuf> {
    let Some(dir) = opt_string(arg, v)? else {
        return Ok(env.dir.clone());
    };
    let path = env.resolve(&dir);
    let shown = env.display(&path);
    let shown = if shown == dir {
        format!("{dir:?}")
    } else {
        format!("{dir:?} ({shown})")
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(path),
        Ok(_) => bail!("{arg}: {shown} is a file, not a folder; give the folder to run in"),
        Err(e) => bail!(
            "{arg}: folder {shown} cannot be used: {}; paths are relative to the Loopfile's folder",
            io_reason(&e)
        ),
    }
}

/// Strings as a Starlark list.
pub fn alloc_strings<'v>(heap: Heap<'v>, items: &[String]) -> Value<'v> {
    heap.alloc(AllocList(items.iter().map(|s| heap.alloc(s.as_str()))))
}

/// A dict of strings to strings (env vars, build args).
pub fn string_map(arg: Arg, v: Option<Value>) -> anyhow::Result<BTreeMap<String, String>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(BTreeMap::new());
    };
    let dict = DictRef::from_value(v)
        .ok_or_else(|| anyhow!("{arg} must be a dict, got {}", describe(v)))?;
    dict.iter()
        .map(|(k, val)| {
            let key = k
                .unpack_str()
                .ok_or_else(|| anyhow!("{arg}: keys must be strings, got {}", describe(k)))?;
            let value = scalar_text(val)
                .ok_or_else(|| anyhow!("{arg}[{key:?}] must be a string, got {}", describe(val)))?;
            Ok((key.to_owned(), value))
        })
        .collect()
}

/// Environment variables: a string map whose names are not empty and hold no `=`
/// or NUL, and whose values hold no NUL (the OS could not pass them on).
pub fn env_map(arg: Arg, v: Option<Value>) -> anyhow::Result<BTreeMap<String, String>> {
    let env = string_map(arg, v)?;
    for (key, value) in &env {
        if key.is_empty() {
            bail!("{arg}: a variable name is empty; give each variable a name, e.g. {{\"PORT\": \"8080\"}}");
        }
        if let Some((name, rest)) = key.split_once('=') {
            let meant = format!("{rest}={value}");
            bail!("{arg}: variable name {key:?} contains `=`, which a name cannot hold; to set {name} to {meant:?}, write {{{name:?}: {meant:?}}}");
        }
        if key.contains('\0') || value.contains('\0') {
            bail!("{arg}[{key:?}] contains a NUL character, which an environment variable cannot hold");
        }
    }
    Ok(env)
}

/// A string, number or bool as text (env values are often written as numbers).
fn scalar_text(v: Value) -> Option<String> {
    if let Some(s) = text_of(v) {
        return Some(s);
    }
    if let Some(b) = v.unpack_bool() {
        return Some(b.to_string());
    }
    i64::unpack_value(v).ok().flatten().map(|i| i.to_string())
}

/// A non-negative integer that fits `T`.
pub fn int<T: TryFrom<i64>>(arg: Arg, v: Value) -> anyhow::Result<T> {
    let i = i64::unpack_value(v)
        .ok()
        .flatten()
        .ok_or_else(|| anyhow!("{arg} must be an int, got {}", describe(v)))?;
    T::try_from(i).map_err(|_| anyhow!("{arg} is out of range: {i}"))
}

/// A number (int or float).
pub fn number(arg: Arg, v: Value) -> anyhow::Result<f64> {
    if let Some(i) = i64::unpack_value(v).ok().flatten() {
        return Ok(i as f64);
    }
    StarlarkFloat::unpack_value(v)
        .ok()
        .flatten()
        .map(|f| f.0)
        .ok_or_else(|| anyhow!("{arg} must be a number, got {}", describe(v)))
}

/// `value (type)` for error messages, shortened.
pub fn describe(v: Value) -> String {
    let mut repr = v.to_repr();
    if repr.len() > 40 {
        let cut = (0..=37)
            .rev()
            .find(|&i| repr.is_char_boundary(i))
            .unwrap_or(0);
        repr.truncate(cut);
        repr.push_str("...");
    }
    format!("{} `{repr}`", v.get_type())
}

/// How deeply values may nest to be encoded.
const MAX_ENCODE_DEPTH: usize = 1_000;

/// A Starlark value as plain data (for encoding and for `k8s_yaml` of values).
/// A list or dict that contains itself, or nesting deeper than
/// [`MAX_ENCODE_DEPTH`], is an error (it used to overflow the stack).
pub fn to_data(v: Value) -> anyhow::Result<Data> {
    to_data_within(v, &mut Vec::new())
}

/// [`to_data`] with the containers being encoded, outermost first.
fn to_data_within<'v>(
    v: Value<'v>,
    open: &mut Vec<starlark::values::ValueIdentity<'v>>,
) -> anyhow::Result<Data> {
    if v.is_none() {
        return Ok(Data::Null);
    }
    if let Some(b) = v.unpack_bool() {
        return Ok(Data::Bool(b));
    }
    if let Some(s) = text_of(v) {
        return Ok(Data::String(s));
    }
    if let Ok(Some(i)) = i64::unpack_value(v) {
        return Ok(Data::Int(i));
    }
    if let Ok(Some(f)) = StarlarkFloat::unpack_value(v) {
        return Ok(Data::Float(f.0));
    }
    let container = list_items(v).is_some()
        || DictRef::from_value(v).is_some()
        || StructRef::from_value(v).is_some();
    if container {
        if open.contains(&v.identity()) {
            bail!(
                "cannot encode a value that contains itself ({} inside itself)",
                v.get_type()
            );
        }
        if open.len() >= MAX_ENCODE_DEPTH {
            bail!("cannot encode a value nested more than {MAX_ENCODE_DEPTH} levels deep");
        }
        open.push(v.identity());
        let data = container_data(v, open);
        open.pop();
        return data;
    }
    bail!("cannot encode {}: only None, bools, numbers, strings, lists, dicts and structs can be encoded", describe(v))
}

/// A list, dict or struct as plain data.
fn container_data<'v>(
    v: Value<'v>,
    open: &mut Vec<starlark::values::ValueIdentity<'v>>,
) -> anyhow::Result<Data> {
    if let Some(items) = list_items(v) {
        return items
            .into_iter()
            .map(|item| to_data_within(item, open))
            .collect::<anyhow::Result<_>>()
            .map(Data::List);
    }
    if let Some(dict) = DictRef::from_value(v) {
        let mut entries = Vec::new();
        for (k, val) in dict.iter() {
            let key = match to_data_within(k, open)? {
                Data::String(s) => s,
                Data::Int(i) => i.to_string(),
                Data::Bool(b) => b.to_string(),
                _ => bail!(
                    "dict keys must be strings or numbers to encode, got {}",
                    describe(k)
                ),
            };
            entries.push((key, to_data_within(val, open)?));
        }
        return Ok(Data::Map(entries));
    }
    if let Some(s) = StructRef::from_value(v) {
        let entries = s
            .iter()
            .map(|(k, val)| Ok((k.as_str().to_owned(), to_data_within(val, open)?)))
            .collect::<anyhow::Result<_>>()?;
        return Ok(Data::Map(entries));
    }
    bail!("cannot encode {}: only None, bools, numbers, strings, lists, dicts and structs can be encoded", describe(v))
}

/// Plain data as a Starlark value.
pub fn from_data<'v>(d: &Data, heap: Heap<'v>) -> Value<'v> {
    match d {
        Data::Null => Value::new_none(),
        Data::Bool(b) => Value::new_bool(*b),
        Data::Int(i) => heap.alloc(*i),
        Data::Float(f) => heap.alloc(*f),
        Data::String(s) => heap.alloc(s.as_str()),
        Data::List(items) => heap.alloc(AllocList(items.iter().map(|i| from_data(i, heap)))),
        Data::Map(entries) => heap.alloc(AllocDict(
            entries
                .iter()
                .map(|(k, v)| (heap.alloc(k.as_str()), from_data(v, heap))),
        )),
    }
}

/// `None` as a return value.
pub const NONE: NoneType = NoneType;

/// An I/O error in words (without Rust's "(os error N)").
pub fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    }
}
