//! The values of the Kubernetes `Secret`s that the Loopfiles apply, replaced in
//! every log line before it is kept, printed, written or served, as Tilt does.
//! Both the decoded value and its base64 text (as it appears in the YAML) are
//! replaced. `secret_settings(disable_scrub=True)` turns it off.

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use loop_lang::data::Data;
use loop_lang::model::Manifest;

/// Values shorter than this are left alone: replacing every `1` or `ok` in every
/// log would make the logs unreadable and hides nothing worth hiding.
pub const MIN_SECRET_LEN: usize = 4;

/// Replaces secret values in text.
pub struct Scrubber {
    matcher: AhoCorasick,
    /// The replacement of each pattern, by pattern index.
    labels: Vec<String>,
}

impl Scrubber {
    /// The scrubber of a manifest's Secrets; `None` when there is nothing to scrub
    /// or scrubbing is turned off.
    pub fn of(manifest: &Manifest) -> Option<Scrubber> {
        if !manifest.settings.scrub_secrets {
            return None;
        }
        let mut patterns = Vec::new();
        let mut labels = Vec::new();
        for object in manifest.resources.iter().flat_map(|r| &r.objects) {
            if object.kind != "Secret" || object.api_version != "v1" {
                continue;
            }
            let name = match &object.namespace {
                Some(ns) => format!("{ns}/{}", object.name),
                None => object.name.clone(),
            };
            for (key, value, encoded) in values(&object.body) {
                let label = format!("[redacted secret {name}:{key}]");
                for text in [Some(value), encoded].into_iter().flatten() {
                    if text.len() >= MIN_SECRET_LEN && !patterns.contains(&text) {
                        patterns.push(text);
                        labels.push(label.clone());
                    }
                }
            }
        }
        if patterns.is_empty() {
            return None;
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()?;
        Some(Scrubber { matcher, labels })
    }

    /// The text with every secret value replaced by its label.
    pub fn scrub(&self, text: &str) -> String {
        self.matcher.replace_all(text, &self.labels)
    }
}

/// (key, decoded value, base64 text) of a Secret's `data` and `stringData`.
fn values(body: &Data) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    if let Some(data) = body.get("data") {
        for (key, value) in data.as_map() {
            let Some(encoded) = value.as_str() else {
                continue;
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            if let Some(decoded) = decoded {
                out.push((key.clone(), decoded, Some(encoded.trim().to_owned())));
            }
        }
    }
    if let Some(data) = body.get("stringData") {
        for (key, value) in data.as_map() {
            if let Some(text) = value.as_str() {
                out.push((key.clone(), text.to_owned(), None));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::test_support::resource;
    use loop_lang::model::ObjectRef;

    fn manifest(yaml: &str, scrub: bool) -> Manifest {
        let body = Data::from_yaml(yaml).unwrap();
        let object = ObjectRef {
            api_version: "v1".into(),
            kind: body.get("kind").and_then(Data::as_str).unwrap().into(),
            name: "db".into(),
            namespace: Some("shop".into()),
            defined_at: Default::default(),
            body,
        };
        let mut manifest = Manifest::default();
        let mut web = resource("web", 1);
        web.objects.push(object);
        manifest.resources.push(web);
        manifest.settings.scrub_secrets = scrub;
        manifest
    }

    #[test]
    fn data_and_string_data_values_are_replaced_in_both_forms() {
        // "hunter22" is aHVudGVyMjI= in base64.
        let m = manifest(
            "kind: Secret\ndata:\n  password: aHVudGVyMjI=\n  short: b2s=\nstringData:\n  token: s3cr3t-t0ken\n",
            true,
        );
        let s = Scrubber::of(&m).unwrap();
        assert_eq!(
            s.scrub("pw=hunter22 raw=aHVudGVyMjI= tok=s3cr3t-t0ken ok"),
            "pw=[redacted secret shop/db:password] raw=[redacted secret shop/db:password] tok=[redacted secret shop/db:token] ok"
        );
    }

    #[test]
    fn nothing_is_scrubbed_when_disabled_or_not_a_secret() {
        let secret = "kind: Secret\nstringData:\n  token: s3cr3t-t0ken\n";
        assert!(Scrubber::of(&manifest(secret, false)).is_none());
        let config = "kind: ConfigMap\nstringData:\n  token: s3cr3t-t0ken\n";
        assert!(Scrubber::of(&manifest(config, true)).is_none());
    }
}
