//! API-server faults: watches cut mid-stream, 410 Expired storms, 429
//! with Retry-After, a minute of 500s and 503s, and credentials that
//! expire. Serving goes on from the last table throughout, and the watches
//! come back without a relist storm.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::cluster::TestCluster;
use crate::support::devingress::{Devingress, eventually, get};

const SETTLE: Duration = Duration::from_secs(15);

async fn serving(d: &Devingress, host: &str) -> bool {
    eventually(SETTLE, || async { get(d.port, host, "/").await.status == 200 }).await
}

/// An Ingress for `host`, to the alpaca Service.
fn ingress_for(c: &TestCluster, name: &str, host: &str) {
    c.ingress(
        "default",
        name,
        json!({"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "alpaca", "port": {"number": 8080}}}}]}}]}),
    );
}

/// Requests that read a whole collection again: lists, and watches that
/// ask for the initial state (streaming lists).
fn lists(requests: &[String]) -> Vec<&String> {
    requests
        .iter()
        .filter(|r| {
            r.starts_with("GET ")
                && ((!r.contains("watch=true") && !r.contains("watch=1")) || r.contains("sendInitialEvents=true"))
        })
        .collect()
}

/// Requests every 100 ms to `host` until `stop`; returns (sent, failed).
async fn load_until(port: u16, host: &'static str, stop: Instant) -> (usize, Vec<String>) {
    let (mut sent, mut failed) = (0, Vec::new());
    while Instant::now() < stop {
        let a = get(port, host, "/").await;
        sent += 1;
        if a.status != 200 {
            failed.push(format!("{}: {}", a.status, a.body));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (sent, failed)
}

#[tokio::test]
async fn watches_cut_mid_stream_resume_without_relisting() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(serving(&d, "alpaca.example.com").await, "{}", d.log());
    let before = c.api.requests().len();
    for round in 0..3 {
        c.api.cut_watches();
        let host = format!("cut{round}.example.com");
        ingress_for(&c, &format!("cut-{round}"), &host);
        let live = eventually(SETTLE, || async {
            get(d.port, &host, "/").await.pod().is_some_and(|p| p.starts_with("alpaca-"))
        });
        assert!(live.await, "{host} after a cut watch: {}", d.log());
        assert_eq!(get(d.port, "bandicoot.example.com", "/").await.status, 200);
    }
    let after: Vec<String> = c.api.requests().split_off(before);
    let relists = lists(&after);
    eprintln!(
        "3 cut watches: {} lists, {} watch requests after",
        relists.len(),
        after.iter().filter(|r| r.contains("watch=true")).count()
    );
    assert!(relists.is_empty(), "a cut watch resumes from its resourceVersion, without a list: {relists:?}");
    let watches = after.iter().filter(|r| r.contains("watch=true")).count();
    assert!(watches >= 3, "the watches came back: {after:?}");
}

#[tokio::test]
async fn a_410_storm_relists_once_per_expiry_and_serving_never_stops() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(serving(&d, "alpaca.example.com").await, "{}", d.log());
    let before = c.api.requests().len();
    let port = d.port;
    let load = tokio::spawn(load_until(port, "bandicoot.example.com", Instant::now() + Duration::from_secs(6)));
    for _ in 0..5 {
        c.api.expire_watches();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    ingress_for(&c, "after-storm", "after-storm.example.com");
    let (sent, failed) = load.await.unwrap();
    assert!(failed.is_empty(), "{} of {sent} requests failed during the storm: {failed:?}", failed.len());
    assert!(serving(&d, "after-storm.example.com").await, "{}", d.log());
    let after: Vec<String> = c.api.requests().split_off(before);
    let watched_kinds = after
        .iter()
        .filter(|r| r.contains("watch=true"))
        .map(|r| r.split('?').next().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let relists = lists(&after).len();
    eprintln!(
        "410 storm: {sent} requests served, none failed; {relists} lists for {watched_kinds} watched kinds over 5 expiries"
    );
    // Each expiry costs each watcher at most one list (and a retry or two
    // when the list races the next expiry): no storm.
    assert!(
        relists <= watched_kinds * 5 * 2,
        "{relists} lists for {watched_kinds} watched kinds over 5 expiries: {after:#?}"
    );
}

#[tokio::test]
async fn a_minute_of_429_500_and_503_keeps_serving_the_last_table() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(serving(&d, "alpaca.example.com").await, "{}", d.log());
    // Warm connections to both pods of alpaca, so that serving needs no API call.
    for _ in 0..4 {
        assert_eq!(get(d.port, "alpaca.example.com", "/").await.status, 200);
    }
    c.api.cut_watches();
    let start = Instant::now();
    let before = c.api.requests().len();
    let load = tokio::spawn(load_until(d.port, "alpaca.example.com", start + Duration::from_secs(60)));
    // 20 s of API priority and fairness turning requests away...
    c.api.fail_for(Duration::from_secs(20), 429, Some(3));
    tokio::time::sleep(Duration::from_secs(2)).await;
    ingress_for(&c, "during-outage", "during.example.com");
    tokio::time::sleep(Duration::from_secs(18)).await;
    let during_429 = c.api.requests().len() - before;
    // ...then 20 s of 500s and 20 s of 503s.
    c.api.fail_for(Duration::from_secs(20), 500, None);
    tokio::time::sleep(Duration::from_secs(20)).await;
    c.api.fail_for(Duration::from_secs(20), 503, None);
    let (sent, failed) = load.await.unwrap();
    let during = c.api.requests().len() - before;
    assert!(failed.is_empty(), "{} of {sent} requests failed while the API server failed: {failed:?}", failed.len());
    assert!(sent > 100, "{sent}");
    eprintln!(
        "a minute of 429/500/503: {sent} requests served, none failed; {during_429} API requests during 20 s of 429, {during} in the minute"
    );
    // The change made during the outage arrives once it is over.
    assert!(serving(&d, "during.example.com").await, "{}", d.log());
    let log = d.log();
    assert!(log.contains("429") || log.contains("Too many requests"), "the 429s are said: {log}");
    // Retry-After and backoff: no hammering. (Eight watchers retrying every
    // 3 s for 20 s would be ~55 requests; every 250 ms, ~640.)
    assert!(during_429 <= 120, "{during_429} requests during 20 s of 429 Retry-After: 3");
    assert!(during <= 400, "{during} requests to a failing API server in a minute");
}

#[tokio::test]
async fn an_exec_token_the_api_server_starts_refusing_is_renewed_from_the_plugin() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let token_file = c.dir.path().join("token");
    std::fs::write(&token_file, c.api.token()).unwrap();
    let kubeconfig = c.api.write_exec_kubeconfig(c.dir.path(), &token_file);
    let d = Devingress::up(&kubeconfig, &[]).await;
    assert!(serving(&d, "alpaca.example.com").await, "{}", d.log());
    // The token expires: the API server refuses it from now on, and the
    // plugin hands out a new one, as a cloud's plugin does.
    std::fs::write(&token_file, "second-token").unwrap();
    c.api.rotate_token("second-token");
    c.api.cut_watches();
    // Changes still arrive (watches come back with the new token)...
    ingress_for(&c, "after-rotation", "rotated.example.com");
    assert!(serving(&d, "rotated.example.com").await, "{}", d.log());
    // ...and a pod never reached before is reached (a new port-forward).
    c.service("default", "late", "", 8080, json!(8080));
    c.pods("default", "late", "", 8080, 1).await;
    c.ingress(
        "default",
        "late",
        json!({"rules": [{"host": "late.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "late", "port": {"number": 8080}}}}]}}]}),
    );
    let late =
        eventually(SETTLE, || async { get(d.port, "late.example.com", "/").await.pod().as_deref() == Some("late-0") });
    assert!(late.await, "{}", d.log());
    assert!(d.log().contains("ran the credential plugin again"), "{}", d.log());
    let runs = std::fs::read_to_string(format!("{}.runs", token_file.display())).unwrap().lines().count();
    eprintln!("expiring exec token: the plugin ran {runs} times");
    assert!((2..=6).contains(&runs), "the plugin ran {runs} times: once at the start, then again after the 401s");
}

#[tokio::test]
async fn port_forward_forbidden_by_rbac_says_which_permission_is_missing() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.api.forbid("pods");
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let a = loop {
        let a = get(d.port, "alpaca.example.com", "/").await;
        if a.status != 503 {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("403 page:\n{}", a.body);
    assert_eq!(a.status, 502, "{}", a.body);
    assert!(a.body.contains("pods/portforward") && a.body.contains("forbidden"), "{}", a.body);
    assert!(a.body.contains("RBAC") && a.body.contains("create"), "the page says what to grant: {}", a.body);
}

#[tokio::test]
async fn a_pod_gone_between_table_and_upgrade_costs_no_request() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(serving(&d, "alpaca.example.com").await, "{}", d.log());
    // The Pod object goes; its endpoint stays in the table (the
    // EndpointSlice is not updated yet): its port-forward gets 404.
    c.api.delete(crate::support::apiserver::resources::PODS, "default", "alpaca-1");
    let before = c.api.requests().len();
    for i in 0..20 {
        let a = get(d.port, "alpaca.example.com", "/").await;
        assert_eq!(a.status, 200, "request {i}: {}", a.body);
        assert_eq!(a.pod().as_deref(), Some("alpaca-0"), "request {i}");
    }
    let after = c.api.requests().split_off(before);
    let tries = after.iter().filter(|r| r.contains("/pods/alpaca-1/portforward")).count();
    // One request's try, and perhaps one by the pool refilling its warm spare.
    assert!(tries <= 2, "the gone pod is passed over after its 404: {after:#?}");
}

#[tokio::test]
async fn a_kubelet_that_never_answers_the_upgrade_times_out_and_another_pod_answers() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.api.hang_portforwards("alpaca-1");
    let d = Devingress::up(&c.kubeconfig, &["--port-forward", "v4", "--no-pool"]).await;
    assert!(serving(&d, "alpaca.example.com").await, "{}", d.log());
    let started = Instant::now();
    let mut pods = Vec::new();
    for _ in 0..4 {
        let a = tokio::time::timeout(Duration::from_secs(30), get(d.port, "alpaca.example.com", "/"))
            .await
            .expect("an answer");
        assert_eq!(a.status, 200, "{}", a.body);
        pods.push(a.pod().unwrap());
    }
    eprintln!("a hanging kubelet: 4 requests answered in {:?} by {pods:?}", started.elapsed());
    assert!(pods.iter().all(|p| p == "alpaca-0"), "{pods:?}");
    assert!(d.log().contains("did not answer the port-forward upgrade within 10s"), "{}", d.log());
    // After one upgrade that timed out, the pod is passed over: the other
    // requests did not wait on it.
    let tries = c.api.requests().iter().filter(|r| r.contains("/pods/alpaca-1/portforward")).count();
    assert_eq!(tries, 1, "{:#?}", c.api.requests());
}

/// The kubelet resets the port-forward stream part way through a pod's
/// answer (SPDY RST_STREAM, as when the container dies mid-answer): the
/// client's body ends in an error, never as a complete answer, and the next
/// request is served.
#[tokio::test]
async fn a_stream_the_kubelet_resets_mid_body_reaches_the_client_as_an_error() {
    use http_body_util::BodyExt;
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.api.reset_streams_after("bandicoot-0", 200_000);
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(serving(&d, "bandicoot.example.com").await, "{}", d.log());
    let req = http::Request::get(format!("http://127.0.0.1:{}/download?bytes=1000000", d.port))
        .header("host", "bandicoot.example.com")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let res = crate::support::devingress::http_client().request(req).await.unwrap();
    assert_eq!(res.status(), 200, "the headers had been sent");
    let body = tokio::time::timeout(Duration::from_secs(10), res.into_body().collect()).await.expect("no hang");
    assert!(body.is_err(), "the client sees the body fail, not a short answer: {:?}", body.map(|b| b.to_bytes().len()));
    let a = get(d.port, "bandicoot.example.com", "/").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.pod().as_deref(), Some("bandicoot-0"));
}

/// The daemon's status, through its control socket.
#[cfg(unix)]
async fn status(c: &TestCluster) -> serde_json::Value {
    let line = crate::security::control_line(&c.kubeconfig, b"{\"command\": \"status\"}\n").await;
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// Sets the kubeconfig's current context, as `kubectl config use-context` does.
fn use_context(c: &TestCluster, context: &str) {
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for l in &mut lines {
        if l.starts_with("current-context:") {
            *l = format!("current-context: {context}");
        }
    }
    std::fs::write(&c.kubeconfig, lines.join("\n") + "\n").unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubeconfig_switched_to_another_context_is_said_and_not_followed() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(serving(&d, "alpaca.example.com").await, "{}", d.log());
    use_context(&c, "fake-again");
    let said = "the kubeconfig's current context is now fake-again; devingress still serves fake";
    assert!(d.wait_log(said, SETTLE).await, "{}", d.log());
    let s = status(&c).await;
    assert_eq!(s["cluster"]["context"], "fake");
    assert!(s["cluster"]["kubeconfig_changed"].as_str().is_some_and(|t| t.contains("use-context fake-again")), "{s:#}");
    assert_eq!(get(d.port, "alpaca.example.com", "/").await.status, 200, "still serving");
    // Back to the served context: the notice goes.
    use_context(&c, "fake");
    assert!(d.wait_log("the kubeconfig's current context is fake again", SETTLE).await, "{}", d.log());
    assert!(status(&c).await["cluster"].get("kubeconfig_changed").is_none());
    assert_eq!(d.log().matches(said).count(), 1, "said once");
}

#[cfg(unix)]
#[tokio::test]
async fn follow_context_starts_again_on_the_new_current_context() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &["--follow-context"]).await;
    assert!(serving(&d, "alpaca.example.com").await, "{}", d.log());
    use_context(&c, "fake-again");
    assert!(d.wait_log("starting again on it, as --follow-context asks", SETTLE).await, "{}", d.log());
    let switched = eventually(SETTLE, || async {
        let line = crate::security::control_line(&c.kubeconfig, b"{\"command\": \"status\"}\n").await;
        serde_json::from_str::<serde_json::Value>(&line).is_ok_and(|s| s["cluster"]["context"] == "fake-again")
    });
    assert!(switched.await, "{}", d.log());
}
