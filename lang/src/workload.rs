//! Workloads: the Kubernetes objects that run pods, and where in each the pods
//! are described. One definition for assembly (a workload is a resource of its
//! own), image injection, the runtime (rollout, logs, live update) and the
//! policy rules of `loop render`.

use std::collections::BTreeMap;

use crate::data::Data;

/// Kinds whose objects run pods.
pub const WORKLOAD_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
    "Pod",
];

/// Whether an object (its whole body) runs pods: a kind of [`WORKLOAD_KINDS`],
/// or any object with a pod template (`spec.template.spec.containers`).
pub fn is_workload(body: &Data) -> bool {
    body.get("kind")
        .and_then(Data::as_str)
        .is_some_and(|k| WORKLOAD_KINDS.contains(&k))
        || body
            .path(&["spec", "template", "spec", "containers"])
            .is_some()
}

/// Where the pod template (its `metadata` and `spec`) of an object of `kind` is:
/// the object itself for a Pod, `spec.jobTemplate.spec.template` for a CronJob,
/// `spec.template` for every other kind.
pub fn pod_template_path(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[],
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        _ => &["spec", "template"],
    }
}

fn kind(body: &Data) -> &str {
    body.get("kind").and_then(Data::as_str).unwrap_or_default()
}

fn template(body: &Data) -> Option<&Data> {
    body.path(pod_template_path(kind(body)))
}

/// The pod spec of a workload object.
pub fn pod_spec(body: &Data) -> Option<&Data> {
    template(body)?.get("spec")
}

/// The labels of the pods a workload creates.
pub fn pod_labels(body: &Data) -> Option<&Data> {
    template(body)?.path(&["metadata", "labels"])
}

/// Whether a workload's pods come and go on a schedule (a CronJob): there is no
/// rollout to wait for, only pods to follow when they run.
pub fn runs_on_schedule(kind: &str) -> bool {
    kind == "CronJob"
}

/// An image reference without its tag or digest (a registry port stays:
/// `localhost:5000/app:dev` is named `localhost:5000/app`).
pub fn image_name(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match (image.rfind(':'), image.rfind('/')) {
        (Some(colon), slash) if slash.is_none_or(|s| colon > s) => &image[..colon],
        _ => image,
    }
}

/// The tag of an image reference, if it has one (`app:1.2` -> `1.2`; not a
/// registry port, not a digest).
pub fn image_tag(image: &str) -> Option<&str> {
    let image = image.split('@').next().unwrap_or(image);
    image.strip_prefix(image_name(image))?.strip_prefix(':')
}

/// Whether a container's `image` is the image built as `built`. As in Tilt, a
/// reference without a tag matches the name with any tag or digest, and one with
/// a tag matches only that tag (an image without a tag is `:latest`).
pub fn image_matches(built: &str, image: &str) -> bool {
    if image_name(built) != image_name(image) {
        return false;
    }
    match image_tag(built) {
        None => true,
        Some(tag) => image_tag(image).unwrap_or("latest") == tag,
    }
}

/// The images a Dockerfile's stages start `FROM` (no `scratch`, no earlier
/// stage), each with the byte range of the reference in `text`, in order. A
/// `--platform=...` flag is skipped; a line continued with `\` is not followed.
/// Variables in a reference are expanded as Docker does ([`crate::interpolate`]),
/// from `build_args`, else the default of an `ARG` declared before the first
/// `FROM`.
pub fn from_images(
    text: &str,
    build_args: &BTreeMap<String, String>,
) -> Vec<(String, std::ops::Range<usize>)> {
    let mut stages: Vec<String> = Vec::new();
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut seen_from = false;
    let mut found = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        let Some((keyword, rest)) = trimmed.split_once([' ', '\t']) else {
            continue;
        };
        if keyword.eq_ignore_ascii_case("ARG") && !seen_from {
            // A global ARG: usable in FROM lines, overridden by a build arg.
            for declared in rest.split_whitespace() {
                let (name, default) = match declared.split_once('=') {
                    Some((name, default)) => (name, Some(default.trim_matches(['"', '\'']))),
                    None => (declared, None),
                };
                // Declared without a default and not given: unset.
                if let Some(value) = build_args.get(name).map(String::as_str).or(default) {
                    args.insert(name.to_owned(), value.to_owned());
                }
            }
            continue;
        }
        if !keyword.eq_ignore_ascii_case("FROM") {
            continue;
        }
        seen_from = true;
        let mut at = start + (line.len() - trimmed.len()) + 4;
        let mut words = Vec::new();
        for word in text[at..offset].split_whitespace() {
            let begin = at + text[at..offset].find(word).unwrap_or(0);
            at = begin + word.len();
            words.push((word, begin));
        }
        let mut words = words.into_iter().skip_while(|(w, _)| w.starts_with("--"));
        let Some((word, begin)) = words.next() else {
            continue;
        };
        let image = crate::interpolate::expand(word, &|name| args.get(name).cloned());
        // An earlier stage's name is no image (stage names are case-insensitive).
        let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
        if !image.is_empty() && image != "scratch" && !is_stage {
            found.push((image, begin..begin + word.len()));
        }
        if let (Some((as_word, _)), Some((stage, _))) = (words.next(), words.next()) {
            if as_word.eq_ignore_ascii_case("AS") {
                stages.push(stage.to_owned());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_images_are_the_stage_bases_that_are_images() {
        let text = "ARG X=1\nFROM --platform=linux/amd64 base:1 AS build\nRUN make\nfrom build\nFROM scratch\n  FROM\tother/app@sha256:ab AS final\n";
        let found = from_images(text, &BTreeMap::new());
        let refs: Vec<&str> = found.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(refs, ["base:1", "other/app@sha256:ab"]);
        for (image, range) in &found {
            assert_eq!(&text[range.clone()], image);
        }
    }

    #[test]
    fn from_references_expand_global_args_and_build_args() {
        let text = "ARG BASE=base TAG\nARG REG=\"r.io\"\nFROM ${BASE}:${TAG:-dev} AS b\nARG LATE=x\nFROM $REG/app${TAG:+-tagged}\nFROM ${LATE:-late}\n";
        let refs = |args: &[(&str, &str)]| -> Vec<String> {
            let args = args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            from_images(text, &args)
                .into_iter()
                .map(|(r, _)| r)
                .collect()
        };
        // An ARG declared after the first FROM is not in scope of FROM lines.
        assert_eq!(refs(&[]), ["base:dev", "r.io/app", "late"]);
        assert_eq!(
            refs(&[("TAG", "1"), ("BASE", "other"), ("LATE", "y")]),
            ["other:1", "r.io/app-tagged", "late"]
        );
        // The range is the reference as written, for rewriting it.
        let (_, range) = &from_images(text, &BTreeMap::new())[0];
        assert_eq!(&text[range.clone()], "${BASE}:${TAG:-dev}");
    }

    #[test]
    fn a_tag_in_the_built_reference_must_match() {
        assert!(image_matches("app", "app:1.2"));
        assert!(image_matches("app", "app@sha256:abc"));
        assert!(image_matches("app:dev", "app:dev"));
        assert!(!image_matches("app:dev", "app:prod"));
        assert!(!image_matches("app:dev", "app"));
        assert!(image_matches("app:latest", "app"));
        assert!(image_matches("localhost:5000/app", "localhost:5000/app:x"));
        assert!(!image_matches("localhost:5000/app", "localhost:5001/app"));
        assert_eq!(image_tag("localhost:5000/app"), None);
        assert_eq!(image_tag("localhost:5000/app:v1@sha256:abc"), Some("v1"));
    }

    #[test]
    fn pod_specs_and_labels_of_each_shape() {
        let cron = Data::from_yaml("kind: CronJob\nspec: {jobTemplate: {spec: {template: {metadata: {labels: {app: c}}, spec: {containers: [{name: c}]}}}}}\n").unwrap();
        let pod = Data::from_yaml(
            "kind: Pod\nmetadata: {labels: {app: p}}\nspec: {containers: [{name: p}]}\n",
        )
        .unwrap();
        let deploy = Data::from_yaml("kind: Deployment\nspec: {template: {metadata: {labels: {app: d}}, spec: {containers: [{name: d}]}}}\n").unwrap();
        for (body, app) in [(&cron, "c"), (&pod, "p"), (&deploy, "d")] {
            assert!(is_workload(body));
            assert_eq!(
                pod_labels(body).unwrap().get("app").unwrap().as_str(),
                Some(app)
            );
            assert!(pod_spec(body).unwrap().get("containers").is_some());
        }
        let service = Data::from_yaml("kind: Service\nspec: {selector: {app: d}}\n").unwrap();
        assert!(!is_workload(&service));
        assert!(runs_on_schedule("CronJob") && !runs_on_schedule("Job"));
    }

    #[test]
    fn image_names() {
        assert_eq!(image_name("localhost:5000/app:dev"), "localhost:5000/app");
        assert_eq!(image_name("app@sha256:abc"), "app");
        assert_eq!(image_name("app"), "app");
        assert_eq!(image_name("r.io/a/b:1"), "r.io/a/b");
    }
}
