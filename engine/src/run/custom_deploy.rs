//! The commands of `k8s_custom_deploy` resources: `apply_cmd`, whose standard
//! output lists the objects it deployed (YAML documents or JSON, a `List`'s
//! items taken one by one), and `delete_cmd`, which `loop down` runs.
//!
//! As in Tilt, `apply_cmd` gets the images it depends on in its environment:
//! `TILT_IMAGE_i` is the reference built for `image_deps[i]`, `TILT_IMAGE_MAP_i`
//! the name of that image.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loop_lang::data::Data;
use loop_lang::model::{CustomDeploy, ObjectRef};

use crate::failure::{Failure, FailureKind};
use crate::process::{self, Output};
use crate::report::LineSink;

/// Grace given to what a finished command left running in its process group.
const GRACE: Duration = Duration::from_secs(2);

/// The environment of `apply_cmd`: its own `apply_env`, then the images, as
/// `(image name, built reference)` in `image_deps` order.
pub fn apply_env(deploy: &CustomDeploy, built: &[(String, String)]) -> BTreeMap<String, String> {
    let mut env = deploy.apply_env.clone();
    for (i, (name, built_ref)) in built.iter().enumerate() {
        env.insert(format!("TILT_IMAGE_MAP_{i}"), name.clone());
        env.insert(format!("TILT_IMAGE_{i}"), built_ref.clone());
    }
    env
}

/// The objects in `apply_cmd`'s output: YAML documents (JSON is YAML too);
/// a `List` (what `kubectl get -o json` prints for several) counts as its items.
pub fn parse_objects(output: &str) -> Result<Vec<ObjectRef>, String> {
    let docs = Data::from_yaml_stream(output)
        .map_err(|e| format!("apply_cmd printed something that is not YAML or JSON: {e}"))?;
    let mut objects = Vec::new();
    let mut todo: Vec<Data> = docs.into_iter().rev().collect();
    while let Some(doc) = todo.pop() {
        if doc == Data::Null {
            continue;
        }
        let text = |path: &[&str]| doc.path(path).and_then(Data::as_str).map(str::to_owned);
        if text(&["kind"]).is_some_and(|k| k == "List" || k.ends_with("List"))
            && doc.get("items").is_some()
        {
            let items: Vec<Data> = doc
                .get("items")
                .map(Data::as_list)
                .unwrap_or_default()
                .to_vec();
            todo.extend(items.into_iter().rev());
            continue;
        }
        let (Some(kind), Some(name)) = (text(&["kind"]), text(&["metadata", "name"])) else {
            return Err(format!(
                "apply_cmd printed a document that is not a Kubernetes object (it needs kind and metadata.name): {}",
                doc.to_json_pretty().lines().take(5).collect::<Vec<_>>().join(" ")
            ));
        };
        objects.push(ObjectRef {
            api_version: text(&["apiVersion"]).unwrap_or_default(),
            kind,
            name,
            namespace: text(&["metadata", "namespace"]),
            defined_at: Default::default(),
            body: doc,
        });
    }
    Ok(objects)
}

/// The version of an object as `apply_cmd` printed it (its uid and generation,
/// when it printed the server's answer), for following its rollout.
pub fn printed_version(object: &ObjectRef) -> crate::k8s::rollout::Applied {
    crate::k8s::rollout::Applied {
        uid: object
            .body
            .path(&["metadata", "uid"])
            .and_then(Data::as_str)
            .map(str::to_owned),
        generation: match object.body.path(&["metadata", "generation"]) {
            Some(Data::Int(g)) => Some(*g),
            _ => None,
        },
    }
}

/// Runs `apply_cmd` in `dir` (absolute) and returns the objects it printed; its
/// standard error goes to `log` line by line.
pub async fn apply(
    deploy: &CustomDeploy,
    dir: &Path,
    env: BTreeMap<String, String>,
    log: LineSink,
) -> Result<Vec<ObjectRef>, Failure> {
    let stdout: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = stdout.clone();
    let output = Output {
        stdout: Arc::new(move |line: &str| {
            kept.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line.to_owned())
        }),
        stderr: log.clone(),
    };
    let shown = deploy.apply_cmd.display();
    log(&format!("[loop] running apply_cmd: {shown}"));
    let status = process::run_to_end(&deploy.apply_cmd, dir, &env, output, GRACE).await?;
    let text = stdout.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
    if !status.success() {
        return Err(Failure::new(
            FailureKind::CommandFailed,
            format!(
                "apply_cmd `{shown}` failed: {}",
                process::describe_exit(status)
            ),
        ));
    }
    let objects =
        parse_objects(&text).map_err(|why| Failure::new(FailureKind::CommandFailed, why))?;
    if objects.is_empty() {
        return Err(Failure::new(FailureKind::CommandFailed, format!(
            "apply_cmd `{shown}` printed no Kubernetes objects: it must print what it deployed as YAML or JSON (e.g. `kubectl apply -f app.yaml -o yaml`)"
        )));
    }
    Ok(objects)
}

/// Runs `delete_cmd` in `dir` (absolute), its output going to `log`.
pub async fn delete(deploy: &CustomDeploy, dir: &Path, log: LineSink) -> Result<(), String> {
    let shown = deploy.delete_cmd.display();
    let status = process::run_to_end(
        &deploy.delete_cmd,
        dir,
        &deploy.delete_env,
        Output::merged(log),
        GRACE,
    )
    .await?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "delete_cmd `{shown}` failed: {}",
            process::describe_exit(status)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_come_from_yaml_json_and_lists() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: dev\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n";
        let objects = parse_objects(yaml).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].namespace.as_deref(), Some("dev"));
        let json = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "b"}}]}"#;
        let names: Vec<String> = parse_objects(json)
            .unwrap()
            .into_iter()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect();
        assert_eq!(names, ["ConfigMap/a", "Deployment/b"]);
        assert!(parse_objects("just text").is_err());
        assert!(parse_objects("- a\n- b\n").is_err());
    }

    #[test]
    fn images_are_passed_as_tilt_passes_them() {
        let deploy = CustomDeploy {
            apply_cmd: loop_lang::model::Cmd::Shell("true".into()),
            apply_dir: ".".into(),
            apply_env: BTreeMap::from([("OWN".to_owned(), "1".to_owned())]),
            delete_cmd: loop_lang::model::Cmd::Shell("true".into()),
            delete_dir: ".".into(),
            delete_env: BTreeMap::new(),
            image_deps: vec!["app".into()],
        };
        let env = apply_env(&deploy, &[("app".into(), "app:loop-123".into())]);
        assert_eq!(env["TILT_IMAGE_MAP_0"], "app");
        assert_eq!(env["TILT_IMAGE_0"], "app:loop-123");
        assert_eq!(env["OWN"], "1");
    }
}
