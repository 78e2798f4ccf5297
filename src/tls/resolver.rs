//! Choosing the certificate for a TLS handshake by SNI.

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::leaves::LeafStore;
use super::secret::SecretCerts;
use crate::routes::{HostPattern, RouteTable, ServedHost, normalize_request_host};

/// Which certificate serves a handshake: `(host pattern, certificate name)`,
/// or `None` to refuse it. Certificates are minted only for hosts with a
/// route: an exact host, or a wildcard that matches the name. A handshake
/// without SNI gets the only exact host, else `localhost`.
pub fn choose(table: &RouteTable, sni: Option<&str>) -> Option<(Option<HostPattern>, String)> {
    let Some(sni) = sni.map(normalize_request_host) else {
        let exact: Vec<&String> = table
            .served_hosts
            .iter()
            .filter_map(|h| if let ServedHost::Exact(h) = h { Some(h) } else { None })
            .collect();
        return Some(match exact.as_slice() {
            [only] => (Some(HostPattern::Exact((*only).clone())), (*only).clone()),
            _ => (None, "localhost".into()),
        });
    };
    if sni == "localhost" {
        return Some((None, sni));
    }
    if table.served_hosts.contains(&ServedHost::Exact(sni.clone())) {
        return Some((Some(HostPattern::Exact(sni.clone())), sni));
    }
    let wildcard = table.served_hosts.iter().find(|h| matches!(h, ServedHost::Wildcard { .. }) && h.matches(&sni))?;
    // A certificate wildcard covers one label: a name deeper under a
    // Gateway wildcard gets a certificate of its own.
    let one_label = sni.strip_suffix(wildcard.zone()).is_some_and(|rest| !rest[..rest.len() - 1].contains('.'));
    Some(if one_label {
        (Some(HostPattern::Wildcard(wildcard.zone().to_string())), wildcard.to_string())
    } else {
        (Some(HostPattern::Exact(sni.clone())), sni)
    })
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
