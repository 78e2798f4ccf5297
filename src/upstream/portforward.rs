//! A hyper connector whose connections are pod port-forwards through the
//! API server.
//!
//! Why kube-rs's `Api::<Pod>::portforward` (v4.channel.k8s.io, one WebSocket
//! and so one TCP connection to the pod per upgrade) rather than a protocol
//! with many streams per upgrade (v2.portforward.k8s.io, SPDY tunnelled in
//! WebSocket): the measured cost of an upgrade is ~10 ms and ~2 ms of API
//! server CPU, while a request on an open stream costs ~25 µs. A pool of
//! keep-alive HTTP/1.1 connections, each on its own port-forward, pays the
//! upgrade once per connection and then runs at stream speed, which is what
//! many-streams-per-upgrade would buy too, without a second protocol to keep
//! faithful (the SPDY variant needs a newer kubelet, and the only Rust
//! implementation is GPL-3.0). hyper's pool keys connections by authority,
//! so the authority names the pod and port: `{pod}.{namespace}:{port}`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::FutureExt;
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use crate::routes::PodEndpoint;

/// Why a port-forward could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PortForwardError {
    /// The URI does not name a pod endpoint (a bug, not a user error).
    #[error("not a pod endpoint URI: {0}")]
    BadUri(String),
    /// The API server refused or failed the upgrade (pod gone, forbidden, unreachable).
    #[error("port-forward to pod {endpoint} failed: {source}")]
    Open {
        /// The pod endpoint.
        endpoint: String,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
    /// The session came up without the stream for the port.
    #[error("port-forward to pod {0} has no stream for its port")]
    NoStream(String),
}

/// The URI that makes hyper's pool key connections by pod and port.
pub fn endpoint_uri(ep: &PodEndpoint, path_and_query: &str) -> Uri {
    let pq = if path_and_query.is_empty() { "/" } else { path_and_query };
    format!("http://{}.{}:{}{}", ep.pod, ep.namespace, ep.port, pq)
        .parse()
        .unwrap_or_else(|_| Uri::from_static("http://invalid/"))
}

/// Parses the authority made by [`endpoint_uri`]. Namespaces cannot contain
/// dots, pod names can, so the last dot separates them.
pub fn parse_endpoint(uri: &Uri) -> Option<PodEndpoint> {
    let host = uri.host()?;
    let port = uri.port_u16()?;
    let (pod, namespace) = host.rsplit_once('.')?;
    Some(PodEndpoint { namespace: namespace.to_string(), pod: pod.to_string(), port })
}

/// Opens a port-forward per connection. Cheap to clone.
#[derive(Clone)]
pub struct PortForwardConnector {
    client: Client,
}

impl PortForwardConnector {
    /// A connector that opens port-forwards with `client`.
    pub fn new(client: Client) -> Self {
        PortForwardConnector { client }
    }
}

impl tower::Service<Uri> for PortForwardConnector {
    type Response = PortForwardIo;
    type Error = PortForwardError;
    type Future = Pin<Box<dyn Future<Output = Result<PortForwardIo, PortForwardError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let ep = parse_endpoint(&uri).ok_or_else(|| PortForwardError::BadUri(uri.to_string()))?;
            let api: Api<Pod> = Api::namespaced(client, &ep.namespace);
            let mut pf = api
                .portforward(&ep.pod, &[ep.port])
                .await
                .map_err(|source| PortForwardError::Open { endpoint: ep.to_string(), source })?;
            let stream = pf.take_stream(ep.port).ok_or_else(|| PortForwardError::NoStream(ep.to_string()))?;
            let error = pf.take_error(ep.port).map(|f| f.boxed());
            tracing::debug!(endpoint = %ep, "port-forward opened");
            Ok(PortForwardIo(TokioIo::new(ErrorAtEof { stream, error })))
        })
    }
}

type ErrorFuture = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// The pod stream, which turns an EOF that follows a message on the
/// port-forward error channel into an error carrying that message (such as
/// "error forwarding port 8080 to pod web-0, uid …: connection refused").
/// The kubelet sends the message before it closes, so it is there by the
/// time the EOF is seen.
pub struct ErrorAtEof {
    stream: DuplexStream,
    error: Option<ErrorFuture>,
}

impl AsyncRead for ErrorAtEof {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() == before && buf.remaining() > 0 {
            if let Some(fut) = self.error.as_mut() {
                if let Poll::Ready(msg) = fut.poll_unpin(cx) {
                    self.error = None;
                    if let Some(msg) = msg {
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, msg)));
                    }
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ErrorAtEof {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// One port-forwarded connection, as hyper sees it.
pub struct PortForwardIo(TokioIo<ErrorAtEof>);

impl Connection for PortForwardIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for PortForwardIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for PortForwardIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_uri_round_trips_dotted_pod_names() {
        let ep = PodEndpoint { namespace: "demo".into(), pod: "web.v2-0".into(), port: 8080 };
        let uri = endpoint_uri(&ep, "/a/b?c=d");
        assert_eq!(uri.path_and_query().unwrap().as_str(), "/a/b?c=d");
        assert_eq!(parse_endpoint(&uri), Some(ep));
    }
}
