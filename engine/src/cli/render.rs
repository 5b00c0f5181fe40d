//! `loop render`: the Kubernetes objects of the Loopfiles as plain YAML, ready
//! for GitOps: dev-only parts left out (and listed), every built image pinned by
//! digest, the policy rules applied, and `loop.lock.json` written; `--check`
//! compares with the lock instead and exits 1 on drift.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use loop_lang::model::Image;
use loop_stdlib::EvalOptions;

use crate::load::load;
use crate::release::lock::{self, Lock, LockedImage};
use crate::release::{lint, render};
use crate::report;

/// The flags of `loop render`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--out DIR` (one file per object) or `-`/none (stdout).
    pub out: Option<PathBuf>,
    /// Pin images from the lock instead of building and pushing them.
    pub no_build: bool,
    /// Compare with the lock, write nothing.
    pub check: bool,
    /// Keep `loop`'s ownership labels.
    pub labels: bool,
    /// Policy findings are errors.
    pub strict: bool,
}

pub fn run(files: &[PathBuf], eval: &EvalOptions, options: &Options) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(files, eval) else {
        return Ok(ExitCode::FAILURE);
    };
    // A refusal (a stale lock, no registry, a push that failed) exits 1.
    Ok(render(&loaded, eval, options).unwrap_or_else(|e| {
        report::error(&e);
        ExitCode::FAILURE
    }))
}

fn render(
    loaded: &crate::load::Loaded,
    eval: &EvalOptions,
    options: &Options,
) -> Result<ExitCode, String> {
    let evaluation = &loaded.evaluation;
    let manifest = &evaluation.manifest;
    let root = &evaluation.project.root;
    // Renders that differ only in `--labels` are recorded apart.
    let profile = format!(
        "{}{}",
        eval.profile.as_deref().unwrap_or(lock::NO_PROFILE),
        if options.labels { "+labels" } else { "" }
    );
    let profile = profile.as_str();
    let shipped = render::shipped(manifest, &loaded.graph);
    for line in &shipped.stripped {
        report::stderr_line(&format!("[render] left out: {line}"));
    }
    if !lint_passes(evaluation, &shipped, options.strict) {
        return Ok(ExitCode::FAILURE);
    }
    let images = images_shipped(manifest, &shipped);
    let lock = lock::read(root)?;
    // The hash of each image's inputs: from its build when it is pushed now.
    let (pins, inputs) = if options.check || options.no_build {
        let mut inputs = BTreeMap::new();
        for image in &images {
            let hash = crate::image::content_hash(image, root)
                .map_err(|e| format!("image {}: cannot hash its inputs: {e}", image.image_ref))?;
            inputs.insert(image.image_ref.clone(), hash);
        }
        (
            pins_from_lock(lock.as_ref(), &inputs, options.check)?,
            inputs,
        )
    } else {
        let pushed = crate::release::push::pin(&images, root, manifest)?;
        let pins = pushed
            .iter()
            .map(|(i, p)| (i.clone(), p.pushed.clone()))
            .collect();
        let inputs = pushed.into_iter().map(|(i, p)| (i, p.inputs)).collect();
        (pins, inputs)
    };
    let project = crate::k8s::owner::project_id(root);
    let labels = options.labels.then_some(project.as_str());
    let documents = render::documents(manifest, &shipped, &pins, labels)?;
    let hashes: BTreeMap<String, (String, String)> = documents
        .iter()
        .map(|d| {
            (
                d.key.clone(),
                (lock::hash(&d.yaml), d.defined_at.to_string()),
            )
        })
        .collect();
    if options.check {
        return Ok(check(lock.as_ref(), profile, &hashes, &inputs, root));
    }
    write_output(options.out.as_deref(), &documents)?;
    let mut lock = lock.unwrap_or_else(Lock::new);
    for (image, pushed) in &pins {
        lock.images.insert(
            image.clone(),
            LockedImage {
                inputs: inputs[image].clone(),
                pushed: pushed.clone(),
            },
        );
    }
    lock.renders.insert(
        profile.to_owned(),
        hashes.into_iter().map(|(k, (h, _))| (k, h)).collect(),
    );
    lock::write(root, &lock)?;
    report::stderr_line(&format!(
        "[render] {} object(s), {} image(s) pinned; {} updated",
        documents.len(),
        pins.len(),
        lock::FILE
    ));
    Ok(ExitCode::SUCCESS)
}

/// Applies the policy rules to the objects that ship and prints what they
/// find; false when `--strict` makes the findings errors.
pub fn lint_passes(
    evaluation: &loop_stdlib::Evaluation,
    shipped: &render::Shipped,
    strict: bool,
) -> bool {
    let objects: Vec<_> = shipped.objects.iter().map(|(_, o)| *o).collect();
    let findings = lint::lint(&evaluation.manifest, &objects);
    for mut finding in findings.iter().cloned() {
        finding.warning = !strict;
        report::diagnostic(&finding, &evaluation.sources);
    }
    !strict || findings.is_empty()
}

/// The images that the shipped objects use.
fn images_shipped<'a>(
    manifest: &'a loop_lang::Manifest,
    shipped: &render::Shipped,
) -> Vec<&'a Image> {
    manifest
        .images
        .iter()
        .filter(|image| {
            shipped
                .objects
                .iter()
                .any(|(resource, _)| resource.images.contains(&image.image_ref))
        })
        .collect()
}

/// Pins from the lock: every image must be there, with the same inputs (under
/// `--check`, a difference is drift, reported later, not an error).
fn pins_from_lock(
    lock: Option<&Lock>,
    inputs: &BTreeMap<String, String>,
    check: bool,
) -> Result<BTreeMap<String, String>, String> {
    let mut pins = BTreeMap::new();
    for (image, hash) in inputs {
        let locked = lock.and_then(|l| l.images.get(image));
        match locked {
            Some(locked) if check || &locked.inputs == hash => {
                pins.insert(image.clone(), locked.pushed.clone());
            }
            Some(locked) => {
                return Err(format!(
                    "image {image}: its inputs changed since it was pushed as {}; run `loop render` without --no-build to build and push it",
                    locked.pushed
                ))
            }
            None if check => {}
            None => {
                return Err(format!(
                    "image {image} is not in {}; run `loop render` without --no-build to build and push it",
                    lock::FILE
                ))
            }
        }
    }
    Ok(pins)
}

fn check(
    lock: Option<&Lock>,
    profile: &str,
    hashes: &BTreeMap<String, (String, String)>,
    inputs: &BTreeMap<String, String>,
    root: &Path,
) -> ExitCode {
    let Some(lock) = lock else {
        report::error(&format!(
            "{} has no {}; run `loop render` to write it",
            root.display(),
            lock::FILE
        ));
        return ExitCode::FAILURE;
    };
    let drift = lock::drift(lock, profile, hashes, inputs);
    if drift.is_empty() {
        report::stderr_line(&format!(
            "[render] {} matches: {} object(s), {} image(s)",
            lock::FILE,
            hashes.len(),
            inputs.len()
        ));
        return ExitCode::SUCCESS;
    }
    report::error(&format!(
        "the rendered output differs from {} (profile {profile}):\n  {}",
        lock::FILE,
        drift.join("\n  ")
    ));
    ExitCode::FAILURE
}

/// Writes the documents to stdout, or one file each under a folder (replacing
/// the files an earlier render wrote there, and only those).
fn write_output(out: Option<&Path>, documents: &[render::Document]) -> Result<(), String> {
    let dir = match out {
        None => None,
        Some(p) if p == Path::new("-") => None,
        Some(p) => Some(p),
    };
    let Some(dir) = dir else {
        report::out(&render::stream(documents));
        return Ok(());
    };
    let failed = |what: &str, path: &Path, e: std::io::Error| {
        format!("cannot {what} {}: {e}", path.display())
    };
    std::fs::create_dir_all(dir).map_err(|e| failed("create", dir, e))?;
    let entries = std::fs::read_dir(dir).map_err(|e| failed("list", dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if render::is_rendered_file(&path) {
            std::fs::remove_file(&path).map_err(|e| failed("remove", &path, e))?;
        }
    }
    for (i, doc) in documents.iter().enumerate() {
        let path = dir.join(render::file_name(i, documents.len(), &doc.key));
        let text = format!("{}\n{}", render::MARKER, doc.yaml);
        std::fs::write(&path, text).map_err(|e| failed("write", &path, e))?;
    }
    Ok(())
}
