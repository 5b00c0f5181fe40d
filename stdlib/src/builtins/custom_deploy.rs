//! `k8s_custom_deploy`: a Kubernetes resource whose objects are deployed by a
//! command of the user's (`apply_cmd`, which prints what it deployed) and
//! removed by another (`delete_cmd`, run by `loop down`), as in Tilt. The engine
//! builds its `image_deps` first and passes them to `apply_cmd` as
//! `TILT_IMAGE_i`/`TILT_IMAGE_MAP_i`, then follows the printed objects like any
//! workload; a change to `deps` runs `apply_cmd` again.

use anyhow::{anyhow, bail};
use loop_lang::model::{CustomDeploy, Image, ImageKind, Resource, ResourceKind};
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::none::NoneType;
use starlark::values::Value;

use super::args::{check_name, command};
use crate::builtins::live_update::live_update_steps;
use crate::decls::{call_site, declarations};
use crate::values::{self, env_map, string_list, Arg, NONE};

#[starlark_module]
pub fn custom_deploy_builtins(builder: &mut GlobalsBuilder) {
    /// A Kubernetes resource deployed by `apply_cmd`, which must print the
    /// objects it deployed as YAML or JSON (e.g. `kubectl apply -f x.yaml -o
    /// yaml`); `loop down` runs `delete_cmd`. A change to a file of `deps` runs
    /// `apply_cmd` again. The images of `image_deps` are built first and passed
    /// as `TILT_IMAGE_i` (the built reference) and `TILT_IMAGE_MAP_i` (the
    /// image's name). `live_update` syncs into the running containers of
    /// `image_selector` (matched by image name) or named `container_selector`
    /// when a change is covered by its steps, instead of re-running `apply_cmd`.
    fn k8s_custom_deploy<'v>(
        name: &str,
        apply_cmd: Value<'v>,
        delete_cmd: Value<'v>,
        deps: Value<'v>,
        #[starlark(default = "")] image_selector: &str,
        live_update: Option<Value<'v>>,
        apply_dir: Option<Value<'v>>,
        apply_env: Option<Value<'v>>,
        apply_cmd_bat: Option<Value<'v>>,
        delete_dir: Option<Value<'v>>,
        delete_env: Option<Value<'v>>,
        delete_cmd_bat: Option<Value<'v>>,
        #[starlark(default = "")] container_selector: &str,
        image_deps: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        const F: &str = "k8s_custom_deploy";
        let _ = (apply_cmd_bat, delete_cmd_bat);
        let a = |name| Arg { function: F, name };
        check_name(F, name)?;
        let env = EvalEnv::of(eval)?;
        let at = call_site(eval);
        let apply = command(a("apply_cmd"), Some(apply_cmd))?
            .ok_or_else(|| anyhow!("{F}: apply_cmd cannot be empty"))?;
        let delete = command(a("delete_cmd"), Some(delete_cmd))?
            .ok_or_else(|| anyhow!("{F}: delete_cmd cannot be empty"))?;
        let folder = |v, n| values::folder(env, a(n), v).map(|d| env.display(&d));
        let steps = live_update_steps(a("live_update"), live_update)?;
        let image_deps = string_list(a("image_deps"), image_deps)?;
        let decls = declarations(env);
        let mut resource = Resource::new(name, ResourceKind::K8s, at.clone());
        resource.deps = values::path_list(env, a("deps"), Some(deps))?;
        resource.trigger_mode = decls.borrow().default_trigger_mode;
        resource.images = image_deps.clone();
        if !steps.is_empty() {
            match (image_selector.is_empty(), container_selector.is_empty()) {
                (true, true) => bail!(
                    "{F}: live_update needs a selector: give image_selector or container_selector"
                ),
                (false, false) => {
                    bail!("{F}: give only one of image_selector and container_selector")
                }
                (true, false) => {
                    // As in Tilt: a placeholder image named after the resource,
                    // whose live update goes to the containers of that name.
                    let mut image = Image::new(
                        &format!("k8s_custom_deploy:{name}"),
                        ImageKind::LiveUpdateOnly,
                        at,
                    );
                    image.deps = resource.deps.clone();
                    image.live_update = steps;
                    image.command_dir = env.display(&env.dir);
                    image.container_name = Some(container_selector.to_owned());
                    resource.images.push(image.image_ref.clone());
                    decls.borrow_mut().images.push(image);
                }
                (false, true) => {
                    if decls
                        .borrow()
                        .images
                        .iter()
                        .any(|i| i.image_ref == image_selector)
                    {
                        bail!("{F}: image_selector {image_selector:?} names an image the Loopfiles build; list it in image_deps and give the live_update to its docker_build or custom_build");
                    }
                    // As in Tilt: an image that is never built, whose containers
                    // (matched by image name) receive the live update.
                    let mut image = Image::new(image_selector, ImageKind::LiveUpdateOnly, at);
                    image.deps = resource.deps.clone();
                    image.live_update = steps;
                    image.command_dir = env.display(&env.dir);
                    resource.images.push(image_selector.to_owned());
                    decls.borrow_mut().images.push(image);
                }
            }
        }
        resource.custom_deploy = Some(CustomDeploy {
            apply_cmd: apply,
            apply_dir: folder(apply_dir, "apply_dir")?,
            apply_env: env_map(a("apply_env"), apply_env)?,
            delete_cmd: delete,
            delete_dir: folder(delete_dir, "delete_dir")?,
            delete_env: env_map(a("delete_env"), delete_env)?,
            image_deps,
        });
        decls.borrow_mut().custom_deploys.push(resource);
        Ok(NONE)
    }
}
