//! devingress: serve every Ingress of a local Kubernetes cluster on its real
//! host name, through pod port-forward, with nothing installed in the cluster.
//!
//! Data flows one way: [`cluster`] watches and keeps a snapshot, [`routes`]
//! turns it into a routing table (pure), and [`proxy`] serves requests from
//! the current table through [`upstream`] port-forwards.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod control;
pub mod dns;
pub mod exec_credentials;
pub mod gateway;
pub mod kubeclient;
pub mod kubeconfig;
pub mod kubeconfig_watch;
pub mod lb;
pub mod listen;
pub mod logs;
pub mod paths;
pub mod programs;
pub mod progress;
pub mod proxy;
pub mod publish;
pub mod resolver;
pub mod routes;
pub mod setup;
pub mod status;
pub mod tls;
pub mod tray;
pub mod truststore;
pub mod upstream;

/// Makes ring the process-wide rustls crypto provider. Call it before any
/// TLS is set up; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
