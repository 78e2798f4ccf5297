//! Request counters and recent errors, kept by the proxy for the status
//! model: per host, per status class, and the last few failures.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How many recent errors are kept in all.
const RECENT: usize = 50;

/// One request that devingress could not answer well (a 5xx it made or
/// passed on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// When, as RFC 3339 UTC.
    pub at: String,
    /// The host asked for.
    pub host: String,
    /// The status code answered.
    pub status: u16,
    /// What went wrong.
    pub message: String,
}

/// Counts for one host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCounts {
    /// Requests answered.
    pub requests: u64,
    /// Of those, answered with a 5xx.
    pub errors: u64,
}

/// Counts by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    /// 1xx (upgrades) and 2xx.
    pub ok: u64,
    /// 3xx.
    pub redirect: u64,
    /// 4xx.
    pub client_error: u64,
    /// 5xx.
    pub server_error: u64,
}

#[derive(Debug, Default)]
struct Inner {
    by_host: HashMap<String, HostCounts>,
    classes: ClassCounts,
    recent: VecDeque<ErrorEvent>,
}

/// The counters; shared by every connection.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Stats {
    /// Counts one answered request; a 5xx with a `reason` is kept as a recent error.
    pub fn record(&self, host: &str, status: u16, reason: Option<&str>) {
        let mut s = self.inner.lock().expect("stats lock");
        let count = |c: &mut HostCounts| {
            c.requests += 1;
            c.errors += u64::from(status >= 500);
        };
        // The host's name is copied only the first time it is counted.
        match s.by_host.get_mut(host) {
            Some(c) => count(c),
            None => count(s.by_host.entry(host.to_string()).or_default()),
        }
        match status {
            0..=299 => s.classes.ok += 1,
            300..=399 => s.classes.redirect += 1,
            400..=499 => s.classes.client_error += 1,
            _ => s.classes.server_error += 1,
        }
        if status >= 500 {
            if s.recent.len() == RECENT {
                s.recent.pop_front();
            }
            let at = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let message = reason.unwrap_or("").to_string();
            s.recent.push_back(ErrorEvent { at, host: host.to_string(), status, message });
        }
    }

    /// Counts for `host`.
    pub fn host(&self, host: &str) -> HostCounts {
        self.inner.lock().expect("stats lock").by_host.get(host).copied().unwrap_or_default()
    }

    /// Counts by class.
    pub fn classes(&self) -> ClassCounts {
        self.inner.lock().expect("stats lock").classes
    }

    /// The recent errors, oldest first.
    pub fn recent(&self) -> Vec<ErrorEvent> {
        self.inner.lock().expect("stats lock").recent.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_host_and_class_and_keeps_the_last_errors() {
        let s = Stats::default();
        s.record("a.test", 200, None);
        s.record("a.test", 502, Some("pod gone"));
        s.record("b.test", 404, None);
        s.record("b.test", 308, None);
        assert_eq!(s.host("a.test"), HostCounts { requests: 2, errors: 1 });
        assert_eq!(s.classes(), ClassCounts { ok: 1, redirect: 1, client_error: 1, server_error: 1 });
        assert_eq!(s.recent().len(), 1);
        assert_eq!(s.recent()[0].message, "pod gone");
        for i in 0..100 {
            s.record("c.test", 503, Some(&format!("e{i}")));
        }
        let recent = s.recent();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent.last().unwrap().message, "e99");
    }
}
