//! macOS: one file per served domain under `/etc/resolver`, each sending
//! that domain (and its subdomains) to devingress's DNS server, with a
//! `port` line (resolver(5) documents it). `devingress setup` lets the
//! user add and remove files there. Tested here against temporary roots.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{OsResolver, ResolverError};

/// The first line of every file devingress writes; files without it are
/// the user's and are never touched.
pub const MARKER: &str = "# managed by devingress: removed when it stops";

/// The resolver directory devingress manages.
#[derive(Debug, Clone)]
pub struct ResolverDir {
    dir: PathBuf,
    port: u16,
}

/// The contents of one file.
pub fn contents(port: u16) -> String {
    format!("{MARKER}\nnameserver 127.0.0.1\nnameserver ::1\nport {port}\n")
}

impl ResolverDir {
    /// Manages `dir` (normally `/etc/resolver`) for a DNS server on `port`.
    pub fn new(dir: impl Into<PathBuf>, port: u16) -> Self {
        ResolverDir { dir: dir.into(), port }
    }

    fn ours(path: &Path) -> bool {
        std::fs::read_to_string(path).is_ok_and(|t| t.starts_with(MARKER))
    }

    /// The domains that have a file of ours now.
    pub fn current(&self) -> BTreeSet<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return BTreeSet::new() };
        entries
            .flatten()
            .filter(|e| Self::ours(&e.path()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect()
    }

    /// Makes the files match `hosts`. Returns the domains added and removed.
    pub fn sync(&self, hosts: &[String]) -> Result<(Vec<String>, Vec<String>), ResolverError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ResolverError::File { path, source }
        };
        let want = super::domains(hosts);
        let have = self.current();
        let mut added = Vec::new();
        for domain in want.iter() {
            let path = self.dir.join(domain);
            if path.exists() && !Self::ours(&path) {
                // The user's own file for this domain wins.
                continue;
            }
            let body = contents(self.port);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(body.as_str()) {
                if !self.dir.exists() {
                    std::fs::create_dir_all(&self.dir).map_err(err(&self.dir))?;
                }
                crate::paths::write_atomic(&path, body.as_bytes(), false).map_err(err(&path))?;
                added.push(domain.clone());
            }
        }
        let mut removed = Vec::new();
        for domain in have.difference(&want) {
            let path = self.dir.join(domain);
            std::fs::remove_file(&path).map_err(err(&path))?;
            removed.push(domain.clone());
        }
        Ok((added, removed))
    }

    /// Removes every file of ours (on exit, and at start after a crash).
    pub fn remove_all(&self) -> Result<Vec<String>, ResolverError> {
        self.sync(&[]).map(|(_, removed)| removed)
    }
}

impl OsResolver for ResolverDir {
    fn describe(&self) -> String {
        format!("a file per served domain in {}", self.dir.display())
    }

    fn apply(&mut self, hosts: &[String]) -> Result<bool, ResolverError> {
        self.sync(hosts).map(|(added, removed)| !added.is_empty() || !removed.is_empty())
    }

    fn remove(&mut self) -> Result<bool, ResolverError> {
        self.remove_all().map(|removed| !removed.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_follow_hosts_and_leave_the_users_own_alone() {
        let dir = tempfile::tempdir().unwrap();
        let resolver = dir.path().join("resolver");
        std::fs::create_dir(&resolver).unwrap();
        std::fs::write(resolver.join("corp.example"), "nameserver 10.0.0.1\n").unwrap();
        std::fs::write(resolver.join("mine.example.com"), "nameserver 10.0.0.2\n").unwrap();
        let r = ResolverDir::new(&resolver, 10053);
        let hosts = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (added, removed) = r.sync(&hosts(&["alpaca.example.com", "*.apps.test", "mine.example.com"])).unwrap();
        assert_eq!(added, ["alpaca.example.com", "apps.test"]);
        assert!(removed.is_empty());
        assert_eq!(std::fs::read_to_string(resolver.join("apps.test")).unwrap(), contents(10053));
        assert!(std::fs::read_to_string(resolver.join("apps.test")).unwrap().contains("port 10053\n"));
        assert_eq!(std::fs::read_to_string(resolver.join("mine.example.com")).unwrap(), "nameserver 10.0.0.2\n");
        // Idempotent, then a host goes away.
        assert_eq!(r.sync(&hosts(&["alpaca.example.com", "*.apps.test"])).unwrap(), (vec![], vec![]));
        let (_, removed) = r.sync(&hosts(&["alpaca.example.com"])).unwrap();
        assert_eq!(removed, ["apps.test"]);
        // A crash leaves files; the next start removes exactly ours.
        let next = ResolverDir::new(&resolver, 10053);
        assert_eq!(next.remove_all().unwrap(), ["alpaca.example.com"]);
        let mut left: Vec<String> = std::fs::read_dir(&resolver)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["corp.example", "mine.example.com"]);
    }
}
