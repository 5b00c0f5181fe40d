//! Connecting to a cluster safely: the kubeconfig's current context (or
//! `--context`), its namespace, and a refusal to touch clusters that do not look
//! local unless the Loopfile allows them.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A cluster `loop` may change.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub context: String,
    pub server: String,
    /// Where namespaced objects without a namespace go.
    pub namespace: String,
}

/// Context-name prefixes and names of clusters that run on this machine.
const LOCAL_CONTEXTS: &[&str] = &[
    "kind-",
    "k3d-",
    "minikube",
    "docker-desktop",
    "docker-for-desktop",
    "rancher-desktop",
    "colima",
    "orbstack",
    "microk8s",
    "crc-",
];

/// Whether a context looks like a cluster on this machine: a known local
/// distribution's name, or an API server on a loopback address.
pub fn looks_local(context: &str, server: &str) -> bool {
    if LOCAL_CONTEXTS
        .iter()
        .any(|p| context == p.trim_end_matches('-') || context.starts_with(p))
    {
        return true;
    }
    let host = server
        .split("://")
        .nth(1)
        .unwrap_or(server)
        .split('/')
        .next()
        .unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost"
        || host == "::1"
        || host.starts_with("127.")
        || host == "host.docker.internal"
}

/// The word in a context or cluster name that says production (`prod`,
/// `production`, `prd`, `live`), as a whole word between separators.
pub fn production_word(name: &str) -> Option<&str> {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|word| {
            ["prod", "production", "prd", "live"]
                .iter()
                .any(|p| word.eq_ignore_ascii_case(p))
        })
}

/// Where the kubeconfig comes from: `KUBECONFIG` (first file), else `~/.kube/config`.
pub fn kubeconfig_path() -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("KUBECONFIG") {
        return std::env::split_paths(&paths).find(|p| !p.as_os_str().is_empty());
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"))
}

/// Starts every error that means `loop` has no cluster to talk to.
pub const NOT_CONNECTED: &str = "not connected to Kubernetes";

/// What to do when there is no usable kubeconfig.
const SETUP_HINT: &str = "point KUBECONFIG at a kubeconfig, pick a context with --context, \
     or create a local cluster (`kind create cluster` or `k3d cluster create`)";

/// Where the kubeconfig path came from, for messages.
fn tried() -> &'static str {
    if std::env::var_os("KUBECONFIG").is_some() {
        "KUBECONFIG"
    } else {
        "the default location"
    }
}

/// Reads the kubeconfig, saying once what was tried and what to do.
fn read_kubeconfig() -> Result<(PathBuf, Kubeconfig), String> {
    let Some(path) = kubeconfig_path() else {
        return Err(format!(
            "{NOT_CONNECTED}: no kubeconfig (KUBECONFIG and HOME are unset); {SETUP_HINT}"
        ));
    };
    if !path.exists() {
        return Err(format!(
            "{NOT_CONNECTED}: there is no kubeconfig at {} ({}); {SETUP_HINT}",
            path.display(),
            tried()
        ));
    }
    let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| {
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        format!(
            "{NOT_CONNECTED}: cannot read the kubeconfig {} ({}): {cause}; {SETUP_HINT}",
            path.display(),
            tried()
        )
    })?;
    Ok((path, kubeconfig))
}

/// The error for a context the kubeconfig does not have, listing those it has.
fn unknown_context(name: &str, path: &std::path::Path, kubeconfig: &Kubeconfig) -> String {
    let known: Vec<&str> = kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let listed = if known.is_empty() {
        "it has no contexts".to_owned()
    } else {
        format!("its contexts: {}", known.join(", "))
    };
    format!(
        "{NOT_CONNECTED}: the kubeconfig {} has no context {name:?} ({listed}); \
         pass one of them with --context, or create a local cluster (`kind create cluster` or `k3d cluster create`)",
        path.display()
    )
}

/// Opens a client for `context` (default: the current one), refusing a context
/// that does not look local unless it is in `allowed`.
pub async fn connect(
    context: Option<&str>,
    namespace: Option<&str>,
    allowed: &[String],
) -> Result<Cluster, String> {
    let (path, kubeconfig) = read_kubeconfig()?;
    let name = match context
        .map(str::to_owned)
        .or_else(|| kubeconfig.current_context.clone())
    {
        Some(name) => name,
        None => {
            return Err(format!(
                "{NOT_CONNECTED}: the kubeconfig {} has no current context; pass --context \
                 (or run `kubectl config use-context NAME`)",
                path.display()
            ))
        }
    };
    if !kubeconfig.contexts.iter().any(|c| c.name == name) {
        return Err(unknown_context(&name, &path, &kubeconfig));
    }
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let options = KubeConfigOptions {
        context: Some(name.clone()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| {
            format!(
                "{NOT_CONNECTED}: cannot use context {name:?} of the kubeconfig {}: {e}",
                path.display()
            )
        })?;
    let server = config.cluster_url.to_string();
    if !looks_local(&name, &server) && !allowed.contains(&name) {
        return Err(format!(
            "refusing to change Kubernetes context {name:?} (server {server}): it does not look like a local cluster \
             (kind, k3d, minikube, Docker Desktop, Rancher Desktop or a loopback address). \
             If you mean it, add allow_k8s_contexts({name:?}) to the Loopfile"
        ));
    }
    if let Some(word) = production_word(&name).or_else(|| production_word(&cluster_name)) {
        if !allowed.contains(&name) {
            return Err(format!(
                "refusing to change Kubernetes context {name:?} (cluster {cluster_name:?}, server {server}): \
                 its name says production ({word:?}); a tunnel or `kubectl proxy` to production looks \
                 like a local cluster. If you mean it, add allow_k8s_contexts({name:?}) to the Loopfile"
            ));
        }
    }
    let namespace = namespace
        .map(str::to_owned)
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)
        .map_err(|e| format!("cannot create a Kubernetes client for {name:?}: {e}"))?;
    Ok(Cluster {
        client,
        context: name,
        server,
        namespace,
    })
}

#[cfg(test)]
mod tests {
    use super::{looks_local, production_word};

    #[test]
    fn names_that_say_production() {
        assert_eq!(production_word("prod-eu"), Some("prod"));
        assert_eq!(
            production_word("gke_acme_europe-west1_production"),
            Some("production")
        );
        assert_eq!(production_word("Live"), Some("Live"));
        assert_eq!(production_word("eks-prd-1"), Some("prd"));
        assert_eq!(production_word("kind-products"), None, "a whole word only");
        assert_eq!(production_word("kind-dev"), None);
    }

    #[test]
    fn local_contexts_and_loopback_servers() {
        assert!(looks_local("kind-dev", "https://10.0.0.5:6443"));
        assert!(looks_local("minikube", "https://192.168.49.2:8443"));
        assert!(looks_local(
            "docker-desktop",
            "https://kubernetes.docker.internal:6443"
        ));
        assert!(looks_local("whatever", "https://127.0.0.1:6443"));
        assert!(looks_local("whatever", "http://localhost:8080/"));
        assert!(looks_local("whatever", "https://[::1]:6443"));
        assert!(!looks_local("prod-eu", "https://k8s.example.com"));
        assert!(!looks_local("kindness", "https://10.1.2.3"));
    }
}
