//! Against a real cluster: the current kubeconfig context (kind, minikube,
//! k3d…). Ignored by default; run with
//! `cargo test --test e2e real_cluster -- --ignored`.

use std::time::Duration;

use crate::support::devingress::{BIN, Devingress};

#[tokio::test]
#[ignore = "needs a real cluster in the current kubeconfig context"]
async fn real_cluster_routes_and_up() {
    let out = tokio::process::Command::new(BIN).args(["routes", "--wait", "30s"]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("HOST") || stdout.starts_with("No routes"), "{stdout}");
    let kubeconfig = std::env::var("KUBECONFIG")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".kube/config"));
    let d = Devingress::up(&kubeconfig, &["--no-https"]).await;
    assert!(d.wait_log("serving ", Duration::from_secs(30)).await, "{}", d.log());
    assert!(d.log().contains("connected: Kubernetes"), "{}", d.log());
}
