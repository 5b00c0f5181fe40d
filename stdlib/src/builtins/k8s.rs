//! Kubernetes and image declarations: `k8s_yaml`, `k8s_resource`, `docker_build`,
//! `custom_build`, and the live-update steps. The engine that acts on them is
//! separate; here they are validated and recorded.

use anyhow::{anyhow, bail};
use loop_lang::data::Data;
use loop_lang::model::PortForward;
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::dict::DictRef;
use starlark::values::none::NoneType;
use starlark::values::{Heap, Value};

use super::args::{check_name, links, trigger_mode};
use super::{field, kind_of, tagged};
use crate::decls::{call_site, declarations, K8sResourceDecl, ObjectDecl};
use crate::values::{self, io_reason, list_items, string_list, string_map, Arg, Blob, NONE};

/// The YAML documents of an argument that takes file names, blobs, or lists of
/// them (`k8s_yaml`, `filter_yaml`), with where each came from; `function` names
/// the built-in in errors.
/// The documents of one YAML source, and where each starts in its file.
pub(crate) struct YamlSource {
    /// The file as users see it, or "the YAML blob".
    pub origin: String,
    pub docs: Vec<Data>,
    /// `file:line` of each document (empty for a blob, or when the documents
    /// could not be matched to lines).
    pub lines: Vec<String>,
}

pub(crate) fn yaml_sources(
    env: &EvalEnv,
    v: Value,
    function: &str,
) -> anyhow::Result<Vec<YamlSource>> {
    if let Some(items) = list_items(v) {
        let mut sources = Vec::new();
        for item in items {
            sources.extend(yaml_sources(env, item, function)?);
        }
        return Ok(sources);
    }
    let (text, origin, from_file) = if let Some(blob) = Blob::from_value(v) {
        (blob.0.clone(), "the YAML blob".to_owned(), false)
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
        (text, env.display(&file), true)
    } else {
        bail!(
            "{function}: expected a file name, a blob or a list of them, got {}",
            values::describe(v)
        );
    };
    let docs = Data::from_yaml_stream(&text)
        .map_err(|e| anyhow!("{function}: invalid YAML in {origin}: {e}"))?;
    let starts = document_starts(&text);
    let lines = if from_file && starts.len() == docs.len() {
        starts
            .iter()
            .map(|line| format!("{origin}:{line}"))
            .collect()
    } else {
        Vec::new()
    };
    Ok(vec![YamlSource {
        origin,
        docs,
        lines,
    }])
}

/// The 1-based line where each document of a YAML stream starts (its first
/// line that is not blank, a comment or a `---` marker); documents with no
/// such line are not counted.
fn document_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut in_document = false;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") || line.starts_with("...") {
            in_document = false;
            continue;
        }
        let content = line.trim_start();
        if in_document || content.is_empty() || content.starts_with('#') {
            continue;
        }
        in_document = true;
        starts.push(i + 1);
    }
    starts
}

/// The objects of a `k8s_yaml` argument: its documents, `List`s flattened, each
/// checked to be a Kubernetes object.
fn yaml_documents(env: &EvalEnv, v: Value) -> anyhow::Result<Vec<(Data, Option<String>)>> {
    let mut all = Vec::new();
    for YamlSource {
        origin,
        docs,
        lines,
    } in yaml_sources(env, v, "k8s_yaml")?
    {
        let mut objects = Vec::new();
        for (i, doc) in docs.into_iter().enumerate() {
            let line = lines.get(i).cloned();
            if doc.get("kind").and_then(Data::as_str) == Some("List") {
                let items = doc.get("items").map(|i| i.as_list().to_vec());
                objects.extend(
                    items
                        .unwrap_or_default()
                        .into_iter()
                        .map(|o| (o, line.clone())),
                );
            } else {
                objects.push((doc, line));
            }
        }
        for (i, (object, _)) in objects.iter().enumerate() {
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
            // A container port left out is 0 here: `assemble` resolves it from the
            // workload's declared container ports, as Tilt does.
            if let Ok(port) = values::int::<u16>(arg, item) {
                return Ok(PortForward { local_port: port, container_port: 0, host: "localhost".into(), name: None, service: None });
            }
            if let Some(s) = item.unpack_str() {
                // Tilt's forms: "LOCAL", "LOCAL:CONTAINER" and "HOST:LOCAL:CONTAINER".
                let parts: Vec<&str> = s.split(':').collect();
                let (host, local, container) = match parts.as_slice() {
                    [p] => ("localhost", parse_port(p)?, 0),
                    [l, c] => ("localhost", parse_port(l)?, parse_port(c)?),
                    [h, l, c] if !h.trim().is_empty() => (h.trim(), parse_port(l)?, parse_port(c)?),
                    _ => bail!("{arg}: {s:?} must look like \"8000\", \"8000:80\" (local:container) or \"127.0.0.1:8000:80\" (host:local:container)"),
                };
                return Ok(PortForward { local_port: local, container_port: container, host: host.into(), name: None, service: None });
            }
            if kind_of(item).as_deref() == Some("port_forward") {
                let get = |n| field(item, n).filter(|v| !v.is_none());
                let local: u16 = values::int(arg, get("local_port").unwrap_or(Value::new_none()))?;
                let container = get("container_port").map_or(Ok(0), |v| values::int(arg, v))?;
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

#[starlark_module]
pub fn k8s_builtins(builder: &mut GlobalsBuilder) {
    /// Declares Kubernetes objects from YAML files or blobs; they are grouped into
    /// one resource per workload.
    ///
    /// Tilt: the same; `dev_only` is `loop`'s own.
    ///
    /// # Arguments
    /// * `yaml`: a file name, a blob (`read_file`, `local`, `helm`, `kustomize`), or a list of them.
    /// * `allow_duplicates`: True: an object declared again is not an error (the first one counts).
    /// * `dev_only`: True: left out of `loop render` (listed as left out).
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
        for (body, source) in docs {
            decls.objects.push(ObjectDecl {
                body,
                defined_at: at.clone(),
                source,
                allow_duplicates,
                dev_only,
            });
        }
        Ok(NONE)
    }

    /// Configures the resource of a workload (or groups objects under a new name).
    ///
    /// Tilt: the same; `pod_readiness` and `discovery_strategy` are accepted and
    /// ignored; `data_deps` and `dev_only` are `loop`'s own.
    ///
    /// # Arguments
    /// * `workload`: the resource to configure (`name`, `name:kind` or `name:kind:namespace`).
    /// * `new_name`: renames it, or, without `workload`, names a new resource of `objects`.
    /// * `port_forwards`: `8080`, `"8080:80"`, `"127.0.0.1:8080:80"`, `port_forward(...)`, or a list of them.
    ///   Without a container port, as in Tilt: the local port when the workload's containers
    ///   declare it, else the first port they declare, else the local port.
    /// * `extra_pod_selectors`: label maps: pods matching any also belong to the resource.
    /// * `trigger_mode`: `TRIGGER_MODE_AUTO` or `TRIGGER_MODE_MANUAL`.
    /// * `resource_deps`: resources that must be ready before this one first starts.
    /// * `objects`: objects (`name:kind`) moved into this resource.
    /// * `auto_init`: False: not started with the session, only when triggered.
    /// * `pod_readiness`: accepted and ignored.
    /// * `links`: URLs (or `link(url, name)`) shown with the resource.
    /// * `labels`: groups shown with the resource in the session API and the dashboard.
    /// * `discovery_strategy`: accepted and ignored.
    /// * `data_deps`: resources whose outputs this one reads: it re-runs after each of their updates.
    /// * `dev_only`: True: the resource's objects are left out of `loop render`.
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
}

#[cfg(test)]
mod tests {
    use super::document_starts;

    #[test]
    fn documents_start_at_their_first_content_line() {
        let text = "# a comment\n\napiVersion: v1\nkind: A\n---\n# b\nkind: B\n---\n---\n\n  kind: C\n...\n";
        assert_eq!(document_starts(text), [3, 7, 11]);
        assert_eq!(document_starts(""), Vec::<usize>::new());
    }
}
