//! The data plane under change and load: Nagle off, load spreading, retries,
//! rollouts, the pool, long-lived and streaming protocols, gRPC over h2c,
//! bounded memory, and faults.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::apiserver::resources::{PODS, SERVICES};
use crate::support::cluster::TestCluster;
use crate::support::devingress::{Devingress, eventually, get, http_client};

const SETTLE: Duration = Duration::from_secs(15);

fn ingress_to(c: &TestCluster, name: &str, host: &str, svc: &str) {
    c.ingress(
        "default",
        name,
        json!({"rules": [{"host": host, "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": svc, "port": {"number": 8080}}}}]}}]}),
    );
}

async fn routed(d: &Devingress, host: &str) -> bool {
    eventually(SETTLE, || async { get(d.port, host, "/").await.status == 200 }).await
}

/// Every TCP connection this process has to `peer`, with its TCP_NODELAY setting.
fn nodelay_of_connections_to(peer: std::net::SocketAddr) -> Vec<bool> {
    use std::os::fd::BorrowedFd;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the fd is open for the duration of this borrow (it is one
        // of this process's sockets, and nothing closes it concurrently
        // while the test holds its client).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let is_peer = sock.peer_addr().ok().and_then(|a| a.as_socket()) == Some(peer);
        if is_peer {
            out.push(sock.tcp_nodelay().unwrap_or(false));
        }
    }
    out
}

#[tokio::test]
async fn kube_client_connections_have_nagle_off() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let opts = devingress::kubeclient::KubeOptions { kubeconfig: Some(c.kubeconfig.clone()), context: None };
    let (client, _) = devingress::kubeclient::connect(&opts).await.unwrap();
    // An API call and a port-forward, both through the client.
    client.apiserver_version().await.unwrap();
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), "default");
    let mut pf = pods.portforward("alpaca-0", &[8080]).await.unwrap();
    let _stream = pf.take_stream(8080).unwrap();
    let nodelay = nodelay_of_connections_to(c.api.addr);
    assert!(!nodelay.is_empty(), "found no connection to the API server");
    assert!(nodelay.iter().all(|n| *n), "every connection to the API server has TCP_NODELAY: {nodelay:?}");
}

#[tokio::test]
async fn hundred_requests_reach_all_ten_ready_pods() {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, json!(8080));
    c.pods("default", "web", "", 8080, 10).await;
    ingress_to(&c, "web", "web.example.com", "web");
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "web.example.com").await);
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        seen.insert(get(d.port, "web.example.com", "/").await.pod().unwrap());
    }
    assert_eq!(seen.len(), 10, "{seen:?}");
}

#[tokio::test]
async fn a_pod_that_refuses_is_retried_on_another() {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, json!(8080));
    c.pod("default", "web", "web-0", 8080).await;
    // refuse-0 exists but nothing listens on its port.
    c.api.apply(PODS, json!({"metadata": {"name": "refuse-0", "namespace": "default"}, "spec": {"containers": []}}));
    c.endpoints("default", "web", "", 8080, &[("refuse-0", true), ("web-0", true)]);
    ingress_to(&c, "web", "web.example.com", "web");
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "web.example.com").await);
    for i in 0..20 {
        let a = get(d.port, "web.example.com", "/").await;
        assert_eq!(a.status, 200, "request {i}: {}", a.body);
        assert_eq!(a.pod().as_deref(), Some("web-0"));
    }
}

/// Steady GET load from `workers` clients until `stop`; returns (ok, failed, pods seen).
fn load(
    port: u16,
    host: &'static str,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>, BTreeSet<String>)> {
    tokio::spawn(async move {
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let (ok, failures, seen, stop) = (ok.clone(), failures.clone(), seen.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let client = http_client();
                while !stop.load(Ordering::Relaxed) {
                    let req = http::Request::get(format!("http://127.0.0.1:{port}/"))
                        .header("host", host)
                        .body(http_body_util::Full::new(Bytes::new()))
                        .unwrap();
                    match client.request(req).await {
                        Ok(res) => {
                            let status = res.status();
                            let body = res.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let text = String::from_utf8_lossy(&body).into_owned();
                            if status == 200 {
                                ok.fetch_add(1, Ordering::Relaxed);
                                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                                    seen.lock().unwrap().insert(v["pod"].as_str().unwrap_or("").to_string());
                                }
                            } else {
                                failures.lock().unwrap().push(format!("{status}: {text}"));
                            }
                        }
                        Err(e) => failures.lock().unwrap().push(format!("client error: {e}")),
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let failures = failures.lock().unwrap().clone();
        let seen = seen.lock().unwrap().clone();
        (ok.load(Ordering::Relaxed), failures, seen)
    })
}

#[tokio::test]
async fn rolling_restart_under_load_loses_no_request() {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, json!(8080));
    let mut current: Vec<String> = c.pods("default", "web", "", 8080, 3).await;
    ingress_to(&c, "web", "web.example.com", "web");
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "web.example.com").await);
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(d.port, "web.example.com", 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A Deployment's rolling update, one pod at a time: the new pod becomes
    // ready, the old one turns not-ready (terminating) and keeps serving for
    // a grace period, then it is deleted and its process ends.
    for i in 0..3 {
        let old = c.roll_one("default", "web", 8080, &mut current, &format!("web-new-{i}")).await;
        c.api.delete(PODS, "default", &old.name);
        drop(old);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failures, seen) = running.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} failed of {}: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests");
    for p in ["web-0", "web-new-0", "web-new-1", "web-new-2"] {
        assert!(seen.contains(p), "{p} served: {seen:?}");
    }
    eprintln!("rolling restart: {ok} requests, 0 failed");
}

#[tokio::test]
async fn the_only_pod_restarting_gives_503_then_recovers() {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, json!(8080));
    c.pods("default", "web", "", 8080, 1).await;
    ingress_to(&c, "web", "web.example.com", "web");
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "web.example.com").await);
    c.endpoints("default", "web", "", 8080, &[("web-0", false)]);
    c.api.delete(PODS, "default", "web-0");
    c.pods.clear();
    assert!(eventually(SETTLE, || async { get(d.port, "web.example.com", "/").await.status == 503 }).await);
    let a = get(d.port, "web.example.com", "/").await;
    assert!(a.body.contains("Service default/web (port 8080) has no ready pods"), "{}", a.body);
    // The StatefulSet brings it back under the same name.
    c.pod("default", "web", "web-0", 8080).await;
    c.endpoints("default", "web", "", 8080, &[("web-0", true)]);
    assert!(routed(&d, "web.example.com").await, "{}", d.log());
}

#[tokio::test]
async fn pool_is_warm_and_closes_connections_of_endpoints_that_leave() {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, json!(8080));
    c.pods("default", "web", "", 8080, 2).await;
    ingress_to(&c, "web", "web.example.com", "web");
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    // Warm: a connection to each ready pod before any request.
    assert!(
        eventually(SETTLE, || async {
            c.api.active_portforwards("default", "web-0") >= 1 && c.api.active_portforwards("default", "web-1") >= 1
        })
        .await,
        "{}",
        d.log()
    );
    let opened = c.api.portforward_count();
    assert_eq!(get(d.port, "web.example.com", "/").await.status, 200);
    assert_eq!(get(d.port, "web.example.com", "/").await.status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The first requests used warm connections; the pool only tops up its spares.
    assert!(c.api.portforward_count() <= opened + 2, "{} -> {}", opened, c.api.portforward_count());
    // web-1 turns not-ready: its pooled connections close at once.
    c.endpoints("default", "web", "", 8080, &[("web-0", true), ("web-1", false)]);
    assert!(
        eventually(SETTLE, || async { c.api.active_portforwards("default", "web-1") == 0 }).await,
        "still {} open to web-1",
        c.api.active_portforwards("default", "web-1")
    );
    for _ in 0..10 {
        assert_eq!(get(d.port, "web.example.com", "/").await.pod().as_deref(), Some("web-0"));
    }
}

/// A pooled connection goes back to the pool when its exchange ends and
/// serves the next request: a small answer's at once, a long download's
/// once its body has passed. Requests one after another then open no new
/// connections (stream pairs in the pod's SPDY session) beyond a spare.
#[tokio::test]
async fn pooled_connections_serve_one_request_after_another() {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, json!(8080));
    c.pods("default", "web", "", 8080, 1).await;
    ingress_to(&c, "web", "web.example.com", "web");
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "web.example.com").await, "{}", d.log());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let opened = c.api.spdy_stream_count();
    const MIB: usize = 1024 * 1024;
    for _ in 0..20 {
        assert_eq!(get(d.port, "web.example.com", "/").await.status, 200);
    }
    for _ in 0..8 {
        let a = get(d.port, "web.example.com", &format!("/download?bytes={MIB}")).await;
        assert_eq!((a.status, a.body.len()), (200, MIB));
    }
    for _ in 0..10 {
        assert_eq!(get(d.port, "web.example.com", "/").await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let new = c.api.spdy_stream_count() - opened;
    assert!(new <= 4, "{new} new connections for 38 requests one after another; log:\n{}", d.log());
}

#[tokio::test]
async fn websocket_outlives_the_pool_idle_timeout() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &["--pool-idle-timeout", "500ms"]).await;
    assert!(routed(&d, "bandicoot.example.com").await);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://bandicoot.example.com/chat", tcp).await.unwrap();
    ws.send(Message::text("first")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().to_text().unwrap(), "bandicoot-0: first");
    tokio::time::sleep(Duration::from_secs(3)).await;
    ws.send(Message::text("after a quiet while")).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(reply.to_text().unwrap(), "bandicoot-0: after a quiet while");
}

#[tokio::test]
async fn server_sent_events_pass_unbuffered() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "bandicoot.example.com").await);
    let req = http::Request::get(format!("http://127.0.0.1:{}/events", d.port))
        .header("host", "bandicoot.example.com")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let res = http_client().request(req).await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    // The pod sends one event and keeps the stream open: it must arrive now,
    // not when the stream ends.
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("event passed through")
        .unwrap()
        .unwrap();
    assert_eq!(frame.data_ref().unwrap().as_ref(), b"data: hello from bandicoot-0\n\n");
}

/// One gRPC-framed message.
fn grpc_message(text: &str) -> Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    Bytes::from(out)
}

#[tokio::test]
async fn grpc_streams_both_ways_over_h2c() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    // One backend marked by appProtocol, one by the ingress-nginx annotation.
    c.api.apply(
        SERVICES,
        json!({"metadata": {"name": "grpc", "namespace": "default"},
               "spec": {"ports": [{"name": "grpc", "port": 9000, "targetPort": 8080, "appProtocol": "kubernetes.io/h2c"}]}}),
    );
    c.pods("default", "grpc", "grpc", 8080, 1).await;
    c.ingress(
        "default",
        "grpc",
        json!({"rules": [{"host": "grpc.example.com", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "grpc", "port": {"name": "grpc"}}}}]}}]}),
    );
    c.api.apply(
        crate::support::apiserver::resources::INGRESSES,
        json!({"metadata": {"name": "annotated", "namespace": "default",
                            "annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}},
               "spec": {"rules": [{"host": "annotated.example.com", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "grpc.example.com").await, "{}", d.log());
    for (host, pod) in [("grpc.example.com", "grpc-0"), ("annotated.example.com", "bandicoot-0")] {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>(4);
        let body = http_body_util::StreamBody::new(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|f| (f, rx))
        })));
        let req = http::Request::post(format!("http://{host}/echo.Echo/Chat"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(body)
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-pod-http-version"], "HTTP/2.0", "the pod was spoken to over h2c");
        let mut body = res.into_body();
        // Bidirectional: each reply arrives before the next message is sent.
        for msg in ["one", "two", "three"] {
            tx.send(Ok(hyper::body::Frame::data(grpc_message(msg)))).await.unwrap();
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .expect("reply streamed")
                .unwrap()
                .unwrap();
            assert_eq!(frame.data_ref().unwrap(), &grpc_message(&format!("{pod}: {msg}")));
        }
        drop(tx);
        let mut trailers = None;
        while let Some(frame) = tokio::time::timeout(Duration::from_secs(10), body.frame()).await.unwrap() {
            if let Ok(t) = frame.unwrap().into_trailers() {
                trailers = Some(t);
            }
        }
        assert_eq!(trailers.expect("trailers")["grpc-status"], "0");
    }
}

/// devingress's resident memory, from /proc.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gigabyte_up_and_down_in_bounded_memory() {
    const GIB: u64 = 1024 * 1024 * 1024;
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "bandicoot.example.com").await);
    let pid = d.pid();
    let peak = Arc::new(std::sync::Mutex::new(0f64));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let r = rss_mib(pid);
                {
                    let mut p = peak.lock().unwrap();
                    *p = p.max(r);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let start = Instant::now();
    // Download.
    let req = http::Request::get(format!("http://127.0.0.1:{}/download?bytes={GIB}", d.port))
        .header("host", "bandicoot.example.com")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let res = http_client().request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut got = 0u64;
    while let Some(frame) = body.frame().await {
        got += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(got, GIB);
    let down = start.elapsed();
    // Upload, streamed from a generator.
    let chunk = Bytes::from(vec![b'u'; 256 * 1024]);
    let chunks = (GIB / chunk.len() as u64) as usize;
    let frames = futures::stream::iter(
        (0..chunks).map(move |_| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk.clone()))),
    );
    let req = http::Request::post(format!("http://127.0.0.1:{}/upload", d.port))
        .header("host", "bandicoot.example.com")
        .body(http_body_util::StreamBody::new(frames))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let res = client.request(req).await.unwrap();
    let answer = res.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["body_len"], GIB);
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak = *peak.lock().unwrap();
    eprintln!("1 GiB down in {down:?}, up in {:?}; devingress peak RSS {peak:.1} MiB", start.elapsed() - down);
    assert!(peak > 0.0, "RSS was sampled");
    assert!(peak < 100.0, "devingress peak RSS {peak:.1} MiB");
}

#[tokio::test]
async fn a_stream_reset_mid_response_is_a_clean_error_and_the_next_request_works() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "bandicoot.example.com").await);
    let req = http::Request::get(format!("http://127.0.0.1:{}/reset", d.port))
        .header("host", "bandicoot.example.com")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let res = http_client().request(req).await.unwrap();
    assert_eq!(res.status(), 200, "the headers had been sent");
    let body = tokio::time::timeout(Duration::from_secs(10), res.into_body().collect()).await.expect("no hang");
    assert!(body.is_err(), "the client sees the body fail, not a silently short answer");
    let a = get(d.port, "bandicoot.example.com", "/").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.pod().as_deref(), Some("bandicoot-0"));
}

#[tokio::test]
async fn five_hundred_slow_clients_do_not_starve_a_normal_request() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "alpaca.example.com").await);
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: alpaca.exa").await.unwrap();
        slow.push(s);
    }
    // They trickle one more byte each, never finishing their headers.
    for s in slow.iter_mut() {
        s.write_all(b"m").await.unwrap();
    }
    let t = Instant::now();
    let a = get(d.port, "alpaca.example.com", "/").await;
    assert_eq!(a.status, 200);
    eprintln!("normal request beside 500 slow clients took {:?}", t.elapsed());
    // The slow clients are still connected, not served.
    let mut buf = [0u8; 1];
    let waiting = tokio::time::timeout(Duration::from_millis(100), slow[0].read(&mut buf)).await;
    assert!(waiting.is_err(), "a slow client is not answered before it finishes its headers");
}

#[tokio::test]
async fn one_upgrade_per_pod_carries_a_burst_of_connections() {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, json!(8080));
    c.pods("default", "web", "", 8080, 2).await;
    ingress_to(&c, "web", "web.example.com", "web");
    c.api.set_upgrade_delay(Duration::from_millis(50));
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(routed(&d, "web.example.com").await);
    // 40 requests at once, each on a connection of its own to one of two pods.
    let burst: Vec<_> = (0..40).map(|_| tokio::spawn(get(d.port, "web.example.com", "/"))).collect();
    let mut pods = BTreeSet::new();
    for r in burst {
        let a = r.await.unwrap();
        assert_eq!(a.status, 200);
        pods.insert(a.pod().unwrap());
    }
    assert_eq!(pods, BTreeSet::from(["web-0".to_string(), "web-1".to_string()]));
    // Each pod's connections share one SPDY session: one upgrade per pod,
    // a POST upgraded to SPDY/3.1 without a `ports` query, as kubectl
    // sends it.
    let upgrades: Vec<String> = c.api.requests().into_iter().filter(|r| r.contains("/portforward")).collect();
    assert_eq!(upgrades.len(), 2, "{upgrades:?}");
    assert!(upgrades.iter().all(|u| u.starts_with("POST ") && !u.contains("ports=")), "{upgrades:?}");
}

/// A cluster with one pod behind `web.example.com`.
async fn one_web_pod() -> TestCluster {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, json!(8080));
    c.pods("default", "web", "", 8080, 1).await;
    ingress_to(&c, "web", "web.example.com", "web");
    c
}

/// A burst of 10 requests to `web.example.com`; the port-forward upgrades
/// the API server saw, in order.
async fn burst_upgrades(c: &TestCluster, d: &Devingress) -> Vec<String> {
    assert!(routed(d, "web.example.com").await, "{}", d.log());
    let burst: Vec<_> = (0..10).map(|_| tokio::spawn(get(d.port, "web.example.com", "/"))).collect();
    for r in burst {
        assert_eq!(r.await.unwrap().status, 200);
    }
    c.api.requests().into_iter().filter(|r| r.contains("/portforward")).collect()
}

#[tokio::test]
async fn behind_a_proxy_that_drops_spdy_upgrades_the_session_goes_in_a_websocket() {
    let c = one_web_pod().await;
    c.api.shared.spdy_upgrade.store(false, Ordering::SeqCst);
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let upgrades = burst_upgrades(&c, &d).await;
    let log = d.log();
    assert_eq!(log.matches("does not take port-forward over an `Upgrade: SPDY/3.1`").count(), 1, "{log}");
    assert!(log.contains("Upgrade request required"), "the API server's reason is in the note: {log}");
    assert!(log.contains("using SPDY in a WebSocket (SPDY/3.1+portforward.k8s.io)"), "{log}");
    // The refused SPDY upgrade, then one WebSocket session carrying all 10.
    assert_eq!(upgrades.len(), 2, "{upgrades:?}");
    assert!(upgrades[0].starts_with("POST "), "{upgrades:?}");
    assert!(upgrades[1].starts_with("GET ") && !upgrades[1].contains("ports="), "{upgrades:?}");
}

#[tokio::test]
async fn an_api_server_without_either_spdy_way_gets_v4_and_a_note_for_each_step() {
    let c = one_web_pod().await;
    c.api.shared.spdy_upgrade.store(false, Ordering::SeqCst);
    c.api.shared.spdy_tunnel.store(false, Ordering::SeqCst);
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let upgrades = burst_upgrades(&c, &d).await;
    let log = d.log();
    assert_eq!(log.matches("does not take port-forward over an `Upgrade: SPDY/3.1`").count(), 1, "{log}");
    assert_eq!(log.matches("does not take port-forward over SPDY in a WebSocket").count(), 1, "{log}");
    assert!(log.contains("using one WebSocket per connection (v4.channel.k8s.io)"), "{log}");
    assert!(upgrades.iter().skip(2).all(|u| u.contains("ports=8080")), "after two refusals, v4 only: {upgrades:?}");
}

#[tokio::test]
async fn port_forward_websocket_starts_at_spdy_in_a_websocket() {
    let c = one_web_pod().await;
    let d = Devingress::up(&c.kubeconfig, &["--port-forward", "websocket"]).await;
    let upgrades = burst_upgrades(&c, &d).await;
    assert_eq!(upgrades.len(), 1, "{upgrades:?}");
    assert!(upgrades[0].starts_with("GET ") && !upgrades[0].contains("ports="), "{upgrades:?}");
    assert!(!d.log().contains("does not take"), "{}", d.log());
}

#[tokio::test]
async fn a_burst_never_has_more_upgrades_under_way_than_the_cap() {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, json!(8080));
    c.pods("default", "web", "", 8080, 2).await;
    ingress_to(&c, "web", "web.example.com", "web");
    c.api.set_upgrade_delay(Duration::from_millis(50));
    // One WebSocket per connection, so that the burst needs many upgrades.
    let d = Devingress::up(&c.kubeconfig, &["--max-concurrent-upgrades", "3", "--port-forward", "v4"]).await;
    assert!(routed(&d, "web.example.com").await);
    // 40 requests at once need many new connections.
    let burst: Vec<_> = (0..40).map(|_| tokio::spawn(get(d.port, "web.example.com", "/"))).collect();
    for r in burst {
        assert_eq!(r.await.unwrap().status, 200);
    }
    assert!(c.api.portforward_count() > 6, "the burst opened connections ({})", c.api.portforward_count());
    let most = c.api.max_concurrent_upgrades();
    assert!((1..=3).contains(&most), "at most 3 upgrades at once, saw {most}");
}
