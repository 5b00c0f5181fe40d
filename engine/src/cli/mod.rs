//! The command line: flags parsed once into plain values, then one function per
//! subcommand. All user-facing output goes through [`crate::report`].

mod affected;
mod check;
mod graph;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

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
        Command::Check { files } => check::run(&files.loopfiles, &files.args),
        Command::Graph { files, format } => graph::run(&files.loopfiles, &files.args, format),
        Command::Affected {
            paths,
            loopfiles,
            args,
        } => affected::run(&paths, &loopfiles, &args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            crate::report::error(&format!("{err:#}"));
            ExitCode::from(2)
        }
    }
}
