//! What the load balancer serves, port by port, for the Services' status,
//! the log, `devingress status` and the status page.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::routes::ServiceKey;

/// Why one port is not served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortError {
    /// The reason written into the Service's status (`devingress.dev/PortInUse`).
    pub reason: String,
    /// The same in words, with the fix.
    pub message: String,
    /// Whether devingress tries again by itself (a port another program
    /// holds); otherwise it changes only with the cluster's objects.
    #[serde(skip)]
    pub retried: bool,
}

impl PortError {
    /// An error that only a change in the cluster clears.
    pub fn fixed(reason: &str, message: String) -> Self {
        PortError { reason: reason.into(), message, retried: false }
    }

    /// An error devingress retries every few seconds.
    pub fn retried(reason: &str, message: String) -> Self {
        PortError { reason: reason.into(), message, retried: true }
    }
}

/// One port of a served Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortReport {
    /// The port number (served at the same number).
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port's name in the Service.
    pub name: Option<String>,
    /// Why it is not served; `None` while it is.
    pub error: Option<PortError>,
}

/// A served LoadBalancer Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// The Service.
    pub service: ServiceKey,
    /// The address its ports listen on.
    pub address: String,
    /// Its ports.
    pub ports: Vec<PortReport>,
    /// Ready pods behind it.
    pub ready: usize,
    /// All pods behind it, ready or not.
    pub total: usize,
}

impl ServiceReport {
    /// What devingress writes into the Service's
    /// `status.loadBalancer.ingress`, as cloud-provider-kind and `minikube
    /// tunnel` do: the address with `ipMode: Proxy`, and every port, with
    /// the reason it is not served when it is not.
    pub fn status_entries(&self) -> serde_json::Value {
        let ip = match self.address.parse::<std::net::IpAddr>() {
            Ok(a) if !a.is_unspecified() => a.to_string(),
            _ => crate::cluster::ADDRESS.to_string(),
        };
        let ports: Vec<serde_json::Value> = self
            .ports
            .iter()
            .map(|p| {
                let mut v = serde_json::json!({"port": p.port, "protocol": p.protocol});
                if let Some(e) = &p.error {
                    v["error"] = serde_json::json!(e.reason);
                }
                v
            })
            .collect();
        serde_json::json!([{"ip": ip, "ipMode": "Proxy", "ports": ports}])
    }
}

/// Every served LoadBalancer Service, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbReport {
    /// The Services.
    pub services: Vec<ServiceReport>,
}

/// Counters of one Service port.
#[derive(Debug, Default)]
pub struct PortStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted in all.
    pub total: AtomicU64,
    /// Bytes from clients to pods.
    pub bytes_in: AtomicU64,
    /// Bytes from pods to clients.
    pub bytes_out: AtomicU64,
    /// Connections that could not reach a pod, or broke.
    pub errors: AtomicU64,
}

impl PortStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
