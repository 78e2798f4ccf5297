//! `RequestMirror`: a copy of a request, body included, goes to another
//! Service while the request itself goes on. The copy's answer is dropped,
//! and the copy never slows the request: its body is fed from the request's
//! frames as they pass ([`Tee`]) through a bounded queue, and a mirror that
//! falls behind is cut off. A copy whose body could not be followed to its
//! end (the mirror fell behind, or the client's body broke off) ends with
//! an error, which makes hyper end the copy's request unfinished, so the
//! mirror never sees a short body as complete.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::routes::Backend;
use crate::upstream::{BodyError, RequestHead, Upstream, UpstreamBody};

/// Body frames a mirror may lag behind the request before it is cut off.
const QUEUE: usize = 64;

/// One mirror's end of a [`Tee`].
pub struct Copy {
    queue: mpsc::Sender<Bytes>,
    /// Set before `queue` is dropped when the copy's body is not whole.
    cut: Arc<AtomicBool>,
}

impl Copy {
    /// Ends the copy's body unfinished: its request fails instead of
    /// looking complete.
    fn cut(self) {
        self.cut.store(true, Ordering::Release);
    }
}

/// Starts sending a copy of the request with `head` to a pod of `mirror`.
/// With `body`, the copy's body comes from the returned [`Copy`] (fed by a
/// [`Tee`]); without, it is empty. `None` when the mirror has no ready pod.
pub fn start(upstream: &Upstream, mirror: &Arc<Backend>, head: &RequestHead, body: bool) -> Option<Copy> {
    let ep = mirror.pick().cloned()?;
    let (queue, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let cut = Arc::new(AtomicBool::new(false));
    let copy_body: UpstreamBody = if body {
        let was_cut = cut.clone();
        let mut ended = false;
        let frames = futures::stream::poll_fn(move |cx| {
            if ended {
                return Poll::Ready(None);
            }
            rx.poll_recv(cx).map(|b| match b {
                Some(b) => Some(Ok(Frame::data(b))),
                None => {
                    ended = true;
                    was_cut
                        .load(Ordering::Acquire)
                        .then(|| Err(BodyError::from("the request's body could not be copied to its end")))
                }
            })
        });
        http_body_util::StreamBody::new(frames).boxed()
    } else {
        drop(rx);
        http_body_util::Empty::<Bytes>::new().map_err(|n| match n {}).boxed()
    };
    let (upstream, mirror, head) = (upstream.clone(), mirror.clone(), head.clone());
    tokio::spawn(
        async move {
            match upstream.send(&mirror, ep, &head, copy_body).await {
                Ok(answer) => {
                    tracing::debug!(pod = %answer.endpoint, status = answer.response.status().as_u16(), "mirrored");
                    let _ = answer.response.into_body().collect().await;
                }
                Err(e) => tracing::debug!("mirroring to {} failed: {e}", mirror.display_name()),
            }
        }
        .in_current_span(),
    );
    Some(Copy { queue, cut })
}

/// A request body that hands each data frame to its mirrors as it passes.
pub struct Tee<B> {
    inner: B,
    copies: Vec<Copy>,
}

impl<B> Tee<B> {
    /// `inner`, copied to `copies`.
    pub fn new(inner: B, copies: Vec<Copy>) -> Self {
        Tee { inner, copies }
    }

    /// Cuts every mirror off: their requests end unfinished.
    fn abort_all(&mut self) {
        self.copies.drain(..).for_each(Copy::cut);
    }
}

impl<B> Drop for Tee<B> {
    fn drop(&mut self) {
        // Dropped before its end (the request failed or was abandoned): the
        // copies must not look complete.
        self.abort_all();
    }
}

impl<B> Body for Tee<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let mut kept = Vec::with_capacity(this.copies.len());
                    for c in this.copies.drain(..) {
                        match c.queue.try_send(data.clone()) {
                            Ok(()) => kept.push(c),
                            Err(e) => {
                                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                                    tracing::debug!("a mirror fell behind the request's body; its copy is cut off");
                                }
                                c.cut();
                            }
                        }
                    }
                    this.copies = kept;
                }
            }
            Poll::Ready(Some(Err(_))) => this.abort_all(),
            // The whole body went by: the copies' bodies end complete.
            Poll::Ready(None) => this.copies.clear(),
            Poll::Pending => {}
        }
        // A sized body may never be polled past its last frame.
        if this.inner.is_end_stream() {
            this.copies.clear();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
