//! The command line: flags parsed once into plain values, then one function per
//! subcommand. All user-facing output goes through [`crate::report`].

mod affected;
mod apply;
mod check;
mod control;
mod docs;
mod down;
mod graph;
mod mcp;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use loop_stdlib::{EvalOptions, EVAL_ONLY_SUBCOMMAND};

use crate::report::Verbosity;
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
    /// Print only problems: errors, warnings, failures and the `loop ci` verdict
    /// (logs are still kept in full).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Also print details: which files changed, how long evaluations took.
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start every resource in graph order, watch files, and re-run what changes affect.
    #[command(alias = "up")]
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
        /// Run every build step, even those whose inputs and outputs match their
        /// last success.
        #[arg(long)]
        no_cache: bool,
        /// Port of the session API and dashboard on 127.0.0.1 (0: any free port;
        /// the default falls back to a free port when taken).
        #[arg(long, default_value_t = crate::control::DEFAULT_PORT)]
        port: u16,
        /// Lines of each resource's log kept in memory for `loop logs` and the dashboard.
        #[arg(long, default_value_t = crate::run::logs::DEFAULT_RING)]
        log_lines: usize,
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
        /// Run every build step, even those whose inputs and outputs match their
        /// last success.
        #[arg(long)]
        no_cache: bool,
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
    /// Show every resource of the running session: phase, reason, last run, links.
    Status {
        /// The snapshot as JSON, with `dashboard_url`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        session: SessionArg,
    },
    /// Print the running session's logs (all resources, or the ones named).
    Logs {
        names: Vec<String>,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only lines from the last DURATION (e.g. 5m).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// Prefix each line with its time.
        #[arg(long)]
        timestamps: bool,
        #[command(flatten)]
        session: SessionArg,
    },
    /// Run resources now (a serve resource restarts).
    Trigger {
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        session: SessionArg,
    },
    /// Enable resources: they start and take updates again.
    Enable {
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        session: SessionArg,
    },
    /// Disable resources: their processes stop and they take no updates.
    Disable {
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        session: SessionArg,
    },
    /// Wait until resources are ready, or until every run caused by changes made
    /// before the call has finished (`--for settled`).
    Wait {
        names: Vec<String>,
        #[arg(long = "for", value_enum, default_value = "ready")]
        until: control::WaitFor,
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// The result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        session: SessionArg,
    },
    /// Re-evaluate the running session with new arguments for config.parse().
    Args {
        #[arg(last = true)]
        args: Vec<String>,
        #[command(flatten)]
        session: SessionArg,
    },
    /// Serve the Model Context Protocol on stdin/stdout, for coding agents: the
    /// session's status, logs, trigger, enable, disable and wait_settled, and
    /// affected, graph and check on the Loopfiles.
    Mcp {
        #[command(flatten)]
        session: SessionArg,
    },
    /// Serve the Language Server Protocol on stdin/stdout, for editors:
    /// diagnostics as `loop check` reports them, completion, hover and go to
    /// definition for Loopfiles, Tiltfiles and `.star` files.
    Lsp {
        /// The project root (default: the nearest folder holding .git, .hg or
        /// .loop-root, else the file's folder).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Arguments for config.parse(), as `loop run` would be given.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Print the reference of the built-ins (all of them, or NAME's: its
    /// signature, arguments and doc).
    Docs {
        /// A built-in, e.g. `local_resource` or `os.path.join`.
        name: Option<String>,
        /// Markdown: without NAME, the whole reference (`docs/builtins.md`).
        #[arg(long)]
        markdown: bool,
        /// Every built-in of Tilt's API by what `loop` does with it (the
        /// README's list, in Markdown).
        #[arg(long, conflicts_with_all = ["name", "markdown"])]
        tilt: bool,
    },
    /// Tilt's `tilt apply -f FILE|-`, for extensions that create buttons with it
    /// (ext://uibutton): works only in a command a Loopfile's local() runs.
    Apply {
        /// The objects' YAML (`-`: the standard input).
        #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
        file: String,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Evaluate and validate Loopfiles, apply the policy rules of `loop render`
    /// (warnings), and print a short summary.
    Check {
        #[command(flatten)]
        files: Files,
        /// Policy findings are errors.
        #[arg(long)]
        strict: bool,
    },
    /// Print the Kubernetes objects as plain YAML for GitOps: dev-only parts
    /// left out, built images pinned by digest, policy rules applied, and
    /// loop.lock.json written (`--check`: compare with it, exit 1 on drift).
    Render {
        #[command(flatten)]
        files: Files,
        /// Write one file per object into DIR (`-`: stdout, the default).
        #[arg(long, value_name = "DIR|-")]
        out: Option<PathBuf>,
        /// Pin images with the digests in loop.lock.json instead of building and
        /// pushing them.
        #[arg(long)]
        no_build: bool,
        /// Compare the output and the images' inputs with loop.lock.json; write
        /// nothing; exit 1 when they differ.
        #[arg(long)]
        check: bool,
        /// Keep loop's ownership labels on the objects.
        #[arg(long)]
        labels: bool,
        /// Policy findings are errors.
        #[arg(long)]
        strict: bool,
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
        /// A Loopfile or Tiltfile to compose, as Tilt's `-f` (may be repeated).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Vec<PathBuf>,
        /// The project root (default: the nearest folder holding .git, .hg or
        /// .loop-root, else the file's folder).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// The profile that `profile(NAME)` in the Loopfiles tests for.
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Arguments for config.parse().
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Internal: evaluates Loopfiles for `loop` in a process of its own (see
    /// `isolation`); reads the request on stdin, answers on stdout.
    #[command(name = "__eval", hide = true)]
    Eval,
    /// Internal: the watchdog that `loop run`/`loop ci` start, which stops what
    /// `loop` started if `loop` dies (see `process::watchdog`).
    #[command(name = "__watchdog", hide = true)]
    Watchdog {
        /// Time between SIGTERM and SIGKILL.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        grace: Duration,
    },
}

/// Which running session to talk to.
#[derive(clap::Args, Debug)]
struct SessionArg {
    /// The project folder of the session (default: the current folder or the
    /// nearest one above it with a running session).
    #[arg(long)]
    project: Option<PathBuf>,
}

/// Loopfiles to compose, the project root, and the user's arguments after `--`.
#[derive(clap::Args, Debug)]
struct Files {
    /// Loopfiles to compose into one graph (default: ./Loopfile, else ./Tiltfile).
    loopfiles: Vec<PathBuf>,
    /// A Loopfile or Tiltfile to compose, as Tilt's `-f` (may be repeated).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Vec<PathBuf>,
    /// The project root: nothing outside it is loaded or included (default: the
    /// nearest folder holding .git, .hg or .loop-root, else the file's folder).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// The profile that `profile(NAME)` in the Loopfiles tests for.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Arguments for config.parse().
    #[arg(last = true)]
    args: Vec<String>,
}

impl Files {
    /// The Loopfiles named with `-f` and as arguments, in that order.
    fn all(&self) -> Vec<PathBuf> {
        self.file.iter().chain(&self.loopfiles).cloned().collect()
    }

    /// What evaluation needs, for a Tilt subcommand name.
    fn options(&self, subcommand: &str, context: Option<String>) -> EvalOptions {
        EvalOptions {
            args: self.args.clone(),
            root: self.root.clone(),
            subcommand: subcommand.to_owned(),
            k8s_context: context,
            profile: self.profile.clone(),
            ..EvalOptions::default()
        }
    }
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
    crate::report::set_verbosity(match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    });
    let result = match cli.command {
        Command::Run {
            files,
            grace,
            debounce,
            context,
            no_cache,
            port,
            log_lines,
        } => Ok(crate::run::main(RunOptions {
            files: files.all(),
            args: files.args,
            root: files.root,
            mode: Mode::Run,
            timeout: Duration::MAX,
            grace,
            debounce,
            watch: true,
            context,
            no_cache,
            log_lines,
            port: Some(port),
            profile: files.profile,
        })),
        Command::Ci {
            files,
            timeout,
            grace,
            context,
            no_cache,
        } => Ok(crate::run::main(RunOptions {
            files: files.all(),
            args: files.args,
            root: files.root,
            mode: Mode::Ci,
            timeout,
            grace,
            debounce: Duration::from_millis(20),
            watch: false,
            context,
            no_cache,
            log_lines: crate::run::logs::DEFAULT_RING,
            port: None,
            profile: files.profile,
        })),
        Command::Down {
            files,
            delete_namespaces,
            context,
        } => down::run(
            &files.all(),
            &files.options("down", context.clone()),
            delete_namespaces,
            context,
        ),
        Command::Status { json, session } => {
            control::run(session.project, control::Verb::Status { json })
        }
        Command::Logs {
            names,
            follow,
            since,
            timestamps,
            session,
        } => control::run(
            session.project,
            control::Verb::Logs {
                names,
                follow,
                since,
                timestamps,
            },
        ),
        Command::Trigger { names, session } => control::run(
            session.project,
            control::Verb::Action {
                verb: "trigger",
                names,
            },
        ),
        Command::Enable { names, session } => control::run(
            session.project,
            control::Verb::Action {
                verb: "enable",
                names,
            },
        ),
        Command::Disable { names, session } => control::run(
            session.project,
            control::Verb::Action {
                verb: "disable",
                names,
            },
        ),
        Command::Wait {
            names,
            until,
            timeout,
            json,
            session,
        } => control::run(
            session.project,
            control::Verb::Wait {
                names,
                until,
                timeout,
                json,
            },
        ),
        Command::Args { args, session } => {
            control::run(session.project, control::Verb::Args { args })
        }
        Command::Mcp { session } => mcp::run(session.project),
        Command::Lsp { root, args } => crate::lsp::run(crate::lsp::Options { root, args }),
        Command::Docs {
            name,
            markdown,
            tilt,
        } => {
            if tilt {
                crate::report::out(&loop_stdlib::tilt_compat::markdown());
                Ok(ExitCode::SUCCESS)
            } else {
                docs::run(name, markdown)
            }
        }
        Command::Apply { file } => apply::run(&file),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "loop", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { files, strict } => check::run(
            &files.all(),
            &files.options(EVAL_ONLY_SUBCOMMAND, None),
            strict,
        ),
        Command::Render {
            files,
            out,
            no_build,
            check,
            labels,
            strict,
        } => render::run(
            &files.all(),
            &files.options("render", None),
            &render::Options {
                out,
                no_build,
                check,
                labels,
                strict,
            },
        ),
        Command::Graph { files, format } => graph::run(
            &files.all(),
            &files.options(EVAL_ONLY_SUBCOMMAND, None),
            format,
        ),
        Command::Affected {
            paths,
            loopfiles,
            file,
            root,
            profile,
            args,
        } => {
            let files = Files {
                loopfiles,
                file,
                root,
                profile,
                args,
            };
            affected::run(
                &paths,
                &files.all(),
                &files.options(EVAL_ONLY_SUBCOMMAND, None),
            )
        }
        Command::Watchdog { grace } => Ok(crate::process::watchdog::main(grace)),
        Command::Eval => Ok(crate::isolation::child_main()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            crate::report::error(&format!("{err:#}"));
            ExitCode::from(2)
        }
    }
}
