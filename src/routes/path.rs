//! Path rules of Ingress rules (rules 9 to 12 of the routing rules).

use std::cmp::Ordering;
use std::fmt;

/// `pathType` of an Ingress path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// Equal strings, case-sensitive.
    Exact,
    /// Element-wise prefix on `/`-separated segments.
    Prefix,
    /// Treated as [`PathKind::Prefix`] (our choice, rule 11), but shown as given.
    ImplementationSpecific,
}

impl PathKind {
    /// Parses the `pathType` field.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Exact" => Some(PathKind::Exact),
            "Prefix" => Some(PathKind::Prefix),
            "ImplementationSpecific" => Some(PathKind::ImplementationSpecific),
            _ => None,
        }
    }
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathKind::Exact => "Exact",
            PathKind::Prefix => "Prefix",
            PathKind::ImplementationSpecific => "ImplementationSpecific",
        })
    }
}

/// One path of a rule, ready to match request paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// The path as written in the Ingress (`/` when it was left out).
    pub path: String,
    /// How it is compared.
    pub kind: PathKind,
}

/// Why a path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `pathType` is not one of the three the API defines.
    #[error("pathType {0:?} is not one of Exact, Prefix, ImplementationSpecific")]
    BadKind(String),
    /// Exact and Prefix paths must be absolute.
    #[error("path {0:?} must start with '/'")]
    NotAbsolute(String),
}

impl PathRule {
    /// Builds a rule from the `path` and `pathType` fields.
    pub fn parse(path: Option<&str>, path_type: &str) -> Result<Self, PathError> {
        let kind = PathKind::parse(path_type).ok_or_else(|| PathError::BadKind(path_type.to_string()))?;
        let path = match path {
            None | Some("") => "/".to_string(),
            Some(p) => p.to_string(),
        };
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute(path));
        }
        Ok(PathRule { path, kind })
    }

    /// Whether the request path (before `?`, not decoded) matches.
    pub fn matches(&self, request_path: &str) -> bool {
        match self.kind {
            PathKind::Exact => self.path == request_path,
            PathKind::Prefix | PathKind::ImplementationSpecific => {
                let prefix = self.path.trim_end_matches('/');
                if prefix.is_empty() {
                    return true;
                }
                match request_path.strip_prefix(prefix) {
                    Some(rest) => rest.is_empty() || rest.starts_with('/'),
                    None => false,
                }
            }
        }
    }

    /// Orders rules so that the first one that matches is the one that wins:
    /// longer paths first, and `Exact` before a prefix of the same length.
    pub fn precedence(&self, other: &Self) -> Ordering {
        other
            .path
            .len()
            .cmp(&self.path.len())
            .then_with(|| (self.kind != PathKind::Exact).cmp(&(other.kind != PathKind::Exact)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, kind: &str) -> PathRule {
        PathRule::parse(Some(path), kind).unwrap()
    }

    #[test]
    fn path_matching_table() {
        // (rule path, type, request path, matches): every example of rules 9 to 11, and more.
        let cases: &[(&str, &str, &str, bool)] = &[
            ("/foo", "Exact", "/foo", true),
            ("/foo", "Exact", "/foo/", false),
            ("/foo/", "Exact", "/foo", false),
            ("/foo", "Exact", "/FOO", false),
            ("/foo", "Exact", "/foo/bar", false),
            ("/foo", "Prefix", "/foo", true),
            ("/foo", "Prefix", "/foo/", true),
            ("/foo", "Prefix", "/foo/bar", true),
            ("/foo", "Prefix", "/foobar", false),
            ("/foo", "Prefix", "/Foo", false),
            ("/foo/", "Prefix", "/foo", true),
            ("/foo/", "Prefix", "/foo/bar", true),
            ("/foo/", "Prefix", "/foobar", false),
            ("/", "Prefix", "/", true),
            ("/", "Prefix", "/anything/at/all", true),
            ("/aaa/bb", "Prefix", "/aaa/bbb", false),
            ("/aaa/bbb", "Prefix", "/aaa/bbb/ccc", true),
            ("/a/b/", "Prefix", "/a/b", true),
            ("/foo", "ImplementationSpecific", "/foo/bar", true),
            ("/foo", "ImplementationSpecific", "/foobar", false),
            // The path is not decoded again: %2F is not a separator.
            ("/foo", "Prefix", "/foo%2Fbar", false),
        ];
        for (p, kind, req, want) in cases {
            assert_eq!(rule(p, kind).matches(req), *want, "{kind} {p:?} vs {req:?}");
        }
    }

    #[test]
    fn missing_path_means_root() {
        let r = PathRule::parse(None, "Prefix").unwrap();
        assert_eq!(r.path, "/");
        assert!(r.matches("/x"));
    }

    #[test]
    fn invalid_paths() {
        assert_eq!(PathRule::parse(Some("/x"), "Bogus"), Err(PathError::BadKind("Bogus".into())));
        assert_eq!(PathRule::parse(Some("x"), "Prefix"), Err(PathError::NotAbsolute("x".into())));
    }

    #[test]
    fn longest_wins_and_exact_beats_prefix() {
        let mut rules =
            [rule("/", "Prefix"), rule("/foo", "Prefix"), rule("/foo", "Exact"), rule("/foo/bar", "Prefix")];
        rules.sort_by(PathRule::precedence);
        let order: Vec<_> = rules.iter().map(|r| format!("{} {}", r.kind, r.path)).collect();
        assert_eq!(order, ["Prefix /foo/bar", "Exact /foo", "Prefix /foo", "Prefix /"]);
    }
}
