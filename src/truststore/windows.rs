//! Windows: the current user's Root store, with `certutil -user`.
//! Written for Windows and compiled there only; not tested in CI (Linux).

use std::path::Path;

use super::{Outcome, TrustError, TrustStore, run};
use crate::tls::LocalCa;

/// The user's Root certificate store.
pub struct UserRoot;

impl TrustStore for UserRoot {
    fn name(&self) -> String {
        "Windows user Root store".into()
    }

    fn contains(&self, ca: &LocalCa, _ca_path: &Path) -> bool {
        run("certutil", &["-user", "-verifystore", "Root", &ca.subject]).is_ok()
    }

    fn install(&self, ca: &LocalCa, ca_path: &Path) -> Result<Outcome, TrustError> {
        if self.contains(ca, ca_path) {
            return Ok(Outcome::Unchanged("the user Root store already trusts it".into()));
        }
        let path = ca_path.display().to_string();
        run("certutil", &["-user", "-addstore", "Root", &path])?;
        Ok(Outcome::Changed(format!("added {} to the user Root store", ca.subject)))
    }

    fn uninstall(&self, ca: &LocalCa, ca_path: &Path) -> Result<Outcome, TrustError> {
        if !self.contains(ca, ca_path) {
            return Ok(Outcome::Unchanged("the user Root store does not hold it".into()));
        }
        run("certutil", &["-user", "-delstore", "Root", &ca.subject])?;
        Ok(Outcome::Changed(format!("removed {} from the user Root store", ca.subject)))
    }
}
