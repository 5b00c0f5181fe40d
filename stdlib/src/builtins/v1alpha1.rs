//! Tilt's `v1alpha1` module: constructors of Tilt's API objects (`cmd`,
//! `ui_button`, `extension_repo`, ...) and of the specs they take
//! (`ui_component_location`, `probe`, ...).
//!
//! `loop` does not implement Tilt's API server, so a Tiltfile that calls them
//! still evaluates: an object constructor logs a one-line warning naming the
//! object and is otherwise ignored (it returns `None`); a spec constructor
//! returns a struct of its arguments, to be passed to an object constructor.
//! A name Tilt does not have is an error, as for any unknown attribute.

use std::fmt;

use allocative::Allocative;
use starlark::eval::{Arguments, Evaluator};
use starlark::starlark_simple_value;
use starlark::values::structs::AllocStruct;
use starlark::values::{
    Heap, NoSerialize, ProvidesStaticType, StarlarkPagable, StarlarkValue, Value,
};
use starlark_derive::starlark_value;

use super::tilt::ignored;

/// Tilt's API object kinds: constructing one is accepted and ignored with a warning.
pub const OBJECTS: &[&str] = &[
    "cmd",
    "config_map",
    "extension",
    "extension_repo",
    "file_watch",
    "kubernetes_apply",
    "kubernetes_discovery",
    "ui_button",
];

/// The specs Tilt's API objects take: their constructors return a struct.
pub const SPECS: &[&str] = &[
    "config_map_disable_source",
    "disable_source",
    "exec_action",
    "forward",
    "handler",
    "http_get_action",
    "http_header",
    "ignore_def",
    "kubernetes_apply_cmd",
    "kubernetes_discovery_template_spec",
    "kubernetes_image_locator",
    "kubernetes_image_object_descriptor",
    "kubernetes_watch_ref",
    "label_selector",
    "label_selector_requirement",
    "object_selector",
    "pod_log_stream_template_spec",
    "port_forward_template_spec",
    "probe",
    "restart_on_spec",
    "start_on_spec",
    "tcp_socket_action",
    "ui_bool_input_spec",
    "ui_choice_input_spec",
    "ui_component_location",
    "ui_hidden_input_spec",
    "ui_input_spec",
    "ui_text_input_spec",
];

/// The `v1alpha1` namespace.
#[derive(Debug, ProvidesStaticType, NoSerialize, StarlarkPagable, Allocative)]
pub struct V1Alpha1;
starlark_simple_value!(V1Alpha1);

impl fmt::Display for V1Alpha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v1alpha1")
    }
}

#[starlark_value(type = "v1alpha1")]
impl<'v> StarlarkValue<'v> for V1Alpha1 {
    fn get_attr(&self, attribute: &str, heap: Heap<'v>) -> Option<Value<'v>> {
        OBJECTS
            .iter()
            .chain(SPECS)
            .find(|n| **n == attribute)
            .map(|name| {
                heap.alloc(Constructor {
                    name: (*name).to_owned(),
                })
            })
    }

    fn has_attr(&self, attribute: &str, _heap: Heap<'v>) -> bool {
        OBJECTS.contains(&attribute) || SPECS.contains(&attribute)
    }

    fn dir_attr(&self) -> Vec<String> {
        OBJECTS
            .iter()
            .chain(SPECS)
            .map(|n| (*n).to_owned())
            .collect()
    }
}

/// `v1alpha1.NAME`, callable with any arguments.
#[derive(Debug, ProvidesStaticType, NoSerialize, StarlarkPagable, Allocative)]
pub struct Constructor {
    name: String,
}
starlark_simple_value!(Constructor);

impl fmt::Display for Constructor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v1alpha1.{}", self.name)
    }
}

#[starlark_value(type = "function")]
impl<'v> StarlarkValue<'v> for Constructor {
    fn invoke(
        &self,
        _me: Value<'v>,
        args: &Arguments<'v, '_>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let named = args.names_map()?;
        let heap = eval.heap();
        if SPECS.contains(&self.name.as_str()) {
            let fields: Vec<(String, Value<'v>)> = named
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), *v))
                .collect();
            return Ok(heap.alloc(AllocStruct(fields)));
        }
        let name = named
            .iter()
            .find(|(k, _)| k.as_str() == "name")
            .map(|(_, v)| *v)
            .or_else(|| args.positions(heap).ok().and_then(|mut p| p.next()))
            .and_then(|v| v.unpack_str().map(str::to_owned));
        let what = match name {
            Some(name) => format!("v1alpha1.{}({name:?})", self.name),
            None => format!("v1alpha1.{}", self.name),
        };
        ignored(
            eval,
            format!("{what}: ignored: loop does not implement Tilt's API objects"),
        )
        .map_err(starlark::Error::from)?;
        Ok(Value::new_none())
    }
}
