//! The DNS server, queried as a resolver would: A, AAAA, wildcard,
//! NXDOMAIN, REFUSED, TCP, live changes, and a storm of malformed packets.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::apiserver::resources::INGRESSES;
use crate::support::cluster::TestCluster;
use crate::support::devingress::{Devingress, eventually};

const SETTLE: Duration = Duration::from_secs(15);

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

async fn udp(addr: SocketAddr, packet: &[u8]) -> Option<Message> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(packet, addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await.ok()?.ok()?;
    Message::from_vec(&buf[..n]).ok()
}

async fn tcp(addr: SocketAddr, packet: &[u8]) -> Message {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    s.write_all(&framed).await.unwrap();
    let len = s.read_u16().await.unwrap() as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn addresses(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(a) => a.0.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

async fn up_with_wildcard() -> (TestCluster, Devingress, SocketAddr) {
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.ingress(
        "default",
        "apps",
        json!({"rules": [{"host": "*.apps.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", d.dns_port.expect("DNS served")).parse().unwrap();
    let ready = eventually(SETTLE, || async {
        udp(addr, &query("web.apps.test.", RecordType::A)).await.is_some_and(|m| !m.answers.is_empty())
    })
    .await;
    assert!(ready, "{}", d.log());
    (c, d, addr)
}

#[tokio::test]
async fn answers_served_hosts_and_nothing_else() {
    let (_c, d, addr) = up_with_wildcard().await;
    let m = udp(addr, &query("alpaca.example.com.", RecordType::A)).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(!m.metadata.recursion_available);
    assert_eq!(m.metadata.id, 0x4242);
    assert_eq!(addresses(&m), ["127.0.0.1"]);
    let m = udp(addr, &query("Alpaca.Example.COM.", RecordType::AAAA)).await.unwrap();
    assert_eq!(addresses(&m), ["::1"]);
    let m = udp(addr, &query("web.apps.test.", RecordType::A)).await.unwrap();
    assert_eq!(addresses(&m), ["127.0.0.1"]);
    let m = udp(addr, &query("alpaca.example.com.", RecordType::MX)).await.unwrap();
    assert_eq!((m.metadata.response_code, m.answers.len()), (ResponseCode::NoError, 0));
    for name in ["deep.web.apps.test.", "x.alpaca.example.com."] {
        let m = udp(addr, &query(name, RecordType::A)).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(m.metadata.authoritative);
    }
    // Never an open resolver: other names, even the served hosts' parent, are refused.
    for name in ["example.com.", "www.google.com.", "other.example.com."] {
        let m = udp(addr, &query(name, RecordType::A)).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(m.answers.is_empty());
    }
    // TCP answers the same.
    let m = tcp(addr, &query("alpaca.example.com.", RecordType::A)).await;
    assert_eq!(addresses(&m), ["127.0.0.1"]);
    // The server listens on loopback only.
    assert!(d.log().contains(&format!("answering DNS for served hosts on 127.0.0.1:{}", addr.port())), "{}", d.log());
}

#[tokio::test]
async fn follows_hosts_added_and_removed_while_running() {
    let (c, _d, addr) = up_with_wildcard().await;
    let m = udp(addr, &query("new.example.com.", RecordType::A)).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    c.ingress(
        "default",
        "new",
        json!({"rules": [{"host": "new.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
    );
    assert!(
        eventually(Duration::from_secs(1), || async {
            udp(addr, &query("new.example.com.", RecordType::A)).await.is_some_and(|m| addresses(&m) == ["127.0.0.1"])
        })
        .await,
        "a new host resolves within a second"
    );
    c.api.delete(INGRESSES, "default", "new");
    assert!(
        eventually(Duration::from_secs(1), || async {
            udp(addr, &query("new.example.com.", RecordType::A))
                .await
                .is_some_and(|m| m.metadata.response_code == ResponseCode::Refused)
        })
        .await,
        "a removed host stops resolving within a second"
    );
}

#[tokio::test]
async fn survives_ten_thousand_random_and_truncated_packets() {
    let (_c, _d, addr) = up_with_wildcard().await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let good = query("alpaca.example.com.", RecordType::A);
    // A small deterministic generator: no seed to fetch, same storm every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut formerr = 0;
    for i in 0..10_000 {
        let packet: Vec<u8> = match i % 3 {
            // Random bytes of random length.
            0 => (0..(next() % 600) as usize).map(|_| next() as u8).collect(),
            // A real query cut short.
            1 => good[..(next() as usize % good.len())].to_vec(),
            // A real query with random bytes flipped.
            _ => {
                let mut p = good.clone();
                for _ in 0..3 {
                    let at = next() as usize % p.len();
                    p[at] = next() as u8;
                }
                p
            }
        };
        sock.send_to(&packet, addr).await.unwrap();
        if i % 500 == 0 {
            // Drain what came back so far; count the FORMERR answers.
            let mut buf = [0u8; 4096];
            while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), sock.recv(&mut buf)).await {
                if Message::from_vec(&buf[..n]).is_ok_and(|m| m.metadata.response_code == ResponseCode::FormErr) {
                    formerr += 1;
                }
            }
        }
    }
    // A response sent as a question is dropped or answered FORMERR, never served.
    let mut bogus = Message::new(7, MessageType::Response, OpCode::Query);
    bogus.add_query(Query::query(Name::from_str("alpaca.example.com.").unwrap(), RecordType::A));
    if let Some(m) = udp(addr, &bogus.to_vec().unwrap()).await {
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    }
    // Two questions in one message: FORMERR.
    let mut two = Message::new(8, MessageType::Query, OpCode::Query);
    two.add_query(Query::query(Name::from_str("alpaca.example.com.").unwrap(), RecordType::A));
    two.add_query(Query::query(Name::from_str("web.apps.test.").unwrap(), RecordType::A));
    let m = udp(addr, &two.to_vec().unwrap()).await.expect("an answer");
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // And it still answers properly, over UDP and TCP.
    let m = udp(addr, &good).await.expect("still answering");
    assert_eq!(addresses(&m), ["127.0.0.1"]);
    assert_eq!(addresses(&tcp(addr, &good).await), ["127.0.0.1"]);
    eprintln!("{formerr} FORMERR answers seen among the first drained replies");
}

#[tokio::test]
async fn hosts_file_block_follows_routes_and_is_removed_on_exit_and_after_a_crash() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let original = "127.0.0.1\tlocalhost\n# mine\n10.1.2.3 printer.lan";
    std::fs::write(&hosts, original).unwrap();
    let path = hosts.display().to_string();
    let read = || std::fs::read_to_string(&hosts).unwrap();

    let crashed = Devingress::up(&c.kubeconfig, &["--hosts-file", &path]).await;
    assert!(
        eventually(SETTLE, || async { read().contains("127.0.0.1\talpaca.example.com") }).await,
        "{}",
        crashed.log()
    );
    assert!(read().starts_with(original), "nothing before the block changes");
    drop(crashed); // SIGKILL: no clean-up.
    assert!(read().contains("# BEGIN devingress"));

    let mut d = Devingress::up(&c.kubeconfig, &["--hosts-file", &path]).await;
    assert!(
        d.log().contains("took back what an earlier run left in the OS resolver (a managed block in"),
        "{}",
        d.log()
    );
    assert!(eventually(SETTLE, || async { read().contains("bandicoot.example.com") }).await);
    assert_eq!(read().matches("# BEGIN devingress").count(), 1);
    c.ingress(
        "default",
        "late",
        json!({"rules": [{"host": "late.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
    );
    assert!(eventually(SETTLE, || async { read().contains("::1\tlate.example.com") }).await);
    let status = tokio::task::spawn_blocking(move || (d.terminate(Duration::from_secs(15)), d.log())).await.unwrap();
    assert!(status.0.unwrap().success(), "{}", status.1);
    assert_eq!(read(), original, "restored byte for byte");
}

#[tokio::test]
async fn doctor_checks_each_part_and_names_the_fixes() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(
        eventually(SETTLE, || async {
            crate::support::devingress::get(d.port, "alpaca.example.com", "/").await.status == 200
        })
        .await
    );
    let out = tokio::process::Command::new(crate::support::devingress::BIN)
        .args(["doctor", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .args(["--http-port", &d.port.to_string()])
        .args(["--https-port", &d.https_port.unwrap().to_string()])
        .args(["--dns-port", &d.dns_port.unwrap().to_string()])
        .env("DEVINGRESS_DATA_DIR", &d.data_dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    for line in [
        "ok    kubeconfig: context fake",
        "ok    cluster reachable: Kubernetes v1.36.2-fake",
        "ok    routes: 2 Ingress(es), hosts: alpaca.example.com, bandicoot.example.com",
        &format!("ok    HTTP listener: 127.0.0.1:{} accepts connections", d.port),
        &format!("ok    DNS server: 127.0.0.1:{} answers alpaca.example.com with 127.0.0.1", d.dns_port.unwrap()),
        "ok    HTTP round trip: GET http://alpaca.example.com/ gave 200 OK",
        // The CA is in no store here, and the OS resolver knows nothing of these names.
        "FAIL  CA trusted",
        "      fix: run `devingress trust`",
        "FAIL  OS resolver: alpaca.example.com",
        "      fix: run `devingress setup` once and restart `devingress up`",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 check(s) failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `dig` (Debian's dnsutils) against the server and returns its output.
async fn dig(addr: SocketAddr, args: &[&str]) -> String {
    crate::support::devingress::require("dig", "dnsutils", "it queries with a real DNS client");
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn dig_gets_the_same_answers_over_udp_and_tcp() {
    let (c, _d, addr) = up_with_wildcard().await;
    for transport in ["+notcp", "+tcp"] {
        assert_eq!(dig(addr, &[transport, "+short", "alpaca.example.com", "A"]).await.trim(), "127.0.0.1");
        assert_eq!(dig(addr, &[transport, "+short", "alpaca.example.com", "AAAA"]).await.trim(), "::1");
        assert_eq!(dig(addr, &[transport, "+short", "Web.Apps.Test", "A"]).await.trim(), "127.0.0.1");
        let nx = dig(addr, &[transport, "deep.web.apps.test", "A"]).await;
        assert!(nx.contains("status: NXDOMAIN") && nx.contains("flags: qr aa rd;"), "{nx}");
        let refused = dig(addr, &[transport, "example.com", "A"]).await;
        assert!(refused.contains("status: REFUSED") && !refused.contains(" ra"), "never recursion: {refused}");
    }
    // Several queries on one TCP connection, as resolvers that fall back to TCP send them.
    let many =
        dig(addr, &["+tcp", "+keepopen", "+short", "alpaca.example.com", "bandicoot.example.com", "x.apps.test"]).await;
    assert_eq!(many.lines().collect::<Vec<_>>(), ["127.0.0.1", "127.0.0.1", "127.0.0.1"], "{many}");

    // The largest answer devingress can give: a 253-character host, both
    // addresses (ANY), to a client without EDNS (a 512-byte UDP limit).
    // It does not fit: the UDP answer says so (TC) and the client asks
    // again over TCP, which gives it whole.
    let labels = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(49)];
    let long = format!("{}.example.com", labels.join("."));
    assert_eq!(long.len(), 253);
    c.ingress(
        "default",
        "long",
        json!({"rules": [{"host": long, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
    );
    assert!(
        eventually(SETTLE, || async { dig(addr, &["+short", &long, "A"]).await.trim() == "127.0.0.1" }).await,
        "the long host is served"
    );
    let udp = dig(addr, &["+notcp", "+noedns", "+ignore", &long, "ANY"]).await;
    eprintln!("{udp}");
    let size: usize = udp.split("MSG SIZE  rcvd: ").nth(1).and_then(|s| s.trim().parse().ok()).unwrap();
    assert!(size <= 512, "{size} bytes over UDP: {udp}");
    assert!(udp.contains("flags: qr aa tc rd;"), "truncated: {udp}");
    let fallback = dig(addr, &["+notcp", "+noedns", &long, "ANY"]).await;
    assert!(fallback.contains("Truncated, retrying in TCP mode"), "{fallback}");
    assert!(fallback.contains("ANSWER: 2") && fallback.contains("(TCP)"), "{fallback}");
    let tcp = dig(addr, &["+tcp", &long, "ANY"]).await;
    assert!(tcp.contains("ANSWER: 2"), "{tcp}");
}

/// Whether `text` reads as a hosts file: each line blank, a comment, or an
/// address and names.
fn parses_as_hosts(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.split('#').next().unwrap_or("").trim();
        let mut words = l.split_whitespace();
        match words.next() {
            None => true,
            Some(ip) => ip.parse::<std::net::IpAddr>().is_ok() && words.next().is_some(),
        }
    })
}

#[tokio::test]
async fn two_ups_at_once_only_one_touches_the_hosts_file() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let original = "127.0.0.1\tlocalhost\n# mine\n10.1.2.3 printer.lan\n";
    std::fs::write(&hosts, original).unwrap();
    let read = || std::fs::read_to_string(&hosts).unwrap();
    let start = || {
        std::process::Command::new(crate::support::devingress::BIN)
            .args(["up", "--http-port", "0", "--https-port", "0", "--dns-port", "0", "--hosts-file"])
            .arg(&hosts)
            .env("KUBECONFIG", &c.kubeconfig)
            .env("DEVINGRESS_DATA_DIR", c.dir.path().join("data"))
            .env("DEVINGRESS_RUNTIME_DIR", crate::support::devingress::runtime_dir(&c.kubeconfig))
            .env("DEVINGRESS_SYSTEM_ROOT", c.dir.path().join("system"))
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    for round in 0..5 {
        let mut both = [start(), start()];
        // One of them says another runs and exits; the other serves.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let loser = loop {
            if let Some(i) = (0..2).find(|&i| matches!(both[i].try_wait(), Ok(Some(_)))) {
                break i;
            }
            assert!(std::time::Instant::now() < deadline, "round {round}: neither exited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let [first, second] = both;
        let (mut loser, mut winner) = if loser == 0 { (first, second) } else { (second, first) };
        let out = loser.wait_with_output_ref();
        assert!(out.0.success(), "round {round}: {}", out.1);
        assert!(out.1.contains("already running"), "round {round}: {}", out.1);
        assert!(eventually(SETTLE, || async { read().contains("alpaca.example.com") }).await, "round {round}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(matches!(winner.try_wait(), Ok(None)), "round {round}: the other one serves");
        assert_eq!(read().matches("# BEGIN devingress").count(), 1, "round {round}: {}", read());
        let _ = std::process::Command::new("kill").args(["-TERM", &winner.id().to_string()]).status();
        let status = tokio::task::spawn_blocking(move || winner.wait()).await.unwrap().unwrap();
        assert!(status.success(), "round {round}");
        assert_eq!(read(), original, "round {round}: restored byte for byte");
    }
}

trait WaitRef {
    /// The exit status and standard error of a child that has exited.
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitRef for std::process::Child {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let status = self.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status, err)
    }
}

#[tokio::test]
async fn kill_9_during_a_thousand_table_changes_never_breaks_the_hosts_file() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let original = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n# mine\n10.1.2.3 printer.lan\n";
    std::fs::write(&hosts, original).unwrap();
    let path = hosts.display().to_string();
    let read = || std::fs::read_to_string(&hosts).unwrap();
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("seed {seed}");
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut changes = 0;
    let mut rewrites = 0;
    let mut round = 0;
    while changes < 1000 {
        round += 1;
        let d = Devingress::up(&c.kubeconfig, &["--hosts-file", &path]).await;
        assert!(eventually(SETTLE, || async { read().contains("alpaca.example.com") }).await, "{}", d.log());
        // A change every 1-3 ms; a kill at a random moment among them.
        let kill_after = 20 + random(180);
        let mut last = read();
        for i in 0..kill_after {
            let n = changes + i;
            if n % 2 == 0 {
                c.ingress(
                    "default",
                    &format!("churn-{}", n % 7),
                    json!({"rules": [{"host": format!("churn{n}.example.com"), "http": {"paths": [{"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
                );
            } else {
                c.api.delete(
                    crate::support::apiserver::resources::INGRESSES,
                    "default",
                    &format!("churn-{}", (n - 1) % 7),
                );
            }
            tokio::time::sleep(Duration::from_millis(1 + random(3))).await;
            let now = read();
            if now != last {
                rewrites += 1;
                last = now;
            }
        }
        changes += kill_after;
        drop(d); // SIGKILL
        let text = read();
        assert!(text.starts_with(original), "round {round}: the user's lines changed:\n{text}");
        assert!(parses_as_hosts(&text), "round {round}: not a hosts file:\n{text}");
        assert!(text.matches("# BEGIN devingress").count() <= 1, "round {round}:\n{text}");
    }
    eprintln!("{changes} table changes, {rewrites} rewrites of the hosts file seen, {round} kills");
    assert!(rewrites >= round, "the kills came while the file was being rewritten");
    // The next start takes back what the last one left; a clean stop restores the file.
    let d = Devingress::up(&c.kubeconfig, &["--hosts-file", &path]).await;
    assert!(eventually(SETTLE, || async { read().contains("alpaca.example.com") }).await);
    let (status, log) = d.stop(Duration::from_secs(15)).await;
    assert!(status.unwrap().success(), "{log}");
    assert_eq!(read(), original, "restored byte for byte");
}
