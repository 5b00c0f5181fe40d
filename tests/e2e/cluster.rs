//! The Kubernetes examples against a real cluster (kind, k3d, minikube, ...):
//! runs only when `LOOP_E2E_KUBECONFIG` names a kubeconfig, and says it is skipped
//! otherwise. Building the example image needs Docker and kind or k3d.

use std::path::PathBuf;

use crate::support::{repo, run_loop_with};

fn kubeconfig() -> Option<PathBuf> {
    match std::env::var_os("LOOP_E2E_KUBECONFIG") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            eprintln!("skipped: LOOP_E2E_KUBECONFIG is not set (point it at a kind/k3d/minikube kubeconfig to run the real-cluster suite)");
            None
        }
    }
}

#[test]
fn k8s_shop_example_comes_up_and_goes_down_on_a_real_cluster() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let example = repo().join("examples/k8s-shop");
    let env = [("KUBECONFIG", kubeconfig.as_path())];
    let up = run_loop_with(&example, &["ci", "--timeout", "10m"], &env);
    assert_eq!(up.code, 0, "loop ci failed\n{}{}", up.stdout, up.stderr);
    assert!(up.stdout.contains("web │ [loop] ready in"), "{}", up.stdout);
    let down = run_loop_with(&example, &["down"], &env);
    assert_eq!(
        down.code, 0,
        "loop down failed\n{}{}",
        down.stdout, down.stderr
    );
    assert!(
        down.stdout.contains("deleting Deployment/default/web"),
        "{}",
        down.stdout
    );
}
