//! What `loop` does with the processes it runs, beyond stop signals: restarts of
//! serve commands whose shell forked (their orphans are reaped, not waited for
//! until the grace period ends), and output that is not UTF-8 or has no newline.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{processes_with, project, wait_bounded, wait_until, Background};

/// A grace period shorter than the 1-1.5 s that PID 1 takes to reap an orphaned
/// zombie on these machines (longer than a forking command takes to exit on
/// SIGTERM): a stop that waits for the orphan's zombie ends in SIGKILL, and says so.
const GRACE: &str = "500ms";

fn starts(out: &str, cmd: &str) -> usize {
    out.matches(&format!("[loop] starting: {cmd}")).count()
}

#[test]
fn a_forking_serve_command_restarts_and_stops_without_waiting_for_the_grace_period() {
    // dash forks `sleep`: once the group is stopped, the sleep is an orphan whose
    // zombie kept the group "alive" until PID 1 reaped it (slowly, or never).
    let cmd = "true; sleep 7301";
    let dir = project(&[
        (
            "Loopfile",
            &format!("local_resource('svc', serve_cmd='{cmd}', deps=['src'])\n"),
        ),
        ("src/a.txt", "0"),
    ]);
    let loop_run = Background::start(dir.path(), &["run", "--grace", GRACE]);
    loop_run.wait_for_output("1 resource up", 60);
    for i in 1..=3 {
        std::fs::write(dir.path().join("src/a.txt"), i.to_string()).unwrap();
        wait_until(
            10,
            "the serve process to restart",
            || starts(&loop_run.output(), cmd) > i,
            || loop_run.output(),
        );
    }
    let mut loop_run = loop_run;
    let pid = nix::unistd::Pid::from_raw(loop_run.child.id() as i32);
    nix::sys::signal::kill(pid, Signal::SIGINT).unwrap();
    let status = wait_bounded(&mut loop_run.child, Duration::from_secs(10));
    let out = loop_run.output();
    assert!(
        status.is_some(),
        "Ctrl-C waited for the grace period\n{out}"
    );
    assert!(!out.contains("ignored SIGTERM"), "{out}");
    wait_until(
        5,
        "no sleep left",
        || processes_with("sleep 7301").is_empty(),
        || out.clone(),
    );
}

#[test]
fn loop_ci_exits_without_waiting_for_the_grace_period_of_a_forking_serve_command() {
    let dir = project(&[(
        "Loopfile",
        "local_resource('svc', serve_cmd='true; sleep 7302')\n",
    )]);
    let mut ci = Background::start(dir.path(), &["ci", "--grace", GRACE]);
    let status = wait_bounded(&mut ci.child, Duration::from_secs(20));
    let out = ci.output();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{out}");
    assert!(!out.contains("ignored SIGTERM"), "{out}");
}

#[test]
fn a_restart_that_kills_the_previous_process_says_so() {
    let cmd = "trap \"\" TERM; sleep 7303";
    let dir = project(&[
        (
            "Loopfile",
            &format!("local_resource('svc', serve_cmd='{cmd}', deps=['src'])\n"),
        ),
        ("src/a.txt", "0"),
    ]);
    let loop_run = Background::start(dir.path(), &["run", "--grace", "300ms"]);
    loop_run.wait_for_output("1 resource up", 60);
    std::fs::write(dir.path().join("src/a.txt"), "1").unwrap();
    loop_run.wait_for_output(
        "svc │ [loop] the previous process ignored SIGTERM for 0.3s: killed",
        20,
    );
    wait_until(
        10,
        "the serve process to restart",
        || starts(&loop_run.output(), cmd) >= 2,
        || loop_run.output(),
    );
    let (code, out) = loop_run.stop_with(Signal::SIGINT);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn output_that_is_not_utf8_is_logged_with_replacement_characters() {
    let dir = project(&[(
        "Loopfile",
        r#"local_resource('bytes', cmd="printf 'bad \\377\\376 bytes\\nnext\\n'")"#,
    )]);
    let mut ci = Background::start(dir.path(), &["ci"]);
    let status = wait_bounded(&mut ci.child, Duration::from_secs(30));
    let out = ci.output();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{out}");
    let log = std::fs::read_to_string(dir.path().join(".loop/logs/bytes.log")).unwrap();
    // Each line of the file is `TIMESTAMP text`.
    let texts: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(_, t)| t)
        .collect();
    assert!(
        texts
            .windows(2)
            .any(|w| w == ["bad \u{fffd}\u{fffd} bytes", "next"]),
        "{log:?}"
    );
}

/// `loop`'s peak memory (VmHWM) in MB.
fn peak_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

#[test]
fn fifty_megabytes_without_a_newline_keep_memory_flat() {
    let dir = project(&[(
        "Loopfile",
        r#"local_resource('big', serve_cmd="head -c 50000000 /dev/zero | tr '\\0' a; echo; echo big-done; sleep 7304")"#,
    )]);
    let loop_run = Background::start(dir.path(), &["run"]);
    loop_run.wait_for_output("big │ big-done", 120);
    let peak = peak_mb(loop_run.child.id());
    let log = dir.path().join(".loop/logs/big.log");
    let size = std::fs::metadata(&log).unwrap().len();
    let (code, _) = loop_run.stop_with(Signal::SIGINT);
    assert_eq!(code, 0);
    assert!(size >= 50_000_000, "the log holds {size} bytes");
    assert!(peak < 100.0, "loop's peak memory was {peak:.1} MB");
}
