//! NSS databases, which Firefox (everywhere) and Chrome/Chromium (on Linux)
//! read instead of the system store; changed with NSS's `certutil`.
//!
//! Chrome on Linux keeps its database at `~/.pki/nssdb`, and creates it
//! only the first time it runs with a profile (never for headless runs or
//! fresh `--user-data-dir` profiles). So when Chrome or Chromium is
//! installed and that database is missing, `trust` creates it as Chrome
//! would (an `sql:` database with an empty password) and adds the CA.

use std::path::{Path, PathBuf};

use super::{Outcome, TrustError, TrustStore, have, run, store_name};
use crate::tls::LocalCa;

/// The Chrome and Chromium programs whose presence means a Chrome database
/// is wanted (Debian, Ubuntu, Fedora, Arch and Google's own packages).
const CHROME_PROGRAMS: &[&str] =
    &["google-chrome", "google-chrome-stable", "chromium", "chromium-browser", "brave-browser", "microsoft-edge"];

/// Where Chrome on Linux keeps its NSS database, under the home directory.
const CHROME_DB: &str = ".pki/nssdb";

/// The NSS databases found under the user's home.
pub struct Nss {
    dbs: Vec<PathBuf>,
    /// Chrome's database, when Chrome is installed but has not made it yet.
    chrome_db_to_create: Option<PathBuf>,
}

impl Nss {
    /// Finds the databases: `~/.pki/nssdb` and Firefox profiles (including
    /// snap's), and notes a Chrome database that should exist but does not.
    pub fn discover() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        Self::discover_in(&home, cfg!(target_os = "linux") && CHROME_PROGRAMS.iter().any(|p| have(p)))
    }

    /// [`Nss::discover`] under `home`, with Chrome installed or not.
    fn discover_in(home: &Path, chrome_installed: bool) -> Self {
        let mut dbs = Vec::new();
        for dir in [CHROME_DB, "snap/chromium/current/.pki/nssdb"] {
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
        let chrome = home.join(CHROME_DB);
        let chrome_db_to_create = (chrome_installed && !dbs.contains(&chrome)).then_some(chrome);
        Nss { dbs, chrome_db_to_create }
    }

    fn db_arg(db: &Path) -> String {
        format!("sql:{}", db.display())
    }

    fn has(db: &Path, nick: &str) -> bool {
        run("certutil", &["-L", "-d", &Self::db_arg(db), "-n", nick]).is_ok()
    }

    /// Creates Chrome's database as Chrome does: the directory private to
    /// the user, an `sql:` database with an empty password.
    fn create(db: &Path) -> Result<(), TrustError> {
        crate::paths::private_dir(db).map_err(|source| TrustError::Io {
            action: "cannot create",
            path: db.display().to_string(),
            source,
        })?;
        run("certutil", &["-N", "-d", &Self::db_arg(db), "--empty-password"]).map(|_| ())
    }

    /// The name of one database in messages.
    fn describe(db: &Path) -> String {
        let who = if db.ends_with(CHROME_DB) { "Chrome" } else { "Firefox" };
        format!("NSS database {} ({who})", db.display())
    }
}

impl TrustStore for Nss {
    fn name(&self) -> String {
        "NSS databases (Firefox, Chrome)".into()
    }

    fn contains(&self, ca: &LocalCa, ca_path: &Path) -> bool {
        let report = self.report(ca, ca_path);
        !report.is_empty() && report.iter().all(|(_, ok)| *ok)
    }

    fn report(&self, ca: &LocalCa, _ca_path: &Path) -> Vec<(String, bool)> {
        let certutil = have("certutil");
        let nick = store_name(ca);
        let mut out: Vec<(String, bool)> =
            self.dbs.iter().map(|db| (Self::describe(db), certutil && Self::has(db, &nick))).collect();
        if let Some(db) = &self.chrome_db_to_create {
            out.push((format!("{} (Chrome is installed, its database is not made yet)", Self::describe(db)), false));
        }
        out
    }

    fn install(&self, ca: &LocalCa, ca_path: &Path) -> Result<Outcome, TrustError> {
        if self.dbs.is_empty() && self.chrome_db_to_create.is_none() {
            return Ok(Outcome::Skipped("no Firefox or Chrome NSS database found, and no Chrome installed".into()));
        }
        if !have("certutil") {
            return Ok(Outcome::Skipped(
                "Firefox or Chrome reads an NSS database, but certutil is missing: install libnss3-tools (Debian, \
                 Ubuntu) or nss-tools (Fedora), then run `devingress trust` again"
                    .into(),
            ));
        }
        let nick = store_name(ca);
        let path = ca_path.display().to_string();
        let mut dbs = self.dbs.clone();
        let mut created = Vec::new();
        if let Some(db) = &self.chrome_db_to_create {
            Self::create(db)?;
            created.push(db.display().to_string());
            dbs.push(db.clone());
        }
        let mut added = Vec::new();
        for db in &dbs {
            if Self::has(db, &nick) {
                continue;
            }
            run("certutil", &["-A", "-d", &Self::db_arg(db), "-t", "C,,", "-n", &nick, "-i", &path])?;
            added.push(db.display().to_string());
        }
        let created = if created.is_empty() {
            String::new()
        } else {
            format!("created Chrome's NSS database {} (Chrome makes it only on first run), then ", created.join(", "))
        };
        Ok(if added.is_empty() {
            Outcome::Unchanged("every NSS database already trusts it".into())
        } else {
            Outcome::Changed(format!("{created}added {nick} to the NSS database(s) {}", added.join(", ")))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_chrome_database_is_wanted_only_when_chrome_is_installed() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(Nss::discover_in(home.path(), true).chrome_db_to_create, Some(home.path().join(".pki/nssdb")));
        assert_eq!(Nss::discover_in(home.path(), false).chrome_db_to_create, None);
        // Once it exists it is an ordinary database.
        let db = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::write(db.join("cert9.db"), b"").unwrap();
        let nss = Nss::discover_in(home.path(), true);
        assert_eq!((nss.dbs, nss.chrome_db_to_create), (vec![db], None));
    }

    #[test]
    fn firefox_profiles_are_found() {
        let home = tempfile::tempdir().unwrap();
        let profile = home.path().join(".mozilla/firefox/abc.default-release");
        std::fs::create_dir_all(&profile).unwrap();
        std::fs::write(profile.join("cert9.db"), b"").unwrap();
        std::fs::create_dir_all(home.path().join(".mozilla/firefox/Crash Reports")).unwrap();
        assert_eq!(Nss::discover_in(home.path(), false).dbs, vec![profile.clone()]);
        assert_eq!(Nss::describe(&profile), format!("NSS database {} (Firefox)", profile.display()));
    }
}
