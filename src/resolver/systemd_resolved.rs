//! Linux with systemd-resolved: devingress's DNS server and one routing
//! domain (`~alpaca.example.com`) per served domain, set with `resolvectl`
//! on a dummy link that `devingress setup` creates.
//!
//! Why a link of its own: resolved refuses per-link settings on `lo`, and
//! setting them on the user's real link would replace that link's DNS
//! servers. A routing-only link with `default-route false` takes exactly
//! the served names and nothing else. Per-link DNSSEC is turned off, since
//! devingress's answers are not signed; everything else keeps the user's
//! settings. `resolvectl revert` takes it all back. Every call passes
//! `--no-ask-password`: `up` never prompts; without the polkit rule that
//! `setup` adds, a call fails with resolved's reason instead.

use std::collections::BTreeSet;

use super::{OsResolver, Program, ResolverError, domains};

/// The link `devingress setup` creates for routing domains.
pub const LINK: &str = "devingress0";

/// The `resolvectl` calls that send `domains` on `link` to a DNS server on
/// 127.0.0.1 and ::1 at `port`.
pub fn commands(link: &str, port: u16, domains: &BTreeSet<String>) -> Vec<Vec<String>> {
    let call = |verb: &str, rest: Vec<String>| {
        let mut c = vec![verb.to_string(), link.to_string()];
        c.extend(rest);
        c
    };
    vec![
        call("dns", vec![format!("127.0.0.1:{port}"), format!("[::1]:{port}")]),
        call("domain", domains.iter().map(|d| format!("~{d}")).collect()),
        call("default-route", vec!["false".into()]),
        call("dnssec", vec!["no".into()]),
        call("llmnr", vec!["no".into()]),
        call("mdns", vec!["no".into()]),
    ]
}

/// systemd-resolved, driven through `resolvectl`.
#[derive(Debug)]
pub struct Resolved {
    resolvectl: Program,
    link: String,
    port: u16,
    applied: Option<BTreeSet<String>>,
}

impl Resolved {
    /// Routes served domains on `link` to the DNS server on `port`.
    pub fn new(resolvectl: Program, link: impl Into<String>, port: u16) -> Self {
        Resolved { resolvectl, link: link.into(), port, applied: None }
    }

    /// Runs `resolvectl --no-ask-password <args>`.
    fn call(&self, args: &[String]) -> Result<(), ResolverError> {
        let mut all = vec!["--no-ask-password".to_string()];
        all.extend_from_slice(args);
        self.resolvectl.run(&all).map(|_| ())
    }
}

impl OsResolver for Resolved {
    fn describe(&self) -> String {
        format!("systemd-resolved, routing domains on link {}", self.link)
    }

    fn apply(&mut self, hosts: &[String]) -> Result<bool, ResolverError> {
        let want = domains(hosts);
        if self.applied.as_ref() == Some(&want) {
            return Ok(false);
        }
        if want.is_empty() {
            return self.remove();
        }
        for args in commands(&self.link, self.port, &want) {
            self.call(&args)?;
        }
        self.applied = Some(want);
        Ok(true)
    }

    fn remove(&mut self) -> Result<bool, ResolverError> {
        // Always revert: after a crash, the settings of the earlier run are still there.
        self.call(&["revert".to_string(), self.link.clone()])?;
        Ok(self.applied.take().is_some_and(|d| !d.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_route_only_the_served_domains() {
        let d: BTreeSet<String> = ["alpaca.example.com", "apps.test"].map(String::from).into();
        let lines: Vec<String> = commands(LINK, 10053, &d).iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            lines,
            [
                "dns devingress0 127.0.0.1:10053 [::1]:10053",
                "domain devingress0 ~alpaca.example.com ~apps.test",
                "default-route devingress0 false",
                "dnssec devingress0 no",
                "llmnr devingress0 no",
                "mdns devingress0 no",
            ]
        );
    }
}
