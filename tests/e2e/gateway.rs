//! The Gateway API: its CRDs missing, then installed while devingress runs.

use std::time::Duration;

use serde_json::json;

use crate::support::apiserver::resources::GATEWAYS;
use crate::support::cluster::TestCluster;
use crate::support::devingress::{Devingress, eventually, get};

const SETTLE: Duration = Duration::from_secs(15);

#[tokio::test]
async fn without_the_crds_up_says_once_how_to_install_them_and_follows_them_once_installed() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(d.wait_log("the cluster has no Gateway API CRDs", SETTLE).await, "{}", d.log());
    assert!(
        d.log().contains(
            "to install them: kubectl apply --server-side -f \
             https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.1/standard-install.yaml"
        ),
        "{}",
        d.log()
    );
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    // Asked again every few seconds, said once.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(d.log().matches("no Gateway API CRDs").count(), 1, "{}", d.log());
    let asked = c.api.requests().iter().filter(|r| *r == "GET /apis/gateway.networking.k8s.io/v1").count();
    assert!(asked >= 2, "discovery is asked again: {asked}");

    c.api.install_gateway_api();
    c.api.apply(
        GATEWAYS,
        json!({"metadata": {"name": "web", "namespace": "default"},
               "spec": {"gatewayClassName": "devingress", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
    );
    assert!(d.wait_log("the Gateway API CRDs are installed now", SETTLE).await, "{}", d.log());
    let watched = |path: &'static str| {
        let requests = c.api.requests();
        async move { requests.iter().any(|r| r.starts_with(&format!("GET {path}?")) && r.contains("watch=true")) }
    };
    for path in [
        "/apis/gateway.networking.k8s.io/v1/gatewayclasses",
        "/apis/gateway.networking.k8s.io/v1/gateways",
        "/apis/gateway.networking.k8s.io/v1/httproutes",
        "/apis/gateway.networking.k8s.io/v1/grpcroutes",
        "/apis/gateway.networking.k8s.io/v1beta1/referencegrants",
    ] {
        assert!(eventually(SETTLE, || watched(path)).await, "{path} is listed and watched: {:?}", c.api.requests());
    }
    // Ingresses were served all along, and still are.
    assert_eq!(get(d.port, "alpaca.example.com", "/").await.status, 200);
    let log = d.log();
    assert!(!log.contains("panicked") && !log.contains("cannot watch"), "{log}");
}
