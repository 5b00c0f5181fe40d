//! Images: `docker_build`, `oci_build` and `custom_build`, as Tilt's
//! `docker.go`.

use anyhow::{anyhow, bail};
use loop_lang::model::{Image, ImageKind};
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::dict::DictRef;
use starlark::values::none::NoneType;
use starlark::values::Value;

use super::args::{climbs_out, command};
use super::live_update::live_update_steps;
use crate::decls::{call_site, declarations};
use crate::values::{self, string_list, string_map, Arg, Blob, NONE};

fn check_image_ref(function: &str, image_ref: &str) -> anyhow::Result<()> {
    if image_ref.is_empty()
        || image_ref
            .chars()
            .any(|c| c.is_whitespace() || c.is_uppercase())
    {
        bail!("{function}: {image_ref:?} is not a valid image name (lower case, no spaces, e.g. \"registry/app\")");
    }
    Ok(())
}

/// Records an image, refusing a second declaration of the same ref.
fn declare_image(env: &EvalEnv, image: Image) -> anyhow::Result<()> {
    let decls = declarations(env);
    if let Some(previous) = decls
        .borrow()
        .images
        .iter()
        .find(|i| i.image_ref == image.image_ref)
    {
        bail!(
            "image {:?} is already declared at {}; declare each image once",
            image.image_ref,
            previous.defined_at
        );
    }
    decls.borrow_mut().images.push(image);
    Ok(())
}

#[starlark_module]
pub fn image_builtins(builder: &mut GlobalsBuilder) {
    /// Declares an image built with Docker from `context`. The Dockerfile is
    /// `context/Dockerfile` unless `dockerfile` (relative to the Loopfile) or
    /// `dockerfile_contents` is given.
    ///
    /// Tilt: the same arguments. `loop` sends the context itself (`.dockerignore`,
    /// `ignore` and `only` applied; `.git` and `.loop` never), and a Dockerfile
    /// without `RUN` is built without Docker when there is a registry.
    ///
    /// # Arguments
    /// * `ref`: the image the Kubernetes objects use; without a tag it matches any tag, with one only that tag.
    /// * `context`: the build context folder, relative to this file.
    /// * `build_args`: `--build-arg`s, a dict of strings.
    /// * `dockerfile`: the Dockerfile, relative to this file (default: `context/Dockerfile`).
    /// * `dockerfile_contents`: the Dockerfile's text (or a blob) instead of a file.
    /// * `live_update`: `sync()`/`run()` steps into the running containers instead of a rebuild.
    /// * `match_in_env_vars`: True: env var values naming the image are replaced too.
    /// * `ignore`: gitignore-style patterns left out of the context and the hash.
    /// * `only`: paths (relative to the context) that alone make up the context.
    /// * `entrypoint`: replaces the containers' command (a string or an argv list).
    /// * `target`: the stage to build (`--target`).
    /// * `ssh`: SSH agent sockets or keys for `RUN --mount=type=ssh` (BuildKit).
    /// * `secret`: secrets for `RUN --mount=type=secret` (BuildKit).
    /// * `extra_tag`: more tags (a string or a list) given to the built image.
    /// * `network`: the network of `RUN` steps (`--network`).
    /// * `platform`: the platform to build for (`--platform`).
    fn docker_build<'v>(
        r#ref: &str,
        context: &str,
        build_args: Option<Value<'v>>,
        dockerfile: Option<&str>,
        dockerfile_contents: Option<Value<'v>>,
        live_update: Option<Value<'v>>,
        #[starlark(default = false)] match_in_env_vars: bool,
        ignore: Option<Value<'v>>,
        only: Option<Value<'v>>,
        entrypoint: Option<Value<'v>>,
        #[starlark(default = "")] target: &str,
        ssh: Option<Value<'v>>,
        secret: Option<Value<'v>>,
        extra_tag: Option<Value<'v>>,
        network: Option<&str>,
        platform: Option<&str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        const F: &str = "docker_build";
        let a = |name| Arg { function: F, name };
        check_image_ref(F, r#ref)?;
        let env = EvalEnv::of(eval)?;
        let context_dir = env.resolve(context);
        // As in Tilt, a context that does not exist yet is accepted (a
        // `local_resource` may create it before the build); a file, not a folder, is not.
        let context_exists = context_dir.is_dir();
        if !context_exists && context_dir.exists() {
            bail!(
                "docker_build: the build context {} is not a folder",
                env.display(&context_dir)
            );
        }
        let contents = match dockerfile_contents.filter(|v| !v.is_none()) {
            None => None,
            Some(v) => Some(if let Some(blob) = Blob::from_value(v) {
                blob.0.clone()
            } else if let Some(text) = v.unpack_str() {
                text.to_owned()
            } else {
                bail!(
                    "docker_build: dockerfile_contents must be a string or a blob, got {}",
                    values::describe(v)
                );
            }),
        };
        if contents.is_some() && dockerfile.is_some() {
            bail!("docker_build: give `dockerfile` or `dockerfile_contents`, not both");
        }
        let only = string_list(a("only"), only)?;
        for o in &only {
            if o.is_empty() || std::path::Path::new(o).is_absolute() || climbs_out(o) {
                bail!("docker_build: only={o:?} must be a path inside the context, relative to it");
            }
        }
        let mut image = Image::new(r#ref, ImageKind::Docker, call_site(eval));
        image.deps = if only.is_empty() {
            vec![env.display(&context_dir)]
        } else {
            only.iter()
                .map(|o| env.display(&context_dir.join(o)))
                .collect()
        };
        image.ignore = string_list(a("ignore"), ignore)?;
        image.live_update = live_update_steps(a("live_update"), live_update)?;
        image.context = Some(env.display(&context_dir));
        // Resolved once, to an absolute path: `display` is relative to the root,
        // which differs from this file's folder when the file is in a subfolder.
        let dockerfile_path = match (&contents, dockerfile) {
            (Some(_), _) => None,
            (None, Some(d)) => Some(env.resolve(d)),
            (None, None) => Some(context_dir.join("Dockerfile")),
        };
        image.dockerfile = dockerfile_path.as_ref().map(|p| env.display(p));
        if !context_exists {
            env.loader.log(
                &env.file,
                true,
                format!(
                    "docker_build: the build context {} does not exist yet; it must exist when the image is built",
                    env.display(&context_dir)
                ),
            );
        }
        if let Some(path) = &dockerfile_path {
            if !path.starts_with(&context_dir) {
                // A change to it rebuilds the image.
                image.deps.push(env.display(path));
            }
            if context_exists && !path.is_file() {
                bail!(
                    "docker_build: the Dockerfile {} does not exist{}",
                    env.display(path),
                    if dockerfile.is_none() {
                        " (it defaults to Dockerfile in the context; pass dockerfile= or dockerfile_contents=)"
                    } else {
                        " (dockerfile= is relative to the Loopfile)"
                    }
                );
            }
        }
        // Its FROM images; assembly keeps those the project builds.
        let text = match (&contents, &dockerfile_path) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(path)) => {
                // Its FROM lines decide the build order: an edit re-evaluates.
                env.loader.record_read(&env.file, path);
                std::fs::read_to_string(path).ok()
            }
            (None, None) => None,
        };
        image.build_args = string_map(a("build_args"), build_args)?;
        image.base_images = text
            .map(|t| {
                loop_lang::workload::from_images(&t, &image.build_args)
                    .into_iter()
                    .map(|(r, _)| r)
                    .collect()
            })
            .unwrap_or_default();
        image.dockerfile_contents = contents;
        image.only = only;
        image.target = Some(target.to_owned()).filter(|t| !t.is_empty());
        image.match_in_env_vars = match_in_env_vars;
        image.entrypoint = self::command(a("entrypoint"), entrypoint)?;
        image.ssh = string_list(a("ssh"), ssh)?;
        image.secrets = string_list(a("secret"), secret)?;
        image.extra_tags = string_list(a("extra_tag"), extra_tag)?;
        for tag in &image.extra_tags {
            if tag.is_empty() || tag.chars().any(|c| c.is_whitespace()) {
                bail!("docker_build: extra_tag {tag:?} is not an image reference");
            }
        }
        image.network = network.map(str::to_owned).filter(|n| !n.is_empty());
        image.platform = platform.map(str::to_owned).filter(|p| !p.is_empty());
        declare_image(env, image)?;
        Ok(NONE)
    }

    /// Declares an image that `loop` assembles and pushes itself, without a Docker
    /// daemon: the `base` image (`host:port/repo:tag` in a plain-HTTP registry)
    /// plus one layer per `files` entry (`{"/path/in/image": "local/path"}`, in
    /// order), with the image's `entrypoint`, `cmd`, `env` and `workdir`. It is
    /// pushed to the `default_registry` (or the cluster's advertised registry).
    fn oci_build<'v>(
        r#ref: &str,
        base: &str,
        files: Value<'v>,
        entrypoint: Option<Value<'v>>,
        cmd: Option<Value<'v>>,
        env: Option<Value<'v>>,
        workdir: Option<&str>,
        live_update: Option<Value<'v>>,
        #[starlark(default = false)] match_in_env_vars: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        const F: &str = "oci_build";
        let a = |name| Arg { function: F, name };
        check_image_ref(F, r#ref)?;
        let base_host = base.split_once('/').map(|(h, _)| h).unwrap_or_default();
        if !(base_host.contains('.') || base_host.contains(':') || base_host == "localhost") {
            bail!("oci_build: base {base:?} must name its registry, e.g. \"localhost:5000/busybox:1.36\" (the base is read from a registry, not from a Docker daemon)");
        }
        let ev = EvalEnv::of(eval)?;
        let dict = DictRef::from_value(files).ok_or_else(|| {
            anyhow!(
                "oci_build: files must be a dict {{\"/path/in/image\": \"local/path\"}}, got {}",
                values::describe(files)
            )
        })?;
        let mut image = Image::new(r#ref, ImageKind::Oci, call_site(eval));
        for (dest, src) in dict.iter() {
            let (Some(dest), Some(src)) = (dest.unpack_str(), src.unpack_str()) else {
                bail!("oci_build: files maps image paths to local paths, both strings");
            };
            if !dest.starts_with('/') {
                bail!("oci_build: files key {dest:?} must be an absolute path in the image");
            }
            let path = ev.resolve(src);
            if !path.exists() {
                bail!(
                    "oci_build: files[{dest:?}]: {} does not exist",
                    ev.display(&path)
                );
            }
            let shown = ev.display(&path);
            image.deps.push(shown.clone());
            image.copies.push(loop_lang::model::OciCopy {
                src: shown,
                dest: dest.to_owned(),
            });
        }
        if image.copies.is_empty() {
            bail!("oci_build: files is empty: give at least one {{\"/path/in/image\": \"local/path\"}}");
        }
        let argv =
            |name: &'static str, v: Option<Value<'v>>| -> anyhow::Result<Option<Vec<String>>> {
                Ok(self::command(a(name), v)?.map(|c| c.argv()))
            };
        image.base = Some(base.to_owned());
        image.image_entrypoint = argv("entrypoint", entrypoint)?;
        image.image_cmd = argv("cmd", cmd)?;
        image.image_env = values::env_map(a("env"), env)?;
        image.workdir = workdir.filter(|w| !w.is_empty()).map(str::to_owned);
        image.live_update = live_update_steps(a("live_update"), live_update)?;
        image.command_dir = ev.display(&ev.dir);
        image.match_in_env_vars = match_in_env_vars;
        declare_image(ev, image)?;
        Ok(NONE)
    }

    /// Declares an image built by a command, which must build `$EXPECTED_REF`.
    ///
    /// Tilt: the same arguments; the image is not pushed by `loop`
    /// (`disable_push` and `skips_local_docker` are recorded only).
    ///
    /// # Arguments
    /// * `ref`: the image name the Kubernetes objects use.
    /// * `command`: builds `$EXPECTED_REF` (`$EXPECTED_IMAGE`, `$EXPECTED_TAG` are set too): a shell string or an argv list.
    /// * `deps`: files and folders whose changes rebuild the image.
    /// * `tag`: a fixed tag instead of the content hash.
    /// * `disable_push`: recorded only.
    /// * `skips_local_docker`: recorded only.
    /// * `live_update`: `sync()`/`run()` steps into the running containers instead of a rebuild.
    /// * `match_in_env_vars`: True: env var values naming the image are replaced too.
    /// * `ignore`: gitignore-style patterns under `deps` that never rebuild.
    /// * `entrypoint`: replaces the containers' command.
    /// * `dir`: the folder `command` runs in (default: this file's folder).
    fn custom_build<'v>(
        r#ref: &str,
        command: Value<'v>,
        deps: Value<'v>,
        #[starlark(default = "")] tag: &str,
        #[starlark(default = false)] disable_push: bool,
        #[starlark(default = false)] skips_local_docker: bool,
        live_update: Option<Value<'v>>,
        #[starlark(default = false)] match_in_env_vars: bool,
        ignore: Option<Value<'v>>,
        entrypoint: Option<Value<'v>>,
        dir: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        const F: &str = "custom_build";
        let a = |name| Arg { function: F, name };
        check_image_ref(F, r#ref)?;
        let env = EvalEnv::of(eval)?;
        let mut image = Image::new(r#ref, ImageKind::Custom, call_site(eval));
        image.command = Some(
            self::command(a("command"), Some(command))?
                .ok_or_else(|| anyhow!("custom_build: the command is empty"))?,
        );
        image.deps = values::path_list(env, a("deps"), Some(deps))?;
        image.ignore = string_list(a("ignore"), ignore)?;
        image.live_update = live_update_steps(a("live_update"), live_update)?;
        image.command_dir = env.display(&values::folder(env, a("dir"), dir)?);
        image.entrypoint = self::command(a("entrypoint"), entrypoint)?;
        image.tag = Some(tag.to_owned()).filter(|t| !t.is_empty());
        image.skips_local_docker = skips_local_docker;
        image.disable_push = disable_push;
        image.match_in_env_vars = match_in_env_vars;
        declare_image(env, image)?;
        Ok(NONE)
    }
}
