//! NSS databases, which Firefox (everywhere) and Chrome/Chromium (on Linux)
//! read instead of the system store; changed with NSS's `certutil`.

use std::path::{Path, PathBuf};

use super::{Outcome, TrustError, TrustStore, have, run, store_name};
use crate::tls::LocalCa;

/// The NSS databases found under the user's home.
pub struct Nss {
    dbs: Vec<PathBuf>,
}

impl Nss {
    /// Finds the databases: `~/.pki/nssdb` and Firefox profiles (including snap's).
    pub fn discover() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let mut dbs = Vec::new();
        for dir in [".pki/nssdb", "snap/chromium/current/.pki/nssdb"] {
            let d = home.join(dir);
            if d.join("cert9.db").exists() {
                dbs.push(d);
            }
        }
        for profiles in
            [".mozilla/firefox", "snap/firefox/common/.mozilla/firefox", "Library/Application Support/Firefox/Profiles"]
        {
            if let Ok(entries) = std::fs::read_dir(home.join(profiles)) {
                for e in entries.flatten() {
                    if e.path().join("cert9.db").exists() {
                        dbs.push(e.path());
                    }
                }
            }
        }
        dbs.sort();
        Nss { dbs }
    }

    fn db_arg(db: &Path) -> String {
        format!("sql:{}", db.display())
    }

    fn has(db: &Path, nick: &str) -> bool {
        run("certutil", &["-L", "-d", &Self::db_arg(db), "-n", nick]).is_ok()
    }
}

impl TrustStore for Nss {
    fn name(&self) -> String {
        "NSS databases (Firefox, Chrome)".into()
    }

    fn contains(&self, ca: &LocalCa, _ca_path: &Path) -> bool {
        have("certutil") && !self.dbs.is_empty() && self.dbs.iter().all(|db| Self::has(db, &store_name(ca)))
    }

    fn install(&self, ca: &LocalCa, ca_path: &Path) -> Result<Outcome, TrustError> {
        if self.dbs.is_empty() {
            return Ok(Outcome::Skipped("no Firefox or Chrome NSS database found".into()));
        }
        if !have("certutil") {
            return Ok(Outcome::Skipped(format!(
                "found {} NSS database(s) but no certutil: install libnss3-tools (Debian, Ubuntu) or nss-tools (Fedora), then run `devingress trust` again",
                self.dbs.len()
            )));
        }
        let nick = store_name(ca);
        let path = ca_path.display().to_string();
        let mut added = Vec::new();
        for db in &self.dbs {
            if Self::has(db, &nick) {
                continue;
            }
            run("certutil", &["-A", "-d", &Self::db_arg(db), "-t", "C,,", "-n", &nick, "-i", &path])?;
            added.push(db.display().to_string());
        }
        Ok(if added.is_empty() {
            Outcome::Unchanged("every NSS database already trusts it".into())
        } else {
            Outcome::Changed(format!("added {nick} to the NSS database(s) {}", added.join(", ")))
        })
    }

    fn uninstall(&self, ca: &LocalCa, _ca_path: &Path) -> Result<Outcome, TrustError> {
        if self.dbs.is_empty() || !have("certutil") {
            return Ok(Outcome::Skipped("no NSS database to change (or no certutil)".into()));
        }
        let nick = store_name(ca);
        let mut removed = Vec::new();
        for db in &self.dbs {
            if Self::has(db, &nick) {
                run("certutil", &["-D", "-d", &Self::db_arg(db), "-n", &nick])?;
                removed.push(db.display().to_string());
            }
        }
        Ok(if removed.is_empty() {
            Outcome::Unchanged("no NSS database holds it".into())
        } else {
            Outcome::Changed(format!("removed {nick} from the NSS database(s) {}", removed.join(", ")))
        })
    }
}
