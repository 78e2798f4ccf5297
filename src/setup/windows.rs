//! The set-up on Windows. NRPT rules (how Windows sends a domain to a DNS
//! server) need an administrator at every change and cannot name a port,
//! so there is nothing to grant once: `devingress up --dns-port 53` runs
//! elevated (the installer's logon task does that).

use super::Step;

/// The Windows plan: it explains, it changes nothing.
pub fn plan() -> Vec<Step> {
    vec![Step {
        title: "nothing to grant once on Windows".into(),
        why: "NRPT rules need an administrator at every change and cannot name a port: run `devingress up \
              --dns-port 53` from an elevated terminal (ports 80 and 443 need no privilege on Windows)"
            .into(),
        actions: vec![],
        per_user: false,
    }]
}
