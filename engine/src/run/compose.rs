//! Docker Compose services (`docker_compose()`), run by the real Docker Compose
//! against the Docker daemon: `docker compose` (the plugin) when it answers,
//! else `docker-compose`.
//!
//! An update runs `up -d --no-deps SERVICE` for the one service. When a
//! `docker_build` of the Loopfiles builds the service's image, the engine
//! builds it first and hands Compose an override file that names the built
//! reference (and `--no-build`), as Tilt rewrites the project; a service that
//! Compose builds itself is brought up with `--build`. Once up, the container's
//! log is followed (`docker logs -f`) and its state watched (`docker
//! inspect`): running, and healthy when it has a health check, is ready; an
//! exit ends the run with its code. `loop down` runs `down` for each project.
//! Live update into the container is in [`super::compose_sync`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loop_lang::data::Data;
use loop_lang::model::{Cmd, ComposeProject, ComposeService};
use tokio::sync::OnceCell;

use crate::process::{self, Output};
use crate::report::LineSink;

/// How often a container's state is read.
const POLL: Duration = Duration::from_millis(500);
/// How long the log stream runs before the container counts as ready, so
/// that what it printed on start reaches the log first (`loop ci` ends at ready).
const LOG_CATCH_UP: Duration = Duration::from_secs(1);
/// Grace for what a finished Compose command left running.
const GRACE: Duration = Duration::from_secs(2);

/// The Compose command found on this machine (or why there is none), found once.
static TOOL: OnceCell<Result<Vec<String>, String>> = OnceCell::const_new();

/// The error when no Compose is installed.
pub const NO_TOOL: &str = "docker_compose needs Docker Compose, and neither `docker compose` (the Compose plugin of the docker CLI) nor `docker-compose` was found: install one (Debian: `apt-get install docker-compose`; or the docker-compose-plugin package from Docker), then run again";

/// `docker compose` when the plugin answers, else `docker-compose`.
pub async fn tool() -> Result<Vec<String>, String> {
    TOOL.get_or_init(|| async {
        for argv in [&["docker", "compose"][..], &["docker-compose"][..]] {
            let answered = tokio::process::Command::new(argv[0])
                .args(&argv[1..])
                .arg("version")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success());
            if answered {
                return Ok(argv.iter().map(|s| s.to_string()).collect());
            }
        }
        Err(NO_TOOL.to_owned())
    })
    .await
    .clone()
}

/// Where `loop` keeps the files it hands Compose for `project`.
fn state_dir(root: &Path, project: &str) -> PathBuf {
    root.join(".loop").join("compose").join(project)
}

/// The `-p`, `--project-directory`, `-f`, `--env-file` and `--profile`
/// arguments of a project (inline YAML written under `.loop/compose/`), and
/// the `version` its first file declares (an override file must repeat it
/// for Compose v1).
fn project_args(
    project: &ComposeProject,
    root: &Path,
) -> Result<(Vec<String>, Option<String>), String> {
    let dir = state_dir(root, &project.name);
    let mut args = vec![
        "-p".to_owned(),
        project.name.clone(),
        "--project-directory".to_owned(),
        root.join(&project.dir).display().to_string(),
    ];
    let mut version = None;
    for (i, config) in project.configs.iter().enumerate() {
        let (file, text) = if config.path.is_empty() {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let file = dir.join(format!("inline-{i}.yml"));
            std::fs::write(&file, &config.contents)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            (file, config.contents.clone())
        } else {
            let file = root.join(&config.path);
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            (file, text)
        };
        if version.is_none() {
            version = Data::from_yaml(&text)
                .ok()
                .and_then(|d| d.get("version").and_then(Data::as_str).map(str::to_owned));
        }
        args.push("-f".to_owned());
        args.push(file.display().to_string());
    }
    if let Some(env_file) = &project.env_file {
        args.push("--env-file".to_owned());
        args.push(root.join(env_file).display().to_string());
    }
    for profile in &project.profiles {
        args.push("--profile".to_owned());
        args.push(profile.clone());
    }
    Ok((args, version))
}

/// The override file naming the built image of a service.
fn override_yaml(version: Option<&str>, service: &str, image: &str) -> String {
    let quote = |s: &str| Data::String(s.to_owned()).to_json();
    let mut text = String::new();
    if let Some(version) = version {
        text.push_str(&format!("version: {}\n", quote(version)));
    }
    text.push_str(&format!(
        "services:\n  {}:\n    image: {}\n",
        quote(service),
        quote(image)
    ));
    text
}

/// Runs a Compose command to its end, its output in `log`; `Err` says why it
/// failed.
async fn compose(
    project: &ComposeProject,
    args: &[String],
    root: &Path,
    log: &LineSink,
) -> Result<String, String> {
    let mut argv = tool().await?;
    argv.extend(args.iter().cloned());
    let cmd = Cmd::Argv(argv);
    let captured = Arc::new(std::sync::Mutex::new(String::new()));
    let into = captured.clone();
    let out_log = log.clone();
    let output = Output {
        stdout: Arc::new(move |line: &str| {
            let mut text = into.lock().unwrap_or_else(|e| e.into_inner());
            text.push_str(line);
            text.push('\n');
            out_log(line);
        }),
        stderr: log.clone(),
    };
    let status = process::run_to_end(&cmd, root, &project.env, output, GRACE).await?;
    if !status.success() {
        return Err(process::failed(&cmd, status));
    }
    let text = captured.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(text)
}

/// Brings one service up (built images already built: `built` is the
/// reference to run, when the Loopfiles build its image); `recreate` forces a
/// new container. Returns the container's id.
pub async fn up(
    service: &ComposeService,
    root: &Path,
    built: Option<&str>,
    recreate: bool,
    log: &LineSink,
) -> Result<String, String> {
    let (mut args, version) = project_args(&service.project, root)?;
    if let Some(image) = built {
        let dir = state_dir(root, &service.project.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let file = dir.join(format!("{}.override.yml", service.service));
        std::fs::write(
            &file,
            override_yaml(version.as_deref(), &service.service, image),
        )
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        args.push("-f".to_owned());
        args.push(file.display().to_string());
    }
    let mut up = args.clone();
    up.extend(["up", "-d", "--no-deps"].map(str::to_owned));
    if built.is_some() {
        up.push("--no-build".to_owned());
    } else if service.has_build {
        up.push("--build".to_owned());
    }
    if recreate {
        up.push("--force-recreate".to_owned());
    }
    up.push(service.service.clone());
    log(&format!("[loop] docker compose up {}", service.service));
    compose(&service.project, &up, root, log).await?;
    container_id_with(service, args, root).await
}

/// The id of the service's container.
pub async fn container_id(service: &ComposeService, root: &Path) -> Result<String, String> {
    let (mut args, _) = project_args(&service.project, root)?;
    let file =
        state_dir(root, &service.project.name).join(format!("{}.override.yml", service.service));
    if file.is_file() {
        args.push("-f".to_owned());
        args.push(file.display().to_string());
    }
    container_id_with(service, args, root).await
}

async fn container_id_with(
    service: &ComposeService,
    args: Vec<String>,
    root: &Path,
) -> Result<String, String> {
    let mut ps = args;
    ps.extend(["ps", "-q"].map(str::to_owned));
    ps.push(service.service.clone());
    let quiet: LineSink = Arc::new(|_: &str| {});
    let ids = compose(&service.project, &ps, root, &quiet).await?;
    ids.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("service {} has no container", service.service))
}

/// `down` for a project: its containers and networks go.
pub async fn down(project: &ComposeProject, root: &Path, log: &LineSink) -> Result<(), String> {
    let (mut args, _) = project_args(project, root)?;
    args.push("down".to_owned());
    compose(project, &args, root, log).await.map(|_| ())
}

/// A container's state as `docker inspect` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, restarting, or running and not healthy yet (the health status).
    Starting(String),
    /// Running, and healthy if it has a health check.
    Ready,
    Exited(i64),
    /// It cannot be inspected any more (removed behind `loop`'s back): why.
    Gone(String),
}

/// Parses `STATUS HEALTH EXITCODE` as [`inspect`] prints them.
fn parse_state(text: &str) -> Option<State> {
    let mut words = text.split_whitespace();
    let (status, health, code) = (words.next()?, words.next()?, words.next()?);
    Some(match (status, health) {
        ("exited" | "dead", _) => State::Exited(code.parse().unwrap_or(-1)),
        ("running", "none" | "healthy") => State::Ready,
        ("running", health) => State::Starting(health.to_owned()),
        (status, _) => State::Starting(status.to_owned()),
    })
}

/// The state of container `id`.
async fn inspect(id: &str) -> Result<State, String> {
    let out = tokio::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}",
            id,
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run docker inspect: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_state(&text).ok_or_else(|| {
        format!(
            "docker inspect {id}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// Follows container `id`: its log (from `since`, unix seconds) into `log`,
/// `ready()` once when it is running (and healthy), and returns how it ended.
pub async fn follow(
    id: &str,
    since: u64,
    root: &Path,
    log: LineSink,
    status: LineSink,
    ready: impl FnOnce(),
) -> State {
    let root = root.to_owned();
    let owned_id = id.to_owned();
    let streaming = tokio::spawn(async move {
        // `docker logs -f` ends when the container stops: a restart (restart
        // policy, restart_container()) is followed again from where it ended.
        let mut since = since.to_string();
        loop {
            let logs = Cmd::Argv(
                ["docker", "logs", "-f", "--since", &since, &owned_id]
                    .map(str::to_owned)
                    .to_vec(),
            );
            let output = Output::merged(log.clone());
            let _ = process::run_to_end(&logs, &root, &Default::default(), output, GRACE).await;
            since = now_since();
            tokio::time::sleep(POLL).await;
            if !matches!(
                inspect(&owned_id).await,
                Ok(State::Ready | State::Starting(_))
            ) {
                return;
            }
        }
    });
    // The log stream ends with the task that follows it.
    let _stop_logs = AbortOnDrop(streaming.abort_handle());
    let started = std::time::Instant::now();
    let mut ready = Some(ready);
    let mut last = String::new();
    loop {
        match inspect(id).await {
            Ok(State::Exited(code)) => {
                // The last lines reach the log before the exit is reported.
                let _ = tokio::time::timeout(Duration::from_secs(2), streaming).await;
                return State::Exited(code);
            }
            Ok(State::Ready) if started.elapsed() >= LOG_CATCH_UP => {
                if let Some(ready) = ready.take() {
                    ready();
                }
            }
            Ok(State::Ready) => {}
            Ok(State::Starting(what)) => {
                if what != last {
                    status(&format!("container {what}"));
                    last = what;
                }
            }
            Ok(State::Gone(why)) | Err(why) => return State::Gone(why),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Now, as `docker logs --since` takes it (unix seconds and nanoseconds).
fn now_since() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loop_lang::model::ComposeConfig;

    #[test]
    fn container_states() {
        assert_eq!(parse_state("running none 0"), Some(State::Ready));
        assert_eq!(parse_state("running healthy 0"), Some(State::Ready));
        assert_eq!(
            parse_state("running starting 0"),
            Some(State::Starting("starting".into()))
        );
        assert_eq!(parse_state("exited none 3"), Some(State::Exited(3)));
        assert_eq!(
            parse_state("restarting none 1"),
            Some(State::Starting("restarting".into()))
        );
        assert_eq!(parse_state(""), None);
    }

    #[test]
    fn project_arguments_and_override() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dc.yml"), "version: '2.4'\nservices: {}\n").unwrap();
        let project = ComposeProject {
            name: "shop".into(),
            configs: vec![
                ComposeConfig {
                    path: "dc.yml".into(),
                    contents: String::new(),
                },
                ComposeConfig {
                    path: String::new(),
                    contents: "services: {}\n".into(),
                },
            ],
            dir: ".".into(),
            env_file: Some(".env".into()),
            profiles: vec!["debug".into()],
            wait: false,
            env: Default::default(),
        };
        let (args, version) = project_args(&project, dir.path()).unwrap();
        assert_eq!(version.as_deref(), Some("2.4"));
        assert_eq!(&args[..2], ["-p", "shop"]);
        let inline = dir.path().join(".loop/compose/shop/inline-1.yml");
        assert!(args.contains(&inline.display().to_string()));
        assert!(inline.is_file());
        assert!(args.ends_with(&["--profile".to_owned(), "debug".to_owned()]));
        assert_eq!(
            override_yaml(Some("2.4"), "web", "app:loop-1"),
            "version: \"2.4\"\nservices:\n  \"web\":\n    image: \"app:loop-1\"\n"
        );
    }
}
