//! `loop run` / `loop ci` figures with real processes: save-to-re-run latency,
//! `loop ci` over 1,000 trivial resources, 100 idle serve processes, the
//! restart of a serve command whose shell forks vs one that does not, and the
//! reload of a 1,000-resource project after a one-file change.
//! Prints medians of several runs. Run: `cargo bench --bench run`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::resource::{getrusage, UsageWho};

#[path = "bench_support.rs"]
mod support;

use support::{cpu_ticks, interrupt, median, rss_mb, start_run, LOOP};

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Milliseconds from each of `saves` saves of `src/main.txt` to the moment the
/// re-run wrote its start time into `started.txt`, for a project whose only
/// resource is `resource` (a `local_resource(...)` call).
fn save_latencies(resource: &str, saves: usize) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/main.txt"), "0").unwrap();
    std::fs::write(dir.path().join("Loopfile"), format!("{resource}\n")).unwrap();
    let (mut child, _) = start_run(dir.path(), "1 resource up");
    let started = dir.path().join("started.txt");
    let mut samples = Vec::new();
    for i in 0..saves {
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::fs::remove_file(&started);
        let saved = now_secs();
        std::fs::write(dir.path().join("src/main.txt"), i.to_string()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let ran = loop {
            if let Ok(text) = std::fs::read_to_string(&started) {
                if let Ok(t) = text.trim().parse::<f64>() {
                    break t;
                }
            }
            assert!(Instant::now() < deadline, "the re-run never started");
            std::thread::sleep(Duration::from_millis(1));
        };
        samples.push((ran - saved) * 1e3);
    }
    interrupt(&mut child);
    samples
}

fn save_to_rerun() {
    let samples = save_latencies(
        "local_resource('app', cmd='date +%s.%N > started.txt', deps=['src'])",
        25,
    );
    println!("save -> re-run started (cmd running):   median {:6.1} ms over {} saves (debounce 20 ms included)", median(samples.clone()), samples.len());
}

fn ci_thousand() {
    let dir = tempfile::tempdir().unwrap();
    let mut loopfile = String::new();
    for i in 0..1000 {
        loopfile.push_str(&format!("local_resource('r{i}', cmd='true')\n"));
    }
    std::fs::write(dir.path().join("Loopfile"), loopfile).unwrap();
    let mut walls = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let status = Command::new(LOOP)
            .arg("ci")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        walls.push(start.elapsed().as_secs_f64());
        assert!(status.success());
    }
    let rss_kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    println!("loop ci, 1,000 trivial cmd resources:   median {:6.2} s wall over {} runs; peak RSS {:.1} MB", median(walls), 5, rss_kib as f64 / 1024.0);
}

fn hundred_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut loopfile = String::new();
    for i in 0..100 {
        loopfile.push_str(&format!(
            "local_resource('s{i}', serve_cmd='exec sleep 600')\n"
        ));
    }
    std::fs::write(dir.path().join("Loopfile"), loopfile).unwrap();
    let mut ups = Vec::new();
    let mut rss = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..3 {
        let (mut child, took) = start_run(dir.path(), "100 resources up");
        ups.push(took.as_secs_f64());
        std::thread::sleep(Duration::from_secs(1));
        let (t0, c0) = (Instant::now(), cpu_ticks(child.id()));
        std::thread::sleep(Duration::from_secs(5));
        let ticks = cpu_ticks(child.id()) - c0;
        let hz = 100.0; // USER_HZ on Linux
        cpu.push(ticks as f64 / hz / t0.elapsed().as_secs_f64() * 100.0);
        rss.push(rss_mb(child.id()));
        interrupt(&mut child);
    }
    println!("100 serve resources:                    median {:6.2} s until all ready; loop RSS {:.1} MB; idle CPU {:.2}% (over 5 s)", median(ups), median(rss), median(cpu));
}

/// Save -> new serve process started, for a serve command: the old process group
/// must be gone first. A shell that forks (`cmd; sleep`) leaves an orphaned
/// zombie in the group that `loop` reaps itself.
fn serve_restart(label: &str, serve: &str) -> f64 {
    let samples = save_latencies(
        &format!(
            "local_resource('app', serve_cmd='date +%s.%N > started.txt; {serve}', deps=['src'])"
        ),
        15,
    );
    let m = median(samples.clone());
    println!("save -> serve restarted, {label}: median {m:6.1} ms over {} saves (debounce 20 ms included)", samples.len());
    m
}

fn main() {
    // `cargo bench --bench run -- restart` runs only the restart figures.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    if wanted("restart") {
        restart_figures();
    }
    if wanted("save_to_rerun") {
        save_to_rerun();
    }
    if wanted("ci_thousand") {
        ci_thousand();
    }
    if wanted("hundred_serves") {
        hundred_serves();
    }
    if wanted("reload_thousand") {
        reload_thousand();
    }
}

/// Save of one of ten included Loopfiles (100 resources each) -> the reload
/// applied (`reloaded:` printed): evaluation in `loop __eval`, validation, the
/// graph diff and the scheduler carried over.
fn reload_thousand() {
    let dir = tempfile::tempdir().unwrap();
    let mut top = String::new();
    for part in 0..10 {
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&format!(
                "local_resource('r{part}_{i}', cmd='true', deps=['src{part}'])\n"
            ));
        }
        std::fs::write(dir.path().join(format!("part{part}.loop")), text).unwrap();
        top.push_str(&format!("include('part{part}.loop')\n"));
    }
    std::fs::write(dir.path().join("Loopfile"), top).unwrap();
    let mut child = Command::new(LOOP)
        .arg("run")
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |text: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {text:?} line"));
        if line.contains(text) {
            break;
        }
    };
    wait_for("1000 resources up");
    let mut samples = Vec::new();
    for round in 0..9 {
        std::thread::sleep(Duration::from_millis(300));
        let mut text = std::fs::read_to_string(dir.path().join("part3.loop")).unwrap();
        text = text.replacen(
            "local_resource('r3_0', cmd='true'",
            &format!("local_resource('r3_0', cmd='true # {round}'"),
            1,
        );
        text = text.replacen(
            &format!("true # {}'", round.max(1) - 1),
            &format!("true # {round}'"),
            1,
        );
        let saved = Instant::now();
        std::fs::write(dir.path().join("part3.loop"), text).unwrap();
        wait_for("reloaded:");
        samples.push(saved.elapsed().as_secs_f64() * 1e3);
    }
    interrupt(&mut child);
    println!("reload, 1,000 resources in 11 Loopfiles, one file saved: median {:6.1} ms over {} saves (debounce included)", median(samples.clone()), samples.len());
}

fn restart_figures() {
    let exec = serve_restart("`exec sleep` (no fork)", "exec sleep 1000");
    let fork = serve_restart("`sleep` (shell forks)", "sleep 1000");
    println!(
        "forking / non-forking serve restart:    {:6.2}x",
        fork / exec
    );
}
