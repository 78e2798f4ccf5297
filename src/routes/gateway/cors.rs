//! The `CORS` filter (pure): which origins a rule lets in, and the headers
//! of its answers, as the HTTPRoute API describes them.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! is answered by devingress itself, never by the pod: 204 with the
//! `Access-Control-Allow-*` headers when the origin is allowed, 403 without
//! them when it is not. Any other request with an allowed `Origin` goes on,
//! and its answer gets `Access-Control-Allow-Origin` (and
//! `-Allow-Credentials`, `-Expose-Headers`). With `allowCredentials`, no
//! wildcard is ever answered: the request's own origin, method or headers
//! are echoed instead.

use http::header::{self, HeaderMap, HeaderValue};
use serde::Deserialize;

/// One entry of `allowOrigins`: `<scheme>://<host>(:<port>)`, the host
/// possibly starting with `*` (any number of labels), or `*` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginPattern {
    /// `*`: every origin.
    Any,
    /// A scheme, a host (`*.example.com` keeps its `.example.com` suffix
    /// as `wildcard`), and the port (the scheme's default when left out).
    Origin {
        /// `http` or `https`.
        scheme: String,
        /// The host, lower-cased; for a wildcard, the part after `*`.
        host: String,
        /// Whether `host` is a suffix after `*`.
        wildcard: bool,
        /// The port.
        port: u16,
    },
}

/// An origin split into scheme, host and port (the default port filled in).
fn split_origin(origin: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = match rest.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
        Some((h, Ok(p))) => (h, p),
        _ => (rest, default),
    };
    if host.is_empty() || host.contains('/') {
        return None;
    }
    Some((scheme, host.to_ascii_lowercase(), port))
}

impl OriginPattern {
    fn parse(raw: &str) -> Option<Self> {
        if raw == "*" {
            return Some(OriginPattern::Any);
        }
        let (scheme, host, port) = split_origin(raw)?;
        let (host, wildcard) = match host.strip_prefix('*') {
            Some(suffix) => (suffix.to_string(), true),
            None => (host, false),
        };
        if host.contains('*') {
            return None;
        }
        Some(OriginPattern::Origin { scheme, host, wildcard, port })
    }

    fn matches(&self, origin: &str) -> bool {
        let OriginPattern::Origin { scheme, host, wildcard, port } = self else { return true };
        let Some((s, h, p)) = split_origin(origin) else { return false };
        s == *scheme
            && p == *port
            && if *wildcard { h.ends_with(host.as_str()) && h.len() > host.len() } else { h == *host }
    }
}

/// A rule's `CORS` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<OriginPattern>,
    methods: Vec<String>,
    headers: Vec<String>,
    expose: Vec<String>,
    credentials: bool,
    max_age: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CorsJson {
    #[serde(default)]
    allow_origins: Vec<String>,
    #[serde(default)]
    allow_methods: Vec<String>,
    #[serde(default)]
    allow_headers: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    #[serde(default)]
    allow_credentials: bool,
    max_age: Option<u32>,
}

/// What a request gets from a rule's CORS filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsAnswer {
    /// Not a cross-origin request (no `Origin`): nothing to do.
    None,
    /// A preflight, answered here: 204 with these headers when the origin
    /// is allowed, else 403 without them.
    Preflight(Option<HeaderMap>),
    /// A request that goes on; its answer gets these headers (none when
    /// the origin is not allowed).
    Actual(Option<HeaderMap>),
}

impl Cors {
    /// The filter's `cors` object, or why it cannot be used: `(field, why)`.
    pub fn parse(v: &serde_json::Value) -> Result<Self, (String, String)> {
        let c: CorsJson = serde_json::from_value(v.clone()).map_err(|e| ("cors".to_string(), e.to_string()))?;
        let origins = c
            .allow_origins
            .iter()
            .map(|o| {
                OriginPattern::parse(o).ok_or_else(|| {
                    ("cors.allowOrigins".to_string(), format!("{o:?} is not <scheme>://<host>(:<port>) or *"))
                })
            })
            .collect::<Result<_, _>>()?;
        for (field, names) in [("allowHeaders", &c.allow_headers), ("exposeHeaders", &c.expose_headers)] {
            if let Some(bad) =
                names.iter().find(|n| n.as_str() != "*" && header::HeaderName::from_bytes(n.as_bytes()).is_err())
            {
                return Err((format!("cors.{field}"), format!("{bad:?} is not a header name")));
            }
        }
        Ok(Cors {
            origins,
            methods: c.allow_methods,
            headers: c.allow_headers,
            expose: c.expose_headers,
            credentials: c.allow_credentials,
            max_age: c.max_age.unwrap_or(5),
        })
    }

    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|p| p.matches(origin))
    }

    /// What a request with `method` and `headers` gets.
    pub fn answer(&self, method: &str, headers: &HeaderMap) -> CorsAnswer {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
            return CorsAnswer::None;
        };
        let asked_method = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|m| m.to_str().ok());
        let preflight = method == "OPTIONS" && asked_method.is_some();
        if !self.allows(origin) {
            return if preflight { CorsAnswer::Preflight(None) } else { CorsAnswer::Actual(None) };
        }
        let mut out = HeaderMap::new();
        let wildcard_origin = self.origins.contains(&OriginPattern::Any) && !self.credentials;
        put(&mut out, header::ACCESS_CONTROL_ALLOW_ORIGIN, if wildcard_origin { "*" } else { origin });
        if !wildcard_origin {
            out.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if self.credentials {
            out.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        // With credentials, `*` may not be answered, and there is no list to echo.
        let exposable = !(self.credentials && self.expose.iter().any(|h| h == "*"));
        if exposable && !self.expose.is_empty() {
            put(&mut out, header::ACCESS_CONTROL_EXPOSE_HEADERS, &self.expose.join(", "));
        }
        if !preflight {
            return CorsAnswer::Actual(Some(out));
        }
        if let Some(asked) = asked_method.filter(|_| !self.methods.is_empty()) {
            let methods = if self.methods.iter().any(|m| m == "*") {
                if self.credentials { asked.to_string() } else { "*".to_string() }
            } else {
                self.methods.join(", ")
            };
            put(&mut out, header::ACCESS_CONTROL_ALLOW_METHODS, &methods);
        }
        let asked_headers = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|h| h.to_str().ok());
        if let Some(asked) = asked_headers.filter(|_| !self.headers.is_empty()) {
            let allowed = if self.headers.iter().any(|h| h == "*") {
                if self.credentials { asked.to_string() } else { "*".to_string() }
            } else {
                self.headers.join(", ")
            };
            put(&mut out, header::ACCESS_CONTROL_ALLOW_HEADERS, &allowed);
        }
        put(&mut out, header::ACCESS_CONTROL_MAX_AGE, &self.max_age.to_string());
        CorsAnswer::Preflight(Some(out))
    }
}

fn put(map: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        map.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(method: &str, pairs: &[(&str, &str)]) -> (String, HeaderMap) {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        (method.to_string(), h)
    }

    fn header(a: &CorsAnswer, name: &str) -> Option<String> {
        match a {
            CorsAnswer::Preflight(Some(h)) | CorsAnswer::Actual(Some(h)) => {
                h.get(name).map(|v| v.to_str().unwrap().to_string())
            }
            _ => None,
        }
    }

    /// The conformance test HTTPRouteCORS's first rule.
    fn cors_1() -> Cors {
        Cors::parse(&json!({"allowOrigins": ["https://www.foo.com", "https://*.bar.com"],
            "allowMethods": ["GET", "OPTIONS"], "allowHeaders": ["x-header-1", "x-header-2"],
            "exposeHeaders": ["x-header-3", "x-header-4"], "allowCredentials": true, "maxAge": 3600}))
        .unwrap()
    }

    #[test]
    fn preflights_from_allowed_origins_get_every_header_and_others_none() {
        let c = cors_1();
        for origin in
            ["https://www.foo.com", "https://www.bar.com", "https://xpto.www.bar.com", "https://www.foo.com:443"]
        {
            let (m, h) = request(
                "OPTIONS",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "x-header-1, x-header-2"),
                ],
            );
            let a = c.answer(&m, &h);
            assert!(matches!(a, CorsAnswer::Preflight(Some(_))), "{origin}: {a:?}");
            assert_eq!(header(&a, "access-control-allow-origin").as_deref(), Some(origin));
            assert_eq!(header(&a, "access-control-allow-methods").as_deref(), Some("GET, OPTIONS"));
            assert_eq!(header(&a, "access-control-allow-headers").as_deref(), Some("x-header-1, x-header-2"));
            assert_eq!(header(&a, "access-control-expose-headers").as_deref(), Some("x-header-3, x-header-4"));
            assert_eq!(header(&a, "access-control-max-age").as_deref(), Some("3600"));
            assert_eq!(header(&a, "access-control-allow-credentials").as_deref(), Some("true"));
        }
        for origin in ["https://foobar.com", "http://www.foo.com", "https://www.foo.com:8443", "https://bar.com"] {
            let (m, h) = request("OPTIONS", &[("origin", origin), ("access-control-request-method", "GET")]);
            assert_eq!(c.answer(&m, &h), CorsAnswer::Preflight(None), "{origin}");
        }
    }

    #[test]
    fn simple_requests_get_the_origin_echoed_and_nothing_without_an_origin() {
        let c = cors_1();
        let (m, h) = request("GET", &[("origin", "https://www.bar.com")]);
        let a = c.answer(&m, &h);
        assert!(matches!(a, CorsAnswer::Actual(Some(_))));
        assert_eq!(header(&a, "access-control-allow-origin").as_deref(), Some("https://www.bar.com"));
        assert_eq!(header(&a, "access-control-allow-methods"), None, "only preflights list methods");
        let (m, h) = request("GET", &[("origin", "https://foobar.com")]);
        assert_eq!(c.answer(&m, &h), CorsAnswer::Actual(None));
        let (m, h) = request("OPTIONS", &[]);
        assert_eq!(c.answer(&m, &h), CorsAnswer::None);
    }

    #[test]
    fn wildcards_are_answered_as_wildcards_unless_credentials_are_allowed() {
        let open = Cors::parse(&json!({"allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"]})).unwrap();
        let (m, h) = request(
            "OPTIONS",
            &[
                ("origin", "https://a.test"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "x-a"),
            ],
        );
        let a = open.answer(&m, &h);
        assert_eq!(header(&a, "access-control-allow-origin").as_deref(), Some("*"));
        assert_eq!(header(&a, "access-control-allow-methods").as_deref(), Some("*"));
        assert_eq!(header(&a, "access-control-allow-headers").as_deref(), Some("*"));
        assert_eq!(header(&a, "access-control-max-age").as_deref(), Some("5"), "the API's default");
        let with_credentials =
            Cors::parse(&json!({"allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"],
            "exposeHeaders": ["*"], "allowCredentials": true}))
            .unwrap();
        let a = with_credentials.answer(&m, &h);
        assert_eq!(header(&a, "access-control-allow-origin").as_deref(), Some("https://a.test"));
        assert_eq!(header(&a, "access-control-allow-methods").as_deref(), Some("POST"));
        assert_eq!(header(&a, "access-control-allow-headers").as_deref(), Some("x-a"));
        assert_eq!(header(&a, "access-control-expose-headers"), None);
    }

    #[test]
    fn bad_origins_and_header_names_name_their_field() {
        assert_eq!(Cors::parse(&json!({"allowOrigins": ["ftp://a.test"]})).unwrap_err().0, "cors.allowOrigins");
        assert_eq!(Cors::parse(&json!({"allowOrigins": ["https://a.*.test"]})).unwrap_err().0, "cors.allowOrigins");
        assert_eq!(Cors::parse(&json!({"allowHeaders": ["bad header"]})).unwrap_err().0, "cors.allowHeaders");
    }
}
