//! The DNS server, measured with a small load client of our own: queries
//! per second for a served host over UDP, from 1 and 8 concurrent clients
//! each keeping one query in flight, next to the same client against a
//! plain UDP echo server in this process (the baseline: what loopback UDP
//! round trips cost here), with devingress's CPU time per query. Run:
//! `cargo bench --bench dns` (`BENCH_SECONDS`).

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use support::cluster::TestCluster;
use support::devingress::{Devingress, get};

/// Runs `clients` loops of query-then-answer against `addr` for `secs`; returns queries/s and p99 ms.
async fn load(addr: SocketAddr, clients: usize, secs: u64) -> (f64, f64) {
    let mut q = Message::new(1, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_str("alpaca.example.com.").unwrap(), RecordType::A));
    let packet = q.to_vec().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let packet = packet.clone();
            tokio::spawn(async move {
                let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                sock.connect(addr).await.unwrap();
                let mut buf = [0u8; 512];
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    sock.send(&packet).await.unwrap();
                    if tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await.is_ok() {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by(f64::total_cmp);
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or(f64::NAN);
    (all.len() as f64 / secs as f64, p99)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = TestCluster::start().await;
        c.examples().await;
        let d = Devingress::up_with_env(&c.kubeconfig, &["--no-https"], &support::bench::as_users()).await;
        for _ in 0..500 {
            if get(d.port, "alpaca.example.com", "/").await.status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let dns: SocketAddr = format!("127.0.0.1:{}", d.dns_port.expect("DNS")).parse().unwrap();
        let echo = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let secs = u64::from(support::bench::seconds());
        println!("DNS benchmark: A alpaca.example.com over UDP, {secs}s per row, one query in flight per client");
        println!(
            "{:<34} {:>8} {:>12} {:>9} {:>9} {:>14}",
            "row", "clients", "queries/s", "p99 ms", "vs echo", "CPU µs/query"
        );
        for clients in [1, 8] {
            let (base, base_p99) = load(echo_addr, clients, secs).await;
            let cpu = support::bench::cpu_seconds(d.pid());
            let (q, p99) = load(dns, clients, secs).await;
            let per_query = (support::bench::cpu_seconds(d.pid()) - cpu) * 1e6 / (q * secs as f64);
            println!(
                "{:<34} {clients:>8} {base:>12.0} {base_p99:>9.3} {:>8.2}x {:>14}",
                "UDP echo in this process", 1.0, "-"
            );
            println!(
                "{:<34} {clients:>8} {q:>12.0} {p99:>9.3} {:>8.2}x {per_query:>14.1}",
                "devingress DNS server",
                q / base
            );
        }
        dnsperf(dns, secs);
    });
}

/// The same server under dnsperf (Debian's dnsperf), when it is installed:
/// A, AAAA and wildcard names, 8 clients, up to 100 queries in flight.
fn dnsperf(dns: SocketAddr, secs: u64) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let data = dir.path().join("queries");
    std::fs::write(&data, "alpaca.example.com A\nalpaca.example.com AAAA\nbandicoot.example.com A\n").unwrap();
    let out = std::process::Command::new("dnsperf")
        .args(["-s", &dns.ip().to_string(), "-p", &dns.port().to_string(), "-d"])
        .arg(&data)
        .args(["-c", "8", "-q", "100", "-l", &secs.to_string()])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            println!("dnsperf -c 8 -q 100 -l {secs} (A, AAAA; 3 names):");
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let l = line.trim();
                if l.starts_with("Queries sent")
                    || l.starts_with("Queries completed")
                    || l.starts_with("Queries lost")
                    || l.starts_with("Response codes")
                    || l.starts_with("Queries per second")
                    || l.starts_with("Average Latency")
                {
                    println!("  {l}");
                }
            }
        }
        Ok(out) => println!("dnsperf failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(_) => println!("(dnsperf not installed: apt-get install dnsperf for a second load tool)"),
    }
}
