//! `devingress doctor`: checks each part a user depends on, one line each,
//! with a fix for every failure.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use http_body_util::{BodyExt, Empty};

use crate::cli::DoctorArgs;
use crate::cluster::ClusterWatch;
use crate::paths::Paths;
use crate::routes::{self, HostPattern};
use crate::tls::LocalCa;

/// One check's result.
struct Check {
    ok: bool,
    what: String,
    detail: String,
    fix: Option<String>,
}

fn ok(what: &str, detail: impl Into<String>) -> Check {
    Check { ok: true, what: what.into(), detail: detail.into(), fix: None }
}

fn fail(what: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { ok: false, what: what.into(), detail: detail.into(), fix: Some(fix.into()) }
}

/// A failure whose message already says how to fix it.
fn failed_with_fix_inside(what: &str, detail: String) -> Check {
    Check { ok: false, what: what.into(), detail, fix: None }
}

fn print(c: &Check) {
    println!("{:<5} {}: {}", if c.ok { "ok" } else { "FAIL" }, c.what, c.detail);
    if let Some(fix) = &c.fix {
        println!("      fix: {fix}");
    }
}

/// The first of `candidates` where something accepts TCP.
async fn listening(candidates: &[SocketAddr]) -> Option<SocketAddr> {
    for &addr in candidates {
        if tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            return Some(addr);
        }
    }
    None
}

/// Asks the DNS server at `addr` for `host`'s A record.
async fn dns_a(addr: SocketAddr, host: &str) -> Result<Vec<IpAddr>, String> {
    let mut q = Message::new(0x0d0c, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_str(&format!("{host}.")).map_err(|e| e.to_string())?, RecordType::A));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    sock.send_to(&q.to_vec().map_err(|e| e.to_string())?, addr).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .map_err(|_| "no answer within 2s".to_string())?
        .map_err(|e| e.to_string())?;
    let m = Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
    Ok(m.answers.iter().filter_map(|r| if let RData::A(a) = &r.data { Some(IpAddr::V4(a.0)) } else { None }).collect())
}

/// Where a running `devingress up` serves, from its control socket.
struct Daemon {
    /// Its HTTP, HTTPS and DNS addresses.
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    dns: Option<SocketAddr>,
    /// The exact hosts it serves.
    hosts: Vec<String>,
}

/// The kubeconfig to check: what the user named, else what the running
/// daemon uses, else the default.
fn kubeconfig(
    args: &DoctorArgs,
    daemon: Option<&crate::status::Status>,
) -> Result<crate::kubeconfig::Loaded, crate::kubeconfig::KubeconfigError> {
    match daemon {
        Some(d)
            if args.cluster.kubeconfig.is_none()
                && args.cluster.context.is_none()
                && !d.cluster.kubeconfig.is_empty() =>
        {
            let files: Vec<std::path::PathBuf> = d.cluster.kubeconfig.iter().map(Into::into).collect();
            let looked = format!("the daemon's kubeconfig ({})", d.cluster.kubeconfig.join(", "));
            crate::kubeconfig::load_files(&files, looked, Some(&d.cluster.context))
        }
        _ => crate::kubeconfig::load(args.cluster.kubeconfig.as_deref(), args.cluster.context.as_deref()),
    }
}

/// Runs every check; fails when any check does.
pub async fn run(args: DoctorArgs, data_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let mut checks = Vec::new();
    println!("devingress doctor");

    // A running daemon knows its kubeconfig, context, hosts and listeners.
    let status = crate::control::client::status(&crate::control::socket_path()).await.ok();
    let daemon = status.as_ref().map(|s| {
        let addr = |a: &Option<String>| a.as_deref().and_then(|a| a.parse::<SocketAddr>().ok());
        Daemon {
            http: addr(&s.listeners.http),
            https: addr(&s.listeners.https),
            dns: addr(&s.listeners.dns),
            hosts: s.hosts.iter().map(|h| h.host.clone()).filter(|h| !h.starts_with('*')).collect(),
        }
    });
    if let (Some(s), Some(d)) = (&status, &daemon) {
        println!(
            "asked the running daemon (pid {}) over its control socket: checking its kubeconfig ({}), context {}, \
             its {} served host name(s) and its listeners",
            s.pid,
            s.cluster.kubeconfig.join(", "),
            s.cluster.context,
            d.hosts.len()
        );
    }

    // The cluster.
    let connected = match kubeconfig(&args, status.as_ref()) {
        Ok(loaded) => crate::kubeclient::connect_loaded(loaded).await,
        Err(e) => Err(e.into()),
    };
    let table = match connected {
        Err(e) => {
            checks.push(failed_with_fix_inside("kubeconfig", format!("{e:#}")));
            None
        }
        Ok((client, info)) => {
            checks.push(ok(
                "kubeconfig",
                format!("context {}, cluster {} at {}", info.context, info.cluster, info.server),
            ));
            match crate::kubeclient::probe(&client, &info, Duration::from_secs(10)).await {
                Ok(version) => {
                    checks.push(ok("cluster reachable", format!("Kubernetes {version}")));
                    let watch = ClusterWatch::start(client, &args.cluster.namespaces, &info);
                    if watch.wait_synced(Duration::from_secs(15)).await {
                        let t = routes::build(&watch.snapshot());
                        checks.push(ok(
                            "routes",
                            format!("{} Ingress(es), hosts: {}", t.ingress_count, t.hosts().join(", ")),
                        ));
                        Some(t)
                    } else {
                        let why = watch.health().problem().unwrap_or_else(|| "no answer".into());
                        checks.push(fail(
                            "routes",
                            why,
                            "check that your user may list and watch Ingresses, Services and EndpointSlices",
                        ));
                        None
                    }
                }
                Err(e) => {
                    checks.push(failed_with_fix_inside("cluster reachable", e.to_string()));
                    None
                }
            }
        }
    };
    // The host to ask for: one the daemon serves, else one the table routes.
    let host = daemon.as_ref().and_then(|d| d.hosts.first().cloned()).or_else(|| {
        table.as_ref().and_then(|t| {
            t.groups.iter().find_map(|g| if let HostPattern::Exact(h) = &g.host { Some(h.clone()) } else { None })
        })
    });

    // The listeners of a running `devingress up`.
    let loopback = |p: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p);
    let (http_candidates, https_candidates) = match &daemon {
        Some(d) => (d.http.into_iter().collect::<Vec<_>>(), d.https.into_iter().collect::<Vec<_>>()),
        None => (
            args.http_port.map_or(vec![80, 8080], |p| vec![p]).into_iter().map(loopback).collect(),
            args.https_port.map_or(vec![443, 8443], |p| vec![p]).into_iter().map(loopback).collect(),
        ),
    };
    let http = listening(&http_candidates).await;
    match http {
        Some(a) => checks.push(ok("HTTP listener", format!("{a} accepts connections"))),
        None => checks.push(fail("HTTP listener", "nothing listens on 80 or 8080", "start `devingress up`")),
    }
    match listening(&https_candidates).await {
        Some(a) => checks.push(ok("HTTPS listener", format!("{a} accepts connections"))),
        None => checks.push(fail(
            "HTTPS listener",
            "nothing listens on 443 or 8443",
            "start `devingress up` (without --no-https)",
        )),
    }
    let dns_addr = daemon
        .as_ref()
        .and_then(|d| d.dns)
        .unwrap_or_else(|| loopback(args.dns_port.unwrap_or(crate::dns::DEFAULT_PORT)));
    match &host {
        Some(h) => match dns_a(dns_addr, h).await {
            Ok(ips) if ips.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)) => {
                checks.push(ok("DNS server", format!("{dns_addr} answers {h} with 127.0.0.1")))
            }
            Ok(ips) => checks.push(fail(
                "DNS server",
                format!("{dns_addr} answers {h} with {ips:?}"),
                "restart `devingress up`",
            )),
            Err(e) => {
                checks.push(fail("DNS server", format!("{dns_addr}: {e}"), "start `devingress up` (without --no-dns)"))
            }
        },
        None => checks.push(fail("DNS server", "no served host to ask for", "create an Ingress with a host")),
    }
    // The OS resolver, as every program sees it (getaddrinfo).
    if let Some(h) = &host {
        let fix = "run `devingress setup` once and restart `devingress up` (its log says which resolver it wires), \
                   or `sudo devingress up --hosts-file /etc/hosts`";
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((h.as_str(), 80)))
            .await
            .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 5s")))
        {
            Ok(addrs) => {
                let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                if ips.iter().any(|ip| ip.is_loopback()) {
                    checks.push(ok("OS resolver", format!("{h} resolves to {ips:?}")));
                } else {
                    checks.push(fail("OS resolver", format!("{h} resolves to {ips:?}, not 127.0.0.1"), fix));
                }
            }
            Err(e) => checks.push(fail("OS resolver", format!("{h} does not resolve: {e}"), fix)),
        }
    }
    // The CA.
    let loaded =
        Paths::resolve(data_dir).ok().and_then(|p| LocalCa::load(&p).ok().flatten().map(|ca| (ca, p.ca_cert())));
    match loaded {
        Some((ca, path)) => {
            let report = crate::truststore::report(&ca, &path);
            let (trusting, not): (Vec<_>, Vec<_>) = report.into_iter().partition(|(_, ok)| *ok);
            let names = |v: Vec<(String, bool)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>().join(", ");
            if trusting.is_empty() && not.is_empty() {
                checks.push(fail(
                    "CA trusted",
                    format!("{} is not trusted by: {}", ca.subject, names(not)),
                    "run `devingress trust`",
                ));
            } else if !not.is_empty() {
                checks.push(fail(
                    "CA trusted",
                    format!("{} is trusted by {}, but not by: {}", ca.subject, names(trusting), names(not)),
                    "run `devingress trust`",
                ));
            } else if trusting.is_empty() {
                checks.push(fail(
                    "CA trusted",
                    format!("{}: no trust store found on this machine", ca.subject),
                    "install ca-certificates (or a browser), then run `devingress trust`",
                ));
            } else {
                checks.push(ok(
                    "CA trusted",
                    format!("{} is trusted by every store found: {}", ca.subject, names(trusting)),
                ));
            }
        }
        None => checks.push(fail("CA trusted", "no local CA yet", "run `devingress up` once, then `devingress trust`")),
    }
    // A request through the proxy.
    match (&host, http) {
        (Some(h), Some(addr)) => {
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
            let req =
                http::Request::get(format!("http://{addr}/")).header("host", h.as_str()).body(Empty::<Bytes>::new())?;
            match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
                Ok(Ok(res)) => {
                    let status = res.status();
                    let _ = res.into_body().collect().await;
                    if status.is_server_error() {
                        checks.push(fail(
                            "HTTP round trip",
                            format!("GET http://{h}/ gave {status}"),
                            "see `devingress routes` for the backend's ready pods",
                        ));
                    } else {
                        checks.push(ok("HTTP round trip", format!("GET http://{h}/ gave {status}")));
                    }
                }
                Ok(Err(e)) => checks.push(fail("HTTP round trip", e.to_string(), "check the log of `devingress up`")),
                Err(_) => {
                    checks.push(fail("HTTP round trip", "no answer within 10s", "check the log of `devingress up`"))
                }
            }
        }
        _ => checks.push(fail("HTTP round trip", "needs a served host and a running listener", "fix the checks above")),
    }

    for c in &checks {
        print(c);
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    println!("all {} checks passed", checks.len());
    Ok(())
}
