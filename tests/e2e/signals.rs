//! Stop signals with real processes: one SIGINT, SIGTERM or SIGHUP stops `loop`
//! and everything it started, whatever `loop` is doing when it arrives.

use nix::sys::signal::Signal;

use crate::support::{processes_with, project, wait_until, Background};

/// A Loopfile with `n` resources whose commands finish at once, so that `loop`
/// is busy handling their reports when the signal arrives.
fn busy_loopfile(n: usize) -> String {
    (0..n)
        .map(|i| format!("local_resource('r{i}', cmd='true', allow_parallel=True)\n"))
        .collect()
}

#[test]
fn one_ctrl_c_stops_loop_while_it_is_busy() {
    let dir = project(&[("Loopfile", &busy_loopfile(400))]);
    for attempt in 0..5 {
        let loop_run = Background::start(dir.path(), &["run"]);
        loop_run.wait_for_output("succeeded in", 60);
        // `stop_with` fails the test if this one signal is lost.
        let (code, out) = loop_run.stop_with(Signal::SIGINT);
        assert_eq!(code, 0, "attempt {attempt}\n{out}");
        assert!(out.contains("SIGINT: stopping"), "attempt {attempt}\n{out}");
    }
}

#[test]
fn sigint_sigterm_and_sighup_each_stop_every_process() {
    for (i, signal) in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP]
        .into_iter()
        .enumerate()
    {
        let marker = format!("sleep 31{i}7");
        let dir = project(&[(
            "Loopfile",
            &format!(
                "local_resource('svc', serve_cmd='{marker}')\n\
                 local_resource('svc2', serve_cmd=['sh', '-c', '{marker}; true'])\n"
            ),
        )]);
        let loop_run = Background::start(dir.path(), &["run"]);
        loop_run.wait_for_output("2 resources up", 60);
        wait_until(
            10,
            "the processes to run",
            || processes_with(&marker).len() >= 2,
            || format!("{:?}", processes_with(&marker)),
        );
        let (code, out) = loop_run.stop_with(signal);
        assert_eq!(code, 0, "{signal}\n{out}");
        assert!(out.contains(&format!("{signal}: stopping")), "{out}");
        wait_until(
            5,
            "every process to be gone",
            || processes_with(&marker).is_empty(),
            || format!("{signal}: {:?}\n{out}", processes_with(&marker)),
        );
    }
}
