//! Gateway API hostnames (rules 5, 8 and 9 of the Gateway rules): unlike an
//! Ingress wildcard, `*.example.com` here matches any number of labels.

use std::cmp::Ordering;
use std::fmt;

/// A listener's or a route's hostname.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GatewayHost {
    /// No hostname: every host.
    Any,
    /// One name, lower-cased.
    Exact(String),
    /// `*.suffix`: any name ending in `.suffix`, however many labels deep
    /// (the suffix is stored without the `*.`).
    Wildcard(String),
}

impl GatewayHost {
    /// Parses a `hostname` field; `None` or empty is [`GatewayHost::Any`].
    pub fn parse(hostname: Option<&str>) -> Self {
        match hostname.map(str::trim).filter(|h| !h.is_empty()) {
            None => GatewayHost::Any,
            Some(h) => match h.strip_prefix("*.") {
                Some(suffix) => GatewayHost::Wildcard(suffix.to_ascii_lowercase()),
                None => GatewayHost::Exact(h.to_ascii_lowercase()),
            },
        }
    }

    /// Whether a normalised request host (lower case, no port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            GatewayHost::Any => true,
            GatewayHost::Exact(h) => h == host,
            GatewayHost::Wildcard(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
        }
    }

    /// The hostnames a route answers on a listener (rule 8): the
    /// intersection of the listener's hostname and the route's, or `None`
    /// when they have none in common.
    pub fn intersect(listener: &GatewayHost, route: &GatewayHost) -> Option<GatewayHost> {
        use GatewayHost::{Any, Exact, Wildcard};
        match (listener, route) {
            (Any, r) => Some(r.clone()),
            (l, Any) => Some(l.clone()),
            (Exact(l), Exact(r)) => (l == r).then(|| Exact(l.clone())),
            (Wildcard(_), Exact(r)) => listener.matches(r).then(|| Exact(r.clone())),
            (Exact(l), Wildcard(_)) => route.matches(l).then(|| Exact(l.clone())),
            (Wildcard(l), Wildcard(r)) => {
                // The narrower of the two, when one contains the other.
                if l == r || r.ends_with(&format!(".{l}")) {
                    Some(Wildcard(r.clone()))
                } else if l.ends_with(&format!(".{r}")) {
                    Some(Wildcard(l.clone()))
                } else {
                    None
                }
            }
        }
    }

    /// How specific a matching hostname is (rule 9): the greater wins. An
    /// exact name beats every wildcard; between wildcards the longer one
    /// (more characters) wins; no hostname loses to both.
    pub fn specificity(&self) -> (u8, usize) {
        match self {
            GatewayHost::Exact(h) => (2, h.len()),
            GatewayHost::Wildcard(s) => (1, s.len() + 2),
            GatewayHost::Any => (0, 0),
        }
    }

    /// Orders hostnames most specific first.
    pub fn cmp_specific(&self, other: &Self) -> Ordering {
        other.specificity().cmp(&self.specificity())
    }
}

impl fmt::Display for GatewayHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayHost::Any => f.write_str("*"),
            GatewayHost::Exact(h) => f.write_str(h),
            GatewayHost::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> GatewayHost {
        GatewayHost::parse(if s.is_empty() { None } else { Some(s) })
    }

    #[test]
    fn rule_5_wildcards_match_any_number_of_labels_but_not_the_suffix_itself() {
        let w = h("*.example.com");
        assert!(w.matches("foo.example.com"));
        assert!(w.matches("foo.bar.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("fooexample.com"));
        assert!(h("").matches("anything.test"));
        assert!(h("Foo.Example.com").matches("foo.example.com"));
        assert!(!h("foo.example.com").matches("bar.example.com"));
    }

    #[test]
    fn rule_8_a_route_takes_the_intersection_with_the_listener() {
        let i = |l: &str, r: &str| GatewayHost::intersect(&h(l), &h(r)).map(|x| x.to_string());
        assert_eq!(i("*.example.com", "foo.example.com").as_deref(), Some("foo.example.com"));
        assert_eq!(i("foo.example.com", "*.example.com").as_deref(), Some("foo.example.com"));
        assert_eq!(i("", "foo.example.com").as_deref(), Some("foo.example.com"));
        assert_eq!(i("foo.example.com", "").as_deref(), Some("foo.example.com"));
        assert_eq!(i("*.example.com", "*.bar.example.com").as_deref(), Some("*.bar.example.com"));
        assert_eq!(i("*.bar.example.com", "*.example.com").as_deref(), Some("*.bar.example.com"));
        assert_eq!(i("foo.example.com", "bar.example.com"), None);
        assert_eq!(i("*.example.com", "example.com"), None);
        assert_eq!(i("*.example.com", "*.example.net"), None);
    }

    #[test]
    fn rule_9_exact_beats_wildcard_and_longer_wildcards_win() {
        let mut hosts = [h(""), h("*.example.com"), h("foo.bar.example.com"), h("*.bar.example.com")];
        hosts.sort_by(GatewayHost::cmp_specific);
        let order: Vec<String> = hosts.iter().map(ToString::to_string).collect();
        assert_eq!(order, ["foo.bar.example.com", "*.bar.example.com", "*.example.com", "*"]);
    }
}
