//! `.loop/session.json`: how CLI verbs, editors and agents find a running
//! session. Written by `loop run` (mode 0600: it holds the token), removed when
//! it stops; found from the current folder by walking up, or from `--project`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a client needs to reach the session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionFile {
    pub port: u16,
    pub pid: u32,
    pub token: String,
}

impl SessionFile {
    /// The file's path in a project.
    pub fn path(root: &Path) -> PathBuf {
        root.join(".loop").join("session.json")
    }

    /// Writes the file, readable by its owner only.
    pub fn write(&self, root: &Path) -> std::io::Result<()> {
        let path = Self::path(root);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }

    /// Removes the file if it still describes this process.
    pub fn remove(root: &Path) {
        let path = Self::path(root);
        if let Ok(text) = std::fs::read_to_string(&path) {
            if serde_json::from_str::<SessionFile>(&text).is_ok_and(|s| s.pid == std::process::id())
            {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// The session of the project at `project`, or of the nearest folder at or
    /// above `start` that has one whose process is alive.
    pub fn find(project: Option<&Path>, start: &Path) -> Result<(PathBuf, SessionFile), String> {
        let candidates: Vec<PathBuf> = match project {
            Some(dir) => vec![dir.to_owned()],
            None => start.ancestors().map(Path::to_owned).collect(),
        };
        for dir in &candidates {
            let Ok(text) = std::fs::read_to_string(Self::path(dir)) else {
                continue;
            };
            let Ok(session) = serde_json::from_str::<SessionFile>(&text) else {
                continue;
            };
            if process_alive(session.pid) {
                return Ok((dir.clone(), session));
            }
        }
        let place = match project {
            Some(dir) => format!("in {}", dir.display()),
            None => format!("in {} or above it", start.display()),
        };
        Err(format!(
            "no running loop session {place}: start one with `loop run` (or pass --project DIR)"
        ))
    }
}

fn process_alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

/// A new random token (256 bits, hex).
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
