//! Gateway listeners on ports of their own: an `HTTP` listener on a port
//! other than 80, or an `HTTPS` one on a port other than 443, is served on
//! the listen address at the listener's own number.
//!
//! It follows the routing table as the load balancer does: a port is bound
//! while some served listener asks for it and closed when none does; a port
//! that cannot be bound (another program has it, a LoadBalancer Service,
//! devingress's own HTTP, HTTPS or DNS port, or a privileged port without
//! the capability) is tried again every few seconds. What each port does is
//! published in [`OwnPortsReport`], which the Gateways' status reads
//! (`PortUnavailable`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::Proxy;
use crate::routes::gateway::Slot;

/// How often a port that could not be bound is tried again.
pub const RETRY: Duration = Duration::from_secs(3);

/// How each port of its own stands: served, or why not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnPortsReport {
    /// Each slot of a port of its own, with `Err(why)` when it is not served.
    pub ports: BTreeMap<Slot, Result<(), String>>,
}

impl OwnPortsReport {
    /// Why the listener served in `slot` is not, if it is not.
    pub fn problem(&self, slot: Slot) -> Option<&str> {
        match self.ports.get(&slot) {
            Some(Err(why)) => Some(why),
            _ => None,
        }
    }
}

/// The settings and the things the listeners read.
pub struct OwnPorts {
    /// The address every port listens on.
    pub listen: IpAddr,
    /// devingress's own ports, which no listener gets, with what each is.
    pub reserved: Vec<(u16, String)>,
    /// The HTTP listener's proxy, which each port's proxy copies with its slot.
    pub proxy: Arc<Proxy>,
    /// TLS by SNI for `HTTPS` listeners; `None` when devingress serves no
    /// HTTPS (`--no-https`): such listeners are then not served.
    pub tls: Option<TlsAcceptor>,
    /// How long requests in flight may take when a port closes.
    pub grace: Duration,
}

/// A bound port's server.
struct Bound {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl OwnPorts {
    /// Serves until `stop` fires, publishing what it serves in `report`.
    pub async fn run(self, report: watch::Sender<Arc<OwnPortsReport>>, mut stop: watch::Receiver<bool>) {
        let mut table = self.proxy.table.clone();
        let mut bound: BTreeMap<Slot, Bound> = BTreeMap::new();
        let mut said: BTreeMap<Slot, String> = BTreeMap::new();
        loop {
            let wanted = table.borrow_and_update().gateway.own_ports();
            // Ports no listener wants close first (requests in flight finish).
            bound.retain(|slot, b| {
                let keep = wanted.contains_key(slot);
                if !keep {
                    let _ = b.stop.send(true);
                    tracing::info!("Gateway listener port {slot}: closed, no served listener asks for it");
                }
                keep
            });
            let mut next = OwnPortsReport::default();
            for (slot, listeners) in &wanted {
                let result = if bound.contains_key(slot) { Ok(()) } else { self.bind(*slot, &mut bound) };
                match &result {
                    Ok(()) => {
                        if said.remove(slot).is_some() || !report.borrow().ports.contains_key(slot) {
                            let names: Vec<String> = listeners.iter().map(|(g, l)| format!("{g} {l}")).collect();
                            tracing::info!(
                                "serving Gateway listener{} {} on {}://{}",
                                if names.len() == 1 { "" } else { "s" },
                                names.join(", "),
                                slot.scheme(),
                                SocketAddr::new(self.listen, slot.listener_port())
                            );
                        }
                    }
                    Err(why) => {
                        if said.get(slot) != Some(why) {
                            tracing::warn!("Gateway listener port {slot} not served: {why}");
                            said.insert(*slot, why.clone());
                        }
                    }
                }
                next.ports.insert(*slot, result);
            }
            said.retain(|slot, _| wanted.contains_key(slot));
            let retry = next.ports.values().any(Result::is_err);
            crate::publish::if_changed(&report, next);
            tokio::select! {
                r = table.changed() => if r.is_err() { break },
                () = tokio::time::sleep(RETRY), if retry => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        for b in bound.values() {
            let _ = b.stop.send(true);
        }
        for (_, b) in bound {
            let _ = b.task.await;
        }
    }

    /// Binds the port of `slot` and starts serving it.
    fn bind(&self, slot: Slot, bound: &mut BTreeMap<Slot, Bound>) -> Result<(), String> {
        let port = slot.listener_port();
        if let Some((_, what)) = self.reserved.iter().find(|(p, _)| *p == port) {
            return Err(format!("port {port} is {what}"));
        }
        if let Some(other) = bound.keys().find(|s| s.listener_port() == port) {
            return Err(format!("port {port} is served as {other} for other listeners"));
        }
        let tls = match (slot.tls(), &self.tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(tls.clone()),
            (true, None) => return Err("devingress serves no HTTPS (--no-https)".into()),
        };
        let addr = SocketAddr::new(self.listen, port);
        let listener = crate::listen::bind_now(addr).map_err(|e| crate::listen::port_problem(addr, &e).1)?;
        let proxy = Arc::new(Proxy { slot, ..(*self.proxy).clone() });
        let (stop, mut stopped) = watch::channel(false);
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let task = tokio::spawn(super::serve(listener, tls, proxy, shutdown, self.grace));
        bound.insert(slot, Bound { stop, task });
        Ok(())
    }
}
