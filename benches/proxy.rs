//! The HTTP path, measured with wrk (Debian's `wrk` package): requests/s and
//! p50/p99 latency, on the same machine in the same run, for
//!
//! - straight to the pod server (the baseline);
//! - through devingress with its connection pool, by an Ingress rule;
//! - the same daemon and pod by a Gateway API HTTPRoute (the two should
//!   be equal: one routing table serves both);
//! - through devingress with `--port-forward v4` (pooled, but one WebSocket
//!   upgrade per connection instead of SPDY streams in one per pod),
//! - through devingress with `--port-forward websocket` (pooled SPDY
//!   streams as by default, but the session tunnelled in a WebSocket, as
//!   kubectl 1.31+ does, instead of straight after `Upgrade: SPDY/3.1`),
//! - through `kubectl port-forward` (the machine's `/usr/bin/kubectl`), in
//!   each of its protocols: SPDY/3.1 tunnelled in a WebSocket (its
//!   default) and SPDY/3.1 after an HTTP/1.1 upgrade, both against the same
//!   fake API server (rows left out when kubectl is not installed),
//! - through devingress with `--no-pool` (one port-forward per request, the
//!   naive way), measured last: its tens of thousands of sockets left in
//!   TIME_WAIT at the new-connection shapes are then no load on the rows
//!   it is compared with,
//!
//! at 1, 32 and 256 concurrent keep-alive connections, and with clients
//! that open a new connection per request. It also times the first byte of
//! fresh client connections to a warm pool. Each devingress row gives the
//! daemon's CPU time per request next to its requests/s, and every row the
//! cluster's: this process's (the fake API server and the pod servers; on
//! the first row the pod server alone). devingress runs
//! against the fake API server of tests/, which port-forwards to a local
//! pod server.
//!
//! Each row's time is split into rounds (three in the full mode, one in the
//! short mode), and the rows take turns round by round, so that a machine
//! that speeds up or slows down over minutes weighs on every row alike.
//!
//! Run: `cargo bench --bench proxy` (`BENCH_SECONDS` sets each row's length;
//! `BENCH_ROUNDS` the rounds it is split into; `BENCH_SHAPES=1,256` runs
//! only the shapes with those client counts).

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::apiserver::resources::{GATEWAYS, HTTP_ROUTES};
use support::cluster::TestCluster;

/// The host the HTTPRoute row asks for.
const ROUTE_HOST: &str = "route.bandicoot.example.com";
use support::devingress::{Devingress, get};

/// One wrk run's figures, or a row's over its rounds.
#[derive(Clone, Copy)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// The daemon's CPU time per request (NaN for the pod server).
    cpu_ms_per_request: f64,
    /// This process's CPU time per request: the fake API server and the pod
    /// servers, i.e. what the cluster spends on each request.
    cluster_ms_per_request: f64,
    /// Port-forwards the API server opened during the row: upgrades plus
    /// connections inside SPDY sessions (churn shows here).
    tunnels: usize,
}

fn parse_ms(s: &str) -> f64 {
    let s = s.trim();
    if let Some(v) = s.strip_suffix("us") {
        v.parse::<f64>().unwrap_or(f64::NAN) / 1000.0
    } else if let Some(v) = s.strip_suffix("ms") {
        v.parse().unwrap_or(f64::NAN)
    } else if let Some(v) = s.strip_suffix('s') {
        v.parse::<f64>().unwrap_or(f64::NAN) * 1000.0
    } else {
        f64::NAN
    }
}

/// One row: its name, the URL, the Host header, and the forwarder's pid
/// (none for the pod server).
#[derive(Clone)]
struct Row {
    name: &'static str,
    url: String,
    host: &'static str,
    pid: Option<u32>,
}

fn wrk(
    row: &Row,
    connections: u32,
    seconds: u32,
    new_connection_per_request: bool,
    tunnels: &dyn Fn() -> usize,
) -> Figures {
    let tunnels_before = tunnels();
    let threads = connections.clamp(1, 2).to_string();
    let mut cmd = Command::new("wrk");
    cmd.args(["-t", &threads, "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--latency"])
        .args(["-H", &format!("Host: {}", row.host)]);
    if new_connection_per_request {
        cmd.args(["-H", "Connection: close"]);
    }
    let cpu_before = row.pid.map(support::bench::cpu_seconds_tree);
    let cluster_before = support::bench::cpu_seconds(std::process::id());
    let out = cmd.arg(&row.url).output().expect("wrk is installed (apt-get install wrk)");
    let cpu = row.pid.zip(cpu_before).map(|(pid, before)| support::bench::cpu_seconds_tree(pid) - before);
    let cluster = support::bench::cpu_seconds(std::process::id()) - cluster_before;
    let text = String::from_utf8_lossy(&out.stdout);
    let pick = |label: &str| {
        text.lines().find(|l| l.trim_start().starts_with(label)).and_then(|l| l.split_whitespace().nth(1)).unwrap_or("")
    };
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let errors = text
        .lines()
        .filter(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
        .flat_map(|l| l.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u64>().ok()))
        .sum();
    let requests = rps * f64::from(seconds);
    let cpu_ms_per_request = cpu.map(|s| s * 1000.0 / requests).unwrap_or(f64::NAN);
    Figures {
        rps,
        p50_ms: parse_ms(pick("50%")),
        p99_ms: parse_ms(pick("99%")),
        errors,
        cpu_ms_per_request,
        cluster_ms_per_request: cluster * 1000.0 / requests,
        tunnels: tunnels() - tunnels_before,
    }
}

impl Figures {
    /// One row's figures over its rounds (each `seconds` long): the mean
    /// requests/s, CPU per request over all the rounds' requests, the
    /// median round's latencies, and the errors and tunnels of all.
    fn over_rounds(rounds: &[Figures]) -> Figures {
        let median = |f: fn(&Figures) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        // The rounds are equally long, so each one's requests/s weighs as its requests.
        let rps_sum: f64 = rounds.iter().map(|f| f.rps).sum();
        let per_request = |f: fn(&Figures) -> f64| rounds.iter().map(|r| f(r) * r.rps).sum::<f64>() / rps_sum;
        Figures {
            rps: rps_sum / rounds.len() as f64,
            p50_ms: median(|f| f.p50_ms),
            p99_ms: median(|f| f.p99_ms),
            errors: rounds.iter().map(|f| f.errors).sum(),
            cpu_ms_per_request: per_request(|f| f.cpu_ms_per_request),
            cluster_ms_per_request: per_request(|f| f.cluster_ms_per_request),
            tunnels: rounds.iter().map(|f| f.tunnels).sum(),
        }
    }
}

/// Time to the first response byte of `n` fresh client connections.
fn first_byte_ms(port: u16, n: usize) -> (f64, f64) {
    let mut samples: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_nodelay(true).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: bandicoot.example.com\r\nConnection: close\r\n\r\n").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            let t = start.elapsed().as_secs_f64() * 1000.0;
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            t
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[n / 2], samples[n * 99 / 100])
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = TestCluster::start().await;
        c.examples().await;
        // The same pod by an HTTPRoute, on a Gateway of devingress's class.
        c.api.install_gateway_api();
        c.api.apply(
            GATEWAYS,
            json!({"metadata": {"name": "web", "namespace": "default"},
                   "spec": {"gatewayClassName": "devingress",
                            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
        );
        c.api.apply(
            HTTP_ROUTES,
            json!({"metadata": {"name": "bench", "namespace": "default"},
                   "spec": {"parentRefs": [{"name": "web"}], "hostnames": [ROUTE_HOST],
                            "rules": [{"backendRefs": [{"name": "bandicoot", "port": 8080}]}]}}),
        );
        let pod = c.pods.iter().find(|p| p.name == "bandicoot-0").unwrap().addr;
        let pooled = Devingress::up_with_env(&c.kubeconfig, &[], &support::bench::as_users()).await;
        // Each further daemon needs a control socket of its own (in `run`).
        let system = c.kubeconfig.with_file_name("system");
        let another = |args: &'static [&'static str], run: &str| {
            let run = c.kubeconfig.with_file_name(run);
            let (kubeconfig, system) = (c.kubeconfig.clone(), system.clone());
            async move {
                let env = [
                    ("DEVINGRESS_RUNTIME_DIR", run.as_os_str()),
                    ("DEVINGRESS_SYSTEM_ROOT", system.as_os_str()),
                    support::bench::as_users()[0],
                ];
                Devingress::up_with_env(&kubeconfig, args, &env).await
            }
        };
        let naive = another(&["--no-pool"], "run-naive").await;
        let v4 = another(&["--port-forward", "v4"], "run-v4").await;
        let tunnel = another(&["--port-forward", "websocket"], "run-tunnel").await;
        for (d, host) in [
            (&pooled, "bandicoot.example.com"),
            (&pooled, ROUTE_HOST),
            (&naive, "bandicoot.example.com"),
            (&v4, "bandicoot.example.com"),
            (&tunnel, "bandicoot.example.com"),
        ] {
            for _ in 0..500 {
                if get(d.port, host, "/").await.pod().as_deref() == Some("bandicoot-0") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        use support::kubectl::{Mode, PortForward};
        let kubectl_ws = PortForward::start(&c.kubeconfig, "default", "bandicoot-0", 8080, Mode::WebSocket).await;
        let kubectl_spdy = PortForward::start(&c.kubeconfig, "default", "bandicoot-0", 8080, Mode::Spdy).await;
        let kubectl_rows: Vec<Row> = [("kubectl port-forward, WebSocket", &kubectl_ws), ("kubectl port-forward, SPDY", &kubectl_spdy)]
            .into_iter()
            .filter_map(|(name, k)| {
                let k = k.as_ref()?;
                Some(Row { name, url: format!("http://127.0.0.1:{}/", k.port), host: "bandicoot.example.com", pid: Some(k.pid()) })
            })
            .collect();
        let seconds = support::bench::seconds();
        let rounds: u32 = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .filter(|r| *r > 0)
            .unwrap_or(if support::bench::full() { 3 } else { 1 })
            .min(seconds);
        // BENCH_SECONDS=10 in three rounds: 3 s each.
        let round_seconds = ((seconds + rounds / 2) / rounds).max(1);
        let (pooled_pid, naive_pid, v4_pid, tunnel_pid) =
            (Some(pooled.pid()), Some(naive.pid()), Some(v4.pid()), Some(tunnel.pid()));
        let rows = move || {
            let mut rows = vec![
                Row {
                    name: "straight to the pod server",
                    url: format!("http://{pod}/"),
                    host: "bandicoot.example.com",
                    pid: None,
                },
                Row {
                    name: "devingress, pooled, Ingress",
                    url: format!("http://127.0.0.1:{}/", pooled.port),
                    host: "bandicoot.example.com",
                    pid: pooled_pid,
                },
                Row {
                    name: "devingress, pooled, HTTPRoute",
                    url: format!("http://127.0.0.1:{}/", pooled.port),
                    host: ROUTE_HOST,
                    pid: pooled_pid,
                },
                Row {
                    name: "devingress, pooled, v4 (1 upgrade/conn)",
                    url: format!("http://127.0.0.1:{}/", v4.port),
                    host: "bandicoot.example.com",
                    pid: v4_pid,
                },
                Row {
                    name: "devingress, pooled, SPDY in WebSocket",
                    url: format!("http://127.0.0.1:{}/", tunnel.port),
                    host: "bandicoot.example.com",
                    pid: tunnel_pid,
                },
            ];
            rows.extend(kubectl_rows.iter().cloned());
            rows.push(Row {
                name: "devingress, --no-pool (naive)",
                url: format!("http://127.0.0.1:{}/", naive.port),
                host: "bandicoot.example.com",
                pid: naive_pid,
            });
            rows
        };
        let pooled_port = pooled.port;
        let api = c.api.shared.clone();
        let table = |rows: Vec<Row>, shapes: Vec<(&'static str, u32, bool)>| {
            let api = api.clone();
            tokio::task::spawn_blocking(move || {
                use std::sync::atomic::Ordering::SeqCst;
                let tunnels = || api.portforwards.load(SeqCst) + api.spdy_streams.load(SeqCst);
                println!(
                    "{:<40} {:<22} {:>10} {:>9} {:>9} {:>8} {:>7} {:>12} {:>14} {:>8}",
                    "row", "clients", "req/s", "p50 ms", "p99 ms", "vs pod", "errors", "CPU ms/req", "cluster ms/req", "tunnels"
                );
                // `BENCH_SHAPES=1,32` runs only the shapes whose client count is listed.
                let only: Option<Vec<u32>> = std::env::var("BENCH_SHAPES")
                    .ok()
                    .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect());
                for (label, conns, fresh) in shapes {
                    if only.as_ref().is_some_and(|o| !o.contains(&conns)) {
                        continue;
                    }
                    // The rows take turns, round by round. Each forwarder's row is
                    // warmed for a second (its pool, for this shape of load) right
                    // before each of its rounds, so that it starts from its own load
                    // and not the previous row's (warmed all together first, the
                    // first devingress row came out 15-38% slower than the second).
                    let mut by_row: Vec<Vec<Figures>> = vec![Vec::new(); rows.len()];
                    for _ in 0..rounds {
                        for (row, measured) in rows.iter().zip(&mut by_row) {
                            if row.pid.is_some() {
                                wrk(row, conns, 1, fresh, &tunnels);
                            }
                            measured.push(wrk(row, conns, round_seconds, fresh, &tunnels));
                        }
                    }
                    let figures: Vec<Figures> = by_row.iter().map(|r| Figures::over_rounds(r)).collect();
                    for (row, f) in rows.iter().zip(&figures) {
                        println!(
                            "{:<40} {label:<22} {:>10.0} {:>9.3} {:>9.3} {:>7.2}x {:>7} {:>12} {:>14.4} {:>8}",
                            row.name,
                            f.rps,
                            f.p50_ms,
                            f.p99_ms,
                            f.rps / figures[0].rps,
                            f.errors,
                            if f.cpu_ms_per_request.is_nan() {
                                "-".to_string()
                            } else {
                                format!("{:.4}", f.cpu_ms_per_request)
                            },
                            f.cluster_ms_per_request,
                            f.tunnels
                        );
                    }
                    println!(
                        "{:<40} {label:<22} HTTPRoute is {:.2}x the Ingress row",
                        "",
                        figures[2].rps / figures[1].rps
                    );
                    // The pooled Ingress row against row `k`: requests/s (with each
                    // round's ratio when there are several: how far it swings), and
                    // CPU per request.
                    let against = |subject: &str, other: &str, k: usize| {
                        let each = if rounds > 1 {
                            let ratios: Vec<String> =
                                by_row[1].iter().zip(&by_row[k]).map(|(d, o)| format!("{:.2}", d.rps / o.rps)).collect();
                            format!(" (rounds: {})", ratios.join(", "))
                        } else {
                            String::new()
                        };
                        println!(
                            "{:<40} {label:<22} {subject} {:.2}x {other} in req/s{each}, {:.2}x its CPU per request, {:.2}x its cluster CPU per request",
                            "",
                            figures[1].rps / figures[k].rps,
                            figures[1].cpu_ms_per_request / figures[k].cpu_ms_per_request,
                            figures[1].cluster_ms_per_request / figures[k].cluster_ms_per_request,
                        );
                    };
                    // Rows 3 and 4 are v4 and SPDY in a WebSocket; the kubectl
                    // rows follow, and the naive row is the last.
                    let naive = figures.len() - 1;
                    against("SPDY streams are", "the v4 row", 3);
                    against("SPDY after an HTTP/1.1 upgrade is", "SPDY in a WebSocket", 4);
                    for (k, row) in rows.iter().enumerate().take(naive).skip(5) {
                        against("devingress is", row.name, k);
                    }
                    if fresh {
                        println!(
                            "{:<40} {label:<22} pooled is {:.1}x the naive row",
                            "",
                            figures[1].rps / figures[naive].rps
                        );
                    } else if conns == 1 {
                        println!(
                            "{:<40} {label:<22} p50 added by devingress: {:.3} ms",
                            "",
                            figures[1].p50_ms - figures[0].p50_ms
                        );
                    }
                }
                let (p50, p99) = first_byte_ms(pooled_port, 200);
                println!(
                    "fresh client connection to a warm pool, time to first byte: p50 {p50:.3} ms, p99 {p99:.3} ms"
                );
            })
        };
        println!(
            "devingress HTTP benchmark: wrk, {} s per row in {rounds} round(s), the rows taking turns, GET / (~500-byte JSON answer), one pod",
            round_seconds * rounds
        );
        println!("\n1. The fake API server as it is (a port-forward upgrade costs it well under 1 ms):");
        let shapes = vec![
            ("1 keep-alive", 1, false),
            ("32 keep-alive", 32, false),
            ("256 keep-alive", 256, false),
            ("1, new conn per req", 1, true),
            ("32, new conn per req", 32, true),
        ];
        table(rows(), shapes).await.unwrap();
        println!("\n2. Each upgrade delayed 10 ms, as measured on a real API server:");
        c.api.set_upgrade_delay(Duration::from_millis(10));
        let shapes =
            vec![("1 keep-alive", 1, false), ("1, new conn per req", 1, true), ("32, new conn per req", 32, true)];
        table(rows(), shapes).await.unwrap();
        println!("port-forward sessions opened in all: {}", c.api.portforward_count());
    });
}
