//! Puts a built image ref into the Kubernetes objects that use the image.
//!
//! An image is used by a container (or init container) whose `image` has the same
//! *name* as the declared ref (a registry port counts: `localhost:5000/app:dev`
//! has the name `localhost:5000/app`) and, when the declared ref has a tag, that
//! tag (see [`image_matches`]); a digest is ignored. With
//! `match_in_env_vars`, env var values of those containers that name the image are
//! replaced too (Tilt's `match_in_env_vars`).

use loop_lang::data::Data;
use loop_lang::workload::image_matches;

/// Replaces, in the pod spec of the Kubernetes object `body`, every container and
/// init container image that `image_ref` matches with `built_ref`,
/// and, when `match_in_env_vars`, every env var value naming it. Returns how many
/// values were replaced (0 for an object without a pod spec). See
/// [`set_entrypoint`] for the containers' command.
///
/// The pod spec is `spec` for a Pod, `spec.jobTemplate.spec.template.spec` for a
/// CronJob and `spec.template.spec` for every other kind.
pub fn inject(body: &mut Data, image_ref: &str, built_ref: &str, match_in_env_vars: bool) -> usize {
    let Some(spec) = pod_spec(body) else {
        return 0;
    };
    let mut replaced = 0;
    for list in ["containers", "initContainers"] {
        let Some(Data::List(containers)) = get_mut(spec, list) else {
            continue;
        };
        for container in containers {
            if let Some(image) = get_mut(container, "image") {
                replaced += replace_if_named(image, image_ref, built_ref);
            }
            if !match_in_env_vars {
                continue;
            }
            let Some(Data::List(vars)) = get_mut(container, "env") else {
                continue;
            };
            for var in vars {
                if let Some(value) = get_mut(var, "value") {
                    replaced += replace_if_named(value, image_ref, built_ref);
                }
            }
        }
    }
    replaced
}

/// Sets `command` to `entrypoint` (Tilt's `entrypoint`) and removes `args` in every
/// container of `body`'s pod spec whose image is named `image_ref`. Call it
/// before [`inject`]. Returns how many containers changed.
pub fn set_entrypoint(body: &mut Data, image_ref: &str, entrypoint: &[String]) -> usize {
    let Some(spec) = pod_spec(body) else {
        return 0;
    };
    let mut changed = 0;
    for list in ["containers", "initContainers"] {
        let Some(Data::List(containers)) = get_mut(spec, list) else {
            continue;
        };
        for container in containers {
            let named = matches!(get_mut(container, "image"), Some(Data::String(s)) if image_matches(image_ref, s));
            let Data::Map(entries) = container else {
                continue;
            };
            if !named {
                continue;
            }
            entries.retain(|(k, _)| k != "command" && k != "args");
            entries.push((
                "command".to_owned(),
                Data::List(entrypoint.iter().map(|a| Data::String(a.clone())).collect()),
            ));
            changed += 1;
        }
    }
    changed
}

fn pod_spec(body: &mut Data) -> Option<&mut Data> {
    let kind = body.get("kind").and_then(Data::as_str).unwrap_or_default();
    let template = loop_lang::workload::pod_template_path(kind);
    path_mut(body, template).and_then(|t| get_mut(t, "spec"))
}

/// Replaces `value` with `built_ref` when it is a string naming image `image_ref`.
fn replace_if_named(value: &mut Data, image_ref: &str, built_ref: &str) -> usize {
    match value {
        Data::String(s) if image_matches(image_ref, s) => {
            *s = built_ref.to_owned();
            1
        }
        _ => 0,
    }
}

fn get_mut<'a>(data: &'a mut Data, key: &str) -> Option<&'a mut Data> {
    match data {
        Data::Map(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

fn path_mut<'a>(data: &'a mut Data, keys: &[&str]) -> Option<&'a mut Data> {
    keys.iter().try_fold(data, |d, k| get_mut(d, k))
}
