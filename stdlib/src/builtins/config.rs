//! `config.define_*`, `config.parse()` and `config.set_enabled_resources`: user
//! flags given after `--` on the command line (`loop run -- --env=dev web`).

use anyhow::{anyhow, bail};
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::dict::AllocDict;
use starlark::values::none::NoneType;
use starlark::values::{Heap, Value};

use crate::decls::{declarations, ConfigFlag, FlagKind};
use crate::values::{string_list, Arg, NONE};

/// Registers the `config` namespace, with `config.main_path`, `config.main_dir`
/// and `config.tilt_subcommand` of this evaluation.
pub fn config_namespace(builder: &mut GlobalsBuilder, context: &crate::Context) {
    builder.namespace("config", |config| {
        config_functions(config);
        let main_path = context.main_path.to_string_lossy().into_owned();
        let main_dir = context
            .main_path
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        config.set("main_path", main_path);
        config.set("main_dir", main_dir);
        config.set("tilt_subcommand", context.subcommand.clone());
    });
}

/// A parsed flag value.
#[derive(Debug, PartialEq)]
pub enum FlagValue {
    String(String),
    Bool(bool),
    List(Vec<String>),
}

/// Parses `args` against the defined flags. Only flags that were given appear.
pub fn parse_args(
    flags: &[ConfigFlag],
    args: &[String],
) -> anyhow::Result<Vec<(String, FlagValue)>> {
    let mut values: Vec<(String, FlagValue)> = Vec::new();
    let defined = || {
        flags
            .iter()
            .map(|f| format!("--{}", f.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut set = |flag: &ConfigFlag, value: String| -> anyhow::Result<()> {
        let parsed = match flag.kind {
            FlagKind::String => FlagValue::String(value),
            FlagKind::Bool => FlagValue::Bool(match value.as_str() {
                "true" | "1" | "" => true,
                "false" | "0" => false,
                other => bail!("config: --{} takes true or false, got {other:?}", flag.name),
            }),
            FlagKind::StringList => FlagValue::List(vec![value]),
        };
        match (values.iter_mut().find(|(n, _)| *n == flag.name), parsed) {
            (Some((_, FlagValue::List(list))), FlagValue::List(more)) => list.extend(more),
            (Some(_), _) => bail!("config: --{} is given more than once", flag.name),
            (None, parsed) => values.push((flag.name.clone(), parsed)),
        }
        Ok(())
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if let Some(flag_text) = arg.strip_prefix("--") {
            let (name, inline) = match flag_text.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (flag_text, None),
            };
            let flag = flags.iter().find(|f| f.name == name).ok_or_else(|| {
                anyhow!(
                    "config: unknown flag --{name}; the Loopfile defines: {}",
                    if flags.is_empty() {
                        "no flags".to_owned()
                    } else {
                        defined()
                    }
                )
            })?;
            let value = match (inline, flag.kind) {
                (Some(v), _) => v,
                (None, FlagKind::Bool) => String::new(),
                (None, _) => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| anyhow!("config: --{name} needs a value"))?;
                    i += 1;
                    v.clone()
                }
            };
            set(flag, value)?;
        } else {
            let flag = flags.iter().find(|f| f.positional).ok_or_else(|| {
                anyhow!("config: unexpected argument {arg:?}; no flag was defined with args=True")
            })?;
            set(flag, arg.clone())?;
        }
    }
    Ok(values)
}

fn define(
    eval: &Evaluator,
    name: &str,
    kind: FlagKind,
    args: bool,
    usage: &str,
) -> anyhow::Result<NoneType> {
    let env = EvalEnv::of(eval)?;
    let mut decls = declarations(env).borrow_mut();
    if name.is_empty() || name.starts_with('-') {
        bail!("config: flag name {name:?} must be non-empty and not start with `-`");
    }
    if decls.config_flags.iter().any(|f| f.name == name) {
        bail!("config: flag {name:?} is defined twice");
    }
    if args && decls.config_flags.iter().any(|f| f.positional) {
        bail!("config: only one flag can take the positional arguments (args=True)");
    }
    decls.config_flags.push(ConfigFlag {
        name: name.to_owned(),
        kind,
        positional: args,
        usage: usage.to_owned(),
    });
    Ok(NONE)
}

#[starlark_module]
fn config_functions(builder: &mut GlobalsBuilder) {
    /// Declares a string flag (`-- --env=dev`) for `config.parse()`.
    ///
    /// Tilt: the same.
    ///
    /// # Arguments
    /// * `name`: the flag's name, given as `--name` after `--`.
    /// * `args`: True: the positional arguments after `--` go to this flag (at most one flag).
    /// * `usage`: shown when an unknown flag is given.
    fn define_string<'v>(
        name: &str,
        #[starlark(default = false)] args: bool,
        #[starlark(default = "")] usage: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        define(eval, name, FlagKind::String, args, usage)
    }

    /// Declares a boolean flag (`-- --debug`) for `config.parse()`.
    ///
    /// Tilt: the same.
    ///
    /// # Arguments
    /// * `name`: the flag's name, given as `--name` after `--`.
    /// * `args`: True: the positional arguments after `--` go to this flag (at most one flag).
    /// * `usage`: shown when an unknown flag is given.
    fn define_bool<'v>(
        name: &str,
        #[starlark(default = false)] args: bool,
        #[starlark(default = "")] usage: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        define(eval, name, FlagKind::Bool, args, usage)
    }

    /// Declares a repeatable string flag (`-- --svc=a --svc=b`), a list for `config.parse()`.
    ///
    /// Tilt: the same.
    ///
    /// # Arguments
    /// * `name`: the flag's name, given as `--name` after `--`.
    /// * `args`: True: the positional arguments after `--` go to this flag (at most one flag).
    /// * `usage`: shown when an unknown flag is given.
    fn define_string_list<'v>(
        name: &str,
        #[starlark(default = false)] args: bool,
        #[starlark(default = "")] usage: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        define(eval, name, FlagKind::StringList, args, usage)
    }

    /// The flags given after `--`, as a dict of the ones that were set.
    fn parse<'v>(eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        declarations(env).borrow_mut().config_parsed = true;
        let decls = declarations(env).borrow();
        let parsed = parse_args(&decls.config_flags, &decls.config_args)?;
        let heap: Heap = eval.heap();
        let value = |v: &FlagValue| match v {
            FlagValue::String(s) => heap.alloc(s.as_str()),
            FlagValue::Bool(b) => Value::new_bool(*b),
            FlagValue::List(l) => crate::values::alloc_strings(heap, l),
        };
        Ok(heap.alloc(AllocDict(
            parsed
                .iter()
                .map(|(k, v)| (heap.alloc(k.as_str()), value(v))),
        )))
    }

    /// Enables no resource at start (Tilt's `config.clear_enabled_resources`):
    /// they are enabled by hand once `loop run` runs (`loop enable NAME`).
    fn clear_enabled_resources<'v>(eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<NoneType> {
        let env = EvalEnv::of(eval)?;
        declarations(env).borrow_mut().settings.enabled_resources = Some(Vec::new());
        Ok(NONE)
    }

    /// Runs only these resources (and what they depend on).
    ///
    /// # Arguments
    /// * `resources`: resource names; an unknown one is an error.
    fn set_enabled_resources<'v>(
        resources: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let names = string_list(
            Arg {
                function: "config.set_enabled_resources",
                name: "resources",
            },
            Some(resources),
        )?;
        let env = EvalEnv::of(eval)?;
        declarations(env).borrow_mut().settings.enabled_resources = Some(names);
        Ok(NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(name: &str, kind: FlagKind, positional: bool) -> ConfigFlag {
        ConfigFlag {
            name: name.into(),
            kind,
            positional,
            usage: String::new(),
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags_and_positionals() {
        let flags = [
            flag("env", FlagKind::String, false),
            flag("debug", FlagKind::Bool, false),
            flag("to-run", FlagKind::StringList, true),
        ];
        let parsed = parse_args(&flags, &args(&["--env", "dev", "web", "--debug", "api"])).unwrap();
        assert_eq!(
            parsed,
            vec![
                ("env".into(), FlagValue::String("dev".into())),
                (
                    "to-run".into(),
                    FlagValue::List(vec!["web".into(), "api".into()])
                ),
                ("debug".into(), FlagValue::Bool(true)),
            ]
        );
    }

    #[test]
    fn unknown_flags_and_stray_positionals_are_errors() {
        let flags = [flag("env", FlagKind::String, false)];
        let err = parse_args(&flags, &args(&["--nope"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown flag --nope") && err.contains("--env"),
            "{err}"
        );
        let err = parse_args(&flags, &args(&["x"])).unwrap_err().to_string();
        assert!(err.contains("args=True"), "{err}");
        assert!(parse_args(&flags, &args(&["--env"])).is_err());
    }
}
