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

fn print(c: &Check) {
    println!("{:<5} {}: {}", if c.ok { "ok" } else { "FAIL" }, c.what, c.detail);
    if let Some(fix) = &c.fix {
        println!("      fix: {fix}");
    }
}

/// The first port of `candidates` where something accepts TCP on loopback.
async fn listening(candidates: &[u16]) -> Option<u16> {
    for &port in candidates {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        if tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            return Some(port);
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

/// Runs every check; fails when any check does.
pub async fn run(args: DoctorArgs, data_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let mut checks = Vec::new();
    println!("devingress doctor");

    // The cluster.
    let connected = crate::kubeclient::connect(&args.cluster.kube_options()).await;
    let table = match connected {
        Err(e) => {
            checks.push(fail(
                "kubeconfig",
                e.to_string(),
                "point KUBECONFIG or --kubeconfig at a kubeconfig, or pass --context",
            ));
            None
        }
        Ok((client, info)) => {
            checks.push(ok(
                "kubeconfig",
                format!("context {}, cluster {} at {}", info.context, info.cluster, info.server),
            ));
            match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
                Ok(Ok(v)) => {
                    checks.push(ok("cluster reachable", format!("Kubernetes {}", v.git_version)));
                    let watch = ClusterWatch::start(client, &args.cluster.namespaces, &info.server);
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
                Ok(Err(e)) => {
                    checks.push(fail(
                        "cluster reachable",
                        crate::kubeclient::describe_error(&e),
                        "start the cluster (kind, minikube, k3d…) or pick another context with --context",
                    ));
                    None
                }
                Err(_) => {
                    checks.push(fail(
                        "cluster reachable",
                        "no answer within 10s",
                        "start the cluster or check the server address",
                    ));
                    None
                }
            }
        }
    };
    let host = table.as_ref().and_then(|t| {
        t.groups.iter().find_map(|g| if let HostPattern::Exact(h) = &g.host { Some(h.clone()) } else { None })
    });

    // The listeners of a running `devingress up`.
    let http = listening(&args.http_port.map_or(vec![80, 8080], |p| vec![p])).await;
    match http {
        Some(p) => checks.push(ok("HTTP listener", format!("127.0.0.1:{p} accepts connections"))),
        None => checks.push(fail("HTTP listener", "nothing listens on 80 or 8080", "start `devingress up`")),
    }
    match listening(&args.https_port.map_or(vec![443, 8443], |p| vec![p])).await {
        Some(p) => checks.push(ok("HTTPS listener", format!("127.0.0.1:{p} accepts connections"))),
        None => checks.push(fail(
            "HTTPS listener",
            "nothing listens on 443 or 8443",
            "start `devingress up` (without --no-https)",
        )),
    }
    let dns_port = args.dns_port.unwrap_or(crate::dns::DEFAULT_PORT);
    let dns_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), dns_port);
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
        Some((ca, path)) if crate::truststore::is_trusted(&ca, &path) => {
            checks.push(ok("CA trusted", format!("{} is in the system store", ca.subject)))
        }
        Some((ca, _)) => checks.push(fail(
            "CA trusted",
            format!("{} is not in the system store", ca.subject),
            "run `devingress trust`",
        )),
        None => checks.push(fail("CA trusted", "no local CA yet", "run `devingress up` once, then `devingress trust`")),
    }
    // A request through the proxy.
    match (&host, http) {
        (Some(h), Some(port)) => {
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
            let req = http::Request::get(format!("http://127.0.0.1:{port}/"))
                .header("host", h.as_str())
                .body(Empty::<Bytes>::new())?;
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
