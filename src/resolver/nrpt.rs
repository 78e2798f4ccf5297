//! Windows: rules in the Name Resolution Policy Table, one per served
//! name, each sending it to 127.0.0.1, set with PowerShell's
//! `Add-DnsClientNrptRule` and tagged with a comment so that exactly
//! devingress's rules are removed again.
//!
//! NRPT names a server but not a port: the DNS server must answer on
//! port 53 (`devingress up --dns-port 53`), and changing the table needs
//! an administrator.

use std::collections::BTreeSet;

use super::{OsResolver, Program, ResolverError};

/// The comment on every rule devingress adds.
pub const COMMENT: &str = "devingress";

/// NRPT namespaces: an exact host as it is (that name only), a wildcard
/// `*.apps.test` as `.apps.test` (its subdomains).
pub fn namespaces(hosts: &[String]) -> BTreeSet<String> {
    hosts
        .iter()
        .map(|h| match h.strip_prefix("*.") {
            Some(parent) => format!(".{}", parent.to_ascii_lowercase()),
            None => h.to_ascii_lowercase(),
        })
        .collect()
}

/// Removes every rule of devingress's.
pub fn remove_script() -> String {
    format!("Get-DnsClientNrptRule | Where-Object Comment -eq '{COMMENT}' | Remove-DnsClientNrptRule -Force")
}

/// Replaces devingress's rules with rules for `namespaces`.
pub fn apply_script(namespaces: &BTreeSet<String>) -> String {
    let mut script = remove_script();
    if !namespaces.is_empty() {
        let list: Vec<String> = namespaces.iter().map(|n| format!("'{n}'")).collect();
        script.push_str(&format!(
            "; Add-DnsClientNrptRule -Namespace {} -NameServers '127.0.0.1' -Comment '{COMMENT}'",
            list.join(",")
        ));
    }
    script
}

/// Windows' NRPT, through PowerShell.
#[derive(Debug)]
pub struct Nrpt {
    powershell: Program,
    port: u16,
    applied: Option<BTreeSet<String>>,
}

impl Nrpt {
    /// Rules for a DNS server on `port`, which must be 53.
    pub fn new(powershell: Program, port: u16) -> Self {
        Nrpt { powershell, port, applied: None }
    }

    fn run(&self, script: String) -> Result<(), ResolverError> {
        let args = ["-NoProfile".to_string(), "-NonInteractive".into(), "-Command".into(), script];
        self.powershell.run(&args).map(|_| ())
    }
}

impl OsResolver for Nrpt {
    fn describe(&self) -> String {
        format!("Windows NRPT rules with the comment '{COMMENT}'")
    }

    fn apply(&mut self, hosts: &[String]) -> Result<bool, ResolverError> {
        if self.port != 53 {
            return Err(ResolverError::Unsupported(format!(
                "NRPT rules cannot name a port and the DNS server is on {}: run `devingress up --dns-port 53`",
                self.port
            )));
        }
        let want = namespaces(hosts);
        if self.applied.as_ref() == Some(&want) {
            return Ok(false);
        }
        self.run(apply_script(&want))?;
        self.applied = Some(want);
        Ok(true)
    }

    fn remove(&mut self) -> Result<bool, ResolverError> {
        self.run(remove_script())?;
        Ok(self.applied.take().is_some_and(|n| !n.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_exact_hosts_and_wildcard_suffixes() {
        let n = namespaces(&["alpaca.example.com", "*.apps.test"].map(String::from));
        assert_eq!(
            apply_script(&n),
            "Get-DnsClientNrptRule | Where-Object Comment -eq 'devingress' | Remove-DnsClientNrptRule -Force; \
             Add-DnsClientNrptRule -Namespace '.apps.test','alpaca.example.com' -NameServers '127.0.0.1' -Comment 'devingress'"
        );
        assert_eq!(apply_script(&BTreeSet::new()), remove_script());
    }

    #[test]
    fn a_port_other_than_53_is_refused_with_the_fix() {
        let mut n = Nrpt::new(Program::new("powershell-that-is-never-run"), 10053);
        let e = n.apply(&["a.test".to_string()]).unwrap_err().to_string();
        assert!(e.contains("--dns-port 53"), "{e}");
    }
}
