//! Argument parsers shared by the resource and image built-ins: resource
//! names, commands, trigger modes, links, and relative paths.

use anyhow::{anyhow, bail};
use loop_lang::model::{Cmd, Link, TriggerMode};
use starlark::values::Value;

use super::{field, kind_of};
use crate::values::{self, list_items, string_list, Arg};

/// Validates a resource name.
pub fn check_name(function: &str, name: &str) -> anyhow::Result<()> {
    if name.is_empty() {
        bail!("{function}: the resource name is empty");
    }
    // As in Tilt, a name may hold spaces and punctuation ('make manifests',
    // 'bootstrap (secrets)'); a slash, a tab or a line break it may not.
    if let Some(c) = name
        .chars()
        .find(|c| (c.is_whitespace() && *c != ' ') || c.is_control() || *c == '/')
    {
        bail!("{function}: resource name {name:?} contains {c:?}; use letters, digits, spaces and punctuation other than `/`");
    }
    if name.trim() != name {
        bail!("{function}: resource name {name:?} starts or ends with a space");
    }
    Ok(())
}

/// A `cmd`/`serve_cmd` argument: a shell string or an argv list (empty means none).
pub fn command(arg: Arg, v: Option<Value>) -> anyhow::Result<Option<Cmd>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Some(s) = values::text_of(v) {
        return Ok(Some(Cmd::Shell(s))
            .filter(|_| !values::text_of(v).unwrap_or_default().trim().is_empty()));
    }
    if list_items(v).is_some() {
        let argv = string_list(arg, Some(v))?;
        match argv.first().map(String::as_str) {
            None => bail!("{arg} is an empty list: give the program and its arguments, e.g. [\"make\", \"build\"], or leave {} out", arg.name),
            Some("") => bail!("{arg}[0] is empty: the first element is the program to run, e.g. [\"make\", \"build\"]"),
            Some(_) => return Ok(Some(Cmd::Argv(argv))),
        }
    }
    bail!(
        "{arg} must be a string (run with `sh -c`) or a list of strings (argv), got {}",
        values::describe(v)
    )
}

/// A `trigger_mode` argument: `TRIGGER_MODE_AUTO`/`TRIGGER_MODE_MANUAL`.
pub fn trigger_mode(arg: Arg, v: Option<Value>) -> anyhow::Result<Option<TriggerMode>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    match v.unpack_str() {
        Some("auto") => Ok(Some(TriggerMode::Auto)),
        Some("manual") => Ok(Some(TriggerMode::Manual)),
        _ => bail!(
            "{arg} must be TRIGGER_MODE_AUTO or TRIGGER_MODE_MANUAL, got {}",
            values::describe(v)
        ),
    }
}

/// `links`: URLs or `link(url, name)` values.
pub fn links(arg: Arg, v: Option<Value>) -> anyhow::Result<Vec<Link>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = list_items(v).unwrap_or_else(|| vec![v]);
    items
        .into_iter()
        .map(|item| {
            if let Some(url) = item.unpack_str() {
                return Ok(Link {
                    url: url.to_owned(),
                    name: None,
                });
            }
            if kind_of(item).as_deref() == Some("link") {
                let url = field(item, "url")
                    .and_then(|u| u.unpack_str())
                    .unwrap_or_default();
                let name = field(item, "name")
                    .and_then(|n| n.unpack_str())
                    .map(str::to_owned);
                return Ok(Link {
                    url: url.to_owned(),
                    name,
                });
            }
            Err(anyhow!(
                "{arg} must hold URLs or link() values, got {}",
                values::describe(item)
            ))
        })
        .collect()
}

/// Whether a relative path's `..` components climb above where it starts.
pub fn climbs_out(path: &str) -> bool {
    use std::path::Component;
    let path = std::path::Path::new(path);
    if path.is_absolute() {
        return false;
    }
    let mut depth = 0i32;
    for c in path.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}
