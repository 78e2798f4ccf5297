//! Linux with NetworkManager's dnsmasq (`dns=dnsmasq`): a `servers-file`
//! with one `server=/domain/127.0.0.1#port` line per served domain.
//!
//! `devingress setup` adds a drop-in to `/etc/NetworkManager/dnsmasq.d`
//! that names the servers file, in a directory the user owns, so that `up`
//! can write it atomically without root. dnsmasq reads it at start, so a
//! change is followed by `nmcli general reload dns-full`, which restarts
//! NetworkManager's dnsmasq.

use std::path::PathBuf;

use super::{OsResolver, Program, ResolverError, domains};

/// The first line of the servers file.
pub const MARKER: &str = "# managed by devingress: the servers for its hosts, emptied when it stops";

/// The servers file for `hosts` and a DNS server on `port`.
pub fn render(hosts: &[String], port: u16) -> String {
    let mut out = format!("{MARKER}\n");
    for d in domains(hosts) {
        out.push_str(&format!("server=/{d}/127.0.0.1#{port}\n"));
    }
    out
}

/// NetworkManager's dnsmasq, through a servers file.
#[derive(Debug)]
pub struct Dnsmasq {
    servers_file: PathBuf,
    nmcli: Program,
    port: u16,
}

impl Dnsmasq {
    /// Writes `servers_file` and reloads dnsmasq with `nmcli`.
    pub fn new(servers_file: impl Into<PathBuf>, nmcli: Program, port: u16) -> Self {
        Dnsmasq { servers_file: servers_file.into(), nmcli, port }
    }

    fn write(&self, body: &str) -> Result<bool, ResolverError> {
        let file_error = |source| ResolverError::File { path: self.servers_file.clone(), source };
        let old = match std::fs::read_to_string(&self.servers_file) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(file_error(e)),
        };
        if old.as_deref() == Some(body) {
            return Ok(false);
        }
        if old.as_ref().is_some_and(|t| !t.is_empty() && !t.starts_with(MARKER)) {
            return Err(ResolverError::Unsupported(format!(
                "{} is not devingress's file; leaving it alone",
                self.servers_file.display()
            )));
        }
        crate::paths::write_atomic(&self.servers_file, body.as_bytes(), false).map_err(file_error)?;
        self.nmcli.run(&["general".into(), "reload".into(), "dns-full".into()])?;
        Ok(true)
    }
}

impl OsResolver for Dnsmasq {
    fn describe(&self) -> String {
        format!("NetworkManager's dnsmasq, through {}", self.servers_file.display())
    }

    fn apply(&mut self, hosts: &[String]) -> Result<bool, ResolverError> {
        self.write(&render(hosts, self.port))
    }

    fn remove(&mut self) -> Result<bool, ResolverError> {
        self.write(&render(&[], self.port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_line_per_domain() {
        let hosts = ["alpaca.example.com", "*.apps.test"].map(String::from);
        assert_eq!(
            render(&hosts, 10053),
            format!("{MARKER}\nserver=/alpaca.example.com/127.0.0.1#10053\nserver=/apps.test/127.0.0.1#10053\n")
        );
        assert_eq!(render(&[], 10053), format!("{MARKER}\n"));
    }
}
