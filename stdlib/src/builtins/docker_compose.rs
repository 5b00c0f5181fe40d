//! `docker_compose()` and `dc_resource()`, as in Tilt: every service of a
//! Docker Compose project becomes a resource of kind `docker_compose`, run by
//! Docker Compose itself. A service whose `image` a `docker_build` of the
//! Loopfiles builds gets the built image (the engine passes Compose an
//! override file naming it), and a change to that image's files rebuilds it
//! and recreates the service.
//!
//! The files are read here (each recorded, so that editing one re-evaluates)
//! for their services; `dc_resource` configures a service that an earlier
//! `docker_compose` declared. Resources are made at assembly
//! ([`compose_resources`]), when every image is known.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use loop_lang::model::{
    ComposeConfig, ComposeProject, ComposeService, Image, Link, Resource, ResourceKind, TriggerMode,
};
use loop_lang::workload::image_name;
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::none::NoneType;
use starlark::values::Value;

use super::args::{check_name, links, trigger_mode};
use super::compose_file::{self, ComposeFile, ServiceInfo};
use crate::decls::{call_site, declarations, ComposeDecl, DcResourceDecl, Declarations};
use crate::values::{self, io_reason, list_items, string_list, Arg, Blob, NONE};

/// The configurations of `configPaths` (a path, a blob, or a list of them),
/// each with its text and the name errors give it.
fn configs(
    env: &EvalEnv,
    v: Value,
    out: &mut Vec<(ComposeConfig, String, String)>,
) -> anyhow::Result<()> {
    const F: &str = "docker_compose";
    if let Some(items) = list_items(v) {
        for item in items {
            configs(env, item, out)?;
        }
        return Ok(());
    }
    if let Some(blob) = Blob::from_value(v) {
        let config = ComposeConfig {
            path: String::new(),
            contents: blob.0.clone(),
        };
        out.push((config, blob.0.clone(), "the YAML blob".to_owned()));
        return Ok(());
    }
    let Some(path) = v.unpack_str() else {
        bail!(
            "{F}: configPaths must be a file name, a blob of YAML or a list of them, got {}",
            values::describe(v)
        );
    };
    let file = env.resolve(path);
    env.loader.record_read(&env.file, &file);
    let shown = env.display(&file);
    let text = loop_lang::project::read_text(&file).map_err(|e| {
        anyhow!(
            "{F}: cannot read the Compose file {shown}: {}",
            io_reason(&e)
        )
    })?;
    let config = ComposeConfig {
        path: shown.clone(),
        contents: String::new(),
    };
    out.push((config, text, shown));
    Ok(())
}

/// The variables Compose expands in its files: the environment (with
/// `os.putenv`'s changes), then the env file (`env_file`, else `.env` in the
/// project's folder, if there is one).
fn compose_variables(
    env: &EvalEnv,
    env_file: Option<&str>,
    dir: &str,
) -> anyhow::Result<impl Fn(&str) -> Option<String>> {
    // Both are as users see them: relative to the root (or absolute).
    let root = &env.loader.project.root;
    let file = match env_file {
        Some(file) => root.join(file),
        None => root.join(dir).join(".env"),
    };
    env.loader.record_read(&env.file, &file);
    let mut from_file = std::collections::BTreeMap::new();
    if file.is_file() {
        for pair in dotenvy::from_path_iter(&file)
            .map_err(|e| anyhow!("docker_compose: {}: {e}", env.display(&file)))?
        {
            let (key, value) = pair.map_err(|e| match e {
                dotenvy::Error::LineParse(text, _) => {
                    let number = std::fs::read_to_string(&file)
                        .ok()
                        .and_then(|all| {
                            all.lines().position(|l| {
                                !l.trim().is_empty() && text.starts_with(l.trim_end())
                            })
                        })
                        .map_or(String::new(), |i| format!(":{}", i + 1));
                    anyhow!(
                        "docker_compose: {}{number}: cannot read {text:?}: expected NAME=value (as Compose reads an env file)",
                        env.display(&file)
                    )
                }
                other => anyhow!("docker_compose: {}: {other}", env.display(&file)),
            })?;
            from_file.insert(key, value);
        }
    }
    let set = declarations(env).borrow().env.clone();
    Ok(move |name: &str| match set.get(name) {
        Some(value) => value.clone(),
        None => std::env::var(name)
            .ok()
            .or_else(|| from_file.get(name).cloned()),
    })
}

/// The services of a project that run with its profiles (a service with
/// `profiles` runs only when one of them is active, as in Compose).
fn active_services(decl: &ComposeDecl) -> Vec<ServiceInfo> {
    compose_file::merge(&decl.files)
        .into_iter()
        .filter(|s| {
            s.profiles.is_empty() || s.profiles.iter().any(|p| decl.project.profiles.contains(p))
        })
        .collect()
}

/// The folder of a root-relative or absolute path.
fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) => "/".to_owned(),
        Some((dir, _)) => dir.to_owned(),
        None => ".".to_owned(),
    }
}

/// Joins a folder and a relative path as users see them.
fn join(dir: &str, path: &str) -> String {
    let path = path.trim_start_matches("./");
    if path.starts_with('/') {
        path.to_owned()
    } else if dir == "." {
        if path.is_empty() || path == "." {
            ".".to_owned()
        } else {
            path.to_owned()
        }
    } else if path.is_empty() || path == "." {
        dir.to_owned()
    } else {
        format!("{dir}/{path}")
    }
}

#[starlark_module]
pub fn docker_compose_builtins(builder: &mut GlobalsBuilder) {
    /// Runs the services of a Docker Compose project, each as a resource
    /// (`docker compose`, else `docker-compose`, must be installed).
    ///
    /// * `configPaths`: a Compose file, a blob of Compose YAML, or a list of them (merged in order, as `-f` files).
    /// * `env_file`: a file of variables for the Compose files (`--env-file`).
    /// * `project_name`: the project (`-p`); by default the file's `name:`, else its folder's name. Calls naming one project add their files to it.
    /// * `profiles`: the Compose profiles to enable: services with other `profiles` are left out.
    /// * `wait`: wait for services to be running and healthy (`up --wait`).
    ///
    /// A service whose `image` a `docker_build` builds runs the built image; a change to its files rebuilds it and recreates the service.
    #[allow(non_snake_case)]
    fn docker_compose<'v>(
        configPaths: Value<'v>,
        env_file: Option<Value<'v>>,
        #[starlark(default = "")] project_name: &str,
        profiles: Option<Value<'v>>,
        #[starlark(default = false)] wait: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        const F: &str = "docker_compose";
        let a = |name| Arg { function: F, name };
        let env = EvalEnv::of(eval)?;
        let at = call_site(eval);
        let mut texts = Vec::new();
        configs(env, configPaths, &mut texts)?;
        if texts.is_empty() {
            bail!("{F}: configPaths is empty: give a Compose file, e.g. docker_compose('docker-compose.yml')");
        }
        let env_file = match values::opt_string(a("env_file"), env_file)? {
            Some(path) => {
                let file = env.resolve(&path);
                env.loader.record_read(&env.file, &file);
                if !file.is_file() {
                    bail!("{F}: env_file {} does not exist", env.display(&file));
                }
                Some(env.display(&file))
            }
            None => None,
        };
        let profiles = string_list(a("profiles"), profiles)?;
        let first_path = texts.iter().find(|(c, _, _)| !c.path.is_empty());
        let dir = match first_path {
            Some((c, _, _)) => parent(&c.path),
            None => env.display(&env.dir),
        };
        let variables = compose_variables(env, env_file.as_deref(), &dir)?;
        let mut parsed = Vec::new();
        for (config, text, origin) in texts {
            let file =
                compose_file::parse(&text, &origin, &variables).map_err(|e| anyhow!("{F}: {e}"))?;
            parsed.push((config, file));
        }
        let name = if !project_name.is_empty() {
            project_name.to_owned()
        } else if let Some(named) = parsed.iter().find_map(|(_, f)| f.name.clone()) {
            named
        } else {
            let folder = env.resolve(&dir);
            let base = folder
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            compose_file::project_name_of(&base)
        };
        if name.is_empty() {
            bail!("{F}: cannot derive a project name from the folder {dir:?}: give project_name=");
        }
        let decls = declarations(env);
        let mut decls = decls.borrow_mut();
        let (configs, files): (Vec<ComposeConfig>, Vec<ComposeFile>) = parsed.into_iter().unzip();
        match decls.compose.iter_mut().find(|d| d.project.name == name) {
            Some(existing) => {
                existing.project.configs.extend(configs);
                existing.files.extend(files);
                existing.project.profiles.extend(profiles);
                existing.project.wait |= wait;
                if env_file.is_some() {
                    existing.project.env_file = env_file;
                }
            }
            None => decls.compose.push(ComposeDecl {
                project: ComposeProject {
                    name,
                    configs,
                    dir,
                    env_file,
                    profiles,
                    wait,
                    env: Default::default(),
                },
                files,
                defined_at: at,
            }),
        }
        Ok(NONE)
    }

    /// Configures the resource of a Docker Compose service declared by an earlier `docker_compose()`.
    ///
    /// * `name`: the service.
    /// * `new_name`: rename its resource.
    /// * `project_name`: the project holding the service, when several do.
    /// * `infra`: accepted, as in Tilt (no effect).
    fn dc_resource<'v>(
        name: &str,
        trigger_mode: Option<Value<'v>>,
        resource_deps: Option<Value<'v>>,
        links: Option<Value<'v>>,
        labels: Option<Value<'v>>,
        auto_init: Option<bool>,
        #[starlark(default = "")] project_name: &str,
        #[starlark(default = "")] new_name: &str,
        #[starlark(default = false)] infra: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        const F: &str = "dc_resource";
        let _ = infra;
        let a = |name| Arg { function: F, name };
        if !new_name.is_empty() {
            check_name(F, new_name)?;
        }
        let env = EvalEnv::of(eval)?;
        let decls = declarations(env);
        let project = find_service(&decls.borrow(), name, project_name)?;
        let decl = DcResourceDecl {
            service: name.to_owned(),
            project,
            new_name: Some(new_name.to_owned()).filter(|n| !n.is_empty()),
            trigger_mode: self::trigger_mode(a("trigger_mode"), trigger_mode)?,
            resource_deps: string_list(a("resource_deps"), resource_deps)?,
            links: self::links(a("links"), links)?,
            labels: string_list(a("labels"), labels)?,
            auto_init,
        };
        decls.borrow_mut().dc_resources.push(decl);
        Ok(NONE)
    }
}

/// The project holding `service`, or an error listing the services there are.
fn find_service(decls: &Declarations, service: &str, project: &str) -> anyhow::Result<String> {
    const F: &str = "dc_resource";
    if decls.compose.is_empty() {
        bail!("{F}: no Docker Compose service `{service}`: call docker_compose() before dc_resource()");
    }
    let mut all = Vec::new();
    let mut found = Vec::new();
    for decl in &decls.compose {
        if !project.is_empty() && decl.project.name != project {
            continue;
        }
        for s in active_services(decl) {
            if s.name == service {
                found.push(decl.project.name.clone());
            }
            all.push(s.name);
        }
    }
    if project.is_empty() && found.len() > 1 {
        bail!(
            "{F}: service `{service}` is in several Compose projects ({}); give project_name=",
            found.join(", ")
        );
    }
    match found.pop() {
        Some(p) => Ok(p),
        None if !project.is_empty() && all.is_empty() => bail!(
            "{F}: no Docker Compose project `{project}` (projects: {})",
            decls
                .compose
                .iter()
                .map(|d| d.project.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => {
            let mut message = format!("{F}: no Docker Compose service `{service}`");
            if let Some(best) = loop_lang::diag::closest(service, all.iter().map(String::as_str)) {
                message.push_str(&format!("; did you mean `{best}`?"));
            }
            bail!("{message} (the services: {})", all.join(", "))
        }
    }
}

/// The resources of the Compose services, with their `dc_resource`
/// settings; `images` are the Loopfiles' images (a service whose image one of
/// them builds depends on it).
pub fn compose_resources(
    compose: &[ComposeDecl],
    dc_resources: &[DcResourceDecl],
    images: &[Image],
    default_trigger: TriggerMode,
    env: &BTreeMap<String, Option<String>>,
) -> Vec<Resource> {
    let mut out = Vec::new();
    for decl in compose {
        let services = active_services(decl);
        let mut project = decl.project.clone();
        // os.putenv changes Tilt's own environment, which Compose inherits.
        project.env = env
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for s in &services {
            let mut resource = Resource::new(
                &s.name,
                ResourceKind::DockerCompose,
                decl.defined_at.clone(),
            );
            resource.dir = decl.project.dir.clone();
            resource.trigger_mode = default_trigger;
            let built = s.image.as_deref().and_then(|image| {
                images
                    .iter()
                    .find(|i| image_name(&i.image_ref) == image_name(image))
            });
            match built {
                Some(image) => resource.images.push(image.image_ref.clone()),
                None => {
                    // Compose builds it: a change to its context rebuilds.
                    if let Some(context) = &s.build_context {
                        resource.deps.push(join(&decl.project.dir, context));
                    }
                }
            }
            resource.links = s
                .published_ports
                .iter()
                .map(|p| Link {
                    url: format!("http://localhost:{p}/"),
                    name: None,
                })
                .collect();
            // As in Tilt, `depends_on` orders start-up (a service left out
            // by its profile is no dependency).
            resource.resource_deps = s
                .depends_on
                .iter()
                .filter(|d| services.iter().any(|o| &o.name == *d))
                .map(|d| renamed(dc_resources, &decl.project.name, d))
                .collect();
            for dc in dc_resources
                .iter()
                .filter(|d| d.service == s.name && d.project == decl.project.name)
            {
                if let Some(new_name) = &dc.new_name {
                    resource.name = new_name.clone();
                }
                if let Some(mode) = dc.trigger_mode {
                    resource.trigger_mode = mode;
                }
                if let Some(auto_init) = dc.auto_init {
                    resource.auto_init = auto_init;
                }
                resource
                    .resource_deps
                    .extend(dc.resource_deps.iter().cloned());
                resource.links.extend(dc.links.iter().cloned());
                resource.labels.extend(dc.labels.iter().cloned());
            }
            let mut seen = Vec::new();
            resource.resource_deps.retain(|d| {
                let first = !seen.contains(d);
                seen.push(d.clone());
                first
            });
            resource.compose = Some(ComposeService {
                service: s.name.clone(),
                project: project.clone(),
                image: s.image.clone(),
                has_build: s.has_build,
            });
            out.push(resource);
        }
    }
    out
}

/// The resource name of service `service` of `project` (`dc_resource(new_name=)`).
fn renamed(dc_resources: &[DcResourceDecl], project: &str, service: &str) -> String {
    dc_resources
        .iter()
        .rev()
        .filter(|d| d.project == project && d.service == service)
        .find_map(|d| d.new_name.clone())
        .unwrap_or_else(|| service.to_owned())
}

#[cfg(test)]
mod tests;
