//! Labels on every object `loop` applies, so that it can find what it owns.

use std::collections::BTreeMap;
use std::path::Path;

/// Set on every object `loop` applies.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "loop");
/// Which project applied it: a hash of the project root.
pub const PROJECT: &str = "loop.dev/project";
/// Which resource of the Loopfile it belongs to.
pub const RESOURCE: &str = "loop.dev/resource";
/// The field manager of server-side apply.
pub const FIELD_MANAGER: &str = "loop";

/// A short, stable id for a project root (a valid label value).
pub fn project_id(root: &Path) -> String {
    let hash = blake3::hash(root.to_string_lossy().as_bytes());
    hash.to_hex()[..16].to_owned()
}

/// A resource name as a label value: at most 63 characters of `[A-Za-z0-9-_.]`,
/// starting and ending alphanumeric.
pub fn label_value(name: &str) -> String {
    let cleaned = loop_lang::project::safe_name(name);
    let trimmed: &str = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    trimmed
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The ownership labels of one resource's objects.
pub fn labels(project: &str, resource: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (PROJECT.to_owned(), project.to_owned()),
        (RESOURCE.to_owned(), label_value(resource)),
    ])
}

/// The label selector for everything a project applied.
pub fn project_selector(project: &str) -> String {
    format!("{}={},{PROJECT}={project}", MANAGED_BY.0, MANAGED_BY.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_valid() {
        assert_eq!(
            label_value("web:deployment:default"),
            "web_deployment_default"
        );
        assert_eq!(label_value("-x-"), "x");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
        assert_eq!(project_id(Path::new("/p")).len(), 16);
        assert_eq!(project_id(Path::new("/p")), project_id(Path::new("/p")));
    }
}
