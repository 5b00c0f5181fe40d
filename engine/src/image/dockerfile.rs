//! Whether a Dockerfile can be built without Docker, and the plan if so.
//!
//! A Dockerfile qualifies when it only puts local files on top of a base image
//! that lives in a registry: one `FROM host[:port]/repo[:tag]` (no `--platform`),
//! then only `COPY` (no flags, no wildcards), `ENV`, `WORKDIR`, `USER`,
//! `EXPOSE`, `LABEL`, `ENTRYPOINT` and `CMD`, with no `$` anywhere (no variable
//! substitution to reproduce). Anything else (`RUN`, `ADD`, `ARG`, several
//! stages, a parser directive other than `syntax`, quotes in `ENV`/`LABEL`) goes
//! to Docker, with the reason.

/// One `COPY`: context-relative sources and the absolute destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    pub srcs: Vec<String>,
    /// Absolute; ends with `/` when the sources go into a folder.
    pub dest: String,
    /// The instruction, for the image history.
    pub text: String,
}

/// What the Dockerfile does, in order of the image config it produces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub base: String,
    pub copies: Vec<Copy>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub expose: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
}

/// The plan of `text`, or why it needs Docker. `target` is the `docker_build`
/// target (it must name the one stage, if given).
pub fn plan(text: &str, target: Option<&str>) -> Result<Plan, String> {
    let mut plan = Plan::default();
    let mut stage: Option<String> = None;
    let mut workdir = "/".to_owned();
    let mut saw_from = false;
    for (line_no, line) in instructions(text)? {
        if line.contains('$') {
            return Err(format!("line {line_no} uses a variable ($)"));
        }
        let (word, rest) = line
            .split_once(char::is_whitespace)
            .map(|(w, r)| (w, r.trim()))
            .unwrap_or((line.as_str(), ""));
        let word = word.to_ascii_uppercase();
        if !saw_from && word != "FROM" {
            return Err(format!("line {line_no}: {word} before FROM"));
        }
        match word.as_str() {
            "FROM" => {
                if saw_from {
                    return Err(format!("line {line_no}: a second stage"));
                }
                saw_from = true;
                let parts: Vec<&str> = rest.split_whitespace().collect();
                let (image, name) = match parts.as_slice() {
                    [image] => (*image, None),
                    [image, as_, name] if as_.eq_ignore_ascii_case("as") => (*image, Some(*name)),
                    _ => return Err(format!("line {line_no}: FROM with options")),
                };
                let host = image.split_once('/').map(|(h, _)| h).unwrap_or_default();
                if !(host.contains('.') || host.contains(':') || host == "localhost") {
                    return Err(format!(
                        "the base {image} is not in a registry named by host (e.g. localhost:5000/{image})"
                    ));
                }
                plan.base = image.to_owned();
                stage = name.map(str::to_owned);
            }
            "COPY" => {
                if rest.starts_with("--") {
                    return Err(format!("line {line_no}: COPY with options"));
                }
                let mut args = if rest.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(rest)
                        .map_err(|_| format!("line {line_no}: COPY with a malformed JSON list"))?
                } else {
                    rest.split_whitespace().map(str::to_owned).collect()
                };
                if args.len() < 2 {
                    return Err(format!(
                        "line {line_no}: COPY needs a source and a destination"
                    ));
                }
                let dest = args.pop().unwrap_or_default();
                if args.iter().any(|s| s.contains(['*', '?', '[', '\\'])) {
                    return Err(format!("line {line_no}: COPY with a wildcard"));
                }
                let srcs: Vec<String> = args.iter().map(|s| clean_src(s)).collect();
                if srcs.iter().any(|s| s.starts_with("..")) {
                    return Err(format!("line {line_no}: COPY from outside the context"));
                }
                let mut dest = if dest.starts_with('/') {
                    dest.clone()
                } else {
                    format!("{}/{dest}", workdir.trim_end_matches('/'))
                };
                let into_folder = dest.ends_with('/') || dest.ends_with("/.") || srcs.len() > 1;
                dest = normalize(&dest);
                if into_folder && !dest.ends_with('/') {
                    dest.push('/');
                }
                plan.copies.push(Copy {
                    srcs,
                    dest,
                    text: line.clone(),
                });
            }
            "ENV" => {
                for (k, v) in
                    pairs(rest).ok_or(format!("line {line_no}: ENV with quotes or escapes"))?
                {
                    plan.env.retain(|(key, _)| *key != k);
                    plan.env.push((k, v));
                }
            }
            "LABEL" => {
                for (k, v) in
                    pairs(rest).ok_or(format!("line {line_no}: LABEL with quotes or escapes"))?
                {
                    plan.labels.retain(|(key, _)| *key != k);
                    plan.labels.push((k, v));
                }
            }
            "WORKDIR" => {
                workdir = if rest.starts_with('/') {
                    normalize(rest)
                } else {
                    normalize(&format!("{}/{rest}", workdir.trim_end_matches('/')))
                };
                let w = workdir.trim_end_matches('/');
                plan.workdir = Some(if w.is_empty() {
                    "/".to_owned()
                } else {
                    w.to_owned()
                });
            }
            "USER" => plan.user = Some(rest.to_owned()),
            "EXPOSE" => {
                for port in rest.split_whitespace() {
                    plan.expose.push(if port.contains('/') {
                        port.to_owned()
                    } else {
                        format!("{port}/tcp")
                    });
                }
            }
            "ENTRYPOINT" => plan.entrypoint = Some(command(rest, line_no)?),
            "CMD" => plan.cmd = Some(command(rest, line_no)?),
            other => return Err(format!("line {line_no}: {other} needs Docker")),
        }
    }
    if !saw_from {
        return Err("no FROM".to_owned());
    }
    if let Some(target) = target {
        if stage.as_deref() != Some(target) {
            return Err(format!(
                "target {target:?} is not the Dockerfile's one stage"
            ));
        }
    }
    Ok(plan)
}

/// The instructions with their first line numbers: continuation lines joined,
/// comments and blank lines dropped. A parser directive other than `syntax`
/// (e.g. `escape`) makes the file need Docker.
fn instructions(text: &str) -> Result<Vec<(usize, String)>, String> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut directives = true;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if directives {
            if let Some(d) = line.strip_prefix('#') {
                if let Some((key, _)) = d.split_once('=') {
                    let key = key.trim().to_ascii_lowercase();
                    if !key.contains(' ') && key != "syntax" {
                        return Err(format!("the parser directive {key}"));
                    }
                }
                continue;
            }
            directives = false;
        }
        if current.is_none() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if current.is_some() && line.starts_with('#') {
            continue;
        }
        let (continues, body) = match line.strip_suffix('\\') {
            Some(body) => (true, body.trim_end()),
            None => (false, line),
        };
        match &mut current {
            Some((_, text)) => {
                text.push(' ');
                text.push_str(body);
            }
            None => current = Some((i + 1, body.to_owned())),
        }
        if !continues {
            if let Some(done) = current.take() {
                out.push(done);
            }
        }
    }
    if let Some(done) = current {
        out.push(done);
    }
    Ok(out)
}

/// `k=v k2=v2` (or the old `k v` form); `None` with quotes or escapes.
fn pairs(rest: &str) -> Option<Vec<(String, String)>> {
    if rest.contains(['"', '\'', '\\']) {
        return None;
    }
    let first = rest.split_whitespace().next()?;
    if !first.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_owned(), v.trim().to_owned())]);
    }
    rest.split_whitespace()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The exec form (a JSON list) or the shell form (`/bin/sh -c TEXT`).
fn command(rest: &str, line_no: usize) -> Result<Vec<String>, String> {
    if rest.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(rest)
            .map_err(|_| format!("line {line_no}: a malformed JSON list"));
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_owned()])
}

/// A context-relative source without `./`, `.` components or a trailing `/`;
/// the context itself is "".
fn clean_src(src: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in src.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return "..".to_owned();
                }
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// An absolute path without `.`/`..` components (a trailing `/` is dropped).
fn normalize(path: &str) -> String {
    format!("/{}", super::context::clean(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dockerfile_of_copies_is_planned() {
        let p = plan(
            "# syntax=docker/dockerfile:1\nFROM localhost:5000/base/py:3 AS app\n\
             WORKDIR /srv\nCOPY . .\nCOPY conf/app.ini /etc/\n\
             ENV MODE=dev PORT=80\nENV NAME loop app\nEXPOSE 80 53/udp\n\
             LABEL team=web\nUSER 1000\n\
             ENTRYPOINT [\"python\", \\\n  \"main.py\"]\nCMD --debug\n",
            Some("app"),
        )
        .unwrap();
        assert_eq!(p.base, "localhost:5000/base/py:3");
        assert_eq!(
            p.copies
                .iter()
                .map(|c| (c.srcs.clone(), c.dest.clone()))
                .collect::<Vec<_>>(),
            [
                (vec!["".to_owned()], "/srv/".to_owned()),
                (vec!["conf/app.ini".to_owned()], "/etc/".to_owned())
            ]
        );
        assert_eq!(
            p.env,
            [
                ("MODE".into(), "dev".into()),
                ("PORT".into(), "80".into()),
                ("NAME".into(), "loop app".into())
            ]
        );
        assert_eq!(p.workdir.as_deref(), Some("/srv"));
        assert_eq!(p.expose, ["80/tcp", "53/udp"]);
        assert_eq!(p.user.as_deref(), Some("1000"));
        assert_eq!(p.entrypoint, Some(vec!["python".into(), "main.py".into()]));
        assert_eq!(
            p.cmd,
            Some(vec!["/bin/sh".into(), "-c".into(), "--debug".into()])
        );
    }

    #[test]
    fn anything_else_needs_docker_and_says_why() {
        let base = "FROM localhost:5000/b:1\n";
        for (text, why) in [
            (format!("{base}RUN make\n"), "RUN needs Docker"),
            (format!("{base}ADD x.tar /\n"), "ADD needs Docker"),
            (format!("{base}ARG V\n"), "ARG needs Docker"),
            (
                format!("{base}COPY --from=build /a /a\n"),
                "COPY with options",
            ),
            (format!("{base}COPY *.go /src/\n"), "wildcard"),
            (format!("{base}COPY ../x /x\n"), "outside the context"),
            (format!("{base}ENV A=$B\n"), "variable"),
            (format!("{base}ENV A=\"b c\"\n"), "quotes"),
            (format!("{base}FROM localhost:5000/c:1\n"), "second stage"),
            ("FROM python:3\n".to_owned(), "not in a registry"),
            (
                "# escape=`\nFROM localhost:5000/b:1\n".to_owned(),
                "directive escape",
            ),
        ] {
            let err = plan(&text, None).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
        assert!(plan("FROM localhost:5000/b:1 AS a\n", Some("b"))
            .unwrap_err()
            .contains("target"));
    }
}
