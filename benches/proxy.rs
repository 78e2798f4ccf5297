//! First benchmark of the HTTP path: requests/s and p50/p99 latency through
//! devingress (against the fake API server, port-forwarding to a local pod
//! server) next to the same load sent straight to the pod server, at 1 and
//! 32 concurrent keep-alive connections. The load tool is wrk (Debian's
//! `wrk` package). Run it with `cargo bench --bench proxy`.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use support::cluster::TestCluster;
use support::devingress::{Devingress, get};

/// One wrk run's figures.
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
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

fn wrk(url: &str, host: &str, connections: u32, seconds: u32) -> Figures {
    let threads = connections.clamp(1, 2).to_string();
    let out = Command::new("wrk")
        .args(["-t", &threads, "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--latency"])
        .args(["-H", &format!("Host: {host}"), url])
        .output()
        .expect("wrk is installed (apt-get install wrk)");
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
    Figures { rps, p50_ms: parse_ms(pick("50%")), p99_ms: parse_ms(pick("99%")) }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = TestCluster::start().await;
        c.examples().await;
        // One pod, so both rows hit the same server.
        c.endpoints("default", "bandicoot", "", 8080, &[("bandicoot-0", true)]);
        let pod = c.pods.iter().find(|p| p.name == "bandicoot-0").unwrap().addr;
        let d = Devingress::up(&c.kubeconfig, &[]).await;
        for _ in 0..200 {
            if get(d.port, "bandicoot.example.com", "/").await.pod().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seconds = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
        let direct = format!("http://{pod}/");
        let proxied = format!("http://127.0.0.1:{}/", d.port);
        println!(
            "devingress HTTP benchmark: wrk, {seconds}s per row, keep-alive connections, GET / (~500-byte JSON answer)"
        );
        println!("{:<34} {:>5} {:>11} {:>9} {:>9} {:>9}", "row", "conns", "req/s", "p50 ms", "p99 ms", "vs direct");
        for conns in [1u32, 32] {
            let (direct_f, proxied_f) = tokio::task::spawn_blocking({
                let (direct, proxied) = (direct.clone(), proxied.clone());
                move || {
                    // Warm the pool so the first upgrade is not measured.
                    wrk(&proxied, "bandicoot.example.com", conns, 1);
                    (
                        wrk(&direct, "bandicoot.example.com", conns, seconds),
                        wrk(&proxied, "bandicoot.example.com", conns, seconds),
                    )
                }
            })
            .await
            .unwrap();
            for (name, f) in
                [("straight to the pod server", &direct_f), ("through devingress (port-forward)", &proxied_f)]
            {
                println!(
                    "{name:<34} {conns:>5} {:>11.0} {:>9.3} {:>9.3} {:>8.2}x",
                    f.rps,
                    f.p50_ms,
                    f.p99_ms,
                    f.rps / direct_f.rps
                );
            }
        }
        println!("port-forward sessions opened: {}", c.api.portforward_count());
    });
}
