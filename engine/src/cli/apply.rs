//! `loop apply -f FILE`: Tilt's `tilt apply`, for the extensions that create API
//! objects with it from a Tiltfile's `local()` (ext://uibutton's buttons). `loop`
//! has no API server: the objects go to the evaluation whose `local()` runs the
//! command (the file `LOOP_APPLY_FILE` names), which declares the kinds it
//! knows (see `loop_stdlib::builtins::v1alpha1::ApplyFile`).

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use loop_stdlib::builtins::v1alpha1::APPLY_FILE_VAR;

pub fn run(file: &str) -> anyhow::Result<ExitCode> {
    let Some(target) = std::env::var_os(APPLY_FILE_VAR) else {
        bail!(
            "loop apply: there is no API server to apply to: `loop apply` works only in a command \
             that a Loopfile's local() runs (as Tilt extensions such as ext://uibutton run `tilt apply`); \
             declare buttons with v1alpha1.ui_button(...) instead"
        );
    };
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("loop apply: cannot read the standard input")?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("loop apply: cannot read {file}"))?;
    }
    let docs = loop_lang::data::Data::from_yaml_stream(&text)
        .map_err(|e| anyhow::anyhow!("loop apply: {file}: {e}"))?;
    // The file local() created for this command (never one made here).
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(&target)
        .with_context(|| format!("loop apply: cannot write {}", target.to_string_lossy()))?;
    writeln!(out, "{text}\n---").context("loop apply: cannot write the objects")?;
    for doc in &docs {
        let at = |keys: &[&str]| {
            doc.path(keys)
                .and_then(loop_lang::data::Data::as_str)
                .unwrap_or("?")
        };
        crate::report::out_line(&format!(
            "{} {} declared",
            at(&["kind"]).to_lowercase(),
            at(&["metadata", "name"])
        ));
    }
    Ok(ExitCode::SUCCESS)
}
