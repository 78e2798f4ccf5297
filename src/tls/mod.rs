//! HTTPS: the local CA, certificates per host (minted or from the
//! Ingresses' Secrets), chosen by SNI.

pub mod ca;
pub mod leaves;
pub mod resolver;
pub mod secret;

use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::routes::RouteTable;
pub use ca::{CaError, Leaf, LocalCa};
pub use leaves::LeafStore;
pub use resolver::SniResolver;
pub use secret::SecretCerts;

/// The TLS acceptor of the HTTPS listener: TLS 1.2 and 1.3 with ring,
/// ALPN `h2` then `http/1.1`, certificates from [`SniResolver`].
pub fn acceptor(
    table: watch::Receiver<Arc<RouteTable>>,
    leaves: Arc<LeafStore>,
    secrets: Arc<RwLock<SecretCerts>>,
) -> TlsAcceptor {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(table, leaves, secrets)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}
#[cfg(test)]
mod tests;
