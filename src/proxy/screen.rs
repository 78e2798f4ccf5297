//! Requests refused before they are routed. devingress is a gateway to the
//! routing table's backends, never a forward proxy, and a request whose host
//! or framing two HTTP parsers could read differently never reaches a pod
//! (RFC 9112 §3.2, §6.3, §7.1).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::ProxyBody;
use super::pages;

/// The page that refuses `req`, or `None` when it may be routed.
pub fn refuse<B>(req: &Request<B>) -> Option<Response<ProxyBody>> {
    if req.method() == Method::CONNECT {
        let mut res = pages::page(
            StatusCode::METHOD_NOT_ALLOWED,
            "devingress is not a forward proxy: CONNECT is refused.",
            "It answers only for the hosts its routes serve; `devingress routes` lists them.",
        );
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
        return Some(res);
    }
    let hosts: Vec<&HeaderValue> = req.headers().get_all(header::HOST).iter().collect();
    if hosts.len() > 1 {
        return Some(bad_request(
            &format!("The request has {} Host headers.", hosts.len()),
            "HTTP/1.1 allows exactly one (RFC 9112 §3.2): with more, devingress and the pod could each pick another.",
        ));
    }
    match hosts.first() {
        Some(value) if !value.is_empty() && !is_authority(value) => Some(bad_request(
            &format!("The Host header {:?} is not a host name.", String::from_utf8_lossy(value.as_bytes())),
            "A Host header is a host name or address, with an optional port (RFC 9110 §7.2).",
        )),
        None if req.version() == Version::HTTP_11 && req.uri().authority().is_none() => Some(bad_request(
            "The request has no Host header.",
            "HTTP/1.1 requires one (RFC 9112 §3.2); it names the host to route to.",
        )),
        _ => None,
    }
}

fn is_authority(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    // `Authority` also takes `user@host` and a port that is no number.
    let after_host = bytes.iter().rposition(|&b| b == b']').map_or(bytes, |i| &bytes[i + 1..]);
    let port_ok = match after_host.iter().rposition(|&b| b == b':') {
        Some(i) => after_host[i + 1..].iter().all(u8::is_ascii_digit),
        None => true,
    };
    port_ok && !bytes.contains(&b'@') && Authority::try_from(bytes).is_ok()
}

fn bad_request(headline: &str, details: &str) -> Response<ProxyBody> {
    let mut res = pages::page(StatusCode::BAD_REQUEST, headline, details);
    // The connection's framing is in doubt: do not read another request from it.
    res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// 400: the client's request body is malformed or was cut short.
pub fn bad_body(why: &str) -> Response<ProxyBody> {
    bad_request("The request body could not be read.", why)
}

/// How long a chunked request body may take to show its first chunk before
/// the request goes upstream without that check.
pub const FIRST_CHUNK_WAIT: Duration = Duration::from_millis(200);

/// The body of an HTTP/1.1 request, checked at its start: a chunked body
/// whose first chunk has arrived is read up to it before anything goes
/// upstream, so that a malformed chunk size (a smuggling attempt, mostly)
/// gets 400 instead of a request the pod has begun. A body that does not
/// start within [`FIRST_CHUNK_WAIT`] is passed on unchecked: a chunk size that
/// goes wrong later cuts the upstream request short, which the pod never
/// reads as complete.
pub async fn checked_body(req_version: Version, body: Incoming) -> Result<Resumed, Response<ProxyBody>> {
    let chunked = req_version == Version::HTTP_11 && !body.is_end_stream() && body.size_hint().exact().is_none();
    let mut resumed = Resumed { first: None, rest: body };
    if !chunked {
        return Ok(resumed);
    }
    let first = std::future::poll_fn(|cx| Pin::new(&mut resumed.rest).poll_frame(cx));
    match tokio::time::timeout(FIRST_CHUNK_WAIT, first).await {
        Ok(Some(Err(e))) => Err(bad_body(&e.to_string())),
        Ok(Some(Ok(frame))) => {
            resumed.first = Some(frame);
            Ok(resumed)
        }
        Ok(None) | Err(_) => Ok(resumed),
    }
}

/// A request body with its first frame read already.
pub struct Resumed {
    first: Option<Frame<Bytes>>,
    rest: Incoming,
}

impl Body for Resumed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(frame) = self.first.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
        if let Some(data) = self.first.as_ref().and_then(Frame::data_ref) {
            let n = data.len() as u64;
            hint.set_lower(hint.lower() + n);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + n);
            }
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, version: Version, uri: &str, hosts: &[&[u8]]) -> Request<()> {
        let mut b = Request::builder().method(method).version(version).uri(uri);
        for h in hosts {
            b = b.header(header::HOST, HeaderValue::from_bytes(h).unwrap());
        }
        b.body(()).unwrap()
    }

    fn status(r: Option<Response<ProxyBody>>) -> Option<u16> {
        r.map(|r| r.status().as_u16())
    }

    #[test]
    fn one_good_host_passes() {
        for host in [&b"alpaca.example.com"[..], b"alpaca.example.com:8080", b"127.0.0.1", b"[::1]:80", b""] {
            assert_eq!(status(refuse(&req(Method::GET, Version::HTTP_11, "/", &[host]))), None, "{host:?}");
        }
        // HTTP/1.0 needs no Host; HTTP/2 names the host in :authority.
        assert_eq!(status(refuse(&req(Method::GET, Version::HTTP_10, "/", &[]))), None);
        assert_eq!(status(refuse(&req(Method::GET, Version::HTTP_2, "http://a.example/", &[]))), None);
        // The absolute form names the host in the target.
        assert_eq!(status(refuse(&req(Method::GET, Version::HTTP_11, "http://a.example/", &[]))), None);
    }

    #[test]
    fn ambiguous_or_missing_hosts_get_400() {
        let two = req(Method::GET, Version::HTTP_11, "/", &[b"a.example", b"b.example"]);
        assert_eq!(status(refuse(&two)), Some(400));
        let same_twice = req(Method::GET, Version::HTTP_11, "/", &[b"a.example", b"a.example"]);
        assert_eq!(status(refuse(&same_twice)), Some(400));
        assert_eq!(status(refuse(&req(Method::GET, Version::HTTP_11, "/", &[]))), Some(400));
        for bad in [&b"a.example/x"[..], b"user@a.example", b"a b", b"a.example:port"] {
            assert_eq!(status(refuse(&req(Method::GET, Version::HTTP_11, "/", &[bad]))), Some(400), "{bad:?}");
        }
        let r = refuse(&two).unwrap();
        assert_eq!(r.headers()[header::CONNECTION], "close");
    }

    #[test]
    fn connect_is_refused() {
        let r = refuse(&req(Method::CONNECT, Version::HTTP_11, "other.example:443", &[b"other.example:443"]));
        assert_eq!(status(r), Some(405));
    }
}
