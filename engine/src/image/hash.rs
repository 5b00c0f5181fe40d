//! The content hash of an image's inputs: its build definition and its files.
//! The files of a `docker_build` are exactly those of its build context
//! ([`super::context`]: `.dockerignore`, `ignore` and `only` applied); those of a
//! `custom_build` are every file under its `deps`, minus its `ignore` patterns.
//! The `.git` and `.loop` folders never count, nor do files that `.loopignore`
//! leaves out, nor (for a `custom_build`) gitignored ones: as for watching.
//!
//! The walk is sorted, so the hash depends only on what is on disk, never on the
//! order in which the file system lists folders. Files are streamed through the
//! hasher, never loaded whole. A file's path (root-relative, or absolute outside
//! the root), its type (file or symlink), its executable bit and its contents (or
//! a symlink's target) all count; timestamps and other permission bits do not.

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use loop_lang::model::{Image, ImageKind};

use super::context::{resolve, Context, Entry};
use crate::watch::{listing, Rules, ALWAYS_SKIPPED};
use std::sync::Mutex;

/// Bump when the hashed form changes, so old records stop matching.
const FORMAT: &str = "loop image inputs v2";

/// The hex content hash (64 characters) of `image`'s inputs; model paths are
/// resolved against the project `root`. A dep that does not exist counts as
/// "missing" (creating it changes the hash); an unreadable file is an error that
/// names it.
pub fn content_hash(image: &Image, root: &Path) -> io::Result<String> {
    let mut h = Framer::default();
    h.field("format", FORMAT);
    definition(&mut h, image, root)?;
    let mut inputs = BTreeMap::new();
    match image.kind {
        ImageKind::Docker => {
            let context = Context::new(image, root)?;
            for entry in context.files()? {
                let input = match entry {
                    Entry::Dir { .. } => continue,
                    Entry::Symlink { ref target, .. } => Input::Symlink(target.clone()),
                    Entry::File { ref path, mode, .. } => Input::File {
                        path: path.clone(),
                        exec: mode & 0o111 != 0,
                    },
                };
                inputs.insert(format!("context:{}", entry.rel()), input);
            }
            // A Dockerfile outside the context counts through its contents.
        }
        ImageKind::Custom | ImageKind::Oci | ImageKind::LiveUpdateOnly => {
            let ignore = Ignore::new(image, root)?;
            for dep in &image.deps {
                collect(&resolve(root, dep), root, &ignore, &mut inputs)?;
            }
        }
    }
    for (name, input) in &inputs {
        h.field("path", name);
        match input {
            Input::Missing => h.field("missing", ""),
            Input::Symlink(target) => h.field("symlink", target),
            Input::File { path, exec } => {
                h.field("exec", if *exec { "1" } else { "0" });
                h.field("contents", &file_digest(path)?);
            }
        }
    }
    Ok(h.0.finalize().to_hex().to_string())
}

/// The image tag for a content hash: `loop-` and the hash's first 16 hex digits.
pub fn tag(hash: &str) -> String {
    format!("loop-{}", &hash[..hash.len().min(16)])
}

/// Feeds length-prefixed, named fields to the hasher so that no two different
/// sequences of fields hash the same.
#[derive(Default)]
struct Framer(blake3::Hasher);

impl Framer {
    fn field(&mut self, name: &str, value: &str) {
        for part in [name, value] {
            self.0.update(&(part.len() as u64).to_le_bytes());
            self.0.update(part.as_bytes());
        }
    }
}

/// Hashes everything that decides what the build does, apart from the files.
fn definition(h: &mut Framer, image: &Image, root: &Path) -> io::Result<()> {
    h.field("ref", &image.image_ref);
    h.field(
        "kind",
        match image.kind {
            ImageKind::Docker => "docker",
            ImageKind::Custom => "custom",
            ImageKind::LiveUpdateOnly => "live_update_only",
            ImageKind::Oci => "oci",
        },
    );
    if let Some(command) = &image.command {
        for arg in command.argv() {
            h.field("command", &arg);
        }
    }
    h.field("command_dir", &image.command_dir);
    h.field("tag", image.tag.as_deref().unwrap_or_default());
    h.field("context", image.context.as_deref().unwrap_or_default());
    h.field("target", image.target.as_deref().unwrap_or_default());
    for (key, value) in &image.build_args {
        h.field("build_arg", key);
        h.field("build_arg_value", value);
    }
    for only in &image.only {
        h.field("only", only);
    }
    if let Some(contents) = &image.dockerfile_contents {
        h.field("dockerfile_inline", contents);
    }
    for tag in &image.extra_tags {
        h.field("extra_tag", tag);
    }
    h.field("platform", image.platform.as_deref().unwrap_or_default());
    h.field("network", image.network.as_deref().unwrap_or_default());
    for ssh in &image.ssh {
        h.field("ssh", ssh);
    }
    for secret in &image.secrets {
        h.field("secret", secret);
    }
    h.field("base", image.base.as_deref().unwrap_or_default());
    for copy in &image.copies {
        h.field("copy_src", &copy.src);
        h.field("copy_dest", &copy.dest);
    }
    for arg in image.image_entrypoint.iter().flatten() {
        h.field("image_entrypoint", arg);
    }
    for arg in image.image_cmd.iter().flatten() {
        h.field("image_cmd", arg);
    }
    for (key, value) in &image.image_env {
        h.field("image_env", key);
        h.field("image_env_value", value);
    }
    h.field("workdir", image.workdir.as_deref().unwrap_or_default());
    if let Some(dockerfile) = &image.dockerfile {
        h.field("dockerfile", dockerfile);
        // The Dockerfile may live outside the context; its contents always count.
        match file_digest(&resolve(root, dockerfile)) {
            Ok(digest) => h.field("dockerfile_contents", &digest),
            Err(e) if e.kind() == io::ErrorKind::NotFound => h.field("dockerfile_missing", ""),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One input of the build, keyed by its display path.
enum Input {
    Missing,
    Symlink(String),
    File { path: PathBuf, exec: bool },
}

/// An image's `ignore` patterns, relative to its context or command folder.
struct Ignore {
    base: PathBuf,
    matcher: Option<Gitignore>,
    /// The project's ignore files (`.gitignore`, `.loopignore`), which a
    /// custom_build's deps follow as watching does.
    ignore_files: Mutex<Rules>,
}

impl Ignore {
    fn new(image: &Image, root: &Path) -> io::Result<Ignore> {
        let base = resolve(
            root,
            match image.kind {
                ImageKind::Docker => image.context.as_deref().unwrap_or(&image.command_dir),
                ImageKind::Custom | ImageKind::LiveUpdateOnly | ImageKind::Oci => {
                    &image.command_dir
                }
            },
        );
        // A custom_build's deps follow the ignore files as watching does.
        let ignore_files = Mutex::new(Rules::for_image_inputs(root, &[], &image.watch_ignore));
        if image.ignore.is_empty() {
            return Ok(Ignore {
                base,
                matcher: None,
                ignore_files,
            });
        }
        let mut builder = GitignoreBuilder::new(&base);
        for pattern in &image.ignore {
            builder.add_line(None, pattern).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bad ignore pattern {pattern:?}: {e}"),
                )
            })?;
        }
        let matcher = builder
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Ignore {
            base,
            matcher: Some(matcher),
            ignore_files,
        })
    }

    /// Whether `path` itself is ignored (its parents are checked by the walk).
    fn matches(&self, path: &Path, is_dir: bool) -> bool {
        let by_image = self.matcher.as_ref().is_some_and(|matcher| {
            path != self.base
                && path.starts_with(&self.base)
                && matcher.matched(path, is_dir).is_ignore()
        });
        by_image
            || self
                .ignore_files
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_ignored(path, is_dir)
    }

    /// Whether `path` or any folder between it and the base is ignored.
    fn matches_with_parents(&self, path: &Path, is_dir: bool) -> bool {
        self.matches(path, is_dir)
            || path
                .ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(&self.base))
                .any(|a| self.matches(a, true))
    }
}

fn is_skipped(path: &Path) -> bool {
    path.components()
        .any(|c| ALWAYS_SKIPPED.iter().any(|s| c.as_os_str() == *s))
}

/// Adds the inputs under `path` (a dep: file or folder) to `inputs`.
fn collect(
    path: &Path,
    root: &Path,
    ignore: &Ignore,
    inputs: &mut BTreeMap<String, Input>,
) -> io::Result<()> {
    if is_skipped(path.strip_prefix(root).unwrap_or(path)) {
        return Ok(());
    }
    // A dep that is itself a symlink is followed: the user named it.
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            inputs.insert(display(path, root), Input::Missing);
            return Ok(());
        }
        Err(e) => return Err(with_path(e, path)),
    };
    if ignore.matches_with_parents(path, meta.is_dir()) {
        return Ok(());
    }
    if meta.is_dir() {
        walk(path, root, ignore, inputs)
    } else {
        add(path, &meta, root, inputs)
    }
}

/// Adds the inputs of a folder, in sorted order, without following symlinks.
fn walk(
    dir: &Path,
    root: &Path,
    ignore: &Ignore,
    inputs: &mut BTreeMap<String, Input>,
) -> io::Result<()> {
    for entry in listing(dir)? {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| with_path(e, &path))?;
        if ignore.matches(&path, meta.is_dir()) {
            continue;
        }
        if meta.is_dir() {
            walk(&path, root, ignore, inputs)?;
        } else {
            add(&path, &meta, root, inputs)?;
        }
    }
    Ok(())
}

/// Adds one file or symlink; sockets, fifos and devices are not build inputs.
fn add(
    path: &Path,
    meta: &Metadata,
    root: &Path,
    inputs: &mut BTreeMap<String, Input>,
) -> io::Result<()> {
    let input = if meta.file_type().is_symlink() {
        let target = fs::read_link(path).map_err(|e| with_path(e, path))?;
        Input::Symlink(target.to_string_lossy().into_owned())
    } else if meta.is_file() {
        Input::File {
            path: path.to_path_buf(),
            exec: meta.permissions().mode() & 0o111 != 0,
        }
    } else {
        return Ok(());
    };
    inputs.insert(display(path, root), input);
    Ok(())
}

/// The hex blake3 digest of a file's contents, streamed.
fn file_digest(path: &Path) -> io::Result<String> {
    let file = File::open(path).map_err(|e| with_path(e, path))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file).map_err(|e| with_path(e, path))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// A path as it enters the hash: root-relative with `/`, absolute outside the root.
fn display(path: &Path, root: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => path.to_string_lossy().into_owned(),
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
