//! macOS: the user's login keychain, with `security add-trusted-cert`.
//! Written for macOS and compiled there only; not tested in CI (Linux).

use std::path::Path;

use super::{Outcome, TrustError, TrustStore, run};
use crate::tls::LocalCa;

/// The login keychain.
pub struct Keychain;

fn keychain() -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    format!("{home}/Library/Keychains/login.keychain-db")
}

impl TrustStore for Keychain {
    fn name(&self) -> String {
        "macOS login keychain".into()
    }

    fn contains(&self, _ca: &LocalCa, ca_path: &Path) -> bool {
        let path = ca_path.display().to_string();
        !path.is_empty() && run("security", &["verify-cert", "-c", &path]).is_ok()
    }

    fn install(&self, ca: &LocalCa, ca_path: &Path) -> Result<Outcome, TrustError> {
        if self.contains(ca, ca_path) {
            return Ok(Outcome::Unchanged("the login keychain already trusts it".into()));
        }
        let path = ca_path.display().to_string();
        let kc = keychain();
        match run("security", &["add-trusted-cert", "-r", "trustRoot", "-k", &kc, &path]) {
            Ok(_) => Ok(Outcome::Changed(format!("added it to {kc} as a trusted root"))),
            Err(_) => Ok(Outcome::RunYourself(format!("security add-trusted-cert -r trustRoot -k {kc} {path}"))),
        }
    }

    fn uninstall(&self, _ca: &LocalCa, ca_path: &Path) -> Result<Outcome, TrustError> {
        let path = ca_path.display().to_string();
        match run("security", &["remove-trusted-cert", &path]) {
            Ok(_) => Ok(Outcome::Changed("removed its trust settings from the login keychain".into())),
            Err(_) => Ok(Outcome::Unchanged("the login keychain does not trust it".into())),
        }
    }
}
