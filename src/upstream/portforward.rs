//! Opening a pod port-forward through the API server, as a byte stream that
//! the upstream pool runs HTTP over.
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
//! implementation is GPL-3.0). An HTTP/2 (h2c) backend multiplexes all its
//! requests over one such stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::FutureExt;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use crate::routes::PodEndpoint;

/// Why a port-forward could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PortForwardError {
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

    /// Opens one port-forward session to the pod's port and returns its stream.
    pub async fn open(&self, ep: &PodEndpoint) -> Result<TokioIo<ErrorAtEof>, PortForwardError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ep.namespace);
        let mut pf = api
            .portforward(&ep.pod, &[ep.port])
            .await
            .map_err(|source| PortForwardError::Open { endpoint: ep.to_string(), source })?;
        let stream = pf.take_stream(ep.port).ok_or_else(|| PortForwardError::NoStream(ep.to_string()))?;
        let error = pf.take_error(ep.port).map(|f| f.boxed());
        tracing::debug!(endpoint = %ep, "port-forward opened");
        Ok(TokioIo::new(ErrorAtEof { stream, error }))
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
