//! Making the OS resolve served hosts to devingress, one file per way of
//! doing it, each behind [`OsResolver`] so that tests can point it at a
//! temporary root:
//!
//! - [`macos`]: a file per served domain under `/etc/resolver`;
//! - [`systemd_resolved`]: routing domains on a dummy link devingress owns;
//! - [`dnsmasq`]: NetworkManager's dnsmasq, through a `servers-file`;
//! - [`nrpt`]: Windows' Name Resolution Policy Table;
//! - [`hosts`]: a managed block in the hosts file, the fallback everywhere.
//!
//! [`choose`] picks the one that works on this machine.

pub mod choose;
pub mod dnsmasq;
pub mod hosts;
pub mod macos;
pub mod nrpt;
pub mod program;
pub mod systemd_resolved;

use std::collections::BTreeSet;
use std::path::PathBuf;

pub use choose::{ResolverKind, SystemPaths, choose};
pub use hosts::HostsFile;
pub use macos::ResolverDir;
pub use program::Program;

/// Why the OS resolver could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    /// A file could not be read or written.
    #[error("cannot change {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A program devingress runs failed or is missing.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed, or why it could not start.
        message: String,
    },
    /// This way of resolving cannot serve this set-up.
    #[error("{0}")]
    Unsupported(String),
}

/// One way of making the OS send served names to devingress.
pub trait OsResolver: Send {
    /// What it changes, for messages ("/etc/resolver/<domain>").
    fn describe(&self) -> String;

    /// Whether it can send wildcard hosts (`*.apps.test`) to devingress.
    fn handles_wildcards(&self) -> bool {
        true
    }

    /// Makes the OS send exactly these host patterns to devingress.
    /// Idempotent; returns whether anything changed.
    fn apply(&mut self, hosts: &[String]) -> Result<bool, ResolverError>;

    /// Takes back everything devingress changed: on exit, and at start,
    /// after a crash. Returns whether there was anything to take back.
    fn remove(&mut self) -> Result<bool, ResolverError>;
}

/// The domains to register for host patterns: each exact host name as it
/// is (never its parent, so that `example.com` itself still resolves
/// publicly), and for a wildcard `*.apps.test` its parent `apps.test`,
/// which is the narrowest domain that covers it.
pub fn domains(hosts: &[String]) -> BTreeSet<String> {
    hosts.iter().map(|h| h.strip_prefix("*.").unwrap_or(h).to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_exact_hosts_and_wildcard_parents() {
        let hosts = ["alpaca.example.com", "*.apps.test", "Bandicoot.Example.com", "*.apps.test"];
        let got: Vec<String> = domains(&hosts.map(String::from)).into_iter().collect();
        assert_eq!(got, ["alpaca.example.com", "apps.test", "bandicoot.example.com"]);
    }
}
