//! Loading and evaluating Loopfiles and the modules they `load()`.
//!
//! Loading happens in two phases, as in Buck2: a file is parsed, the modules named
//! by its `load()` statements are evaluated first (each once, cached frozen, with a
//! cycle guard that prints the chain), then the file itself is evaluated with a
//! loader that only hands out those frozen modules. `include()` evaluates another
//! Loopfile the same way, in its own folder, into the same collection of
//! declarations. Every file an evaluation touches is recorded, so a change to any
//! of them can re-evaluate exactly the Loopfiles that depend on it.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use starlark::any::ProvidesStaticType;
use starlark::environment::{FrozenModule, Globals, Module};
use starlark::eval::{BeforeStmtFunc, Evaluator, ReturnFileLoader};
use starlark::syntax::{AstModule, Dialect, DialectTypes};
use starlark::PrintHandler;

use crate::diag::{Diagnostic, SourceMap};
use crate::limits::{Budget, Limits};
use crate::location::Location;
use crate::model::LoopfileInfo;
use crate::nesting;
use crate::project::Project;

/// The Starlark dialect of Loopfiles: Bazel/Tilt Starlark with type annotations.
pub fn dialect() -> Dialect {
    Dialect {
        enable_types: DialectTypes::Enable,
        enable_f_strings: true,
        ..Dialect::Extended
    }
}

/// Marker for a failed evaluation; the diagnostic is stored in the [`Loader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed;

/// A line logged by `print()` or `warn()` during evaluation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub file: String,
    pub warning: bool,
    pub text: String,
}

/// What the built-ins see of the file being evaluated (through `Evaluator::extra`).
#[derive(ProvidesStaticType)]
pub struct EvalEnv<'a> {
    pub loader: &'a Loader,
    /// The file whose top level is being evaluated.
    pub file: PathBuf,
    /// Its folder: relative paths given to built-ins resolve against it.
    pub dir: PathBuf,
}

impl<'a> EvalEnv<'a> {
    /// The environment of a running evaluation.
    pub fn of<'e>(eval: &Evaluator<'_, 'e, '_>) -> anyhow::Result<&'e EvalEnv<'e>> {
        eval.extra
            .and_then(|extra| extra.downcast_ref::<EvalEnv>())
            .ok_or_else(|| {
                anyhow::anyhow!("internal error: built-in called outside a Loopfile evaluation")
            })
    }

    /// A built-in's path argument, resolved against this file's folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        self.loader.project.resolve_path(&self.dir, path)
    }

    /// A path as users see it (root-relative).
    pub fn display(&self, path: &Path) -> String {
        self.loader.project.display(path)
    }
}

/// Finds an `ext://NAME` extension that the extension folders lack (the
/// built-ins fetch it from its repository): `(loader, NAME, the file that
/// loads it)` gives the file to load, or why there is none.
pub type ExtensionResolver = fn(&Loader, &str, &Path) -> Result<PathBuf, String>;

/// Evaluates Loopfiles and modules; one per evaluation of a composed graph.
pub struct Loader {
    pub project: Project,
    globals: Globals,
    dialect: Dialect,
    /// The built-ins' own state (stdlib's declarations), reached through [`Loader::state`].
    state: Box<dyn Any>,
    modules: RefCell<HashMap<PathBuf, FrozenModule>>,
    /// Files being evaluated, outermost first: the cycle guard.
    stack: RefCell<Vec<PathBuf>>,
    /// The files of `stack`, for a lookup that does not grow with the depth of a
    /// load chain (30,000 deep is evaluated in seconds).
    on_stack: RefCell<HashSet<PathBuf>>,
    /// Loopfiles evaluated, in order, and the same as a set.
    loopfiles: RefCell<Vec<PathBuf>>,
    loopfile_set: RefCell<HashSet<PathBuf>>,
    /// file -> files its evaluation loaded, read or watched.
    reads: RefCell<BTreeMap<PathBuf, BTreeSet<PathBuf>>>,
    sources: RefCell<SourceMap>,
    failure: RefCell<Option<Diagnostic>>,
    log: RefCell<Vec<LogLine>>,
    /// `exit()` was called: evaluation stops, successfully.
    exited: std::cell::Cell<bool>,
    limits: Limits,
    /// Statements run so far, by every file (see [`Limits`]).
    steps: Rc<std::cell::Cell<u64>>,
    /// Texts evaluated instead of the files on disk (unsaved editor buffers).
    overlay: Arc<HashMap<PathBuf, String>>,
    extension_resolver: Option<ExtensionResolver>,
}

/// What a finished evaluation leaves besides the built-ins' state.
pub struct LoadReport {
    pub loopfiles: Vec<LoopfileInfo>,
    pub watched_files: Vec<String>,
    pub sources: SourceMap,
    pub log: Vec<LogLine>,
}

impl Loader {
    pub fn new(project: Project, globals: Globals, state: Box<dyn Any>) -> Loader {
        Loader {
            project,
            globals,
            dialect: dialect(),
            state,
            modules: RefCell::default(),
            stack: RefCell::default(),
            on_stack: RefCell::default(),
            loopfiles: RefCell::default(),
            loopfile_set: RefCell::default(),
            reads: RefCell::default(),
            sources: RefCell::default(),
            failure: RefCell::default(),
            log: RefCell::default(),
            exited: std::cell::Cell::new(false),
            limits: Limits::from_env(),
            steps: Rc::default(),
            overlay: Arc::default(),
            extension_resolver: None,
        }
    }

    /// Resolves `ext://` extensions missing from the extension folders with `resolver`.
    pub fn with_extension_resolver(mut self, resolver: ExtensionResolver) -> Loader {
        self.extension_resolver = Some(resolver);
        self
    }

    /// Resolves a `load()`/`include()` argument of `from` (in folder `dir`), as
    /// [`Project::resolve_module`] does; an `ext://` extension missing from
    /// the extension folders goes to the extension resolver.
    pub fn resolve_module(&self, dir: &Path, from: &Path, spec: &str) -> Result<PathBuf, String> {
        let local = self.project.resolve_module(dir, spec);
        match (local, spec.strip_prefix("ext://"), self.extension_resolver) {
            (Err(why), Some(name), Some(resolve)) if why.contains("was not found") => {
                resolve(self, name, from).map_err(|e| {
                    let dirs: Vec<String> = self
                        .project
                        .extension_dirs
                        .iter()
                        .map(|d| format!("{}/", self.project.display(d)))
                        .collect();
                    format!("{e} (nor is it in {})", dirs.join(", "))
                })
            }
            (result, _, _) => result,
        }
    }

    /// Evaluates these texts instead of the files at their (absolute) paths.
    pub fn with_overlay(mut self, overlay: Arc<HashMap<PathBuf, String>>) -> Loader {
        self.overlay = overlay;
        self
    }

    /// The built-ins' state, as given to [`Loader::new`].
    pub fn state<T: 'static>(&self) -> &T {
        self.state
            .downcast_ref::<T>()
            .expect("loader state has the type the stdlib created")
    }

    /// Evaluates a Loopfile into the shared declarations. A Loopfile already
    /// evaluated (included twice, or named twice) is not evaluated again.
    pub fn eval_loopfile(
        &self,
        path: &Path,
        requested_at: Option<&Location>,
    ) -> Result<(), Failed> {
        let on_stack = self.on_stack.borrow().contains(path);
        if !on_stack && !self.loopfile_set.borrow_mut().insert(path.to_owned()) {
            return Ok(());
        }
        if !on_stack {
            self.loopfiles.borrow_mut().push(path.to_owned());
        }
        self.evaluate(path, requested_at, "include")
            .map(drop)
            .inspect_err(|_| {
                if let Some(at) = requested_at {
                    self.add_note(
                        at,
                        format!("in {}, included from {at}", self.project.display(path)),
                    );
                }
            })
    }

    /// Evaluates a module for `load()` (cached: each file is evaluated once).
    pub fn load_module(
        &self,
        path: &Path,
        requested_at: &Location,
    ) -> Result<FrozenModule, Failed> {
        if let Some(module) = self.modules.borrow().get(path) {
            return Ok(module.clone());
        }
        self.evaluate(path, Some(requested_at), "load")
            .inspect_err(|_| {
                self.add_note(
                    requested_at,
                    format!(
                        "in {}, loaded from {requested_at}",
                        self.project.display(path)
                    ),
                );
            })
    }

    /// Records that evaluating `reader` depended on `path` (a read or watched file).
    pub fn record_read(&self, reader: &Path, path: &Path) {
        self.reads
            .borrow_mut()
            .entry(reader.to_owned())
            .or_default()
            .insert(path.to_owned());
    }

    /// Stores a diagnostic as the failure of this evaluation (the first one wins:
    /// it is the innermost) and returns the marker.
    pub fn fail(&self, diag: Diagnostic) -> Failed {
        let mut failure = self.failure.borrow_mut();
        if failure.is_none() {
            *failure = Some(diag);
        }
        Failed
    }

    /// Stops the evaluation successfully (Tilt's `exit()`): the built-in then
    /// returns an error that unwinds every file being evaluated, and no failure
    /// is recorded for it.
    pub fn request_exit(&self) {
        self.exited.set(true);
    }

    /// Whether `exit()` stopped the evaluation.
    pub fn exited(&self) -> bool {
        self.exited.get()
    }

    /// The frozen module of a file evaluated so far.
    pub fn module(&self, path: &Path) -> Option<FrozenModule> {
        self.modules.borrow().get(path).cloned()
    }

    /// The stored failure, if any.
    pub fn take_failure(&self) -> Option<Diagnostic> {
        self.failure.borrow_mut().take()
    }

    pub fn has_failed(&self) -> bool {
        self.failure.borrow().is_some()
    }

    /// Adds the load/include chain to the failure, unless the failure already
    /// points at that request.
    fn add_note(&self, requested_at: &Location, note: String) {
        if let Some(diag) = self.failure.borrow_mut().as_mut() {
            if diag.location() != Some(requested_at) {
                diag.notes.push(note);
            }
        }
    }

    /// Adds a line to the evaluation log (`print`, `warn`, `local` output).
    pub fn log(&self, file: &Path, warning: bool, text: String) {
        let file = self.project.display(file);
        self.log.borrow_mut().push(LogLine {
            file,
            warning,
            text,
        });
    }

    /// The sources of every file evaluated so far.
    pub fn sources(&self) -> SourceMap {
        self.sources.borrow().clone()
    }

    fn evaluate(
        &self,
        path: &Path,
        requested_at: Option<&Location>,
        verb: &str,
    ) -> Result<FrozenModule, Failed> {
        let display = self.project.display(path);
        let cycle = self.on_stack.borrow().contains(path);
        if let Some(start) = cycle
            .then(|| self.stack.borrow().iter().position(|p| p == path))
            .flatten()
        {
            let chain: Vec<String> = self.stack.borrow()[start..]
                .iter()
                .map(|p| self.project.display(p))
                .collect();
            return Err(self.fail(
                Diagnostic::new(format!("{verb} cycle: {} -> {display}", chain.join(" -> ")))
                    .at_opt(requested_at.cloned(), "this closes the cycle")
                    .help("move what both files need into a third module that neither loads"),
            ));
        }
        let read = match self.overlay.get(path) {
            Some(text) => Ok(text.clone()),
            None => crate::project::read_text(path),
        };
        let source = match read {
            Ok(source) => source,
            Err(err) => {
                let what = if err.kind() == std::io::ErrorKind::NotFound {
                    "no such file".to_owned()
                } else {
                    err.to_string()
                };
                let mut diag = Diagnostic::new(format!("cannot {verb} `{display}`: {what}"))
                    .at_opt(requested_at.cloned(), "requested here");
                if requested_at.is_some() {
                    diag = diag.help(
                        "paths are relative to the file that asks; `//` starts at the project root",
                    );
                }
                return Err(self.fail(diag));
            }
        };
        // Tabs as Tilt's Starlark reads them (see `tabs`).
        let source: Arc<str> = crate::tabs::expand(&source).unwrap_or(source).into();
        self.sources.borrow_mut().insert(&display, source.clone());
        if let Err(problem) = nesting::check(&source) {
            let at = nesting_location(&display, problem.position());
            return Err(self.fail(Diagnostic::new(problem.message()).at(at, "too deep here")));
        }
        // `while` loops as Tilt's Starlark runs them (see `while_loops`).
        let (text, map) = match crate::while_loops::rewrite(&source) {
            Some(rewritten) => (rewritten.text, Some(rewritten.map)),
            None => (source.to_string(), None),
        };
        let ast = match AstModule::parse(&display, text, &self.dialect) {
            Ok(ast) => ast,
            Err(e) => {
                let mut diag = Diagnostic::from_starlark(&e);
                if let Some(map) = &map {
                    // The parser saw the rewritten text: positions as written.
                    for label in diag.labels.iter_mut().filter(|l| l.at.file == display) {
                        let (line, col) = map.original(label.at.line - 1, label.at.col - 1);
                        (label.at.line, label.at.col) = (line + 1, col + 1);
                    }
                }
                return Err(self.fail(parse_failure(diag, &display, &source)));
            }
        };
        if let Some(map) = map {
            let codemap = ast.file_span(Default::default()).file;
            crate::while_loops::remember(codemap, map, source.clone());
        }
        self.stack.borrow_mut().push(path.to_owned());
        self.on_stack.borrow_mut().insert(path.to_owned());
        let result = self.evaluate_ast(path, &display, ast);
        self.on_stack.borrow_mut().remove(path);
        self.stack.borrow_mut().pop();
        let module = result?;
        self.modules
            .borrow_mut()
            .insert(path.to_owned(), module.clone());
        Ok(module)
    }

    fn evaluate_ast(
        &self,
        path: &Path,
        display: &str,
        ast: AstModule,
    ) -> Result<FrozenModule, Failed> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut loaded: Vec<(String, FrozenModule)> = Vec::new();
        for load in ast.loads() {
            let at = Location::from_span(&load.span);
            let target = self
                .resolve_module(&dir, path, load.module_id)
                .map_err(|msg| {
                    self.fail(
                        Diagnostic::new(format!("cannot load `{}`: {msg}", load.module_id))
                            .at(at.clone(), ""),
                    )
                })?;
            self.record_read(path, &target);
            loaded.push((load.module_id.to_owned(), self.load_module(&target, &at)?));
        }
        let modules: HashMap<&str, &FrozenModule> =
            loaded.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let file_loader = ReturnFileLoader { modules: &modules };
        let env = EvalEnv {
            loader: self,
            file: path.to_owned(),
            dir,
        };
        let printer = LogPrinter {
            loader: self,
            file: display.to_owned(),
        };
        Module::with_temp_heap(|module| {
            // Tilt's `__file__`: the absolute path of the file being evaluated.
            module.set(
                "__file__",
                module.heap().alloc(path.to_string_lossy().as_ref()),
            );
            module.set(
                crate::while_loops::FOREVER,
                module.heap().alloc(crate::while_loops::Forever),
            );
            let result = {
                let mut eval = Evaluator::new(&module);
                eval.set_loader(&file_loader);
                eval.set_print_handler(&printer);
                eval.extra = Some(&env);
                eval.before_stmt_for_dap(BeforeStmtFunc::from_dyn(Box::new(Budget {
                    limits: self.limits,
                    steps: self.steps.clone(),
                })));
                crate::current::enter_file(&ast.file_span(Default::default()).file);
                eval.eval_module(ast, &self.globals)
            };
            match result {
                Err(_) if self.exited.get() => {
                    // Keep what the file defined (a naming function, say).
                    if let Ok(frozen) = module.freeze() {
                        self.modules.borrow_mut().insert(path.to_owned(), frozen);
                    }
                    Err(Failed)
                }
                Err(err) => Err(self.fail(Diagnostic::from_starlark(&err))),
                Ok(_) => module.freeze().map_err(|err| {
                    self.fail(Diagnostic::new(format!("cannot freeze {display}: {err:?}")))
                }),
            }
        })
    }

    /// The files each Loopfile depends on, and all watched files.
    pub fn finish(self) -> (Box<dyn Any>, LoadReport) {
        let reads = self.reads.into_inner();
        let loopfiles = self.loopfiles.into_inner();
        let mut watched = BTreeSet::new();
        let infos = loopfiles
            .iter()
            .map(|lf| {
                let mut seen = BTreeSet::from([lf.clone()]);
                let mut todo = vec![lf.clone()];
                while let Some(file) = todo.pop() {
                    for next in reads.get(&file).into_iter().flatten() {
                        if seen.insert(next.clone()) {
                            todo.push(next.clone());
                        }
                    }
                }
                watched.extend(seen.iter().cloned());
                LoopfileInfo {
                    path: self.project.display(lf),
                    depends_on: seen.iter().map(|p| self.project.display(p)).collect(),
                }
            })
            .collect();
        let report = LoadReport {
            loopfiles: infos,
            watched_files: watched.iter().map(|p| self.project.display(p)).collect(),
            sources: self.sources.into_inner(),
            log: self.log.into_inner(),
        };
        (self.state, report)
    }
}

/// Sends `print()` to the evaluation log instead of stdout.
struct LogPrinter<'a> {
    loader: &'a Loader,
    file: String,
}

impl PrintHandler for LogPrinter<'_> {
    fn println(&self, text: &str) -> starlark::Result<()> {
        let line = LogLine {
            file: self.file.clone(),
            warning: false,
            text: text.to_owned(),
        };
        self.loader.log.borrow_mut().push(line);
        Ok(())
    }
}

fn nesting_location(file: &str, at: nesting::Position) -> Location {
    Location {
        file: file.to_owned(),
        line: at.line,
        col: at.col,
        width: 1,
    }
}

/// A parse error; one at the end of the text caused by a bracket never closed
/// points at that bracket, not past the last line.
fn parse_failure(diag: Diagnostic, file: &str, source: &str) -> Diagnostic {
    let at_end = diag
        .location()
        .is_none_or(|at| at.line >= source.lines().count());
    match nesting::unclosed_bracket(source) {
        Some((at, bracket)) if at_end => Diagnostic::new(format!("`{bracket}` is never closed"))
            .at(nesting_location(file, at), "opened here")
            .note(match diag.location() {
                Some(stop) => format!("the parser stopped at {stop}: {}", diag.message),
                None => format!("the parser stopped: {}", diag.message),
            }),
        _ => diag,
    }
}
