//! The parameters of every built-in, to tell users what a function accepts when
//! they pass an unknown or wrong argument.

use std::collections::HashMap;

use loop_lang::Diagnostic;
use starlark::docs::{DocItem, DocMember, DocModule};
use starlark::environment::Globals;

/// Built-in name -> parameter names, in order.
pub struct Signatures {
    params: HashMap<String, Vec<String>>,
}

impl Signatures {
    pub fn of(globals: &Globals) -> Signatures {
        let mut params = HashMap::new();
        collect(&globals.documentation(), "", &mut params);
        Signatures { params }
    }

    /// The parameters of a built-in (`os.path.join`, or the bare `join`).
    pub fn params(&self, function: &str) -> Option<&[String]> {
        self.params.get(function).map(Vec::as_slice)
    }

    /// Adds the accepted arguments (and the closest one) to an argument error.
    pub fn explain(&self, diag: &mut Diagnostic) {
        let message = diag.message.clone();
        if message.contains("call stack overflow") {
            diag.help = Some("a function keeps calling itself; Loopfiles have no unbounded recursion: build lists with loops or comprehensions instead".into());
            return;
        }
        if message.contains("reserved keyword `while`") {
            diag.help = Some("a loop is `while CONDITION:` at the start of a statement, its body indented below it (a condition is one expression, not a list)".into());
            return;
        }
        if let Some(rest) = message.strip_prefix("Error unpacking value for parameter `") {
            // Starlark's own text lacks the closing quote of the type.
            let (param, ty) = rest.split_once("` of type `").unwrap_or((rest, ""));
            diag.message = if ty.trim_end_matches('`') == "int" {
                format!(
                    "argument `{param}` is out of range: it must be a whole number from {} to {}",
                    i32::MIN,
                    i32::MAX
                )
            } else {
                format!(
                    "argument `{param}` cannot be read as `{}`",
                    ty.trim_end_matches('`')
                )
            };
            return;
        }
        if message == "Immutable" {
            diag.help = Some("values from load()ed modules are frozen; copy before changing, e.g. `deps = list(DEFAULT_DEPS)`".into());
            return;
        }
        let Some((_, after)) = message.split_once("for call to ") else {
            return;
        };
        let function = after.trim().trim_matches('`');
        let Some(params) = self.params(function) else {
            return;
        };
        let accepted = params.join(", ");
        let mut help = format!("`{function}` accepts: {accepted}");
        if message.contains("extra named parameter") {
            let unknown = message.split('`').nth(1).unwrap_or_default();
            if let Some(best) = params
                .iter()
                .map(|p| (strsim::jaro_winkler(unknown, p), p))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
            {
                help = format!("did you mean `{}`? {help}", best.1);
            }
        }
        diag.help = Some(help.into());
    }
}

fn collect(module: &DocModule, prefix: &str, out: &mut HashMap<String, Vec<String>>) {
    for (name, item) in &module.members {
        match item {
            DocItem::Member(DocMember::Function(f)) => {
                let p = &f.params;
                let names: Vec<String> = p
                    .pos_only
                    .iter()
                    .chain(&p.pos_or_named)
                    .chain(&p.named_only)
                    .map(|d| d.name.clone())
                    .collect();
                out.insert(format!("{prefix}{name}"), names.clone());
                out.entry(name.clone()).or_insert(names);
            }
            DocItem::Module(inner) => collect(inner, &format!("{prefix}{name}."), out),
            _ => {}
        }
    }
}
