//! A fake Kubernetes API server for tests. It speaks the real wire protocol
//! over TLS with bearer-token auth, so an ordinary kubeconfig and a normal
//! kube `Client` reach it, and answers as the recordings in
//! `tests/apiserver-transcripts/` show a real kube-apiserver answering.

mod handlers;
mod portforward;
pub mod resources;
mod spdy;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

pub use resources::ResourceType;
use store::Store;

/// State shared by every connection.
pub struct Shared {
    pub store: Mutex<Store>,
    /// Where port-forwards to `(namespace, pod, port)` connect.
    pub backends: Mutex<HashMap<(String, String, u16), SocketAddr>>,
    /// Resources (plural) that answer 403 Forbidden.
    pub forbidden: Mutex<HashSet<&'static str>>,
    /// `METHOD /path?query` of every request, in order.
    pub requests: Mutex<Vec<String>>,
    /// Port-forward sessions opened so far.
    pub portforwards: AtomicUsize,
    /// Connections forwarded inside SPDY sessions so far (stream pairs).
    pub spdy_streams: AtomicUsize,
    /// Port-forward sessions open now, per `(namespace, pod)`.
    pub active: Mutex<HashMap<(String, String), usize>>,
    /// How long a port-forward upgrade takes before the 101 (the API
    /// server's dial to the kubelet; ~10 ms on a real cluster, 0 here unless set).
    pub upgrade_delay: Mutex<std::time::Duration>,
    /// Upgrades in progress now, and the most there have been at once.
    pub upgrading: Mutex<(usize, usize)>,
    /// Whether the Gateway API's CRDs are installed.
    pub gateway_api: std::sync::atomic::AtomicBool,
    /// Whether port-forward takes SPDY tunnelled in a WebSocket (API
    /// servers since 1.30/1.31; off, as before, such a request gets the
    /// v4 protocol or a 400).
    pub spdy_tunnel: std::sync::atomic::AtomicBool,
    /// Whether a port-forward `Upgrade: SPDY/3.1` gets through (off: as
    /// behind a proxy that drops the `Upgrade` header, the API server sees
    /// a plain POST and answers 400 "Upgrade request required").
    pub spdy_upgrade: std::sync::atomic::AtomicBool,
    /// Requests other than port-forwards answered with an error until a
    /// deadline: `(until, code, Retry-After seconds)`.
    pub failing: Mutex<Option<(std::time::Instant, u16, Option<u64>)>>,
    /// Pods whose port-forward upgrades are taken and never answered, as
    /// by a kubelet that hangs.
    pub hanging: Mutex<HashSet<String>>,
    /// Pods whose SPDY data streams the kubelet resets once it has passed
    /// this many bytes of the pod's answer on (a container that dies mid-answer).
    pub resetting: Mutex<HashMap<String, usize>>,
    /// Bumped to cut every watch in progress mid-stream.
    pub watch_cuts: tokio::sync::watch::Sender<u64>,
    /// The bearer token it takes now (rotated by tests of expiring credentials).
    token: Mutex<String>,
    audit: AtomicU64,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    fn audit_id(&self) -> String {
        let n = self.audit.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), n)
    }

    fn track(&self, h: AbortHandle) {
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(h);
    }
}

/// A running fake API server.
pub struct FakeApiServer {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    ca_pem: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    acceptor: TlsAcceptor,
}

impl FakeApiServer {
    /// Starts a server on an ephemeral loopback port.
    pub async fn start() -> Self {
        devingress::install_crypto_provider();
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "fake-kube-apiserver");
        let cert = params.self_signed(&key).expect("cert");
        let ca_pem = cert.pem();
        let certs = vec![cert.der().clone()];
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("tls versions")
                .with_no_client_auth()
                .with_single_cert(certs, key_der)
                .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            backends: Mutex::new(HashMap::new()),
            forbidden: Mutex::new(HashSet::new()),
            requests: Mutex::new(Vec::new()),
            portforwards: AtomicUsize::new(0),
            spdy_streams: AtomicUsize::new(0),
            active: Mutex::new(HashMap::new()),
            upgrade_delay: Mutex::new(std::time::Duration::ZERO),
            upgrading: Mutex::new((0, 0)),
            gateway_api: std::sync::atomic::AtomicBool::new(false),
            spdy_tunnel: std::sync::atomic::AtomicBool::new(true),
            spdy_upgrade: std::sync::atomic::AtomicBool::new(true),
            failing: Mutex::new(None),
            hanging: Mutex::new(HashSet::new()),
            resetting: Mutex::new(HashMap::new()),
            watch_cuts: tokio::sync::watch::Sender::new(0),
            token: Mutex::new("devingress-test-token".into()),
            audit: AtomicU64::new(1),
            tasks: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = FakeApiServer { addr, shared, ca_pem, ca_der: cert.der().clone(), acceptor };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let acceptor = self.acceptor.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let _ = tcp.set_nodelay(true);
                let conn_shared = shared.clone();
                let acceptor = acceptor.clone();
                let conn = tokio::spawn(async move {
                    let shared = conn_shared;
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = {
                        let shared = shared.clone();
                        service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, std::convert::Infallible>(handlers::handle(shared, req).await) }
                        })
                    };
                    // Date is set per response: the 101 of a port-forward has none.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .auto_date_header(false)
                        .serve_connection(TokioIo::new(tls), svc)
                        .with_upgrades()
                        .await;
                });
                shared.track(conn.abort_handle());
            }
        });
        self.shared.track(task.abort_handle());
    }

    /// Takes the server off the network: the listener closes and every open
    /// connection (watches, port-forwards) is cut, as when a cluster stops.
    pub fn stop(&self) {
        for t in self.shared.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Brings a stopped server back on the same port. Like a restarted
    /// kube-apiserver, its watch cache starts at the current
    /// resourceVersion, so resuming from an older one gets 410 Expired.
    pub async fn restart(&self) {
        self.shared.store.lock().unwrap().compact();
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }

    /// Opens a TLS connection to the server, as a kube client would.
    pub async fn tls_connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("ca");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
        connector.connect(rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name"), tcp).await.expect("tls")
    }

    /// Sends one request with exactly these headers (plus auth and host)
    /// and returns the response with its body still streaming.
    pub async fn raw(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: Option<String>,
    ) -> http::Response<hyper::body::Incoming> {
        let io = TokioIo::new(self.tls_connect().await);
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.expect("handshake");
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let mut req = http::Request::builder().method(method).uri(target);
        for (k, v) in headers {
            if k != "host" && k != "content-length" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        req = req.header("host", self.addr.to_string()).header("authorization", format!("Bearer {}", self.token()));
        let body = http_body_util::Full::new(bytes::Bytes::from(body.unwrap_or_default()));
        send.send_request(req.body(body).expect("request")).await.expect("response")
    }

    /// The API server URL.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Writes a kubeconfig for this server (context `fake`) and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        self.write_kubeconfig_for(dir, &format!("    token: {}\n", self.token()))
    }

    /// Writes `dir/kubeconfig` with contexts `fake` (current) and
    /// `fake-again` for this server, whose user is `user` (the YAML under
    /// `user:`, indented by four spaces).
    fn write_kubeconfig_for(&self, dir: &Path, user: &str) -> PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let yaml = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake-cluster\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: fake\n  context:\n    cluster: fake-cluster\n    user: fake-user\n- name: fake-again\n  context:\n    cluster: fake-cluster\n    user: fake-user\nusers:\n- name: fake-user\n  user:\n{user}",
            self.url(),
        );
        let path = dir.join("kubeconfig");
        std::fs::write(&path, yaml).expect("write kubeconfig");
        path
    }

    /// The bearer token it takes now.
    pub fn token(&self) -> String {
        self.shared.token.lock().unwrap().clone()
    }

    /// From now on it takes `token` only: the old one gets 401, as an
    /// expired or revoked token does.
    pub fn rotate_token(&self, token: &str) {
        *self.shared.token.lock().unwrap() = token.to_string();
    }

    /// Writes a kubeconfig (context `fake`) whose user gets its token from
    /// an exec credential plugin (`client.authentication.k8s.io/v1`), a
    /// shell script that prints the token in `token_file` as an
    /// ExecCredential and counts its runs in `token_file` + `.runs`, as
    /// EKS's, GKE's and AKS's plugins give short-lived tokens.
    pub fn write_exec_kubeconfig(&self, dir: &Path, token_file: &Path) -> PathBuf {
        let script = dir.join("token-plugin.sh");
        let runs = format!("{}.runs", token_file.display());
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho run >> '{runs}'\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"%s\"}}}}\n' \"$(cat '{file}')\"\n",
                file = token_file.display()
            ),
        )
        .expect("write plugin");
        self.write_kubeconfig_for(
            dir,
            &format!(
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [\"{}\"]\n      interactiveMode: Never\n",
                script.display()
            ),
        )
    }

    /// Answers every request but port-forwards with `code` (429 with
    /// `Retry-After`, 500, 503…) for `how_long`, as an overloaded or
    /// failing API server does.
    pub fn fail_for(&self, how_long: std::time::Duration, code: u16, retry_after: Option<u64>) {
        *self.shared.failing.lock().unwrap() = Some((std::time::Instant::now() + how_long, code, retry_after));
    }

    /// From now on, the kubelet resets each SPDY data stream to `pod` with
    /// INTERNAL_ERROR once `after` bytes of the pod's answer have gone out.
    pub fn reset_streams_after(&self, pod: &str, after: usize) {
        self.shared.resetting.lock().unwrap().insert(pod.to_string(), after);
    }

    /// From now on, port-forward upgrades to `pod` are read and never answered.
    pub fn hang_portforwards(&self, pod: &str) {
        self.shared.hanging.lock().unwrap().insert(pod.to_string());
    }

    /// Cuts every watch in progress mid-stream (the connection breaks
    /// without the end of the chunked body), as a load balancer in front of
    /// the API server or a network change does.
    pub fn cut_watches(&self) {
        self.shared.watch_cuts.send_modify(|n| *n += 1);
    }

    /// Forgets the watch cache and cuts every watch: each watcher resuming
    /// from where it was gets 410 Expired and must list again.
    pub fn expire_watches(&self) {
        {
            // Writes elsewhere in the cluster (leases, events) move the
            // resourceVersion on; the watch cache then starts past every
            // watcher's last version.
            let mut store = self.shared.store.lock().unwrap();
            store.rv += 1;
            store.compact();
        }
        self.cut_watches();
    }

    /// Creates or updates an object, as `kubectl apply` would.
    pub fn apply(&self, resource: ResourceType, obj: Value) -> Value {
        self.shared.store.lock().unwrap().upsert(resource, obj)
    }

    /// Deletes an object.
    pub fn delete(&self, resource: ResourceType, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store.lock().unwrap().delete(resource, namespace, name)
    }

    /// Reads an object back.
    pub fn get(&self, resource: ResourceType, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store.lock().unwrap().objects.get(&Store::key(&resource, namespace, name)).cloned()
    }

    /// Installs the Gateway API's CRDs: its group appears in discovery and
    /// its resources answer, as after `kubectl apply` of the standard channel.
    pub fn install_gateway_api(&self) {
        self.install_gateway_api_release("v1.6.1");
    }

    /// [`FakeApiServer::install_gateway_api`] with the CRDs of release
    /// `bundle` (their `gateway.networking.k8s.io/bundle-version`).
    pub fn install_gateway_api_release(&self, bundle: &str) {
        use resources::{CUSTOM_RESOURCE_DEFINITIONS, GATEWAY_GROUP};
        for r in resources::ALL.iter().filter(|r| r.group == GATEWAY_GROUP) {
            let scope = if r.namespaced { "Namespaced" } else { "Cluster" };
            self.apply(
                CUSTOM_RESOURCE_DEFINITIONS,
                serde_json::json!({"metadata": {"name": format!("{}.{GATEWAY_GROUP}", r.plural),
                    "annotations": {"gateway.networking.k8s.io/bundle-version": bundle,
                                    "gateway.networking.k8s.io/channel": "standard"}},
                    "spec": {"group": GATEWAY_GROUP, "scope": scope,
                             "names": {"kind": r.kind, "plural": r.plural, "listKind": format!("{}List", r.kind)}}}),
            );
        }
        self.shared.gateway_api.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Points port-forwards to `namespace/pod:port` at a local address.
    pub fn set_backend(&self, namespace: &str, pod: &str, port: u16, addr: SocketAddr) {
        self.shared.backends.lock().unwrap().insert((namespace.into(), pod.into(), port), addr);
    }

    /// Makes every request for `plural` answer 403 Forbidden.
    pub fn forbid(&self, plural: &'static str) {
        self.shared.forbidden.lock().unwrap().insert(plural);
    }

    /// Number of port-forward sessions opened so far.
    /// Connections forwarded in SPDY sessions so far (one per stream pair).
    pub fn spdy_stream_count(&self) -> usize {
        self.shared.spdy_streams.load(Ordering::SeqCst)
    }

    pub fn portforward_count(&self) -> usize {
        self.shared.portforwards.load(Ordering::SeqCst)
    }

    /// Makes every port-forward upgrade take `delay` before it is answered.
    pub fn set_upgrade_delay(&self, delay: std::time::Duration) {
        *self.shared.upgrade_delay.lock().unwrap() = delay;
    }

    /// The most port-forward upgrades that were in progress at once.
    pub fn max_concurrent_upgrades(&self) -> usize {
        self.shared.upgrading.lock().unwrap().1
    }

    /// Port-forward sessions open now to `namespace/pod`.
    pub fn active_portforwards(&self, namespace: &str, pod: &str) -> usize {
        self.shared.active.lock().unwrap().get(&(namespace.to_string(), pod.to_string())).copied().unwrap_or(0)
    }

    /// The requests received so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}
