//! What an `oci_build` puts on its base image: the assembly (copy steps and
//! config settings, from `oci_build` or from a Dockerfile that needs no Docker)
//! and its layers, each one reproducible tar cached by the hash of its inputs.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use loop_lang::model::{Image, ImageKind, OciCopy};

use super::blobs::{blob_path, hex, store};
use super::context::{Context, Entry};
use super::dockerfile;
use crate::watch::listing;

/// What to put on the base image.
pub(crate) struct Assembly {
    pub base: String,
    pub layers: Vec<LayerInput>,
    pub edit: ConfigEdit,
}

/// The entries of one layer and its history line.
pub(crate) struct LayerInput {
    pub(super) items: Vec<Item>,
    pub history: String,
}

/// The image config settings a build sets.
#[derive(Default)]
pub(crate) struct ConfigEdit {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub expose: Vec<String>,
    pub labels: Vec<(String, String)>,
}

/// The assembly of an `oci_build`, or of a `docker_build` whose Dockerfile
/// needs no Docker ([`super::dockerfile`]).
pub(super) fn assemble(image: &Image, root: &Path) -> Result<Assembly, String> {
    match image.kind {
        ImageKind::Docker => {
            let text = match (&image.dockerfile_contents, &image.dockerfile) {
                (Some(text), _) => text.clone(),
                (None, Some(path)) => fs::read_to_string(root.join(path))
                    .map_err(|e| format!("the Dockerfile {path}: {e}"))?,
                (None, None) => return Err("no Dockerfile".to_owned()),
            };
            let plan = dockerfile::plan(&text, image.target.as_deref())?;
            let context = Context::new(image, root).map_err(|e| e.to_string())?;
            let entries = context.files().map_err(|e| e.to_string())?;
            let layers = plan
                .copies
                .iter()
                .map(|copy| {
                    Ok(LayerInput {
                        items: copy_items(copy, &entries)?,
                        history: format!("loop (no Docker): {}", copy.text),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Assembly {
                base: plan.base,
                layers,
                edit: ConfigEdit {
                    entrypoint: plan.entrypoint,
                    cmd: plan.cmd,
                    env: plan.env,
                    workdir: plan.workdir,
                    user: plan.user,
                    expose: plan.expose,
                    labels: plan.labels,
                },
            })
        }
        _ => {
            let base = image.base.clone().ok_or("oci_build has no base image")?;
            let layers = image
                .copies
                .iter()
                .map(|copy| {
                    Ok(LayerInput {
                        items: items(copy, root).map_err(|e| e.to_string())?,
                        history: format!("loop oci_build: copy {} to {}", copy.src, copy.dest),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Assembly {
                base,
                layers,
                edit: ConfigEdit {
                    entrypoint: image.image_entrypoint.clone(),
                    cmd: image.image_cmd.clone(),
                    env: image
                        .image_env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    workdir: image.workdir.clone(),
                    ..ConfigEdit::default()
                },
            })
        }
    }
}

/// The entries of one Dockerfile `COPY`, from the context's kept entries (so
/// `.dockerignore`, `ignore` and `only` apply as they do for Docker), with
/// their modes; missing parent folders of the destination are 0755.
fn copy_items(copy: &dockerfile::Copy, entries: &[Entry]) -> Result<Vec<Item>, String> {
    let dest = copy.dest.trim_start_matches('/');
    let mut out = Vec::new();
    let into = |rel: &str| -> String {
        let d = dest.trim_end_matches('/');
        if d.is_empty() {
            rel.to_owned()
        } else if rel.is_empty() {
            d.to_owned()
        } else {
            format!("{d}/{rel}")
        }
    };
    let item = |path: String, entry: &Entry| match entry {
        Entry::Dir { mode, .. } => Item::Dir(path, *mode),
        Entry::File {
            path: disk, mode, ..
        } => Item::File(path, disk.clone(), *mode),
        Entry::Symlink { target, .. } => Item::Symlink(path, target.clone()),
    };
    for src in &copy.srcs {
        let found = entries.iter().find(|e| e.rel() == src);
        let is_dir = src.is_empty() || matches!(found, Some(Entry::Dir { .. }));
        if is_dir {
            parents(dest.trim_end_matches('/'), true, &mut out);
            let prefix = if src.is_empty() {
                String::new()
            } else {
                format!("{src}/")
            };
            let mut any = src.is_empty() || found.is_some();
            for entry in entries.iter().filter(|e| e.rel().starts_with(&prefix)) {
                any = true;
                out.push(item(into(&entry.rel()[prefix.len()..]), entry));
            }
            if !any {
                return Err(format!("{}: {src} is not in the build context", copy.text));
            }
        } else {
            let entry = found.ok_or_else(|| {
                format!(
                    "{}: {src} is not in the build context (missing, or excluded by .dockerignore, ignore or only)",
                    copy.text
                )
            })?;
            let path = if dest.ends_with('/') || dest.is_empty() {
                let name = src.rsplit('/').next().unwrap_or(src);
                format!("{dest}{name}")
            } else {
                dest.to_owned()
            };
            if let Some((parent, _)) = path.rsplit_once('/') {
                parents(parent, true, &mut out);
            }
            out.push(item(path, entry));
        }
    }
    Ok(out)
}

/// Folder entries (0755) for `path` and each folder above it.
fn parents(path: &str, include_self: bool, out: &mut Vec<Item>) {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let upto = if include_self {
        parts.len()
    } else {
        parts.len().saturating_sub(1)
    };
    for i in 1..=upto {
        let dir = parts[..i].join("/");
        if !out
            .iter()
            .any(|it| matches!(it, Item::Dir(p, _) if *p == dir))
        {
            out.push(Item::Dir(dir, 0o755));
        }
    }
}

/// One layer: its digest (= diff id: it is not compressed), size and file.
pub(crate) struct Layer {
    pub digest: String,
    pub size: u64,
    pub path: PathBuf,
    pub cached: bool,
}

/// One entry of a layer: its path in the image, and its mode (and file).
pub(super) enum Item {
    Dir(String, u32),
    File(String, PathBuf, u32),
    Symlink(String, String),
}

fn file_mode(exec: bool) -> u32 {
    if exec {
        0o755
    } else {
        0o644
    }
}

pub(super) fn items(copy: &OciCopy, root: &Path) -> io::Result<Vec<Item>> {
    let src = root.join(&copy.src);
    let meta = fs::metadata(&src)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", src.display())))?;
    let dest = copy.dest.trim_start_matches('/').to_owned();
    let mut out = Vec::new();
    let parents = |path: &str, out: &mut Vec<Item>| parents(path, true, out);
    if meta.is_dir() {
        let dest = dest.trim_end_matches('/').to_owned();
        parents(&dest, &mut out);
        walk(&src, &dest, &mut out)?;
    } else {
        let path = if dest.ends_with('/') || dest.is_empty() {
            format!(
                "{}{}",
                dest,
                src.file_name().unwrap_or_default().to_string_lossy()
            )
        } else {
            dest
        };
        if let Some((parent, _)) = path.rsplit_once('/') {
            parents(parent, &mut out);
        }
        let exec = meta.permissions().mode() & 0o111 != 0;
        out.push(Item::File(path, src, file_mode(exec)));
    }
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<Item>) -> io::Result<()> {
    for entry in listing(dir)? {
        let name = entry.file_name();
        let path = entry.path();
        let rel = if prefix.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{prefix}/{}", name.to_string_lossy())
        };
        let meta = fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            out.push(Item::Symlink(
                rel,
                fs::read_link(&path)?.to_string_lossy().into_owned(),
            ));
        } else if meta.is_dir() {
            out.push(Item::Dir(rel.clone(), 0o755));
            walk(&path, &rel, out)?;
        } else if meta.is_file() {
            out.push(Item::File(
                rel,
                path,
                file_mode(meta.permissions().mode() & 0o111 != 0),
            ));
        }
    }
    Ok(())
}

/// The layer of these entries, from the cache when its inputs are unchanged.
pub(super) fn layer(items: &[Item], cache: &Path) -> io::Result<Layer> {
    // The input hash: every path, kind, mode and content.
    let mut h = blake3::Hasher::new();
    h.update(b"loop oci layer v2\0");
    for item in items {
        match item {
            Item::Dir(p, mode) => {
                h.update(b"d");
                h.update(&mode.to_le_bytes());
                h.update(p.as_bytes());
            }
            Item::Symlink(p, t) => {
                h.update(b"l");
                h.update(p.as_bytes());
                h.update(b"\0");
                h.update(t.as_bytes());
            }
            Item::File(p, path, mode) => {
                h.update(b"f");
                h.update(&mode.to_le_bytes());
                h.update(p.as_bytes());
                h.update(b"\0");
                h.update_reader(File::open(path)?)?;
            }
        }
        h.update(b"\0");
    }
    let key = h.finalize().to_hex().to_string();
    let index = cache.join("layers").join(&key);
    if let Ok(digest) = fs::read_to_string(&index) {
        let path = blob_path(cache, digest.trim());
        if let Ok(meta) = fs::metadata(&path) {
            return Ok(Layer {
                digest: digest.trim().to_owned(),
                size: meta.len(),
                path,
                cached: true,
            });
        }
    }
    // Write the tar, hashing it on the way.
    fs::create_dir_all(cache.join("blobs"))?;
    let tmp = cache
        .join("blobs")
        .join(format!("layer.{}.{key}.tmp", std::process::id()));
    let mut writer = HashingWriter {
        inner: io::BufWriter::new(File::create(&tmp)?),
        hash: ring::digest::Context::new(&ring::digest::SHA256),
        size: 0,
    };
    {
        let mut tar = tar::Builder::new(&mut writer);
        let header = |kind: tar::EntryType, mode: u32, size: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            h
        };
        for item in items {
            match item {
                Item::Dir(p, mode) => {
                    let mut hd = header(tar::EntryType::Directory, *mode, 0);
                    tar.append_data(&mut hd, format!("{p}/"), io::empty())?;
                }
                Item::Symlink(p, target) => {
                    let mut hd = header(tar::EntryType::Symlink, 0o777, 0);
                    tar.append_link(&mut hd, p, target)?;
                }
                Item::File(p, path, mode) => {
                    let mut file = File::open(path)?;
                    let size = file.metadata()?.len();
                    let mut hd = header(tar::EntryType::Regular, *mode, size);
                    tar.append_data(&mut hd, p, (&mut file).take(size))?;
                }
            }
        }
        tar.finish()?;
    }
    writer.inner.flush()?;
    let digest = format!("sha256:{}", hex(writer.hash.finish().as_ref()));
    let size = writer.size;
    let path = blob_path(cache, &digest);
    fs::rename(&tmp, &path)?;
    store(&index, digest.as_bytes())?;
    Ok(Layer {
        digest,
        size,
        path,
        cached: false,
    })
}

struct HashingWriter<W: Write> {
    inner: W,
    hash: ring::digest::Context,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
