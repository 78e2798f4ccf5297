//! The TCP load balancer: every served port of a `type: LoadBalancer`
//! Service listens on the listen address at its own number, and each
//! accepted connection goes, as a byte stream, through a pod port-forward to
//! one ready pod of the Service.
//!
//! It follows the routing table: a port is bound when a Service claims it
//! and closed at once when the Service goes, stops being a LoadBalancer or
//! loses the port. A port that cannot be bound (another program has it,
//! devingress's own HTTP, HTTPS or DNS port, or a privileged port without
//! the capability) is tried again every few seconds, and the reason is
//! published in the [`LbReport`] for the Service's status, the log, `status`
//! and the status page.

mod connection;
mod report;

pub use report::{LbReport, PortError, PortReport, PortStats, ServiceReport};

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::listen::PortProblem;
use crate::routes::{LbPortState, RouteTable, ServiceKey, Target};
use crate::upstream::Upstream;

/// How often a port that could not be bound is tried again.
pub const RETRY: Duration = Duration::from_secs(3);

/// The reasons written into a Service port's `status…ports[].error`, in the
/// form the API validates (a CamelCase reason qualified by a domain).
pub mod reasons {
    /// Another program, another Service or devingress itself has the port.
    pub const PORT_IN_USE: &str = "devingress.dev/PortInUse";
    /// A port below 1024 without the capability `devingress setup` grants.
    pub const PRIVILEGED_PORT: &str = "devingress.dev/PrivilegedPort";
    /// UDP or SCTP, which a pod port-forward cannot carry.
    pub const UNSUPPORTED_PROTOCOL: &str = "devingress.dev/UnsupportedProtocol";
}

/// Counters of every served port, shared with the connections and read by
/// the status model.
#[derive(Default)]
pub struct LbStats {
    ports: Mutex<HashMap<(ServiceKey, u16), Arc<PortStats>>>,
}

impl LbStats {
    /// The counters of one Service port (made on first use).
    pub fn port(&self, service: &ServiceKey, port: u16) -> Arc<PortStats> {
        self.ports.lock().expect("lb stats").entry((service.clone(), port)).or_default().clone()
    }
}

/// The load balancer's settings and the things it reads.
pub struct LoadBalancers {
    /// The address every port listens on.
    pub listen: IpAddr,
    /// devingress's own ports, which no Service gets, with what each is.
    pub reserved: Vec<(u16, String)>,
    /// The current routing table.
    pub table: watch::Receiver<Arc<RouteTable>>,
    /// Port-forwards to pods.
    pub upstream: Upstream,
    /// Counters, shared with the status model.
    pub stats: Arc<LbStats>,
}

/// A bound port and its accept loop.
struct Bound {
    service: ServiceKey,
    task: JoinHandle<()>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        // Aborting the accept loop drops the listener: the port closes now.
        self.task.abort();
    }
}

impl LoadBalancers {
    /// Serves until `stop` fires, publishing what it serves in `report`.
    pub async fn run(mut self, report: watch::Sender<Arc<LbReport>>, mut stop: watch::Receiver<bool>) {
        let mut bound: BTreeMap<u16, Bound> = BTreeMap::new();
        let mut said: BTreeMap<(ServiceKey, u16), String> = BTreeMap::new();
        let mut summaries: BTreeMap<ServiceKey, String> = BTreeMap::new();
        loop {
            let table = self.table.borrow_and_update().clone();
            let next = self.reconcile(&table, &mut bound);
            self.tell(&next, &mut said, &mut summaries);
            let retry =
                next.services.iter().any(|s| s.ports.iter().any(|p| p.error.as_ref().is_some_and(|e| e.retried)));
            crate::publish::if_changed(&report, next);
            tokio::select! {
                r = self.table.changed() => if r.is_err() { break },
                () = tokio::time::sleep(RETRY), if retry => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if !bound.is_empty() {
            tracing::info!("closed {} load balancer port(s)", bound.len());
        }
    }

    /// Binds and closes ports so that each served Service port listens, and
    /// says how every port of every served Service stands.
    fn reconcile(&self, table: &RouteTable, bound: &mut BTreeMap<u16, Bound>) -> LbReport {
        // Ports no Service serves any more close first, so that a port
        // moving from one Service to another is bound again at once.
        bound.retain(|port, b| {
            table.load_balancers.iter().any(|lb| {
                lb.service == b.service
                    && lb.ports.iter().any(|p| p.port == *port && matches!(p.state, LbPortState::Serve))
            })
        });
        let mut services = Vec::new();
        for lb in &table.load_balancers {
            let mut ports = Vec::new();
            let mut counts = (0, 0);
            for p in &lb.ports {
                if let Target::Pods { .. } = &p.backend.target {
                    counts = p.backend.target.pod_counts();
                }
                let error = match &p.state {
                    LbPortState::UnsupportedProtocol => Some(PortError::fixed(
                        reasons::UNSUPPORTED_PROTOCOL,
                        format!("{} cannot go through a pod port-forward, which carries TCP only", p.protocol),
                    )),
                    LbPortState::Conflict(holder) => Some(PortError::fixed(
                        reasons::PORT_IN_USE,
                        format!("port {} is served for Service {holder}, which is older", p.port),
                    )),
                    LbPortState::Serve if bound.contains_key(&p.port) => None,
                    LbPortState::Serve => self.bind(&lb.service, p.port, bound).err(),
                };
                ports.push(PortReport { port: p.port, protocol: p.protocol.clone(), name: p.name.clone(), error });
            }
            services.push(ServiceReport {
                service: lb.service.clone(),
                address: self.listen.to_string(),
                ports,
                ready: counts.0,
                total: counts.1,
            });
        }
        LbReport { services }
    }

    /// Binds `port` for `service` and starts its accept loop.
    fn bind(&self, service: &ServiceKey, port: u16, bound: &mut BTreeMap<u16, Bound>) -> Result<(), PortError> {
        if let Some((_, what)) = self.reserved.iter().find(|(p, _)| *p == port) {
            return Err(PortError::retried(reasons::PORT_IN_USE, format!("port {port} is {what}")));
        }
        let addr = SocketAddr::new(self.listen, port);
        let listener = crate::listen::bind_now(addr).map_err(|e| bind_error(addr, &e))?;
        let task = tokio::spawn(connection::accept_loop(
            listener,
            service.clone(),
            port,
            self.table.clone(),
            self.upstream.clone(),
            self.stats.port(service, port),
        ));
        bound.insert(port, Bound { service: service.clone(), task });
        Ok(())
    }

    /// Logs each Service's address and pods when they change, and each
    /// port problem once.
    fn tell(
        &self,
        report: &LbReport,
        said: &mut BTreeMap<(ServiceKey, u16), String>,
        summaries: &mut BTreeMap<ServiceKey, String>,
    ) {
        let mut now = BTreeMap::new();
        let mut lines = BTreeMap::new();
        for s in &report.services {
            for p in &s.ports {
                if let Some(e) = &p.error {
                    now.insert((s.service.clone(), p.port), e.message.clone());
                }
            }
            let served: Vec<String> =
                s.ports.iter().filter(|p| p.error.is_none()).map(|p| format!("{}:{}", s.address, p.port)).collect();
            let line = if served.is_empty() {
                "no port served".to_string()
            } else {
                format!("{} -> {} pod{}", served.join(", "), s.ready, if s.ready == 1 { "" } else { "s" })
            };
            lines.insert(s.service.clone(), line);
        }
        for (k, line) in &lines {
            if summaries.get(k) != Some(line) {
                tracing::info!("{k}: {line}");
            }
        }
        for k in summaries.keys().filter(|k| !lines.contains_key(*k)) {
            tracing::info!("{k}: no longer a served LoadBalancer; its ports are closed");
        }
        for ((svc, port), message) in &now {
            if said.get(&(svc.clone(), *port)) != Some(message) {
                tracing::warn!("{svc}: port {port} not served: {message}");
            }
        }
        *said = now;
        *summaries = lines;
    }
}

/// A bind error in the user's terms, with the fix.
fn bind_error(addr: SocketAddr, e: &std::io::Error) -> PortError {
    let (problem, message) = crate::listen::port_problem(addr, e);
    match problem {
        PortProblem::NeedsPrivilege => PortError::retried(reasons::PRIVILEGED_PORT, message),
        PortProblem::InUse | PortProblem::Other => PortError::retried(reasons::PORT_IN_USE, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_failures_get_the_reason_the_api_validates_and_the_fix() {
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let denied = bind_error(addr, &std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(denied.reason, "devingress.dev/PrivilegedPort");
        assert!(denied.message.contains("run `devingress setup` once") && denied.retried, "{denied:?}");
        let taken = bind_error(addr, &std::io::Error::from(std::io::ErrorKind::AddrInUse));
        assert_eq!(taken.reason, "devingress.dev/PortInUse");
        assert!(taken.message.contains("127.0.0.1:80 is in use by another program"), "{taken:?}");
        // Every reason is a domain-qualified CamelCase word, as the API requires.
        for r in [reasons::PORT_IN_USE, reasons::PRIVILEGED_PORT, reasons::UNSUPPORTED_PROTOCOL] {
            let (domain, word) = r.split_once('/').unwrap();
            assert_eq!(domain, "devingress.dev");
            assert!(
                word.chars().next().unwrap().is_ascii_uppercase() && word.chars().all(|c| c.is_ascii_alphanumeric())
            );
        }
    }

    #[test]
    fn the_status_entry_names_every_port_and_only_failures_carry_an_error() {
        let report = ServiceReport {
            service: ServiceKey { namespace: "data".into(), name: "redis".into() },
            address: "0.0.0.0".into(),
            ports: vec![
                PortReport { port: 6379, protocol: "TCP".into(), name: None, error: None },
                PortReport {
                    port: 53,
                    protocol: "UDP".into(),
                    name: Some("dns".into()),
                    error: Some(PortError::fixed(reasons::UNSUPPORTED_PROTOCOL, "UDP".into())),
                },
            ],
            ready: 1,
            total: 1,
        };
        // An unspecified listen address is still reached on loopback.
        assert_eq!(
            report.status_entries(),
            serde_json::json!([{"ip": "127.0.0.1", "ipMode": "Proxy", "ports": [
                {"port": 6379, "protocol": "TCP"},
                {"port": 53, "protocol": "UDP", "error": "devingress.dev/UnsupportedProtocol"}]}])
        );
    }
}
