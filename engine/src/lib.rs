//! The `loop` engine: the resource graph, affected sets, the file watcher, the
//! runtimes that run resources, live update, and the CLI.

// User-facing output goes through `report` (stdout answers, stderr diagnostics).
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod affected;
pub mod cli;
pub mod control;
pub mod eval_thread;
pub mod failure;
pub mod graph;
pub mod image;
pub mod isolation;
pub mod k8s;
pub mod live_update;
pub mod load;
pub mod lsp;
pub mod process;
pub mod release;
pub mod report;
pub mod run;
pub mod watch;
