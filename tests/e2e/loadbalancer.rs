//! `type: LoadBalancer` Services on the listen address: raw TCP through pod
//! port-forward to ready pods, the Service's status, and every way a port
//! can fail to be served.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::apiserver::resources::SERVICES;
use crate::support::cluster::TestCluster;
use crate::support::devingress::{BIN, Devingress, eventually};

const SETTLE: Duration = Duration::from_secs(15);

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Connects to `port` on loopback and reads the pod's greeting: the pod's name.
async fn greet(port: u16) -> Result<(BufReader<TcpStream>, String), String> {
    greet_within(port, Duration::from_secs(10)).await
}

/// [`greet`], waiting up to `patience` for the greeting.
async fn greet_within(port: u16, patience: Duration) -> Result<(BufReader<TcpStream>, String), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let mut r = BufReader::new(tcp);
    let mut line = String::new();
    match tokio::time::timeout(patience, r.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => {}
        other => return Err(format!("no greeting: {other:?}")),
    }
    line.strip_prefix("pod ").map(|p| (r, p.trim().to_string())).ok_or_else(|| format!("greeting {line:?}"))
}

/// One short exchange: connect, greeting, a line echoed back; the pod's name.
async fn exchange(port: u16) -> Result<String, String> {
    let (mut r, pod) = greet(port).await?;
    r.get_mut().write_all(b"ping\n").await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    match tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line)).await {
        Ok(Ok(_)) if line == "ping\n" => Ok(pod),
        other => Err(format!("echo from {pod}: {other:?} {line:?}")),
    }
}

/// The same, with the client speaking first: its line is on its way before
/// the pod has said anything.
async fn exchange_eager(port: u16) -> Result<String, String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    tcp.write_all(b"ping\n").await.map_err(|e| e.to_string())?;
    let mut r = BufReader::new(tcp);
    let (mut greeting, mut echo) = (String::new(), String::new());
    let read = async {
        r.read_line(&mut greeting).await?;
        r.read_line(&mut echo).await
    };
    match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(Ok(_)) if echo == "ping\n" => {
            greeting.strip_prefix("pod ").map(|p| p.trim().to_string()).ok_or_else(|| format!("greeting {greeting:?}"))
        }
        other => Err(format!("{other:?} {greeting:?} {echo:?}")),
    }
}

/// The Service's `status.loadBalancer.ingress`, or null.
fn lb_ingress(c: &TestCluster, ns: &str, name: &str) -> Value {
    c.api.get(SERVICES, ns, name).map(|s| s["status"]["loadBalancer"]["ingress"].clone()).unwrap_or(Value::Null)
}

async fn status_becomes(c: &TestCluster, ns: &str, name: &str, want: Value) -> bool {
    eventually(SETTLE, || async { lb_ingress(c, ns, name) == want }).await
}

fn served(port: u16) -> Value {
    json!([{"ip": "127.0.0.1", "ipMode": "Proxy", "ports": [{"port": port, "protocol": "TCP"}]}])
}

/// Whether nothing listens on `port` any more.
async fn closed(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).await.is_err()
}

#[tokio::test]
async fn a_load_balancer_service_is_served_on_its_port_with_its_status_written_and_removed() {
    let mut c = TestCluster::start().await;
    let port = free_port();
    c.lb_service("default", "redis", "2026-01-01T00:00:00Z", json!([{"port": port, "targetPort": 6379}]));
    c.tcp_pod("default", "redis", "redis-0", 6379).await;
    c.tcp_pod("default", "redis", "redis-1", 6379).await;
    c.endpoints("default", "redis", "", 6379, &[("redis-0", true), ("redis-1", true)]);
    c.ingress(
        "default",
        "web",
        json!({"rules": [{"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
              "backend": {"service": {"name": "redis", "port": {"number": port}}}}]}}]}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { exchange(port).await.is_ok() }).await, "{}", d.log());
    assert!(status_becomes(&c, "default", "redis", served(port)).await, "{}", lb_ingress(&c, "default", "redis"));
    assert!(d.wait_log(&format!("default/redis: 127.0.0.1:{port} -> 2 pods"), SETTLE).await, "{}", d.log());

    // `status` and `routes` list it.
    let out = tokio::process::Command::new(BIN)
        .arg("status")
        .env("DEVINGRESS_RUNTIME_DIR", d.runtime_dir())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    let row = text.lines().find(|l| l.starts_with("default/redis")).unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..3], ["default/redis", &format!("127.0.0.1:{port}"), "2/2"], "{text}");
    assert!(cells[4].parse::<u64>().unwrap() >= 1, "connections counted: {text}");
    let out =
        tokio::process::Command::new(BIN).args(["routes", "--kubeconfig"]).arg(&c.kubeconfig).output().await.unwrap();
    let routes = String::from_utf8_lossy(&out.stdout);
    assert!(
        routes.contains(&format!("default/redis  {port}/TCP  2/2    on the listen address, port {port}")),
        "{routes}"
    );

    // A clean exit takes the status back out.
    let (exit, log) = d.stop(SETTLE).await;
    assert!(exit.expect("exits").success(), "{log}");
    assert_eq!(lb_ingress(&c, "default", "redis"), Value::Null, "{log}");
    assert!(log.contains("removed devingress's address from the status of 1 Service(s)"), "{log}");
}

#[tokio::test]
async fn a_named_target_port_is_resolved_per_pod() {
    let mut c = TestCluster::start().await;
    let port = free_port();
    c.lb_service("default", "db", "2026-01-01T00:00:00Z", json!([{"port": port, "name": "pg", "targetPort": "pg"}]));
    c.tcp_pod("default", "db", "db-0", 7000).await;
    c.tcp_pod("default", "db", "db-1", 7001).await;
    c.endpoint_slice("default", "db", "db-a", "pg", 7000, &[("db-0", true)]);
    c.endpoint_slice("default", "db", "db-b", "pg", 7001, &[("db-1", true)]);
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { exchange(port).await.is_ok() }).await, "{}", d.log());
    let mut seen = BTreeSet::new();
    for _ in 0..10 {
        seen.insert(exchange(port).await.unwrap());
    }
    assert_eq!(seen, BTreeSet::from(["db-0".to_string(), "db-1".to_string()]), "{}", d.log());
}

#[tokio::test]
async fn thirty_connections_spread_over_three_pods() {
    let mut c = TestCluster::start().await;
    let port = free_port();
    c.lb_service("default", "mq", "2026-01-01T00:00:00Z", json!([{"port": port, "targetPort": 5672}]));
    for i in 0..3 {
        c.tcp_pod("default", "mq", &format!("mq-{i}"), 5672).await;
    }
    c.endpoints("default", "mq", "", 5672, &[("mq-0", true), ("mq-1", true), ("mq-2", true)]);
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { exchange(port).await.is_ok() }).await, "{}", d.log());
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        seen.insert(exchange(port).await.unwrap());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// A pod whose kubelet takes the port-forward upgrade and never answers:
/// the first connection that tries it waits out the upgrade's 10 s and goes
/// to the other pod; later connections try the other pod first (the hanging
/// one is passed over for 30 s), so none waits on it again.
#[tokio::test]
async fn new_connections_pass_over_a_pod_whose_kubelet_hangs() {
    let mut c = TestCluster::start().await;
    let port = free_port();
    c.lb_service("default", "q", "2026-01-01T00:00:00Z", json!([{"port": port, "targetPort": 7000}]));
    for i in 0..2 {
        c.tcp_pod("default", "q", &format!("q-{i}"), 7000).await;
    }
    c.endpoints("default", "q", "", 7000, &[("q-0", true), ("q-1", true)]);
    c.api.hang_portforwards("q-1");
    let d = Devingress::up(&c.kubeconfig, &["--port-forward", "v4"]).await;
    assert!(d.wait_log(&format!("default/q: 127.0.0.1:{port} -> 2 pods"), SETTLE).await, "{}", d.log());
    let started = Instant::now();
    let mut pods = Vec::new();
    for i in 0..6 {
        // The first may wait out the upgrade timeout before its greeting.
        match greet_within(port, Duration::from_secs(30)).await {
            Ok((_, pod)) => pods.push(pod),
            Err(e) => panic!("connection {i}: {e}\n{}", d.log()),
        }
    }
    eprintln!("a hanging kubelet: 6 connections answered in {:?} by {pods:?}", started.elapsed());
    assert!(pods.iter().all(|p| p == "q-0"), "{pods:?}");
    let tries = c.api.requests().iter().filter(|r| r.contains("/pods/q-1/portforward")).count();
    assert_eq!(tries, 1, "the hanging pod is tried once, then passed over: {:#?}", c.api.requests());
}

/// The resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_quarter_gibibyte_echoes_through_one_connection_intact_in_flat_memory() {
    let mut c = TestCluster::start().await;
    let port = free_port();
    c.lb_service("default", "echo", "2026-01-01T00:00:00Z", json!([{"port": port, "targetPort": 9000}]));
    c.tcp_pod("default", "echo", "echo-0", 9000).await;
    c.endpoints("default", "echo", "", 9000, &[("echo-0", true)]);
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { exchange(port).await.is_ok() }).await, "{}", d.log());
    const TOTAL: usize = 256 << 20;
    let (r, pod) = greet(port).await.unwrap();
    assert_eq!(pod, "echo-0");
    let (mut read, mut write) = r.into_inner().into_split();
    let writer = tokio::spawn(async move {
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        let mut chunk = vec![0u8; 64 << 10];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut sent = 0;
        while sent < TOTAL {
            for b in chunk.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            hash.update(&chunk);
            write.write_all(&chunk).await.unwrap();
            sent += chunk.len();
        }
        (hash.finish(), write)
    });
    let pid = d.pid();
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid) as usize, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 << 10];
    let mut got = 0;
    let started = Instant::now();
    while got < TOTAL {
        let n = tokio::time::timeout(Duration::from_secs(30), read.read(&mut buf))
            .await
            .expect("data keeps coming")
            .unwrap();
        assert!(n > 0, "the stream ended after {got} of {TOTAL} bytes");
        hash.update(&buf[..n]);
        got += n;
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let (sent_hash, _write) = writer.await.unwrap();
    assert_eq!(hash.finish().as_ref(), sent_hash.as_ref(), "what came back differs from what was sent");
    let peak_mib = peak.load(Ordering::Relaxed) / 1024;
    eprintln!("256 MiB echoed in {:?}; devingress peak RSS {peak_mib} MiB", started.elapsed());
    assert!(peak_mib < 100, "devingress's RSS reached {peak_mib} MiB");
}

#[tokio::test]
async fn a_rolling_restart_under_new_connections_fails_none() {
    let mut c = TestCluster::start().await;
    let port = free_port();
    c.lb_service("default", "api", "2026-01-01T00:00:00Z", json!([{"port": port, "targetPort": 8000}]));
    for i in 0..3 {
        c.tcp_pod("default", "api", &format!("api-old-{i}"), 8000).await;
    }
    let old = ["api-old-0", "api-old-1", "api-old-2"];
    c.endpoints("default", "api", "", 8000, &old.map(|p| (p, true)));
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { exchange(port).await.is_ok() }).await, "{}", d.log());

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match exchange(port).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            failed.lock().unwrap().push(e);
                            0
                        }
                    };
                }
            })
        })
        .collect();
    // Replace each pod as a Deployment does: the new one ready, the old one
    // terminating (not ready), then gone.
    let mut current: Vec<(String, bool)> = old.iter().map(|p| (p.to_string(), true)).collect();
    for i in 0..3 {
        let new = format!("api-new-{i}");
        c.tcp_pod("default", "api", &new, 8000).await;
        current.push((new, true));
        current[i].1 = false;
        let eps: Vec<(&str, bool)> = current.iter().map(|(p, r)| (p.as_str(), *r)).collect();
        c.endpoints("default", "api", "", 8000, &eps);
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.tcp_pods.retain(|p| p.name != old[i]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let failed = std::mem::take(&mut *failed.lock().unwrap());
    let ok = ok.load(Ordering::Relaxed);
    eprintln!("{ok} connections through the rollout, {} failed", failed.len());
    assert!(
        failed.is_empty(),
        "{} of {} connections failed: {:?}\n{}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)],
        d.log()
    );
    assert!(ok > 20, "the load ran: {ok}");
    assert!(exchange(port).await.unwrap().starts_with("api-new-"));
}

#[tokio::test]
async fn a_port_another_program_holds_is_reported_and_taken_once_free() {
    let mut c = TestCluster::start().await;
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = blocker.local_addr().unwrap().port();
    let free = free_port();
    c.lb_service("default", "blocked", "2026-01-01T00:00:00Z", json!([{"port": taken, "targetPort": 80}]));
    c.lb_service("default", "fine", "2026-01-01T00:00:00Z", json!([{"port": free, "targetPort": 80}]));
    for svc in ["blocked", "fine"] {
        c.tcp_pod("default", svc, &format!("{svc}-0"), 80).await;
        c.endpoints("default", svc, "", 80, &[(&format!("{svc}-0"), true)]);
    }
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let in_use = json!([{"ip": "127.0.0.1", "ipMode": "Proxy",
                         "ports": [{"port": taken, "protocol": "TCP", "error": "devingress.dev/PortInUse"}]}]);
    assert!(status_becomes(&c, "default", "blocked", in_use).await, "{}", lb_ingress(&c, "default", "blocked"));
    assert!(
        d.wait_log(
            &format!("default/blocked: port {taken} not served: 127.0.0.1:{taken} is in use by another program"),
            SETTLE
        )
        .await,
        "{}",
        d.log()
    );
    assert_eq!(exchange(free).await.unwrap(), "fine-0");
    assert!(status_becomes(&c, "default", "fine", served(free)).await);
    // Said once, though it is retried every few seconds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(d.log().matches(&format!("port {taken} not served")).count(), 1, "{}", d.log());
    drop(blocker);
    assert!(
        eventually(Duration::from_secs(10), || async { exchange(taken).await.is_ok_and(|p| p == "blocked-0") }).await
    );
    assert!(status_becomes(&c, "default", "blocked", served(taken)).await);
}

#[tokio::test]
async fn udp_ports_other_classes_deletion_type_change_and_added_ports() {
    let mut c = TestCluster::start().await;
    let (tcp, udp, foreign, added) = (free_port(), free_port(), free_port(), free_port());
    c.lb_service(
        "default",
        "dns",
        "2026-01-01T00:00:00Z",
        json!([{"name": "tcp", "port": tcp, "targetPort": 53}, {"name": "udp", "port": udp, "protocol": "UDP", "targetPort": 53}]),
    );
    c.tcp_pod("default", "dns", "dns-0", 53).await;
    c.endpoint_slice("default", "dns", "dns-tcp", "tcp", 53, &[("dns-0", true)]);
    c.api.apply(
        SERVICES,
        json!({"metadata": {"name": "metal", "namespace": "default"},
               "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/metallb", "ports": [{"port": foreign}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let want = json!([{"ip": "127.0.0.1", "ipMode": "Proxy", "ports": [
        {"port": tcp, "protocol": "TCP"},
        {"port": udp, "protocol": "UDP", "error": "devingress.dev/UnsupportedProtocol"}]}]);
    assert!(status_becomes(&c, "default", "dns", want).await, "{}", lb_ingress(&c, "default", "dns"));
    assert_eq!(exchange(tcp).await.unwrap(), "dns-0");
    // Another controller's class: no listener, no status.
    assert!(closed(foreign).await);
    assert_eq!(lb_ingress(&c, "default", "metal"), Value::Null);

    // An added port is served.
    c.lb_service(
        "default",
        "dns",
        "2026-01-01T00:00:00Z",
        json!([{"name": "tcp", "port": tcp, "targetPort": 53}, {"name": "tcp2", "port": added, "targetPort": 53}]),
    );
    c.endpoint_slice("default", "dns", "dns-tcp2", "tcp2", 53, &[("dns-0", true)]);
    assert!(eventually(SETTLE, || async { exchange(added).await.is_ok() }).await, "{}", d.log());
    // A port taken out of the Service closes within 2 s; the others stay.
    c.lb_service("default", "dns", "2026-01-01T00:00:00Z", json!([{"name": "tcp", "port": tcp, "targetPort": 53}]));
    assert!(eventually(Duration::from_secs(2), || async { closed(added).await }).await);
    assert_eq!(exchange(tcp).await.unwrap(), "dns-0");

    // Switched to ClusterIP: its ports close within 2 s and devingress's status goes.
    c.api.apply(
        SERVICES,
        json!({"metadata": {"name": "dns", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"type": "ClusterIP", "selector": {"app": "dns"}, "ports": [{"name": "tcp", "port": tcp, "targetPort": 53}]}}),
    );
    let t = Instant::now();
    assert!(eventually(Duration::from_secs(2), || async { closed(tcp).await && closed(added).await }).await);
    eprintln!("ports closed {:?} after the switch to ClusterIP", t.elapsed());

    // Deleted: closes within 2 s.
    let gone = free_port();
    c.lb_service("default", "temp", "2026-01-01T00:00:00Z", json!([{"port": gone, "targetPort": 53}]));
    c.endpoints("default", "temp", "", 53, &[("dns-0", true)]);
    assert!(eventually(SETTLE, || async { exchange(gone).await.is_ok() }).await, "{}", d.log());
    c.api.delete(SERVICES, "default", "temp");
    assert!(eventually(Duration::from_secs(2), || async { closed(gone).await }).await);
}

#[tokio::test]
async fn without_ready_pods_a_connection_closes_at_once_and_works_when_a_pod_turns_ready() {
    let mut c = TestCluster::start().await;
    let port = free_port();
    c.lb_service("default", "cold", "2026-01-01T00:00:00Z", json!([{"port": port, "targetPort": 80}]));
    c.tcp_pod("default", "cold", "cold-0", 80).await;
    c.endpoints("default", "cold", "", 80, &[("cold-0", false)]);
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(
        eventually(SETTLE, || async { TcpStream::connect(("127.0.0.1", port)).await.is_ok() }).await,
        "{}",
        d.log()
    );
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed within a second, not left hanging: {read:?}");
    eprintln!("closed after {:?}", t.elapsed());
    c.endpoints("default", "cold", "", 80, &[("cold-0", true)]);
    assert!(eventually(SETTLE, || async { exchange(port).await.is_ok() }).await, "{}", d.log());
}

#[tokio::test]
async fn a_connection_to_a_pod_that_goes_away_ends_and_the_others_go_on() {
    let mut c = TestCluster::start().await;
    let port = free_port();
    c.lb_service("default", "ws", "2026-01-01T00:00:00Z", json!([{"port": port, "targetPort": 80}]));
    c.tcp_pod("default", "ws", "ws-0", 80).await;
    c.tcp_pod("default", "ws", "ws-1", 80).await;
    c.endpoints("default", "ws", "", 80, &[("ws-0", true), ("ws-1", true)]);
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { exchange(port).await.is_ok() }).await, "{}", d.log());
    let mut conns = Vec::new();
    while conns.len() < 4 {
        conns.push(greet(port).await.unwrap());
    }
    assert!(conns.iter().any(|(_, p)| p == "ws-0") && conns.iter().any(|(_, p)| p == "ws-1"));
    // The pod goes away before its EndpointSlice says so: new connections
    // that devingress sends there move to the other pod when the kubelet
    // cannot reach it, what the client already sent included.
    c.tcp_pods.retain(|p| p.name != "ws-0");
    for i in 0..6 {
        let pod = if i % 2 == 0 { exchange(port).await } else { exchange_eager(port).await };
        assert_eq!(pod.as_deref(), Ok("ws-1"), "{}", d.log());
    }
    c.endpoints("default", "ws", "", 80, &[("ws-1", true)]);
    for (mut r, pod) in conns {
        let mut line = String::new();
        let _ = r.get_mut().write_all(b"still there?\n").await;
        let read = tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line)).await;
        if pod == "ws-0" {
            assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the gone pod's connection ends: {read:?} {line:?}");
        } else {
            assert_eq!(line, "still there?\n", "the other pod's connection is untouched");
        }
    }
    for _ in 0..5 {
        assert_eq!(exchange(port).await.unwrap(), "ws-1");
    }
}

#[tokio::test]
async fn the_older_of_two_services_on_one_port_keeps_it() {
    let mut c = TestCluster::start().await;
    let port = free_port();
    c.lb_service("team-b", "cache", "2026-03-01T00:00:00Z", json!([{"port": port, "targetPort": 80}]));
    c.lb_service("team-a", "cache", "2026-02-01T00:00:00Z", json!([{"port": port, "targetPort": 80}]));
    for ns in ["team-a", "team-b"] {
        c.tcp_pod(ns, "cache", &format!("cache-{ns}"), 80).await;
        c.endpoints(ns, "cache", "", 80, &[(&format!("cache-{ns}"), true)]);
    }
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { exchange(port).await.is_ok() }).await, "{}", d.log());
    assert_eq!(exchange(port).await.unwrap(), "cache-team-a");
    assert!(status_becomes(&c, "team-a", "cache", served(port)).await);
    let in_use = json!([{"ip": "127.0.0.1", "ipMode": "Proxy",
                         "ports": [{"port": port, "protocol": "TCP", "error": "devingress.dev/PortInUse"}]}]);
    assert!(status_becomes(&c, "team-b", "cache", in_use).await, "{}", lb_ingress(&c, "team-b", "cache"));
    assert!(
        d.log().contains(&format!(
            "team-b/cache: port {port} not served: port {port} is served for Service team-a/cache, which is older"
        )),
        "{}",
        d.log()
    );
}

#[tokio::test]
async fn no_load_balancers_turns_the_feature_off() {
    let mut c = TestCluster::start().await;
    let port = free_port();
    c.lb_service("default", "off", "2026-01-01T00:00:00Z", json!([{"port": port, "targetPort": 80}]));
    c.tcp_pod("default", "off", "off-0", 80).await;
    c.endpoints("default", "off", "", 80, &[("off-0", true)]);
    let d = Devingress::up(&c.kubeconfig, &["--no-load-balancers"]).await;
    assert!(d.wait_log("serving 0 Ingresses", SETTLE).await, "{}", d.log());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(closed(port).await);
    assert_eq!(lb_ingress(&c, "default", "off"), Value::Null);
}

/// Runs `redis-cli -p PORT args…` and returns what it printed.
async fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = tokio::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).trim().to_string()
}

/// A real Redis as the pod, and the real redis-cli through the Service's
/// port on loopback, as a user would reach a Redis installed by Helm.
#[tokio::test]
async fn redis_cli_reaches_a_real_redis_behind_a_load_balancer_service() {
    use crate::support::devingress::require;
    require("redis-server", "redis-server", "it runs a real Redis as the pod");
    require("redis-cli", "redis-tools", "it talks to Redis as a user would");
    let redis_port = free_port();
    let _redis = tokio::process::Command::new("redis-server")
        .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(eventually(SETTLE, || async { TcpStream::connect(("127.0.0.1", redis_port)).await.is_ok() }).await);

    let c = TestCluster::start().await;
    let port = free_port();
    c.lb_service(
        "data",
        "cache-redis-master",
        "2026-01-01T00:00:00Z",
        json!([{"name": "tcp-redis", "port": port, "targetPort": "redis"}]),
    );
    c.server_pod(
        "data",
        "cache-redis-master",
        "cache-redis-master-0",
        6379,
        format!("127.0.0.1:{redis_port}").parse().unwrap(),
    );
    c.endpoints("data", "cache-redis-master", "tcp-redis", 6379, &[("cache-redis-master-0", true)]);
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { redis_cli(port, &["ping"]).await == "PONG" }).await, "{}", d.log());
    assert_eq!(redis_cli(port, &["set", "greeting", "hello from the cluster"]).await, "OK");
    assert_eq!(redis_cli(port, &["get", "greeting"]).await, "hello from the cluster");
    let log = d.log();
    let line =
        log.lines().find(|l| l.contains("data/cache-redis-master: 127.0.0.1")).unwrap_or_else(|| panic!("{log}"));
    eprintln!("{line}");
    assert!(line.ends_with(&format!("data/cache-redis-master: 127.0.0.1:{port} -> 1 pod")), "{line}");
}
