//! Reading files and running commands during evaluation, and JSON/YAML codecs.
//! Every file read here is recorded, so that its change re-evaluates the Loopfile.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail};
use loop_lang::data::Data;
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::list::AllocList;
use starlark::values::none::NoneType;
use starlark::values::{Heap, Value};

use crate::values::{
    self, env_map, from_data, io_reason, list_items, text_of, to_data, Arg, Blob, NONE,
};

/// Reads a file for a built-in, recording it; `default` answers for a missing file.
fn read<'v>(
    env: &EvalEnv,
    function: &str,
    path: &str,
    default: Option<Value<'v>>,
) -> anyhow::Result<Result<String, Value<'v>>> {
    let file = env.resolve(path);
    env.loader.record_read(&env.file, &file);
    match loop_lang::project::read_text(&file) {
        Ok(text) => Ok(Ok(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => match default {
            Some(d) => Ok(Err(d)),
            None => bail!(
                "{function}: {} does not exist (pass default=... to allow that)",
                env.display(&file)
            ),
        },
        Err(err) => bail!(
            "{function}: cannot read {}: {}",
            env.display(&file),
            io_reason(&err)
        ),
    }
}

fn parse_json(function: &str, origin: &str, text: &str) -> anyhow::Result<Data> {
    Data::from_json(text).map_err(|e| anyhow!("{function}: invalid JSON in {origin}: {e}"))
}

fn parse_yaml(function: &str, origin: &str, text: &str) -> anyhow::Result<Data> {
    Data::from_yaml(text).map_err(|e| anyhow!("{function}: invalid YAML in {origin}: {e}"))
}

fn parse_yaml_stream(function: &str, origin: &str, text: &str) -> anyhow::Result<Vec<Data>> {
    Data::from_yaml_stream(text).map_err(|e| anyhow!("{function}: invalid YAML in {origin}: {e}"))
}

fn text_arg(function: &str, v: Value) -> anyhow::Result<String> {
    text_of(v).ok_or_else(|| {
        anyhow!(
            "{function}: expected a string or blob, got {}",
            values::describe(v)
        )
    })
}

fn list_files(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if recursive {
                list_files(&path, true, out)?;
            }
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Runs a command during evaluation as `local()` does (with the `os.putenv`
/// changes so far, then `extra_env`, bounded in time and output) and returns its
/// standard output; a failure names `function`, the command, its exit code and
/// its standard error.
pub(crate) fn run_tool(
    eval_env: &EvalEnv,
    function: &str,
    argv: &[String],
    shown: &str,
    workdir: &Path,
    extra_env: &std::collections::BTreeMap<String, String>,
    input: Option<String>,
) -> anyhow::Result<String> {
    let mut process = Command::new(&argv[0]);
    // os.putenv()/os.unsetenv() so far, then this call's own `env`.
    for (key, value) in &crate::decls::declarations(eval_env).borrow().env {
        match value {
            Some(value) => process.env(key, value),
            None => process.env_remove(key),
        };
    }
    process
        .args(&argv[1..])
        .current_dir(workdir)
        .envs(extra_env);
    let output = super::bounded::run(process, input, super::bounded::timeout()).map_err(|stop| match stop {
        super::bounded::Stopped::Io(e) => anyhow!(
            "{function}: cannot run `{}` in {}: {}",
            argv[0],
            eval_env.display(workdir),
            io_reason(&e)
        ),
        super::bounded::Stopped::Timeout(limit) => anyhow!(
            "{function}: `{shown}` ran longer than {}s and was stopped; raise the limit with LOOP_LOCAL_TIMEOUT (e.g. LOOP_LOCAL_TIMEOUT=10m)",
            limit.as_secs()
        ),
        super::bounded::Stopped::TooMuchOutput => anyhow!(
            "{function}: `{shown}` wrote more than {} MiB to stdout and was stopped",
            super::bounded::MAX_STDOUT >> 20
        ),
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let code = output
            .status
            .code()
            .map_or("a signal".to_owned(), |c| format!("code {c}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "{function}: command `{shown}` failed with {code}\nstderr:\n{}",
            stderr.trim_end()
        );
    }
    Ok(stdout)
}

#[starlark_module]
pub fn file_builtins(builder: &mut GlobalsBuilder) {
    /// The contents of a file as a blob (the file is watched).
    ///
    /// # Arguments
    /// * `path`: relative to this file's folder.
    /// * `default`: returned when the file does not exist (else that is an error).
    fn read_file<'v>(
        path: &str,
        default: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        Ok(match read(env, "read_file", path, default)? {
            Ok(text) => eval.heap().alloc(Blob(text)),
            Err(default) => default,
        })
    }

    /// A JSON file, decoded (the file is watched).
    fn read_json<'v>(
        path: &str,
        default: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        Ok(match read(env, "read_json", path, default)? {
            Ok(text) => from_data(&parse_json("read_json", path, &text)?, eval.heap()),
            Err(default) => default,
        })
    }

    /// A YAML file holding one document, decoded (the file is watched).
    fn read_yaml<'v>(
        path: &str,
        default: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        Ok(match read(env, "read_yaml", path, default)? {
            Ok(text) => from_data(&parse_yaml("read_yaml", path, &text)?, eval.heap()),
            Err(default) => default,
        })
    }

    /// A YAML file of several documents, as a list (the file is watched).
    fn read_yaml_stream<'v>(
        path: &str,
        default: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        Ok(match read(env, "read_yaml_stream", path, default)? {
            Ok(text) => from_data(
                &Data::List(parse_yaml_stream("read_yaml_stream", path, &text)?),
                eval.heap(),
            ),
            Err(default) => default,
        })
    }

    /// A value as JSON text.
    fn encode_json<'v>(obj: Value<'v>) -> anyhow::Result<String> {
        Ok(to_data(obj)
            .map_err(|e| anyhow!("encode_json: {e}"))?
            .to_json_pretty())
    }

    /// JSON text (a string or a blob) as a value.
    fn decode_json<'v>(json: Value<'v>, heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        let text = text_arg("decode_json", json)?;
        Ok(from_data(
            &parse_json("decode_json", "the argument", &text)?,
            heap,
        ))
    }

    /// A value as a YAML document (a blob).
    fn encode_yaml<'v>(obj: Value<'v>) -> anyhow::Result<Blob> {
        let data = to_data(obj).map_err(|e| anyhow!("encode_yaml: {e}"))?;
        Ok(Blob(
            data.to_yaml().map_err(|e| anyhow!("encode_yaml: {e}"))?,
        ))
    }

    /// One YAML document (a string or a blob) as a value.
    fn decode_yaml<'v>(yaml: Value<'v>, heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        let text = text_arg("decode_yaml", yaml)?;
        Ok(from_data(
            &parse_yaml("decode_yaml", "the argument", &text)?,
            heap,
        ))
    }

    /// A list of values as a YAML stream of documents (a blob).
    fn encode_yaml_stream<'v>(objs: Value<'v>) -> anyhow::Result<Blob> {
        let items = list_items(objs).ok_or_else(|| {
            anyhow!(
                "encode_yaml_stream: expected a list, got {}",
                values::describe(objs)
            )
        })?;
        let docs = items
            .into_iter()
            .map(to_data)
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|e| anyhow!("encode_yaml_stream: {e}"))?;
        Ok(Blob(
            Data::to_yaml_stream(&docs).map_err(|e| anyhow!("encode_yaml_stream: {e}"))?,
        ))
    }

    /// A YAML stream (a string or a blob) as a list of its documents.
    fn decode_yaml_stream<'v>(yaml: Value<'v>, heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        let text = text_arg("decode_yaml_stream", yaml)?;
        Ok(from_data(
            &Data::List(parse_yaml_stream(
                "decode_yaml_stream",
                "the argument",
                &text,
            )?),
            heap,
        ))
    }

    /// Text as a blob (what `k8s_yaml` takes as content rather than a file name).
    fn blob<'v>(text: &str) -> anyhow::Result<Blob> {
        Ok(Blob(text.to_owned()))
    }

    /// The files in a folder (absolute paths, sorted); the folder is watched.
    ///
    /// # Arguments
    /// * `directory`: relative to this file's folder.
    /// * `recursive`: True: the files of its subfolders too.
    fn listdir<'v>(
        directory: &str,
        #[starlark(default = false)] recursive: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        let dir = env.resolve(directory);
        env.loader.record_read(&env.file, &dir);
        let mut files = Vec::new();
        list_files(&dir, recursive, &mut files).map_err(|e| {
            anyhow!(
                "listdir: cannot list {}: {}",
                env.display(&dir),
                io_reason(&e)
            )
        })?;
        let heap = eval.heap();
        Ok(heap.alloc(AllocList(
            files
                .iter()
                .map(|f| heap.alloc(f.to_string_lossy().as_ref())),
        )))
    }

    /// Re-evaluates the Loopfile when this file or folder changes.
    fn watch_file<'v>(path: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<NoneType> {
        let env = EvalEnv::of(eval)?;
        env.loader.record_read(&env.file, &env.resolve(path));
        Ok(NONE)
    }

    /// Runs a command now, during evaluation, and returns its standard output as a blob.
    /// Fails (with the exit code and standard error) when the command fails.
    ///
    /// Tilt: the same arguments; bounded to 120 s (`LOOP_LOCAL_TIMEOUT`) and
    /// 64 MiB of output, and its process group is killed when a bound is hit.
    ///
    /// # Arguments
    /// * `command`: a shell string (`sh -c`) or an argv list.
    /// * `quiet`: True: its output is not echoed to the log.
    /// * `command_bat`: Windows only; ignored.
    /// * `echo_off`: True: the command itself is not echoed.
    /// * `env`: extra environment variables (a dict of strings).
    /// * `dir`: the folder it runs in (default: this file's folder).
    /// * `stdin`: text written to its standard input.
    fn local<'v>(
        command: Value<'v>,
        #[starlark(default = false)] quiet: bool,
        #[starlark(default = "")] command_bat: &str,
        #[starlark(default = false)] echo_off: bool,
        env: Option<Value<'v>>,
        dir: Option<Value<'v>>,
        stdin: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Blob> {
        const F: &str = "local";
        let _ = command_bat;
        let a = |name| Arg { function: F, name };
        let eval_env = EvalEnv::of(eval)?;
        let cmd = super::args::command(a("command"), Some(command))?
            .ok_or_else(|| anyhow!("local: the command is empty"))?;
        let workdir = values::folder(eval_env, a("dir"), dir)?;
        let input = match stdin.filter(|v| !v.is_none()) {
            Some(v) => Some(text_arg("local: argument `stdin`", v)?),
            None => None,
        };
        let argv = cmd.argv();
        if !echo_off {
            eval_env
                .loader
                .log(&eval_env.file, false, format!("local: {}", cmd.display()));
        }
        // What the command applies with `loop apply` (ext://uibutton's buttons).
        let applied = super::v1alpha1::ApplyFile::new()
            .map_err(|e| anyhow!("local: cannot create a file in the temporary folder: {e}"))?;
        let mut env = env_map(a("env"), env)?;
        env.insert(
            super::v1alpha1::APPLY_FILE_VAR.to_owned(),
            applied.path().to_string_lossy().into_owned(),
        );
        let stdout = run_tool(eval_env, F, &argv, &cmd.display(), &workdir, &env, input)?;
        applied.declare(eval)?;
        if !quiet && !echo_off && !stdout.trim().is_empty() {
            eval_env
                .loader
                .log(&eval_env.file, false, stdout.trim_end().to_owned());
        }
        Ok(Blob(stdout))
    }
}
