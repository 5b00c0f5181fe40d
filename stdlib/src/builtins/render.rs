//! YAML renderers run during evaluation, as Tilt runs them: `kustomize()` runs
//! `kustomize build` (else `kubectl kustomize`) and `helm()` runs `helm template`.
//! Each returns the rendered YAML as a blob and records what it read, so that an
//! edit to the kustomization, a chart, or a values file re-evaluates.
//!
//! A missing program is an error that names it and how to install it; a failing
//! one is an error with its exit code and standard error. Both point at the call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use loop_lang::data::Data;
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::Value;

use super::files::run_tool;
use crate::decls::declarations;
use crate::values::{string_list, Arg, Blob};

/// How to get kubectl (which has kustomize built in) or kustomize itself.
const KUSTOMIZE_INSTALL: &str = "install kubectl (Debian/Ubuntu: `apt-get install kubernetes-client`; others: https://kubernetes.io/docs/tasks/tools/), which has kustomize built in, or kustomize itself (https://kubectl.docs.kubernetes.io/installation/kustomize/)";

/// How to get helm.
const HELM_INSTALL: &str =
    "install Helm 3 (https://helm.sh/docs/intro/install/) and make sure `helm` is on your PATH";

/// The PATH that commands run with: `os.putenv("PATH", ...)` wins over loop's own.
fn search_path(env: &EvalEnv) -> Option<std::ffi::OsString> {
    match declarations(env).borrow().env.get("PATH") {
        Some(Some(path)) => Some(path.into()),
        Some(None) => None,
        None => std::env::var_os("PATH"),
    }
}

/// Where `program` is: itself when it holds a `/` (resolved against the
/// Loopfile's folder), else the first executable of that name on the PATH.
fn find_program(env: &EvalEnv, program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = env.resolve(program);
        return executable(&path).then_some(path);
    }
    let path = search_path(env)?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// A folder argument that must exist, resolved against the Loopfile's folder.
fn existing_folder(
    env: &EvalEnv,
    function: &str,
    what: &str,
    path: &str,
) -> anyhow::Result<PathBuf> {
    let dir = env.resolve(path);
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(dir),
        Ok(_) => bail!(
            "{function}: {} is a file; give the {what} folder",
            env.display(&dir)
        ),
        Err(_) => bail!(
            "{function}: the {what} folder {} does not exist (paths are relative to the folder of {})",
            env.display(&dir),
            env.display(&env.file)
        ),
    }
}

/// `dir` relative to `base` (`..` where needed), as kustomize wants it: it
/// mishandles some absolute paths, so Tilt passes a relative one too.
fn relative(dir: &Path, base: &Path) -> String {
    let dir: Vec<_> = dir.components().collect();
    let base: Vec<_> = base.components().collect();
    let common = dir.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); base.len() - common];
    parts.extend(
        dir[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

/// The kustomization file of a folder, if it has one.
fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// Every local file and folder a kustomization reads, the folder itself first:
/// its resources, bases, components, patches and generator inputs, and what
/// the kustomizations they name read in turn. Remote ones (URLs) are skipped.
pub fn kustomize_deps(dir: &Path) -> Vec<PathBuf> {
    let mut seen = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let dir = loop_lang::project::normalize(&dir);
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir.clone());
        let Some(file) = kustomization_file(&dir) else {
            continue;
        };
        let Ok(doc) = std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|text| Data::from_yaml(&text))
        else {
            continue;
        };
        let mut paths: Vec<String> = Vec::new();
        let strings = |d: Option<&Data>| -> Vec<String> {
            d.map(|d| {
                d.as_list()
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
        };
        for key in [
            "resources",
            "bases",
            "components",
            "crds",
            "patchesStrategicMerge",
            "configurations",
            "generators",
            "transformers",
            "validators",
        ] {
            paths.extend(strings(doc.get(key)));
        }
        for key in ["patches", "patchesJson6902", "replacements"] {
            for item in doc.get(key).map(Data::as_list).unwrap_or_default() {
                if let Some(path) = item.get("path").and_then(Data::as_str) {
                    paths.push(path.to_owned());
                }
            }
        }
        for key in ["configMapGenerator", "secretGenerator"] {
            for item in doc.get(key).map(Data::as_list).unwrap_or_default() {
                paths.extend(strings(item.get("files")).into_iter().map(|f| {
                    // `key=path` names the key the file's content goes under.
                    f.split_once('=').map_or(f.clone(), |(_, p)| p.to_owned())
                }));
                paths.extend(strings(item.get("envs")));
                if let Some(env) = item.get("env").and_then(Data::as_str) {
                    paths.push(env.to_owned());
                }
            }
        }
        for path in paths {
            if path.contains("://") || path.starts_with("github.com/") || path.contains("?ref=") {
                continue;
            }
            let full = loop_lang::project::normalize(&dir.join(&path));
            if full.is_dir() {
                todo.push(full);
            } else if !full.starts_with(&dir) && !seen.contains(&full) {
                seen.push(full);
            }
        }
    }
    seen
}

/// Documents of a `helm template` output that are chart tests (their `# Source:`
/// is under `tests/`), which Tilt leaves out.
fn without_helm_tests(yaml: &str) -> String {
    let is_test = |doc: &str| {
        doc.lines().any(|line| {
            line.strip_prefix("# Source: ")
                .is_some_and(|source| source.contains("/tests/"))
        })
    };
    yaml.split("---\n")
        .filter(|doc| !is_test(doc))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Kinds that live outside namespaces, which `helm(namespace=...)` leaves alone.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "PodSecurityPolicy",
    "FlowSchema",
    "PriorityLevelConfiguration",
];

/// Sets `namespace` on every namespaced object that has none, as Tilt does
/// after `helm template --namespace` (which does not set it itself).
fn with_namespace(function: &str, yaml: &str, namespace: &str) -> anyhow::Result<String> {
    let docs = Data::from_yaml_stream(yaml)
        .map_err(|e| anyhow!("{function}: the rendered YAML is invalid: {e}"))?;
    let docs: Vec<Data> =
        docs.into_iter()
            .filter(|d| *d != Data::Null)
            .map(|mut doc| {
                let kind = doc.get("kind").and_then(Data::as_str).unwrap_or_default();
                if CLUSTER_SCOPED.contains(&kind) {
                    return doc;
                }
                if let Data::Map(entries) = &mut doc {
                    if !entries.iter().any(|(k, _)| k == "metadata") {
                        entries.push(("metadata".to_owned(), Data::Map(Vec::new())));
                    }
                    if let Some((_, Data::Map(meta))) =
                        entries.iter_mut().find(|(k, _)| k == "metadata")
                    {
                        match meta.iter_mut().find(|(k, _)| k == "namespace") {
                            Some((_, ns)) if ns.as_str().is_some_and(|s| !s.is_empty()) => {}
                            Some((_, ns)) => *ns = Data::String(namespace.to_owned()),
                            None => meta
                                .push(("namespace".to_owned(), Data::String(namespace.to_owned()))),
                        }
                    }
                }
                doc
            })
            .collect();
    Data::to_yaml_stream(&docs).map_err(|e| anyhow!("{function}: {e}"))
}

/// The `dependencies` of a chart (Chart.yaml, or requirements.yaml for Helm 2
/// charts) that are local folders (`file://...`), resolved against the chart.
fn local_subcharts(chart: &Path) -> Vec<PathBuf> {
    ["Chart.yaml", "requirements.yaml"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(chart.join(f)).ok())
        .filter_map(|text| Data::from_yaml(&text).ok())
        .flat_map(|doc| {
            doc.get("dependencies")
                .map(Data::as_list)
                .unwrap_or_default()
                .iter()
                .filter_map(|d| d.get("repository").and_then(Data::as_str))
                .filter_map(|r| r.strip_prefix("file://"))
                .map(|p| loop_lang::project::normalize(&chart.join(p)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Helm's major line, from `helm version --client --short` (`v3.x` or
/// `Client: v2.x`); the last line counts, since some versions print warnings first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HelmVersion {
    V2,
    V3_0,
    V3,
}

fn parse_helm_version(output: &str) -> Option<HelmVersion> {
    let line = output.trim().lines().last().unwrap_or_default().trim();
    if line.starts_with("v3.0.") {
        Some(HelmVersion::V3_0)
    } else if line.starts_with('v') && !line.starts_with("v2.") {
        Some(HelmVersion::V3)
    } else if line.starts_with("Client: v2") || line.starts_with("v2.") {
        Some(HelmVersion::V2)
    } else {
        None
    }
}

/// The `helm template` command Tilt runs for these arguments.
#[allow(clippy::too_many_arguments)]
fn helm_argv(
    helm: &str,
    version: HelmVersion,
    chart: &str,
    name: &str,
    namespace: &str,
    values: &[String],
    set: &[String],
    kube_version: &str,
    skip_crds: bool,
) -> Vec<String> {
    let name = if name.is_empty() { "chart" } else { name };
    let mut argv: Vec<String> = match version {
        HelmVersion::V3 => {
            let mut argv = vec![helm.into(), "template".into(), name.into(), chart.into()];
            if !skip_crds {
                argv.push("--include-crds".into());
            }
            argv
        }
        HelmVersion::V3_0 => vec![helm.into(), "template".into(), name.into(), chart.into()],
        HelmVersion::V2 => vec![
            helm.into(),
            "template".into(),
            chart.into(),
            "--name".into(),
            name.into(),
        ],
    };
    if !namespace.is_empty() {
        argv.extend(["--namespace".into(), namespace.into()]);
    }
    if !kube_version.is_empty() {
        argv.extend(["--kube-version".into(), kube_version.into()]);
    }
    for file in values {
        argv.extend(["--values".into(), file.clone()]);
    }
    for value in set {
        argv.extend(["--set".into(), value.clone()]);
    }
    argv
}

/// The YAML files of a chart's `crds/` folder, for Helm 3.0, whose `template`
/// leaves them out.
fn chart_crds(chart: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut todo = vec![chart.join("crds")];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect()
}

#[starlark_module]
pub fn render_builtins(builder: &mut GlobalsBuilder) {
    /// Runs `kustomize build` on a folder (else `kubectl kustomize` when
    /// `kustomize` is not on the PATH) and returns the YAML as a blob. The
    /// kustomization and everything it reads are watched. `kustomize_bin` names
    /// the program to run instead; `flags` are passed before the folder.
    fn kustomize<'v>(
        paths: &str,
        kustomize_bin: Option<Value<'v>>,
        flags: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Blob> {
        const F: &str = "kustomize";
        let a = |name| Arg { function: F, name };
        let env = EvalEnv::of(eval)?;
        let flags = string_list(a("flags"), flags)?;
        let bin = crate::values::opt_string(a("kustomize_bin"), kustomize_bin)?;
        let dir = existing_folder(env, F, "kustomization", paths)?;
        for dep in kustomize_deps(&dir) {
            env.loader.record_read(&env.file, &dep);
        }
        let mut argv: Vec<String> = match &bin {
            Some(bin) => {
                let program = find_program(env, bin).ok_or_else(|| {
                    anyhow!("kustomize: kustomize_bin {bin:?} was not found or is not executable")
                })?;
                vec![program.to_string_lossy().into_owned(), "build".into()]
            }
            None => match find_program(env, "kustomize") {
                Some(_) => vec!["kustomize".into(), "build".into()],
                None if find_program(env, "kubectl").is_some() => {
                    env.loader.log(
                        &env.file,
                        false,
                        "kustomize: falling back to `kubectl kustomize` since `kustomize` was not found on the PATH".to_owned(),
                    );
                    vec!["kubectl".into(), "kustomize".into()]
                }
                None => bail!("kustomize: neither `kustomize` nor `kubectl` was found on the PATH; {KUSTOMIZE_INSTALL}"),
            },
        };
        argv.extend(flags);
        argv.push(relative(&dir, &env.dir));
        let shown = argv.join(" ");
        env.loader
            .log(&env.file, false, format!("Running: {shown}"));
        let yaml = run_tool(env, F, &argv, &shown, &env.dir, &BTreeMap::new(), None)?;
        Ok(Blob(yaml))
    }

    /// Runs `helm template` on a chart folder with Tilt's arguments and returns
    /// the YAML as a blob (chart tests left out; with `namespace`, every
    /// namespaced object without one gets it). The chart, its local subcharts
    /// and the values files are watched.
    fn helm<'v>(
        paths: &str,
        #[starlark(default = "")] name: &str,
        #[starlark(default = "")] namespace: &str,
        values: Option<Value<'v>>,
        set: Option<Value<'v>>,
        #[starlark(default = "")] kube_version: &str,
        #[starlark(default = false)] skip_crds: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Blob> {
        const F: &str = "helm";
        let a = |name| Arg { function: F, name };
        let env = EvalEnv::of(eval)?;
        let values = string_list(a("values"), values)?;
        let set = string_list(a("set"), set)?;
        let chart = env.resolve(paths);
        match std::fs::metadata(&chart) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => bail!(
                "helm: {} is a file; give the chart's folder (the one holding Chart.yaml)",
                env.display(&chart)
            ),
            Err(_) => bail!(
                "helm: the chart folder {} does not exist (paths are relative to the folder of {})",
                env.display(&chart),
                env.display(&env.file)
            ),
        }
        env.loader.record_read(&env.file, &chart);
        for sub in local_subcharts(&chart) {
            env.loader.record_read(&env.file, &sub);
        }
        for file in &values {
            let path = env.resolve(file);
            env.loader.record_read(&env.file, &path);
            if !path.is_file() {
                bail!(
                    "helm: the values file {} does not exist (paths are relative to the folder of {})",
                    env.display(&path),
                    env.display(&env.file)
                );
            }
        }
        if find_program(env, "helm").is_none() {
            bail!("helm: `helm` was not found on the PATH; {HELM_INSTALL}");
        }
        let none = BTreeMap::new();
        let version_argv: Vec<String> = ["helm", "version", "--client", "--short"]
            .map(str::to_owned)
            .to_vec();
        let output = run_tool(
            env,
            F,
            &version_argv,
            &version_argv.join(" "),
            &env.dir,
            &none,
            None,
        )?;
        let version = parse_helm_version(&output).ok_or_else(|| {
            anyhow!(
                "helm: cannot tell Helm's version from `helm version --client --short`: {:?}",
                output.trim()
            )
        })?;
        let chart_arg = chart.to_string_lossy().into_owned();
        let argv = helm_argv(
            "helm",
            version,
            &chart_arg,
            name,
            namespace,
            &values,
            &set,
            kube_version,
            skip_crds,
        );
        let shown = argv.join(" ");
        env.loader
            .log(&env.file, false, format!("Running: {shown}"));
        let stdout = run_tool(env, F, &argv, &shown, &env.dir, &none, None)?;
        let mut yaml = without_helm_tests(&stdout);
        if version == HelmVersion::V3_0 && !skip_crds {
            let mut parts = vec![yaml];
            parts.extend(chart_crds(&chart));
            yaml = parts.join("\n---\n");
        }
        if !namespace.is_empty() {
            yaml = with_namespace(F, &yaml, namespace)?;
        }
        Ok(Blob(yaml))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_commands_are_tilts() {
        let v = |version, skip| {
            helm_argv(
                "helm",
                version,
                "/p/chart",
                "",
                "ns",
                &["a.yaml".into()],
                &["x=1".into(), "y=2".into()],
                "1.29.0",
                skip,
            )
            .join(" ")
        };
        assert_eq!(
            v(HelmVersion::V3, false),
            "helm template chart /p/chart --include-crds --namespace ns --kube-version 1.29.0 --values a.yaml --set x=1 --set y=2"
        );
        assert_eq!(
            v(HelmVersion::V3, true),
            "helm template chart /p/chart --namespace ns --kube-version 1.29.0 --values a.yaml --set x=1 --set y=2"
        );
        assert!(v(HelmVersion::V3_0, false).starts_with("helm template chart /p/chart --namespace"));
        assert!(v(HelmVersion::V2, false)
            .starts_with("helm template /p/chart --name chart --namespace"));
    }

    #[test]
    fn helm_versions_are_read_from_the_last_line() {
        assert_eq!(
            parse_helm_version("v3.14.2+gc309b6f\n"),
            Some(HelmVersion::V3)
        );
        assert_eq!(
            parse_helm_version("WARNING: x\nv3.0.1+g\n"),
            Some(HelmVersion::V3_0)
        );
        assert_eq!(
            parse_helm_version("Client: v2.16.1+g\n"),
            Some(HelmVersion::V2)
        );
        assert_eq!(parse_helm_version("nonsense"), None);
    }

    #[test]
    fn chart_tests_are_left_out() {
        let yaml = "---\n# Source: c/templates/a.yaml\nkind: A\n---\n# Source: c/templates/tests/t.yaml\nkind: T\n";
        let out = without_helm_tests(yaml);
        assert!(out.contains("kind: A") && !out.contains("kind: T"), "{out}");
    }

    #[test]
    fn namespaces_go_on_namespaced_objects_without_one() {
        let yaml = "kind: Deployment\nmetadata:\n  name: a\n---\nkind: ClusterRole\nmetadata:\n  name: r\n---\nkind: Service\nmetadata:\n  name: s\n  namespace: other\n";
        let docs = Data::from_yaml_stream(&with_namespace("helm", yaml, "ns").unwrap()).unwrap();
        let ns = |i: usize| {
            docs[i]
                .path(&["metadata", "namespace"])
                .and_then(Data::as_str)
                .map(str::to_owned)
        };
        assert_eq!(ns(0).as_deref(), Some("ns"));
        assert_eq!(ns(1), None);
        assert_eq!(ns(2).as_deref(), Some("other"));
    }

    #[test]
    fn relative_paths_climb_with_dots() {
        assert_eq!(relative(Path::new("/a/b/c"), Path::new("/a/b")), "c");
        assert_eq!(relative(Path::new("/a/x"), Path::new("/a/b")), "../x");
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/b")), ".");
    }

    #[test]
    fn kustomize_deps_follow_bases_patches_and_generators() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("base")).unwrap();
        std::fs::create_dir_all(root.join("overlay")).unwrap();
        std::fs::write(
            root.join("base/kustomization.yaml"),
            "resources:\n- deploy.yaml\n",
        )
        .unwrap();
        std::fs::write(
            root.join("overlay/kustomization.yaml"),
            "resources:\n- ../base\n- https://example.com/x.yaml\npatches:\n- path: ../patch.yaml\nconfigMapGenerator:\n- name: c\n  files:\n  - key=../conf.txt\n",
        )
        .unwrap();
        let deps = kustomize_deps(&root.join("overlay"));
        let root = loop_lang::project::normalize(root);
        assert_eq!(
            deps,
            vec![
                root.join("overlay"),
                root.join("patch.yaml"),
                root.join("conf.txt"),
                root.join("base"),
            ]
        );
    }
}
