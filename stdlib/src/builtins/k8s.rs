//! Kubernetes and image declarations: `k8s_yaml`, `k8s_resource`, `docker_build`,
//! `custom_build`, and the live-update steps. The engine that acts on them is
//! separate; here they are validated and recorded.

use anyhow::{anyhow, bail};
use loop_lang::data::Data;
use loop_lang::model::{Image, ImageKind, LiveUpdateStep, PortForward};
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::dict::DictRef;
use starlark::values::none::NoneType;
use starlark::values::{Heap, Value};

use super::local::{check_name, command, links, trigger_mode};
use super::{field, kind_of, tagged};
use crate::decls::{call_site, declarations, K8sResourceDecl, ObjectDecl};
use crate::values::{self, io_reason, list_items, string_list, string_map, Arg, Blob, NONE};

/// The live-update steps of a `live_update=[...]` argument.
pub fn live_update_steps(arg: Arg, v: Option<Value>) -> anyhow::Result<Vec<LiveUpdateStep>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = list_items(v)
        .ok_or_else(|| anyhow!("{arg} must be a list of steps, got {}", values::describe(v)))?;
    let text = |step: Value, name: &str| {
        field(step, name)
            .and_then(|s| s.unpack_str())
            .unwrap_or_default()
            .to_owned()
    };
    let mut steps = Vec::new();
    for item in items {
        let step = match kind_of(item).as_deref() {
            Some("sync") => LiveUpdateStep::Sync { local: text(item, "local_path"), remote: text(item, "remote_path") },
            Some("run") => LiveUpdateStep::Run {
                cmd: command(arg, field(item, "cmd"))?.ok_or_else(|| anyhow!("{arg}: run() with an empty command"))?,
                trigger: string_list(arg, field(item, "trigger"))?,
            },
            Some("restart_container") => LiveUpdateStep::RestartContainer,
            Some("fall_back_on") => LiveUpdateStep::FallBackOn { paths: string_list(arg, field(item, "paths"))? },
            Some("initial_sync") => LiveUpdateStep::InitialSync,
            _ => bail!(
                "{arg} must hold sync(), run(), restart_container(), fall_back_on() or initial_sync() steps, got {}",
                values::describe(item)
            ),
        };
        steps.push(step);
    }
    let position = |f: fn(&LiveUpdateStep) -> bool| steps.iter().rposition(f);
    if let (Some(last_sync), Some(first_run)) = (
        position(|s| matches!(s, LiveUpdateStep::Sync { .. })),
        steps
            .iter()
            .position(|s| matches!(s, LiveUpdateStep::Run { .. })),
    ) {
        if first_run < last_sync {
            bail!("{arg}: sync() steps must come before run() steps");
        }
    }
    Ok(steps)
}

/// The YAML documents of an argument that takes file names, blobs, or lists of
/// them (`k8s_yaml`, `filter_yaml`), with where each came from; `function` names
/// the built-in in errors.
pub(crate) fn yaml_sources(
    env: &EvalEnv,
    v: Value,
    function: &str,
) -> anyhow::Result<Vec<(String, Vec<Data>)>> {
    if let Some(items) = list_items(v) {
        let mut sources = Vec::new();
        for item in items {
            sources.extend(yaml_sources(env, item, function)?);
        }
        return Ok(sources);
    }
    let (text, origin) = if let Some(blob) = Blob::from_value(v) {
        (blob.0.clone(), "the YAML blob".to_owned())
    } else if let Some(path) = v.unpack_str() {
        let file = env.resolve(path);
        env.loader.record_read(&env.file, &file);
        let text = loop_lang::project::read_text(&file).map_err(|e| {
            anyhow!(
                "{function}: cannot read {}: {}",
                env.display(&file),
                io_reason(&e)
            )
        })?;
        (text, env.display(&file))
    } else {
        bail!(
            "{function}: expected a file name, a blob or a list of them, got {}",
            values::describe(v)
        );
    };
    let docs = Data::from_yaml_stream(&text)
        .map_err(|e| anyhow!("{function}: invalid YAML in {origin}: {e}"))?;
    Ok(vec![(origin, docs)])
}

/// The objects of a `k8s_yaml` argument: its documents, `List`s flattened, each
/// checked to be a Kubernetes object.
fn yaml_documents(env: &EvalEnv, v: Value) -> anyhow::Result<Vec<Data>> {
    let mut all = Vec::new();
    for (origin, docs) in yaml_sources(env, v, "k8s_yaml")? {
        let mut objects = Vec::new();
        for doc in docs {
            if doc.get("kind").and_then(Data::as_str) == Some("List") {
                objects.extend(
                    doc.get("items")
                        .map(|i| i.as_list().to_vec())
                        .unwrap_or_default(),
                );
            } else {
                objects.push(doc);
            }
        }
        for (i, object) in objects.iter().enumerate() {
            let kind = object.get("kind").and_then(Data::as_str);
            let name = object.path(&["metadata", "name"]).and_then(Data::as_str);
            if kind.is_none()
                || name.is_none()
                || object.get("apiVersion").and_then(Data::as_str).is_none()
            {
                bail!(
                    "k8s_yaml: document {} of {origin} is not a Kubernetes object: it needs `apiVersion`, `kind` and `metadata.name`",
                    i + 1
                );
            }
        }
        all.extend(objects);
    }
    Ok(all)
}

fn port_forwards(arg: Arg, v: Option<Value>) -> anyhow::Result<Vec<PortForward>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = list_items(v).unwrap_or_else(|| vec![v]);
    let parse_port = |s: &str| -> anyhow::Result<u16> {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| anyhow!("{arg}: {s:?} is not a port number"))
    };
    items
        .into_iter()
        .map(|item| {
            if let Ok(port) = values::int::<u16>(arg, item) {
                return Ok(PortForward { local_port: port, container_port: port, host: "localhost".into(), name: None, service: None });
            }
            if let Some(s) = item.unpack_str() {
                let parts: Vec<&str> = s.split(':').collect();
                let (local, container) = match parts.as_slice() {
                    [p] => (parse_port(p)?, parse_port(p)?),
                    [l, c] => (parse_port(l)?, parse_port(c)?),
                    _ => bail!("{arg}: {s:?} must look like \"8000\" or \"8000:80\" (local:container)"),
                };
                return Ok(PortForward { local_port: local, container_port: container, host: "localhost".into(), name: None, service: None });
            }
            if kind_of(item).as_deref() == Some("port_forward") {
                let get = |n| field(item, n).filter(|v| !v.is_none());
                let local: u16 = values::int(arg, get("local_port").unwrap_or(Value::new_none()))?;
                let container = get("container_port").map_or(Ok(local), |v| values::int(arg, v))?;
                let host = get("host").and_then(|h| h.unpack_str()).unwrap_or("localhost").to_owned();
                let name = get("name").and_then(|h| h.unpack_str()).map(str::to_owned);
                let service = get("service").and_then(|h| h.unpack_str()).map(str::to_owned);
                return Ok(PortForward { local_port: local, container_port: container, host, name, service });
            }
            bail!("{arg} must hold ports, \"local:container\" strings or port_forward() values, got {}", values::describe(item))
        })
        .collect()
}

fn pod_selectors(
    arg: Arg,
    v: Option<Value>,
) -> anyhow::Result<Vec<std::collections::BTreeMap<String, String>>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = if DictRef::from_value(v).is_some() {
        vec![v]
    } else {
        list_items(v).unwrap_or_default()
    };
    items
        .into_iter()
        .map(|item| string_map(arg, Some(item)))
        .collect()
}

fn check_image_ref(function: &str, image_ref: &str) -> anyhow::Result<()> {
    if image_ref.is_empty()
        || image_ref
            .chars()
            .any(|c| c.is_whitespace() || c.is_uppercase())
    {
        bail!("{function}: {image_ref:?} is not a valid image name (lower case, no spaces, e.g. \"registry/app\")");
    }
    Ok(())
}

/// Records an image, refusing a second declaration of the same ref.
fn declare_image(env: &EvalEnv, image: Image) -> anyhow::Result<()> {
    let decls = declarations(env);
    if let Some(previous) = decls
        .borrow()
        .images
        .iter()
        .find(|i| i.image_ref == image.image_ref)
    {
        bail!(
            "image {:?} is already declared at {}; declare each image once",
            image.image_ref,
            previous.defined_at
        );
    }
    decls.borrow_mut().images.push(image);
    Ok(())
}

#[starlark_module]
pub fn k8s_builtins(builder: &mut GlobalsBuilder) {
    /// Declares Kubernetes objects from YAML files or blobs; they are grouped into
    /// one resource per workload.
    fn k8s_yaml<'v>(
        yaml: Value<'v>,
        #[starlark(default = false)] allow_duplicates: bool,
        #[starlark(require = named, default = false)] dev_only: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let env = EvalEnv::of(eval)?;
        let at = call_site(eval);
        let docs = yaml_documents(env, yaml)?;
        let mut decls = declarations(env).borrow_mut();
        for body in docs {
            decls.objects.push(ObjectDecl {
                body,
                defined_at: at.clone(),
                allow_duplicates,
                dev_only,
            });
        }
        Ok(NONE)
    }

    /// Configures the resource of a workload (or groups objects under a new name).
    fn k8s_resource<'v>(
        #[starlark(default = "")] workload: &str,
        #[starlark(default = "")] new_name: &str,
        port_forwards: Option<Value<'v>>,
        extra_pod_selectors: Option<Value<'v>>,
        trigger_mode: Option<Value<'v>>,
        resource_deps: Option<Value<'v>>,
        objects: Option<Value<'v>>,
        auto_init: Option<bool>,
        pod_readiness: Option<Value<'v>>,
        links: Option<Value<'v>>,
        labels: Option<Value<'v>>,
        discovery_strategy: Option<Value<'v>>,
        #[starlark(require = named)] data_deps: Option<Value<'v>>,
        #[starlark(require = named, default = false)] dev_only: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let _ = (pod_readiness, discovery_strategy);
        const F: &str = "k8s_resource";
        let a = |name| Arg { function: F, name };
        if workload.is_empty() && new_name.is_empty() {
            bail!(
                "k8s_resource: give `workload` (an existing resource) or `new_name` with `objects`"
            );
        }
        if !new_name.is_empty() {
            check_name(F, new_name)?;
        }
        let env = EvalEnv::of(eval)?;
        let decl = K8sResourceDecl {
            workload: workload.to_owned(),
            new_name: Some(new_name.to_owned()).filter(|n| !n.is_empty()),
            port_forwards: self::port_forwards(a("port_forwards"), port_forwards)?,
            extra_pod_selectors: pod_selectors(a("extra_pod_selectors"), extra_pod_selectors)?,
            trigger_mode: self::trigger_mode(a("trigger_mode"), trigger_mode)?,
            resource_deps: string_list(a("resource_deps"), resource_deps)?,
            data_deps: string_list(a("data_deps"), data_deps)?,
            objects: string_list(a("objects"), objects)?,
            auto_init,
            links: self::links(a("links"), links)?,
            labels: string_list(a("labels"), labels)?,
            dev_only,
            defined_at: call_site(eval),
        };
        declarations(env).borrow_mut().k8s_resources.push(decl);
        Ok(NONE)
    }

    /// A port forward for `k8s_resource(port_forwards=[...])`; with `service`, to
    /// that Service's port `container_port` (a ready pod behind its selector).
    fn port_forward<'v>(
        local_port: i32,
        container_port: Option<i32>,
        name: Option<&str>,
        link_path: Option<&str>,
        host: Option<&str>,
        service: Option<&str>,
        heap: Heap<'v>,
    ) -> anyhow::Result<Value<'v>> {
        let _ = link_path;
        for p in [Some(local_port), container_port].into_iter().flatten() {
            if !(1..=65535).contains(&p) {
                bail!("port_forward: ports must be between 1 and 65535, got {p}");
            }
        }
        let opt = |v: Option<&str>| v.map_or(Value::new_none(), |s| heap.alloc(s));
        Ok(tagged(
            heap,
            "port_forward",
            vec![
                ("local_port", heap.alloc(local_port)),
                (
                    "container_port",
                    container_port.map_or(Value::new_none(), |p| heap.alloc(p)),
                ),
                ("name", opt(name)),
                ("host", opt(host)),
                ("service", opt(service)),
            ],
        ))
    }

    /// Declares an image built with Docker from `context`. The Dockerfile is
    /// `context/Dockerfile` unless `dockerfile` (relative to the Loopfile) or
    /// `dockerfile_contents` is given.
    fn docker_build<'v>(
        r#ref: &str,
        context: &str,
        build_args: Option<Value<'v>>,
        dockerfile: Option<&str>,
        dockerfile_contents: Option<Value<'v>>,
        live_update: Option<Value<'v>>,
        #[starlark(default = false)] match_in_env_vars: bool,
        ignore: Option<Value<'v>>,
        only: Option<Value<'v>>,
        entrypoint: Option<Value<'v>>,
        #[starlark(default = "")] target: &str,
        ssh: Option<Value<'v>>,
        secret: Option<Value<'v>>,
        extra_tag: Option<Value<'v>>,
        network: Option<&str>,
        platform: Option<&str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        const F: &str = "docker_build";
        let a = |name| Arg { function: F, name };
        check_image_ref(F, r#ref)?;
        let env = EvalEnv::of(eval)?;
        let context_dir = env.resolve(context);
        if !context_dir.is_dir() {
            bail!(
                "docker_build: the build context {} is not a folder",
                env.display(&context_dir)
            );
        }
        let contents = match dockerfile_contents.filter(|v| !v.is_none()) {
            None => None,
            Some(v) => Some(if let Some(blob) = Blob::from_value(v) {
                blob.0.clone()
            } else if let Some(text) = v.unpack_str() {
                text.to_owned()
            } else {
                bail!(
                    "docker_build: dockerfile_contents must be a string or a blob, got {}",
                    values::describe(v)
                );
            }),
        };
        if contents.is_some() && dockerfile.is_some() {
            bail!("docker_build: give `dockerfile` or `dockerfile_contents`, not both");
        }
        let only = string_list(a("only"), only)?;
        for o in &only {
            if o.is_empty() || std::path::Path::new(o).is_absolute() || climbs_out(o) {
                bail!("docker_build: only={o:?} must be a path inside the context, relative to it");
            }
        }
        let mut image = Image::new(r#ref, ImageKind::Docker, call_site(eval));
        image.deps = if only.is_empty() {
            vec![env.display(&context_dir)]
        } else {
            only.iter()
                .map(|o| env.display(&context_dir.join(o)))
                .collect()
        };
        image.ignore = string_list(a("ignore"), ignore)?;
        image.live_update = live_update_steps(a("live_update"), live_update)?;
        image.context = Some(env.display(&context_dir));
        image.dockerfile = match (&contents, dockerfile) {
            (Some(_), _) => None,
            (None, Some(d)) => Some(env.display(&env.resolve(d))),
            (None, None) => Some(env.display(&context_dir.join("Dockerfile"))),
        };
        if let Some(d) = &image.dockerfile {
            let path = env.resolve(d);
            if !path.starts_with(&context_dir) {
                // A change to it rebuilds the image.
                image.deps.push(d.clone());
            }
            if !path.is_file() {
                bail!(
                    "docker_build: the Dockerfile {} does not exist{}",
                    env.display(&path),
                    if dockerfile.is_none() {
                        " (it defaults to Dockerfile in the context; pass dockerfile= or dockerfile_contents=)"
                    } else {
                        " (dockerfile= is relative to the Loopfile)"
                    }
                );
            }
        }
        image.dockerfile_contents = contents;
        image.build_args = string_map(a("build_args"), build_args)?;
        image.only = only;
        image.target = Some(target.to_owned()).filter(|t| !t.is_empty());
        image.match_in_env_vars = match_in_env_vars;
        image.entrypoint = self::command(a("entrypoint"), entrypoint)?;
        image.ssh = string_list(a("ssh"), ssh)?;
        image.secrets = string_list(a("secret"), secret)?;
        image.extra_tags = string_list(a("extra_tag"), extra_tag)?;
        for tag in &image.extra_tags {
            if tag.is_empty() || tag.chars().any(|c| c.is_whitespace()) {
                bail!("docker_build: extra_tag {tag:?} is not an image reference");
            }
        }
        image.network = network.map(str::to_owned).filter(|n| !n.is_empty());
        image.platform = platform.map(str::to_owned).filter(|p| !p.is_empty());
        declare_image(env, image)?;
        Ok(NONE)
    }

    /// Declares an image that `loop` assembles and pushes itself, without a Docker
    /// daemon: the `base` image (`host:port/repo:tag` in a plain-HTTP registry)
    /// plus one layer per `files` entry (`{"/path/in/image": "local/path"}`, in
    /// order), with the image's `entrypoint`, `cmd`, `env` and `workdir`. It is
    /// pushed to the `default_registry` (or the cluster's advertised registry).
    fn oci_build<'v>(
        r#ref: &str,
        base: &str,
        files: Value<'v>,
        entrypoint: Option<Value<'v>>,
        cmd: Option<Value<'v>>,
        env: Option<Value<'v>>,
        workdir: Option<&str>,
        live_update: Option<Value<'v>>,
        #[starlark(default = false)] match_in_env_vars: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        const F: &str = "oci_build";
        let a = |name| Arg { function: F, name };
        check_image_ref(F, r#ref)?;
        let base_host = base.split_once('/').map(|(h, _)| h).unwrap_or_default();
        if !(base_host.contains('.') || base_host.contains(':') || base_host == "localhost") {
            bail!("oci_build: base {base:?} must name its registry, e.g. \"localhost:5000/busybox:1.36\" (the base is read from a registry, not from a Docker daemon)");
        }
        let ev = EvalEnv::of(eval)?;
        let dict = DictRef::from_value(files).ok_or_else(|| {
            anyhow!(
                "oci_build: files must be a dict {{\"/path/in/image\": \"local/path\"}}, got {}",
                values::describe(files)
            )
        })?;
        let mut image = Image::new(r#ref, ImageKind::Oci, call_site(eval));
        for (dest, src) in dict.iter() {
            let (Some(dest), Some(src)) = (dest.unpack_str(), src.unpack_str()) else {
                bail!("oci_build: files maps image paths to local paths, both strings");
            };
            if !dest.starts_with('/') {
                bail!("oci_build: files key {dest:?} must be an absolute path in the image");
            }
            let path = ev.resolve(src);
            if !path.exists() {
                bail!(
                    "oci_build: files[{dest:?}]: {} does not exist",
                    ev.display(&path)
                );
            }
            let shown = ev.display(&path);
            image.deps.push(shown.clone());
            image.copies.push(loop_lang::model::OciCopy {
                src: shown,
                dest: dest.to_owned(),
            });
        }
        if image.copies.is_empty() {
            bail!("oci_build: files is empty: give at least one {{\"/path/in/image\": \"local/path\"}}");
        }
        let argv =
            |name: &'static str, v: Option<Value<'v>>| -> anyhow::Result<Option<Vec<String>>> {
                Ok(self::command(a(name), v)?.map(|c| c.argv()))
            };
        image.base = Some(base.to_owned());
        image.image_entrypoint = argv("entrypoint", entrypoint)?;
        image.image_cmd = argv("cmd", cmd)?;
        image.image_env = values::env_map(a("env"), env)?;
        image.workdir = workdir.filter(|w| !w.is_empty()).map(str::to_owned);
        image.live_update = live_update_steps(a("live_update"), live_update)?;
        image.command_dir = ev.display(&ev.dir);
        image.match_in_env_vars = match_in_env_vars;
        declare_image(ev, image)?;
        Ok(NONE)
    }

    /// Declares an image built by a command, which must build `$EXPECTED_REF`.
    fn custom_build<'v>(
        r#ref: &str,
        command: Value<'v>,
        deps: Value<'v>,
        #[starlark(default = "")] tag: &str,
        #[starlark(default = false)] disable_push: bool,
        #[starlark(default = false)] skips_local_docker: bool,
        live_update: Option<Value<'v>>,
        #[starlark(default = false)] match_in_env_vars: bool,
        ignore: Option<Value<'v>>,
        entrypoint: Option<Value<'v>>,
        dir: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        const F: &str = "custom_build";
        let a = |name| Arg { function: F, name };
        check_image_ref(F, r#ref)?;
        let env = EvalEnv::of(eval)?;
        let mut image = Image::new(r#ref, ImageKind::Custom, call_site(eval));
        image.command = Some(
            self::command(a("command"), Some(command))?
                .ok_or_else(|| anyhow!("custom_build: the command is empty"))?,
        );
        image.deps = values::path_list(env, a("deps"), Some(deps))?;
        image.ignore = string_list(a("ignore"), ignore)?;
        image.live_update = live_update_steps(a("live_update"), live_update)?;
        image.command_dir = env.display(&values::folder(env, a("dir"), dir)?);
        image.entrypoint = self::command(a("entrypoint"), entrypoint)?;
        image.tag = Some(tag.to_owned()).filter(|t| !t.is_empty());
        image.skips_local_docker = skips_local_docker;
        image.disable_push = disable_push;
        image.match_in_env_vars = match_in_env_vars;
        declare_image(env, image)?;
        Ok(NONE)
    }

    /// Live update: copy `local_path` (file or folder) to `remote_path` in the target.
    fn sync<'v>(
        local_path: &str,
        remote_path: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        if remote_path.is_empty() {
            bail!("sync: remote_path is empty");
        }
        if climbs_out(remote_path) {
            bail!("sync: remote_path {remote_path:?} climbs out of the folder it is relative to (the container's working directory, or a local resource's folder); use an absolute path, or a relative one that stays inside");
        }
        let local = env.display(&env.resolve(local_path));
        let heap = eval.heap();
        Ok(tagged(
            heap,
            "sync",
            vec![
                ("local_path", heap.alloc(local)),
                ("remote_path", heap.alloc(remote_path)),
            ],
        ))
    }

    /// Live update: run `cmd` in the target, only when a changed file matches `trigger` (if given).
    fn run<'v>(
        cmd: Value<'v>,
        trigger: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        let a = Arg {
            function: "run",
            name: "trigger",
        };
        command(
            Arg {
                function: "run",
                name: "cmd",
            },
            Some(cmd),
        )?
        .ok_or_else(|| anyhow!("run: the command is empty"))?;
        let triggers = values::path_list(env, a, trigger)?;
        let heap = eval.heap();
        let triggers = values::alloc_strings(heap, &triggers);
        Ok(tagged(
            heap,
            "run",
            vec![("cmd", cmd), ("trigger", triggers)],
        ))
    }

    /// Live update: restart the target's process after syncing.
    fn restart_container<'v>(heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        Ok(tagged(heap, "restart_container", vec![]))
    }

    /// Live update: a change to any of these files forces a full rebuild instead.
    fn fall_back_on<'v>(
        files: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let env = EvalEnv::of(eval)?;
        let arg = Arg {
            function: "fall_back_on",
            name: "files",
        };
        let paths = values::path_list(env, arg, Some(files))?;
        let heap = eval.heap();
        let paths = values::alloc_strings(heap, &paths);
        Ok(tagged(heap, "fall_back_on", vec![("paths", paths)]))
    }

    /// Live update: sync every file once when the target first starts.
    fn initial_sync<'v>(heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        Ok(tagged(heap, "initial_sync", vec![]))
    }
}

/// Whether a relative path's `..` components climb above where it starts.
fn climbs_out(path: &str) -> bool {
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
