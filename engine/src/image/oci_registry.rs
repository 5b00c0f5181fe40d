//! A small client of the OCI distribution API (the Docker registry v2 protocol),
//! enough for daemonless builds: manifests and blobs by digest, existence checks,
//! cross-repository mounts, monolithic uploads and manifest pushes.
//!
//! Plain HTTP only (the local registries of kind, k3d and minikube set-ups, on
//! loopback or a private network); an `https` registry is refused with a clear
//! error. Credentials come from the Docker config (`$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`, the `auths.<host>.auth` field that `docker login`
//! writes); they are sent, never logged. A 401 answer is retried with Basic
//! credentials, or with a Bearer token fetched from the realm the registry names.

use std::collections::HashMap;
use std::sync::Mutex;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The media types of manifests we read, in order of preference.
pub(crate) const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// An image reference split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    /// `host[:port]`.
    pub host: String,
    /// The repository path.
    pub repo: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl Reference {
    /// Parses `host[:port]/repo[:tag|@digest]`; a name without a registry host
    /// (Docker Hub) is refused: only plain-HTTP registries are spoken to.
    pub(crate) fn parse(text: &str) -> Result<Reference, String> {
        let (host, rest) = text
            .split_once('/')
            .filter(|(h, _)| h.contains('.') || h.contains(':') || *h == "localhost")
            .ok_or_else(|| {
                format!("{text:?} names no registry host: give it as host:port/repo:tag (images are read from a registry over plain HTTP)")
            })?;
        let (repo, reference) = if let Some((repo, digest)) = rest.split_once('@') {
            (repo, digest.to_owned())
        } else {
            match rest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, tag.to_owned()),
                _ => (rest, "latest".to_owned()),
            }
        };
        if repo.is_empty() || reference.is_empty() {
            return Err(format!("{text:?} is not an image reference"));
        }
        Ok(Reference {
            host: host.to_owned(),
            repo: repo.to_owned(),
            reference,
        })
    }
}

/// A response: its status, `Location` header and body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: Bytes,
}

/// A client for registries; it remembers tokens per host and scope.
pub(crate) struct RegistryClient {
    http: Client<HttpConnector, Full<Bytes>>,
    /// `host` -> `Basic …` from the Docker config.
    basic: HashMap<String, String>,
    tokens: Mutex<HashMap<(String, String), String>>,
}

impl RegistryClient {
    pub(crate) fn new() -> RegistryClient {
        RegistryClient {
            http: Client::builder(TokioExecutor::new()).build_http(),
            basic: docker_config_auths(),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Sends one request to `host`, authenticating when the registry asks to.
    pub(crate) async fn send(
        &self,
        method: Method,
        host: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        scope: &str,
    ) -> Result<Answer, String> {
        let token_key = (host.to_owned(), scope.to_owned());
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&token_key)
            .cloned();
        let first = self
            .once(
                &method,
                host,
                path_and_query,
                headers,
                body.clone(),
                cached.as_deref(),
            )
            .await?;
        if first.0.status != StatusCode::UNAUTHORIZED {
            return Ok(first.0);
        }
        let Some(challenge) = first.1 else {
            return Ok(first.0);
        };
        let authorization = self.authorize(host, &challenge, scope).await?;
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token_key, authorization.clone());
        Ok(self
            .once(
                &method,
                host,
                path_and_query,
                headers,
                body,
                Some(&authorization),
            )
            .await?
            .0)
    }

    async fn once(
        &self,
        method: &Method,
        host: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        authorization: Option<&str>,
    ) -> Result<(Answer, Option<String>), String> {
        let uri = if path_and_query.starts_with("http://") {
            path_and_query.to_owned()
        } else if path_and_query.starts_with("https://") {
            return Err(format!(
                "{path_and_query}: https registries are not supported yet"
            ));
        } else {
            format!("http://{host}{path_and_query}")
        };
        let mut request = Request::builder().method(method.clone()).uri(&uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(a) = authorization {
            request = request.header("Authorization", a);
        }
        let request = request
            .header("Content-Length", body.len())
            .body(Full::new(body))
            .map_err(|e| format!("{method} {uri}: {e}"))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| format!("{method} {uri}: {}", root_cause(&e)))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let challenge = header("www-authenticate");
        let answer = Answer {
            status: response.status(),
            location: header("location"),
            body: Bytes::new(),
        };
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {uri}: reading the answer: {e}"))?
            .to_bytes();
        Ok((Answer { body, ..answer }, challenge))
    }

    /// The `Authorization` value answering `challenge` (a `WWW-Authenticate`).
    async fn authorize(&self, host: &str, challenge: &str, scope: &str) -> Result<String, String> {
        let basic = self.basic.get(host).cloned();
        if challenge
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("basic")
        {
            return basic.ok_or_else(|| {
                format!("the registry {host} asks for credentials and the Docker config has none for it (run `docker login {host}`)")
            });
        }
        let params = challenge_params(challenge);
        let realm = params
            .get("realm")
            .ok_or_else(|| format!("the registry {host} asks for a token without a realm"))?;
        let mut url = format!("{realm}?scope={}", scope_query(scope));
        if let Some(service) = params.get("service") {
            url.push_str(&format!("&service={service}"));
        }
        let headers: Vec<(&str, &str)> = basic
            .as_deref()
            .map(|b| vec![("Authorization", b)])
            .unwrap_or_default();
        let (answer, _) = self
            .once(&Method::GET, host, &url, &headers, Bytes::new(), None)
            .await?;
        if !answer.status.is_success() {
            return Err(format!(
                "the token service of {host} refused ({})",
                answer.status
            ));
        }
        let json: serde_json::Value = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("the token service of {host} sent no JSON: {e}"))?;
        let token = json["token"]
            .as_str()
            .or_else(|| json["access_token"].as_str())
            .ok_or_else(|| format!("the token service of {host} sent no token"))?;
        Ok(format!("Bearer {token}"))
    }
}

fn scope_query(scope: &str) -> String {
    scope
        .replace(':', "%3A")
        .replace(',', "%2C")
        .replace('/', "%2F")
}

/// `Bearer realm="…",service="…"` -> {realm, service}.
fn challenge_params(challenge: &str) -> HashMap<String, String> {
    let rest = challenge
        .split_once(' ')
        .map(|(_, r)| r)
        .unwrap_or_default();
    let mut out = HashMap::new();
    let mut rest = rest.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, n)) => (v.to_owned(), n),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_owned(), n),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.insert(key, value);
        rest = next.trim_start_matches(',').trim();
    }
    out
}

/// `host` -> `Basic <auth>` for every `auths` entry of the Docker config that
/// has an `auth` field.
fn docker_config_auths() -> HashMap<String, String> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")));
    let Some(dir) = dir else {
        return HashMap::new();
    };
    let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
        return HashMap::new();
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    if let Some(auths) = json["auths"].as_object() {
        for (host, entry) in auths {
            if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
                let host = host
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/');
                out.insert(host.to_owned(), format!("Basic {auth}"));
            }
        }
    }
    out
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            Reference::parse("localhost:5000/base/busybox:1").unwrap(),
            Reference {
                host: "localhost:5000".into(),
                repo: "base/busybox".into(),
                reference: "1".into()
            }
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            Reference::parse(&format!("127.0.0.1:5000/x@{d}"))
                .unwrap()
                .reference,
            d
        );
        assert_eq!(
            Reference::parse("registry.local/x").unwrap().reference,
            "latest"
        );
        assert!(Reference::parse("busybox:1")
            .unwrap_err()
            .contains("names no registry host"));
    }

    #[test]
    fn bearer_challenges() {
        let p = challenge_params(
            "Bearer realm=\"http://auth.local/token\",service=\"registry.local\",scope=\"repository:a:pull\"",
        );
        assert_eq!(p["realm"], "http://auth.local/token");
        assert_eq!(p["service"], "registry.local");
        assert_eq!(p["scope"], "repository:a:pull");
    }
}
