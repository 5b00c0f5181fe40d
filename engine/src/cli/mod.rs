//! The command line: flags parsed once into plain values, then one function per
//! subcommand. All user-facing output goes through [`crate::report`].

mod affected;
mod check;
mod down;
mod graph;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::run::{Mode, RunOptions};

#[derive(Parser, Debug)]
#[command(
    name = "loop",
    version,
    about = "The inner dev loop for Kubernetes and local services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start every resource in graph order, watch files, and re-run what changes affect.
    Run {
        #[command(flatten)]
        files: Files,
        /// Time between SIGTERM and SIGKILL when stopping processes.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        grace: Duration,
        /// Quiet time that groups file events into one batch.
        #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
        debounce: Duration,
        /// Kubernetes context (default: the kubeconfig's current context).
        #[arg(long)]
        context: Option<String>,
    },
    /// Run until every resource is ready (serve) or succeeded (cmd), then stop
    /// everything: exit 0, or 1 with a summary of the first failure.
    Ci {
        #[command(flatten)]
        files: Files,
        /// Give up after this long.
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Time between SIGTERM and SIGKILL when stopping processes.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        grace: Duration,
        /// Kubernetes context (default: the kubeconfig's current context).
        #[arg(long)]
        context: Option<String>,
    },
    /// Delete every Kubernetes object the Loopfiles applied (found by labels).
    Down {
        #[command(flatten)]
        files: Files,
        /// Delete namespaces too.
        #[arg(long)]
        delete_namespaces: bool,
        /// Kubernetes context (default: the kubeconfig's current context).
        #[arg(long)]
        context: Option<String>,
    },
    /// Evaluate and validate Loopfiles, and print a short summary.
    Check {
        #[command(flatten)]
        files: Files,
    },
    /// Print the resource graph.
    Graph {
        #[command(flatten)]
        files: Files,
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Print the resources a change to PATHs would re-run, in run order, and the
    /// Loopfiles it would re-evaluate.
    Affected {
        /// Changed files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Loopfiles to compose (default: ./Loopfile, else ./Tiltfile).
        #[arg(long = "files", num_args = 1..)]
        loopfiles: Vec<PathBuf>,
        /// Arguments for config.parse().
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Internal: the watchdog that `loop run`/`loop ci` start, which stops what
    /// `loop` started if `loop` dies (see `run::watchdog`).
    #[command(name = "__watchdog", hide = true)]
    Watchdog {
        /// Time between SIGTERM and SIGKILL.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        grace: Duration,
    },
}

/// Loopfiles to compose, and the user's arguments after `--`.
#[derive(clap::Args, Debug)]
struct Files {
    /// Loopfiles to compose into one graph (default: ./Loopfile, else ./Tiltfile).
    loopfiles: Vec<PathBuf>,
    /// Arguments for config.parse().
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Text,
    Json,
    Dot,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            files,
            grace,
            debounce,
            context,
        } => Ok(crate::run::main(RunOptions {
            files: files.loopfiles,
            args: files.args,
            mode: Mode::Run,
            timeout: Duration::MAX,
            grace,
            debounce,
            watch: true,
            context,
        })),
        Command::Ci {
            files,
            timeout,
            grace,
            context,
        } => Ok(crate::run::main(RunOptions {
            files: files.loopfiles,
            args: files.args,
            mode: Mode::Ci,
            timeout,
            grace,
            debounce: Duration::from_millis(20),
            watch: false,
            context,
        })),
        Command::Down {
            files,
            delete_namespaces,
            context,
        } => down::run(&files.loopfiles, &files.args, delete_namespaces, context),
        Command::Check { files } => check::run(&files.loopfiles, &files.args),
        Command::Graph { files, format } => graph::run(&files.loopfiles, &files.args, format),
        Command::Affected {
            paths,
            loopfiles,
            args,
        } => affected::run(&paths, &loopfiles, &args),
        Command::Watchdog { grace } => Ok(crate::run::watchdog::main(grace)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            crate::report::error(&format!("{err:#}"));
            ExitCode::from(2)
        }
    }
}
