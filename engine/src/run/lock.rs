//! One `loop run`/`loop ci` per project: a second one would fight the first for
//! ports and log files (its probes would even pass against the first one's
//! servers). The session holds an exclusive `flock` on `.loop/lock`, which the
//! kernel releases however the process ends; the file holds the owner's pid.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// The project's lock, held while this value lives.
pub struct SessionLock {
    _file: Flock<File>,
}

/// Takes the project's lock, or says who holds it.
pub fn acquire(root: &Path) -> Result<SessionLock, String> {
    let dir = root.join(".loop");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("lock");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut file) => {
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = write!(file, "{}", std::process::id());
            Ok(SessionLock { _file: file })
        }
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let who = if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            };
            Err(format!(
                "loop is already running in this project{who}; stop it first, or use that session"
            ))
        }
    }
}
