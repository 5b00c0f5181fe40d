//! Turns the raw declarations into a [`Manifest`]: Kubernetes objects grouped into
//! one resource per workload, `k8s_resource` applied, images linked to the
//! workloads that use them, and resource names checked for clashes.

use std::collections::BTreeMap;

use loop_lang::data::Data;
use loop_lang::model::{Image, Manifest, ObjectRef, Resource, ResourceKind};
use loop_lang::{Diagnostic, Location};

use crate::decls::{Declarations, K8sResourceDecl};
use loop_lang::workload;
use loop_lang::workload::image_matches;

/// The name of the resource that holds objects belonging to no workload.
pub const UNCATEGORIZED: &str = "uncategorized";

/// Builds the Manifest (without the loader's file lists, which the caller adds).
pub fn assemble(decls: Declarations) -> Result<Manifest, Diagnostic> {
    let Declarations {
        local_resources,
        custom_deploys,
        buttons,
        button_commands,
        objects,
        k8s_resources,
        compose,
        dc_resources,
        images,
        settings,
        default_trigger_mode,
        env,
        workload_names,
        mut release,
        ..
    } = decls;
    check_profile(&release)?;
    release.dev_only_resources.extend(
        k8s_resources
            .iter()
            .filter(|d| d.dev_only)
            .map(|d| d.new_name.clone().unwrap_or_else(|| d.workload.clone())),
    );
    let mut local_resources = local_resources;
    // os.putenv/os.unsetenv change Tilt's own environment, which every command
    // it runs inherits; a resource's own `env` still wins.
    for resource in &mut local_resources {
        for (key, value) in &env {
            if let Some(value) = value {
                resource
                    .env
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
        }
    }
    let mut images = images;
    for image in &mut images {
        image.watch_ignore = settings.watch_ignore.clone();
    }
    link_base_images(&mut images);
    check_base_cycles(&images)?;
    let objects = to_objects(objects, &mut release)?;
    let mut k8s = group_objects(&objects, &workload_names);
    for mut resource in custom_deploys {
        check_image_deps(&resource, &images)?;
        if let Some(deploy) = &mut resource.custom_deploy {
            for (key, value) in &env {
                if let Some(value) = value {
                    for map in [&mut deploy.apply_env, &mut deploy.delete_env] {
                        map.entry(key.clone()).or_insert_with(|| value.clone());
                    }
                }
            }
        }
        k8s.resources.push(resource);
    }
    let mut uncategorized: Vec<ObjectRef> = k8s.unattached;
    for decl in &k8s_resources {
        apply_k8s_resource(
            decl,
            &mut k8s.resources,
            &mut uncategorized,
            &local_resources,
        )?;
    }
    for resource in &mut k8s.resources {
        // A custom deploy's images are its image_deps (and their bases).
        let used = match resource.custom_deploy {
            Some(_) => std::mem::take(&mut resource.images),
            None => images_used(resource, &images),
        };
        resource.images = with_base_images(used, &images);
        crate::tilt_rules::resolve_container_ports(resource);
    }
    let mut resources = local_resources;
    resources.extend(k8s.resources);
    for mut service in crate::builtins::docker_compose::compose_resources(
        &compose,
        &dc_resources,
        &images,
        default_trigger_mode,
        &env,
    ) {
        // Its base images first, as for any resource.
        service.images = with_base_images(std::mem::take(&mut service.images), &images);
        resources.push(service);
    }
    if let Some(first) = uncategorized.first() {
        let mut resource = k8s_resource_named(UNCATEGORIZED, first.defined_at.clone());
        resource.kind = ResourceKind::K8sUncategorized;
        resource.objects = uncategorized;
        resources.push(resource);
    }
    check_unique_names(&resources)?;
    let buttons = with_commands(buttons, button_commands, &resources)?;
    Ok(Manifest {
        resources,
        images,
        settings,
        release,
        buttons,
        ..Manifest::default()
    })
}

/// `--profile NAME` must name a profile the Loopfiles test with `profile()`.
fn check_profile(release: &loop_lang::model::Release) -> Result<(), Diagnostic> {
    let Some(given) = &release.profile else {
        return Ok(());
    };
    if release.profiles.iter().any(|(name, _)| name == given) {
        return Ok(());
    }
    let known: Vec<String> = release
        .profiles
        .iter()
        .map(|(name, at)| format!("`{name}` ({at})"))
        .collect();
    let message = if known.is_empty() {
        format!("--profile {given}: the Loopfiles use no profiles; test one with `if profile(\"{given}\"):`")
    } else {
        let mut m = format!(
            "--profile {given}: no Loopfile uses this profile; the profiles used: {}",
            known.join(", ")
        );
        let names = release.profiles.iter().map(|(n, _)| n.as_str());
        if let Some(best) = loop_lang::diag::closest(given, names) {
            m.push_str(&format!("; did you mean `{best}`?"));
        }
        m
    };
    Err(Diagnostic::new(message))
}

/// Gives each `ui_button` the `v1alpha1.cmd`s that name it; a button placed on
/// a resource that does not exist is an error.
fn with_commands(
    mut buttons: Vec<loop_lang::model::Button>,
    commands: Vec<(Vec<String>, loop_lang::model::ButtonCommand)>,
    resources: &[Resource],
) -> Result<Vec<loop_lang::model::Button>, Diagnostic> {
    for button in &mut buttons {
        if let Some(resource) = &button.resource {
            if !resources.iter().any(|r| &r.name == resource) {
                let mut diag = Diagnostic::new(format!(
                    "v1alpha1.ui_button {:?} is placed on resource {resource:?}, which does not exist",
                    button.name
                ))
                .at(button.defined_at.clone(), "");
                if let Some(c) =
                    loop_lang::diag::closest(resource, resources.iter().map(|r| r.name.as_str()))
                {
                    diag = diag.help(format!("did you mean {c:?}?"));
                }
                return Err(diag);
            }
        }
        button.commands = commands
            .iter()
            .filter(|(names, _)| names.contains(&button.name))
            .map(|(_, command)| command.clone())
            .collect();
    }
    Ok(buttons)
}

/// Every `image_deps` entry of a `k8s_custom_deploy` names an image the
/// Loopfiles build.
fn check_image_deps(resource: &Resource, images: &[Image]) -> Result<(), Diagnostic> {
    for dep in &resource.images {
        if !images.iter().any(|i| &i.image_ref == dep) {
            let mut diag = Diagnostic::new(format!(
                "k8s_custom_deploy: image_deps names {dep:?}, which no docker_build or custom_build builds"
            ))
            .at(resource.defined_at.clone(), "");
            diag = match loop_lang::diag::closest(dep, images.iter().map(|i| i.image_ref.as_str()))
            {
                Some(c) => diag.help(format!("did you mean {c:?}?")),
                None => diag.help("declare the image with docker_build or custom_build"),
            };
            return Err(diag);
        }
    }
    Ok(())
}

/// The declared objects (once each); the dev-only marks and YAML lines of
/// those kept go into `release`.
fn to_objects(
    decls: Vec<crate::decls::ObjectDecl>,
    release: &mut loop_lang::model::Release,
) -> Result<Vec<(ObjectRef, bool)>, Diagnostic> {
    let mut objects: Vec<(ObjectRef, bool)> = Vec::new();
    for decl in decls {
        let text = |path: &[&str]| {
            decl.body
                .path(path)
                .and_then(Data::as_str)
                .map(str::to_owned)
        };
        let object = ObjectRef {
            api_version: text(&["apiVersion"]).unwrap_or_default(),
            kind: text(&["kind"]).unwrap_or_default(),
            name: text(&["metadata", "name"]).unwrap_or_default(),
            namespace: text(&["metadata", "namespace"]),
            defined_at: decl.defined_at,
            body: decl.body,
        };
        let same = |o: &ObjectRef| {
            o.kind == object.kind && o.name == object.name && o.namespace == object.namespace
        };
        if let Some((previous, allowed)) = objects.iter().find(|(o, _)| same(o)) {
            if !(decl.allow_duplicates || *allowed) {
                return Err(Diagnostic::new(format!(
                    "Kubernetes object {}/{} is declared twice",
                    object.kind, object.name
                ))
                .at(object.defined_at.clone(), "declared again here")
                .at(previous.defined_at.clone(), "first declared here")
                .help("remove one of them, or pass allow_duplicates=True to k8s_yaml"));
            }
            continue;
        }
        // Marked by the declaration that counts (the first one).
        if decl.dev_only {
            release.dev_only_objects.push(object.key());
        }
        if let Some(source) = decl.source {
            release.object_sources.insert(object.key(), source);
        }
        objects.push((object, decl.allow_duplicates));
    }
    Ok(objects)
}

struct Grouped {
    resources: Vec<Resource>,
    unattached: Vec<ObjectRef>,
}

fn is_workload(o: &ObjectRef) -> bool {
    workload::is_workload(&o.body)
}

fn pod_spec(o: &ObjectRef) -> Option<&Data> {
    workload::pod_spec(&o.body)
}

fn pod_labels(o: &ObjectRef) -> Option<&Data> {
    workload::pod_labels(&o.body)
}

fn selects(selector: &Data, labels: Option<&Data>) -> bool {
    let selector = selector.as_map();
    !selector.is_empty()
        && labels.is_some_and(|labels| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn k8s_resource_named(name: &str, defined_at: Location) -> Resource {
    Resource::new(name, ResourceKind::K8s, defined_at)
}

/// Names workloads by object name, adding `:kind` then `:namespace` where names clash.
fn workload_names(workloads: &[&ObjectRef]) -> Vec<String> {
    let count = |f: &dyn Fn(&ObjectRef) -> String, key: &str| {
        workloads.iter().filter(|o| f(o) == key).count()
    };
    let short = |o: &ObjectRef| o.name.clone();
    let with_kind = |o: &ObjectRef| format!("{}:{}", o.name, o.kind.to_lowercase());
    let full = |o: &ObjectRef| {
        format!(
            "{}:{}",
            with_kind(o),
            o.namespace.as_deref().unwrap_or("default")
        )
    };
    workloads
        .iter()
        .map(|o| {
            if count(&short, &short(o)) == 1 {
                short(o)
            } else if count(&with_kind, &with_kind(o)) == 1 {
                with_kind(o)
            } else {
                full(o)
            }
        })
        .collect()
}

/// Resource names given by `workload_to_resource_function`, by `(kind, name, namespace)`.
type GivenNames = BTreeMap<(String, String, Option<String>), String>;

fn group_objects(objects: &[(ObjectRef, bool)], given: &GivenNames) -> Grouped {
    let workloads: Vec<&ObjectRef> = objects
        .iter()
        .map(|(o, _)| o)
        .filter(|o| is_workload(o))
        .collect();
    let names: Vec<String> = workload_names(&workloads)
        .into_iter()
        .zip(&workloads)
        .map(|(name, o)| {
            let key = (o.kind.clone(), o.name.clone(), o.namespace.clone());
            given.get(&key).cloned().unwrap_or(name)
        })
        .collect();
    let mut resources: Vec<Resource> = workloads
        .iter()
        .zip(&names)
        .map(|(o, name)| {
            let mut r = k8s_resource_named(name, o.defined_at.clone());
            r.objects.push((*o).clone());
            r
        })
        .collect();
    let mut unattached = Vec::new();
    for (object, _) in objects.iter().filter(|(o, _)| !is_workload(o)) {
        let same_ns = |w: &ObjectRef| w.namespace == object.namespace;
        let owner = workloads.iter().position(|w| {
            same_ns(w)
                && if object.kind == "Service" {
                    object
                        .body
                        .path(&["spec", "selector"])
                        .is_some_and(|s| selects(s, pod_labels(w)))
                } else {
                    // As in Tilt, an object whose label selector matches the pods
                    // (a PodDisruptionBudget) joins the workload; a ConfigMap,
                    // Secret, PVC or ServiceAccount a pod uses does not: it is
                    // `uncategorized` unless `k8s_resource(objects=...)` moves it.
                    object
                        .body
                        .path(&["spec", "selector", "matchLabels"])
                        .is_some_and(|labels| selects(labels, pod_labels(w)))
                }
        });
        match owner {
            Some(i) => resources[i].objects.push(object.clone()),
            None => unattached.push(object.clone()),
        }
    }
    Grouped {
        resources,
        unattached,
    }
}

/// Whether a `k8s_resource(objects=[...])` selector (`name`, `name:kind` or
/// `name:kind:namespace`, kind case-insensitive) names this object.
fn selector_matches(selector: &str, o: &ObjectRef) -> bool {
    let mut parts = selector.split(':');
    let name = parts.next().unwrap_or_default();
    let kind = parts.next();
    let namespace = parts.next();
    name == o.name
        && kind.is_none_or(|k| k.eq_ignore_ascii_case(&o.kind))
        && namespace.is_none_or(|n| {
            Some(n) == o.namespace.as_deref() || (n == "default" && o.namespace.is_none())
        })
}

fn apply_k8s_resource(
    decl: &K8sResourceDecl,
    resources: &mut Vec<Resource>,
    uncategorized: &mut Vec<ObjectRef>,
    locals: &[Resource],
) -> Result<(), Diagnostic> {
    // Claim the named objects first, from wherever grouping put them.
    let mut claimed = Vec::new();
    for selector in &decl.objects {
        let mut found = false;
        if let Some(i) = uncategorized
            .iter()
            .position(|o| selector_matches(selector, o))
        {
            claimed.push(uncategorized.remove(i));
            found = true;
        }
        for r in resources.iter_mut() {
            if let Some(i) = r
                .objects
                .iter()
                .skip(1)
                .position(|o| selector_matches(selector, o))
            {
                claimed.push(r.objects.remove(i + 1));
                found = true;
            }
        }
        if !found {
            let all: Vec<String> = uncategorized
                .iter()
                .chain(resources.iter().flat_map(|r| r.objects.iter().skip(1)))
                .map(|o| format!("{}:{}", o.name, o.kind.to_lowercase()))
                .collect();
            let mut diag = Diagnostic::new(format!(
                "k8s_resource: no non-workload object matches {selector:?}"
            ))
            .at(decl.defined_at.clone(), "");
            diag = match loop_lang::diag::closest(selector, all.iter().map(String::as_str)) {
                Some(c) => diag.help(format!("did you mean {c:?}?")),
                None if all.is_empty() => diag.help(
                    "no ConfigMap, Service or other non-workload object was declared with k8s_yaml",
                ),
                None => diag.help(format!(
                    "selectors look like \"name\" or \"name:kind\"; declared: {}",
                    all.join(", ")
                )),
            };
            return Err(diag);
        }
    }
    let index = if decl.workload.is_empty() {
        let mut r = k8s_resource_named(
            decl.new_name.as_deref().unwrap_or_default(),
            decl.defined_at.clone(),
        );
        r.objects.clear();
        resources.push(r);
        resources.len() - 1
    } else {
        match resources.iter().position(|r| r.name == decl.workload) {
            Some(i) => i,
            None => {
                let mut diag = Diagnostic::new(format!(
                    "k8s_resource: no Kubernetes workload named {:?}",
                    decl.workload
                ))
                .at(decl.defined_at.clone(), "");
                if locals.iter().any(|l| l.name == decl.workload) {
                    diag = diag.help(format!(
                        "{:?} is a local_resource; k8s_resource configures workloads from k8s_yaml",
                        decl.workload
                    ));
                } else if let Some(c) = loop_lang::diag::closest(
                    &decl.workload,
                    resources.iter().map(|r| r.name.as_str()),
                ) {
                    diag = diag.help(format!("did you mean {c:?}?"));
                } else if resources.is_empty() {
                    diag = diag.help("declare the workload with k8s_yaml first");
                } else {
                    let names: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
                    diag = diag.help(format!("workloads are: {}", names.join(", ")));
                }
                return Err(diag);
            }
        }
    };
    let r = &mut resources[index];
    r.objects.extend(claimed);
    if let Some(name) = &decl.new_name {
        r.name = name.clone();
    }
    r.port_forwards.extend(decl.port_forwards.iter().cloned());
    r.extra_pod_selectors
        .extend(decl.extra_pod_selectors.iter().cloned());
    r.resource_deps.extend(decl.resource_deps.iter().cloned());
    r.data_deps.extend(decl.data_deps.iter().cloned());
    r.links.extend(decl.links.iter().cloned());
    r.labels.extend(decl.labels.iter().cloned());
    if let Some(mode) = decl.trigger_mode {
        r.trigger_mode = mode;
    }
    if let Some(auto_init) = decl.auto_init {
        r.auto_init = auto_init;
    }
    Ok(())
}

fn images_used(resource: &Resource, images: &[Image]) -> Vec<String> {
    let mut container_images = Vec::new();
    let mut env_values = Vec::new();
    for object in &resource.objects {
        let Some(spec) = pod_spec(object) else {
            continue;
        };
        for list in ["containers", "initContainers"] {
            for container in spec.get(list).map(Data::as_list).unwrap_or_default() {
                if let Some(image) = container.get("image").and_then(Data::as_str) {
                    container_images.push(image.to_owned());
                }
                for var in container.get("env").map(Data::as_list).unwrap_or_default() {
                    if let Some(value) = var.get("value").and_then(Data::as_str) {
                        env_values.push(value.to_owned());
                    }
                }
            }
        }
    }
    let used = |built: &str, values: &[String]| values.iter().any(|v| image_matches(built, v));
    images
        .iter()
        .filter(|image| {
            used(&image.image_ref, &container_images)
                || (image.match_in_env_vars && used(&image.image_ref, &env_values))
        })
        .map(|image| image.image_ref.clone())
        .collect()
}

/// Keeps, of each image's `FROM` references, the images the project builds
/// (by their declared refs; an image is never its own base).
fn link_base_images(images: &mut [Image]) {
    let declared: Vec<String> = images.iter().map(|i| i.image_ref.clone()).collect();
    for image in images.iter_mut() {
        let from = std::mem::take(&mut image.base_images);
        for reference in from {
            let base = declared
                .iter()
                .find(|d| **d != image.image_ref && image_matches(d, &reference));
            if let Some(base) = base {
                if !image.base_images.contains(base) {
                    image.base_images.push(base.clone());
                }
            }
        }
    }
}

/// An image built `FROM` itself through other images of the project can never
/// build (each waits for the other), so the first such circle is an error.
fn check_base_cycles(images: &[Image]) -> Result<(), Diagnostic> {
    /// The circle through `image`, if any; `done` holds the images known to
    /// lead to none.
    fn visit<'a>(
        image: &'a Image,
        images: &'a [Image],
        path: &mut Vec<&'a Image>,
        done: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a Image>> {
        if let Some(at) = path.iter().position(|i| i.image_ref == image.image_ref) {
            return Some(path[at..].to_vec());
        }
        if done.contains(&image.image_ref.as_str()) {
            return None;
        }
        path.push(image);
        for base in &image.base_images {
            if let Some(base) = images.iter().find(|i| &i.image_ref == base) {
                if let Some(circle) = visit(base, images, path, done) {
                    return Some(circle);
                }
            }
        }
        path.pop();
        done.push(&image.image_ref);
        None
    }
    let mut done = Vec::new();
    for image in images {
        let Some(circle) = visit(image, images, &mut Vec::new(), &mut done) else {
            continue;
        };
        let names: Vec<&str> = circle.iter().map(|i| i.image_ref.as_str()).collect();
        let mut diag = Diagnostic::new(format!(
            "images are built FROM each other in a circle: {} -> {}",
            names.join(" -> "),
            names[0]
        ));
        for image in &circle {
            diag = diag.at(
                image.defined_at.clone(),
                format!("`{}` declared here", image.image_ref),
            );
        }
        return Err(
            diag.help("one of these Dockerfiles must start FROM an image that is not built here")
        );
    }
    Ok(())
}

/// The images a resource uses with, before each, the images it is built
/// `FROM` (transitively): the order they build in, as Tilt lists them.
fn with_base_images(used: Vec<String>, images: &[Image]) -> Vec<String> {
    fn add(reference: &str, images: &[Image], out: &mut Vec<String>, depth: usize) {
        if out.iter().any(|r| r == reference) || depth > images.len() {
            return;
        }
        if let Some(image) = images.iter().find(|i| i.image_ref == reference) {
            for base in &image.base_images {
                add(base, images, out, depth + 1);
            }
        }
        if !out.iter().any(|r| r == reference) {
            out.push(reference.to_owned());
        }
    }
    let mut out = Vec::new();
    for reference in &used {
        add(reference, images, &mut out, 0);
    }
    out
}

fn check_unique_names(resources: &[Resource]) -> Result<(), Diagnostic> {
    let mut seen: BTreeMap<&str, &Resource> = BTreeMap::new();
    for r in resources {
        if let Some(first) = seen.insert(&r.name, r) {
            return Err(Diagnostic::new(format!("resource name {:?} is used twice", r.name))
                .at(r.defined_at.clone(), "declared again here")
                .at(first.defined_at.clone(), "first declared here")
                .help("resource names must be unique across all composed Loopfiles; rename one (k8s_resource(new_name=...) renames a workload)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use loop_lang::workload::image_name;

    #[test]
    fn image_names_drop_tags_and_digests_but_not_ports() {
        assert_eq!(image_name("app"), "app");
        assert_eq!(image_name("app:1.2"), "app");
        assert_eq!(image_name("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(
            image_name("localhost:5000/app:dev@sha256:abc"),
            "localhost:5000/app"
        );
    }

    #[test]
    fn selectors_match_name_kind_namespace() {
        let o = ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "cfg".into(),
            namespace: None,
            defined_at: Location::default(),
            body: Data::Null,
        };
        assert!(selector_matches("cfg", &o));
        assert!(selector_matches("cfg:configmap", &o));
        assert!(selector_matches("cfg:ConfigMap:default", &o));
        assert!(!selector_matches("cfg:secret", &o));
        assert!(!selector_matches("other", &o));
    }
}
