//! The `http_connection` fuzz target's world and check, shared with
//! `cargo test` (tests/e2e/fuzz_corpus.rs runs the check over the corpus and
//! the kept crashes): devingress's HTTP proxy (`proxy::serve`, as `up` runs
//! it) in this process, in front of the fake API server of tests/e2e/support,
//! which port-forwards to two pod servers in this process that record every
//! request they get.
//!
//! The table: `alpaca.example.com` (every path) goes to Service `web`;
//! `*.apps.test` under `/api` goes to Service `api`; `empty.example.com`
//! goes to Service `empty`, which has no pods. No default backend: a request
//! for any other host must reach no pod at all.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::cluster::TestCluster;

/// What a pod server got: one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The Service the pod belongs to.
    pub service: &'static str,
    /// The method.
    pub method: String,
    /// Every Host header, as received.
    pub hosts: Vec<String>,
    /// The request target.
    pub target: String,
}

/// The proxy, the fake cluster and the pods, started once per process.
pub struct World {
    runtime: tokio::runtime::Runtime,
    proxy: SocketAddr,
    /// What the pods got since the last check (checked, then dropped).
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The Services whose pods any input reached.
    reached: Mutex<BTreeSet<&'static str>>,
    exchanges: AtomicU64,
    _cluster: TestCluster,
}

/// At most this much of the proxy's answer is read per input.
const READ_LIMIT: usize = 1 << 20;

/// How long the proxy may take to answer and close once the client has
/// sent everything and closed its side.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// The world, started on first use.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // A write to a connection the proxy closed must be an error, not
        // the end of the process: libFuzzer's main, unlike Rust's, leaves
        // SIGPIPE's default action (terminate) in place.
        // SAFETY: setting a signal's disposition to "ignore" before any
        // thread of ours writes to a socket.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (proxy, cluster) = runtime.block_on(start(seen.clone()));
        World { runtime, proxy, seen, reached: Mutex::default(), exchanges: AtomicU64::new(0), _cluster: cluster }
    })
}

async fn start(seen: Arc<Mutex<Vec<Seen>>>) -> (SocketAddr, TestCluster) {
    let cluster = TestCluster::start().await;
    for (service, host_rule) in [
        (
            "web",
            json!({"host": "alpaca.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}),
        ),
        (
            "api",
            json!({"host": "*.apps.test", "http": {"paths": [{"path": "/api", "pathType": "Prefix",
            "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}),
        ),
        (
            "empty",
            json!({"host": "empty.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "empty", "port": {"number": 80}}}}]}}),
        ),
    ] {
        cluster.service("default", service, "http", 80, json!(8080));
        cluster.ingress("default", service, json!({"rules": [host_rule]}));
        if service == "empty" {
            continue;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a pod server");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(pod(service, listener, seen.clone()));
        let name = format!("{service}-0");
        cluster.server_pod("default", service, &name, 8080, addr);
        cluster.endpoints("default", service, "http", 8080, &[(name.as_str(), true)]);
    }

    let options = devingress::kubeclient::KubeOptions { kubeconfig: Some(cluster.kubeconfig.clone()), context: None };
    let (client, info) = devingress::kubeclient::connect(&options).await.expect("a client of the fake API server");
    let list = |client: kube::Client| async move {
        let p = kube::api::ListParams::default();
        let ingresses = kube::Api::<Ingress>::all(client.clone()).list(&p).await.expect("Ingresses").items;
        let services = kube::Api::<Service>::all(client.clone()).list(&p).await.expect("Services").items;
        let slices = kube::Api::<EndpointSlice>::all(client).list(&p).await.expect("EndpointSlices").items;
        devingress::cluster::Snapshot {
            ingresses: ingresses.into_iter().map(Arc::new).collect(),
            services: services.into_iter().map(Arc::new).collect(),
            endpoint_slices: slices.into_iter().map(Arc::new).collect(),
            synced: true,
            ..Default::default()
        }
    };
    let table = devingress::routes::build(&list(client.clone()).await);
    assert_eq!(table.hosts().len(), 3, "the world's table: {}", devingress::routes::render(&table));
    let (_keep, table) = tokio::sync::watch::channel(Arc::new(table));
    std::mem::forget(_keep);
    let health = Arc::new(devingress::cluster::Health::new(&info.server));
    let status = Arc::new(devingress::status::StatusHub::new(table.clone(), health.clone(), info));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let addr = listener.local_addr().expect("its address");
    let proxy = devingress::proxy::Proxy {
        table,
        upstream: devingress::upstream::Upstream::new(client, Default::default()),
        health,
        slot: devingress::routes::gateway::Slot::Http,
        https_port: None,
        http_port: addr.port(),
        status,
    };
    tokio::spawn(devingress::proxy::serve(
        listener,
        None,
        Arc::new(proxy),
        std::future::pending(),
        Duration::from_secs(1),
    ));
    (addr, cluster)
}

/// A pod server of `service`: records each request, reads its body, and
/// answers 200 with how many bytes it read.
async fn pod(service: &'static str, listener: TcpListener, seen: Arc<Mutex<Vec<Seen>>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let seen = seen.clone();
        tokio::spawn(async move {
            let answer = service_fn(move |req: Request<Incoming>| {
                let seen = seen.clone();
                async move {
                    let hosts = req
                        .headers()
                        .get_all(header::HOST)
                        .iter()
                        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
                    seen.lock().unwrap().push(Seen {
                        service,
                        method: req.method().to_string(),
                        hosts: hosts.collect(),
                        target: req.uri().to_string(),
                    });
                    let read = match req.into_body().collect().await {
                        Ok(body) => format!("{service} read {} bytes\n", body.to_bytes().len()),
                        Err(e) => format!("{service}: the body broke off: {e}\n"),
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(read))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), answer).await;
        });
    }
}

/// The Services whose pods the inputs so far reached.
pub fn reached() -> BTreeSet<&'static str> {
    world().reached.lock().unwrap().clone()
}

/// The host a Host header names: no port, no trailing dot, lower case.
fn host_of(value: &str) -> String {
    let value = value.trim();
    let host = match value.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => value,
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a pod of `service` may get a request for `host` and `target`,
/// worked out apart from devingress's table.
fn may_reach(service: &str, host: &str, target: &str) -> bool {
    let path = target.split('?').next().unwrap_or_default();
    match service {
        "web" => host == "alpaca.example.com",
        "api" => {
            host.strip_suffix(".apps.test").is_some_and(|label| !label.is_empty() && !label.contains('.'))
                && (path == "/api" || path.starts_with("/api/"))
        }
        _ => false,
    }
}

/// The client preface of HTTP/2 with prior knowledge, which the proxy also
/// serves (h2c, for gRPC).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a client connection ends.
#[derive(Clone, Copy, PartialEq)]
enum End {
    /// The client reads until the proxy has been quiet for [`QUIET`] (or
    /// closes), then goes away: requests get their answers, the pod's
    /// included; a request still open is cut off.
    WhenQuiet,
    /// The client closes its sending side at once and reads until the
    /// proxy closes, which it must do within [`ANSWER_DEADLINE`].
    HalfClose,
    /// The client reads until the proxy closes (after a request with
    /// `Connection: close`), which it must do within [`ANSWER_DEADLINE`].
    UntilClosed,
}

/// How long the proxy may be quiet before a [`End::WhenQuiet`] client
/// takes it that no more answer is coming.
const QUIET: Duration = Duration::from_millis(10);

/// One client connection: sends `data` and reads what the proxy answers.
async fn exchange(proxy: SocketAddr, data: &[u8], end: End) -> Vec<u8> {
    let mut tcp = TcpStream::connect(proxy).await.expect("the proxy takes connections");
    // The proxy may close first (after a 400): what it said is still read.
    let _ = tcp.write_all(data).await;
    if end == End::HalfClose {
        let _ = tcp.shutdown().await;
    }
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read_all = async {
        while answer.len() < READ_LIMIT {
            let read = tcp.read(&mut buf);
            let read = match end {
                End::WhenQuiet => match tokio::time::timeout(QUIET, read).await {
                    Ok(read) => read,
                    Err(_) => break,
                },
                End::HalfClose | End::UntilClosed => read.await,
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(ANSWER_DEADLINE, read_all).await.is_err() {
        panic!("the proxy neither answered nor closed within {ANSWER_DEADLINE:?}");
    }
    answer
}

/// The bytes of one HTTP/1.1 client connection through the proxy: what
/// reaches a pod is a request for a host and path that pod's rule serves,
/// with one Host header; anything the proxy answers starts as an HTTP/1.1
/// response; and the proxy still serves a plain request afterwards.
pub fn http_connection(data: &[u8]) {
    let world = world();
    world.runtime.block_on(async {
        for end in [End::WhenQuiet, End::HalfClose] {
            check_one(world, data, end).await;
        }
        // Now and then: the proxy still routes a plain request to its pod.
        if world.exchanges.fetch_add(1, Ordering::Relaxed) % 64 == 0 {
            let plain = b"GET /api/ok HTTP/1.1\r\nHost: x.apps.test\r\nConnection: close\r\n\r\n";
            let answer = exchange(world.proxy, plain, End::UntilClosed).await;
            let text = String::from_utf8_lossy(&answer);
            assert!(
                text.starts_with("HTTP/1.1 200") && text.ends_with("api read 0 bytes\n"),
                "after that input, a plain request got: {text:?}"
            );
        }
    });
}

async fn check_one(world: &World, data: &[u8], end: End) {
    let answer = exchange(world.proxy, data, end).await;
    if data.starts_with(H2_PREFACE) {
        // HTTP/2 with prior knowledge (h2c): the proxy's first frame is its SETTINGS.
        let settings = answer.len() >= 9 && answer[3] == 0x4 && answer[5..9] == [0, 0, 0, 0];
        assert!(answer.is_empty() || settings, "an h2c answer that does not start with SETTINGS: {answer:?}");
    } else if !answer.is_empty() {
        let status_line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
        let ok = (status_line.starts_with(b"HTTP/1.1 ") || status_line.starts_with(b"HTTP/1.0 "))
            && status_line.len() >= 12
            && status_line[9..12].iter().all(u8::is_ascii_digit);
        assert!(ok, "the proxy's answer does not start with a status line: {:?}", String::from_utf8_lossy(status_line));
    }
    // What reached a pod since the last check (a request an earlier input
    // left under way may land here too: it is checked all the same).
    let reached = std::mem::take(&mut *world.seen.lock().unwrap());
    for seen in &reached {
        world.reached.lock().unwrap().insert(seen.service);
        assert!(seen.method != "CONNECT", "a CONNECT reached a pod: {seen:?}");
        assert_eq!(seen.hosts.len(), 1, "a pod got {} Host headers: {seen:?}", seen.hosts.len());
        let host = host_of(&seen.hosts[0]);
        assert!(
            may_reach(seen.service, &host, &seen.target),
            "a pod of {} got a request no rule sends it: {seen:?}",
            seen.service
        );
    }
}
