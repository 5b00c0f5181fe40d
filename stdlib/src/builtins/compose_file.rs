//! Reading Docker Compose files as `docker_compose()` needs them: the services
//! each declares (their image, whether Compose builds them, the host ports they
//! publish, their profiles), merged across files as Compose merges them, and
//! the project name Compose would choose.
//!
//! Only what `loop` acts on is read; the files themselves are handed to Docker
//! Compose unchanged, which validates the rest.

use loop_lang::data::Data;

/// One service as the Compose files declare it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceInfo {
    pub name: String,
    pub image: Option<String>,
    /// The `build` context (a string, or `build.context`), when Compose builds it.
    pub build_context: Option<String>,
    pub has_build: bool,
    /// Host ports the service publishes (`"8080:80"` publishes 8080).
    pub published_ports: Vec<u16>,
    pub profiles: Vec<String>,
    /// The services it `depends_on` (a list, or a mapping with conditions).
    pub depends_on: Vec<String>,
}

/// What one Compose file declares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComposeFile {
    /// The top-level `name`, when the file names its project.
    pub name: Option<String>,
    pub services: Vec<ServiceInfo>,
}

/// Parses one Compose file; `origin` names it in errors (`docker-compose.yml`,
/// or "the YAML blob"). YAML errors say `origin:line:col`. Its strings are
/// expanded as Compose expands them, with `variables`.
pub fn parse(
    text: &str,
    origin: &str,
    variables: &dyn Fn(&str) -> Option<String>,
) -> Result<ComposeFile, String> {
    let mut doc = Data::from_yaml(text).map_err(|e| yaml_error(origin, &e))?;
    interpolate(&mut doc, variables);
    let top = match &doc {
        Data::Map(_) => &doc,
        Data::Null => {
            return Err(format!(
                "{origin} is empty: a Compose file needs `services:`"
            ))
        }
        _ => {
            return Err(format!(
                "{origin}: a Compose file is a mapping with `services:`"
            ))
        }
    };
    let services = match top.get("services") {
        Some(Data::Map(entries)) => entries,
        Some(Data::Null) | None => {
            return Err(format!("{origin} has no `services:` mapping (the Compose file format of https://docs.docker.com/compose/compose-file/)"))
        }
        Some(_) => return Err(format!("{origin}: `services` must be a mapping of service names")),
    };
    let mut out = Vec::new();
    for (name, body) in services {
        out.push(service(origin, name, body)?);
    }
    Ok(ComposeFile {
        name: top.get("name").and_then(Data::as_str).map(str::to_owned),
        services: out,
    })
}

fn service(origin: &str, name: &str, body: &Data) -> Result<ServiceInfo, String> {
    if !matches!(body, Data::Map(_) | Data::Null) {
        return Err(format!(
            "{origin}: service `{name}` must be a mapping (image:, build:, ...)"
        ));
    }
    let build = body.get("build");
    let build_context = match build {
        Some(Data::String(context)) => Some(context.clone()),
        Some(b) => b
            .get("context")
            .and_then(Data::as_str)
            .map(str::to_owned)
            .or_else(|| Some(".".to_owned())),
        None => None,
    };
    let mut published_ports = Vec::new();
    for port in body.get("ports").map(Data::as_list).unwrap_or_default() {
        if let Some(p) = published(port) {
            published_ports.push(p);
        }
    }
    let profiles = body
        .get("profiles")
        .map(Data::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(Data::as_str)
        .map(str::to_owned)
        .collect();
    let depends_on = match body.get("depends_on") {
        Some(Data::List(items)) => items
            .iter()
            .filter_map(Data::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Data::Map(entries)) => entries.iter().map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    };
    Ok(ServiceInfo {
        depends_on,
        name: name.to_owned(),
        image: body.get("image").and_then(Data::as_str).map(str::to_owned),
        has_build: build.is_some(),
        build_context,
        published_ports,
        profiles,
    })
}

/// Every string of `data` with its variables expanded.
fn interpolate(data: &mut Data, variables: &dyn Fn(&str) -> Option<String>) {
    match data {
        Data::String(text) if text.contains('$') => {
            *text = loop_lang::interpolate::expand(text, variables);
        }
        Data::List(items) => items.iter_mut().for_each(|d| interpolate(d, variables)),
        Data::Map(entries) => entries
            .iter_mut()
            .for_each(|(_, d)| interpolate(d, variables)),
        _ => {}
    }
}

/// The host port of a `ports` entry: `"8080:80"`, `"127.0.0.1:8080:80/tcp"`,
/// or `{published: 8080, target: 80}`; `"80"` publishes no fixed port.
fn published(port: &Data) -> Option<u16> {
    if let Some(text) = port.as_str() {
        let text = text.split('/').next().unwrap_or(text);
        let parts: Vec<&str> = text.rsplitn(3, ':').collect();
        return match parts.as_slice() {
            [_, host, ..] => host.split('-').next()?.parse().ok(),
            _ => None,
        };
    }
    match port.get("published")? {
        Data::String(s) => s.parse().ok(),
        Data::Int(i) => u16::try_from(*i).ok(),
        _ => None,
    }
}

/// Merges the services of several files as Compose does: a later file's
/// service overrides the fields it sets.
pub fn merge(files: &[ComposeFile]) -> Vec<ServiceInfo> {
    let mut merged: Vec<ServiceInfo> = Vec::new();
    for file in files {
        for s in &file.services {
            match merged.iter_mut().find(|m| m.name == s.name) {
                Some(m) => {
                    if s.image.is_some() {
                        m.image = s.image.clone();
                    }
                    if s.has_build {
                        m.has_build = true;
                        m.build_context = s.build_context.clone();
                    }
                    m.published_ports.extend(s.published_ports.iter().copied());
                    if !s.profiles.is_empty() {
                        m.profiles = s.profiles.clone();
                    }
                    for dep in &s.depends_on {
                        if !m.depends_on.contains(dep) {
                            m.depends_on.push(dep.clone());
                        }
                    }
                }
                None => merged.push(s.clone()),
            }
        }
    }
    merged
}

/// The project name Compose derives from a folder name: lowercase, only
/// letters, digits, `-` and `_`.
pub fn project_name_of(folder: &str) -> String {
    folder
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// A YAML error as `origin:line:col: what`, when the parser said where.
fn yaml_error(origin: &str, error: &str) -> String {
    // The parser says "line L column C: what" (or "... at line L column C").
    let words: Vec<&str> = error.split_whitespace().collect();
    let at = words
        .windows(4)
        .position(|w| w[0] == "line" && w[2] == "column");
    if let Some(i) = at {
        let line = words[i + 1].trim_end_matches([',', ':']);
        let col = words[i + 3].trim_end_matches([',', ':']);
        if line.parse::<u32>().is_ok() && col.parse::<u32>().is_ok() {
            let rest: Vec<&str> = words[..i]
                .iter()
                .chain(words[i + 4..].iter())
                .copied()
                .filter(|w| *w != "at")
                .collect();
            let what = rest.join(" ");
            let what = what.trim_start_matches(':').trim();
            return format!("{origin}:{line}:{col}: invalid YAML: {what}");
        }
    }
    format!("{origin}: invalid YAML: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
version: '3'
services:
  web:
    image: shop/web
    ports: ['8080:80', '127.0.0.1:9090:90/tcp', '80', {published: 7070, target: 70}]
    depends_on: [db]
  db:
    build: ./db
    profiles: [data]
  worker:
    build: {context: work, dockerfile: Dockerfile.dev}
    depends_on: {web: {condition: service_started}}
";

    #[test]
    fn services_images_builds_ports_and_profiles() {
        let file = parse(FILE, "docker-compose.yml", &|_| None).unwrap();
        let names: Vec<&str> = file.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "db", "worker"]);
        let web = &file.services[0];
        assert_eq!(web.image.as_deref(), Some("shop/web"));
        assert_eq!(web.published_ports, [8080, 9090, 7070]);
        assert!(!web.has_build);
        assert_eq!(file.services[1].build_context.as_deref(), Some("./db"));
        assert_eq!(file.services[1].profiles, ["data"]);
        assert_eq!(file.services[2].build_context.as_deref(), Some("work"));
        assert_eq!(web.depends_on, ["db"]);
        assert_eq!(file.services[2].depends_on, ["web"]);
        assert_eq!(file.name, None);
    }

    #[test]
    fn strings_are_expanded_as_compose_expands_them() {
        let text = "services:\n  web:\n    image: ${REG:-r.io}/web:${TAG}\n    ports: [\"${PORT}:80\"]\n    command: echo $$HOME\n";
        let vars = |name: &str| match name {
            "TAG" => Some("v1".to_owned()),
            "PORT" => Some("8080".to_owned()),
            _ => None,
        };
        let file = parse(text, "dc.yml", &vars).unwrap();
        assert_eq!(file.services[0].image.as_deref(), Some("r.io/web:v1"));
        assert_eq!(file.services[0].published_ports, [8080]);
    }

    #[test]
    fn later_files_override_earlier_ones() {
        let base = parse(FILE, "a.yml", &|_| None).unwrap();
        let over = parse(
            "name: Shop\nservices:\n  web:\n    image: shop/web:dev\n  extra:\n    image: x\n",
            "b.yml",
            &|_| None,
        )
        .unwrap();
        assert_eq!(over.name.as_deref(), Some("Shop"));
        let merged = merge(&[base, over]);
        assert_eq!(merged.len(), 4);
        assert_eq!(merged[0].image.as_deref(), Some("shop/web:dev"));
        assert_eq!(merged[3].name, "extra");
    }

    #[test]
    fn bad_yaml_names_file_line_and_column() {
        let err = parse("services:\n  web:\n    image: [a\n", "dc.yml", &|_| None).unwrap_err();
        assert!(err.starts_with("dc.yml:"), "{err}");
        let mut parts = err.splitn(4, ':');
        let (_, line, col) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        assert!(
            line.parse::<u32>().is_ok() && col.parse::<u32>().is_ok(),
            "{err}"
        );
    }

    #[test]
    fn files_without_services_are_refused() {
        assert!(parse("", "e.yml", &|_| None)
            .unwrap_err()
            .contains("is empty"));
        assert!(parse("version: '3'\n", "v.yml", &|_| None)
            .unwrap_err()
            .contains("no `services:`"));
        assert!(parse("- a\n", "l.yml", &|_| None)
            .unwrap_err()
            .contains("mapping"));
        assert!(parse("services:\n  web: 3\n", "s.yml", &|_| None)
            .unwrap_err()
            .contains("service `web` must be a mapping"));
    }

    #[test]
    fn project_names_follow_compose() {
        assert_eq!(project_name_of("My App.v2"), "myappv2");
        assert_eq!(project_name_of("shop_dev-1"), "shop_dev-1");
    }
}
