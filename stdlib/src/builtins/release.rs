//! What the same Loopfiles ship (`loop render`): profiles and lint settings.
//! Dev-only objects are marked where they are declared (`k8s_yaml(...,
//! dev_only=True)`, `k8s_resource(..., dev_only=True)`).

use anyhow::bail;
use loop_lang::model::LINT_RULES;
use loop_lang::EvalEnv;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::none::NoneType;
use starlark::values::Value;

use crate::decls::{call_site, declarations};
use crate::values::{string_list, Arg, NONE};

#[starlark_module]
pub fn release_builtins(builder: &mut GlobalsBuilder) {
    /// Whether NAME is the active profile (`loop run|ci|render|check --profile
    /// NAME`). Every name tested is a profile the Loopfiles know: `--profile`
    /// with any other name is an error that lists them.
    ///
    /// ```python
    /// if profile("prod"):
    ///     k8s_yaml("deploy/prod.yaml")
    /// else:
    ///     k8s_yaml("deploy/dev.yaml")
    /// ```
    ///
    /// # Arguments
    /// * `name`: a profile name: letters, digits, `-`, `_` and `.`.
    fn profile<'v>(name: &str, eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<bool> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            bail!("profile: {name:?} is not a profile name (letters, digits, `-`, `_`, `.`)");
        }
        let env = EvalEnv::of(eval)?;
        let at = call_site(eval);
        let mut decls = declarations(env).borrow_mut();
        let release = &mut decls.release;
        if !release.profiles.iter().any(|(n, _)| n == name) {
            release.profiles.push((name.to_owned(), at));
        }
        Ok(release.profile.as_deref() == Some(name))
    }

    /// Turns policy rules of `loop check` and `loop render` off for this project.
    ///
    /// # Arguments
    /// * `disable`: rule names: `resources`, `privileged`, `run-as-root`, `host-path`, `latest-tag`, `readiness-probe`.
    fn lint_settings<'v>(
        disable: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let names = string_list(
            Arg {
                function: "lint_settings",
                name: "disable",
            },
            disable,
        )?;
        for name in &names {
            if !LINT_RULES.contains(&name.as_str()) {
                let mut message = format!("lint_settings: no rule named {name:?}");
                if let Some(best) = loop_lang::diag::closest(name, LINT_RULES.iter().copied()) {
                    message.push_str(&format!("; did you mean {best:?}?"));
                }
                bail!("{message} (the rules: {})", LINT_RULES.join(", "));
            }
        }
        let env = EvalEnv::of(eval)?;
        let mut decls = declarations(env).borrow_mut();
        for name in names {
            if !decls.release.lint_disabled.contains(&name) {
                decls.release.lint_disabled.push(name);
            }
        }
        Ok(NONE)
    }
}
