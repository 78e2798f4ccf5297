//! The HTTPS listener, measured: new TLS connections per second (OpenSSL's
//! `s_time`), and requests/s over kept-alive HTTP/2 with TLS next to the
//! same load over cleartext HTTP/2 (h2load, Debian's `nghttp2-client`), all
//! through devingress to one pod via the fake API server. It also prints a
//! `curl -v` session and an `openssl s_client` summary against a minted
//! certificate. Run: `cargo bench --bench tls` (`BENCH_SECONDS` per row).

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use support::cluster::TestCluster;
use support::devingress::{Devingress, get};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("tool installed (openssl, curl, h2load)");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn h2load(url: &str, seconds: u32, clients: u32, streams: u32) -> (f64, String) {
    let text = run(Command::new("h2load").args([
        "-D",
        &seconds.to_string(),
        "-c",
        &clients.to_string(),
        "-m",
        &streams.to_string(),
        "-H",
        ":authority: alpaca.example.com",
        url,
    ]));
    let rps = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or(f64::NAN);
    let status = text.lines().find(|l| l.starts_with("requests:")).unwrap_or("").to_string();
    (rps, status)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = TestCluster::start().await;
        c.examples().await;
        let d = Devingress::up_with_env(&c.kubeconfig, &[], &support::bench::as_users()).await;
        for _ in 0..500 {
            if get(d.port, "alpaca.example.com", "/").await.status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (http, https) = (d.port, d.https_port.expect("HTTPS"));
        let ca = d.data_dir.join("ca/rootCA.pem");
        let seconds = support::bench::seconds();
        let pid = d.pid();
        // devingress's CPU milliseconds per unit of what `f` did (its count).
        let cpu_per = move |f: &mut dyn FnMut() -> f64| {
            let before = support::bench::cpu_seconds(pid);
            let count = f();
            (support::bench::cpu_seconds(pid) - before) * 1000.0 / count
        };
        tokio::task::spawn_blocking(move || {
            println!("== curl -v against a minted certificate");
            let session = run(Command::new("curl")
                .args(["-sv", "-o", "/dev/null", "--cacert"])
                .arg(&ca)
                .args(["--resolve", &format!("alpaca.example.com:{https}:127.0.0.1")])
                .arg(format!("https://alpaca.example.com:{https}/")));
            for line in session.lines().filter(|l| l.starts_with('*') || l.starts_with('<') || l.starts_with('>')) {
                println!("{line}");
            }
            println!("\n== openssl s_client -brief");
            let brief = run(Command::new("openssl")
                .args([
                    "s_client",
                    "-brief",
                    "-connect",
                    &format!("127.0.0.1:{https}"),
                    "-servername",
                    "alpaca.example.com",
                    "-CAfile",
                ])
                .arg(&ca)
                .stdin(std::process::Stdio::null()));
            println!("{}", brief.trim());

            println!("\n== new TLS connections per second (openssl s_time -new, {seconds}s, one client, TLS 1.3)");
            let mut st = String::new();
            let per_connection = cpu_per(&mut || {
                st = run(Command::new("openssl").args([
                    "s_time",
                    "-connect",
                    &format!("127.0.0.1:{https}"),
                    "-new",
                    "-time",
                    &seconds.to_string(),
                ]));
                // "N connections in T real seconds": N.
                st.lines()
                    .find(|l| l.contains("connections in") && l.contains("real seconds"))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(f64::NAN)
            });
            for line in st.lines().filter(|l| l.contains("connections")) {
                println!("{line}");
            }
            println!("devingress CPU per new TLS connection: {per_connection:.3} ms");

            println!("\n== requests/s, h2load, {seconds}s per row, GET / through devingress to one pod");
            println!(
                "{:<40} {:>8} {:>8} {:>10} {:>8} {:>11}  requests",
                "row", "clients", "streams", "req/s", "vs h2c", "CPU ms/req"
            );
            for (clients, streams) in [(1, 1), (32, 10)] {
                let (mut base, mut base_status) = (0.0, String::new());
                let base_cpu = cpu_per(&mut || {
                    (base, base_status) = h2load(&format!("http://127.0.0.1:{http}/"), seconds, clients, streams);
                    base * f64::from(seconds)
                });
                let (mut tls, mut tls_status) = (0.0, String::new());
                let tls_cpu = cpu_per(&mut || {
                    (tls, tls_status) = h2load(&format!("https://127.0.0.1:{https}/"), seconds, clients, streams);
                    tls * f64::from(seconds)
                });
                println!(
                    "{:<40} {clients:>8} {streams:>8} {base:>10.0} {:>7.2}x {base_cpu:>11.4}  {base_status}",
                    "cleartext HTTP/2 (h2c), kept alive", 1.0
                );
                println!(
                    "{:<40} {clients:>8} {streams:>8} {tls:>10.0} {:>7.2}x {tls_cpu:>11.4}  {tls_status}",
                    "HTTP/2 over TLS, kept alive",
                    tls / base
                );
            }
        })
        .await
        .unwrap();
    });
}
