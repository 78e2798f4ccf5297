//! HTTPRoute filters (rules 15 to 19 of the Gateway rules), pure: header
//! modifiers, redirects and URL rewrites, parsed from a rule's `filters`
//! and applied by the proxy through the functions here.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

use super::PathMatch;

/// Header edits: `set` replaces, `add` appends, `remove` deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl HeaderEdits {
    /// Applies the edits to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
        for n in &self.remove {
            headers.remove(n);
        }
    }
}

/// How a path is changed: all of it, or the prefix the rule matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathChange {
    /// `ReplaceFullPath`.
    Full(String),
    /// `ReplacePrefixMatch`.
    Prefix(String),
}

/// The share of requests a `RequestMirror` copies: `numerator` of every
/// `denominator`, spread evenly (request *i* is copied when
/// ⌊(i+1)·n/d⌋ > ⌊i·n/d⌋), so that any run of `denominator` requests has
/// exactly `numerator` copies.
#[derive(Debug, Clone)]
pub struct Share {
    /// Copied requests per `denominator`.
    pub numerator: u64,
    /// Out of how many.
    pub denominator: u64,
    /// Requests seen so far, shared by the rule's copies.
    seen: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Share {
    /// Every request.
    pub fn all() -> Self {
        Share { numerator: 1, denominator: 1, seen: Default::default() }
    }

    /// `fraction` (`numerator`, `denominator` defaulting to 100) or
    /// `percent` of a `requestMirror`; neither is every request.
    fn parse(mirror: &Value) -> Result<Self, (&'static str, String)> {
        let share = |numerator: u64, denominator: u64| Share { numerator, denominator, seen: Default::default() };
        match (&mirror["fraction"], &mirror["percent"]) {
            (Value::Null, Value::Null) => Ok(Share::all()),
            (Value::Null, p) => match p.as_u64().filter(|p| *p <= 100) {
                Some(p) => Ok(share(p, 100)),
                None => Err(("requestMirror.percent", format!("{p} is not a percentage from 0 to 100"))),
            },
            (f, Value::Null) => {
                let n = f["numerator"].as_u64();
                let d = if f["denominator"].is_null() { Some(100) } else { f["denominator"].as_u64() };
                match (n, d) {
                    (Some(n), Some(d)) if d > 0 && n <= d => Ok(share(n, d)),
                    _ => Err((
                        "requestMirror.fraction",
                        format!("{f} is not a fraction: numerator from 0 to denominator, denominator above 0"),
                    )),
                }
            }
            _ => Err(("requestMirror", "fraction and percent cannot both be set".into())),
        }
    }

    /// Takes over `before`'s count of requests when both are the same
    /// share, so that rebuilding the table (on any change in the cluster)
    /// does not start the spread again.
    pub fn continue_from(&mut self, before: &Share) {
        if (self.numerator, self.denominator) == (before.numerator, before.denominator) {
            self.seen = before.seen.clone();
        }
    }

    /// Whether the next request is copied.
    pub fn take(&self) -> bool {
        if self.numerator >= self.denominator {
            return true;
        }
        let i = self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.denominator;
        (i + 1) * self.numerator / self.denominator > i * self.numerator / self.denominator
    }
}

/// One filter of a rule.
#[derive(Debug, Clone)]
pub enum Filter {
    /// `RequestHeaderModifier`.
    RequestHeaders(HeaderEdits),
    /// `ResponseHeaderModifier`.
    ResponseHeaders(HeaderEdits),
    /// `RequestRedirect`: the answer is a redirect, no backend is asked.
    Redirect {
        /// `http` or `https`; the request's when unset.
        scheme: Option<String>,
        /// The host; the request's when unset.
        hostname: Option<String>,
        /// The port (see [`redirect_location`]).
        port: Option<u16>,
        /// The path change.
        path: Option<PathChange>,
        /// 301, 302 (the default), 303, 307 or 308.
        status: u16,
    },
    /// `RequestMirror`: a copy of the request goes to this Service port
    /// (resolved by the table; `None` until then, or when it cannot be).
    Mirror {
        /// The backendRef as written: namespace (when given), name, port.
        reference: (Option<String>, String, u16),
        /// The Service port's pods.
        backend: Option<std::sync::Arc<crate::routes::Backend>>,
        /// Which requests are mirrored (`fraction` or `percent`).
        share: Share,
    },
    /// `CORS`: preflights answered here, allowed origins' answers marked.
    Cors(std::sync::Arc<super::cors::Cors>),
    /// `URLRewrite`: the request goes on, changed.
    Rewrite {
        /// The Host sent to the backend.
        hostname: Option<String>,
        /// The path change.
        path: Option<PathChange>,
    },
}

#[derive(Deserialize, Default)]
struct NameValue {
    name: String,
    value: String,
}

#[derive(Deserialize, Default)]
struct EditsJson {
    #[serde(default)]
    set: Vec<NameValue>,
    #[serde(default)]
    add: Vec<NameValue>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Deserialize)]
struct PathJson {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "replaceFullPath")]
    full: Option<String>,
    #[serde(rename = "replacePrefixMatch")]
    prefix: Option<String>,
}

fn edits(v: &serde_json::Value, field: &str) -> Result<HeaderEdits, (String, String)> {
    let e: EditsJson = serde_json::from_value(v.clone()).map_err(|e| (field.to_string(), e.to_string()))?;
    let header = |nv: &NameValue| -> Result<(HeaderName, HeaderValue), (String, String)> {
        let n = HeaderName::from_bytes(nv.name.as_bytes())
            .map_err(|_| (format!("{field}.name"), format!("{:?} is not a header name", nv.name)))?;
        let v = HeaderValue::from_str(&nv.value)
            .map_err(|_| (format!("{field}.value"), format!("{:?} is not a header value", nv.value)))?;
        Ok((n, v))
    };
    Ok(HeaderEdits {
        set: e.set.iter().map(header).collect::<Result<_, _>>()?,
        add: e.add.iter().map(header).collect::<Result<_, _>>()?,
        remove: e
            .remove
            .iter()
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| (format!("{field}.remove"), format!("{n:?} is not a header name")))
            })
            .collect::<Result<_, _>>()?,
    })
}

fn path_change(v: &serde_json::Value, field: &str) -> Result<Option<PathChange>, (String, String)> {
    if v.is_null() {
        return Ok(None);
    }
    let p: PathJson = serde_json::from_value(v.clone()).map_err(|e| (field.to_string(), e.to_string()))?;
    match (p.kind.as_str(), p.full, p.prefix) {
        ("ReplaceFullPath", Some(f), _) => Ok(Some(PathChange::Full(f))),
        ("ReplacePrefixMatch", _, Some(p)) => Ok(Some(PathChange::Prefix(p))),
        (kind, ..) => Err((format!("{field}.type"), format!("{kind} without its value"))),
    }
}

/// Parses a rule's `filters` (each serialised as the API has it). Errors
/// name the field below `filters[i]`. A rule may not combine a redirect
/// with a rewrite or with backends (rule 19): `has_backends` says whether
/// it has backendRefs.
pub fn parse(filters: &[serde_json::Value], has_backends: bool) -> Result<Vec<Filter>, (String, String)> {
    let mut out = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let at = |s: &str| format!("filters[{i}].{s}");
        let kind = f["type"].as_str().unwrap_or("");
        out.push(match kind {
            "RequestHeaderModifier" => {
                Filter::RequestHeaders(edits(&f["requestHeaderModifier"], &at("requestHeaderModifier"))?)
            }
            "ResponseHeaderModifier" => {
                Filter::ResponseHeaders(edits(&f["responseHeaderModifier"], &at("responseHeaderModifier"))?)
            }
            "RequestRedirect" => {
                let r = &f["requestRedirect"];
                let status = r["statusCode"].as_u64().unwrap_or(302);
                if ![301, 302, 303, 307, 308].contains(&status) {
                    return Err((
                        at("requestRedirect.statusCode"),
                        format!("{status} is not a redirect status (301, 302, 303, 307 or 308)"),
                    ));
                }
                Filter::Redirect {
                    scheme: r["scheme"].as_str().map(str::to_string),
                    hostname: r["hostname"].as_str().map(str::to_string),
                    port: r["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
                    path: path_change(&r["path"], &at("requestRedirect.path"))?,
                    status: status as u16,
                }
            }
            "URLRewrite" => {
                let r = &f["urlRewrite"];
                Filter::Rewrite {
                    hostname: r["hostname"].as_str().map(str::to_string),
                    path: path_change(&r["path"], &at("urlRewrite.path"))?,
                }
            }
            "RequestMirror" => {
                let r = &f["requestMirror"]["backendRef"];
                let kind_ok =
                    r["kind"].as_str().is_none_or(|k| k == "Service") && r["group"].as_str().is_none_or(str::is_empty);
                let port = r["port"].as_u64().and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0);
                let share = Share::parse(&f["requestMirror"]).map_err(|(field, why)| (at(field), why))?;
                match (kind_ok, r["name"].as_str(), port) {
                    (true, Some(name), Some(port)) => Filter::Mirror {
                        reference: (r["namespace"].as_str().map(str::to_string), name.to_string(), port),
                        backend: None,
                        share,
                    },
                    _ => return Err((at("requestMirror.backendRef"), "must name a Service and its port".into())),
                }
            }
            "CORS" => Filter::Cors(std::sync::Arc::new(
                super::cors::Cors::parse(&f["cors"]).map_err(|(field, why)| (at(&field), why))?,
            )),
            other => return Err((at("type"), format!("{other} is not supported yet"))),
        });
    }
    let redirect = out.iter().any(|f| matches!(f, Filter::Redirect { .. }));
    if redirect && out.iter().any(|f| matches!(f, Filter::Rewrite { .. })) {
        return Err(("filters".into(), "RequestRedirect and URLRewrite cannot be combined".into()));
    }
    if redirect && has_backends {
        return Err(("filters".into(), "a RequestRedirect rule cannot have backendRefs".into()));
    }
    Ok(out)
}

/// A Gateway API duration (GEP-2257: `1h`, `500ms`, `2m30s`): `None` for
/// zero, which means no timeout.
pub fn duration(s: &str) -> Result<Option<std::time::Duration>, String> {
    let bad = || format!("{s:?} is not a duration such as 10s, 500ms or 1m30s");
    let (mut total, mut rest) = (std::time::Duration::ZERO, s);
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (std::time::Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (std::time::Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (std::time::Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (std::time::Duration::from_secs(1), 1)
        } else {
            return Err(bad());
        };
        total += unit * u32::try_from(n).map_err(|_| bad())?;
        rest = &rest[len..];
    }
    Ok((!total.is_zero()).then_some(total))
}

/// `path` with the prefix the rule matched replaced (rule 17): `/foo`
/// replaced by `/` turns `/foo/bar` into `/bar`, never `//bar`.
pub fn replace_prefix(path: &str, matched: &str, replacement: &str) -> String {
    let prefix = matched.trim_end_matches('/');
    let rest = path.get(prefix.len()..).unwrap_or("");
    let out = format!("{}{rest}", replacement.trim_end_matches('/'));
    match out.as_str() {
        "" => "/".into(),
        o if !o.starts_with('/') => format!("/{o}"),
        _ => out,
    }
}

/// The new path for a path change, given the rule's path match.
pub fn changed_path(change: &PathChange, path: &str, matched: &PathMatch) -> String {
    match change {
        PathChange::Full(p) => p.clone(),
        PathChange::Prefix(p) => match matched {
            PathMatch::Prefix(m) => replace_prefix(path, m, p),
            // Only a PathPrefix match has a prefix to replace.
            PathMatch::Exact(_) | PathMatch::Regex(..) => p.clone(),
        },
    }
}

/// Where a request is served from, for redirects.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The request's host, without port.
    pub host: &'a str,
    /// The Gateway listener's port (80 or 443).
    pub listener_port: u16,
    /// The port devingress serves HTTP on (80, or a fallback such as 8080).
    pub http_port: u16,
    /// The port devingress serves HTTPS on, if it does.
    pub https_port: Option<u16>,
}

/// The `Location` of a redirect (rule 16).
pub fn redirect_location(
    scheme: Option<&str>,
    hostname: Option<&str>,
    port: Option<u16>,
    path: &str,
    query: Option<&str>,
    origin: Origin<'_>,
) -> String {
    let out_scheme = scheme.unwrap_or(origin.scheme);
    let host = hostname.unwrap_or(origin.host);
    let port = port.unwrap_or(match scheme {
        Some("https") => 443,
        Some(_) => 80,
        None => origin.listener_port,
    });
    // Ours: where devingress serves 80 or 443 on another port, name that one.
    let port = match (out_scheme, port) {
        ("http", 80) => origin.http_port,
        ("https", 443) => origin.https_port.unwrap_or(443),
        (_, p) => p,
    };
    let default = matches!((out_scheme, port), ("http", 80) | ("https", 443));
    let authority = if default { host.to_string() } else { format!("{host}:{port}") };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{out_scheme}://{authority}{path}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_as_the_gateway_api_writes_them() {
        use std::time::Duration;
        assert_eq!(duration("10s"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(duration("500ms"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(duration("1h2m3s4ms"), Ok(Some(Duration::from_millis(3_723_004))));
        assert_eq!(duration("0s"), Ok(None), "zero: no timeout");
        assert!(duration("10").is_err() && duration("1d").is_err() && duration("").is_err() && duration("s").is_err());
    }

    #[test]
    fn rule_17_prefix_rewrites_never_double_the_slash() {
        assert_eq!(replace_prefix("/foo/bar", "/foo", "/"), "/bar");
        assert_eq!(replace_prefix("/foo", "/foo", "/"), "/");
        assert_eq!(replace_prefix("/foo/bar", "/foo", "/xyz"), "/xyz/bar");
        assert_eq!(replace_prefix("/foo/bar", "/foo/", "/xyz/"), "/xyz/bar");
        assert_eq!(replace_prefix("/bar", "/", "/xyz"), "/xyz/bar");
        assert_eq!(replace_prefix("/foo/bar/baz", "/foo/bar", "/one"), "/one/baz");
    }

    #[test]
    fn rule_16_redirect_locations() {
        let origin =
            Origin { scheme: "http", host: "a.example.com", listener_port: 80, http_port: 80, https_port: Some(443) };
        let loc = |scheme, host, port, path| redirect_location(scheme, host, port, path, None, origin);
        assert_eq!(loc(Some("https"), None, None, "/x"), "https://a.example.com/x");
        assert_eq!(loc(None, Some("b.example.com"), None, "/x"), "http://b.example.com/x");
        assert_eq!(loc(None, None, Some(8080), "/x"), "http://a.example.com:8080/x");
        assert_eq!(loc(Some("https"), None, Some(8443), "/x"), "https://a.example.com:8443/x");
        assert_eq!(redirect_location(None, None, None, "/x", Some("q=1"), origin), "http://a.example.com/x?q=1");
        // Ours: 80 and 443 served on fallback ports are named.
        let fallback = Origin { http_port: 8080, https_port: Some(8443), ..origin };
        assert_eq!(redirect_location(Some("https"), None, None, "/x", None, fallback), "https://a.example.com:8443/x");
        assert_eq!(redirect_location(None, None, None, "/x", None, fallback), "http://a.example.com:8080/x");
    }

    #[test]
    fn filters_parse_and_rule_19_forbids_redirects_with_rewrites_or_backends() {
        let redirect = json!({"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}});
        let rewrite = json!({"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}});
        assert!(matches!(
            parse(std::slice::from_ref(&redirect), false).unwrap().as_slice(),
            [Filter::Redirect { scheme: Some(s), hostname: None, port: None, path: None, status: 301 }] if s == "https"
        ));
        assert_eq!(
            parse(&[redirect.clone(), rewrite.clone()], false).unwrap_err().1,
            "RequestRedirect and URLRewrite cannot be combined"
        );
        assert_eq!(
            parse(std::slice::from_ref(&redirect), true).unwrap_err().1,
            "a RequestRedirect rule cannot have backendRefs"
        );
        assert!(matches!(
            parse(&[rewrite], true).unwrap().as_slice(),
            [Filter::Rewrite { hostname: None, path: Some(PathChange::Prefix(p)) }] if p == "/v2"
        ));
        let extension = json!({"type": "ExtensionRef", "extensionRef": {"group": "x.test", "kind": "K", "name": "n"}});
        assert_eq!(parse(&[extension], true).unwrap_err().0, "filters[0].type");
        let cors = json!({"type": "CORS", "cors": {"allowOrigins": ["https://a.test"]}});
        assert!(matches!(parse(&[cors], true).unwrap().as_slice(), [Filter::Cors(_)]));
        let bad_cors = json!({"type": "CORS", "cors": {"allowOrigins": ["a.test"]}});
        assert_eq!(parse(&[bad_cors], true).unwrap_err().0, "filters[0].cors.allowOrigins");
        let mirror = json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "s"}}});
        assert_eq!(parse(&[mirror], true).unwrap_err().0, "filters[0].requestMirror.backendRef");
        let both = json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "s", "port": 80},
                          "percent": 10, "fraction": {"numerator": 1}}});
        assert_eq!(parse(&[both], true).unwrap_err().0, "filters[0].requestMirror");
        let over = json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "s", "port": 80},
                          "fraction": {"numerator": 3, "denominator": 2}}});
        assert_eq!(parse(&[over], true).unwrap_err().0, "filters[0].requestMirror.fraction");
        for status in [303, 307, 308] {
            let ok = json!({"type": "RequestRedirect", "requestRedirect": {"statusCode": status}});
            assert!(matches!(parse(&[ok], false).unwrap()[..], [Filter::Redirect { status: s, .. }] if s == status));
        }
        let bad = json!({"type": "RequestRedirect", "requestRedirect": {"statusCode": 305}});
        assert_eq!(parse(&[bad], false).unwrap_err().0, "filters[0].requestRedirect.statusCode");
    }

    #[test]
    fn header_edits_set_add_and_remove() {
        let f = parse(
            &[json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {
                "set": [{"name": "X-Set", "value": "new"}], "add": [{"name": "x-add", "value": "two"}], "remove": ["x-gone"]}})],
            true,
        )
        .unwrap();
        let Filter::RequestHeaders(e) = &f[0] else { panic!("{f:?}") };
        let mut h = HeaderMap::new();
        h.insert("x-set", "old".parse().unwrap());
        h.insert("x-add", "one".parse().unwrap());
        h.insert("x-gone", "bye".parse().unwrap());
        e.apply(&mut h);
        assert_eq!(h["x-set"], "new");
        assert_eq!(h.get_all("x-add").iter().collect::<Vec<_>>(), ["one", "two"]);
        assert!(!h.contains_key("x-gone"));
    }

    #[test]
    fn a_mirror_share_copies_exactly_its_part_of_every_run_of_requests() {
        let copies = |mirror: Value, n: usize| {
            let share = Share::parse(&mirror).unwrap();
            (0..n).filter(|_| share.take()).count()
        };
        assert_eq!(copies(json!({}), 10), 10, "neither field: every request");
        assert_eq!(copies(json!({"percent": 25}), 100), 25);
        assert_eq!(copies(json!({"percent": 0}), 100), 0);
        assert_eq!(copies(json!({"fraction": {"numerator": 1, "denominator": 3}}), 300), 100);
        assert_eq!(copies(json!({"fraction": {"numerator": 33}}), 1000), 330, "the denominator defaults to 100");
        // Spread out, not bunched: one copy in each run of four.
        let share = Share::parse(&json!({"percent": 25})).unwrap();
        let taken: Vec<bool> = (0..8).map(|_| share.take()).collect();
        assert_eq!(taken.iter().filter(|t| **t).count(), 2);
        assert_eq!(taken[..4].iter().filter(|t| **t).count(), 1);
        assert!(Share::parse(&json!({"percent": 101})).is_err());
        assert!(Share::parse(&json!({"fraction": {"numerator": 1, "denominator": 0}})).is_err());
    }
}
