//! HTTPRoute matches (rules 10 to 13 of the Gateway rules): path, method,
//! headers and query parameters, and the precedence between matches of
//! every rule of every route attached to a listener for a host.

use std::cmp::Ordering;

use regex::Regex;

use crate::gateway::api::httproutes::{
    HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPathType,
    HttpRouteRulesMatchesQueryParamsType,
};
use crate::routes::{PathKind, PathRule};

/// How a path is matched.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// Equal strings.
    Exact(String),
    /// Element-wise prefix, as the Ingress `Prefix` (rule 11).
    Prefix(String),
    /// A regular expression (the `regex` crate's syntax) over the whole path.
    Regex(String, Regex),
}

/// How a header or query parameter value is matched.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    /// Equal strings.
    Exact(String),
    /// A regular expression over the whole value.
    Regex(Regex),
}

impl ValueMatch {
    fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(v) => v == value,
            ValueMatch::Regex(r) => r.is_match(value),
        }
    }
}

/// One `matches[]` entry: every condition must hold (rule 10).
#[derive(Debug, Clone)]
pub struct HttpMatch {
    /// The path condition (`PathPrefix /` when none is given).
    pub path: PathMatch,
    /// The method, upper case.
    pub method: Option<String>,
    /// Header conditions: lower-cased names.
    pub headers: Vec<(String, ValueMatch)>,
    /// Query parameter conditions: exact names.
    pub query: Vec<(String, ValueMatch)>,
}

/// The parts of a request a match looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The path, without the query.
    pub path: &'a str,
    /// The method.
    pub method: &'a str,
    /// The headers.
    pub headers: &'a http::HeaderMap,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
}

/// A match that cannot be used, with the field below `matches[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchError {
    /// The field, such as `path.value`.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// An anchored regex, or why it is not one.
fn anchored(field: &str, pattern: &str) -> Result<Regex, MatchError> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| MatchError { field: field.into(), reason: format!("not a regular expression: {e}") })
}

/// An `Exact` (the default) or `RegularExpression` value condition.
fn value_match(field: &str, regex: bool, value: &str) -> Result<ValueMatch, MatchError> {
    Ok(if regex { ValueMatch::Regex(anchored(field, value)?) } else { ValueMatch::Exact(value.to_string()) })
}

impl HttpMatch {
    /// The implicit match of a rule without matches: `PathPrefix /`.
    pub fn everything() -> Self {
        HttpMatch { path: PathMatch::Prefix("/".into()), method: None, headers: Vec::new(), query: Vec::new() }
    }

    /// Converts one `matches[]` entry.
    pub fn from_api(m: &HttpRouteRulesMatches) -> Result<Self, MatchError> {
        let path = match &m.path {
            None => PathMatch::Prefix("/".into()),
            Some(p) => {
                let value = p.value.clone().unwrap_or_else(|| "/".into());
                match p.r#type.clone().unwrap_or(HttpRouteRulesMatchesPathType::PathPrefix) {
                    HttpRouteRulesMatchesPathType::Exact | HttpRouteRulesMatchesPathType::PathPrefix
                        if !value.starts_with('/') =>
                    {
                        return Err(MatchError {
                            field: "path.value".into(),
                            reason: format!("{value:?} must start with '/'"),
                        });
                    }
                    HttpRouteRulesMatchesPathType::Exact => PathMatch::Exact(value),
                    HttpRouteRulesMatchesPathType::PathPrefix => PathMatch::Prefix(value),
                    HttpRouteRulesMatchesPathType::RegularExpression => {
                        let re = anchored("path.value", &value)?;
                        PathMatch::Regex(value, re)
                    }
                }
            }
        };
        let method = m
            .method
            .as_ref()
            .map(|m| serde_json::to_value(m).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default());
        let headers = m
            .headers
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, h)| {
                let regex = h.r#type == Some(HttpRouteRulesMatchesHeadersType::RegularExpression);
                Ok((h.name.to_ascii_lowercase(), value_match(&format!("headers[{i}].value"), regex, &h.value)?))
            })
            .collect::<Result<_, MatchError>>()?;
        let query = m
            .query_params
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, q)| {
                let regex = q.r#type == Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression);
                Ok((q.name.clone(), value_match(&format!("queryParams[{i}].value"), regex, &q.value)?))
            })
            .collect::<Result<_, MatchError>>()?;
        Ok(HttpMatch { path, method, headers, query })
    }

    /// Whether the request meets every condition.
    pub fn matches(&self, req: &RequestParts<'_>) -> bool {
        let path_ok = match &self.path {
            PathMatch::Exact(p) => p == req.path,
            PathMatch::Prefix(p) => PathRule { path: p.clone(), kind: PathKind::Prefix }.matches(req.path),
            PathMatch::Regex(_, re) => re.is_match(req.path),
        };
        path_ok
            && self.method.as_deref().is_none_or(|m| m == req.method)
            && self.headers.iter().all(|(name, want)| {
                // Repeated headers are compared as one comma-joined value.
                let values: Vec<&str> =
                    req.headers.get_all(name.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
                !values.is_empty() && want.matches(&values.join(","))
            })
            && self.query.iter().all(|(name, want)| query_value(req.query, name).is_some_and(|v| want.matches(&v)))
    }

    /// The precedence of this match (rule 13), before route age and name:
    /// compare with [`HttpMatch::cmp_precedence`].
    fn key(&self) -> (u8, usize, bool, usize, usize) {
        let (kind, len) = match &self.path {
            PathMatch::Exact(p) => (2, p.len()),
            PathMatch::Prefix(p) => (1, p.len()),
            // Ours: a regular expression ranks after every Exact and PathPrefix.
            PathMatch::Regex(..) => (0, 0),
        };
        (kind, len, self.method.is_some(), self.headers.len(), self.query.len())
    }

    /// `Less` when `self` takes precedence over `other` (rule 13: Exact
    /// path, longest prefix, method, most headers, most query parameters).
    pub fn cmp_precedence(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

impl std::fmt::Display for HttpMatch {
    /// `/api` (PathPrefix), `=/login` (Exact), `~/v[0-9]+` (regex), then the
    /// method, header and query conditions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            PathMatch::Prefix(p) => write!(f, "{p}")?,
            PathMatch::Exact(p) => write!(f, "={p}")?,
            PathMatch::Regex(p, _) => write!(f, "~{p}")?,
        }
        if let Some(m) = &self.method {
            write!(f, " {m}")?;
        }
        for (name, v) in &self.headers {
            match v {
                ValueMatch::Exact(v) => write!(f, " {name}={v}")?,
                ValueMatch::Regex(r) => write!(f, " {name}~{}", r.as_str())?,
            }
        }
        for (name, v) in &self.query {
            match v {
                ValueMatch::Exact(v) => write!(f, " ?{name}={v}")?,
                ValueMatch::Regex(r) => write!(f, " ?{name}~{}", r.as_str())?,
            }
        }
        Ok(())
    }
}

/// The first value of query parameter `name` (names compare exactly; the
/// value is percent-decoded).
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: serde_json::Value) -> HttpMatch {
        HttpMatch::from_api(&serde_json::from_value(v).unwrap()).unwrap()
    }

    fn req<'a>(
        path: &'a str,
        method: &'a str,
        headers: &'a http::HeaderMap,
        query: Option<&'a str>,
    ) -> RequestParts<'a> {
        RequestParts { path, method, headers, query }
    }

    #[test]
    fn rule_11_paths() {
        let none = http::HeaderMap::new();
        let prefix = m(json!({"path": {"type": "PathPrefix", "value": "/foo"}}));
        assert!(prefix.matches(&req("/foo", "GET", &none, None)));
        assert!(prefix.matches(&req("/foo/bar", "GET", &none, None)));
        assert!(!prefix.matches(&req("/foobar", "GET", &none, None)));
        let trailing = m(json!({"path": {"type": "PathPrefix", "value": "/foo/"}}));
        assert!(trailing.matches(&req("/foo", "GET", &none, None)), "a trailing slash is ignored");
        let exact = m(json!({"path": {"type": "Exact", "value": "/foo"}}));
        assert!(exact.matches(&req("/foo", "GET", &none, None)));
        assert!(!exact.matches(&req("/foo/", "GET", &none, None)));
        let re = m(json!({"path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"}}));
        assert!(re.matches(&req("/v2/items", "GET", &none, None)));
        assert!(!re.matches(&req("/api/v2/items", "GET", &none, None)), "anchored to the whole path");
        // No path: PathPrefix /.
        assert!(m(json!({})).matches(&req("/anything", "GET", &none, None)));
        assert_eq!(
            HttpMatch::from_api(&serde_json::from_value(json!({"path": {"type": "Exact", "value": "foo"}})).unwrap())
                .unwrap_err()
                .field,
            "path.value"
        );
    }

    #[test]
    fn rule_12_headers_query_and_method() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-env", "canary".parse().unwrap());
        headers.insert("x-version", "v12".parse().unwrap());
        let hm = m(json!({"headers": [{"name": "X-Env", "value": "canary"},
                                       {"name": "x-version", "type": "RegularExpression", "value": "v1[0-9]"}]}));
        assert!(hm.matches(&req("/", "GET", &headers, None)), "names compare case-insensitively");
        let wrong = m(json!({"headers": [{"name": "x-env", "value": "Canary"}]}));
        assert!(!wrong.matches(&req("/", "GET", &headers, None)), "values compare exactly");
        let qm = m(json!({"queryParams": [{"name": "animal", "value": "whale"}]}));
        assert!(qm.matches(&req("/", "GET", &headers, Some("a=1&animal=whale"))));
        assert!(!qm.matches(&req("/", "GET", &headers, Some("Animal=whale"))), "query names compare exactly");
        assert!(qm.matches(&req("/", "GET", &headers, Some("animal=wh%61le"))), "values are decoded");
        let method = m(json!({"method": "POST"}));
        assert!(method.matches(&req("/", "POST", &headers, None)));
        assert!(!method.matches(&req("/", "GET", &headers, None)));
    }

    #[test]
    fn rule_13_precedence() {
        let exact = m(json!({"path": {"type": "Exact", "value": "/a"}}));
        let long = m(json!({"path": {"type": "PathPrefix", "value": "/a/b/c"}}));
        let short = m(json!({"path": {"type": "PathPrefix", "value": "/a"}}));
        let method = m(json!({"path": {"type": "PathPrefix", "value": "/a"}, "method": "GET"}));
        let headers =
            m(json!({"path": {"type": "PathPrefix", "value": "/a"}, "headers": [{"name": "a", "value": "1"}]}));
        let two_headers = m(json!({"path": {"type": "PathPrefix", "value": "/a"},
                                   "headers": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]}));
        let query =
            m(json!({"path": {"type": "PathPrefix", "value": "/a"}, "queryParams": [{"name": "q", "value": "1"}]}));
        let regex = m(json!({"path": {"type": "RegularExpression", "value": "/a/b/c/d/e/.*"}}));
        let mut all = [&regex, &query, &short, &headers, &two_headers, &method, &long, &exact];
        all.sort_by(|a, b| a.cmp_precedence(b));
        let order: Vec<String> = all
            .iter()
            .map(|x| {
                format!("{:?}/{}/{}/{}", x.key().0, x.key().1, x.method.is_some(), x.headers.len() + 10 * x.query.len())
            })
            .collect();
        assert_eq!(
            order,
            [
                "2/2/false/0",
                "1/6/false/0",
                "1/2/true/0",
                "1/2/false/2",
                "1/2/false/1",
                "1/2/false/10",
                "1/2/false/0",
                "0/0/false/0"
            ]
        );
    }
}
