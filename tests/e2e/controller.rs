//! devingress toward the cluster as a controller: its IngressClass, the
//! class policy, and status write-back (rules 1 to 4).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::apiserver::resources::{INGRESS_CLASSES, INGRESSES};
use crate::support::apiserver::store::Store;
use crate::support::cluster::TestCluster;
use crate::support::devingress::{Devingress, eventually, get};

const SETTLE: Duration = Duration::from_secs(15);

fn lb(c: &TestCluster, name: &str) -> Value {
    c.api.get(INGRESSES, "default", name).map(|i| i["status"]["loadBalancer"].clone()).unwrap_or(Value::Null)
}

/// Sets an Ingress's status as another controller would (merge patch, manager "unknown").
fn other_controller_sets_status(c: &TestCluster, name: &str, ip: &str) {
    let key = Store::key(&INGRESSES, "default", name);
    let mut store = c.api.shared.store.lock().unwrap();
    store.status_owners.entry(key.clone()).or_default().insert(".status.loadBalancer.ingress".into(), "unknown".into());
    store.set_status(&key, INGRESSES, json!({"loadBalancer": {"ingress": [{"ip": ip}]}}));
}

fn simple(c: &TestCluster, name: &str, host: &str, class: Option<&str>) {
    let mut spec = json!({"rules": [{"host": host, "http": {"paths": [
        {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]});
    if let Some(class) = class {
        spec["ingressClassName"] = json!(class);
    }
    c.ingress("default", name, spec);
}

#[tokio::test]
async fn creates_its_ingress_class_and_writes_and_removes_status() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    simple(&c, "claimed", "claimed.example.com", Some("nginx"));
    other_controller_sets_status(&c, "claimed", "172.18.0.5");
    let d = Devingress::up(&c.kubeconfig, &["--default-class"]).await;

    assert!(
        eventually(SETTLE, || async { c.api.get(INGRESS_CLASSES, "", "devingress").is_some() }).await,
        "{}",
        d.log()
    );
    let class = c.api.get(INGRESS_CLASSES, "", "devingress").unwrap();
    assert_eq!(class["spec"]["controller"], "devingress.dev/ingress-controller");
    assert_eq!(class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"], "true");

    let ours = json!({"ingress": [{"ip": "127.0.0.1"}]});
    assert!(
        eventually(SETTLE, || async { lb(&c, "host-ingress") == ours && lb(&c, "path-ingress") == ours }).await,
        "{}",
        d.log()
    );
    // Served (every class by default) but another controller's address stays.
    assert_eq!(get(d.port, "claimed.example.com", "/").await.pod().as_deref(), Some("bandicoot-0"));
    assert_eq!(lb(&c, "claimed"), json!({"ingress": [{"ip": "172.18.0.5"}]}));
    assert!(d.wait_log("Ingress default/claimed: another controller", SETTLE).await, "{}", d.log());

    // An Ingress that stops being served loses the address.
    c.api.apply(
        INGRESSES,
        json!({"metadata": {"name": "path-ingress", "namespace": "default"}, "spec": {"rules": [{"host": "bandicoot.example.com", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "bandicoot", "port": {"name": "nope"}}}}]}}]}}),
    );
    assert!(eventually(SETTLE, || async { lb(&c, "path-ingress").get("ingress").is_none() }).await, "{}", d.log());

    // A clean exit removes what devingress wrote, and only that.
    let status = d.stop(Duration::from_secs(15)).await;
    assert!(status.0.unwrap().success(), "{}", status.1);
    assert_eq!(lb(&c, "host-ingress").get("ingress"), None, "{}", status.1);
    assert_eq!(lb(&c, "claimed"), json!({"ingress": [{"ip": "172.18.0.5"}]}));
    assert!(status.1.contains("removed devingress's address from the status of 1 Ingress"), "{}", status.1);
}

#[tokio::test]
async fn strict_serves_only_its_class_and_unknown_classes_get_no_status() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.api.delete(INGRESSES, "default", "host-ingress");
    c.api.delete(INGRESSES, "default", "path-ingress");
    simple(&c, "mine", "mine.example.com", Some("devingress"));
    simple(&c, "unknown", "unknown.example.com", Some("does-not-exist"));
    simple(&c, "nginx", "nginx.example.com", Some("nginx"));
    simple(&c, "classless", "classless.example.com", None);
    c.api
        .apply(INGRESS_CLASSES, json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}));
    let d = Devingress::up(&c.kubeconfig, &["--strict"]).await;
    assert!(
        eventually(SETTLE, || async {
            get(d.port, "mine.example.com", "/").await.pod().as_deref() == Some("bandicoot-0")
        })
        .await,
        "{}",
        d.log()
    );
    for host in ["unknown.example.com", "nginx.example.com", "classless.example.com"] {
        assert_eq!(get(d.port, host, "/").await.status, 404, "{host}");
    }
    assert!(eventually(SETTLE, || async { lb(&c, "mine") == json!({"ingress": [{"ip": "127.0.0.1"}]}) }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["unknown", "nginx", "classless"] {
        assert_eq!(lb(&c, name), json!({}), "{name} gets no status");
    }
    // Making devingress's class the default brings in the class-less one.
    c.api.apply(
        INGRESS_CLASSES,
        json!({"metadata": {"name": "devingress", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
               "spec": {"controller": "devingress.dev/ingress-controller"}}),
    );
    assert!(
        eventually(SETTLE, || async { get(d.port, "classless.example.com", "/").await.status == 200 }).await,
        "{}",
        d.log()
    );
    let out = tokio::process::Command::new(crate::support::devingress::BIN)
        .args(["routes", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .await
        .unwrap();
    // `routes` serves everything by default: all four hosts are listed.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for host in ["mine.example.com", "unknown.example.com", "nginx.example.com", "classless.example.com"] {
        assert!(stdout.contains(host), "{stdout}");
    }
    // With --strict it says which are left out and why.
    let out = tokio::process::Command::new(crate::support::devingress::BIN)
        .args(["routes", "--strict", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Not served (IngressClass):"), "{stdout}");
    assert!(stdout.contains("default/unknown: its IngressClass \"does-not-exist\" does not exist"), "{stdout}");
    assert!(stdout.contains("default/nginx: its IngressClass \"nginx\" belongs to another controller"), "{stdout}");
    assert!(!stdout.contains("default/classless:"), "{stdout}");
}

#[tokio::test]
async fn class_flag_restricts_to_named_classes() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    simple(&c, "nginx", "nginx.example.com", Some("nginx"));
    simple(&c, "traefik", "traefik.example.com", Some("traefik"));
    let d = Devingress::up(&c.kubeconfig, &["--class", "nginx"]).await;
    assert!(
        eventually(SETTLE, || async {
            get(d.port, "nginx.example.com", "/").await.pod().as_deref() == Some("bandicoot-0")
        })
        .await,
        "{}",
        d.log()
    );
    assert_eq!(get(d.port, "traefik.example.com", "/").await.status, 404);
    assert_eq!(get(d.port, "alpaca.example.com", "/").await.status, 404, "class-less, and nginx is not the default");
}
