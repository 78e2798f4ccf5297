//! Choosing the certificate for a TLS handshake by SNI.

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::leaves::LeafStore;
use super::secret::SecretCerts;
use crate::routes::{HostPattern, RouteTable, normalize_request_host};

/// Which certificate serves a handshake: `(host pattern, certificate name)`,
/// or `None` to refuse it. Certificates are minted only for hosts with a
/// route: an exact host, or a wildcard that matches the name. A handshake
/// without SNI gets the only exact host, else `localhost`.
pub fn choose(table: &RouteTable, sni: Option<&str>) -> Option<(Option<HostPattern>, String)> {
    let Some(sni) = sni.map(normalize_request_host) else {
        let exact: Vec<&String> = table
            .groups
            .iter()
            .filter_map(|g| if let HostPattern::Exact(h) = &g.host { Some(h) } else { None })
            .collect();
        return Some(match exact.as_slice() {
            [only] => (Some(HostPattern::Exact((*only).clone())), (*only).clone()),
            _ => (None, "localhost".into()),
        });
    };
    if sni == "localhost" {
        return Some((None, sni));
    }
    if table.groups.iter().any(|g| g.host == HostPattern::Exact(sni.clone())) {
        return Some((Some(HostPattern::Exact(sni.clone())), sni));
    }
    table
        .groups
        .iter()
        .find(|g| matches!(g.host, HostPattern::Wildcard(_)) && g.host.matches(&sni))
        .map(|g| (Some(g.host.clone()), g.host.to_string()))
}

/// The rustls certificate resolver of the HTTPS listener.
pub struct SniResolver {
    table: watch::Receiver<Arc<RouteTable>>,
    leaves: Arc<LeafStore>,
    secrets: Arc<RwLock<SecretCerts>>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl SniResolver {
    /// A resolver reading the current table, Secret certificates and minted leaves.
    pub fn new(
        table: watch::Receiver<Arc<RouteTable>>,
        leaves: Arc<LeafStore>,
        secrets: Arc<RwLock<SecretCerts>>,
    ) -> Self {
        SniResolver { table, leaves, secrets }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.borrow().clone();
        let sni = hello.server_name();
        let Some((host, name)) = choose(&table, sni) else {
            tracing::debug!(sni = sni.unwrap_or(""), "TLS handshake refused: no route for this name");
            return None;
        };
        if let Some(host) = &host {
            if let Some(cert) = self.secrets.read().expect("secret certs").by_host.get(host) {
                return Some(cert.clone());
            }
        }
        match self.leaves.get(&name, OffsetDateTime::now_utc()) {
            Ok(cert) => Some(cert),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }
}
