//! The TCP load balancer, measured: throughput through one connection
//! (1 MiB writes, echoed back by the pod) and new connections per second
//! (8 clients, each connection a 100-byte request and its echo), straight
//! to the pod server (the baseline) and through devingress to a
//! `type: LoadBalancer` Service, in the same run, with devingress's CPU
//! time (user + system, from /proc) per MiB and per connection. devingress
//! runs against the fake API server of tests/, which port-forwards to a
//! local echo server.
//!
//! Run: `cargo bench --bench tcp` (`BENCH_SECONDS` sets each row's length).

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use support::bench::cpu_seconds;
use support::cluster::TestCluster;
use support::devingress::Devingress;

/// Reads the pod's greeting line off a fresh connection.
async fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    let mut r = BufReader::new(tcp);
    let mut line = String::new();
    r.read_line(&mut line).await.expect("greeting");
    assert!(line.starts_with("pod "), "{line:?}");
    r
}

/// MiB/s echoed through one connection in `secs`, writing 1 MiB at a time.
async fn throughput(addr: SocketAddr, secs: u64) -> f64 {
    let (mut read, mut write) = connect(addr).await.into_inner().into_split();
    let stop = Instant::now() + Duration::from_secs(secs);
    let writer = tokio::spawn(async move {
        let chunk = vec![7u8; 1 << 20];
        let mut sent = 0u64;
        while Instant::now() < stop {
            write.write_all(&chunk).await.unwrap();
            sent += chunk.len() as u64;
        }
        (sent, write)
    });
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    while Instant::now() < stop {
        match tokio::time::timeout(Duration::from_secs(5), read.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got += n as u64,
            _ => break,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (_sent, _write) = writer.await.unwrap();
    got as f64 / elapsed / (1 << 20) as f64
}

/// New connections per second from 8 clients, each a 100-byte exchange.
async fn connections(addr: SocketAddr, secs: u64) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (done, failed) = (done.clone(), failed.clone());
            tokio::spawn(async move {
                let request = [b'x'; 100];
                let mut reply = [0u8; 100];
                while Instant::now() < stop {
                    let ok = async {
                        let mut r = connect(addr).await;
                        r.get_mut().write_all(&request).await?;
                        r.read_exact(&mut reply).await?;
                        Ok::<_, std::io::Error>(())
                    }
                    .await;
                    match ok {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    (done.load(Ordering::Relaxed) as f64 / secs as f64, failed.load(Ordering::Relaxed))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = TestCluster::start().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        c.lb_service("default", "echo", "2026-01-01T00:00:00Z", json!([{"port": port, "targetPort": 9000}]));
        c.tcp_pod("default", "echo", "echo-0", 9000).await;
        c.endpoints("default", "echo", "", 9000, &[("echo-0", true)]);
        let d = Devingress::up_with_env(&c.kubeconfig, &["--no-https", "--no-dns"], &support::bench::as_users()).await;
        let through: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..500 {
            if TcpStream::connect(through).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pod = c.tcp_pods[0].addr;
        let secs = u64::from(support::bench::seconds());
        let pid = d.pid();
        println!("devingress TCP benchmark: {secs}s per row, one pod (an echo server), through a LoadBalancer Service");
        println!("{:<28} {:<34} {:>12} {:>9} {:>22}", "row", "load", "figure", "vs pod", "devingress CPU");
        let t_pod = throughput(pod, secs).await;
        let cpu = cpu_seconds(pid);
        let t_lb = throughput(through, secs).await;
        let per_mib = (cpu_seconds(pid) - cpu) / (t_lb * secs as f64);
        println!(
            "{:<28} {:<34} {:>8.0} MiB/s {:>8.2}x",
            "straight to the pod server", "1 connection, 1 MiB writes", t_pod, 1.0
        );
        println!(
            "{:<28} {:<34} {:>8.0} MiB/s {:>8.2}x {:>14.3} ms/MiB",
            "devingress",
            "1 connection, 1 MiB writes",
            t_lb,
            t_lb / t_pod,
            per_mib * 1000.0
        );
        let (c_pod, f_pod) = connections(pod, secs).await;
        let cpu = cpu_seconds(pid);
        let (c_lb, f_lb) = connections(through, secs).await;
        let per_conn = (cpu_seconds(pid) - cpu) / (c_lb * secs as f64);
        println!(
            "{:<28} {:<34} {:>8.0} conn/s {:>7.2}x {:>22}",
            "straight to the pod server",
            format!("8 clients, new conn, 100 B ({f_pod} failed)"),
            c_pod,
            1.0,
            ""
        );
        println!(
            "{:<28} {:<34} {:>8.0} conn/s {:>7.2}x {:>14.3} ms/conn",
            "devingress",
            format!("8 clients, new conn, 100 B ({f_lb} failed)"),
            c_lb,
            c_lb / c_pod,
            per_conn * 1000.0
        );
        println!("port-forward sessions opened in all: {}", c.api.portforward_count());
    });
}
