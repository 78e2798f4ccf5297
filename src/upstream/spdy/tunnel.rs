//! SPDY in a WebSocket (KEP-4006, subprotocol `SPDY/3.1+portforward.k8s.io`):
//! the session's bytes travel as binary messages, whose boundaries mean
//! nothing. This makes the WebSocket a byte stream again.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

/// The subprotocol offered and expected.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// A WebSocket's binary messages as one byte stream.
pub struct WsBytes<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
}

impl<S> WsBytes<S> {
    /// Wraps `ws`.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsBytes { ws, pending: Bytes::new() }
    }
}

/// A WebSocket error as an I/O error; a closed WebSocket is a broken pipe.
pub fn ws_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "the port-forward WebSocket is closed")
        }
        other => io::Error::other(other),
    }
}

/// Closes `ws`; one already closed counts as closed.
pub fn poll_close_ws<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    match ready!(Pin::new(ws).poll_close(cx)) {
        Ok(()) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => Poll::Ready(Ok(())),
        Err(e) => Poll::Ready(Err(ws_io(e))),
    }
}

/// Moves as much of `pending` (bytes of a message received earlier) into
/// `buf` as fits; whether there was any.
pub fn read_pending(pending: &mut Bytes, buf: &mut ReadBuf<'_>) -> bool {
    if pending.is_empty() {
        return false;
    }
    let n = pending.len().min(buf.remaining());
    buf.put_slice(&pending[..n]);
    pending.advance(n);
    true
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if read_pending(&mut this.pending, buf) {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => this.pending = b,
                // A close frame or the end of the connection: the end of the bytes.
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                // Pings are answered by tungstenite; text carries nothing here.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(ws_io(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(ws_io)?;
        Pin::new(&mut this.ws).start_send(Message::binary(Bytes::copy_from_slice(buf))).map_err(ws_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws).poll_flush(cx).map_err(ws_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_close_ws(&mut self.get_mut().ws, cx)
    }
}
