//! Host patterns of Ingress rules (rules 5 to 8 of the routing rules) and
//! normalisation of the request's `Host`.

use std::fmt;

/// The host part of an Ingress rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// `foo.bar.com`: matches only that host (stored lowercase).
    Exact(String),
    /// `*.foo.com`: matches exactly one more label; holds `foo.com`.
    Wildcard(String),
    /// An empty or missing `host`: matches every request host.
    Any,
}

/// Why a rule's `host` was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// A `*` anywhere but as the whole first label.
    #[error("{0:?} is not a valid host: a wildcard must be the whole first label, as in *.example.com")]
    BadWildcard(String),
    /// Characters or labels a DNS name cannot have.
    #[error("{0:?} is not a valid DNS host name")]
    BadName(String),
}

impl HostPattern {
    /// Parses the `host` field of an Ingress rule.
    pub fn parse(host: Option<&str>) -> Result<Self, HostError> {
        let Some(raw) = host.filter(|h| !h.is_empty()) else {
            return Ok(HostPattern::Any);
        };
        let lower = raw.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("*.") {
            if rest.contains('*') {
                return Err(HostError::BadWildcard(raw.to_string()));
            }
            if !is_dns_name(rest) {
                return Err(HostError::BadName(raw.to_string()));
            }
            return Ok(HostPattern::Wildcard(rest.to_string()));
        }
        if lower.contains('*') {
            return Err(HostError::BadWildcard(raw.to_string()));
        }
        if !is_dns_name(&lower) {
            return Err(HostError::BadName(raw.to_string()));
        }
        Ok(HostPattern::Exact(lower))
    }

    /// Whether a normalised request host (see [`normalize_request_host`]) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => match host.split_once('.') {
                Some((first, rest)) => !first.is_empty() && rest == suffix,
                None => false,
            },
            HostPattern::Any => true,
        }
    }

    /// Precedence when several patterns match: exact (0), wildcard (1), any (2).
    pub fn rank(&self) -> u8 {
        match self {
            HostPattern::Exact(_) => 0,
            HostPattern::Wildcard(_) => 1,
            HostPattern::Any => 2,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(s) => write!(f, "*.{s}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

/// Turns a `Host` header value (or URI authority) into the form rules compare
/// against: port stripped, lowercase, without a trailing dot.
pub fn normalize_request_host(value: &str) -> String {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        // IPv6 literal: keep it bracket-less up to the closing bracket.
        rest.split(']').next().unwrap_or(rest)
    } else {
        match value.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => value,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_matching_table() {
        // (rule host, request host, matches)
        let cases: &[(Option<&str>, &str, bool)] = &[
            (None, "anything.example.com", true),
            (Some(""), "x", true),
            (Some("foo.bar.com"), "foo.bar.com", true),
            (Some("foo.bar.com"), "bar.com", false),
            (Some("foo.bar.com"), "x.foo.bar.com", false),
            (Some("Foo.Bar.com"), "foo.bar.com", true),
            (Some("*.foo.com"), "bar.foo.com", true),
            (Some("*.foo.com"), "baz.bar.foo.com", false),
            (Some("*.foo.com"), "foo.com", false),
            (Some("*.foo.com"), ".foo.com", false),
            (Some("*.foo.com"), "xfoo.com", false),
        ];
        for (rule, req, want) in cases {
            let pat = HostPattern::parse(*rule).unwrap();
            assert_eq!(pat.matches(req), *want, "rule {rule:?} request {req:?}");
        }
    }

    #[test]
    fn request_host_normalisation() {
        assert_eq!(normalize_request_host("Alpaca.Example.COM:8080"), "alpaca.example.com");
        assert_eq!(normalize_request_host("alpaca.example.com."), "alpaca.example.com");
        assert_eq!(normalize_request_host("alpaca.example.com"), "alpaca.example.com");
        assert_eq!(normalize_request_host("[::1]:80"), "::1");
        assert_eq!(normalize_request_host("127.0.0.1:80"), "127.0.0.1");
    }

    #[test]
    fn bad_hosts_are_rejected() {
        assert!(matches!(HostPattern::parse(Some("foo.*.com")), Err(HostError::BadWildcard(_))));
        assert!(matches!(HostPattern::parse(Some("*.*.com")), Err(HostError::BadWildcard(_))));
        assert!(matches!(HostPattern::parse(Some("foo..com")), Err(HostError::BadName(_))));
        assert!(matches!(HostPattern::parse(Some("foo_bar.com")), Err(HostError::BadName(_))));
        assert!(matches!(HostPattern::parse(Some("-a.com")), Err(HostError::BadName(_))));
    }

    #[test]
    fn precedence_rank() {
        let e = HostPattern::parse(Some("a.b.c")).unwrap();
        let w = HostPattern::parse(Some("*.b.c")).unwrap();
        let a = HostPattern::parse(None).unwrap();
        assert!(e.rank() < w.rank() && w.rank() < a.rank());
    }
}
