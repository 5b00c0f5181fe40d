//! `docker_compose()` and `dc_resource()` evaluated from real files.

use loop_lang::model::{Resource, ResourceKind, TriggerMode};

use super::{join, parent};
use crate::{evaluate, EvalOptions};

/// Evaluates `files` (the first is the Loopfile) in a fresh project; the
/// manifest's resources, or the error's message.
fn eval(files: &[(&str, &str)]) -> Result<Vec<Resource>, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    for (path, text) in files {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let loopfile = dir.path().join(files[0].0);
    evaluate(&[loopfile], &EvalOptions::default())
        .map(|e| e.manifest.resources)
        .map_err(|f| f.diagnostic.message.clone())
}

fn named<'a>(resources: &'a [Resource], name: &str) -> &'a Resource {
    resources
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no resource {name} in {resources:?}"))
}

const COMPOSE: &str = "\
services:
  web:
    image: shop/web:1.0
    ports: ['8080:80']
  db:
    image: postgres
  debug:
    image: tools
    profiles: [debug]
  worker:
    build: ./worker
    depends_on: [db, debug]
";

#[test]
fn each_service_is_a_resource_configured_by_dc_resource() {
    let resources = eval(&[
        (
            "app/Loopfile",
            "docker_compose('docker-compose.yml')\n\
             docker_build('shop/web', '.')\n\
             dc_resource('web', resource_deps=['database'], labels='front', links=['http://x/'], trigger_mode=TRIGGER_MODE_MANUAL)\n\
             dc_resource('db', new_name='database', auto_init=False)\n",
        ),
        ("app/docker-compose.yml", COMPOSE),
        ("app/Dockerfile", "FROM scratch\n"),
    ])
    .unwrap();
    let names: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["web", "database", "worker"],
        "debug needs its profile"
    );
    let web = named(&resources, "web");
    assert_eq!(web.kind, ResourceKind::DockerCompose);
    assert_eq!(web.images, ["shop/web"], "tags are ignored when matching");
    assert_eq!(web.resource_deps, ["database"], "the name after new_name");
    assert_eq!(web.labels, ["front"]);
    assert_eq!(web.trigger_mode, TriggerMode::Manual);
    let urls: Vec<&str> = web.links.iter().map(|l| l.url.as_str()).collect();
    assert_eq!(urls, ["http://localhost:8080/", "http://x/"]);
    let compose = web.compose.as_ref().unwrap();
    assert_eq!(compose.project.name, "app");
    assert_eq!(compose.project.dir, "app");
    assert_eq!(compose.project.configs[0].path, "app/docker-compose.yml");
    assert!(!named(&resources, "database").auto_init);
    let worker = named(&resources, "worker");
    assert!(worker.images.is_empty());
    assert_eq!(worker.deps, ["app/worker"], "Compose builds it from there");
    // depends_on orders start-up; `debug` is left out by its profile.
    assert_eq!(worker.resource_deps, ["database"]);
}

#[test]
fn blobs_lists_profiles_and_project_names() {
    let resources = eval(&[
        (
            "Loopfile",
            "docker_compose([read_file('a.yml'), 'b.yml'], project_name='shop', profiles=['debug'])\n",
        ),
        ("a.yml", COMPOSE),
        ("b.yml", "name: ignored\nservices:\n  extra:\n    image: x\n"),
    ])
    .unwrap();
    let names: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["web", "db", "debug", "worker", "extra"]);
    let project = &resources[0].compose.as_ref().unwrap().project;
    assert_eq!(project.name, "shop");
    assert!(project.configs[0].path.is_empty() && !project.configs[0].contents.is_empty());
    assert_eq!(project.configs[1].path, "b.yml");
    assert_eq!(project.profiles, ["debug"]);
}

#[test]
fn compose_sees_the_variables_os_putenv_set() {
    let resources = eval(&[
        (
            "Loopfile",
            "os.putenv('TAG', 'dev')\ndocker_compose('dc.yml')\nos.putenv('LATER', '1')\n",
        ),
        ("dc.yml", COMPOSE),
    ])
    .unwrap();
    let env = &resources[0].compose.as_ref().unwrap().project.env;
    assert_eq!(env.get("TAG").map(String::as_str), Some("dev"));
    assert_eq!(
        env.get("LATER").map(String::as_str),
        Some("1"),
        "as Tilt's own environment"
    );
}

#[test]
fn bad_arguments_are_errors_that_say_what_to_do() {
    let err = |loopfile: &str| eval(&[("Loopfile", loopfile), ("dc.yml", COMPOSE)]).unwrap_err();
    assert!(
        err("docker_compose('missing.yml')\n").contains("cannot read the Compose file missing.yml")
    );
    assert!(err("docker_compose([])\n").contains("configPaths is empty"));
    assert!(err("docker_compose(3)\n").contains("must be a file name, a blob of YAML or a list"));
    assert!(err("dc_resource('web')\n").contains("call docker_compose() before dc_resource()"));
    let unknown = err("docker_compose('dc.yml')\ndc_resource('wev')\n");
    assert!(
        unknown.contains("no Docker Compose service `wev`"),
        "{unknown}"
    );
    assert!(unknown.contains("web, db, worker"), "{unknown}");
    let project = err("docker_compose('dc.yml')\ndc_resource('web', project_name='other')\n");
    assert!(
        project.contains("no Docker Compose project `other`"),
        "{project}"
    );
    let mode = err("docker_compose('dc.yml')\ndc_resource('web', trigger_mode='sometimes')\n");
    assert!(mode.contains("TRIGGER_MODE_AUTO"), "{mode}");
    let clash = err("docker_compose('dc.yml')\nlocal_resource('web', cmd='true')\n");
    assert!(clash.contains("web"), "{clash}");
    assert!(err("docker_compose('dc.yml', env_file='nope.env')\n")
        .contains("env_file nope.env does not exist"));
}

#[test]
fn paths_join_as_users_see_them() {
    assert_eq!(parent("app/docker-compose.yml"), "app");
    assert_eq!(parent("docker-compose.yml"), ".");
    assert_eq!(join(".", "./db"), "db");
    assert_eq!(join("app", "."), "app");
    assert_eq!(join("app", "./db"), "app/db");
}
