//! Pod port-forward through the API server, as byte streams that the
//! upstream pool runs HTTP over and the load balancer copies TCP over.
//!
//! Two protocols. The default is SPDY/3.1, as kubectl speaks it: one
//! upgrade per pod carries many connections, each a pair of streams
//! ([`super::spdy`]). Fewer tunnels cost the API server and the kubelet
//! less per request when many connections are open (see the README's
//! benchmark). The session goes straight onto the connection after
//! `Upgrade: SPDY/3.1` (kubectl before 1.31, or with
//! `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`), which spares both sides the
//! WebSocket framing; where the API server or a proxy in front of it
//! turns that down, in a WebSocket (`SPDY/3.1+portforward.k8s.io`,
//! KEP-4006, kubectl's default since 1.31). An API server that turns both
//! down gets `v4.channel.k8s.io`: one WebSocket, and so one upgrade, per
//! connection. devingress says so once at each step.
//!
//! The upgrade request is built here and sent through the kube client;
//! the WebSocket handshake around it is ours rather than
//! `Client::connect`'s so that the WebSocket gets a read buffer sized for
//! this traffic ([`ws_config`]). The v4 framing on top is ours too:
//! kube-rs's `Portforwarder` moves every chunk through a background task,
//! two channels and a duplex pipe, and sends at most 4 KiB per frame, which
//! measured at ~35 MB/s for uploads; [`PortForwardStream`] reads and writes
//! frames directly, in the task that uses the stream, up to 64 KiB a frame.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures::{Sink, Stream};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use kube::Client;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use tokio::sync::Semaphore;

use super::spdy::{Session, SpdyStream, TUNNEL_PROTOCOL, WsBytes, poll_close_ws, read_pending, ws_io};
use crate::routes::PodEndpoint;

/// Connections one SPDY session carries before another is opened to the
/// same pod. At 256 clients on one pod, one session for all and four of
/// 64 measured the same in the proxy benchmark; several keep one slow
/// connection from holding up all of a pod's.
const STREAMS_PER_SESSION: usize = 64;

/// The largest payload written in one frame.
const MAX_FRAME: usize = 64 * 1024;

/// Why a port-forward could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PortForwardError {
    /// The request could not be built (a bug, not a user error).
    #[error("cannot build the port-forward request for pod {endpoint}: {source}")]
    Request {
        /// The pod endpoint.
        endpoint: String,
        /// What kube said.
        #[source]
        source: kube::core::request::Error,
    },
    /// The API server refused or failed the upgrade (pod gone, forbidden, unreachable).
    #[error("port-forward to pod {endpoint} failed: {source}")]
    Open {
        /// The pod endpoint.
        endpoint: String,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
    /// A new SPDY session ended before its first stream opened.
    #[error("port-forward to pod {endpoint} failed: {source}")]
    Session {
        /// The pod endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: super::spdy::SessionError,
    },
}

/// Which port-forward protocol a connection runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortForwardProtocol {
    /// SPDY/3.1 straight after an HTTP/1.1 upgrade, many connections per
    /// upgrade; SPDY in a WebSocket when the API server (or a proxy in
    /// front of it) turns that down, and `v4` when it turns both down.
    Auto,
    /// SPDY/3.1 in a WebSocket (kubectl's default since 1.31), `v4` when
    /// the API server lacks it.
    WebSocket,
    /// `v4.channel.k8s.io` only: one WebSocket per connection.
    V4,
}

/// The SPDY ways of port-forwarding, from the one tried first; past the
/// last is `v4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// `Upgrade: SPDY/3.1`: the session's frames straight on the connection.
    Upgrade = 0,
    /// The session's frames in binary WebSocket messages (KEP-4006).
    WebSocket = 1,
}

/// [`PortForwarder::way`] once both SPDY ways are turned down.
const NO_SPDY: u8 = 2;

impl Way {
    fn from_u8(n: u8) -> Option<Way> {
        match n {
            0 => Some(Way::Upgrade),
            1 => Some(Way::WebSocket),
            _ => None,
        }
    }

    /// What the log says when this way is turned down.
    fn fallback(self) -> &'static str {
        match self {
            Way::Upgrade => "SPDY in a WebSocket (SPDY/3.1+portforward.k8s.io)",
            Way::WebSocket => "one WebSocket per connection (v4.channel.k8s.io)",
        }
    }
}

/// The SPDY sessions open to one pod.
type PodSessions = Arc<tokio::sync::Mutex<Vec<Session>>>;

/// Opens port-forward streams with one kube client. Cheap to clone.
#[derive(Clone)]
pub struct PortForwarder {
    client: Client,
    /// The SPDY way tried now (a [`Way`]; [`NO_SPDY`] once the API server
    /// has turned both down). It only moves on.
    way: Arc<AtomicU8>,
    /// SPDY sessions by `(namespace, pod)`.
    sessions: Arc<std::sync::Mutex<HashMap<(String, String), PodSessions>>>,
    /// Caps the upgrades under way at once.
    upgrades: Arc<Semaphore>,
    /// Share SPDY sessions between connections (off with `--no-pool`:
    /// every connection then pays an upgrade of its own).
    share: bool,
}

impl PortForwarder {
    /// An opener that uses `client`, with the pool's protocol, cap on
    /// upgrades under way, and sharing (off with `--no-pool`).
    pub fn new(client: Client, settings: &super::PoolSettings) -> Self {
        PortForwarder {
            client,
            way: Arc::new(AtomicU8::new(match settings.protocol {
                PortForwardProtocol::Auto => Way::Upgrade as u8,
                PortForwardProtocol::WebSocket => Way::WebSocket as u8,
                PortForwardProtocol::V4 => NO_SPDY,
            })),
            sessions: Arc::default(),
            upgrades: Arc::new(Semaphore::new(settings.max_concurrent_upgrades.max(1))),
            share: settings.enabled,
        }
    }

    /// Opens one connection to the pod's port: a stream pair in a SPDY
    /// session to the pod (opening the session when there is none with
    /// room), or a `v4` WebSocket of its own.
    pub async fn open(&self, ep: &PodEndpoint) -> Result<Tunnel, PortForwardError> {
        while let Some(way) = Way::from_u8(self.way.load(Ordering::Relaxed)) {
            match self.open_spdy(ep, way).await {
                Ok(stream) => return Ok(Tunnel::Spdy(stream)),
                Err(Spdy::Failed(e)) => return Err(e),
                Err(Spdy::Unsupported(why)) => {
                    let next = way as u8 + 1;
                    if self.way.compare_exchange(way as u8, next, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                        let what = match way {
                            Way::Upgrade => "port-forward over an `Upgrade: SPDY/3.1`",
                            Way::WebSocket => {
                                "port-forward over SPDY in a WebSocket (it needs Kubernetes 1.31 or later)"
                            }
                        };
                        tracing::info!("the API server does not take {what} ({why}): using {}", way.fallback());
                    }
                }
            }
        }
        let req = kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", ep.namespace))
            .portforward(&ep.pod, &[ep.port])
            .map_err(|source| PortForwardError::Request { endpoint: ep.to_string(), source })?;
        let ws = {
            let _permit = self.upgrades.acquire().await.expect("semaphore never closed");
            self.upgrade(req, V4).await.map_err(|source| PortForwardError::Open { endpoint: ep.to_string(), source })?
        };
        tracing::debug!(endpoint = %ep, "port-forward opened");
        Ok(Tunnel::V4(Box::new(PortForwardStream::new(ws))))
    }

    /// A stream pair in a SPDY session to the pod, opening the session
    /// the `way` given when none has room.
    async fn open_spdy(&self, ep: &PodEndpoint, way: Way) -> Result<SpdyStream, Spdy> {
        let pod = {
            let mut all = self.sessions.lock().expect("sessions lock");
            all.entry((ep.namespace.clone(), ep.pod.clone())).or_default().clone()
        };
        // One opener at a time per pod: the others then share its session.
        let mut sessions = pod.lock().await;
        if self.way.load(Ordering::Relaxed) != way as u8 {
            return Err(Spdy::Unsupported("turned down before".into()));
        }
        sessions.retain(Session::is_usable);
        let roomiest = sessions.iter().filter(|s| s.streams() < STREAMS_PER_SESSION).min_by_key(|s| s.streams());
        if let Some(stream) = roomiest.filter(|_| self.share).and_then(|s| s.open(ep.port).ok()) {
            return Ok(stream);
        }
        let path = format!("/api/v1/namespaces/{}/pods/{}/portforward", ep.namespace, ep.pod);
        let label = format!("{}/{}", ep.namespace, ep.pod);
        let opened = {
            let _permit = self.upgrades.acquire().await.expect("semaphore never closed");
            match way {
                Way::Upgrade => self.upgrade_spdy(path).await.map(|io| Session::start(io, label.clone())),
                Way::WebSocket => {
                    let req = http::Request::get(path).body(Vec::new()).expect("a valid request");
                    self.upgrade(req, TUNNEL_PROTOCOL).await.map(|ws| Session::start(WsBytes::new(ws), label.clone()))
                }
            }
        };
        let session = opened.map_err(|source| match &source {
            kube::Error::UpgradeConnection(kube::client::UpgradeConnectionError::SecWebSocketProtocolMismatch) => {
                Spdy::Unsupported("the upgrade chose another subprotocol".into())
            }
            kube::Error::UpgradeConnection(kube::client::UpgradeConnectionError::ProtocolSwitch(code)) => {
                Spdy::Unsupported(format!("it answered {code}"))
            }
            kube::Error::Api(status) if turned_down(way, status.code) => Spdy::Unsupported(status.message.clone()),
            _ => Spdy::Failed(PortForwardError::Open { endpoint: ep.to_string(), source }),
        })?;
        tracing::debug!(pod = %label, ?way, "port-forward session opened");
        let stream = session
            .open(ep.port)
            .map_err(|e| Spdy::Failed(PortForwardError::Session { endpoint: ep.to_string(), source: e }))?;
        if self.share {
            sessions.push(session);
        }
        Ok(stream)
    }

    /// Lets go of the SPDY sessions to pods not in `live` (they end once
    /// their open connections close).
    pub fn keep_pods(&self, live: &std::collections::HashSet<(String, String)>) {
        self.sessions.lock().expect("sessions lock").retain(|pod, _| live.contains(pod));
    }

    /// Sends `req` as a WebSocket upgrade offering `protocol`, and checks
    /// the answer as RFC 6455 says: 101, the accept key, the protocol. An
    /// error answer becomes the API's `Status`, as the kube client reports it.
    async fn upgrade(
        &self,
        req: http::Request<Vec<u8>>,
        protocol: &'static str,
    ) -> Result<WebSocketStream<TokioIo<Upgraded>>, kube::Error> {
        use http::header::{self, HeaderValue};
        use kube::client::UpgradeConnectionError as Upgrade;
        let key = tungstenite::handshake::client::generate_key();
        let (mut parts, body) = req.into_parts();
        let h = &mut parts.headers;
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        h.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_str(&key).expect("a base64 key"));
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
        let res = self.send_upgrade(http::Request::from_parts(parts, body)).await?;
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        if res.headers().get(header::SEC_WEBSOCKET_ACCEPT).map(HeaderValue::as_bytes) != Some(accept.as_bytes()) {
            return Err(kube::Error::UpgradeConnection(Upgrade::SecWebSocketAcceptKeyMismatch));
        }
        if res.headers().get(header::SEC_WEBSOCKET_PROTOCOL).map(HeaderValue::as_bytes) != Some(protocol.as_bytes()) {
            return Err(kube::Error::UpgradeConnection(Upgrade::SecWebSocketProtocolMismatch));
        }
        let upgraded =
            hyper::upgrade::on(res).await.map_err(|e| kube::Error::UpgradeConnection(Upgrade::GetPendingUpgrade(e)))?;
        Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(ws_config())).await)
    }

    /// Upgrades a POST to `path` to SPDY/3.1, as kubectl does with
    /// `KUBECTL_PORT_FORWARD_WEBSOCKETS=false` (and did before 1.31): the
    /// answer must be 101 with `Upgrade: SPDY/3.1` and the port-forward
    /// protocol in `X-Stream-Protocol-Version`. The session's frames then
    /// go straight on the connection, with no WebSocket framing around them.
    async fn upgrade_spdy(&self, path: String) -> Result<TokioIo<Upgraded>, kube::Error> {
        use http::header::{self, HeaderValue};
        use kube::client::UpgradeConnectionError as Upgrade;
        let req = http::Request::post(path)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, SPDY_UPGRADE)
            .header(STREAM_PROTOCOL, SPDY_PORTFORWARD)
            .body(Vec::new())
            .expect("a valid request");
        let res = self.send_upgrade(req).await?;
        let spoken = {
            let is = |name, value: &str| {
                let got = res.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
                got.is_some_and(|v| v.eq_ignore_ascii_case(value))
            };
            is(header::UPGRADE, SPDY_UPGRADE) && is(header::HeaderName::from_static(STREAM_PROTOCOL), SPDY_PORTFORWARD)
        };
        if !spoken {
            return Err(kube::Error::UpgradeConnection(Upgrade::ProtocolSwitch(res.status())));
        }
        let upgraded =
            hyper::upgrade::on(res).await.map_err(|e| kube::Error::UpgradeConnection(Upgrade::GetPendingUpgrade(e)))?;
        Ok(TokioIo::new(upgraded))
    }

    /// Sends an upgrade request through the kube client. Anything but 101
    /// becomes the API's `Status`, as the kube client reports it; no answer
    /// within [`UPGRADE_TIMEOUT`] is an error too.
    async fn send_upgrade(
        &self,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<kube::client::Body>, kube::Error> {
        use http_body_util::BodyExt;
        let sent = self.client.send(req.map(kube::client::Body::from));
        // A kubelet (or an API server) that takes the upgrade and never
        // answers must not hold the request: it fails, and goes to another pod.
        let res = tokio::time::timeout(UPGRADE_TIMEOUT, sent).await.map_err(|_| {
            kube::Error::Service(Box::new(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the API server did not answer the port-forward upgrade within {}s", UPGRADE_TIMEOUT.as_secs()),
            )))
        })??;
        let code = res.status();
        if code != http::StatusCode::SWITCHING_PROTOCOLS {
            let text = res.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let status = serde_json::from_slice::<kube::core::Status>(&text).unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&text);
                kube::core::Status::failure(text.trim(), "UpgradeFailed").with_code(code.as_u16())
            });
            return Err(kube::Error::Api(status.boxed()));
        }
        Ok(res)
    }
}

/// `Upgrade: SPDY/3.1`.
const SPDY_UPGRADE: &str = "SPDY/3.1";
/// The header that names the protocol inside the SPDY session.
const STREAM_PROTOCOL: &str = "x-stream-protocol-version";
/// Port-forward's protocol inside SPDY.
const SPDY_PORTFORWARD: &str = "portforward.k8s.io";

/// Whether an API server's `code` for a SPDY upgrade the `way` given
/// means that it (or a proxy in front of it) does not take that way, so
/// the next is worth trying. A pod that is gone (404), a user who may not
/// (403) or a server that is down (5xx but 501) fail every way alike.
fn turned_down(way: Way, code: u16) -> bool {
    match way {
        // 400 "Upgrade request required" or "no common protocol", 405,
        // 426, 501 from proxies that take no SPDY upgrade.
        Way::Upgrade => matches!(code, 400 | 405 | 426 | 501),
        Way::WebSocket => code == 400,
    }
}

/// How long a port-forward upgrade may take (about 10 ms on a real cluster).
const UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The WebSocket subprotocol of one connection per upgrade.
const V4: &str = "v4.channel.k8s.io";

/// Why a SPDY stream could not be had.
enum Spdy {
    /// The API server does not take SPDY in a WebSocket: use v4.
    Unsupported(String),
    /// Anything else: the pod is gone, access is denied, the server is down.
    Failed(PortForwardError),
}

/// One connection to a pod's port, on either protocol.
pub enum Tunnel {
    /// A `v4.channel.k8s.io` WebSocket of its own.
    V4(Box<PortForwardStream>),
    /// A stream pair in a shared SPDY session.
    Spdy(SpdyStream),
}

impl AsyncRead for Tunnel {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::V4(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Tunnel::Spdy(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Tunnel::V4(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Tunnel::Spdy(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::V4(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Tunnel::Spdy(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::V4(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Tunnel::Spdy(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The WebSocket settings of a port-forward. tungstenite fills its read
/// buffer with zeros up to `read_buffer_size` before every read; at its
/// default of 128 KiB that memset was a tenth of devingress's CPU under 32
/// keep-alive connections of small requests (perf). A read from the TLS
/// stream to the API server returns at most a few records, so 16 KiB
/// loses nothing on large transfers.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024)
}

/// One port of a `v4.channel.k8s.io` session as a byte stream: channel 0
/// carries data, channel 1 errors, and the first frame on each carries the
/// port number. An error-channel message (such as "error forwarding port
/// 8080 to pod web-0, uid …: connection refused") turns the end of the
/// stream into an error that says it. v4 has no half-close: shutting down
/// the write side closes the session.
pub struct PortForwardStream {
    ws: WebSocketStream<TokioIo<Upgraded>>,
    /// Data received and not yet read.
    pending: Bytes,
    /// Whether the port-number frame of each channel has been seen.
    prefixed: [bool; 2],
    /// Text from the error channel.
    error: Option<String>,
    /// The session has ended.
    done: bool,
}

impl PortForwardStream {
    fn new(ws: WebSocketStream<TokioIo<Upgraded>>) -> Self {
        PortForwardStream { ws, pending: Bytes::new(), prefixed: [false; 2], error: None, done: false }
    }

    fn end(&mut self) -> Poll<io::Result<()>> {
        self.done = true;
        match &self.error {
            Some(msg) => Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, msg.clone()))),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for PortForwardStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if read_pending(&mut this.pending, buf) {
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return this.end();
            }
            let msg = match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None => return this.end(),
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Err(ws_io(e)));
                }
                Some(Ok(msg)) => msg,
            };
            match msg {
                Message::Binary(mut frame) if !frame.is_empty() => {
                    let channel = frame[0];
                    frame.advance(1);
                    let ch = usize::from(channel);
                    if ch < 2 && !this.prefixed[ch] {
                        // The port number, little-endian: nothing to read.
                        this.prefixed[ch] = true;
                        continue;
                    }
                    match channel {
                        0 => this.pending = frame,
                        1 => {
                            let text = String::from_utf8_lossy(&frame).into_owned();
                            tracing::debug!("port-forward error channel: {text}");
                            this.error.get_or_insert_with(String::new).push_str(&text);
                        }
                        _ => {}
                    }
                }
                Message::Close(_) => return this.end(),
                // Pings are answered by tungstenite itself.
                _ => {}
            }
        }
    }
}

impl AsyncWrite for PortForwardStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(ws_io)?;
        let n = buf.len().min(MAX_FRAME);
        let mut frame = Vec::with_capacity(n + 1);
        frame.push(0);
        frame.extend_from_slice(&buf[..n]);
        Pin::new(&mut this.ws).start_send(Message::Binary(Bytes::from(frame))).map_err(ws_io)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws).poll_flush(cx).map_err(ws_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_close_ws(&mut self.get_mut().ws, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only answers that say "not this way" move on to the next way; a pod
    /// that is gone, a user who may not, or a server that is down fail
    /// every way alike and must not switch the daemon to a costlier one.
    #[test]
    fn only_a_refused_protocol_moves_on_to_the_next_way() {
        for code in [400, 405, 426, 501] {
            assert!(turned_down(Way::Upgrade, code), "{code}");
        }
        for code in [401, 403, 404, 429, 500, 502, 503] {
            assert!(!turned_down(Way::Upgrade, code), "{code}");
            assert!(!turned_down(Way::WebSocket, code), "{code}");
        }
        assert!(turned_down(Way::WebSocket, 400));
        assert_eq!(Way::from_u8(Way::Upgrade as u8 + 1), Some(Way::WebSocket));
        assert_eq!(Way::from_u8(Way::WebSocket as u8 + 1), None, "after the WebSocket tunnel comes v4");
    }
}
