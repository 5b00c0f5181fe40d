//! `loop run` and `loop ci` with real processes, real files and real ports.
//! Commands record what ran by appending to files; tests wait on those files.

use std::path::Path;

use crate::support::{
    free_port, lines, processes_with, project, run_loop, wait_bounded, wait_until, Background,
    STOP_BOUND,
};

fn append(file: &str) -> String {
    format!("echo run >> {file}")
}

fn count(dir: &Path, file: &str) -> usize {
    lines(&dir.join(file))
}

#[test]
fn ci_starts_in_resource_deps_order_and_exits_zero() {
    let dir = project(&[(
        "Loopfile",
        r#"
local_resource("c", cmd="echo c >> order.txt", resource_deps=["b"])
local_resource("b", cmd="echo b >> order.txt", resource_deps=["a"])
local_resource("a", cmd="echo a >> order.txt")
local_resource("later", cmd="echo never >> order.txt", auto_init=False)
"#,
    )]);
    let run = run_loop(dir.path(), &["ci"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("order.txt")).unwrap(),
        "a\nb\nc\n"
    );
    assert!(
        run.stdout.contains("ci: all 3 resources up"),
        "{}",
        run.stdout
    );
    assert!(
        dir.path().join(".loop/logs/a.log").is_file(),
        "per-resource log files are written"
    );
}

#[test]
fn ci_failure_exits_one_with_the_last_log_lines_and_skips_dependents() {
    let dir = project(&[(
        "Loopfile",
        r#"
local_resource("build", cmd="echo compiling; echo 'error: boom' >&2; exit 3")
local_resource("deploy", cmd="echo deployed > deployed.txt", resource_deps=["build"])
"#,
    )]);
    let run = run_loop(dir.path(), &["ci"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("ci failed: build: `echo compiling; echo 'error: boom' >&2; exit 3` failed with exit code 3"), "{}", run.stdout);
    assert!(
        run.stderr.contains("--- last lines of build"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("error: boom"), "{}", run.stderr);
    assert!(
        run.stdout.contains("deploy │ [loop] blocked: build failed"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("summary: 1 run in ")
            && run.stdout.contains("; failing: build (`echo compiling;"),
        "the closing summary\n{}",
        run.stdout
    );
    assert!(
        !dir.path().join("deployed.txt").exists(),
        "a dependent of a failed resource must not run"
    );
}

#[test]
fn ci_reports_a_missing_command_and_a_timeout() {
    let dir = project(&[(
        "Loopfile",
        "local_resource('x', cmd=['no-such-command-loop-test'])\n",
    )]);
    let run = run_loop(dir.path(), &["ci"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("cannot run `no-such-command-loop-test`: command not found"),
        "{}",
        run.stdout
    );

    let port = free_port();
    let loopfile = format!(
        "local_resource('web', serve_cmd='sleep 300', readiness_probe=probe(period_secs=1, failure_threshold=1, tcp_socket=tcp_socket_action({port})))\n"
    );
    let dir = project(&[("Loopfile", &loopfile)]);
    let run = run_loop(dir.path(), &["ci", "--timeout", "3s", "--grace", "200ms"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("ci timed out after 3s waiting for 1 resource: web (starting)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("not ready: connect 127.0.0.1:{port}"))
            || run
                .stdout
                .contains(&format!("not ready: connect localhost:{port}")),
        "{}",
        run.stdout
    );
}

#[test]
fn readiness_probe_gates_dependents() {
    let port = free_port();
    let loopfile = format!(
        r#"
local_resource("server", serve_cmd="sleep 1; exec python3 -m http.server {port} --bind 127.0.0.1",
    readiness_probe=probe(period_secs=1, http_get=http_get_action({port}, host="127.0.0.1")))
local_resource("client", cmd="python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/')\" && echo ok > client.txt",
    resource_deps=["server"])
"#
    );
    let dir = project(&[("Loopfile", &loopfile)]);
    let run = run_loop(dir.path(), &["ci", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("client.txt")).unwrap(),
        "ok\n"
    );
    assert!(
        run.stdout.contains("server │ [loop] ready in"),
        "{}",
        run.stdout
    );
}

#[test]
fn only_the_affected_resource_re_runs() {
    let mut loopfile = String::new();
    let mut files = Vec::new();
    for i in 0..20 {
        loopfile.push_str(&format!(
            "local_resource('svc{i}', cmd='{}', deps=['svc{i}'])\n",
            append(&format!("runs{i}.txt"))
        ));
        files.push((format!("svc{i}/main.txt"), "v1".to_owned()));
    }
    let mut all: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    all.push(("Loopfile", &loopfile));
    let dir = project(&all);
    let loop_run = Background::start(dir.path(), &["run"]);
    loop_run.wait_for_output("20 resources up", 60);
    std::fs::write(dir.path().join("svc7/main.txt"), "v2").unwrap();
    wait_until(
        20,
        "svc7 to re-run",
        || count(dir.path(), "runs7.txt") == 2,
        || loop_run.output(),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    for i in (0..20).filter(|i| *i != 7) {
        assert_eq!(
            count(dir.path(), &format!("runs{i}.txt")),
            1,
            "svc{i} must not re-run\n{}",
            loop_run.output()
        );
    }
    assert_eq!(count(dir.path(), "runs7.txt"), 2);
}

#[test]
fn changes_propagate_along_data_edges_only() {
    let dir = project(&[
        ("gen/schema.txt", "v1"),
        (
            "Loopfile",
            &format!(
                "local_resource('gen', cmd='{}', deps=['gen'])\nlocal_resource('api', cmd='{}', data_deps=['gen'])\nlocal_resource('web', cmd='{}', resource_deps=['gen'])\n",
                append("gen.txt"),
                append("api.txt"),
                append("web.txt")
            ),
        ),
    ]);
    let loop_run = Background::start(dir.path(), &["run"]);
    loop_run.wait_for_output("3 resources up", 60);
    std::fs::write(dir.path().join("gen/schema.txt"), "v2").unwrap();
    wait_until(
        20,
        "api to re-run after gen",
        || count(dir.path(), "api.txt") == 2,
        || loop_run.output(),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(count(dir.path(), "gen.txt"), 2);
    assert_eq!(
        count(dir.path(), "web.txt"),
        1,
        "ordering edges do not propagate changes\n{}",
        loop_run.output()
    );
}

#[test]
fn a_crashing_serve_process_is_restarted_with_growing_backoff() {
    let dir = project(&[(
        "Loopfile",
        "local_resource('flaky', serve_cmd='echo starting; exit 4')\n",
    )]);
    let loop_run = Background::start(dir.path(), &["run"]);
    loop_run.wait_for_output("restarting in 1.0s (restart 3)", 30);
    let out = loop_run.output();
    assert!(
        out.contains("serve process exited (exit code 4); restarting in 0.2s (restart 1)"),
        "{out}"
    );
    assert!(out.contains("restarting in 0.5s (restart 2)"), "{out}");
    let (code, _) = loop_run.interrupt();
    assert_eq!(code, 0);
}

#[test]
fn live_update_syncs_without_restart_and_fall_back_on_forces_a_full_update() {
    let dir = project(&[
        ("src/index.html", "v1"),
        ("src/config.txt", "c1"),
        (
            "Loopfile",
            r#"
local_resource("web", serve_cmd="echo start >> starts.txt; exec sleep 3001",
    deps=["src"],
    live_update=[fall_back_on(["src/config.txt"]), sync("src", "served"), run("echo ran >> ran.txt", trigger=["src/index.html"])])
"#,
        ),
    ]);
    let loop_run = Background::start(dir.path(), &["run", "--grace", "200ms"]);
    loop_run.wait_for_output("1 resource up", 60);
    wait_until(
        20,
        "the serve process to start",
        || count(dir.path(), "starts.txt") == 1,
        || loop_run.output(),
    );
    std::fs::write(dir.path().join("src/index.html"), "v2").unwrap();
    wait_until(
        20,
        "the synced file",
        || std::fs::read_to_string(dir.path().join("served/index.html")).is_ok_and(|s| s == "v2"),
        || loop_run.output(),
    );
    wait_until(
        20,
        "the run step",
        || count(dir.path(), "ran.txt") == 1,
        || loop_run.output(),
    );
    assert_eq!(
        count(dir.path(), "starts.txt"),
        1,
        "a sync must not restart\n{}",
        loop_run.output()
    );
    std::fs::remove_file(dir.path().join("src/index.html")).unwrap();
    wait_until(
        20,
        "the deletion to sync",
        || !dir.path().join("served/index.html").exists(),
        || loop_run.output(),
    );
    std::fs::write(dir.path().join("src/config.txt"), "c2").unwrap();
    wait_until(
        20,
        "a full update",
        || count(dir.path(), "starts.txt") == 2,
        || loop_run.output(),
    );
    assert!(
        loop_run.output().contains("full update: "),
        "{}",
        loop_run.output()
    );
    let (code, _) = loop_run.interrupt();
    assert_eq!(code, 0);
    assert!(processes_with("sleep 3001").is_empty());
}

#[test]
fn a_loopfile_edit_restarts_only_the_changed_resource_and_a_broken_edit_keeps_the_graph() {
    let loopfile = |a: &str| {
        format!(
            "local_resource('a', serve_cmd='echo start >> a.txt; exec sleep 3002', env={{'V': '{a}'}})\nlocal_resource('b', serve_cmd='echo start >> b.txt; exec sleep 3002')\n"
        )
    };
    let dir = project(&[("Loopfile", &loopfile("1"))]);
    let loop_run = Background::start(dir.path(), &["run", "--grace", "200ms"]);
    loop_run.wait_for_output("2 resources up", 60);
    wait_until(
        20,
        "both serve processes to start",
        || count(dir.path(), "a.txt") == 1 && count(dir.path(), "b.txt") == 1,
        || loop_run.output(),
    );
    std::fs::write(dir.path().join("Loopfile"), loopfile("2")).unwrap();
    wait_until(
        20,
        "a to restart",
        || count(dir.path(), "a.txt") == 2,
        || loop_run.output(),
    );
    loop_run.wait_for_output("reloaded: 0 added, 1 changed, 0 removed (changed: a)", 20);
    assert_eq!(
        count(dir.path(), "b.txt"),
        1,
        "b did not change\n{}",
        loop_run.output()
    );

    std::fs::write(
        dir.path().join("Loopfile"),
        "local_resource('a', serve_cmd=\n",
    )
    .unwrap();
    loop_run.wait_for_output("the previous graph keeps running", 20);
    assert!(
        loop_run.output().contains("error: "),
        "{}",
        loop_run.output()
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(count(dir.path(), "a.txt"), 2);
    assert_eq!(
        processes_with("sleep 3002").len(),
        2,
        "both processes keep running"
    );

    std::fs::write(
        dir.path().join("Loopfile"),
        loopfile("2").lines().next().unwrap(),
    )
    .unwrap();
    loop_run.wait_for_output("removed: b", 20);
    wait_until(
        10,
        "b to stop",
        || processes_with("sleep 3002").len() == 1,
        || loop_run.output(),
    );
    let (code, _) = loop_run.interrupt();
    assert_eq!(code, 0);
}

#[test]
fn ctrl_c_stops_whole_process_groups_even_when_sigterm_is_ignored() {
    let dir = project(&[(
        "Loopfile",
        "local_resource('stubborn', serve_cmd='trap \"\" TERM; sleep 3003 & sleep 3003 & echo forked; wait')\nlocal_resource('plain', serve_cmd='exec sleep 3003')\n",
    )]);
    let loop_run = Background::start(dir.path(), &["run", "--grace", "300ms"]);
    loop_run.wait_for_output("2 resources up", 60);
    loop_run.wait_for_output("forked", 20);
    // The shell (its command line names the sleeps), its two children, and `plain`.
    wait_until(
        20,
        "all four processes",
        || processes_with("sleep 3003").len() == 4,
        || format!("{:?}", processes_with("sleep 3003")),
    );
    let (code, out) = loop_run.interrupt();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ignored SIGTERM for 0.3s: killed"),
        "the kill is reported\n{out}"
    );
    wait_until(
        5,
        "every process to be gone",
        || processes_with("sleep 3003").is_empty(),
        || format!("{:?}\n{out}", processes_with("sleep 3003")),
    );
}

#[test]
fn a_burst_of_ten_thousand_files_runs_the_resource_once() {
    let dir = project(&[
        (
            "Loopfile",
            &format!(
                "local_resource('bulk', cmd='{}', deps=['data'])\nlocal_resource('other', cmd='{}', deps=['elsewhere'])\n",
                append("bulk.txt"),
                append("other.txt")
            ),
        ),
        ("data/.keep", ""),
        ("elsewhere/.keep", ""),
    ]);
    let loop_run = Background::start(dir.path(), &["run"]);
    loop_run.wait_for_output("2 resources up", 60);
    for i in 0..10_000 {
        std::fs::write(dir.path().join(format!("data/f{i}.txt")), "x").unwrap();
    }
    wait_until(
        30,
        "bulk to re-run",
        || count(dir.path(), "bulk.txt") >= 2,
        || loop_run.output(),
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        count(dir.path(), "bulk.txt"),
        2,
        "one run for the whole burst\n{}",
        loop_run.output()
    );
    assert_eq!(count(dir.path(), "other.txt"), 1, "{}", loop_run.output());
}

#[test]
fn initial_sync_copies_everything_before_the_first_start() {
    let dir = project(&[
        ("src/a.txt", "a"),
        ("src/sub/b.txt", "b"),
        (
            "Loopfile",
            "local_resource('web', serve_cmd='cp out/sub/b.txt seen.txt; exec sleep 3004', live_update=[initial_sync(), sync('src', 'out')],\n    readiness_probe=probe(period_secs=1, exec=exec_action(['test', '-f', 'seen.txt'])))\n",
        ),
    ]);
    let run = run_loop(dir.path(), &["ci", "--grace", "200ms"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/a.txt")).unwrap(),
        "a"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("seen.txt")).unwrap(),
        "b",
        "the serve process saw the synced file"
    );
}

#[test]
fn a_port_already_in_use_fails_ci_with_the_process_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let loopfile = format!(
        "local_resource('web', serve_cmd='exec python3 -m http.server {port} --bind 127.0.0.1', readiness_probe=probe(period_secs=1, http_get=http_get_action({port}, host='127.0.0.1')))\n"
    );
    let dir = project(&[("Loopfile", &loopfile)]);
    let run = run_loop(dir.path(), &["ci", "--timeout", "60s"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("ci failed: web: the serve process exited (exit code 1)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("Address already in use"),
        "{}",
        run.stderr
    );
    drop(taken);
}

#[test]
fn changes_while_busy_run_once_more_after_the_current_run() {
    let dir = project(&[
        ("src/a.txt", "1"),
        ("Loopfile", "local_resource('slow', cmd='echo start >> starts.txt; sleep 1; echo run >> runs.txt', deps=['src'])\n"),
    ]);
    let loop_run = Background::start(dir.path(), &["run"]);
    loop_run.wait_for_output("1 resource up", 60);
    std::fs::write(dir.path().join("src/a.txt"), "2").unwrap();
    wait_until(
        20,
        "the second run to start",
        || count(dir.path(), "starts.txt") == 2,
        || loop_run.output(),
    );
    for i in 0..5 {
        std::fs::write(dir.path().join("src/a.txt"), format!("busy {i}")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(60));
    }
    wait_until(
        20,
        "the queued run",
        || count(dir.path(), "runs.txt") == 3,
        || loop_run.output(),
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        count(dir.path(), "runs.txt"),
        3,
        "five changes during one run give one more run\n{}",
        loop_run.output()
    );
}

#[test]
fn a_second_ctrl_c_kills_at_once() {
    let dir = project(&[(
        "Loopfile",
        "local_resource('stubborn', serve_cmd='trap \"\" TERM INT; exec sleep 3005')\n",
    )]);
    let mut loop_run = Background::start(dir.path(), &["run", "--grace", "60s"]);
    loop_run.wait_for_output("1 resource up", 60);
    let pid = nix::unistd::Pid::from_raw(loop_run.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    loop_run.wait_for_output("stopping 1 process group", 20);
    let started = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = wait_bounded(&mut loop_run.child, STOP_BOUND)
        .unwrap_or_else(|| panic!("loop did not exit\n{}", loop_run.output()));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the second Ctrl-C did not cut the 60 s grace period"
    );
    assert_eq!(status.code(), Some(0));
    wait_until(
        5,
        "the process to be gone",
        || processes_with("sleep 3005").is_empty(),
        || loop_run.output(),
    );
}

/// The scheduler issue's reproduction: `app` (parallel, `data_deps=["gen"]`) must
/// not run while `gen` waits behind the serial `slow`, and must run once after
/// `gen`, seeing its new output.
#[test]
fn a_data_downstream_runs_after_its_queued_upstream_not_before() {
    let dir = project(&[
        (
            "Loopfile",
            r#"
local_resource('slow', cmd='sleep 2', deps=['slow.txt'])
local_resource('gen', cmd='sleep 1; date +%s%N > out', deps=['schema.txt'])
local_resource('app', cmd='cat out >> seen', data_deps=['gen'], allow_parallel=True)
"#,
        ),
        ("slow.txt", "0"),
        ("schema.txt", "0"),
    ]);
    let loop_run = Background::start(dir.path(), &["run"]);
    loop_run.wait_for_output("3 resources up", 60);
    let seen = || std::fs::read_to_string(dir.path().join("seen")).unwrap_or_default();
    assert_eq!(seen().lines().count(), 1, "{}", loop_run.output());
    std::fs::write(dir.path().join("slow.txt"), "1").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(dir.path().join("schema.txt"), "1").unwrap();
    wait_until(
        30,
        "app to run again",
        || seen().lines().count() >= 2,
        || loop_run.output(),
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = std::fs::read_to_string(dir.path().join("out")).unwrap();
    let seen = seen();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "app ran once per batch\n{}",
        loop_run.output()
    );
    assert_eq!(
        lines[1],
        out.trim(),
        "app saw gen's new output\n{}",
        loop_run.output()
    );
    let (_, output) = loop_run.interrupt();
    assert!(
        output.contains("app │ [loop] waiting for gen (queued)"),
        "{output}"
    );
    assert!(
        output.contains("gen │ [loop] running: schema.txt changed"),
        "{output}"
    );
    assert!(
        output.contains("app │ [loop] running: gen re-ran (data_deps)"),
        "{output}"
    );
}

#[test]
fn a_second_loop_in_the_same_project_exits_one_naming_the_first() {
    let dir = project(&[(
        "Loopfile",
        "local_resource('svc', serve_cmd='sleep 3011')\n",
    )]);
    let first = Background::start(dir.path(), &["run"]);
    first.wait_for_output("1 resource up", 60);
    let second = run_loop(dir.path(), &["ci"]);
    assert_eq!(second.code, 1, "{}", second.transcript());
    let pid = first.child.id();
    assert!(
        second.stderr.contains(&format!(
            "loop is already running in this project (pid {pid})"
        )),
        "{}",
        second.transcript()
    );
    let (code, _) = first.interrupt();
    assert_eq!(code, 0);
    // Once the first is gone, the lock is free.
    let third = run_loop(dir.path(), &["ci", "--timeout", "1s"]);
    assert!(
        !third.stderr.contains("already running"),
        "{}",
        third.transcript()
    );
}

#[test]
fn ci_with_an_unknown_resource_name_or_nothing_to_run_fails() {
    let dir = project(&[(
        "Loopfile",
        "local_resource('api', cmd='true')\nlocal_resource('later', cmd='true', auto_init=False)\n",
    )]);
    let unknown = run_loop(dir.path(), &["ci", "--", "apj"]);
    assert_eq!(unknown.code, 1, "{}", unknown.transcript());
    assert!(
        unknown.stderr.contains("no resource named `apj`")
            && unknown.stderr.contains("did you mean `api`?"),
        "{}",
        unknown.transcript()
    );
    let nothing = run_loop(dir.path(), &["ci", "--", "later"]);
    assert_eq!(nothing.code, 1, "{}", nothing.transcript());
    assert!(
        nothing.stderr.contains("no resource is enabled to run"),
        "{}",
        nothing.transcript()
    );
}

/// A failing command's last stderr line reaches the stream and the summary,
/// before the failure is reported, every time.
#[test]
fn a_failing_command_never_loses_its_last_stderr_line() {
    let dir = project(&[(
        "Loopfile",
        "local_resource('c', cmd=\"echo compiling; printf 'ERR%s\\\\n' MARKER >&2; exit 2\")\n",
    )]);
    for attempt in 0..200 {
        let run = run_loop(dir.path(), &["ci"]);
        assert_eq!(run.code, 1, "attempt {attempt}\n{}", run.transcript());
        let out = run.stdout.clone();
        let line = out.find("c │ ERRMARKER");
        let failed = out.find("c │ [loop] failed:");
        assert!(
            line.is_some() && failed.is_some() && line < failed,
            "attempt {attempt}: the stderr line must come before the failure\n{}",
            run.transcript()
        );
        assert!(
            run.stderr.contains("ERRMARKER"),
            "attempt {attempt}: summary\n{}",
            run.transcript()
        );
    }
}

/// `outputs=`: a run of `gen` whose outputs come out the same does not re-run
/// its data-downstreams; one that changes them does.
#[test]
fn unchanged_outputs_do_not_re_run_data_downstreams() {
    let dir = project(&[
        (
            "Loopfile",
            r#"
local_resource('gen', cmd="tr -d ' ' < schema.txt > out.txt", deps=['schema.txt'], outputs=['out.txt'])
local_resource('app', cmd='cat out.txt >> seen', data_deps=['gen'])
"#,
        ),
        ("schema.txt", "a b\n"),
    ]);
    let loop_run = Background::start(dir.path(), &["run"]);
    loop_run.wait_for_output("2 resources up", 60);
    assert_eq!(count(dir.path(), "seen"), 1);
    std::fs::write(dir.path().join("schema.txt"), "a  b \n").unwrap();
    loop_run.wait_for_output("app │ [loop] skipped: outputs of gen unchanged", 30);
    std::fs::write(dir.path().join("schema.txt"), "a b c\n").unwrap();
    wait_until(
        30,
        "app to run after gen's outputs changed",
        || count(dir.path(), "seen") == 2,
        || loop_run.output(),
    );
    let (_, out) = loop_run.interrupt();
    assert_eq!(count(dir.path(), "seen"), 2, "{out}");
}

/// A second `loop ci` on an unchanged tree skips the build steps whose inputs and
/// outputs match their last success; `--no-cache` and a changed input run them.
#[test]
fn build_steps_are_warm_across_sessions() {
    let dir = project(&[
        (
            "Loopfile",
            r#"
local_resource('gen', cmd='echo x >> runs-gen; cp src/a.txt gen.out', deps=['src'], outputs=['gen.out'])
local_resource('lib', cmd='echo x >> runs-lib; cat gen.out > lib.out', data_deps=['gen'], outputs=['lib.out'])
local_resource('app', cmd='echo x >> runs-app', data_deps=['lib'])
"#,
        ),
        ("src/a.txt", "1"),
    ]);
    let first = run_loop(dir.path(), &["ci"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let second = run_loop(dir.path(), &["ci"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    for name in ["gen", "lib"] {
        assert!(
            second.stdout.contains(&format!(
                "{name} │ [loop] skipped: inputs unchanged since last success"
            )),
            "{}",
            second.transcript()
        );
    }
    assert_eq!(
        (
            count(dir.path(), "runs-gen"),
            count(dir.path(), "runs-lib"),
            count(dir.path(), "runs-app")
        ),
        (1, 1, 2),
        "app declares no outputs, so it always runs\n{}",
        second.transcript()
    );
    let forced = run_loop(dir.path(), &["ci", "--no-cache"]);
    assert_eq!(forced.code, 0, "{}", forced.transcript());
    assert_eq!(count(dir.path(), "runs-gen"), 2, "{}", forced.transcript());
    std::fs::write(dir.path().join("src/a.txt"), "2").unwrap();
    let changed = run_loop(dir.path(), &["ci"]);
    assert_eq!(changed.code, 0, "{}", changed.transcript());
    assert_eq!(
        (count(dir.path(), "runs-gen"), count(dir.path(), "runs-lib")),
        (3, 3),
        "{}",
        changed.transcript()
    );
}

/// Progress lines come every 10 s from the start of a long update; probe
/// failures stop once stopping begins.
#[test]
fn a_long_update_reports_progress_at_ten_seconds_and_probes_stop_when_stopping() {
    let port = free_port();
    let dir = project(&[(
        "Loopfile",
        &format!(
            "local_resource('slow', cmd='sleep 12')\n\
             local_resource('web', serve_cmd='exec sleep 3013', allow_parallel=True, readiness_probe=probe(period_secs=1, failure_threshold=1, tcp_socket=tcp_socket_action({port})))\n"
        ),
    )]);
    let run = run_loop(dir.path(), &["ci", "--timeout", "14s", "--grace", "200ms"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let first = run.stdout.find("slow │ [loop] still updating after 1");
    assert!(
        first.is_some(),
        "a progress line near 10 s\n{}",
        run.transcript()
    );
    let line = &run.stdout[first.unwrap()..];
    let secs: f64 = line["slow │ [loop] still updating after ".len()..]
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (10.0..12.5).contains(&secs),
        "first progress line at {secs}s\n{}",
        run.transcript()
    );
    assert!(
        run.stdout.contains("web │ [loop] not ready"),
        "the probe ran\n{}",
        run.transcript()
    );
    let stopping = run.stdout.find("stopping").expect("stopping line");
    assert!(
        !run.stdout[stopping..].contains("not ready"),
        "no probe failure after stopping began\n{}",
        run.transcript()
    );
}

/// A deep include chain: `check` accepts it, and so does every reload of a
/// running `loop run` (a reload used to run on a small stack and abort `loop`).
#[test]
fn a_deep_include_chain_survives_check_and_reloads() {
    let depth = 3000;
    let mut files: Vec<(String, String)> = vec![(
        "Loopfile".into(),
        "include('d/1/Loopfile')\nlocal_resource('top', serve_cmd='exec sleep 3601')\n".into(),
    )];
    for i in 1..=depth {
        let next = if i < depth {
            format!("include('../{}/Loopfile')\n", i + 1)
        } else {
            String::new()
        };
        files.push((format!("d/{i}/Loopfile"), next));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let dir = project(&refs);
    let check = run_loop(dir.path(), &["check"]);
    assert_eq!(check.code, 0, "{}", check.transcript());
    let loop_run = Background::start(dir.path(), &["run", "--port", "0"]);
    loop_run.wait_for_output("1 resource up", 120);
    let top = dir.path().join("Loopfile");
    let text = std::fs::read_to_string(&top).unwrap();
    std::fs::write(&top, format!("{text}# a comment\n")).unwrap();
    loop_run.wait_for_output("reloaded: 0 added, 0 changed, 0 removed", 120);
    let (code, out) = loop_run.interrupt();
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("overflow"), "{out}");
}

/// Limits that no statement hook sees (one huge allocation, a comprehension that
/// never ends) stop the evaluation process, not `loop run`: the graph keeps
/// running, and a `local()` command of the abandoned evaluation is killed.
#[test]
fn a_reload_past_the_evaluation_limits_keeps_the_graph_and_leaves_nothing_behind() {
    let service = "local_resource('svc', serve_cmd='exec sleep 3611')\n";
    let dir = project(&[("Loopfile", service)]);
    let env = [
        ("LOOP_EVAL_MAX_MEMORY_MB", Path::new("64")),
        ("LOOP_EVAL_TIMEOUT", Path::new("3")),
    ];
    let loop_run = Background::start_with_env(dir.path(), &["run", "--port", "0"], &env);
    loop_run.wait_for_output("1 resource up", 60);
    let loopfile = dir.path().join("Loopfile");

    std::fs::write(&loopfile, format!("{service}x = [0] * 1000000000\n")).unwrap();
    loop_run.wait_for_output("evaluation needs more than 128 MiB", 60);
    loop_run.wait_for_output("the previous graph keeps running", 20);

    // A comprehension that never ends, after a local() that outlives the limit.
    let endless = "found = [1 for i in range(2000000000) for j in range(2000000000) if i < 0]";
    std::fs::write(
        &loopfile,
        format!("{service}local('sleep 3612; echo done')\n{endless}\n"),
    )
    .unwrap();
    loop_run.wait_for_output("evaluation ran longer than 3s", 60);
    wait_until(
        10,
        "the local() command of the abandoned evaluation to be killed",
        || processes_with("sleep 3612").is_empty(),
        || format!("{:?}", processes_with("sleep 3612")),
    );
    assert_eq!(
        processes_with("sleep 3611").len(),
        1,
        "{}",
        loop_run.output()
    );

    std::fs::write(
        &loopfile,
        format!("{service}local_resource('more', cmd='true')\n"),
    )
    .unwrap();
    loop_run.wait_for_output("reloaded: 1 added, 0 changed, 0 removed", 60);
    let (code, out) = loop_run.interrupt();
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

/// A `ci` timeout names ten of the resources it waited for and counts the rest,
/// in one short line however many there are.
#[test]
fn a_ci_timeout_with_thousands_waiting_names_ten_and_counts_the_rest() {
    let port = free_port();
    let mut loopfile = format!(
        "local_resource('gate', serve_cmd='exec sleep 3621', readiness_probe=probe(period_secs=1, tcp_socket=tcp_socket_action({port})))\n"
    );
    for i in 0..2000 {
        loopfile.push_str(&format!(
            "local_resource('r{i}', cmd='true', resource_deps=['gate'])\n"
        ));
    }
    let dir = project(&[("Loopfile", &loopfile)]);
    let run = run_loop(dir.path(), &["ci", "--timeout", "3s", "--grace", "200ms"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("ci timed out after 3s"))
        .unwrap_or_else(|| panic!("no timeout line\n{}", run.stdout));
    assert!(line.contains("waiting for 2001 resources: "), "{line}");
    assert!(line.contains(" and 1991 more"), "{line}");
    assert!(line.len() < 400, "{} characters: {line}", line.len());
}
