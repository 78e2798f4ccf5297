//! The security review's findings, each with its test: loopback only, no
//! open proxy, no request smuggling, a status page that only shows, a
//! control socket that is the user's only, keys that stay private.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::cluster::TestCluster;
use crate::support::devingress::{BIN, Devingress, eventually, get, is_root, on_path, runtime_dir};

const SETTLE: Duration = Duration::from_secs(15);

/// One Ingress for alpaca.example.com and no default backend: a host no
/// rule names gets the 404 page.
async fn alpaca_only() -> TestCluster {
    let mut c = TestCluster::start().await;
    c.service("default", "alpaca", "", 8080, json!(8080));
    c.pods("default", "alpaca", "", 8080, 1).await;
    c.ingress(
        "default",
        "alpaca",
        json!({"rules": [{"host": "alpaca.example.com", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "alpaca", "port": {"number": 8080}}}}]}}]}),
    );
    c
}

/// Sends `bytes` on a new connection and reads until the server closes it
/// (or 10 s pass).
async fn raw(port: u16, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The requests the pods have read so far.
fn seen(c: &TestCluster) -> Vec<Value> {
    c.pods.iter().flat_map(|p| p.seen.lock().unwrap().clone()).collect()
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

#[tokio::test]
async fn listeners_are_loopback_only_and_a_wider_listen_is_warned_about() {
    let c = alpaca_only().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    // Every socket the daemon listens on (TCP and UDP, v4 and v6) is bound
    // to a loopback address.
    let mine = listening_sockets(d.pid());
    for port in [Some(d.port), d.https_port, d.dns_port].into_iter().flatten() {
        assert!(mine.iter().any(|(_, p)| *p == port), "port {port} not among {mine:?}");
    }
    for (addr, port) in &mine {
        assert!(addr.is_loopback(), "listening on {addr}:{port}; {mine:?}");
    }
    assert!(!d.log().contains("is not a loopback address"), "{}", d.log());
    drop(d);

    let wide = Devingress::up(&c.kubeconfig, &["--listen", "0.0.0.0"]).await;
    assert!(
        wide.wait_log("--listen 0.0.0.0 is not a loopback address: anyone who can reach any address", SETTLE).await,
        "{}",
        wide.log()
    );
    assert!(wide.log().contains("with your cluster credentials"), "{}", wide.log());
}

/// `(address, port)` of every listening TCP socket and bound UDP socket of
/// process `pid`, from /proc.
fn listening_sockets(pid: u32) -> Vec<(std::net::IpAddr, u16)> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
        .collect();
    let mut out = Vec::new();
    for (table, v6) in [("tcp", false), ("tcp6", true), ("udp", false), ("udp6", true)] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // TCP sockets in LISTEN (0A); UDP sockets are all bound ones (07).
            let listening = if table.starts_with("tcp") { f[3] == "0A" } else { f[3] == "07" };
            if f.len() < 10 || !listening || !inodes.contains(&f[9].to_string()) {
                continue;
            }
            let (addr, port) = f[1].split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            let bytes: Vec<u8> =
                (0..addr.len()).step_by(2).map(|i| u8::from_str_radix(&addr[i..i + 2], 16).unwrap()).collect();
            // /proc prints each 32-bit word in host (little-endian) order.
            let words: Vec<u8> = bytes.chunks(4).flat_map(|w| w.iter().rev().copied()).collect();
            let ip: std::net::IpAddr = if v6 {
                let a: [u8; 16] = words.try_into().unwrap();
                std::net::Ipv6Addr::from(a).into()
            } else {
                let a: [u8; 4] = words.try_into().unwrap();
                std::net::Ipv4Addr::from(a).into()
            };
            out.push((ip, port));
        }
    }
    out
}

#[tokio::test]
async fn not_an_open_proxy_hosts_no_route_serves_reach_nothing() {
    let c = alpaca_only().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    let before = seen(&c).len();

    // CONNECT: refused whatever the target.
    for target in ["other.example:443", "alpaca.example.com:80", "127.0.0.1:22"] {
        let a = raw(d.port, format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes()).await;
        assert!(status_line(&a).starts_with("HTTP/1.1 405"), "CONNECT {target}: {a:?}");
        assert!(a.contains("not a forward proxy"), "{a}");
    }
    // The absolute form is routed by its target's host, never the Host header's.
    let a =
        raw(d.port, b"GET http://other.example/x HTTP/1.1\r\nHost: alpaca.example.com\r\nConnection: close\r\n\r\n")
            .await;
    assert!(status_line(&a).starts_with("HTTP/1.1 404"), "{a:?}");
    let a =
        raw(d.port, b"GET http://alpaca.example.com/abs HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
            .await;
    assert!(status_line(&a).starts_with("HTTP/1.1 200"), "{a:?}");
    let body: Value = serde_json::from_str(a.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["path"], "/abs");
    assert_eq!(body["headers"]["host"], "alpaca.example.com", "the pod sees the host it was routed by: {body}");
    // Hosts no route serves, in every spelling: the 404 page.
    for host in ["other.example", "169.254.169.254", "kubernetes.default.svc", "alpaca.example.com.evil.test"] {
        let a = get(d.port, host, "/").await;
        assert_eq!(a.status, 404, "{host}: {}", a.body);
    }
    // Of all of that, only the one request for a served host reached a pod.
    let reached: Vec<Value> = seen(&c).split_off(before);
    assert_eq!(reached.len(), 1, "{reached:?}");
    assert_eq!(reached[0]["path"], "/abs");
}

#[tokio::test]
async fn the_404_page_lists_hosts_only_for_loopback_and_served_names() {
    let c = alpaca_only().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    // A DNS-rebinding page runs under a name of its own, pointed at 127.0.0.1.
    let rebinding = get(d.port, "attacker.example", "/").await;
    assert_eq!(rebinding.status, 404);
    assert!(!rebinding.body.contains("alpaca.example.com"), "{}", rebinding.body);
    assert!(rebinding.body.contains("devingress routes"), "{}", rebinding.body);
    for host in ["localhost", "127.0.0.1", "[::1]", "anything.localhost"] {
        let a = get(d.port, host, "/").await;
        assert_eq!(a.status, 404, "{host}");
        assert!(a.body.contains("Hosts served:\n  alpaca.example.com"), "{host}: {}", a.body);
    }
}

#[tokio::test]
async fn smuggling_attempts_get_400_and_nothing_goes_upstream() {
    let c = alpaca_only().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    let before = seen(&c).len();
    let h = "Host: alpaca.example.com\r\n";
    let refused: Vec<(&str, String)> = vec![
        ("two Host headers", format!("GET /two-hosts HTTP/1.1\r\n{h}Host: other.example\r\n\r\n")),
        ("the same Host twice", format!("GET /same-twice HTTP/1.1\r\n{h}{h}\r\n")),
        ("no Host", "GET /no-host HTTP/1.1\r\n\r\n".into()),
        ("a Host that is no host", "GET /bad-host HTTP/1.1\r\nHost: a/b@c\r\n\r\n".into()),
        (
            "two Content-Lengths",
            format!("POST /two-cl HTTP/1.1\r\n{h}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ),
        ("obs-fold", format!("GET /fold HTTP/1.1\r\n{h}X-Folded: a\r\n b\r\n\r\n")),
        (
            "a chunk size that is not hex",
            format!("POST /bad-chunk HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "a chunk size that overflows",
            format!(
                "POST /huge-chunk HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nx\r\n0\r\n\r\n"
            ),
        ),
        (
            "chunked not last",
            format!("POST /te-order HTTP/1.1\r\n{h}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
        ),
        ("an unknown transfer coding", format!("POST /te-x HTTP/1.1\r\n{h}Transfer-Encoding: xchunked\r\n\r\n")),
        ("a space before the colon", format!("GET /space HTTP/1.1\r\n{h}Content-Length : 0\r\n\r\n")),
    ];
    for (what, request) in &refused {
        let a = raw(d.port, request.as_bytes()).await;
        assert!(status_line(&a).starts_with("HTTP/1.1 400"), "{what}: {a:?}");
    }
    // Content-Length beside Transfer-Encoding, in either order: the chunked
    // framing wins (RFC 9112 §6.3), Content-Length is not passed on, and the
    // connection is closed after the answer, so the bytes after the chunked
    // body are never read as a second request.
    for (name, headers) in [
        ("cl-te", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"),
        ("te-cl", "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"),
    ] {
        let request =
            format!("POST /{name} HTTP/1.1\r\n{h}{headers}\r\n0\r\n\r\nGET /smuggled-{name} HTTP/1.1\r\n{h}\r\n");
        let a = raw(d.port, request.as_bytes()).await;
        assert_eq!(a.matches("HTTP/1.1 ").count(), 1, "{name}: one answer, then the connection closes: {a:?}");
    }
    let reached: Vec<Value> = seen(&c).split_off(before);
    let paths: Vec<&str> = reached.iter().filter_map(|r| r["path"].as_str()).collect();
    assert!(paths.iter().all(|p| !p.contains("smuggled")), "a smuggled request reached a pod: {paths:?}");
    for (what, request) in &refused {
        let path = request.split_whitespace().nth(1).unwrap();
        assert!(!paths.contains(&path), "{what}: {path} reached a pod: {paths:?}");
    }
    for r in &reached {
        assert_eq!(r["body_len"], 0, "the chunked framing was the one used: {r}");
    }
    assert!(paths.len() <= 2, "{paths:?}");
    // A bad chunk size after a good chunk: the pod has begun the request; it
    // gets it unfinished (or not at all), and the client is told its body
    // was at fault.
    let a = raw(
        d.port,
        format!(
            "POST /late-bad-chunk HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nx\r\n0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(status_line(&a).starts_with("HTTP/1.1 400"), "{a:?}");
    assert!(a.contains("The request body could not be read"), "{a}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for r in seen(&c).iter().filter(|r| r["path"] == "/late-bad-chunk") {
        assert_eq!(r["complete"], false, "{r}");
    }
    // A body cut short by the client never reaches the pod as complete.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
    s.write_all(format!("POST /cut HTTP/1.1\r\n{h}Content-Length: 100\r\n\r\n0123456789").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    let _ = eventually(Duration::from_secs(5), || async { seen(&c).iter().any(|r| r["path"] == "/cut") }).await;
    for r in seen(&c).iter().filter(|r| r["path"] == "/cut") {
        assert_eq!(r["complete"], false, "{r}");
    }
    // And serving goes on.
    assert_eq!(get(d.port, "alpaca.example.com", "/").await.status, 200);
}

#[tokio::test]
async fn the_status_page_only_shows_and_only_for_its_own_name() {
    let c = alpaca_only().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    let ask = |method: &'static str, host: &'static str, path: &'static str| async move {
        raw(
            d.port,
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://attacker.example\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
    };
    let page = ask("GET", "devingress.localhost", "/status.json").await;
    assert!(status_line(&page).starts_with("HTTP/1.1 200"), "{page:?}");
    assert!(page.contains("\"hosts\""), "{page}");
    assert!(!page.to_ascii_lowercase().contains("access-control-"), "no CORS headers: {page}");
    // Under any other name (a DNS-rebinding page's) there is no status.
    for host in ["attacker.example", "127.0.0.1", "localhost"] {
        let a = ask("GET", host, "/status.json").await;
        assert!(status_line(&a).starts_with("HTTP/1.1 404"), "{host}: {a:?}");
        assert!(!a.contains("\"hosts\""), "{host}: {a}");
    }
    // Nothing on the page changes anything.
    for (method, path) in
        [("POST", "/"), ("POST", "/status.json"), ("PUT", "/pause"), ("DELETE", "/"), ("POST", "/down")]
    {
        let a = ask(method, "devingress.localhost", path).await;
        assert!(status_line(&a).starts_with("HTTP/1.1 405"), "{method} {path}: {a:?}");
        assert!(!a.to_ascii_lowercase().contains("access-control-"), "{a}");
    }
    assert_eq!(get(d.port, "alpaca.example.com", "/").await.status, 200, "not paused, not stopped");
}

/// Sends one line on the daemon's control socket and reads the answer;
/// nothing when no daemon listens (as while one starts again).
#[cfg(unix)]
pub(crate) async fn control_line(kubeconfig: &Path, line: &[u8]) -> String {
    let Ok(mut s) = tokio::net::UnixStream::connect(runtime_dir(kubeconfig).join("control.sock")).await else {
        return String::new();
    };
    let _ = s.write_all(line).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(unix)]
#[tokio::test]
async fn the_control_socket_is_the_users_only_and_takes_bad_lines_in_its_stride() {
    use std::os::unix::fs::PermissionsExt;
    let c = alpaca_only().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    let dir = runtime_dir(&c.kubeconfig);
    let sock = dir.join("control.sock");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&dir), mode(&sock)), (0o700, 0o600));

    let garbage = control_line(&c.kubeconfig, b"{\"command\": \"rm -rf /\"}\n").await;
    assert!(garbage.contains("\"ok\":false") && garbage.contains("bad request"), "{garbage}");
    let mut long = vec![b'x'; 200 * 1024];
    long.push(b'\n');
    let oversized = control_line(&c.kubeconfig, &long).await;
    assert!(oversized.contains("longer than 65536 bytes"), "{oversized}");
    let status = control_line(&c.kubeconfig, b"{\"command\": \"status\"}\n").await;
    assert!(status.contains("alpaca.example.com"), "still answering: {status}");

    // Another user: the directory keeps them out; and where permissions on
    // the socket would let them in, the daemon checks who is calling.
    if is_root() && on_path("setpriv") {
        let as_nobody = |args: &[&str]| {
            std::process::Command::new("setpriv")
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", BIN])
                .args(args)
                .env("DEVINGRESS_RUNTIME_DIR", &dir)
                .env("KUBECONFIG", &c.kubeconfig)
                .output()
                .unwrap()
        };
        let out = as_nobody(&["pause"]);
        assert!(!out.status.success(), "{out:?}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = as_nobody(&["pause"]);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!out.status.success(), "{out:?}");
        assert!(d.wait_log("control socket: refused a connection from uid", SETTLE).await, "{}", d.log());
        assert_eq!(get(d.port, "alpaca.example.com", "/").await.status, 200, "not paused");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn keys_are_0600_and_never_logged_or_shown() {
    use std::os::unix::fs::PermissionsExt;
    let mut c = alpaca_only().await;
    // A host served with a TLS Secret of the cluster: its key stays in memory.
    c.service("default", "bandicoot", "", 8080, json!(8080));
    c.pods("default", "bandicoot", "", 8080, 1).await;
    let (secret_ca, secret_cert, secret_key) = crate::https::own_ca_leaf("secret.example.com");
    crate::https::tls_secret(&c, "secret-tls", &secret_cert, &secret_key);
    crate::https::tls_ingress(&c, "secret", "secret.example.com", "secret-tls", json!({}));
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let https = d.https_port.expect("HTTPS served");
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    let secret_ca_file = c.dir.path().join("secret-ca.pem");
    std::fs::write(&secret_ca_file, &secret_ca).unwrap();
    let served_with_secret = eventually(SETTLE, || async {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&secret_ca_file)
            .args(["--resolve", &format!("secret.example.com:{https}:127.0.0.1")])
            .arg(format!("https://secret.example.com:{https}/"))
            .output()
            .await
            .expect("curl is installed");
        out.status.success()
    })
    .await;
    assert!(served_with_secret, "{}", d.log());
    // A TLS handshake for the served host mints its certificate.
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(d.data_dir.join("ca/rootCA.pem"))
        .args(["--resolve", &format!("alpaca.example.com:{https}:127.0.0.1")])
        .arg(format!("https://alpaca.example.com:{https}/"))
        .output()
        .await
        .expect("curl is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut keys = Vec::new();
    let mut stack = vec![d.data_dir.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read_to_string(&p).is_ok_and(|t| t.contains("PRIVATE KEY")) {
                keys.push(p);
            }
        }
    }
    assert!(keys.len() >= 2, "the CA key and a leaf key: {keys:?}");
    // The Secret's key body (its base64 lines) is in no file devingress wrote.
    let secret_body: String = secret_key.lines().filter(|l| !l.starts_with("-----")).collect();
    for k in &keys {
        let text: String = std::fs::read_to_string(k).unwrap().lines().collect();
        assert!(!text.contains(&secret_body), "{} holds the Secret's key", k.display());
    }
    for k in &keys {
        assert_eq!(std::fs::metadata(k).unwrap().permissions().mode() & 0o777, 0o600, "{}", k.display());
    }
    let status = control_line(&c.kubeconfig, b"{\"command\": \"status\"}\n").await;
    assert!(status.contains("alpaca.example.com"), "{status}");
    assert!(!status.contains("PRIVATE KEY"), "{status}");
    let page =
        raw(d.port, b"GET /status.json HTTP/1.1\r\nHost: devingress.localhost\r\nConnection: close\r\n\r\n").await;
    assert!(!page.contains("PRIVATE KEY"), "{page}");
    assert!(!d.log().contains("PRIVATE KEY"), "the log (at debug) names no key: {}", d.log());
    let first_key_line = secret_key.lines().nth(1).unwrap();
    assert!(!d.log().contains(first_key_line) && !status.contains(first_key_line));
}
