//! The control plane against a running `loop run` with real processes: the CLI
//! verbs, the session file, and the API's security rules, over real HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{lines, processes_with, project, run_loop, wait_until, Background};

const LOOPFILE: &str = r#"
config.define_string('greeting')
cfg = config.parse()
local_resource('gen', cmd='echo gen >> gen.runs; echo %s' % cfg.get('greeting', 'hello'), deps=['src'])
local_resource('web', serve_cmd='echo to stdout; echo to stderr >&2; exec sleep 3401', links=['http://localhost:3401'], resource_deps=['gen'])
local_resource('deploy', cmd='echo deployed >> deploy.runs', trigger_mode=TRIGGER_MODE_MANUAL, auto_init=False)
"#;

fn session(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(".loop/session.json")).expect("session.json");
    serde_json::from_str(&text).unwrap()
}

/// A request to the session of `dir` with its token (`body` sent as JSON when
/// not empty); returns the status code and the body.
fn api(dir: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let s = session(dir);
    let port = s["port"].as_u64().unwrap() as u16;
    let token = s["token"].as_str().unwrap();
    http(
        port,
        &format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    )
}

/// One raw HTTP/1.1 request; returns the status code and the body.
fn http(port: u16, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A server-sent event: its kind and id.
type SseEvent = (String, u64);

fn start(dir: &Path) -> Background {
    let run = Background::start(dir, &["run", "--port", "0"]);
    run.wait_for_output("2 resources up", 60);
    let out = run.output();
    assert!(out.contains("loop │ dashboard: http://127.0.0.1:"), "{out}");
    assert!(
        out.contains("; links: web http://localhost:3401; watching"),
        "the up line lists the links\n{out}"
    );
    run
}

#[test]
fn verbs_trigger_disable_enable_wait_logs_and_args_against_a_running_session() {
    let dir = project(&[("Loopfile", LOOPFILE), ("src/a.txt", "1")]);
    let loop_run = start(dir.path());
    let d = dir.path();

    let status = run_loop(d, &["status"]);
    assert_eq!(status.code, 0, "{}", status.transcript());
    let header = status.stdout.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "KIND", "PHASE", "REASON", "LAST", "RUN", "RESTARTS", "LINKS"]
    );
    assert!(
        status
            .stdout
            .contains("deploy  local  idle       not started: waits to be triggered"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("http://localhost:3401"),
        "{}",
        status.stdout
    );

    let json = run_loop(d, &["status", "--json"]);
    let value: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("status --json is JSON");
    let url = value["dashboard_url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!("?token={}", session(d)["token"].as_str().unwrap())),
        "{url}"
    );
    let names: Vec<&str> = value["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gen", "web", "deploy"]);
    assert_eq!(value["resources"][1]["phase"], "ready");
    assert_eq!(
        value["resources"][1]["resource_deps"],
        serde_json::json!(["gen"])
    );
    assert_eq!(value["resources"][0]["last_run"]["reason"], "first start");

    let trigger = run_loop(d, &["trigger", "deploy"]);
    assert_eq!(trigger.code, 0, "{}", trigger.transcript());
    wait_until(
        10,
        "deploy to run",
        || lines(&d.join("deploy.runs")) == 1,
        || loop_run.output(),
    );

    let unknown = run_loop(d, &["trigger", "deplyo"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown
            .stderr
            .contains("no resource named `deplyo`; did you mean `deploy`?"),
        "{}",
        unknown.stderr
    );

    let disable = run_loop(d, &["disable", "web"]);
    assert_eq!(disable.code, 0, "{}", disable.transcript());
    wait_until(
        10,
        "web's process to stop",
        || processes_with("sleep 3401").is_empty(),
        || loop_run.output(),
    );
    let enable = run_loop(d, &["enable", "web"]);
    assert_eq!(enable.code, 0, "{}", enable.transcript());
    wait_until(
        10,
        "web's process to start again",
        || processes_with("sleep 3401").len() == 1,
        || loop_run.output(),
    );

    // An agent edits a file, then waits for everything it caused.
    std::fs::write(d.join("src/a.txt"), "2").unwrap();
    let wait = run_loop(
        d,
        &["wait", "--for", "settled", "--timeout", "30s", "--json"],
    );
    assert_eq!(wait.code, 0, "{}", wait.transcript());
    let result: serde_json::Value = serde_json::from_str(&wait.stdout).unwrap();
    assert_eq!(result["ran"], serde_json::json!(["gen"]), "{}", wait.stdout);
    assert_eq!(lines(&d.join("gen.runs")), 2);

    let ready = run_loop(d, &["wait", "web", "--timeout", "30s"]);
    assert_eq!(ready.code, 0, "{}", ready.transcript());

    let logs = run_loop(d, &["logs", "deploy"]);
    assert!(
        logs.stdout.contains("deploy │ [loop] triggered"),
        "{}",
        logs.stdout
    );
    assert!(
        !logs.stdout.contains("gen │"),
        "only the named resource\n{}",
        logs.stdout
    );
    // The API keeps stdout, stderr and loop's own lines apart.
    let s = session(d);
    let (port, token) = (
        s["port"].as_u64().unwrap() as u16,
        s["token"].as_str().unwrap(),
    );
    let (_, body) = http(
        port,
        &format!("GET /api/logs?resource=web HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
    );
    let lines: Vec<Value> = serde_json::from_str(body.trim()).unwrap_or_default();
    let stream_of = |needle: &str| {
        lines
            .iter()
            .find(|l| l["text"].as_str().is_some_and(|t| t.starts_with(needle)))
            .map(|l| l["stream"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(stream_of("to stdout").as_deref(), Some("stdout"), "{body}");
    assert_eq!(stream_of("to stderr").as_deref(), Some("stderr"), "{body}");
    assert_eq!(
        stream_of("[loop] starting").as_deref(),
        Some("loop"),
        "{body}"
    );
    let stamped = run_loop(d, &["logs", "gen", "--timestamps"]);
    assert!(
        stamped
            .stdout
            .lines()
            .all(|l| l.starts_with("20") && l.contains("Z gen │")),
        "{}",
        stamped.stdout
    );

    let args = run_loop(d, &["args", "--", "--greeting=bonjour"]);
    assert_eq!(args.code, 0, "{}", args.transcript());
    loop_run.wait_for_output("gen │ bonjour", 30);
    let (code, _) = loop_run.interrupt();
    assert_eq!(code, 0);
    assert!(
        !d.join(".loop/session.json").exists(),
        "the session file is removed on exit"
    );
}

#[test]
fn verbs_without_a_session_say_so_and_exit_one() {
    let dir = project(&[("Loopfile", LOOPFILE)]);
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["logs"],
        vec!["trigger", "gen"],
        vec!["enable", "gen"],
        vec!["disable", "gen"],
        vec!["wait"],
        vec!["args", "--", "x"],
    ] {
        let run = run_loop(dir.path(), &args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.transcript());
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(
            run.stderr.contains("no running loop session in")
                && run.stderr.contains("start one with `loop run`"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(
            run.stderr.trim().lines().count(),
            1,
            "{args:?}: one line\n{}",
            run.stderr
        );
    }
}

#[test]
fn the_api_needs_the_token_a_loopback_host_and_a_same_origin() {
    let dir = project(&[("Loopfile", LOOPFILE), ("src/a.txt", "1")]);
    let loop_run = start(dir.path());
    let file = dir.path().join(".loop/session.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "session.json holds the token");
    let s = session(dir.path());
    let port = s["port"].as_u64().unwrap() as u16;
    let token = s["token"].as_str().unwrap();
    let host = format!("127.0.0.1:{port}");

    let get = |path: &str, headers: &str| {
        http(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n"),
        )
    };
    assert_eq!(get("/api/snapshot", "").0, 401, "no token");
    assert_eq!(
        get("/api/snapshot", "Authorization: Bearer wrong\r\n").0,
        401,
        "a wrong token"
    );
    let (code, body) = get(
        "/api/snapshot",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"name\":\"gen\""), "{body}");
    assert_eq!(
        get("/api/snapshot", &format!("Cookie: loop_token={token}\r\n")).0,
        200,
        "the cookie"
    );
    let (code, body) = get("/api/openapi.json", &format!("X-Loop-Token: {token}\r\n"));
    assert_eq!(code, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["paths"]["/api/snapshot"]
            .is_object()
    );

    // DNS rebinding: a page on evil.example resolved to 127.0.0.1.
    let rebound = http(port, &format!("GET /api/snapshot HTTP/1.1\r\nHost: evil.example:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"));
    assert_eq!(rebound.0, 403, "{}", rebound.1);

    // CSRF: a foreign page posting to the API (with the cookie the browser holds).
    let post = |origin: &str| {
        http(port, &format!("POST /api/resources/deploy/trigger HTTP/1.1\r\nHost: {host}\r\nCookie: loop_token={token}\r\nOrigin: {origin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
    };
    assert_eq!(post("http://evil.example").0, 403);
    assert_eq!(
        lines(&dir.path().join("deploy.runs")),
        0,
        "the forged request did nothing"
    );
    assert_eq!(post(&format!("http://127.0.0.1:{port}")).0, 200);
    wait_until(
        10,
        "deploy to run",
        || lines(&dir.path().join("deploy.runs")) == 1,
        || loop_run.output(),
    );

    // The dashboard: a token in the URL becomes an HttpOnly cookie; without it, 401.
    assert_eq!(get("/", "").0, 401);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /?token={token} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    assert!(
        response.contains(&format!(
            "set-cookie: loop_token={token}; HttpOnly; SameSite=Strict"
        )),
        "{response}"
    );
    let (code, page) = get("/", &format!("Cookie: loop_token={token}\r\n"));
    assert_eq!(code, 200);
    assert!(page.contains("<script type=\"module\""), "{page}");
    drop(loop_run);
}

#[test]
fn the_event_stream_resumes_without_loss_or_duplicates() {
    let dir = project(&[("Loopfile", LOOPFILE), ("src/a.txt", "1")]);
    let loop_run = start(dir.path());
    let s = session(dir.path());
    let port = s["port"].as_u64().unwrap() as u16;
    let token = s["token"].as_str().unwrap().to_owned();
    // Read events until `stop` says enough; returns (kind, id) pairs.
    let read = |since: Option<u64>, stop: &dyn Fn(&[SseEvent]) -> bool| {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let query = since.map(|s| format!("?since={s}")).unwrap_or_default();
        write!(stream, "GET /api/events{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n").unwrap();
        let mut seen: Vec<SseEvent> = Vec::new();
        let mut text = String::new();
        let mut buf = [0u8; 65536];
        while !stop(&seen) {
            let n = stream
                .read(&mut buf)
                .expect("the stream delivers before the timeout");
            assert!(n > 0, "the stream ended");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen = text
                .split("\n\n")
                .filter_map(|block| {
                    let id = block
                        .lines()
                        .find_map(|l| l.strip_prefix("id: "))?
                        .trim()
                        .parse()
                        .ok()?;
                    let kind = block
                        .lines()
                        .find_map(|l| l.strip_prefix("event: "))?
                        .to_owned();
                    Some((kind, id))
                })
                .collect();
        }
        seen
    };
    let first = read(None, &|seen| !seen.is_empty());
    assert_eq!(first[0].0, "resync", "a new stream starts with a snapshot");
    let at = first[0].1;
    // Changes while nobody listens.
    assert_eq!(run_loop(dir.path(), &["trigger", "deploy"]).code, 0);
    wait_until(
        10,
        "deploy to run",
        || lines(&dir.path().join("deploy.runs")) == 1,
        || loop_run.output(),
    );
    let resumed = read(Some(at), &|seen| {
        seen.iter().any(|(kind, _)| kind == "resource")
    });
    assert!(
        resumed.iter().all(|(kind, _)| kind != "resync"),
        "{resumed:?}"
    );
    let ids: Vec<u64> = resumed.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids[0], at + 1, "no gap after the resume point: {ids:?}");
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "no loss, no duplicate: {ids:?}"
    );
    drop(loop_run);
}

/// A button's inputs (Tilt's `v1alpha1.ui_input_spec`s, and the dicts
/// ext://uibutton writes): the press gives their values, the rest take their
/// defaults, and the commands get each in a variable of its name.
#[test]
fn a_ui_button_gives_its_inputs_to_its_command() {
    let dir = project(&[(
        "Tiltfile",
        r#"
local_resource('web', serve_cmd='exec sleep 3404')
v1alpha1.ui_button(name='deploy', location={'component_type': 'Global', 'component_id': 'nav'}, icon_name='rocket', inputs=[
    v1alpha1.ui_input_spec(name='TARGET', label='Target', text=v1alpha1.ui_text_input_spec(default_value='staging', placeholder='where')),
    v1alpha1.ui_input_spec(name='DRY', bool=v1alpha1.ui_bool_input_spec(default_value=True, true_string='yes', false_string='no')),
    v1alpha1.ui_input_spec(name='SECRET', hidden=v1alpha1.ui_hidden_input_spec(value='s3')),
    {'name': 'SIZE', 'label': 'Size', 'choice': {'choices': ['small', 'large']}},
])
v1alpha1.cmd(name='deploy-cmd', args=['sh', '-c', 'echo "$TARGET $DRY $SECRET $SIZE" >> pressed.txt'], start_on=v1alpha1.start_on_spec(ui_buttons=['deploy']))
"#,
    )]);
    let loop_run = Background::start(dir.path(), &["run", "--port", "0"]);
    loop_run.wait_for_output("1 resource up", 60);
    let press = |body: &str| api(dir.path(), "POST", "/api/buttons/deploy", body);
    let (code, body) = api(dir.path(), "GET", "/api/snapshot", "");
    assert_eq!(code, 200, "{body}");
    let snapshot: Value = serde_json::from_str(&body).unwrap();
    let button = &snapshot["session"]["buttons"][0];
    assert_eq!(button["icon"], "rocket", "{button}");
    assert_eq!(
        button["inputs"][0],
        serde_json::json!({"name": "TARGET", "label": "Target", "type": "text", "default": "staging", "placeholder": "where"})
    );
    assert_eq!(
        button["inputs"][3]["choices"],
        serde_json::json!(["small", "large"])
    );
    let pressed = dir.path().join("pressed.txt");
    // No body: every input takes its default.
    let (code, body) = press("");
    assert_eq!(code, 200, "{body}");
    crate::support::wait_until(
        20,
        "the first press",
        || lines(&pressed) == 1,
        || loop_run.output(),
    );
    let (code, body) = press(r#"{"inputs": {"TARGET": "prod", "DRY": false, "SIZE": "large"}}"#);
    assert_eq!(code, 200, "{body}");
    crate::support::wait_until(
        20,
        "the second press",
        || lines(&pressed) == 2,
        || loop_run.output(),
    );
    assert_eq!(
        std::fs::read_to_string(&pressed).unwrap(),
        "staging yes s3 small\nprod no s3 large\n"
    );
    // Values that do not fit are refused, and nothing runs.
    for (bad, says) in [
        (
            r#"{"inputs": {"SIZE": "huge"}}"#,
            "input `SIZE` is one of small, large",
        ),
        (
            r#"{"inputs": {"DRY": "maybe"}}"#,
            "input `DRY` is true or false",
        ),
        (r#"{"inputs": {"COLOR": "red"}}"#, "has no input `COLOR`"),
    ] {
        let (code, body) = press(bad);
        assert_eq!(code, 422, "{body}");
        assert!(body.contains(says), "{body}");
    }
    let (code, body) = press("not json");
    assert_eq!(code, 400, "{body}");
    assert_eq!(lines(&pressed), 2);
}

/// Tilt's `v1alpha1.ui_button` and the `v1alpha1.cmd` it starts: the button is
/// in the API's views (on its resource, or on the session) and pressing it runs
/// the command, its output in the resource's log.
#[test]
fn a_ui_button_runs_the_cmd_that_starts_on_it() {
    let dir = project(&[(
        "Tiltfile",
        r#"
local_resource('web', serve_cmd='exec sleep 3402')
v1alpha1.ui_button(name='greet', text='Greet', location=v1alpha1.ui_component_location(component_id='web', component_type='Resource'))
v1alpha1.cmd(name='greet-cmd', args=['sh', '-c', 'echo pressed >> pressed.txt; echo hello from the button'], start_on=v1alpha1.start_on_spec(ui_buttons=['greet']))
v1alpha1.ui_button(name='nav', location={'component_type': 'Global', 'component_id': 'nav'})
v1alpha1.ui_button(name='idle', location={'component_type': 'resource', 'component_id': 'web'})
"#,
    )]);
    let loop_run = Background::start(dir.path(), &["run", "--port", "0"]);
    loop_run.wait_for_output("1 resource up", 60);
    let request = |method: &str, path: &str| api(dir.path(), method, path, "");
    let (code, body) = request("GET", "/api/snapshot");
    assert_eq!(code, 200, "{body}");
    let snapshot: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        snapshot["resources"][0]["buttons"],
        serde_json::json!([{"name": "greet", "text": "Greet"}, {"name": "idle", "text": "idle"}])
    );
    assert_eq!(
        snapshot["session"]["buttons"],
        serde_json::json!([{"name": "nav", "text": "nav"}])
    );
    let (code, body) = request("POST", "/api/buttons/greet");
    assert_eq!(code, 200, "{body}");
    loop_run.wait_for_output("hello from the button", 30);
    loop_run.wait_for_output(
        "button greet: sh -c echo pressed >> pressed.txt; echo hello from the button: done",
        30,
    );
    assert_eq!(lines(&dir.path().join("pressed.txt")), 1);
    let (code, body) = request("POST", "/api/buttons/idle");
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("button `idle` starts no command"), "{body}");
    let (code, body) = request("POST", "/api/buttons/greeet");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("did you mean `greet`?"), "{body}");
}
