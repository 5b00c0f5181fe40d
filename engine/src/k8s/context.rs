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

/// Opens a client for `context` (default: the current one), refusing a context
/// that does not look local unless it is in `allowed`.
pub async fn connect(
    context: Option<&str>,
    namespace: Option<&str>,
    allowed: &[String],
) -> Result<Cluster, String> {
    let path = kubeconfig_path().ok_or("no kubeconfig: set KUBECONFIG or create ~/.kube/config")?;
    let kubeconfig = Kubeconfig::read_from(&path)
        .map_err(|e| format!("cannot read the kubeconfig {}: {e}", path.display()))?;
    let name = match context
        .map(str::to_owned)
        .or_else(|| kubeconfig.current_context.clone())
    {
        Some(name) => name,
        None => {
            return Err(format!(
                "the kubeconfig {} has no current context; pass --context",
                path.display()
            ))
        }
    };
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
        .map_err(|e| format!("cannot use Kubernetes context {name:?}: {e}"))?;
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
