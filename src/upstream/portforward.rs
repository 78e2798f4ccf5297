//! Pod port-forward through the API server, as a byte stream that the
//! upstream pool runs HTTP over.
//!
//! Why the `v4.channel.k8s.io` WebSocket protocol (one WebSocket, and so
//! one TCP connection to the pod, per upgrade) rather than one with many
//! streams per upgrade (`v2.portforward.k8s.io`, SPDY tunnelled in
//! WebSocket): the measured cost of an upgrade is ~10 ms and ~2 ms of API
//! server CPU, while a request on an open stream costs ~25 µs. A pool of
//! keep-alive HTTP/1.1 connections, each on its own port-forward, pays the
//! upgrade once per connection and then runs at stream speed, which is what
//! many-streams-per-upgrade would buy too, without a second protocol to keep
//! faithful (the SPDY variant needs a newer kubelet, and the only Rust
//! implementation is GPL-3.0). An HTTP/2 (h2c) backend multiplexes all its
//! requests over one such stream.
//!
//! The upgrade request is the one `Api::<Pod>::portforward` sends, sent
//! through the kube client; the WebSocket handshake around it is ours
//! rather than `Client::connect`'s so that the WebSocket gets a read buffer
//! sized for this traffic ([`ws_config`]). The v4 framing on top is ours
//! too: kube-rs's `Portforwarder` moves every chunk through a background
//! task, two channels and a duplex pipe, and sends at most 4 KiB per frame,
//! which measured at ~35 MB/s for uploads; [`PortForwardStream`] reads and
//! writes frames directly, in the task that uses the stream, up to 64 KiB a
//! frame.

use std::io;
use std::pin::Pin;
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

use crate::routes::PodEndpoint;

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
}

/// Opens port-forward streams with one kube client. Cheap to clone.
#[derive(Clone)]
pub struct PortForwarder {
    client: Client,
}

impl PortForwarder {
    /// An opener that uses `client`.
    pub fn new(client: Client) -> Self {
        PortForwarder { client }
    }

    /// Opens one port-forward session to the pod's port.
    pub async fn open(&self, ep: &PodEndpoint) -> Result<TokioIo<PortForwardStream>, PortForwardError> {
        let req = kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", ep.namespace))
            .portforward(&ep.pod, &[ep.port])
            .map_err(|source| PortForwardError::Request { endpoint: ep.to_string(), source })?;
        let ws =
            self.upgrade(req).await.map_err(|source| PortForwardError::Open { endpoint: ep.to_string(), source })?;
        tracing::debug!(endpoint = %ep, "port-forward opened");
        Ok(TokioIo::new(PortForwardStream::new(ws)))
    }

    /// Sends `req` as a WebSocket upgrade offering `v4.channel.k8s.io`, and
    /// checks the answer as RFC 6455 says: 101, the accept key, the
    /// protocol. An error answer becomes the API's `Status`, as the kube
    /// client reports it.
    async fn upgrade(&self, req: http::Request<Vec<u8>>) -> Result<WebSocketStream<TokioIo<Upgraded>>, kube::Error> {
        use http::header::{self, HeaderValue};
        use http_body_util::BodyExt;
        use kube::client::UpgradeConnectionError as Upgrade;
        let key = tungstenite::handshake::client::generate_key();
        let (mut parts, body) = req.into_parts();
        let h = &mut parts.headers;
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        h.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_str(&key).expect("a base64 key"));
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(V4));
        let res = self.client.send(http::Request::from_parts(parts, kube::client::Body::from(body))).await?;
        let code = res.status();
        if code != http::StatusCode::SWITCHING_PROTOCOLS {
            let text = res.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let status = serde_json::from_slice::<kube::core::Status>(&text).unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&text);
                kube::core::Status::failure(text.trim(), "UpgradeFailed").with_code(code.as_u16())
            });
            return Err(kube::Error::Api(status.boxed()));
        }
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        if res.headers().get(header::SEC_WEBSOCKET_ACCEPT).map(HeaderValue::as_bytes) != Some(accept.as_bytes()) {
            return Err(kube::Error::UpgradeConnection(Upgrade::SecWebSocketAcceptKeyMismatch));
        }
        if res.headers().get(header::SEC_WEBSOCKET_PROTOCOL).map(HeaderValue::as_bytes) != Some(V4.as_bytes()) {
            return Err(kube::Error::UpgradeConnection(Upgrade::SecWebSocketProtocolMismatch));
        }
        let upgraded =
            hyper::upgrade::on(res).await.map_err(|e| kube::Error::UpgradeConnection(Upgrade::GetPendingUpgrade(e)))?;
        Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(ws_config())).await)
    }
}

/// The WebSocket subprotocol of the port-forward.
const V4: &str = "v4.channel.k8s.io";

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

fn ws_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "port-forward session closed")
        }
        other => io::Error::other(other),
    }
}

impl AsyncRead for PortForwardStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return this.end();
            }
            let msg = match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None => return this.end(),
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Err(ws_error(e)));
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
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(ws_error)?;
        let n = buf.len().min(MAX_FRAME);
        let mut frame = Vec::with_capacity(n + 1);
        frame.push(0);
        frame.extend_from_slice(&buf[..n]);
        Pin::new(&mut this.ws).start_send(Message::Binary(Bytes::from(frame))).map_err(ws_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws).poll_flush(cx).map_err(ws_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().ws).poll_close(cx)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(ws_error(e))),
        }
    }
}
