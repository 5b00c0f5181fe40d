//! What `loop check` says about an open file, as LSP diagnostics.
//!
//! An open file is checked as part of its composition: the outermost
//! Loopfile/Tiltfile between the project root and the file whose evaluation
//! reaches it (else the file itself). The composition is evaluated and
//! validated by [`crate::load::try_load`], exactly as `loop check` does, with
//! every open buffer overriding the file on disk ([`loop_stdlib::Overlay`]).
//! Each diagnostic is published on the file it points into; a successful
//! evaluation also yields the resources for completion, hover and definition.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use loop_lang::Diagnostic;
use loop_stdlib::{EvalOptions, Overlay};
use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Position, Range,
    Uri,
};
use starlark_lsp::server::LspUri;

use crate::load::{evaluate, validate, DEFAULT_FILES};

/// A declared resource and where.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    pub name: String,
    pub kind: String,
    pub file: PathBuf,
    /// Zero-based range of the declaring call's first line.
    pub range: Range,
}

/// The result of checking one composition.
#[derive(Default)]
pub struct Outcome {
    /// Diagnostics by absolute file path.
    pub diagnostics: HashMap<PathBuf, Vec<lsp_types::Diagnostic>>,
    /// The resources, when evaluation succeeded (validation may still fail).
    pub resources: Option<Vec<ResourceInfo>>,
    /// Whether evaluation read `file` (display paths are root-relative).
    evaluated: Vec<PathBuf>,
}

impl Outcome {
    pub fn reached(&self, file: &Path) -> bool {
        self.evaluated.iter().any(|f| f == file)
    }
}

/// The `file://` URI of a path (None for a path that cannot be one).
pub fn uri_of(path: &Path) -> Option<Uri> {
    Uri::try_from(LspUri::File(path.to_owned())).ok()
}

/// The absolute, symlink-resolved path of a `file://` URI.
pub fn path_of(uri: &Uri) -> Option<PathBuf> {
    match LspUri::try_from(uri.clone()).ok()? {
        LspUri::File(path) => Some(loop_lang::project::canonical(&path).unwrap_or(path)),
        _ => None,
    }
}

/// Loopfiles that might compose `file`, outermost first, ending with `file`:
/// those in the folders above it up to the nearest holding a root marker
/// (`.git`, `.hg`, `.loop-root`), else up to `/`.
pub fn candidates(file: &Path, overlay: &Overlay) -> Vec<PathBuf> {
    let mut dirs: Vec<&Path> = Vec::new();
    for dir in file.ancestors().skip(1) {
        dirs.push(dir);
        if loop_lang::project::ROOT_MARKERS
            .iter()
            .any(|m| dir.join(m).exists())
        {
            break;
        }
    }
    dirs.reverse();
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let found = DEFAULT_FILES
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file() || overlay.contains_key(p));
        if let Some(found) = found.filter(|p| p != file) {
            out.push(found);
        }
    }
    out.push(file.to_owned());
    out
}

/// Checks the composition from `top` with the open buffers in `overlay`:
/// [`crate::load::try_load`]'s steps, keeping the resources of a composition
/// that evaluates but fails validation (a cycle, an unknown dependency).
pub fn check(top: &Path, overlay: &Overlay) -> Outcome {
    let options = EvalOptions {
        subcommand: loop_stdlib::EVAL_ONLY_SUBCOMMAND.to_owned(),
        overlay: overlay.clone(),
        root: super::options().root.clone(),
        args: super::options().args.clone(),
        no_fetch: true,
        ..EvalOptions::default()
    };
    let root = super::project_of(top)
        .map(|p| p.root)
        .unwrap_or_else(|_| top.parent().map(Path::to_path_buf).unwrap_or_default());
    let mut outcome = Outcome::default();
    let diagnostics = if !top.is_file() && !overlay.contains_key(top) {
        let message = format!("cannot read Loopfile {}: no such file", top.display());
        vec![Diagnostic::new(message)]
    } else {
        match evaluate(&[top.to_owned()], &options) {
            Err(failure) => {
                outcome.evaluated = files(&failure.sources, &root);
                vec![failure.diagnostic]
            }
            Ok(evaluation) => {
                outcome.evaluated = files(&evaluation.sources, &root);
                outcome.resources = Some(resources(&evaluation.manifest, &root));
                validate(&evaluation).err().unwrap_or_default()
            }
        }
    };
    for diag in &diagnostics {
        let (file, lsp) = convert(diag, &root, top);
        outcome.diagnostics.entry(file).or_default().push(lsp);
    }
    outcome
}

fn files(sources: &loop_lang::diag::SourceMap, root: &Path) -> Vec<PathBuf> {
    sources.files().map(|f| absolute(root, f)).collect()
}

fn absolute(root: &Path, display: &str) -> PathBuf {
    let path = Path::new(display);
    if path.is_absolute() {
        path.to_owned()
    } else {
        root.join(path)
    }
}

fn resources(manifest: &loop_lang::model::Manifest, root: &Path) -> Vec<ResourceInfo> {
    manifest
        .resources
        .iter()
        .map(|r| ResourceInfo {
            name: r.name.clone(),
            kind: serde_json::to_value(r.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            file: absolute(root, &r.defined_at.file),
            range: range_of(&r.defined_at),
        })
        .collect()
}

fn range_of(at: &loop_lang::location::Location) -> Range {
    let line = at.line.saturating_sub(1) as u32;
    let col = at.col.saturating_sub(1) as u32;
    Range::new(
        Position::new(line, col),
        Position::new(line, col + at.width as u32),
    )
}

/// One diagnostic, on the file it points into (the top-level file when it
/// points nowhere): the message, notes and help as `loop check` prints them,
/// and the other highlighted places as related information.
pub fn convert(
    diag: &Diagnostic,
    root: &Path,
    fallback: &Path,
) -> (PathBuf, lsp_types::Diagnostic) {
    let (file, range) = match diag.location() {
        Some(at) if !at.file.is_empty() => (absolute(root, &at.file), range_of(at)),
        _ => (fallback.to_owned(), Range::default()),
    };
    let mut message = diag.message.clone();
    for note in &diag.notes {
        message.push_str(&format!("\nnote: {note}"));
    }
    if let Some(help) = &diag.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = diag
        .labels
        .iter()
        .skip(1)
        .chain(diag.labels.first().filter(|l| !l.text.is_empty()))
        .filter_map(|label| {
            Some(DiagnosticRelatedInformation {
                location: Location::new(
                    uri_of(&absolute(root, &label.at.file))?,
                    range_of(&label.at),
                ),
                message: if label.text.is_empty() {
                    "here".to_owned()
                } else {
                    label.text.clone()
                },
            })
        })
        .collect();
    let lsp = lsp_types::Diagnostic {
        range,
        severity: Some(DiagnosticSeverity::ERROR),
        code: None::<NumberOrString>,
        source: Some("loop".to_owned()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..lsp_types::Diagnostic::default()
    };
    (file, lsp)
}
