//! Daemonless builds (`oci_build`): the image is a base image from a registry
//! plus one layer per copy step, assembled and pushed by `loop` itself.
//!
//! 1. The base manifest is read from its registry (an index is resolved to the
//!    `linux` manifest of this machine's architecture); its config blob is kept
//!    in `.loop/oci/blobs/`, by digest, and read from there next time.
//! 2. Each copy step becomes one uncompressed tar layer with sorted entries,
//!    mtime 0, owner 0:0 and modes 0644/0755 (from the executable bit), so the
//!    same inputs always give the same bytes. A layer is cached by the hash of
//!    its inputs (`.loop/oci/layers/`): an unchanged step costs a hash, no tar.
//! 3. The config is the base config with the new layers' diff ids and history
//!    appended, `Entrypoint`, `Cmd`, `Env` and `WorkingDir` applied and a fixed
//!    creation time; the manifest is an OCI image manifest.
//! 4. Only blobs the target repository lacks are sent (checked with HEAD); a
//!    base layer in the same registry is mounted from the base repository
//!    instead of being copied. Then the manifest is pushed, and the image is
//!    deployed by the digest of the manifest bytes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use loop_lang::model::{DefaultRegistry, Image};
use serde_json::{json, Value};

pub use super::blobs::sha256;
use super::blobs::{blob_path, store};
use super::oci_layers::{assemble, layer, Assembly, Layer};
use super::oci_registry::{Reference, RegistryClient, MANIFEST_TYPES};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(super) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// What a daemonless build did.
#[derive(Clone, Debug)]
pub struct OciOutcome {
    /// `host/repo:tag` as pushed.
    pub pushed: String,
    /// `sha256:…` of the manifest.
    pub digest: String,
    /// Blobs and their bytes sent to the registry (not counting mounted blobs
    /// and the manifest, which is always sent).
    pub blobs_pushed: usize,
    pub bytes_pushed: u64,
    /// Base layers mounted from the base repository.
    pub blobs_mounted: usize,
    /// Copy steps whose layer came from the cache.
    pub layers_cached: usize,
}

/// One blob of the image: its descriptor, and where its bytes are.
struct Blob {
    media_type: String,
    digest: String,
    size: u64,
    source: Source,
}

enum Source {
    /// In the base image's repository.
    Base,
    /// A file of the cache.
    File(PathBuf),
    /// In memory (config, manifest).
    Memory(Bytes),
}

/// Builds the image of `oci_build` `image` and pushes it as `tag` to
/// `registry` under `push_repo` (`host/repo`); `cache` is `.loop/oci`.
pub async fn build_and_push(
    image: &Image,
    root: &Path,
    push_repo: &str,
    tag: &str,
    registry: &DefaultRegistry,
    cache: &Path,
) -> Result<OciOutcome, String> {
    // What to assemble, and the layers, built (or taken from the cache) on a
    // blocking thread: it reads every file.
    let (assembly, layers) = {
        let (image, root, cache) = (image.clone(), root.to_owned(), cache.to_owned());
        tokio::task::spawn_blocking(move || -> Result<_, String> {
            let assembly = assemble(&image, &root)?;
            let layers = assembly
                .layers
                .iter()
                .map(|l| layer(&l.items, &cache))
                .collect::<io::Result<Vec<_>>>()
                .map_err(|e| format!("cannot write a layer: {e}"))?;
            Ok((assembly, layers))
        })
        .await
        .map_err(|e| e.to_string())??
    };
    let base_text = assembly.base.as_str();
    let base = Reference::parse(base_text)?;
    let client = RegistryClient::new();
    let (base_manifest, base_config) = read_base(&client, &base, cache).await?;
    let layers_cached = layers.iter().filter(|l| l.cached).count();

    let mut config: Value = serde_json::from_slice(&base_config)
        .map_err(|e| format!("the config of {base_text} is not JSON: {e}"))?;
    apply_config(&mut config, &assembly, &layers);
    let config_bytes = Bytes::from(serde_json::to_vec(&config).map_err(|e| e.to_string())?);

    let mut blobs: Vec<Blob> = Vec::new();
    for layer in base_manifest["layers"].as_array().into_iter().flatten() {
        blobs.push(Blob {
            media_type: oci_media_type(layer["mediaType"].as_str().unwrap_or(OCI_LAYER)),
            digest: layer["digest"].as_str().unwrap_or_default().to_owned(),
            size: layer["size"].as_u64().unwrap_or(0),
            source: Source::Base,
        });
    }
    for layer in &layers {
        blobs.push(Blob {
            media_type: OCI_LAYER.to_owned(),
            digest: layer.digest.clone(),
            size: layer.size,
            source: Source::File(layer.path.clone()),
        });
    }
    let config_blob = Blob {
        media_type: OCI_CONFIG.to_owned(),
        digest: sha256(&config_bytes),
        size: config_bytes.len() as u64,
        source: Source::Memory(config_bytes),
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_blob.media_type, "digest": config_blob.digest, "size": config_blob.size},
        "layers": blobs.iter().map(|b| json!({"mediaType": b.media_type, "digest": b.digest, "size": b.size})).collect::<Vec<_>>(),
    });
    let manifest_bytes = Bytes::from(serde_json::to_vec(&manifest).map_err(|e| e.to_string())?);
    let digest = sha256(&manifest_bytes);

    // Push what is missing, then the manifest.
    let repo = push_repo
        .strip_prefix(&format!("{}/", registry.host))
        .unwrap_or(push_repo);
    let target = Target {
        client: &client,
        host: &registry.host,
        repo,
        scope: format!("repository:{repo}:pull,push"),
    };
    let mut outcome = OciOutcome {
        pushed: format!("{push_repo}:{tag}"),
        digest: digest.clone(),
        blobs_pushed: 0,
        bytes_pushed: 0,
        blobs_mounted: 0,
        layers_cached,
    };
    blobs.push(config_blob);
    for blob in &blobs {
        if target.has(&blob.digest).await? {
            continue;
        }
        match &blob.source {
            Source::Base => {
                if base.host == registry.host && target.mount(&blob.digest, &base.repo).await? {
                    outcome.blobs_mounted += 1;
                    continue;
                }
                let bytes = get_blob(&client, &base, &blob.digest).await?;
                target.upload(&blob.digest, bytes).await?;
            }
            Source::File(path) => {
                let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                target.upload(&blob.digest, Bytes::from(bytes)).await?;
            }
            Source::Memory(bytes) => target.upload(&blob.digest, bytes.clone()).await?,
        }
        outcome.blobs_pushed += 1;
        outcome.bytes_pushed += blob.size;
    }
    let answer = client
        .send(
            Method::PUT,
            target.host,
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Content-Type", OCI_MANIFEST)],
            manifest_bytes.clone(),
            &target.scope,
        )
        .await?;
    if !answer.status.is_success() {
        return Err(refusal(
            "pushing the manifest",
            &answer.status,
            &answer.body,
        ));
    }
    Ok(outcome)
}

/// The repository blobs are pushed to.
struct Target<'a> {
    client: &'a RegistryClient,
    host: &'a str,
    repo: &'a str,
    scope: String,
}

impl Target<'_> {
    async fn has(&self, digest: &str) -> Result<bool, String> {
        let answer = self
            .client
            .send(
                Method::HEAD,
                self.host,
                &format!("/v2/{}/blobs/{digest}", self.repo),
                &[],
                Bytes::new(),
                &self.scope,
            )
            .await?;
        match answer.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(refusal(
                &format!("checking blob {digest}"),
                &s,
                &answer.body,
            )),
        }
    }

    /// Cross-repository mount; `false` when the registry wants an upload instead.
    async fn mount(&self, digest: &str, from: &str) -> Result<bool, String> {
        let answer = self
            .client
            .send(
                Method::POST,
                self.host,
                &format!(
                    "/v2/{}/blobs/uploads/?mount={digest}&from={from}",
                    self.repo
                ),
                &[],
                Bytes::new(),
                &format!("{},repository:{from}:pull", self.scope),
            )
            .await?;
        Ok(answer.status == StatusCode::CREATED)
    }

    /// A monolithic upload: POST for a session, PUT the bytes with the digest.
    async fn upload(&self, digest: &str, bytes: Bytes) -> Result<(), String> {
        let started = self
            .client
            .send(
                Method::POST,
                self.host,
                &format!("/v2/{}/blobs/uploads/", self.repo),
                &[],
                Bytes::new(),
                &self.scope,
            )
            .await?;
        if started.status != StatusCode::ACCEPTED {
            return Err(refusal(
                "starting an upload",
                &started.status,
                &started.body,
            ));
        }
        let location = started
            .location
            .ok_or("the registry started an upload without a Location")?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        let done = self
            .client
            .send(
                Method::PUT,
                self.host,
                &url,
                &[("Content-Type", "application/octet-stream")],
                bytes,
                &self.scope,
            )
            .await?;
        if done.status != StatusCode::CREATED {
            return Err(refusal(
                &format!("uploading {digest}"),
                &done.status,
                &done.body,
            ));
        }
        Ok(())
    }
}

fn refusal(what: &str, status: &StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("the registry refused {what} ({status})")
    } else {
        format!(
            "the registry refused {what} ({status}): {}",
            text.chars().take(300).collect::<String>()
        )
    }
}

/// The base manifest (an image manifest, not an index) and config bytes.
async fn read_base(
    client: &RegistryClient,
    base: &Reference,
    cache: &Path,
) -> Result<(Value, Bytes), String> {
    let scope = format!("repository:{}:pull", base.repo);
    let accept = MANIFEST_TYPES.join(", ");
    let mut reference = base.reference.clone();
    for _ in 0..2 {
        let answer = client
            .send(
                Method::GET,
                &base.host,
                &format!("/v2/{}/manifests/{reference}", base.repo),
                &[("Accept", &accept)],
                Bytes::new(),
                &scope,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(refusal(
                &format!(
                    "the base image {}/{}:{}",
                    base.host, base.repo, base.reference
                ),
                &answer.status,
                &answer.body,
            ));
        }
        let manifest: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("the manifest of the base image is not JSON: {e}"))?;
        if let Some(list) = manifest["manifests"].as_array() {
            let arch = match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            };
            let chosen = list
                .iter()
                .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch)
                .ok_or_else(|| format!("the base image has no linux/{arch} manifest"))?;
            reference = chosen["digest"].as_str().unwrap_or_default().to_owned();
            continue;
        }
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .ok_or("the base manifest has no config")?
            .to_owned();
        let cached = blob_path(cache, &config_digest);
        let config = match fs::read(&cached) {
            Ok(bytes) if sha256(&bytes) == config_digest => Bytes::from(bytes),
            _ => {
                let bytes = get_blob(client, base, &config_digest).await?;
                if sha256(&bytes) != config_digest {
                    return Err(format!(
                        "the base config does not match its digest {config_digest}"
                    ));
                }
                store(&cached, &bytes).map_err(|e| format!("{}: {e}", cached.display()))?;
                bytes
            }
        };
        return Ok((manifest, config));
    }
    Err("the base image's index points to another index".to_owned())
}

async fn get_blob(
    client: &RegistryClient,
    base: &Reference,
    digest: &str,
) -> Result<Bytes, String> {
    let answer = client
        .send(
            Method::GET,
            &base.host,
            &format!("/v2/{}/blobs/{digest}", base.repo),
            &[],
            Bytes::new(),
            &format!("repository:{}:pull", base.repo),
        )
        .await?;
    if !answer.status.is_success() {
        return Err(refusal(
            &format!("reading blob {digest}"),
            &answer.status,
            &answer.body,
        ));
    }
    Ok(answer.body)
}

/// Docker media types of layers, as OCI names the same bytes.
fn oci_media_type(docker: &str) -> String {
    match docker {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip".to_owned()
        }
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".to_owned()
        }
        other => other.to_owned(),
    }
}

/// Appends the layers to the base config and applies the image settings.
fn apply_config(config: &mut Value, assembly: &Assembly, layers: &[Layer]) {
    const EPOCH: &str = "1970-01-01T00:00:00Z";
    config["created"] = json!(EPOCH);
    if !config["rootfs"].is_object() {
        config["rootfs"] = json!({"type": "layers", "diff_ids": []});
    }
    if !config["rootfs"]["diff_ids"].is_array() {
        config["rootfs"]["diff_ids"] = json!([]);
    }
    if !config["history"].is_array() {
        config["history"] = json!([]);
    }
    for (layer, input) in layers.iter().zip(&assembly.layers) {
        if let Some(ids) = config["rootfs"]["diff_ids"].as_array_mut() {
            ids.push(json!(layer.digest));
        }
        if let Some(history) = config["history"].as_array_mut() {
            history.push(json!({"created": EPOCH, "created_by": input.history}));
        }
    }
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    let edit = &assembly.edit;
    let c = &mut config["config"];
    if let Some(entrypoint) = &edit.entrypoint {
        c["Entrypoint"] = json!(entrypoint);
    }
    if let Some(cmd) = &edit.cmd {
        c["Cmd"] = json!(cmd);
    } else if edit.entrypoint.is_some() {
        // As in a Dockerfile: a new ENTRYPOINT drops the base image's CMD.
        c["Cmd"] = Value::Null;
    }
    if let Some(dir) = &edit.workdir {
        c["WorkingDir"] = json!(dir);
    }
    if let Some(user) = &edit.user {
        c["User"] = json!(user);
    }
    if !edit.env.is_empty() {
        let mut env: Vec<String> = c["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for (key, value) in &edit.env {
            env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
            env.push(format!("{key}={value}"));
        }
        c["Env"] = json!(env);
    }
    for port in &edit.expose {
        if !c["ExposedPorts"].is_object() {
            c["ExposedPorts"] = json!({});
        }
        c["ExposedPorts"][port.as_str()] = json!({});
    }
    for (key, value) in &edit.labels {
        if !c["Labels"].is_object() {
            c["Labels"] = json!({});
        }
        c["Labels"][key.as_str()] = json!(value);
    }
}

#[cfg(test)]
mod tests {
    use super::super::oci_layers::{items, Item};
    use super::*;
    use loop_lang::model::OciCopy;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_layer_is_reproducible_and_cached_by_its_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        fs::create_dir_all(root.join("app/sub")).unwrap();
        fs::write(root.join("app/main.sh"), "echo hi\n").unwrap();
        fs::set_permissions(root.join("app/main.sh"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(root.join("app/sub/data.txt"), "x").unwrap();
        fs::create_dir_all(root.join("app/.git")).unwrap();
        fs::write(root.join("app/.git/HEAD"), "x").unwrap();
        let copy = OciCopy {
            src: "app".into(),
            dest: "/srv/app".into(),
        };
        let one = layer(&items(&copy, &root).unwrap(), &dir.path().join("c1")).unwrap();
        let two = layer(&items(&copy, &root).unwrap(), &dir.path().join("c2")).unwrap();
        assert_eq!(
            one.digest, two.digest,
            "the same bytes from the same inputs"
        );
        assert!(!one.cached);
        assert_eq!(sha256(&fs::read(&one.path).unwrap()), one.digest);
        let again = layer(&items(&copy, &root).unwrap(), &dir.path().join("c1")).unwrap();
        assert!(again.cached);
        // mtimes do not count; contents do.
        fs::write(root.join("app/sub/data.txt"), "x").unwrap();
        assert_eq!(
            layer(&items(&copy, &root).unwrap(), &dir.path().join("c3"))
                .unwrap()
                .digest,
            one.digest
        );
        fs::write(root.join("app/sub/data.txt"), "y").unwrap();
        assert_ne!(
            layer(&items(&copy, &root).unwrap(), &dir.path().join("c1"))
                .unwrap()
                .digest,
            one.digest
        );

        let bytes = fs::read(&one.path).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.mtime().unwrap(), 0);
            assert_eq!(h.uid().unwrap(), 0);
            seen.push((
                e.path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_owned(),
                h.mode().unwrap(),
            ));
        }
        assert_eq!(
            seen,
            [
                ("srv".to_owned(), 0o755),
                ("srv/app".to_owned(), 0o755),
                ("srv/app/main.sh".to_owned(), 0o755),
                ("srv/app/sub".to_owned(), 0o755),
                ("srv/app/sub/data.txt".to_owned(), 0o644),
            ]
        );
    }

    #[test]
    fn a_file_copied_to_a_folder_keeps_its_name() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("run.sh"), "x").unwrap();
        let copy = OciCopy {
            src: "run.sh".into(),
            dest: "/usr/local/bin/".into(),
        };
        let names: Vec<String> = items(&copy, dir.path())
            .unwrap()
            .into_iter()
            .map(|i| match i {
                Item::Dir(p, _) | Item::File(p, _, _) | Item::Symlink(p, _) => p,
            })
            .collect();
        assert_eq!(
            names,
            ["usr", "usr/local", "usr/local/bin", "usr/local/bin/run.sh"]
        );
    }
}
