//! Header rewriting between client and pod (rule 20): hop-by-hop headers
//! removed, forwarding headers set, upgrades kept.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that belong to one connection and must not be forwarded (RFC 9110 §7.6.1).
/// Parsed once, not per request.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The `Upgrade` value of a request or response that asks to switch
/// protocols (WebSocket and others), if it does.
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if asks { headers.get(header::UPGRADE).cloned() } else { None }
}

/// Removes hop-by-hop headers, including those named in `Connection`. When
/// `upgrade` is given, `Connection: upgrade` and `Upgrade` are put back so
/// the protocol switch reaches the other side.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(proto) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto);
    }
}

/// What the proxy knows about the client side of a request.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client's address, as [`client_ip`] writes it once per connection.
    pub ip: HeaderValue,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The port the client connected to.
    pub port: u16,
    /// The host the client asked for, as sent.
    pub host: Option<HeaderValue>,
}

/// A client's address as a header value. Made once per connection: each
/// request's forwarding headers then share it instead of formatting it.
pub fn client_ip(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(ip.to_string())).expect("an IP address is a valid header value")
}

/// Sets `X-Forwarded-For` (appended), `X-Forwarded-Proto`, `X-Forwarded-Host`,
/// `X-Forwarded-Port` and `X-Real-IP`.
pub fn set_forwarded(headers: &mut HeaderMap, client: &ClientInfo) {
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => {
            let ip = client.ip.to_str().unwrap_or_default();
            HeaderValue::from_str(&format!("{prev}, {ip}")).ok()
        }
        _ => Some(client.ip.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_REAL_IP.clone(), client.ip.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(client.proto));
    headers.insert(X_FORWARDED_PORT.clone(), HeaderValue::from(client.port));
    match &client.host {
        Some(h) => headers.insert(X_FORWARDED_HOST.clone(), h.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
            ("host", "a.test"),
        ]);
        strip_hop_by_hop(&mut h, None);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str().to_string()).collect();
        names.sort();
        assert_eq!(names, ["accept", "host"]);
    }

    #[test]
    fn upgrade_survives_stripping() {
        let mut h = map(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "k")]);
        let up = upgrade_protocol(&h);
        assert_eq!(up.as_ref().unwrap(), "websocket");
        strip_hop_by_hop(&mut h, up);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["sec-websocket-key"], "k");
        assert!(upgrade_protocol(&map(&[("upgrade", "websocket")])).is_none());
    }

    #[test]
    fn forwarded_headers() {
        let client = ClientInfo {
            ip: client_ip("127.0.0.1".parse().unwrap()),
            proto: "http",
            port: 8080,
            host: Some(HeaderValue::from_static("a.test")),
        };
        let mut h = map(&[("x-forwarded-for", "10.1.1.1"), ("x-real-ip", "6.6.6.6"), ("x-forwarded-proto", "https")]);
        set_forwarded(&mut h, &client);
        assert_eq!(h["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
        assert_eq!(h["x-real-ip"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-port"], "8080");
        assert_eq!(h["x-forwarded-host"], "a.test");
        let mut h = HeaderMap::new();
        set_forwarded(&mut h, &client);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        let v6 = ClientInfo { ip: client_ip("::1".parse().unwrap()), ..client };
        let mut h = map(&[("x-forwarded-for", "10.1.1.1")]);
        set_forwarded(&mut h, &v6);
        assert_eq!(h["x-forwarded-for"], "10.1.1.1, ::1");
        assert_eq!(h["x-real-ip"], "::1");
    }
}
