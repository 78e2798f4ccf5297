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

    http_gateway(&c);
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

/// Installs the Gateway API and a Gateway `default/web` of devingress's
/// class with one HTTP listener on port 80.
fn http_gateway(c: &TestCluster) {
    c.api.install_gateway_api();
    c.api.apply(
        GATEWAYS,
        json!({"metadata": {"name": "web", "namespace": "default"},
               "spec": {"gatewayClassName": "devingress", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
    );
}

/// A cluster with the examples, the HTTP Gateway `default/web` and `routes`
/// (HTTPRoutes).
async fn with_routes(routes: &[serde_json::Value]) -> TestCluster {
    use crate::support::apiserver::resources::HTTP_ROUTES;
    let mut c = TestCluster::start().await;
    c.examples().await;
    http_gateway(&c);
    for r in routes {
        c.api.apply(HTTP_ROUTES, r.clone());
    }
    c
}

/// Sends `n` GETs of `path` for `host` (with `headers`) and counts the answers by pod
/// (`"500"` for 500s, `"404"` for 404s).
async fn tally(
    port: u16,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    use http_body_util::{BodyExt, Full};
    let client = crate::support::devingress::http_client();
    let mut out = std::collections::BTreeMap::new();
    for _ in 0..n {
        let mut req = http::Request::get(format!("http://127.0.0.1:{port}{path}")).header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = client.request(req.body(Full::new(bytes::Bytes::new())).unwrap()).await.unwrap();
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let key = match status {
            200 => serde_json::from_slice::<serde_json::Value>(&body).unwrap()["pod"].as_str().unwrap().to_string(),
            other => other.to_string(),
        };
        *out.entry(key).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn http_routes_on_an_http_listener_match_headers_split_by_weight_and_take_their_host_from_ingresses() {
    use crate::support::apiserver::resources::{HTTP_ROUTES, REFERENCE_GRANTS};
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.service("other", "remote", "", 8080, json!(8080));
    c.pods("other", "remote", "", 8080, 1).await;
    http_gateway(&c);
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "shop", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["shop.example.com"],
                        "rules": [
                            {"matches": [{"headers": [{"name": "x-canary", "value": "yes"}]}],
                             "backendRefs": [{"name": "bandicoot", "port": 8080}]},
                            {"backendRefs": [{"name": "alpaca", "port": 8080, "weight": 3},
                                             {"name": "bandicoot", "port": 8080, "weight": 1}]}]}}),
    );
    // Takes bandicoot.example.com from its Ingress (rule 30), with a broken backend for half.
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "takeover", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "web", "sectionName": "http"}], "hostnames": ["bandicoot.example.com"],
                        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/half"}}],
                                   "backendRefs": [{"name": "be-default", "port": 8080}, {"name": "missing", "port": 8080}]},
                                  {"matches": [{"path": {"type": "Exact", "value": "/remote"}}],
                                   "backendRefs": [{"name": "remote", "namespace": "other", "port": 8080}]}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(
        eventually(SETTLE, || async {
            tally(d.port, "shop.example.com", "/", &[], 1)
                .await
                .keys()
                .all(|k| k.starts_with("alpaca") || k.starts_with("bandicoot"))
        })
        .await,
        "{}",
        d.log()
    );
    // The header match wins over the catch-all rule.
    assert_eq!(
        tally(d.port, "shop.example.com", "/", &[("x-canary", "yes")], 20).await,
        [("bandicoot-0".to_string(), 20)].into()
    );
    // 3:1 by weight over 1,000 requests, within 5 points.
    let split = tally(d.port, "shop.example.com", "/", &[], 1000).await;
    let alpaca: usize = split.iter().filter(|(k, _)| k.starts_with("alpaca")).map(|(_, n)| n).sum();
    assert!((700..=800).contains(&alpaca), "{split:?}");
    assert_eq!(split.get("bandicoot-0").copied().unwrap_or(0), 1000 - alpaca, "{split:?}");
    // The route's hostname resolves through devingress's DNS, like an Ingress host.
    crate::support::devingress::require("dig", "dnsutils", "it asks devingress's DNS server");
    let dig = std::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &d.dns_port.unwrap().to_string(), "+short", "shop.example.com", "A"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&dig.stdout).trim(), "127.0.0.1");
    // The Ingress's other host is untouched; the taken host follows the HTTPRoute.
    assert_eq!(
        get(d.port, "alpaca.example.com", "/").await.pod().as_deref().map(|p| p.starts_with("alpaca")),
        Some(true)
    );
    assert_eq!(get(d.port, "bandicoot.example.com", "/").await.status, 404, "no rule of the HTTPRoute matches /");
    // An invalid backendRef answers 500 for exactly its share.
    let half = tally(d.port, "bandicoot.example.com", "/half", &[], 40).await;
    assert_eq!((half.get("be-default-0"), half.get("500")), (Some(&20), Some(&20)), "{half:?}");
    // Across namespaces only with a ReferenceGrant.
    let remote = || async {
        let a = get(d.port, "bandicoot.example.com", "/remote").await;
        (a.status, a.pod())
    };
    assert_eq!(remote().await.0, 500);
    c.api.apply(
        REFERENCE_GRANTS,
        json!({"metadata": {"name": "from-default", "namespace": "other"},
               "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "default"}],
                        "to": [{"group": "", "kind": "Service"}]}}),
    );
    assert!(
        eventually(SETTLE, || async { remote().await == (200, Some("remote-0".to_string())) }).await,
        "{}",
        d.log()
    );

    // `routes` and `status` list the Gateway routes in lookup order.
    let out = tokio::process::Command::new(crate::support::devingress::BIN)
        .args(["routes", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .await
        .unwrap();
    let routes = String::from_utf8_lossy(&out.stdout);
    eprintln!("{routes}");
    let row = |needles: &[&str]| routes.lines().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(row(&["LISTENER", "HOST", "MATCH", "BACKENDS", "HTTPROUTE", "GATEWAY"]), "{routes}");
    assert!(
        row(&[
            "http",
            "shop.example.com",
            "/ x-canary=yes",
            "default/bandicoot:8080 w1 1/1",
            "default/shop rule 0",
            "default/web http"
        ]),
        "{routes}"
    );
    assert!(
        row(&["shop.example.com", "default/alpaca:8080 w3 2/2, default/bandicoot:8080 w1 1/1", "default/shop rule 1"]),
        "{routes}"
    );
    assert!(row(&["bandicoot.example.com", "/half", "500 (BackendNotFound) w1"]), "{routes}");
    let out = tokio::process::Command::new(crate::support::devingress::BIN)
        .arg("status")
        .env("DEVINGRESS_RUNTIME_DIR", d.runtime_dir())
        .output()
        .await
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.lines().any(|l| l.contains("=/remote")
            && l.contains("other/remote:8080")
            && l.contains("default/takeover rule 1")),
        "{status}"
    );
}

#[tokio::test]
async fn gateways_and_routes_get_their_status_and_a_clean_exit_leaves_them_pending() {
    use crate::support::apiserver::resources::HTTP_ROUTES;
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.api.install_gateway_api();
    c.api.apply(
        GATEWAYS,
        json!({"metadata": {"name": "web", "namespace": "default"},
               "spec": {"gatewayClassName": "devingress", "listeners": [
                   {"name": "http", "port": 80, "protocol": "HTTP"},
                   {"name": "mysql", "port": 3306, "protocol": "TCP"}]}}),
    );
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "ok", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["ok.example.com"],
                        "rules": [{"backendRefs": [{"name": "alpaca", "port": 8080}, {"name": "nope", "port": 8080}]}]}}),
    );
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "stranger", "namespace": "elsewhere"},
               "spec": {"parentRefs": [{"name": "web", "namespace": "default"}],
                        "rules": [{"backendRefs": [{"name": "alpaca", "port": 8080}]}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let gateway = || c.api.get(GATEWAYS, "default", "web").unwrap()["status"].clone();
    let cond = |v: &serde_json::Value, kind: &str| {
        v["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .map(|c| (c["status"].as_str().unwrap_or("").to_string(), c["reason"].as_str().unwrap_or("").to_string()))
    };
    let pair = |s: &str, r: &str| Some((s.to_string(), r.to_string()));
    assert!(
        eventually(SETTLE, || async { cond(&gateway(), "Programmed") == pair("True", "Programmed") }).await,
        "{}\n{}",
        gateway(),
        d.log()
    );
    let g = gateway();
    assert_eq!(g["addresses"], json!([{"type": "IPAddress", "value": "127.0.0.1"}]));
    // Accepted, though one listener (TCP) is not valid.
    assert_eq!(cond(&g, "Accepted"), pair("True", "ListenersNotValid"));
    assert_eq!(g["listeners"][0]["attachedRoutes"], 1, "{g}");
    assert_eq!(cond(&g["listeners"][0], "Programmed"), pair("True", "Programmed"));
    assert_eq!(cond(&g["listeners"][1], "Accepted"), pair("False", "UnsupportedProtocol"));
    assert_eq!(g["listeners"][1]["supportedKinds"], json!([]));
    assert_eq!(g["listeners"][0]["conditions"][0]["observedGeneration"], 1);

    let parent = |ns: &str, name: &str| c.api.get(HTTP_ROUTES, ns, name).unwrap()["status"]["parents"][0].clone();
    assert!(
        eventually(SETTLE, || async { cond(&parent("default", "ok"), "Accepted") == pair("True", "Accepted") }).await
    );
    let ok = parent("default", "ok");
    assert_eq!(ok["controllerName"], "devingress.dev/gateway-controller");
    assert_eq!(ok["parentRef"]["name"], "web");
    assert_eq!(cond(&ok, "ResolvedRefs"), pair("False", "BackendNotFound"));
    assert!(
        eventually(SETTLE, || async {
            cond(&parent("elsewhere", "stranger"), "Accepted") == pair("False", "NotAllowedByListeners")
        })
        .await
    );

    // A clean exit: no address, Programmed=False (Pending).
    let (exit, log) = d.stop(SETTLE).await;
    assert!(exit.expect("exits").success(), "{log}");
    let g = gateway();
    assert_eq!(cond(&g, "Programmed"), pair("False", "Pending"), "{g}\n{log}");
    assert!(g.get("addresses").is_none_or(|a| a.is_null() || a == &json!([])), "{g}");
}

#[tokio::test]
async fn filters_modify_headers_redirect_and_rewrite() {
    use crate::support::apiserver::resources::HTTP_ROUTES;
    use http_body_util::{BodyExt, Full};
    let mut c = TestCluster::start().await;
    c.examples().await;
    http_gateway(&c);
    let to_alpaca = json!([{"name": "alpaca", "port": 8080}]);
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "filters", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["filters.example.com"], "rules": [
                   {"matches": [{"path": {"type": "PathPrefix", "value": "/headers"}}], "backendRefs": to_alpaca,
                    "filters": [
                        {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                            "set": [{"name": "X-Env", "value": "test"}], "add": [{"name": "x-add", "value": "two"}],
                            "remove": ["x-gone"]}},
                        {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x-resp", "value": "yes"}]}}]},
                   {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
                    "filters": [{"type": "RequestRedirect", "requestRedirect": {
                        "scheme": "https", "statusCode": 301,
                        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}]},
                   {"matches": [{"path": {"type": "Exact", "value": "/per-backend"}}], "backendRefs": [
                       {"name": "alpaca", "port": 8080, "filters": [{"type": "RequestHeaderModifier",
                           "requestHeaderModifier": {"set": [{"name": "x-backend", "value": "a"}]}}]},
                       {"name": "bandicoot", "port": 8080, "filters": [{"type": "RequestHeaderModifier",
                           "requestHeaderModifier": {"set": [{"name": "x-backend", "value": "b"}]}}]}]},
                   {"matches": [{"path": {"type": "Exact", "value": "/moved"}}],
                    "filters": [{"type": "RequestRedirect", "requestRedirect": {
                        "hostname": "elsewhere.example.com", "port": 8443, "statusCode": 308,
                        "path": {"type": "ReplaceFullPath", "replaceFullPath": "/here"}}}]},
                   {"matches": [{"path": {"type": "PathPrefix", "value": "/full"}}], "backendRefs": to_alpaca,
                    "filters": [{"type": "URLRewrite", "urlRewrite": {
                        "path": {"type": "ReplaceFullPath", "replaceFullPath": "/whole"}}}]},
                   {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": to_alpaca,
                    "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "internal.example",
                        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}}]}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let send = |path: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let port = d.port;
        async move {
            let mut req =
                http::Request::get(format!("http://127.0.0.1:{port}{path}")).header("host", "filters.example.com");
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let res = crate::support::devingress::http_client()
                .request(req.body(Full::new(bytes::Bytes::new())).unwrap())
                .await
                .unwrap();
            let (parts, body) = res.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (parts, serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default())
        }
    };
    // Served by the route (not yet the Ingresses' default backend, as before the CRDs are found).
    assert!(
        eventually(SETTLE, || async {
            send("/headers", vec![]).await.1["pod"].as_str().is_some_and(|p| p.starts_with("alpaca"))
        })
        .await,
        "{}",
        d.log()
    );
    let (parts, seen) = send("/headers", vec![("x-env", "prod"), ("x-add", "one"), ("x-gone", "bye")]).await;
    assert_eq!(seen["headers"]["x-env"], "test", "{seen}");
    assert!(seen["headers"]["x-add"].as_str().is_some_and(|v| v.contains("one") && v.contains("two")), "{seen}");
    assert!(seen["headers"].get("x-gone").is_none(), "{seen}");
    assert_eq!(parts.headers["x-resp"], "yes");

    let (parts, _) = send("/old/page?q=1", vec![]).await;
    assert_eq!(parts.status, 301);
    // HTTPS is served on another port than 443 here: the Location names it.
    assert_eq!(
        parts.headers["location"],
        format!("https://filters.example.com:{}/new/page?q=1", d.https_port.unwrap()).as_str()
    );

    // A backendRef's own filters apply to the requests it takes, and only to those.
    for _ in 0..6 {
        let (_, seen) = send("/per-backend", vec![]).await;
        let want = if seen["pod"].as_str().unwrap().starts_with("alpaca") { "a" } else { "b" };
        assert_eq!(seen["headers"]["x-backend"], want, "{seen}");
    }

    let (parts, _) = send("/moved", vec![]).await;
    assert_eq!(parts.status, 308);
    assert_eq!(parts.headers["location"], "http://elsewhere.example.com:8443/here");

    let (_, seen) = send("/full/any/thing?y=2", vec![]).await;
    assert_eq!(seen["path"], "/whole?y=2", "{seen}");
    assert_eq!(seen["headers"]["host"], "filters.example.com", "{seen}");

    let (parts, seen) = send("/api/items?x=1", vec![]).await;
    assert_eq!(parts.status, 200);
    assert_eq!(seen["path"], "/v2/items?x=1", "{seen}");
    assert_eq!(seen["headers"]["host"], "internal.example", "{seen}");
}

/// One gRPC-framed message.
fn grpc_message(text: &str) -> bytes::Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    bytes::Bytes::from(out)
}

/// Calls `path` on `host` through devingress over HTTP/2 with prior
/// knowledge, sending `messages` one at a time and reading each reply before
/// the next (a streaming RPC; one message is a unary call). Returns the
/// replies and `grpc-status`.
async fn grpc_call(port: u16, host: &str, path: &str, messages: &[&str]) -> (u16, Vec<bytes::Bytes>, Option<String>) {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>(4);
    let body = http_body_util::StreamBody::new(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|f| (f, rx))
    })));
    let req = http::Request::post(format!("http://{host}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let mut body = res.into_body();
    let mut replies = Vec::new();
    if status == 200 {
        for m in messages {
            tx.send(Ok(hyper::body::Frame::data(grpc_message(m)))).await.unwrap();
            let frame =
                tokio::time::timeout(Duration::from_secs(10), body.frame()).await.expect("reply").unwrap().unwrap();
            replies.push(frame.into_data().unwrap());
        }
    }
    drop(tx);
    let mut grpc_status = None;
    while let Some(Ok(frame)) = tokio::time::timeout(Duration::from_secs(10), body.frame()).await.unwrap() {
        if let Ok(t) = frame.into_trailers() {
            grpc_status = t.get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_string);
        }
    }
    (status, replies, grpc_status)
}

#[tokio::test]
async fn grpc_routes_match_methods_and_stream_over_h2c() {
    use crate::support::apiserver::resources::{GRPC_ROUTES, SERVICES};
    let mut c = TestCluster::start().await;
    c.examples().await;
    // No appProtocol: a GRPCRoute's backends are spoken to over h2c anyway.
    c.api.apply(
        SERVICES,
        json!({"metadata": {"name": "echo", "namespace": "default"}, "spec": {"ports": [{"name": "grpc", "port": 9000, "targetPort": 8080}]}}),
    );
    c.pods("default", "echo", "grpc", 8080, 1).await;
    http_gateway(&c);
    c.api.apply(
        GRPC_ROUTES,
        json!({"metadata": {"name": "echo", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["grpc.example.com"], "rules": [
                   {"matches": [{"method": {"service": "echo.Echo", "method": "Chat"}}],
                    "backendRefs": [{"name": "echo", "port": 9000}]},
                   {"matches": [{"method": {"service": "echo.Echo", "method": "Unary"}},
                                {"method": {"service": "echo.Echo"}, "headers": [{"name": "x-variant", "value": "b"}]}],
                    "backendRefs": [{"name": "echo", "port": 9000}]}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(
        eventually(SETTLE, || async {
            // Served by the route, not yet the Ingresses' default backend.
            grpc_call(d.port, "grpc.example.com", "/echo.Echo/Unary", &["ping"]).await.1
                == [grpc_message("echo-0: ping")]
        })
        .await,
        "{}",
        d.log()
    );
    // Unary.
    let (_, replies, status) = grpc_call(d.port, "grpc.example.com", "/echo.Echo/Unary", &["ping"]).await;
    assert_eq!(replies, [grpc_message("echo-0: ping")]);
    assert_eq!(status.as_deref(), Some("0"));
    // Bidirectional streaming: each reply before the next message.
    let (_, replies, status) = grpc_call(d.port, "grpc.example.com", "/echo.Echo/Chat", &["one", "two", "three"]).await;
    assert_eq!(replies, ["one", "two", "three"].map(|m| grpc_message(&format!("echo-0: {m}"))));
    assert_eq!(status.as_deref(), Some("0"));
    // A method no rule matches: 404.
    assert_eq!(grpc_call(d.port, "grpc.example.com", "/echo.Echo/Other", &["x"]).await.0, 404);
    // The route's status.
    let parent = || c.api.get(GRPC_ROUTES, "default", "echo").unwrap()["status"]["parents"][0].clone();
    assert!(eventually(SETTLE, || async { parent()["conditions"][0]["reason"] == "Accepted" }).await, "{}", parent());
}

#[tokio::test]
async fn a_route_edited_while_traffic_flows_is_live_within_a_second_and_no_request_fails() {
    use crate::support::apiserver::resources::HTTP_ROUTES;
    let mut c = TestCluster::start().await;
    c.examples().await;
    http_gateway(&c);
    let route = |svc: &str| {
        json!({"metadata": {"name": "live", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["live.example.com"],
                        "rules": [{"backendRefs": [{"name": svc, "port": 8080}]}]}})
    };
    c.api.apply(HTTP_ROUTES, route("alpaca"));
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let pod = || async { get(d.port, "live.example.com", "/").await };
    assert!(
        eventually(SETTLE, || async { pod().await.pod().is_some_and(|p| p.starts_with("alpaca")) }).await,
        "{}",
        d.log()
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = d.port;
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let a = get(port, "live.example.com", "/").await;
                answers.push((std::time::Instant::now(), a.status, a.pod().unwrap_or_default()));
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let edited = std::time::Instant::now();
    c.api.apply(HTTP_ROUTES, route("bandicoot"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = load.await.unwrap();
    let failed: Vec<_> = answers.iter().filter(|(_, s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(3)]
    );
    let first_new = answers.iter().find(|(_, _, p)| p.starts_with("bandicoot")).map(|(t, ..)| t.duration_since(edited));
    eprintln!("{} requests; the edit was live after {first_new:?}", answers.len());
    assert!(first_new.is_some_and(|t| t < Duration::from_secs(1)), "live within a second: {first_new:?}");
    assert!(answers.last().is_some_and(|(_, _, p)| p.starts_with("bandicoot")));
}

#[tokio::test]
async fn a_rule_timeout_answers_504_when_the_backend_is_slower() {
    let c = with_routes(&[json!({"metadata": {"name": "timeouts", "namespace": "default"},
                   "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["slow.example.com"], "rules": [
                       {"matches": [{"path": {"type": "PathPrefix", "value": "/slow/limited"}}],
                        "timeouts": {"request": "300ms"}, "backendRefs": [{"name": "alpaca", "port": 8080}]},
                       {"backendRefs": [{"name": "alpaca", "port": 8080}]}]}})])
    .await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(
        eventually(SETTLE, || async {
            get(d.port, "slow.example.com", "/").await.pod().is_some_and(|p| p.starts_with("alpaca"))
        })
        .await,
        "{}",
        d.log()
    );
    // The pod takes 700 ms on /slow: within no limit it answers; over a 300 ms one, 504.
    let started = std::time::Instant::now();
    let limited = get(d.port, "slow.example.com", "/slow/limited").await;
    let took = started.elapsed();
    assert_eq!(limited.status, 504, "{}", limited.body);
    assert!(limited.body.contains("HTTPRoute default/timeouts rule 0 sets that timeout"), "{}", limited.body);
    assert!(took < Duration::from_millis(650), "answered after {took:?}");
    assert_eq!(get(d.port, "slow.example.com", "/slow/free").await.status, 200);
}

/// Sends the head of a POST to `path` and part of its body, then closes the
/// connection: a body cut short. Chunked, or with a `Content-Length` it never reaches.
async fn cut_short_post(port: u16, host: &str, path: &str, chunked: bool) {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let framing = if chunked { "Transfer-Encoding: chunked" } else { "Content-Length: 1000000" };
    let head = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\n{framing}\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let part = vec![b'p'; 50_000];
    if chunked {
        tcp.write_all(format!("{:x}\r\n", part.len()).as_bytes()).await.unwrap();
        tcp.write_all(&part).await.unwrap();
        tcp.write_all(b"\r\n").await.unwrap();
    } else {
        tcp.write_all(&part).await.unwrap();
    }
    tcp.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn request_mirror_copies_its_share_of_requests_bodies_whole_and_never_a_short_body() {
    use crate::support::apiserver::resources::HTTP_ROUTES;
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.service("default", "mirror", "", 8080, json!(8080));
    c.pods("default", "mirror", "", 8080, 1).await;
    http_gateway(&c);
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "mirrored", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["mirror.example.com"], "rules": [
                   {"backendRefs": [{"name": "alpaca", "port": 8080}],
                    "filters": [{"type": "RequestMirror", "requestMirror": {
                        "backendRef": {"name": "mirror", "port": 8080}, "percent": 50}}]}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(
        eventually(SETTLE, || async {
            get(d.port, "mirror.example.com", "/x").await.pod().is_some_and(|p| p.starts_with("alpaca"))
        })
        .await,
        "{}",
        d.log()
    );
    let seen = |pod: &str| c.pods.iter().find(|p| p.name == pod).unwrap().seen.lock().unwrap().clone();
    // Ten uploads of 100 KiB: each answered by the real backend, half copied whole.
    use http_body_util::{BodyExt, Full};
    let client = crate::support::devingress::http_client();
    for i in 0..10 {
        let req = http::Request::post(format!("http://127.0.0.1:{}/upload/{i}", d.port))
            .header("host", "mirror.example.com")
            .body(Full::new(bytes::Bytes::from(vec![b'u'; 100 * 1024])))
            .unwrap();
        let res = client.request(req).await.unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert!(body["pod"].as_str().unwrap().starts_with("alpaca"), "{body}");
        assert_eq!(body["body_len"], 100 * 1024);
    }
    let uploads = || {
        seen("mirror-0").into_iter().filter(|r| r["path"].as_str().unwrap().starts_with("/upload/")).collect::<Vec<_>>()
    };
    assert!(eventually(SETTLE, || async { uploads().len() >= 5 }).await, "{:?}\n{}", uploads(), d.log());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let copies = uploads();
    assert_eq!(copies.len(), 5, "50 percent of ten: {copies:?}");
    assert!(copies.iter().all(|r| r["method"] == "POST" && r["body_len"] == 100 * 1024 && r["complete"] == true));
    // Bodies cut short, with a length and chunked: neither the backend nor the
    // mirror ever reads one as complete.
    for (i, chunked) in [false, false, true, true].into_iter().enumerate() {
        cut_short_post(d.port, "mirror.example.com", &format!("/cut/{i}"), chunked).await;
    }
    let cut = |pod: &str| {
        seen(pod).into_iter().filter(|r| r["path"].as_str().unwrap().starts_with("/cut/")).collect::<Vec<_>>()
    };
    assert!(eventually(SETTLE, || async { cut("mirror-0").len() >= 2 }).await, "{:?}\n{}", cut("mirror-0"), d.log());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut all = cut("mirror-0");
    all.extend(cut("alpaca-0"));
    all.extend(cut("alpaca-1"));
    assert!(all.iter().all(|r| r["complete"] == false), "{all:?}");
}

#[tokio::test]
async fn a_service_without_selector_reaches_the_pod_of_a_hand_written_endpoint_by_its_ip() {
    use crate::support::apiserver::resources::{ENDPOINT_SLICES, HTTP_ROUTES, PODS, SERVICES};
    let mut c = TestCluster::start().await;
    c.examples().await;
    // A headless Service without a selector, its EndpointSlice written by hand:
    // one endpoint at a pod's IP without a targetRef, one at an IP no pod has.
    c.pod("default", "manual", "manual-0", 8080).await;
    let mut pod = c.api.get(PODS, "default", "manual-0").unwrap();
    pod["status"] = json!({"phase": "Running", "podIP": "10.244.7.7", "podIPs": [{"ip": "10.244.7.7"}]});
    // Status is a subresource that an update keeps: write the pod anew.
    c.api.delete(PODS, "default", "manual-0");
    c.api.apply(PODS, pod);
    c.api.apply(
        SERVICES,
        json!({"metadata": {"name": "manual", "namespace": "default"},
               "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}]}}),
    );
    c.api.apply(
        ENDPOINT_SLICES,
        json!({"metadata": {"name": "manual-1", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "manual",
                                       "endpointslice.kubernetes.io/managed-by": "someone.example.com"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.244.7.7"], "conditions": {"ready": true}},
                             {"addresses": ["192.0.2.10"], "conditions": {"ready": true}}],
               "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}]}),
    );
    // And one whose only endpoint is no pod's.
    c.api.apply(
        SERVICES,
        json!({"metadata": {"name": "outside", "namespace": "default"},
               "spec": {"ports": [{"port": 8080, "protocol": "TCP"}]}}),
    );
    c.api.apply(
        ENDPOINT_SLICES,
        json!({"metadata": {"name": "outside-1", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "outside"}},
               "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.11"]}],
               "ports": [{"name": "", "port": 8080, "protocol": "TCP"}]}),
    );
    http_gateway(&c);
    for (name, svc) in [("manual", "manual"), ("outside", "outside")] {
        c.api.apply(
            HTTP_ROUTES,
            json!({"metadata": {"name": name, "namespace": "default"},
                   "spec": {"parentRefs": [{"name": "web"}], "hostnames": [format!("{name}.example.com")],
                            "rules": [{"backendRefs": [{"name": svc, "port": 8080}]}]}}),
        );
    }
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(
        eventually(SETTLE, || async {
            get(d.port, "manual.example.com", "/").await.pod().as_deref() == Some("manual-0")
        })
        .await,
        "{}",
        d.log()
    );
    // Every request goes to the pod; the endpoint without one is never tried.
    for _ in 0..20 {
        assert_eq!(get(d.port, "manual.example.com", "/").await.pod().as_deref(), Some("manual-0"));
    }
    let asked = c.api.requests();
    assert!(
        asked.iter().any(|r| r.starts_with("GET /api/v1/namespaces/default/pods?")
            && r.contains("fieldSelector=status.podIP%3D10.244.7.7")),
        "{asked:?}"
    );
    let outside = get(d.port, "outside.example.com", "/").await;
    assert_eq!(outside.status, 503, "{}", outside.body);
    assert!(outside.body.contains("name no pod (no targetRef) and no pod has their IP"), "{}", outside.body);
    // `routes` counts both endpoints, one ready with a pod behind it.
    let out = tokio::process::Command::new(crate::support::devingress::BIN)
        .args(["routes", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .await
        .unwrap();
    let routes = String::from_utf8_lossy(&out.stdout);
    assert!(
        routes.lines().any(|l| l.contains("manual.example.com") && l.contains("default/manual:8080 w1 1/2")),
        "{routes}"
    );
}

#[tokio::test]
async fn cors_preflights_are_answered_here_and_answers_to_allowed_origins_are_marked() {
    use http_body_util::{BodyExt, Full};
    // As the conformance test HTTPRouteCORS's first rule.
    let c = with_routes(&[
        json!({"metadata": {"name": "cors", "namespace": "default"},
                   "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["cors.example.com"], "rules": [
                       {"matches": [{"path": {"type": "PathPrefix", "value": "/cors-1"}}],
                        "backendRefs": [{"name": "alpaca", "port": 8080}],
                        "filters": [{"type": "CORS", "cors": {
                            "allowOrigins": ["https://www.foo.com", "https://*.bar.com"],
                            "allowMethods": ["GET", "OPTIONS"], "allowHeaders": ["x-header-1", "x-header-2"],
                            "exposeHeaders": ["x-header-3", "x-header-4"], "allowCredentials": true, "maxAge": 3600}}]}]}}),
    ])
    .await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let send = |method: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let port = d.port;
        async move {
            let mut req = http::Request::builder()
                .method(method)
                .uri(format!("http://127.0.0.1:{port}/cors-1"))
                .header("host", "cors.example.com");
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let res = crate::support::devingress::http_client()
                .request(req.body(Full::new(bytes::Bytes::new())).unwrap())
                .await
                .unwrap();
            let (parts, body) = res.into_parts();
            (parts, String::from_utf8_lossy(&body.collect().await.unwrap().to_bytes()).into_owned())
        }
    };
    assert!(eventually(SETTLE, || async { send("GET", vec![]).await.1.contains("alpaca") }).await, "{}", d.log());
    let h = |parts: &http::response::Parts, name: &str| {
        parts.headers.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    };
    // A preflight from an origin under the wildcard: answered by devingress, not the pod.
    let (parts, body) = send(
        "OPTIONS",
        vec![
            ("origin", "https://xpto.www.bar.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ],
    )
    .await;
    assert_eq!(parts.status, 204, "{body}");
    assert!(body.is_empty(), "{body}");
    assert_eq!(h(&parts, "access-control-allow-origin"), "https://xpto.www.bar.com");
    assert_eq!(h(&parts, "access-control-allow-methods"), "GET, OPTIONS");
    assert_eq!(h(&parts, "access-control-allow-headers"), "x-header-1, x-header-2");
    assert_eq!(h(&parts, "access-control-expose-headers"), "x-header-3, x-header-4");
    assert_eq!(h(&parts, "access-control-max-age"), "3600");
    assert_eq!(h(&parts, "access-control-allow-credentials"), "true");
    // From an origin not listed: refused, without the headers.
    let (parts, body) =
        send("OPTIONS", vec![("origin", "https://foobar.com"), ("access-control-request-method", "GET")]).await;
    assert_eq!(parts.status, 403);
    assert!(parts.headers.get("access-control-allow-origin").is_none());
    assert!(body.contains("allowOrigins"), "{body}");
    // A simple request goes to the pod; the answer names the allowed origin.
    let (parts, body) = send("GET", vec![("origin", "https://www.foo.com")]).await;
    assert!(body.contains("alpaca"), "{body}");
    assert_eq!(h(&parts, "access-control-allow-origin"), "https://www.foo.com");
    assert_eq!(h(&parts, "vary"), "Origin");
    let (parts, body) = send("GET", vec![("origin", "https://foobar.com")]).await;
    assert!(body.contains("alpaca"), "{body}");
    assert!(parts.headers.get("access-control-allow-origin").is_none());
}
