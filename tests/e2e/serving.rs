//! `devingress up` and `devingress routes` against the fake API server.

use std::time::{Duration, Instant};
use tokio::process::Command;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::apiserver::resources::INGRESSES;
use crate::support::cluster::TestCluster;
use crate::support::devingress::{BIN, Devingress, eventually, get};

const SETTLE: Duration = Duration::from_secs(15);

/// Waits until `host` routes to a pod whose name starts with `pod_prefix`.
async fn routed(d: &Devingress, host: &str, path: &str, pod_prefix: &str) -> bool {
    eventually(SETTLE, || async { get(d.port, host, path).await.pod().is_some_and(|p| p.starts_with(pod_prefix)) })
        .await
}

#[tokio::test]
async fn examples_route_as_stated_with_forwarding_headers() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "alpaca.example.com", "/anything", "alpaca-").await, "{}", d.log());
    for (host, path, prefix) in [
        ("alpaca.example.com", "/anything", "alpaca-"),
        ("bandicoot.example.com", "/", "bandicoot-0"),
        ("bandicoot.example.com", "/a/x", "alpaca-"),
        ("bandicoot.example.com", "/b", "bandicoot-0"),
        ("somewhere.else.test", "/", "be-default-0"),
        ("127.0.0.1", "/x", "be-default-0"),
    ] {
        let a = get(d.port, host, path).await;
        assert_eq!(a.status, 200, "{host}{path}: {}", a.body);
        assert!(a.pod().unwrap().starts_with(prefix), "{host}{path} went to {:?}", a.pod());
    }
    let a = get(d.port, "Alpaca.Example.com", "/q?x=1&y=%2F").await;
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["path"], "/q?x=1&y=%2F", "path and query pass unchanged");
    assert_eq!(a.pod_header("host").as_deref(), Some("Alpaca.Example.com"));
    assert_eq!(a.pod_header("x-forwarded-host").as_deref(), Some("Alpaca.Example.com"));
    assert_eq!(a.pod_header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(a.pod_header("x-forwarded-port"), Some(d.port.to_string()));
    assert_eq!(a.pod_header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(a.pod_header("x-real-ip").as_deref(), Some("127.0.0.1"));
    assert!(d.log().contains("serving 2 Ingresses, 2 hosts: alpaca.example.com, bandicoot.example.com"), "{}", d.log());
    assert!(d.log().contains("connected: Kubernetes v1.36.2-fake"), "{}", d.log());
}

#[tokio::test]
async fn ingress_created_edited_and_deleted_while_running() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "alpaca.example.com", "/", "alpaca-").await, "{}", d.log());
    assert_eq!(get(d.port, "new.example.com", "/").await.pod().as_deref(), Some("be-default-0"));

    // Created: routes within a second.
    c.ingress(
        "default",
        "new",
        json!({"rules": [{"host": "new.example.com", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
    );
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(1), || async {
            get(d.port, "new.example.com", "/").await.pod().as_deref() == Some("bandicoot-0")
        })
        .await,
        "create not applied within a second"
    );
    let created_after = t.elapsed();

    // Edited: the same host now goes to alpaca.
    c.ingress(
        "default",
        "new",
        json!({"rules": [{"host": "new.example.com", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "alpaca", "port": {"number": 8080}}}}]}}]}),
    );
    assert!(
        eventually(Duration::from_secs(1), || async {
            get(d.port, "new.example.com", "/").await.pod().is_some_and(|p| p.starts_with("alpaca-"))
        })
        .await,
        "edit not applied within a second"
    );

    // Deleted: back to the default backend.
    c.api.delete(INGRESSES, "default", "new").unwrap();
    assert!(
        eventually(Duration::from_secs(1), || async {
            get(d.port, "new.example.com", "/").await.pod().as_deref() == Some("be-default-0")
        })
        .await,
        "delete not applied within a second"
    );
    eprintln!("create took effect after {created_after:?}");
}

#[tokio::test]
async fn service_with_two_ready_pods_answers_from_both() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "alpaca.example.com", "/", "alpaca-").await);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        seen.insert(get(d.port, "alpaca.example.com", "/").await.pod().unwrap());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["alpaca-0", "alpaca-1"]);
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "bandicoot.example.com", "/", "bandicoot-0").await);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
    let (mut ws, res) =
        tokio_tungstenite::client_async("ws://bandicoot.example.com/chat", tcp).await.expect("handshake");
    assert_eq!(res.status(), 101);
    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(reply.to_text().unwrap(), format!("bandicoot-0: hello {i}"));
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn malformed_ingress_is_skipped_once_and_the_rest_keep_working() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.service("default", "named", "http", 80, json!("http"));
    c.ingress(
        "default",
        "broken",
        json!({"rules": [{"host": "broken.example.com", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "named", "port": {"name": "web"}}}}]}}]}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "alpaca.example.com", "/", "alpaca-").await);
    let needle = "Ingress default/broken skipped: spec.rules[0].http.paths[0].backend.service.port.name";
    assert!(d.wait_log(needle, SETTLE).await, "{}", d.log());
    // Unrelated changes do not repeat the warning.
    c.ingress(
        "default",
        "other",
        json!({"rules": [{"host": "other.example.com", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
    );
    assert!(routed(&d, "other.example.com", "/", "bandicoot-0").await);
    assert_eq!(d.log().matches(needle).count(), 1, "{}", d.log());
    // The broken host is not served: it falls to the default backend.
    assert_eq!(get(d.port, "broken.example.com", "/").await.pod().as_deref(), Some("be-default-0"));

    let out = Command::new(BIN).args(["routes", "--kubeconfig"]).arg(&c.kubeconfig).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Skipped Ingresses:"), "{stdout}");
    assert!(stdout.contains("default/broken: spec.rules[0].http.paths[0].backend.service.port.name: Service \"named\" has no port named \"web\""), "{stdout}");
}

#[tokio::test]
async fn routes_prints_the_table() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let out = Command::new(BIN).args(["routes", "--kubeconfig"]).arg(&c.kubeconfig).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("devingress routes:\n{stdout}");
    let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["HOST", "PATH", "TYPE", "BACKEND", "READY", "INGRESS"]);
    assert!(
        rows.contains(&vec!["alpaca.example.com", "/", "Prefix", "alpaca:8080", "2/2", "default/host-ingress"]),
        "{stdout}"
    );
    assert!(
        rows.contains(&vec!["bandicoot.example.com", "/a/", "Prefix", "alpaca:8080", "2/2", "default/path-ingress"]),
        "{stdout}"
    );
    assert!(
        rows.contains(&vec!["bandicoot.example.com", "/", "Prefix", "bandicoot:8080", "1/1", "default/path-ingress"]),
        "{stdout}"
    );
    assert!(rows.contains(&vec!["*", "*", "default", "be-default:8080", "1/1", "default/host-ingress"]), "{stdout}");
    // The longer path is listed (and matched) first.
    let a = stdout.find("/a/").unwrap();
    let root = stdout.find("bandicoot.example.com  /  ").unwrap();
    assert!(a < root, "{stdout}");
}

#[tokio::test]
async fn error_pages_say_what_happened() {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, json!(8080));
    c.service("default", "idle", "", 8080, json!(8080));
    c.pods("default", "web", "", 8080, 1).await;
    c.endpoints("default", "idle", "", 8080, &[("idle-0", false)]);
    // A pod whose port nothing listens on: the kubelet reports it on the error channel.
    c.api.apply(
        crate::support::apiserver::resources::PODS,
        json!({"metadata": {"name": "refuse-0", "namespace": "default"}, "spec": {"containers": []}}),
    );
    c.service("default", "refuse", "", 8080, json!(8080));
    c.endpoints("default", "refuse", "", 8080, &[("refuse-0", true)]);
    let path = |p: &str, svc: &str| json!({"pathType": "Prefix", "path": p, "backend": {"service": {"name": svc, "port": {"number": 8080}}}});
    c.ingress(
        "default",
        "pages",
        json!({"rules": [{"host": "pages.test", "http": {"paths": [
            path("/web", "web"), path("/idle", "idle"), path("/refuse", "refuse"), path("/missing", "nosuch")]}}]}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "pages.test", "/web", "web-0").await, "{}", d.log());

    // A name devingress does not serve is told where the list is (a page
    // under a DNS-rebinding name must not read it); a loopback name gets it.
    let a = get(d.port, "nothing.test", "/").await;
    assert_eq!(a.status, 404);
    assert!(!a.body.contains("pages.test") && a.body.contains("`devingress routes`"), "{}", a.body);
    let a = get(d.port, "localhost", "/").await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("Hosts served:") && a.body.contains("pages.test"), "{}", a.body);

    let a = get(d.port, "pages.test", "/idle").await;
    assert_eq!(a.status, 503);
    assert!(a.body.contains("Service default/idle") && a.body.contains("no ready pods"), "{}", a.body);

    let a = get(d.port, "pages.test", "/missing").await;
    assert_eq!(a.status, 503);
    assert!(a.body.contains("Service default/nosuch does not exist"), "{}", a.body);

    let a = get(d.port, "pages.test", "/refuse").await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert!(a.body.contains("error forwarding port 8080 to pod refuse-0"), "{}", a.body);

    // The pod is gone: its pooled stream closes, and a new port-forward gets
    // 404 from the API server. A request racing the close may see the
    // stream end instead; either way it is a 502 naming the pod.
    c.api.delete(crate::support::apiserver::resources::PODS, "default", "web-0");
    let last = std::sync::Mutex::new(String::new());
    let said_not_found = eventually(SETTLE, || async {
        let a = get(d.port, "pages.test", "/web").await;
        assert_eq!(a.status, 502, "{}", a.body);
        assert!(a.body.contains("web-0"), "{}", a.body);
        *last.lock().unwrap() = a.body.clone();
        a.body.contains("not found")
    })
    .await;
    assert!(said_not_found, "{}", last.lock().unwrap());
    let mut d = d;
    assert!(d.running());
}

#[tokio::test]
async fn unreachable_api_server_gives_a_plain_message_and_keeps_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: gone\nclusters:\n- name: gone\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: gone\n  context: {{cluster: gone, user: u}}\nusers:\n- name: u\n  user: {{token: t}}\n"
        ),
    )
    .unwrap();
    let mut d = Devingress::up(&kubeconfig, &[]).await;
    assert!(d.wait_log("Connection refused", SETTLE).await, "{}", d.log());
    assert!(d.log().contains(&format!("https://127.0.0.1:{port}")), "{}", d.log());
    assert!(d.log().contains("retrying with backoff"), "{}", d.log());
    let a = get(d.port, "alpaca.example.com", "/").await;
    assert_eq!(a.status, 503);
    assert!(a.body.contains("has not loaded the routes"), "{}", a.body);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(d.running());
    let log = d.log();
    assert!(!log.contains("panicked"), "{log}");
    // Said once, with how to start the cluster; the retries back off
    // quietly instead of flapping between "unreachable" and "answers again".
    assert_eq!(log.matches("cannot reach the API server").count(), 1, "{log}");
    assert!(log.contains("Is the cluster running?") && log.contains("minikube start"), "{log}");
    assert!(!log.contains("answers again"), "nothing answered: {log}");
    let attempts = log.matches("still failing").count();
    assert!(
        attempts < 40,
        "4 watchers backing off from 250 ms to 5 s try about 5 times each in 3 s, not {attempts}: {log}"
    );

    let out =
        Command::new(BIN).args(["routes", "--wait", "2s", "--kubeconfig"]).arg(&kubeconfig).output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("devingress: could not list the cluster's objects within 2s"), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn explicit_port_in_use_ends_the_run_naming_the_cause() {
    let c = TestCluster::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(BIN)
        .args(["up", "--http-port", &port, "--kubeconfig"])
        .arg(&c.kubeconfig)
        .env("DEVINGRESS_SYSTEM_ROOT", c.kubeconfig.with_file_name("system"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port} is already in use by another program")), "{stderr}");
    assert!(stderr.contains("--http-port"), "{stderr}");
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let mut d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "alpaca.example.com", "/", "alpaca-").await);
    let port = d.port;
    let slow = tokio::spawn(async move { get(port, "alpaca.example.com", "/slow").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = tokio::task::spawn_blocking(move || {
        let s = d.terminate(Duration::from_secs(15));
        (s, d.log())
    })
    .await
    .unwrap();
    let a = slow.await.unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(status.0.expect("exited").success(), "{}", status.1);
    assert!(status.1.contains("shutting down"), "{}", status.1);
}

/// As an unprivileged user the default port 80 is refused; devingress falls
/// back to 8080 and names the fix. Runs where the test can drop privileges
/// (root with `setpriv`, and ports below 1024 privileged).
#[tokio::test]
async fn default_port_falls_back_to_8080_without_privileges_and_names_the_fix() {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap_or_default();
    assert!(
        start.trim().parse::<u32>().is_ok_and(|start| start > 80),
        "this test needs port 80 to be privileged (net.ipv4.ip_unprivileged_port_start is {}); \
         `bash tests/run` leaves it out, saying so, where it is not",
        start.trim()
    );
    crate::support::devingress::require_root("it drops privileges with setpriv");
    crate::support::devingress::require("setpriv", "util-linux", "it runs devingress as nobody");
    assert!(std::net::TcpListener::bind("127.0.0.1:8080").is_ok(), "port 8080 is in use on this machine: free it");
    let c = TestCluster::start().await;
    // The unprivileged user must be able to read the kubeconfig.
    let dir = tempfile::Builder::new().prefix("devingress-nobody").tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::copy(&c.kubeconfig, &kubeconfig).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o644)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(std::net::TcpListener::bind("127.0.0.1:8443").is_ok(), "port 8443 is in use on this machine: free it");
    let mut child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", BIN, "up", "--kubeconfig"])
        .arg(&kubeconfig)
        .env("NO_COLOR", "1")
        .env("DEVINGRESS_DATA_DIR", &data)
        .env("DEVINGRESS_SYSTEM_ROOT", dir.path().join("system"))
        .env("DEVINGRESS_RUNTIME_DIR", dir.path().join("run"))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stderr);
    let mut log = String::new();
    let served = tokio::time::timeout(SETTLE, async {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        while lines.read_line(&mut line).await.unwrap_or(0) > 0 {
            log.push_str(&line);
            if line.contains("serving HTTP on") {
                return true;
            }
            line.clear();
        }
        false
    })
    .await;
    let _ = child.kill().await;
    assert!(matches!(served, Ok(true)), "{log}");
    assert!(log.contains("binding 127.0.0.1:80 needs privileges"), "{log}");
    assert!(log.contains("setcap cap_net_bind_service=+ep"), "{log}");
    assert!(log.contains("Using port 8080 instead"), "{log}");
    assert!(log.contains("serving HTTP on http://127.0.0.1:8080"), "{log}");
    assert!(log.contains("binding 127.0.0.1:443 needs privileges"), "{log}");
    assert!(log.contains("serving HTTPS on https://127.0.0.1:8443"), "{log}");
}

#[tokio::test]
async fn api_server_outage_keeps_the_last_table_and_watches_resume() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let mut d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "alpaca.example.com", "/", "alpaca-").await);
    c.api.stop();
    let outage = Instant::now();
    assert!(d.wait_log("serving the last known routes and retrying with backoff", SETTLE).await, "{}", d.log());
    // The table is still there: an unknown host still routes to the default
    // backend, and only the port-forward to its pod fails while the API
    // server is away.
    let a = get(d.port, "unknown.test.invalid", "/").await;
    assert_eq!(a.status, 502, "the default backend is still routed; only its port-forward fails: {}", a.body);
    assert!(a.body.contains("be-default-0"), "{}", a.body);
    // Changes made while it was down arrive once it is back.
    c.ingress(
        "default",
        "late",
        json!({"rules": [{"host": "late.example.com", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
    );
    // Ten seconds away, as in a cluster restart.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
    assert!(d.running());
    c.api.restart().await;
    assert!(routed(&d, "late.example.com", "/", "bandicoot-0").await, "{}", d.log());
    assert!(routed(&d, "alpaca.example.com", "/", "alpaca-").await);
    assert!(d.log().contains("the API server answers again; watches resumed"), "{}", d.log());
}

#[tokio::test]
async fn request_bodies_stream_to_the_pod() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "bandicoot.example.com", "/", "bandicoot-0").await);
    let body = vec![b'x'; 3 * 1024 * 1024 + 17];
    let req = http::Request::post(format!("http://127.0.0.1:{}/upload", d.port))
        .header("host", "bandicoot.example.com")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let res = crate::support::devingress::http_client().request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let bytes = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["body_len"], 3 * 1024 * 1024 + 17);
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_400_and_431_and_serving_goes_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "alpaca.example.com", "/", "alpaca-").await);
    let raw = |bytes: Vec<u8>| async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
        let _ = s.write_all(&bytes).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    let garbage = raw(b"\x16\x03\x01 this is not http\r\n\r\n".to_vec()).await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");
    let bad_header = raw(b"GET / HTTP/1.1\r\nHost: alpaca.example.com\r\nBad Header\r\n\r\n".to_vec()).await;
    assert!(bad_header.starts_with("HTTP/1.1 400"), "{bad_header:?}");
    let mut huge = b"GET / HTTP/1.1\r\nHost: alpaca.example.com\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 512 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    let too_big = raw(huge).await;
    assert!(too_big.starts_with("HTTP/1.1 431"), "{too_big:?}");
    assert!(routed(&d, "alpaca.example.com", "/", "alpaca-").await, "still serving");
}
