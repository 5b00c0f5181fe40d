//! The kernel limits that file watching runs into on Linux, and the messages
//! that tell the user how to raise them.

use std::fmt;

/// An inotify limit of the Linux kernel (a `fs.inotify.*` sysctl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InotifyLimit {
    /// `fs.inotify.max_user_watches`: watches per user; `loop` uses one per folder.
    Watches,
    /// `fs.inotify.max_user_instances`: inotify instances per user; one per watcher.
    Instances,
}

impl InotifyLimit {
    /// The sysctl name, such as `fs.inotify.max_user_watches`.
    pub fn sysctl(self) -> &'static str {
        match self {
            InotifyLimit::Watches => "fs.inotify.max_user_watches",
            InotifyLimit::Instances => "fs.inotify.max_user_instances",
        }
    }

    /// The current value, read from `/proc/sys/fs/inotify`.
    pub fn current(self) -> Option<u64> {
        let file = format!("/proc/sys/{}", self.sysctl().replace('.', "/"));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// A value worth raising the limit to.
    fn suggested(self, current: Option<u64>) -> u64 {
        let usual = match self {
            InotifyLimit::Watches => 524_288,
            InotifyLimit::Instances => 1024,
        };
        match current {
            Some(current) if current >= usual => current.saturating_mul(2),
            _ => usual,
        }
    }
}

/// An inotify limit was reached. Its `Display` is the whole user-facing
/// message: which limit, its value, and how to raise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitReached {
    /// Which limit.
    pub limit: InotifyLimit,
    /// Its value when it was reached, if it could be read.
    pub current: Option<u64>,
}

impl LimitReached {
    /// The limit, with its current value read from `/proc`.
    pub fn now(limit: InotifyLimit) -> LimitReached {
        LimitReached {
            limit,
            current: limit.current(),
        }
    }
}

impl fmt::Display for LimitReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.limit.sysctl();
        let value = match self.current {
            Some(value) => value.to_string(),
            None => "unknown".to_string(),
        };
        match self.limit {
            InotifyLimit::Watches => write!(
                f,
                "the inotify watch limit is reached: {name} is {value}, and loop needs one \
                 watch per folder it watches (the limit is shared by every program of this \
                 user, editors and other watchers included)."
            )?,
            InotifyLimit::Instances => write!(
                f,
                "the inotify instance limit is reached: {name} is {value}, and every running \
                 file watcher of this user (editors and dev tools included) uses one. (The same \
                 error also comes when this process has too many open files: see `ulimit -n`.)"
            )?,
        }
        let raised = self.limit.suggested(self.current);
        write!(
            f,
            "\nRaise it now with:\n    sudo sysctl {name}={raised}\n\
             and keep it after a reboot with:\n    \
             echo {name}={raised} | sudo tee /etc/sysctl.d/90-inotify.conf"
        )?;
        if self.limit == InotifyLimit::Watches {
            write!(
                f,
                "\nOr watch fewer folders: list large generated ones (node_modules, target, \
                 build) in .gitignore or .loopignore."
            )?;
        }
        Ok(())
    }
}

/// What a failed `watch()` call means for the watcher.
#[derive(Debug)]
pub(super) enum WatchFailure {
    /// The path vanished before it could be watched: nothing to do.
    Vanished,
    /// A kernel limit is reached: no more watches can be added.
    Limit(LimitReached),
    /// Anything else (such as permission denied), as a message.
    Other(String),
}

/// Classifies an error from adding a watch.
pub(super) fn watch_failure(err: notify::Error) -> WatchFailure {
    match err.kind {
        notify::ErrorKind::PathNotFound => WatchFailure::Vanished,
        notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            WatchFailure::Vanished
        }
        // notify maps ENOSPC from inotify_add_watch to this kind.
        notify::ErrorKind::MaxFilesWatch => {
            WatchFailure::Limit(LimitReached::now(InotifyLimit::Watches))
        }
        notify::ErrorKind::Io(io) => WatchFailure::Other(io.to_string()),
        kind => WatchFailure::Other(notify::Error::new(kind).to_string()),
    }
}

/// Classifies an error from creating the watcher: EMFILE from `inotify_init1`
/// means the instance limit (or the open files limit) is reached.
pub(super) fn start_failure(err: notify::Error) -> Result<LimitReached, String> {
    match err.kind {
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(nix::libc::EMFILE) => {
            Ok(LimitReached::now(InotifyLimit::Instances))
        }
        kind => Err(notify::Error::new(kind).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_limit_message_names_the_limit_its_value_and_the_fix() {
        let text = LimitReached {
            limit: InotifyLimit::Watches,
            current: Some(8192),
        }
        .to_string();
        assert!(
            text.contains("fs.inotify.max_user_watches is 8192"),
            "{text}"
        );
        assert!(
            text.contains("sudo sysctl fs.inotify.max_user_watches=524288"),
            "{text}"
        );
        assert!(
            text.contains(
                "echo fs.inotify.max_user_watches=524288 | sudo tee /etc/sysctl.d/90-inotify.conf"
            ),
            "{text}"
        );
        assert!(text.contains(".loopignore"), "{text}");
    }

    #[test]
    fn a_limit_already_high_is_doubled() {
        let text = LimitReached {
            limit: InotifyLimit::Watches,
            current: Some(1_048_576),
        }
        .to_string();
        assert!(text.contains("max_user_watches=2097152"), "{text}");
    }

    #[test]
    fn instance_limit_message() {
        let text = LimitReached {
            limit: InotifyLimit::Instances,
            current: None,
        }
        .to_string();
        assert!(
            text.contains("fs.inotify.max_user_instances is unknown"),
            "{text}"
        );
        assert!(
            text.contains("sudo sysctl fs.inotify.max_user_instances=1024"),
            "{text}"
        );
        assert!(text.contains("ulimit -n"), "{text}");
    }

    #[test]
    fn current_values_are_read_from_proc() {
        // Every Linux kernel with inotify has these files.
        if cfg!(target_os = "linux") {
            assert!(InotifyLimit::Watches.current().is_some());
            assert!(InotifyLimit::Instances.current().is_some());
        }
    }

    #[test]
    fn notify_errors_are_classified() {
        let limit = watch_failure(notify::Error::new(notify::ErrorKind::MaxFilesWatch));
        assert!(
            matches!(
                limit,
                WatchFailure::Limit(LimitReached {
                    limit: InotifyLimit::Watches,
                    ..
                })
            ),
            "{limit:?}"
        );
        let gone = watch_failure(notify::Error::path_not_found());
        assert!(matches!(gone, WatchFailure::Vanished), "{gone:?}");
        let denied = watch_failure(notify::Error::io(std::io::Error::from_raw_os_error(
            nix::libc::EACCES,
        )));
        assert!(matches!(denied, WatchFailure::Other(_)), "{denied:?}");

        let emfile = notify::Error::io(std::io::Error::from_raw_os_error(nix::libc::EMFILE));
        assert_eq!(
            start_failure(emfile).unwrap().limit,
            InotifyLimit::Instances
        );
        assert!(start_failure(notify::Error::generic("boom")).is_err());
    }
}
