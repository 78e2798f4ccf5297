//! The status model: everything a front end (CLI, status page, tray) shows,
//! built as a pure function of the routing table and the daemon's state.

use serde::{Deserialize, Serialize};

use super::stats::{ClassCounts, ErrorEvent, Stats};
use crate::routes::{Backend, HostPattern, IngressKey, RouteTable, Target};

/// The overall state, as the tray icon shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Connected, and every routed backend has a ready pod.
    Connected,
    /// The routes are not loaded yet.
    Connecting,
    /// The cluster is unreachable, or some backend has no ready pod.
    Degraded,
    /// Serving is paused by the user.
    Paused,
    /// No daemon runs (front ends only).
    Stopped,
}

impl State {
    /// The word shown to users.
    pub fn word(self) -> &'static str {
        match self {
            State::Connected => "connected",
            State::Connecting => "connecting",
            State::Degraded => "degraded",
            State::Paused => "paused",
            State::Stopped => "stopped",
        }
    }
}

/// The cluster devingress watches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The kubeconfig context.
    pub context: String,
    /// The cluster's name in the kubeconfig.
    pub cluster: String,
    /// The API server URL.
    pub server: String,
    /// The Kubernetes version, once known.
    pub version: Option<String>,
    /// Why the API server cannot be watched now, if it cannot.
    pub problem: Option<String>,
    /// The kubeconfig file(s) the daemon read (`doctor` reads the same).
    #[serde(default)]
    pub kubeconfig: Vec<String>,
    /// Every context in the kubeconfig (one may switch to them).
    #[serde(default)]
    pub contexts: Vec<String>,
    /// The kubeconfig was edited to another current context while running
    /// (what it says, and how to switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_changed: Option<String>,
}

/// Where devingress listens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listeners {
    /// The HTTP address.
    pub http: Option<String>,
    /// The HTTPS address.
    pub https: Option<String>,
    /// The DNS address (UDP and TCP).
    pub dns: Option<String>,
}

/// The local CA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsStatus {
    /// Whether HTTPS is served.
    pub enabled: bool,
    /// The CA's name.
    pub ca_subject: Option<String>,
    /// Where its certificate is.
    pub ca_path: Option<String>,
    /// Whether the system trust store has it.
    pub ca_trusted: bool,
}

/// How names reach devingress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsStatus {
    /// How the OS resolver is wired, if it is.
    pub resolver: Option<String>,
    /// Why it is not, and what to do.
    pub problem: Option<String>,
}

/// One path of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// The path (`*` for a default backend).
    pub path: String,
    /// How it matches (`Prefix`, `Exact`, …, or `default`).
    pub path_type: String,
    /// `namespace/service:port`.
    pub backend: String,
    /// Ready pods.
    pub ready: usize,
    /// All pods (ready or not).
    pub total: usize,
    /// Why the backend cannot be served, if it cannot.
    pub problem: Option<String>,
    /// The Ingress, `namespace/name`.
    pub ingress: String,
}

/// One served host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host pattern (`*.apps.test` for wildcards).
    pub host: String,
    /// Where to open it (none for wildcards).
    pub urls: Vec<String>,
    /// Its paths.
    pub routes: Vec<RouteStatus>,
    /// Requests answered for it.
    pub requests: u64,
    /// Of those, 5xx.
    pub errors: u64,
}

/// Request counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStatus {
    /// All requests answered.
    pub total: u64,
    /// By status class.
    pub classes: ClassCounts,
    /// The last failures, oldest first.
    pub recent_errors: Vec<ErrorEvent>,
}

/// One port of a served LoadBalancer Service, with its counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbPortStatus {
    /// The port number, on the listen address.
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// Why it is not served, with the fix; `None` while it is served.
    pub error: Option<String>,
    /// Connections open now.
    pub open: u64,
    /// Connections accepted in all.
    pub connections: u64,
    /// Bytes from clients to pods.
    pub bytes_in: u64,
    /// Bytes from pods to clients.
    pub bytes_out: u64,
    /// Connections that found no pod or broke.
    pub errors: u64,
}

/// A served `type: LoadBalancer` Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancerStatus {
    /// `namespace/name`.
    pub service: String,
    /// The address its ports listen on.
    pub address: String,
    /// Its ports.
    pub ports: Vec<LbPortStatus>,
    /// Ready pods behind it.
    pub ready: usize,
    /// All its pods.
    pub total: usize,
}

/// The whole model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// devingress's version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// The overall state.
    pub state: State,
    /// Why the state is not `connected`, in a few words.
    pub reasons: Vec<String>,
    /// The cluster.
    pub cluster: ClusterStatus,
    /// The listeners.
    pub listeners: Listeners,
    /// HTTPS and the CA.
    pub tls: TlsStatus,
    /// DNS and the OS resolver.
    pub dns: DnsStatus,
    /// Served hosts, in table order.
    pub hosts: Vec<HostStatus>,
    /// Ingresses skipped, with the field and reason.
    pub skipped: Vec<String>,
    /// Request counts.
    pub requests: RequestStatus,
    /// Served LoadBalancer Services.
    #[serde(default)]
    pub load_balancers: Vec<LoadBalancerStatus>,
    /// Gateway API routes, one row per rule match, in lookup order.
    #[serde(default)]
    pub gateway_routes: Vec<crate::routes::gateway::table::GatewayRow>,
    /// Whether serving is paused.
    pub paused: bool,
    /// Tasks alive in the daemon's runtime (connections, watches, timers):
    /// a number that keeps growing under a steady load is a leak.
    #[serde(default)]
    pub tasks: usize,
}

/// What the model is built from, besides the table and the counters.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The process id.
    pub pid: u32,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The cluster.
    pub cluster: ClusterStatus,
    /// The listeners.
    pub listeners: Listeners,
    /// HTTPS and the CA.
    pub tls: TlsStatus,
    /// DNS.
    pub dns: DnsStatus,
    /// LoadBalancer Services and their counters.
    pub load_balancers: Vec<LoadBalancerStatus>,
    /// Whether serving is paused.
    pub paused: bool,
}

/// The URL of `host` served on the listener at `addr` for `scheme`.
pub fn url(scheme: &str, host: &str, addr: &str) -> String {
    let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    match (scheme, port) {
        ("http", Some(80)) | ("https", Some(443)) | (_, None) => format!("{scheme}://{host}/"),
        (_, Some(p)) => format!("{scheme}://{host}:{p}/"),
    }
}

fn pods(target: &Target) -> (usize, usize, Option<String>) {
    match target {
        Target::Pods { ready, .. } => {
            let problem = if ready.is_empty() { Some("no ready pod".to_string()) } else { None };
            let (ready, total) = target.pod_counts();
            (ready, total, problem)
        }
        Target::ServiceMissing => (0, 0, Some("the Service does not exist".into())),
        Target::Unsupported(why) => (0, 0, Some(why.clone())),
    }
}

/// One path's row: `path` matched as `path_type`, going to `backend`.
fn route_status(path: &str, path_type: String, backend: &Backend, ingress: &IngressKey) -> RouteStatus {
    let (ready, total, problem) = pods(&backend.target);
    RouteStatus {
        path: path.to_string(),
        path_type,
        backend: format!("{}/{}", backend.namespace, backend.display_name()),
        ready,
        total,
        problem,
        ingress: ingress.to_string(),
    }
}

/// Builds the model.
pub fn build(table: &RouteTable, stats: &Stats, facts: Facts) -> Status {
    let mut hosts = Vec::new();
    for g in &table.groups {
        let host = match &g.host {
            HostPattern::Any => "*".to_string(),
            other => other.to_string(),
        };
        let mut routes: Vec<RouteStatus> = g
            .paths
            .iter()
            .map(|p| route_status(&p.rule.path, p.rule.kind.to_string(), &p.backend, &p.ingress))
            .collect();
        if let Some(d) = g.default_backend.as_ref().or(table.default_backend.as_ref()) {
            routes.push(route_status("*", "default".into(), &d.backend, &d.ingress));
        }
        let urls = if matches!(g.host, HostPattern::Exact(_)) {
            [("http", &facts.listeners.http), ("https", &facts.listeners.https)]
                .into_iter()
                .filter_map(|(scheme, addr)| addr.as_ref().map(|a| url(scheme, &host, a)))
                .collect()
        } else {
            Vec::new()
        };
        let counts = stats.host(&host);
        hosts.push(HostStatus { host, urls, routes, requests: counts.requests, errors: counts.errors });
    }
    if let (Some(d), false) = (&table.default_backend, table.groups.iter().any(|g| g.host == HostPattern::Any)) {
        // The cluster-wide default backend answers every other host.
        let counts = stats.host("*");
        hosts.push(HostStatus {
            host: "*".into(),
            urls: Vec::new(),
            routes: vec![route_status("*", "default".into(), &d.backend, &d.ingress)],
            requests: counts.requests,
            errors: counts.errors,
        });
    }
    let classes = stats.classes();
    let requests = RequestStatus {
        total: classes.ok + classes.redirect + classes.client_error + classes.server_error,
        classes,
        recent_errors: stats.recent(),
    };
    let mut reasons = Vec::new();
    if let Some(p) = &facts.cluster.problem {
        reasons.push(p.clone());
    }
    for h in &hosts {
        for r in &h.routes {
            if let Some(p) = &r.problem {
                reasons.push(format!("{} → {}: {p}", h.host, r.backend));
            }
        }
    }
    for lb in &facts.load_balancers {
        if lb.ready == 0 {
            reasons.push(format!("{}: no ready pod", lb.service));
        }
        for p in &lb.ports {
            if let (Some(e), "TCP") = (&p.error, p.protocol.as_str()) {
                reasons.push(format!("{} port {}: {e}", lb.service, p.port));
            }
        }
    }
    reasons.dedup();
    let state = if facts.paused {
        State::Paused
    } else if !table.synced && facts.cluster.problem.is_none() {
        State::Connecting
    } else if !reasons.is_empty() {
        State::Degraded
    } else {
        State::Connected
    };
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: facts.pid,
        uptime_secs: facts.uptime_secs,
        state,
        reasons,
        cluster: facts.cluster,
        listeners: facts.listeners,
        tls: facts.tls,
        dns: facts.dns,
        hosts,
        skipped: table.skipped.iter().map(|s| s.to_string()).collect(),
        requests,
        load_balancers: facts.load_balancers,
        gateway_routes: table.gateway.rows(),
        paused: facts.paused,
        tasks: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            listeners: Listeners {
                http: Some("127.0.0.1:80".into()),
                https: Some("127.0.0.1:8443".into()),
                dns: Some("127.0.0.1:10053".into()),
            },
            ..Facts::default()
        }
    }

    #[test]
    fn hosts_get_urls_pod_counts_and_request_counts() {
        let table = crate::routes::table_for_hosts(&["alpaca.example.com", "*.apps.test"]);
        let stats = Stats::default();
        stats.record("alpaca.example.com", 200, None);
        stats.record("alpaca.example.com", 502, Some("refused"));
        let s = build(&table, &stats, facts());
        let alpaca = s.hosts.iter().find(|h| h.host == "alpaca.example.com").unwrap();
        assert_eq!(alpaca.urls, ["http://alpaca.example.com/", "https://alpaca.example.com:8443/"]);
        assert_eq!((alpaca.requests, alpaca.errors), (2, 1));
        let wild = s.hosts.iter().find(|h| h.host == "*.apps.test").unwrap();
        assert!(wild.urls.is_empty(), "a wildcard has no single URL");
        assert_eq!(s.requests.total, 2);
        assert_eq!(s.requests.recent_errors[0].message, "refused");
    }

    #[test]
    fn state_follows_pause_cluster_problems_and_backends() {
        let table = crate::routes::table_for_hosts(&["alpaca.example.com"]);
        let stats = Stats::default();
        // The table's Service does not exist: degraded, and the reason names the host and backend.
        let missing = build(&table, &stats, facts());
        assert_eq!(missing.state, State::Degraded);
        assert_eq!(missing.reasons, ["alpaca.example.com → default/s:80: the Service does not exist"]);
        let mut f = facts();
        f.cluster.problem = Some("cannot watch Ingresses: connection refused".into());
        let down = build(&table, &stats, f);
        assert_eq!(down.state, State::Degraded);
        assert!(down.reasons[0].contains("connection refused"));
        let mut f = facts();
        f.paused = true;
        assert_eq!(build(&table, &stats, f).state, State::Paused);
        // JSON round trip: front ends read what the daemon writes.
        let json = serde_json::to_string(&down).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), down);
    }
}
