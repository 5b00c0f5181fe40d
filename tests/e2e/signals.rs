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

/// Repetitions of each stop case in a default test run; raise it to hunt races.
const REPEAT: u32 = 4;

/// Serve processes that are hard to stop, in every way the README promises to
/// handle, each carrying its own markers (`sleep N`, N unique to the case).
const HARD_SERVES: &[(&str, &str)] = &[
    // PR_SET_PDEATHSIG reaches `sh -c`, not the `sleep` it forks.
    ("plain", "sleep {a}"),
    ("ignores_term", "trap \"\" TERM; sleep {a}"),
    ("grandchildren", "sh -c 'sleep {a} & sleep {b}'"),
    ("setsid", "setsid sleep {a} & sleep {b}"),
    ("double_fork", "(setsid sleep {a} &); sleep {b}"),
];

/// The Loopfile for one case and the markers of its processes.
fn hard_case(signal_index: u32, repetition: u32) -> (String, Vec<String>) {
    assert!(repetition < 50, "markers must keep their length");
    // Unique to this test process, so leftovers of an earlier run do not count.
    let run = 10_000_000 + (std::process::id() % 1000) * 10_000;
    let mut loopfile = String::new();
    let mut markers = Vec::new();
    for (k, (name, cmd)) in HARD_SERVES.iter().enumerate() {
        let number = |j: u32| run + signal_index * 2_500 + repetition * 50 + k as u32 * 10 + j;
        let (a, b) = (number(1), number(2));
        let filled = cmd
            .replace("{a}", &a.to_string())
            .replace("{b}", &b.to_string());
        loopfile.push_str(&format!(
            "local_resource('{name}', serve_cmd=\"\"\"{filled}\"\"\")\n"
        ));
        markers.push(format!("sleep {a}"));
        if cmd.contains("{b}") {
            markers.push(format!("sleep {b}"));
        }
    }
    (loopfile, markers)
}

fn leftovers(markers: &[String]) -> Vec<String> {
    markers.iter().flat_map(|m| processes_with(m)).collect()
}

/// Starts `loop run --grace 300ms` on every kind of hard serve process, stops it
/// with `signal`, and counts what is left (the goal: nothing), `REPEAT` times.
fn stop_leaves_nothing(signal: Signal, signal_index: u32) {
    for repetition in 0..REPEAT {
        let (loopfile, markers) = hard_case(signal_index, repetition);
        let dir = project(&[("Loopfile", &loopfile)]);
        let loop_run = Background::start(dir.path(), &["run", "--grace", "300ms"]);
        loop_run.wait_for_output(&format!("{} resources up", HARD_SERVES.len()), 60);
        wait_until(
            10,
            "every process to run",
            || markers.iter().all(|m| !processes_with(m).is_empty()),
            || format!("{:?}\n{}", leftovers(&markers), loop_run.output()),
        );
        if signal == Signal::SIGKILL {
            // A double-forked daemon is adopted by `loop` when its parent exits;
            // `loop` tells the watchdog about it within a second.
            std::thread::sleep(std::time::Duration::from_millis(1500));
        }
        let (code, out) = loop_run.stop_with(signal);
        if signal != Signal::SIGKILL {
            assert_eq!(code, 0, "{signal}\n{out}");
            assert!(out.contains(&format!("{signal}: stopping")), "{out}");
        }
        wait_until(
            5,
            "every process to be gone",
            || leftovers(&markers).is_empty(),
            || {
                format!(
                    "{signal}, repetition {repetition}: {} left: {:#?}\n{out}",
                    leftovers(&markers).len(),
                    leftovers(&markers)
                )
            },
        );
    }
}

#[test]
fn sigint_leaves_nothing_running() {
    stop_leaves_nothing(Signal::SIGINT, 0);
}

#[test]
fn sigterm_leaves_nothing_running() {
    stop_leaves_nothing(Signal::SIGTERM, 1);
}

#[test]
fn sighup_leaves_nothing_running() {
    stop_leaves_nothing(Signal::SIGHUP, 2);
}

#[test]
fn sigkill_of_loop_leaves_nothing_running() {
    stop_leaves_nothing(Signal::SIGKILL, 3);
}

/// The watchdog's pid, a child of `loop` (`loop __watchdog`).
fn watchdog_of(loop_pid: u32) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{loop_pid}/task")).ok()?;
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("__watchdog"))
        })
}

#[test]
fn the_watchdog_exits_with_loop_and_is_hidden_from_help() {
    let dir = project(&[(
        "Loopfile",
        "local_resource('svc', serve_cmd='sleep 5907')\n",
    )]);
    let loop_run = Background::start(dir.path(), &["run", "--grace", "300ms"]);
    loop_run.wait_for_output("1 resource up", 60);
    let loop_pid = loop_run.child.id();
    let mut watchdog = None;
    wait_until(
        5,
        "the watchdog to run",
        || {
            watchdog = watchdog_of(loop_pid);
            watchdog.is_some()
        },
        || loop_run.output(),
    );
    let watchdog = watchdog.expect("found");
    let (code, out) = loop_run.stop_with(Signal::SIGINT);
    assert_eq!(code, 0, "{out}");
    // `loop` waited for it: it is not even a zombie.
    assert!(
        !std::path::Path::new(&format!("/proc/{watchdog}")).exists(),
        "the watchdog {watchdog} outlived loop\n{out}"
    );
    let help = crate::support::run_loop(dir.path(), &["--help"]);
    assert!(!help.stdout.contains("watchdog"), "{}", help.stdout);
}
