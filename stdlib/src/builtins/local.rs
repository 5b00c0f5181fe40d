//! `local_resource` and its readiness probes and links.

use anyhow::{anyhow, bail};
use loop_lang::model::{Probe, ProbeAction, Resource, ResourceKind};
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::none::NoneType;
use starlark::values::{Heap, Value};

use super::args::{check_name, command, links, trigger_mode};
use super::live_update::live_update_steps;
use super::{field, kind_of, tagged};
use crate::decls::{call_site, declarations};
use crate::values::{self, env_map, string_list, Arg, NONE};

fn probe(arg: Arg, v: Option<Value>) -> anyhow::Result<Option<Probe>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if kind_of(v).as_deref() != Some("probe") {
        bail!("{arg} must be a probe(...), got {}", values::describe(v));
    }
    let num = |name: &str| field(v, name).map_or(Ok(0.0), |x| values::number(arg, x));
    let count = |name: &str| field(v, name).map_or(Ok(1), |x| values::int::<u32>(arg, x));
    let action = field(v, "action").ok_or_else(|| anyhow!("{arg}: probe without an action"))?;
    let action = match kind_of(action).as_deref() {
        Some("http_get_action") => ProbeAction::Http {
            scheme: field(action, "scheme")
                .and_then(|s| s.unpack_str())
                .unwrap_or("http")
                .to_owned(),
            host: field(action, "host")
                .and_then(|s| s.unpack_str())
                .unwrap_or("localhost")
                .to_owned(),
            port: field(action, "port").map_or(Ok(0), |p| values::int(arg, p))?,
            path: field(action, "path")
                .and_then(|s| s.unpack_str())
                .unwrap_or("/")
                .to_owned(),
        },
        Some("tcp_socket_action") => ProbeAction::Tcp {
            host: field(action, "host")
                .and_then(|s| s.unpack_str())
                .unwrap_or("localhost")
                .to_owned(),
            port: field(action, "port").map_or(Ok(0), |p| values::int(arg, p))?,
        },
        Some("exec_action") => ProbeAction::Exec {
            command: string_list(arg, field(action, "command"))?,
        },
        _ => bail!("{arg}: unknown probe action"),
    };
    Ok(Some(Probe {
        initial_delay_secs: num("initial_delay_secs")?,
        period_secs: num("period_secs")?,
        timeout_secs: num("timeout_secs")?,
        success_threshold: count("success_threshold")?,
        failure_threshold: count("failure_threshold")?,
        action,
    }))
}

fn port(function: &str, port: i32) -> anyhow::Result<i32> {
    if !(1..=65535).contains(&port) {
        bail!("{function}: port must be between 1 and 65535, got {port}");
    }
    Ok(port)
}

fn alloc_opt<'v>(heap: Heap<'v>, v: Option<&str>) -> Value<'v> {
    v.map_or(Value::new_none(), |s| heap.alloc(s))
}

#[starlark_module]
pub fn local_builtins(builder: &mut GlobalsBuilder) {
    /// Declares a resource that runs commands on this machine: `cmd` once per
    /// update, `serve_cmd` as a long-running process restarted after each update.
    ///
    /// Tilt: the same arguments and meaning. `cmd_bat`/`serve_cmd_bat` (Windows)
    /// and `tags` are accepted and ignored; `data_deps`, `live_update` and
    /// `outputs` are `loop`'s own.
    ///
    /// # Arguments
    /// * `name`: the resource's name, unique in the composition.
    /// * `cmd`: run once per update, to completion: a shell string (`sh -c`) or an argv list.
    /// * `deps`: files and folders whose changes re-run the resource (relative to this file).
    /// * `trigger_mode`: `TRIGGER_MODE_AUTO` (default) or `TRIGGER_MODE_MANUAL` (only when triggered).
    /// * `resource_deps`: resources that must be ready before this one first starts.
    /// * `ignore`: gitignore-style patterns under `deps` whose changes are ignored.
    /// * `auto_init`: False: not started with the session, only when triggered.
    /// * `serve_cmd`: a long-running process, started after `cmd` succeeds and restarted after each update.
    /// * `cmd_bat`: Windows only; ignored.
    /// * `serve_cmd_bat`: Windows only; ignored.
    /// * `allow_parallel`: True: may run at the same time as other resources' updates.
    /// * `links`: URLs (or `link(url, name)`) shown with the resource.
    /// * `tags`: accepted and ignored.
    /// * `env`: environment variables for `cmd` (a dict of strings).
    /// * `serve_env`: environment variables for `serve_cmd`.
    /// * `readiness_probe`: `probe(...)`: when `serve_cmd` counts as ready (default: once started).
    /// * `dir`: the folder `cmd` runs in (default: this file's folder).
    /// * `serve_dir`: the folder `serve_cmd` runs in (default: this file's folder).
    /// * `labels`: groups shown with the resource in the session API and the dashboard.
    /// * `data_deps`: resources whose outputs this one reads: it re-runs after each of their updates, never before them.
    /// * `live_update`: `sync()`/`run()` steps applied to the running `serve_cmd` instead of restarting it.
    /// * `outputs`: files `cmd` writes (paths, folders, globs): when they hash the same after a run, the data-downstreams it caused are skipped, and an unchanged step is skipped at start.
    fn local_resource<'v>(
        name: &str,
        cmd: Option<Value<'v>>,
        deps: Option<Value<'v>>,
        trigger_mode: Option<Value<'v>>,
        resource_deps: Option<Value<'v>>,
        ignore: Option<Value<'v>>,
        #[starlark(default = true)] auto_init: bool,
        serve_cmd: Option<Value<'v>>,
        cmd_bat: Option<Value<'v>>,
        serve_cmd_bat: Option<Value<'v>>,
        #[starlark(default = false)] allow_parallel: bool,
        links: Option<Value<'v>>,
        tags: Option<Value<'v>>,
        env: Option<Value<'v>>,
        serve_env: Option<Value<'v>>,
        readiness_probe: Option<Value<'v>>,
        dir: Option<Value<'v>>,
        serve_dir: Option<Value<'v>>,
        labels: Option<Value<'v>>,
        #[starlark(require = named)] data_deps: Option<Value<'v>>,
        #[starlark(require = named)] live_update: Option<Value<'v>>,
        #[starlark(require = named)] outputs: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let _ = (cmd_bat, serve_cmd_bat, tags);
        const F: &str = "local_resource";
        let a = |name| Arg { function: F, name };
        check_name(F, name)?;
        let env_ = EvalEnv::of(eval)?;
        let at = call_site(eval);
        let decls = declarations(env_);
        let folder = |v, n| values::folder(env_, a(n), v).map(|d| env_.display(&d));
        let cmd = self::command(a("cmd"), cmd)?;
        let serve_cmd = self::command(a("serve_cmd"), serve_cmd)?;
        let resource = Resource {
            name: name.to_owned(),
            kind: ResourceKind::Local,
            labels: string_list(a("labels"), labels)?,
            resource_deps: string_list(a("resource_deps"), resource_deps)?,
            data_deps: string_list(a("data_deps"), data_deps)?,
            deps: values::path_list(env_, a("deps"), deps)?,
            ignore: string_list(a("ignore"), ignore)?,
            defined_at: at,
            cmd,
            serve_cmd,
            images: Vec::new(),
            objects: Vec::new(),
            dir: env_.display(&env_.dir),
            cmd_dir: folder(dir, "dir")?,
            serve_dir: folder(serve_dir, "serve_dir")?,
            env: env_map(a("env"), env)?,
            serve_env: env_map(a("serve_env"), serve_env)?,
            readiness_probe: probe(a("readiness_probe"), readiness_probe)?,
            auto_init,
            trigger_mode: self::trigger_mode(a("trigger_mode"), trigger_mode)?
                .unwrap_or(decls.borrow().default_trigger_mode),
            allow_parallel,
            links: self::links(a("links"), links)?,
            port_forwards: Vec::new(),
            extra_pod_selectors: Vec::new(),
            live_update: live_update_steps(a("live_update"), live_update)?,
            outputs: values::path_list(env_, a("outputs"), outputs)?,
            custom_deploy: None,
            compose: None,
        };
        decls.borrow_mut().local_resources.push(resource);
        Ok(NONE)
    }

    /// A readiness probe for `local_resource(readiness_probe=...)`.
    fn probe<'v>(
        #[starlark(default = 0)] initial_delay_secs: i32,
        #[starlark(default = 1)] timeout_secs: i32,
        #[starlark(default = 10)] period_secs: i32,
        #[starlark(default = 1)] success_threshold: i32,
        #[starlark(default = 3)] failure_threshold: i32,
        exec: Option<Value<'v>>,
        http_get: Option<Value<'v>>,
        tcp_socket: Option<Value<'v>>,
        heap: Heap<'v>,
    ) -> anyhow::Result<Value<'v>> {
        let actions: Vec<Value> = [exec, http_get, tcp_socket]
            .into_iter()
            .flatten()
            .filter(|v| !v.is_none())
            .collect();
        if actions.len() != 1 {
            bail!("probe: give exactly one of exec=exec_action(...), http_get=http_get_action(...), tcp_socket=tcp_socket_action(...)");
        }
        if period_secs <= 0
            || timeout_secs <= 0
            || success_threshold <= 0
            || failure_threshold <= 0
            || initial_delay_secs < 0
        {
            bail!("probe: periods, timeouts and thresholds must be positive");
        }
        Ok(tagged(
            heap,
            "probe",
            vec![
                ("initial_delay_secs", heap.alloc(initial_delay_secs)),
                ("timeout_secs", heap.alloc(timeout_secs)),
                ("period_secs", heap.alloc(period_secs)),
                ("success_threshold", heap.alloc(success_threshold)),
                ("failure_threshold", heap.alloc(failure_threshold)),
                ("action", actions[0]),
            ],
        ))
    }

    /// An HTTP GET readiness check: ready on a 2xx/3xx answer.
    fn http_get_action<'v>(
        port: i32,
        #[starlark(default = "localhost")] host: &str,
        #[starlark(default = "http")] scheme: &str,
        #[starlark(default = "/")] path: &str,
        heap: Heap<'v>,
    ) -> anyhow::Result<Value<'v>> {
        self::port("http_get_action", port)?;
        if scheme != "http" && scheme != "https" {
            bail!("http_get_action: scheme must be \"http\" or \"https\", got {scheme:?}");
        }
        let path = if path.is_empty() { "/" } else { path };
        Ok(tagged(
            heap,
            "http_get_action",
            vec![
                ("port", heap.alloc(port)),
                ("host", heap.alloc(host)),
                ("scheme", heap.alloc(scheme)),
                ("path", heap.alloc(path)),
            ],
        ))
    }

    /// A TCP readiness check: ready when the port accepts a connection.
    fn tcp_socket_action<'v>(
        port: i32,
        #[starlark(default = "localhost")] host: &str,
        heap: Heap<'v>,
    ) -> anyhow::Result<Value<'v>> {
        self::port("tcp_socket_action", port)?;
        Ok(tagged(
            heap,
            "tcp_socket_action",
            vec![("port", heap.alloc(port)), ("host", heap.alloc(host))],
        ))
    }

    /// A command readiness check: ready when it exits 0.
    fn exec_action<'v>(command: Value<'v>, heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        let argv = string_list(
            Arg {
                function: "exec_action",
                name: "command",
            },
            Some(command),
        )?;
        if argv.is_empty() {
            bail!("exec_action: the command is empty");
        }
        Ok(tagged(heap, "exec_action", vec![("command", command)]))
    }

    /// A named link shown with a resource.
    fn link<'v>(url: &str, name: Option<Value<'v>>, heap: Heap<'v>) -> anyhow::Result<Value<'v>> {
        let name = values::opt_string(
            Arg {
                function: "link",
                name: "name",
            },
            name,
        )?;
        Ok(tagged(
            heap,
            "link",
            vec![
                ("url", heap.alloc(url)),
                ("name", alloc_opt(heap, name.as_deref())),
            ],
        ))
    }
}
