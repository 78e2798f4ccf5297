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

/// The conditions of a GatewayClass as `(type, status, reason, observedGeneration)`.
fn conditions(class: &serde_json::Value) -> Vec<(String, String, String, i64)> {
    let mut out: Vec<_> = class["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["type"].as_str().unwrap_or("").to_string(),
                        c["status"].as_str().unwrap_or("").to_string(),
                        c["reason"].as_str().unwrap_or("").to_string(),
                        c["observedGeneration"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn accepted(generation: i64) -> Vec<(String, String, String, i64)> {
    vec![
        ("Accepted".into(), "True".into(), "Accepted".into(), generation),
        ("SupportedVersion".into(), "True".into(), "SupportedVersion".into(), generation),
    ]
}

#[tokio::test]
async fn up_creates_its_gateway_class_and_accepts_the_classes_of_its_controller_only() {
    use crate::support::apiserver::resources::GATEWAY_CLASSES;
    let c = TestCluster::start().await;
    c.api.install_gateway_api();
    c.api.apply(
        GATEWAY_CLASSES,
        json!({"metadata": {"name": "also-ours"}, "spec": {"controllerName": "devingress.dev/gateway-controller"}}),
    );
    c.api.apply(
        GATEWAY_CLASSES,
        json!({"metadata": {"name": "envoy"}, "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let class = |name: &'static str| {
        let api = &c.api;
        async move { api.get(GATEWAY_CLASSES, "", name).unwrap_or_default() }
    };
    assert!(
        eventually(SETTLE, || async { conditions(&class("devingress").await) == accepted(1) }).await,
        "{}\n{}",
        class("devingress").await,
        d.log()
    );
    assert_eq!(class("devingress").await["spec"]["controllerName"], "devingress.dev/gateway-controller");
    assert!(d.log().contains("created GatewayClass devingress (controller devingress.dev/gateway-controller)"));
    assert!(eventually(SETTLE, || async { conditions(&class("also-ours").await) == accepted(1) }).await);
    assert_eq!(class("envoy").await["status"], serde_json::Value::Null, "another controller's class is left alone");
    let since = class("devingress").await["status"]["conditions"][0]["lastTransitionTime"].clone();

    // A spec change: observedGeneration follows, the transition time stays.
    c.api.apply(
        GATEWAY_CLASSES,
        json!({"metadata": {"name": "devingress"},
               "spec": {"controllerName": "devingress.dev/gateway-controller", "description": "edited"}}),
    );
    assert!(eventually(SETTLE, || async { conditions(&class("devingress").await) == accepted(2) }).await);
    assert_eq!(class("devingress").await["status"]["conditions"][0]["lastTransitionTime"], since);
}

#[tokio::test]
async fn a_gateway_api_release_devingress_does_not_support_is_not_accepted() {
    use crate::support::apiserver::resources::GATEWAY_CLASSES;
    let c = TestCluster::start().await;
    c.api.install_gateway_api_release("v2.0.0");
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let rejected = vec![
        ("Accepted".to_string(), "False".to_string(), "UnsupportedVersion".to_string(), 1),
        ("SupportedVersion".to_string(), "False".to_string(), "UnsupportedVersion".to_string(), 1),
    ];
    assert!(
        eventually(SETTLE, || async {
            conditions(&c.api.get(GATEWAY_CLASSES, "", "devingress").unwrap_or_default()) == rejected
        })
        .await,
        "{:?}\n{}",
        c.api.get(GATEWAY_CLASSES, "", "devingress"),
        d.log()
    );
}
