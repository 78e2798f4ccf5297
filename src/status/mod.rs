//! The running daemon's status model and what keeps it: the routing table,
//! the cluster's health, request counters, and the facts set at start.
//! The CLI (`devingress status`), the status page and the tray all read it.

pub mod model;
pub mod page;
pub mod stats;
pub mod text;

pub use model::{State, Status};
pub use stats::Stats;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::cluster::Health;
use crate::kubeclient::ClusterInfo;
use crate::lb::{LbReport, LbStats, PortStats};
use crate::routes::RouteTable;
use crate::tls::LocalCa;
use model::{ClusterStatus, DnsStatus, Facts, LbPortStatus, Listeners, LoadBalancerStatus, TlsStatus};

/// How long a trust-store check is reused.
const TRUST_CHECK_TTL: Duration = Duration::from_secs(10);

/// The host the status page is served on (`*.localhost` reaches loopback in
/// browsers with no DNS set-up).
pub const STATUS_HOST: &str = "devingress.localhost";

/// Keeps what the status model is built from.
pub struct StatusHub {
    table: watch::Receiver<Arc<RouteTable>>,
    health: Arc<Health>,
    cluster: ClusterInfo,
    /// Request counters, written by the proxy.
    pub stats: Arc<Stats>,
    paused: AtomicBool,
    started: Instant,
    listeners: Mutex<Listeners>,
    dns: Mutex<DnsStatus>,
    ca: Mutex<Option<(Arc<LocalCa>, PathBuf)>>,
    trusted: Mutex<Option<(Instant, bool)>>,
    lb_stats: Arc<LbStats>,
    lb_report: Mutex<Option<watch::Receiver<Arc<LbReport>>>>,
    /// Set while the kubeconfig's current context is not the served one.
    pub kubeconfig_changed: crate::kubeconfig_watch::Notice,
}

impl StatusHub {
    /// A hub for the daemon watching `cluster`.
    pub fn new(table: watch::Receiver<Arc<RouteTable>>, health: Arc<Health>, cluster: ClusterInfo) -> Self {
        StatusHub {
            table,
            health,
            cluster,
            stats: Arc::new(Stats::default()),
            paused: AtomicBool::new(false),
            started: Instant::now(),
            listeners: Mutex::new(Listeners::default()),
            dns: Mutex::new(DnsStatus::default()),
            ca: Mutex::new(None),
            trusted: Mutex::new(None),
            lb_stats: Arc::new(LbStats::default()),
            lb_report: Mutex::new(None),
            kubeconfig_changed: Arc::default(),
        }
    }

    /// The load balancer's counters, which its connections update.
    pub fn lb_stats(&self) -> Arc<LbStats> {
        self.lb_stats.clone()
    }

    /// Follows what the load balancer serves.
    pub fn set_lb_report(&self, report: watch::Receiver<Arc<LbReport>>) {
        *self.lb_report.lock().expect("status lock") = Some(report);
    }

    /// The served LoadBalancer Services with their counters.
    fn load_balancers(&self) -> Vec<LoadBalancerStatus> {
        let Some(report) = self.lb_report.lock().expect("status lock").as_ref().map(|r| r.borrow().clone()) else {
            return Vec::new();
        };
        report
            .services
            .iter()
            .map(|s| LoadBalancerStatus {
                service: s.service.to_string(),
                address: s.address.clone(),
                ready: s.ready,
                total: s.total,
                ports: s
                    .ports
                    .iter()
                    .map(|p| {
                        let c = self.lb_stats.port(&s.service, p.port);
                        LbPortStatus {
                            port: p.port,
                            protocol: p.protocol.clone(),
                            error: p.error.as_ref().map(|e| e.message.clone()),
                            open: PortStats::get(&c.open),
                            connections: PortStats::get(&c.total),
                            bytes_in: PortStats::get(&c.bytes_in),
                            bytes_out: PortStats::get(&c.bytes_out),
                            errors: PortStats::get(&c.errors),
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// Records where devingress listens.
    pub fn set_listeners(&self, listeners: Listeners) {
        *self.listeners.lock().expect("status lock") = listeners;
    }

    /// Records how the OS resolver is wired, or why it is not.
    pub fn set_dns(&self, dns: DnsStatus) {
        *self.dns.lock().expect("status lock") = dns;
    }

    /// Records the local CA (HTTPS is on).
    pub fn set_ca(&self, ca: Arc<LocalCa>, path: PathBuf) {
        *self.ca.lock().expect("status lock") = Some((ca, path));
        *self.trusted.lock().expect("status lock") = None;
    }

    /// Whether serving is paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Pauses or resumes serving (requests get a 503 page while paused).
    pub fn set_paused(&self, paused: bool) {
        if self.paused.swap(paused, Ordering::Relaxed) != paused {
            tracing::info!("{}", if paused { "paused: requests get 503 until resumed" } else { "resumed serving" });
        }
    }

    fn tls(&self) -> TlsStatus {
        let ca = self.ca.lock().expect("status lock").clone();
        let Some((ca, path)) = ca else { return TlsStatus::default() };
        let mut cached = self.trusted.lock().expect("status lock");
        let trusted = match *cached {
            Some((at, t)) if at.elapsed() < TRUST_CHECK_TTL => t,
            _ => {
                let t = crate::truststore::is_trusted(&ca, &path);
                *cached = Some((Instant::now(), t));
                t
            }
        };
        TlsStatus {
            enabled: true,
            ca_subject: Some(ca.subject.clone()),
            ca_path: Some(path.display().to_string()),
            ca_trusted: trusted,
        }
    }

    /// The model now.
    pub fn snapshot(&self) -> Status {
        let table = self.table.borrow().clone();
        let facts = Facts {
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            cluster: ClusterStatus {
                context: self.cluster.context.clone(),
                cluster: self.cluster.cluster.clone(),
                server: self.cluster.server.clone(),
                version: self.cluster.version.get().cloned(),
                problem: self.health.problem(),
                contexts: self.cluster.contexts.clone(),
                kubeconfig: self.cluster.kubeconfig.iter().map(|p| p.display().to_string()).collect(),
                kubeconfig_changed: self.kubeconfig_changed.lock().expect("status lock").clone(),
            },
            listeners: self.listeners.lock().expect("status lock").clone(),
            tls: self.tls(),
            dns: self.dns.lock().expect("status lock").clone(),
            load_balancers: self.load_balancers(),
            paused: self.paused(),
        };
        let mut status = model::build(&table, &self.stats, facts);
        status.tasks = tokio::runtime::Handle::try_current().map(|h| h.metrics().num_alive_tasks()).unwrap_or(0);
        status
    }
}
