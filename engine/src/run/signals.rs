//! The signals that stop `loop run`/`loop ci`: SIGINT (Ctrl-C), SIGTERM and SIGHUP
//! (a closed terminal or a dropped SSH session).
//!
//! Each signal is listened for once, for the life of the process, before anything
//! is started. A listener created afresh inside a loop (`tokio::signal::ctrl_c()`
//! in every pass of a `select!`) misses a signal that arrives between two passes;
//! a stream registered once keeps it pending until it is read.

use std::fmt;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Which stop signal arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
    Hangup,
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
            StopSignal::Hangup => "SIGHUP",
        })
    }
}

/// The process's stop-signal listeners.
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    /// Starts listening; from now on these signals no longer kill the process.
    /// Must be called inside the async runtime.
    pub fn listen() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next stop signal (one that arrived earlier and was not yet
    /// read is returned at once).
    pub async fn recv(&mut self) -> StopSignal {
        tokio::select! {
            Some(()) = self.interrupt.recv() => StopSignal::Interrupt,
            Some(()) = self.terminate.recv() => StopSignal::Terminate,
            Some(()) = self.hangup.recv() => StopSignal::Hangup,
            else => std::future::pending().await,
        }
    }
}
