//! Tilt's `v1alpha1` module: constructors of Tilt's API objects (`cmd`,
//! `ui_button`, `extension_repo`, ...) and of the specs they take
//! (`ui_component_location`, `probe`, ...).
//!
//! `loop` does not implement Tilt's API server. What it does with them:
//! - `ui_button` becomes a button of the dashboard and of the API (on the
//!   resource its `location` names, else on the session), and pressing it runs
//!   the `cmd`s whose `start_on` names it (`start_on_spec(ui_buttons=[...])`);
//! - `extension_repo` and `extension` register where `ext://` extensions are
//!   fetched from (`crate::extensions`);
//! - any other object (and a `cmd` no button starts) logs a one-line warning
//!   naming it and is otherwise ignored;
//! - a spec constructor returns a struct of its arguments, to be passed to an
//!   object constructor (a dict with the same keys works too, as in Tilt).
//!
//! Every object constructor returns `None`. A name Tilt does not have is an
//! error, as for any unknown attribute.

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

/// Tilt's API object kinds (all but `ui_button`, and `cmd` started by one, are
/// accepted and ignored with a warning).
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
        let arg = |key: &str| {
            named
                .iter()
                .find(|(k, _)| k.as_str() == key)
                .map(|(_, v)| *v)
                .filter(|v| !v.is_none())
        };
        let name = arg("name")
            .or_else(|| args.positions(heap).ok().and_then(|mut p| p.next()))
            .and_then(|v| v.unpack_str().map(str::to_owned));
        match (self.name.as_str(), &name) {
            ("ui_button", Some(name)) => {
                let look = ButtonLook {
                    text: arg("text"),
                    location: arg("location"),
                    inputs: arg("inputs"),
                    icon_name: arg("icon_name"),
                };
                ui_button(eval, name, look)?;
                return Ok(Value::new_none());
            }
            ("extension_repo" | "extension", Some(name)) => {
                let positions: Vec<Value> = args
                    .positions(heap)
                    .map(|p| p.collect())
                    .unwrap_or_default();
                let text = |key: &str, at: usize| {
                    arg(key)
                        .or_else(|| positions.get(at).copied())
                        .and_then(|v| v.unpack_str().map(str::to_owned))
                        .unwrap_or_default()
                };
                register_extension(eval, &self.name, name, text)?;
                return Ok(Value::new_none());
            }
            ("cmd", Some(name)) if field(arg("start_on"), "ui_buttons").is_some() => {
                button_cmd(
                    eval,
                    name,
                    arg("args"),
                    arg("dir"),
                    arg("env"),
                    arg("start_on"),
                )?;
                return Ok(Value::new_none());
            }
            _ => {}
        }
        let what = match name {
            Some(name) => format!("v1alpha1.{}({name:?})", self.name),
            None => format!("v1alpha1.{}", self.name),
        };
        let why = if self.name == "cmd" {
            "ignored: loop runs a v1alpha1.cmd only when a ui_button starts it (start_on=v1alpha1.start_on_spec(ui_buttons=[...]))"
        } else {
            "ignored: loop does not implement Tilt's API objects"
        };
        ignored(eval, format!("{what}: {why}")).map_err(starlark::Error::from)?;
        Ok(Value::new_none())
    }
}

/// A field of a spec: a struct field (from a `v1alpha1` spec constructor) or a
/// dict key (Tilt accepts both).
fn field<'v>(v: Option<Value<'v>>, name: &str) -> Option<Value<'v>> {
    let v = v?;
    if let Some(found) = super::field(v, name) {
        return Some(found).filter(|f| !f.is_none());
    }
    let dict = starlark::values::dict::DictRef::from_value(v)?;
    let found = dict
        .iter()
        .find(|(k, _)| k.unpack_str() == Some(name))
        .map(|(_, v)| v)
        .filter(|f| !f.is_none());
    found
}

/// A field by the spec constructor's name, else by the API object's
/// (camelCase, as `loop apply` and ext://uibutton write them).
fn spec_field<'v>(v: Option<Value<'v>>, snake: &str, camel: &str) -> Option<Value<'v>> {
    field(v, snake).or_else(|| field(v, camel))
}

fn text(function: &str, what: &str, v: Value) -> anyhow::Result<String> {
    v.unpack_str().map(str::to_owned).ok_or_else(|| {
        anyhow::anyhow!(
            "{function}: {what} must be a string, got {}",
            crate::values::describe(v)
        )
    })
}

/// The arguments of a `v1alpha1.ui_button` besides its name.
struct ButtonLook<'v> {
    text: Option<Value<'v>>,
    location: Option<Value<'v>>,
    inputs: Option<Value<'v>>,
    icon_name: Option<Value<'v>>,
}

/// Records a `v1alpha1.ui_button`, shown with the resource its location names
/// (`component_type` `Resource`), else with the session.
fn ui_button(eval: &mut Evaluator, name: &str, look: ButtonLook) -> anyhow::Result<()> {
    const F: &str = "v1alpha1.ui_button";
    let ButtonLook {
        text: label,
        location,
        inputs,
        icon_name,
    } = look;
    let inputs = match inputs {
        Some(list) => crate::values::list_items(list)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{F}: inputs must be a list of v1alpha1.ui_input_spec(...), got {}",
                    crate::values::describe(list)
                )
            })?
            .into_iter()
            .map(button_input)
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let icon = icon_name
        .map(|v| self::text(F, "icon_name", v))
        .transpose()?
        .filter(|i| !i.is_empty());
    let text = match label {
        Some(v) => self::text(F, "text", v)?,
        None => name.to_owned(),
    };
    let kind = spec_field(location, "component_type", "componentType")
        .map(|v| self::text(F, "location.component_type", v))
        .transpose()?;
    let id = spec_field(location, "component_id", "componentID")
        .map(|v| self::text(F, "location.component_id", v))
        .transpose()?;
    let resource = match kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("resource") => Some(id.ok_or_else(|| {
            anyhow::anyhow!(
                "{F}: a location of type Resource needs component_id (the resource's name)"
            )
        })?),
        _ => None,
    };
    let env = loop_lang::EvalEnv::of(eval)?;
    let at = crate::decls::call_site(eval);
    let decls = crate::decls::declarations(env);
    let mut decls = decls.borrow_mut();
    // A button declared (or applied) again replaces the one before.
    decls.buttons.retain(|b| b.name != name);
    decls.buttons.push(loop_lang::model::Button {
        name: name.to_owned(),
        text: if text.is_empty() {
            name.to_owned()
        } else {
            text
        },
        resource,
        commands: Vec::new(),
        inputs,
        icon,
        defined_at: at,
    });
    Ok(())
}

/// One `v1alpha1.ui_input_spec` (or the dict ext://uibutton writes, with
/// Tilt's camelCase keys).
fn button_input<'v>(spec: Value<'v>) -> anyhow::Result<loop_lang::model::ButtonInput> {
    use loop_lang::model::InputKind;
    const F: &str = "v1alpha1.ui_input_spec";
    let string = |v: Option<Value<'v>>, snake: &str, camel: &str, default: &str| {
        spec_field(v, snake, camel)
            .map(|x| self::text(F, snake, x))
            .transpose()
            .map(|t| t.unwrap_or_else(|| default.to_owned()))
    };
    let spec = Some(spec);
    let name = string(spec, "name", "name", "")?;
    let is_variable = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_variable {
        anyhow::bail!(
            "{F}: an input's name is the environment variable its commands get (letters, digits, `_`), got {name:?}"
        );
    }
    let label = Some(string(spec, "label", "label", "")?)
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| name.clone());
    let kinds = ["text", "bool", "hidden", "choice"];
    let given: Vec<&str> = kinds
        .into_iter()
        .filter(|k| field(spec, k).is_some())
        .collect();
    let kind = match given[..] {
        ["text"] => {
            let t = field(spec, "text");
            InputKind::Text {
                default: string(t, "default_value", "defaultValue", "")?,
                placeholder: string(t, "placeholder", "placeholder", "")?,
            }
        }
        ["bool"] => {
            let b = field(spec, "bool");
            InputKind::Bool {
                default: spec_field(b, "default_value", "defaultValue")
                    .map(|v| {
                        v.unpack_bool().ok_or_else(|| {
                            anyhow::anyhow!("{F}: input `{name}`: default_value must be True or False")
                        })
                    })
                    .transpose()?
                    .unwrap_or(false),
                true_string: string(b, "true_string", "trueString", "true")?,
                false_string: string(b, "false_string", "falseString", "false")?,
            }
        }
        ["hidden"] => InputKind::Hidden {
            value: string(field(spec, "hidden"), "value", "value", "")?,
        },
        ["choice"] => {
            let choices = crate::values::string_list(
                crate::values::Arg {
                    function: F,
                    name: "choice.choices",
                },
                field(field(spec, "choice"), "choices"),
            )?;
            if choices.is_empty() {
                anyhow::bail!("{F}: input `{name}`: a choice needs choices");
            }
            InputKind::Choice { choices }
        }
        _ => anyhow::bail!(
            "{F}: input `{name}` needs exactly one of text=, bool=, hidden= or choice= (v1alpha1.ui_text_input_spec(...), ...)"
        ),
    };
    Ok(loop_lang::model::ButtonInput { name, label, kind })
}

/// Records `v1alpha1.extension_repo` or `v1alpha1.extension`, for the
/// `ext://` loads that follow (see [`crate::extensions`]).
fn register_extension(
    eval: &mut Evaluator,
    object: &str,
    name: &str,
    text: impl Fn(&str, usize) -> String,
) -> anyhow::Result<()> {
    let env = loop_lang::EvalEnv::of(eval)?;
    let mut decls = crate::decls::declarations(env).borrow_mut();
    if object == "extension_repo" {
        let url = text("url", 1);
        if url.is_empty() {
            anyhow::bail!("v1alpha1.extension_repo({name:?}): url is required (a git URL, e.g. https://github.com/tilt-dev/tilt-extensions or file:///path/to/repo)");
        }
        decls.extension_repos.push(crate::decls::ExtensionRepo {
            name: name.to_owned(),
            url,
            git_ref: text("ref", 2),
        });
    } else {
        let repo_name = text("repo_name", 1);
        if repo_name.is_empty() {
            anyhow::bail!("v1alpha1.extension({name:?}): repo_name is required (the name given to v1alpha1.extension_repo)");
        }
        decls.extensions.push(crate::decls::ExtensionDecl {
            name: name.to_owned(),
            repo_name,
            repo_path: text("repo_path", 2),
        });
    }
    Ok(())
}

/// Records a `v1alpha1.cmd` that buttons start.
fn button_cmd(
    eval: &mut Evaluator,
    name: &str,
    args: Option<Value>,
    dir: Option<Value>,
    env: Option<Value>,
    start_on: Option<Value>,
) -> anyhow::Result<()> {
    const F: &str = "v1alpha1.cmd";
    let a = |n| crate::values::Arg {
        function: F,
        name: n,
    };
    let argv = crate::values::string_list(a("args"), args)?;
    if argv.first().is_none_or(|p| p.is_empty()) {
        anyhow::bail!(
            "{F}: args must hold the program and its arguments, e.g. [\"make\", \"seed\"]"
        );
    }
    let on_buttons = spec_field(start_on, "ui_buttons", "uiButtons");
    let buttons = crate::values::string_list(a("start_on.ui_buttons"), on_buttons)?;
    let mut vars = std::collections::BTreeMap::new();
    for item in crate::values::string_list(a("env"), env)? {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("{F}: env entries look like \"KEY=VALUE\", got {item:?}")
        })?;
        vars.insert(k.to_owned(), v.to_owned());
    }
    let eval_env = loop_lang::EvalEnv::of(eval)?;
    let dir = crate::values::folder(eval_env, a("dir"), dir)?;
    let command = loop_lang::model::ButtonCommand {
        name: name.to_owned(),
        argv,
        dir: eval_env.display(&dir),
        env: vars,
    };
    let decls = crate::decls::declarations(eval_env);
    let mut decls = decls.borrow_mut();
    decls.button_commands.retain(|(_, c)| c.name != name);
    decls.button_commands.push((buttons, command));
    Ok(())
}

/// The variable `local()` sets for its command: the file `loop apply` (Tilt's
/// `tilt apply`) writes the objects it is given to.
pub const APPLY_FILE_VAR: &str = "LOOP_APPLY_FILE";

/// The file one `local()` call's `loop apply`s write to; removed when dropped.
pub struct ApplyFile(std::path::PathBuf);

impl ApplyFile {
    /// A new, empty file only this user may read or write (never one that
    /// someone else placed there first).
    pub fn new() -> std::io::Result<ApplyFile> {
        use std::os::unix::fs::OpenOptionsExt;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("loop-apply-{}-{n}.yaml", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(_) => return Ok(ApplyFile(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Declares what was applied, as Tilt's API server would take it: a
    /// `UIButton` is a `v1alpha1.ui_button`, a `Cmd` a `v1alpha1.cmd`; other
    /// kinds are ignored with a warning.
    pub fn declare(&self, eval: &mut Evaluator) -> anyhow::Result<()> {
        let Ok(text) = std::fs::read_to_string(&self.0) else {
            return Ok(());
        };
        let docs = loop_lang::data::Data::from_yaml_stream(&text)
            .map_err(|e| anyhow::anyhow!("local: what the command gave `loop apply`: {e}"))?;
        let str_at = |doc: &loop_lang::data::Data, keys: &[&str]| {
            doc.path(keys)
                .and_then(loop_lang::data::Data::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        // An object applied again replaces the one before (by kind and name).
        let mut objects: Vec<(String, String, &loop_lang::data::Data)> = Vec::new();
        for doc in docs
            .iter()
            .filter(|d| !matches!(d, loop_lang::data::Data::Null))
        {
            let (kind, name) = (str_at(doc, &["kind"]), str_at(doc, &["metadata", "name"]));
            if name.is_empty() {
                anyhow::bail!(
                    "local: `loop apply` was given a {kind} object without metadata.name"
                );
            }
            objects.retain(|(k, n, _)| (k, n) != (&kind, &name));
            objects.push((kind, name, doc));
        }
        for (kind, name, doc) in objects {
            let spec = doc
                .get("spec")
                .map(|s| crate::values::from_data(s, eval.heap()));
            let get = |key: &str| field(spec, key);
            match kind.as_str() {
                "UIButton" => {
                    let look = ButtonLook {
                        text: get("text"),
                        location: get("location"),
                        inputs: get("inputs"),
                        icon_name: get("iconName"),
                    };
                    ui_button(eval, &name, look)?;
                }
                "Cmd" if field(get("startOn"), "uiButtons").is_some() => {
                    let (args, dir, env) = (get("args"), get("dir"), get("env"));
                    button_cmd(eval, &name, args, dir, env, get("startOn"))?;
                }
                _ => ignored(
                    eval,
                    format!("loop apply: {kind} {name:?}: ignored: loop takes UIButton objects and the Cmd objects they start"),
                )?,
            }
        }
        Ok(())
    }
}

impl Drop for ApplyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Registers Tilt's `v1alpha1` module.
pub fn v1alpha1_namespace(builder: &mut starlark::environment::GlobalsBuilder) {
    builder.set("v1alpha1", V1Alpha1);
}
