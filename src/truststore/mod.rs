//! Installing the local CA into the trust stores that browsers and tools
//! read, one file per platform as mkcert does, and saying exactly what was
//! changed (or the command to run when privileges are missing).

#[cfg(target_os = "macos")]
mod darwin;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(unix)]
mod nss;
#[cfg(windows)]
mod windows;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tls::LocalCa;

/// The environment variable that moves the system trust store's root
/// directory (tests point it at a temporary copy of the layout).
pub const TRUST_ROOT_ENV: &str = "DEVINGRESS_TRUST_ROOT";

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It changed this, in these words.
    Changed(String),
    /// Nothing to do: already so.
    Unchanged(String),
    /// The user must run this command (privileges are missing).
    RunYourself(String),
    /// This store is not on this machine, or a tool it needs is missing.
    Skipped(String),
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A file could not be written or removed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed.
        output: String,
    },
}

/// One trust store.
pub trait TrustStore {
    /// Its name, for messages ("system store (update-ca-certificates)").
    fn name(&self) -> String;
    /// Whether the CA is in it.
    fn contains(&self, ca: &LocalCa, ca_path: &Path) -> bool;
    /// Each place of this store found on this machine, and whether it holds
    /// the CA (one line per NSS database; one for a system store).
    fn report(&self, ca: &LocalCa, ca_path: &Path) -> Vec<(String, bool)> {
        vec![(self.name(), self.contains(ca, ca_path))]
    }
    /// Puts the CA in.
    fn install(&self, ca: &LocalCa, ca_path: &Path) -> Result<Outcome, TrustError>;
    /// Takes the CA out.
    fn uninstall(&self, ca: &LocalCa, ca_path: &Path) -> Result<Outcome, TrustError>;
}

/// The root that system paths are under (`/` unless [`TRUST_ROOT_ENV`] is set).
pub fn system_root() -> PathBuf {
    std::env::var_os(TRUST_ROOT_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

/// `path` (absolute) under `root`.
pub fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// A short, stable name for this CA in stores: `devingress_` and the first
/// 16 hex digits of its fingerprint.
pub fn store_name(ca: &LocalCa) -> String {
    format!("devingress_{}", ca.fingerprint.replace(':', "").chars().take(16).collect::<String>().to_lowercase())
}

/// The trust stores of this platform.
pub fn stores() -> Vec<Box<dyn TrustStore>> {
    let mut out: Vec<Box<dyn TrustStore>> = Vec::new();
    #[cfg(target_os = "linux")]
    out.extend(linux::system_stores(&system_root()));
    #[cfg(target_os = "macos")]
    out.push(Box::new(darwin::Keychain));
    #[cfg(windows)]
    out.push(Box::new(windows::UserRoot));
    #[cfg(unix)]
    out.push(Box::new(nss::Nss::discover()));
    out
}

/// Every trust store found on this machine (each NSS database on its own),
/// and whether it holds the CA (whose certificate is at `ca_path`).
pub fn report(ca: &LocalCa, ca_path: &Path) -> Vec<(String, bool)> {
    stores().iter().flat_map(|s| s.report(ca, ca_path)).collect()
}

/// Whether every trust store found here holds the CA: the system store
/// that most tools read, and each browser's NSS database.
pub fn is_trusted(ca: &LocalCa, ca_path: &Path) -> bool {
    let report = report(ca, ca_path);
    !report.is_empty() && report.iter().all(|(_, ok)| *ok)
}

/// Runs a command, returning its output or a [`TrustError`] with what it printed.
pub fn run(program: &str, args: &[&str]) -> Result<String, TrustError> {
    let line = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| TrustError::Command { command: line.clone(), output: e.to_string() })?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(TrustError::Command { command: line, output: text.trim().to_string() })
    }
}

/// Whether `program` can be found on `PATH`.
pub fn have(program: &str) -> bool {
    crate::programs::on_path(program)
}
