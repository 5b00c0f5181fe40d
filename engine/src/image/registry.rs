//! Where a built `docker_build` image goes so that the cluster can run it.
//!
//! - With a registry (`default_registry(...)`, or else the one a local cluster
//!   advertises in the `local-registry-hosting` ConfigMap of `kube-public`, as
//!   KEP-1755 describes), the image is tagged with its rewritten name, pushed
//!   with `docker push` (which reads the credentials of the Docker config, so
//!   `loop` never sees them), and deployed by digest: `repo@sha256:…`, so a pod
//!   always runs exactly what was built.
//! - Without one, on a kind or k3d cluster (told by the context name), the image
//!   is loaded with `kind load docker-image` / `k3d image import`; when that CLI
//!   is missing, `loop` says so and deploys the local tag.
//! - Otherwise the local tag is deployed (Docker Desktop, minikube with its
//!   Docker, Rancher Desktop: the cluster shares the daemon).
//!
//! Names are rewritten as Tilt does: `host/<familiar name with / : @ as _>`, or
//! `host/<single_name>` for every image; a name already under `host/` is kept.

use loop_lang::model::DefaultRegistry;

/// Where images go for one update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Deploy the local tag.
    Local,
    /// Push to a registry, deploy by digest.
    Registry(DefaultRegistry),
    /// `kind load docker-image --name CLUSTER`.
    Kind { cluster: String },
    /// `k3d image import --cluster CLUSTER`.
    K3d { cluster: String },
}

impl Destination {
    /// The destination for a cluster reached through `context`, given the
    /// registry the Loopfile declared, else the one the cluster advertises.
    pub fn choose(
        context: &str,
        declared: Option<&DefaultRegistry>,
        advertised: Option<&DefaultRegistry>,
    ) -> Destination {
        if let Some(registry) = declared.or(advertised) {
            return Destination::Registry(registry.clone());
        }
        if let Some(cluster) = context.strip_prefix("kind-") {
            return Destination::Kind {
                cluster: cluster.to_owned(),
            };
        }
        if let Some(cluster) = context.strip_prefix("k3d-") {
            return Destination::K3d {
                cluster: cluster.to_owned(),
            };
        }
        Destination::Local
    }
}

/// The name Docker shows for `name`: without `docker.io/` and `library/`.
pub fn familiar_name(name: &str) -> &str {
    let name = name
        .strip_prefix("docker.io/")
        .or_else(|| name.strip_prefix("index.docker.io/"))
        .unwrap_or(name);
    name.strip_prefix("library/")
        .filter(|rest| !rest.contains('/'))
        .unwrap_or(name)
}

fn escape(name: &str) -> String {
    name.chars()
        .map(|c| if matches!(c, '/' | ':' | '@') { '_' } else { c })
        .collect()
}

/// The repository `name` (an image name without tag) is pushed to, and the one
/// the cluster pulls it from.
pub fn rewrite(registry: &DefaultRegistry, name: &str) -> (String, String) {
    let familiar = familiar_name(name);
    let pull_host = registry
        .host_from_cluster
        .as_deref()
        .unwrap_or(&registry.host);
    if let Some(rest) = familiar.strip_prefix(&format!("{}/", registry.host)) {
        return (familiar.to_owned(), format!("{pull_host}/{rest}"));
    }
    let repo = match &registry.single_name {
        Some(single) => single.clone(),
        None => escape(familiar),
    };
    (
        format!("{}/{repo}", registry.host),
        format!("{pull_host}/{repo}"),
    )
}

/// The digest (`sha256:…`) in `docker push` output (`TAG: digest: sha256:… size: N`).
pub fn pushed_digest(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|line| {
        let at = line.find("digest: sha256:")?;
        let digest = line[at + "digest: ".len()..]
            .split_whitespace()
            .next()?
            .to_owned();
        (digest.len() == "sha256:".len() + 64).then_some(digest)
    })
}

/// The registry a cluster advertises: the `localRegistryHosting.v1` document of
/// the `local-registry-hosting` ConfigMap (KEP-1755). `hostFromContainerRuntime`
/// is what the nodes pull from.
pub fn from_local_registry_hosting(document: &str) -> Result<Option<DefaultRegistry>, String> {
    let data = loop_lang::data::Data::from_yaml_stream(document)
        .map_err(|e| format!("localRegistryHosting.v1 is not YAML: {e}"))?;
    let Some(doc) = data.first() else {
        return Ok(None);
    };
    let text = |key: &str| {
        doc.get(key)
            .and_then(loop_lang::data::Data::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(text("host").map(|host| DefaultRegistry {
        host,
        host_from_cluster: text("hostFromContainerRuntime"),
        single_name: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(host: &str, from_cluster: Option<&str>, single: Option<&str>) -> DefaultRegistry {
        DefaultRegistry {
            host: host.into(),
            host_from_cluster: from_cluster.map(Into::into),
            single_name: single.map(Into::into),
        }
    }

    #[test]
    fn names_are_rewritten_as_tilt_does() {
        let r = reg("localhost:5000", None, None);
        assert_eq!(
            rewrite(&r, "shop/web"),
            (
                "localhost:5000/shop_web".into(),
                "localhost:5000/shop_web".into()
            )
        );
        assert_eq!(
            rewrite(&r, "docker.io/library/nginx").0,
            "localhost:5000/nginx"
        );
        assert_eq!(rewrite(&r, "gcr.io/a/b").0, "localhost:5000/gcr.io_a_b");
        assert_eq!(
            rewrite(&r, "localhost:5000/app").0,
            "localhost:5000/app",
            "already in the registry"
        );
        let r = reg("localhost:5000", Some("registry:5000"), None);
        assert_eq!(
            rewrite(&r, "shop/web"),
            (
                "localhost:5000/shop_web".into(),
                "registry:5000/shop_web".into()
            )
        );
        assert_eq!(rewrite(&r, "localhost:5000/app").1, "registry:5000/app");
        let r = reg("123.dkr.ecr.eu-west-1.amazonaws.com", None, Some("dev/all"));
        assert_eq!(
            rewrite(&r, "shop/web").0,
            "123.dkr.ecr.eu-west-1.amazonaws.com/dev/all"
        );
    }

    #[test]
    fn the_destination_follows_the_registry_then_the_cluster_kind() {
        let declared = reg("localhost:5000", None, None);
        let advertised = reg("localhost:5001", None, None);
        assert_eq!(
            Destination::choose("kind-dev", Some(&declared), Some(&advertised)),
            Destination::Registry(declared.clone())
        );
        assert_eq!(
            Destination::choose("kind-dev", None, Some(&advertised)),
            Destination::Registry(advertised)
        );
        assert_eq!(
            Destination::choose("kind-dev", None, None),
            Destination::Kind {
                cluster: "dev".into()
            }
        );
        assert_eq!(
            Destination::choose("k3d-x", None, None),
            Destination::K3d {
                cluster: "x".into()
            }
        );
        assert_eq!(
            Destination::choose("minikube", None, None),
            Destination::Local
        );
    }

    #[test]
    fn the_digest_is_read_from_docker_push() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let lines = vec![
            "The push refers to repository [localhost:5000/web]".to_owned(),
            "5f70bf18a086: Pushed".to_owned(),
            format!("loop-1: digest: {digest} size: 527"),
        ];
        assert_eq!(pushed_digest(&lines), Some(digest));
        assert_eq!(pushed_digest(&lines[..2]), None);
    }

    #[test]
    fn kep_1755_documents() {
        let doc = "host: \"localhost:5001\"\nhostFromContainerRuntime: \"kind-registry:5000\"\nhelp: \"https://kind.sigs.k8s.io/docs/user/local-registry/\"\n";
        assert_eq!(
            from_local_registry_hosting(doc).unwrap(),
            Some(reg("localhost:5001", Some("kind-registry:5000"), None))
        );
        assert_eq!(from_local_registry_hosting("help: x\n").unwrap(), None);
    }
}
