//! Telling the user what changed in the routing table: hosts served,
//! Ingresses skipped, backends without pods. Each problem is said once.

use std::collections::BTreeSet;

use crate::routes::{RouteTable, Target};

/// Remembers what was last said, so each change is logged once.
#[derive(Debug, Default)]
pub struct Progress {
    announced_sync: bool,
    summary: Option<(usize, Vec<String>)>,
    problems: BTreeSet<String>,
}

impl Progress {
    /// Logs what is new in `table` compared with the tables seen before.
    pub fn report(&mut self, table: &RouteTable) {
        if !table.synced {
            return;
        }
        let hosts = table.hosts();
        let summary = (table.ingress_count, hosts.clone());
        if self.summary.as_ref() != Some(&summary) {
            let verb = if self.announced_sync { "now serving" } else { "serving" };
            tracing::info!(
                "{verb} {} Ingress{}, {} host{}: {}",
                table.ingress_count,
                if table.ingress_count == 1 { "" } else { "es" },
                hosts.len(),
                if hosts.len() == 1 { "" } else { "s" },
                if hosts.is_empty() { "(none)".to_string() } else { hosts.join(", ") }
            );
            self.summary = Some(summary);
            self.announced_sync = true;
        }
        let mut now = BTreeSet::new();
        for s in &table.skipped {
            now.insert(s.to_string());
        }
        for w in &table.warnings {
            now.insert(w.clone());
        }
        for b in table.backends() {
            if let Target::Pods { ready, .. } = &b.target {
                if ready.is_empty() {
                    now.insert(format!(
                        "Service {}/{} has no ready pods; its routes answer 503",
                        b.namespace, b.service
                    ));
                }
            } else if let Target::ServiceMissing = b.target {
                now.insert(format!("Service {}/{} does not exist; its routes answer 503", b.namespace, b.service));
            }
        }
        for p in now.difference(&self.problems) {
            tracing::warn!("{p}");
        }
        for p in self.problems.difference(&now) {
            tracing::info!("resolved: {p}");
        }
        self.problems = now;
    }
}
