//! Running the built `loop` binary and normalizing its output.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the engine crate, which builds `loop`, is one folder down).
pub fn repo() -> PathBuf {
    let engine = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    engine
        .parent()
        .expect("the engine crate is in the repository")
        .to_path_buf()
}

/// The exit code and output of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit code and both streams, for snapshots, with local paths replaced.
    pub fn transcript(&self) -> String {
        let text = format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        normalize(&text)
    }
}

/// Replaces machine-specific paths with stable placeholders.
pub fn normalize(text: &str) -> String {
    let repo = repo().to_string_lossy().into_owned();
    let tmp = std::env::temp_dir().to_string_lossy().into_owned();
    text.replace(&repo, "[REPO]").replace(&tmp, "[TMP]")
}

/// Runs `loop ARGS` in `dir`.
pub fn run_loop(dir: &Path, args: &[&str]) -> Run {
    run_loop_with(dir, args, &[])
}

/// Runs `loop ARGS` in `dir` with extra environment variables.
pub fn run_loop_with(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_loop"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("LOOP_EXTENSIONS_PATH")
        .output()
        .expect("the loop binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Writes files (path, contents) under a new temporary folder.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, contents) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

/// A `loop` process running in the background, its output collected.
pub struct Background {
    pub child: std::process::Child,
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Background {
    /// Starts `loop ARGS` in `dir`.
    pub fn start(dir: &Path, args: &[&str]) -> Background {
        Background::start_with_env(dir, args, &[])
    }

    /// Starts `loop ARGS` in `dir` with extra environment variables.
    pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Background {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_loop"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the loop binary starts");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        Background { child, output }
    }

    /// Everything printed so far (stdout and stderr interleaved).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output contains `text`; panics with the output after `secs`.
    pub fn wait_for_output(&self, text: &str, secs: u64) {
        let out = self.output.clone();
        wait_until(
            secs,
            &format!("output containing {text:?}"),
            || out.lock().unwrap().contains(text),
            || self.output(),
        );
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit code; see [`Background::stop_with`].
    pub fn interrupt(self) -> (i32, String) {
        self.stop_with(nix::sys::signal::Signal::SIGINT)
    }

    /// Sends `signal` once and waits for `loop` to exit, at most [`STOP_BOUND`]:
    /// a `loop` that does not stop fails the test with its output (and is killed)
    /// instead of hanging CI.
    pub fn stop_with(mut self, signal: nix::sys::signal::Signal) -> (i32, String) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        let Some(status) = wait_bounded(&mut self.child, STOP_BOUND) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "loop did not exit within {STOP_BOUND:?} of one {signal}\n--- output:\n{}",
                self.output()
            );
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        (status.code().unwrap_or(-1), self.output())
    }
}

/// How long a stopped `loop` may take to exit before a test fails.
pub const STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits for `child` to exit, at most `bound`.
pub fn wait_bounded(
    child: &mut std::process::Child,
    bound: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + bound;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => return None,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        if wait_bounded(&mut self.child, STOP_BOUND).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `done` every 20 ms for up to `secs` seconds; on timeout panics with `what`
/// and `context()`.
pub fn wait_until(
    secs: u64,
    what: &str,
    mut done: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!(
        "timed out after {secs}s waiting for {what}\n--- output:\n{}",
        context()
    );
}

/// The number of lines in a file (0 when it does not exist).
pub fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// The folders of the bad-input corpus (`tests/bad/*`), sorted.
pub fn bad_cases() -> Vec<PathBuf> {
    let mut cases: Vec<_> = std::fs::read_dir(repo().join("tests/bad"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    cases
}
