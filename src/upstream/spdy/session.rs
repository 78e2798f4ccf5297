//! The client side of one SPDY port-forward session: many forwarded
//! connections to one pod over one upgrade, as kubectl does it.
//!
//! Each connection is a pair of streams opened on demand: an error stream
//! (closed at once on our side; the kubelet writes on it why it could not
//! reach the pod) and a data stream, both with the headers `streamType`,
//! `port` and `requestID`. One task reads the session and hands each data
//! frame to its stream's buffer; writes go straight from the stream that
//! makes them into one shared buffer and, when the connection takes them,
//! onto the wire, so several streams' frames leave in one write. A second
//! task finishes writes the connection could not take at once.
//!
//! Flow control: SPDY/3.1 has windows, but the kubelet (spdystream) neither
//! sends WINDOW_UPDATE nor enforces a window. A peer's window is honoured
//! once it shows that it keeps one (a SETTINGS with an initial window, or a
//! WINDOW_UPDATE). Our own side grants windows as its streams are read,
//! and stops reading the connection while a stream holds more than
//! [`MAX_BUFFERED`] unread bytes, so memory stays bounded either way.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf, ReadHalf};
use tokio::sync::Notify;

use super::{Codec, Frame, MAX_FRAME_LEN, rst, setting};

/// The largest data frame written.
const MAX_DATA: usize = 64 * 1024;
/// Unread bytes a stream may hold before the session stops reading.
pub const MAX_BUFFERED: usize = 1024 * 1024;
/// Encoded bytes waiting for the connection before writers wait too.
const HIGH_WATER: usize = 512 * 1024;
/// The window SPDY/3.1 starts every stream and the session with.
const DEFAULT_WINDOW: i64 = 64 * 1024;
/// The window we grant each of our streams (SETTINGS at the start).
const OUR_WINDOW: i64 = MAX_BUFFERED as i64;
/// The largest frame we read.
const MAX_READ_FRAME: usize = MAX_FRAME_LEN;

/// Something the session runs over: the upgraded connection, or the
/// WebSocket that tunnels it.
pub trait Transport: AsyncRead + AsyncWrite + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + 'static> Transport for T {}

type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// One SPDY session. Cheap to share (`Arc`); ends when its connection does.
pub struct Session {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the write task: bytes wait that the connection did not take.
    pending_writes: Notify,
    /// Wakes the read task while it holds off: a stream was read below its
    /// limit, or closed, or the session ended.
    drained: Notify,
    /// Stops the read task when the session ends while it waits on the
    /// connection (cheaper than a second future beside every read).
    reader: std::sync::OnceLock<tokio::task::AbortHandle>,
    /// The pod, for logs.
    label: String,
}

struct State {
    /// Open connections by data stream id.
    pairs: HashMap<u32, Pair>,
    /// Error stream id → data stream id.
    errors: HashMap<u32, u32>,
    next_stream: u32,
    next_request: u64,
    /// Why the session ended; no stream works after.
    ended: Option<String>,
    /// The peer sent GOAWAY: no new streams.
    going_away: bool,
    /// The [`Session`] handle is gone: the session ends with its last stream.
    abandoned: bool,
    /// Encoded frames the connection has not taken yet.
    out: BytesMut,
    /// Header-block compression (one zlib stream for the session).
    codec: Codec,
    writer: Writer,
    /// The write task is busy with `out`.
    writer_busy: bool,
    /// Streams waiting for room in `out` or in a window.
    space_waiters: Vec<Waker>,
    /// The peer keeps windows (it said so with SETTINGS or WINDOW_UPDATE).
    peer_windows: bool,
    /// The peer's initial stream window (SETTINGS), for new streams.
    peer_initial_window: i64,
    /// The session-wide window the peer gives us.
    session_send_window: i64,
    /// Bytes read by streams since the session window was last topped up.
    session_consumed: i64,
    /// Streams holding more than [`MAX_BUFFERED`] unread bytes: while any
    /// do, the read task holds off.
    over_limit: usize,
}

/// One forwarded connection's state.
struct Pair {
    error_id: u32,
    recv: VecDeque<Bytes>,
    recv_len: usize,
    /// The kubelet ended the data stream.
    fin: bool,
    /// Text from the error stream.
    error_text: String,
    /// The stream was reset.
    reset: Option<String>,
    read_waker: Option<Waker>,
    /// We ended our side of the data stream.
    shut: bool,
    send_window: i64,
    /// Bytes read since this stream's window was last topped up.
    consumed: i64,
}

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session has ended or is going away; open another.
    #[error("the port-forward session to {pod} has ended: {why}")]
    Ended {
        /// The pod.
        pod: String,
        /// Why.
        why: String,
    },
}

impl Session {
    /// Starts a session over `io` (after the upgrade), for pod `label`.
    pub fn start<T: Transport>(io: T, label: String) -> Session {
        let (rd, wr) = tokio::io::split(io);
        let mut codec = Codec::new(MAX_READ_FRAME);
        let mut out = BytesMut::with_capacity(16 * 1024);
        // Our streams' windows: larger than SPDY's 64 KiB default, so that a
        // peer that keeps windows does not stall every 64 KiB.
        codec.encode(
            &Frame::Settings { clear: false, entries: vec![(0, setting::INITIAL_WINDOW_SIZE, OUR_WINDOW as u32)] },
            &mut out,
        );
        codec.encode(&Frame::WindowUpdate { stream: 0, delta: (OUR_WINDOW * 16 - DEFAULT_WINDOW) as u32 }, &mut out);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pairs: HashMap::new(),
                errors: HashMap::new(),
                next_stream: 1,
                next_request: 0,
                ended: None,
                going_away: false,
                abandoned: false,
                out,
                codec,
                writer: Box::pin(wr),
                writer_busy: false,
                space_waiters: Vec::new(),
                peer_windows: false,
                peer_initial_window: DEFAULT_WINDOW,
                session_send_window: DEFAULT_WINDOW,
                session_consumed: 0,
                over_limit: 0,
            }),
            pending_writes: Notify::new(),
            drained: Notify::new(),
            reader: std::sync::OnceLock::new(),
            label,
        });
        shared.pending_writes.notify_one();
        let reader = tokio::spawn(read_loop(shared.clone(), rd));
        let _ = shared.reader.set(reader.abort_handle());
        tokio::spawn(write_loop(shared.clone()));
        Session { shared }
    }

    /// Opens a connection to `port` of the pod: an error stream and a data
    /// stream. Nothing waits for the kubelet's replies: the first read
    /// does, and says what went wrong.
    pub fn open(&self, port: u16) -> Result<SpdyStream, SessionError> {
        let mut st = self.shared.state.lock().expect("session lock");
        if let Some(why) = st.ended.clone().or_else(|| st.going_away.then(|| "the kubelet sent GOAWAY".into())) {
            return Err(SessionError::Ended { pod: self.shared.label.clone(), why });
        }
        if st.next_stream > 0x7fff_fffd {
            st.going_away = true;
            return Err(SessionError::Ended { pod: self.shared.label.clone(), why: "stream ids used up".into() });
        }
        let (error_id, data_id) = (st.next_stream, st.next_stream + 2);
        st.next_stream += 4;
        let request = st.next_request.to_string();
        st.next_request += 1;
        let headers = |kind: &str| {
            vec![
                ("streamtype".to_string(), kind.to_string()),
                ("port".to_string(), port.to_string()),
                ("requestid".to_string(), request.clone()),
            ]
        };
        let st = &mut *st;
        let syn = |stream, headers| Frame::SynStream {
            stream,
            associated: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers,
        };
        st.codec.encode(&syn(error_id, headers("error")), &mut st.out);
        // We never write on the error stream: end our side at once, as kubectl does.
        Codec::encode_data(error_id, true, &[], &mut st.out);
        st.codec.encode(&syn(data_id, headers("data")), &mut st.out);
        let window = st.peer_initial_window;
        st.pairs.insert(
            data_id,
            Pair {
                error_id,
                recv: VecDeque::new(),
                recv_len: 0,
                fin: false,
                error_text: String::new(),
                reset: None,
                read_waker: None,
                shut: false,
                send_window: window,
                consumed: 0,
            },
        );
        st.errors.insert(error_id, data_id);
        self.shared.kick(st);
        Ok(SpdyStream { shared: self.shared.clone(), id: data_id })
    }

    /// Connections open on this session now.
    pub fn streams(&self) -> usize {
        self.shared.state.lock().expect("session lock").pairs.len()
    }

    /// Whether new connections can be opened on it.
    pub fn is_usable(&self) -> bool {
        let st = self.shared.state.lock().expect("session lock");
        st.ended.is_none() && !st.going_away
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Nobody can open streams any more; the open ones keep the session
        // alive until they close.
        let mut st = self.shared.state.lock().expect("session lock");
        st.abandoned = true;
        if st.pairs.is_empty() {
            drop(st);
            self.shared.end("no longer needed".into());
        }
    }
}

impl Shared {
    /// Writes what waits in `out` if the connection takes it now; else
    /// leaves it to the write task.
    fn kick(&self, st: &mut State) {
        if st.out.is_empty() || st.writer_busy {
            return;
        }
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        match st.poll_write_out(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => {
                let wakers = st.fail(format!("writing to the API server failed: {e}"));
                self.wake_after_end(wakers);
            }
            Poll::Pending => {
                st.writer_busy = true;
                self.pending_writes.notify_one();
            }
        }
    }

    fn end(&self, why: String) {
        let wakers = self.state.lock().expect("session lock").fail(why);
        self.wake_after_end(wakers);
    }

    /// Wakes everyone waiting on a session that has just ended: the
    /// streams, and the two tasks, which then stop.
    fn wake_after_end(&self, wakers: Vec<Waker>) {
        wakers.into_iter().for_each(Waker::wake);
        self.pending_writes.notify_one();
        self.drained.notify_one();
        if let Some(reader) = self.reader.get() {
            reader.abort();
        }
    }
}

impl State {
    /// Writes `out` and flushes, as far as the connection takes it.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match self.writer.as_mut().poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.out.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.writer.as_mut().poll_flush(cx)
    }

    /// Marks the session ended; returns the wakers of everyone waiting.
    fn fail(&mut self, why: String) -> Vec<Waker> {
        if self.ended.is_none() {
            tracing::debug!("port-forward session ended: {why}");
            self.ended = Some(why);
        }
        let mut wakers: Vec<Waker> = self.pairs.values_mut().filter_map(|p| p.read_waker.take()).collect();
        wakers.append(&mut self.space_waiters);
        wakers
    }

    fn window_for(&self, pair: &Pair) -> usize {
        if !self.peer_windows {
            return usize::MAX;
        }
        pair.send_window.min(self.session_send_window).max(0) as usize
    }
}

/// Reads frames and hands them to their streams.
async fn read_loop<T: Transport>(shared: Arc<Shared>, mut rd: ReadHalf<T>) {
    let mut codec = Codec::new(MAX_READ_FRAME);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut wakers: Vec<Waker> = Vec::new();
    let why = loop {
        // Hold off while a stream has more unread than it may.
        loop {
            let drained = shared.drained.notified();
            {
                let st = shared.state.lock().expect("session lock");
                if st.ended.is_some() {
                    return;
                }
                if st.over_limit == 0 {
                    break;
                }
            }
            drained.await;
        }
        // Only this task makes a stream go over its limit, so none is over
        // while it waits here; the session ending aborts the wait.
        match rd.read_buf(&mut buf).await {
            Ok(0) => break "the API server closed the connection".to_string(),
            Err(e) => break format!("reading from the API server failed: {e}"),
            Ok(_) => {}
        }
        let mut guard = shared.state.lock().expect("session lock");
        let st = &mut *guard;
        let failed = loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => st.take(frame, &mut wakers),
                Ok(None) => break None,
                Err(e) => break Some(format!("the kubelet sent a bad frame: {e}")),
            }
        };
        if let Some(why) = failed {
            st.codec.encode(&Frame::GoAway { last_good: 0, status: 1 }, &mut st.out);
            shared.kick(st);
            break why;
        }
        shared.kick(st);
        drop(guard);
        wakers.drain(..).for_each(Waker::wake);
    };
    shared.end(why);
}

impl State {
    /// Applies one frame from the kubelet.
    fn take(&mut self, frame: Frame, wakers: &mut Vec<Waker>) {
        match frame {
            Frame::Data { stream, fin, data } => {
                if let Some(pair) = self.pairs.get_mut(&stream) {
                    if !data.is_empty() {
                        let was_over = pair.recv_len > MAX_BUFFERED;
                        pair.recv_len += data.len();
                        pair.recv.push_back(data);
                        if !was_over && pair.recv_len > MAX_BUFFERED {
                            self.over_limit += 1;
                        }
                    }
                    pair.fin |= fin;
                    wakers.extend(pair.read_waker.take());
                } else if let Some(pair) = self.errors.get(&stream).and_then(|d| self.pairs.get_mut(d)) {
                    pair.error_text.push_str(&String::from_utf8_lossy(&data));
                    wakers.extend(pair.read_waker.take());
                }
            }
            Frame::RstStream { stream, status } => {
                let id =
                    if self.pairs.contains_key(&stream) { Some(stream) } else { self.errors.get(&stream).copied() };
                if let Some(pair) = id.and_then(|id| self.pairs.get_mut(&id)) {
                    pair.reset = Some(format!("the kubelet reset the stream ({})", rst_name(status)));
                    wakers.extend(pair.read_waker.take());
                    wakers.append(&mut self.space_waiters);
                }
            }
            Frame::Settings { entries, .. } => {
                for (_, id, value) in entries {
                    if id == setting::INITIAL_WINDOW_SIZE {
                        let value = i64::from(value & 0x7fff_ffff);
                        let delta = value - self.peer_initial_window;
                        self.peer_initial_window = value;
                        self.peer_windows = true;
                        self.pairs.values_mut().for_each(|p| p.send_window += delta);
                        wakers.append(&mut self.space_waiters);
                    }
                }
            }
            Frame::WindowUpdate { stream, delta } => {
                self.peer_windows = true;
                let delta = i64::from(delta);
                if stream == 0 {
                    self.session_send_window += delta;
                } else if let Some(pair) = self.pairs.get_mut(&stream) {
                    pair.send_window += delta;
                }
                wakers.append(&mut self.space_waiters);
            }
            // Answer the kubelet's pings (even ids); ours would be odd.
            Frame::Ping { id } if id % 2 == 0 => self.codec.encode(&Frame::Ping { id }, &mut self.out),
            Frame::GoAway { .. } => self.going_away = true,
            Frame::SynStream { stream, .. } => {
                self.codec.encode(&Frame::RstStream { stream, status: rst::REFUSED_STREAM }, &mut self.out);
            }
            Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Ping { .. } => {}
        }
    }
}

fn rst_name(status: u32) -> String {
    match status {
        rst::PROTOCOL_ERROR => "PROTOCOL_ERROR".into(),
        rst::INVALID_STREAM => "INVALID_STREAM".into(),
        rst::REFUSED_STREAM => "REFUSED_STREAM".into(),
        rst::CANCEL => "CANCEL".into(),
        rst::INTERNAL_ERROR => "INTERNAL_ERROR".into(),
        rst::FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR".into(),
        rst::STREAM_IN_USE => "STREAM_IN_USE".into(),
        other => format!("status {other}"),
    }
}

/// Finishes writes the connection could not take at once.
async fn write_loop(s: Arc<Shared>) {
    loop {
        let notified = s.pending_writes.notified();
        let (idle, ended) = {
            let st = s.state.lock().expect("session lock");
            (st.out.is_empty() && !st.writer_busy, st.ended.is_some())
        };
        if ended {
            // Say goodbye, then close the connection.
            let _ = std::future::poll_fn(|cx| {
                let mut st = s.state.lock().expect("session lock");
                // Whatever is still waiting goes if it can; the close follows either way.
                let _ = st.poll_write_out(cx);
                st.writer.as_mut().poll_shutdown(cx)
            })
            .await;
            return;
        }
        if idle {
            notified.await;
            continue;
        }
        let result = std::future::poll_fn(|cx| {
            let mut st = s.state.lock().expect("session lock");
            let r = st.poll_write_out(cx);
            if r.is_ready() {
                st.writer_busy = false;
                let waiters = std::mem::take(&mut st.space_waiters);
                drop(st);
                waiters.into_iter().for_each(Waker::wake);
            }
            r
        })
        .await;
        if let Err(e) = result {
            s.end(format!("writing to the API server failed: {e}"));
        }
    }
}

/// One forwarded connection: a byte stream to the pod's port.
pub struct SpdyStream {
    shared: Arc<Shared>,
    id: u32,
}

impl SpdyStream {
    fn gone(shared: &Shared, st: &State) -> io::Error {
        let why = st.ended.clone().unwrap_or_else(|| "the stream was closed".into());
        io::Error::new(io::ErrorKind::BrokenPipe, format!("port-forward session to {} ended: {why}", shared.label))
    }
}

impl AsyncRead for SpdyStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut st = this.shared.state.lock().expect("session lock");
        let st = &mut *st;
        let Some(pair) = st.pairs.get_mut(&this.id) else { return Poll::Ready(Err(Self::gone(&this.shared, st))) };
        if !pair.recv.is_empty() {
            let before = pair.recv_len;
            while buf.remaining() > 0 {
                let Some(front) = pair.recv.front_mut() else { break };
                let n = front.len().min(buf.remaining());
                buf.put_slice(&front.split_to(n));
                pair.recv_len -= n;
                if front.is_empty() {
                    pair.recv.pop_front();
                }
            }
            let read = (before - pair.recv_len) as i64;
            // Grant the peer room again once half a window has been read.
            pair.consumed += read;
            st.session_consumed += read;
            if pair.consumed >= OUR_WINDOW / 2 {
                st.codec.encode(&Frame::WindowUpdate { stream: this.id, delta: pair.consumed as u32 }, &mut st.out);
                pair.consumed = 0;
            }
            if st.session_consumed >= OUR_WINDOW * 8 {
                st.codec.encode(&Frame::WindowUpdate { stream: 0, delta: st.session_consumed as u32 }, &mut st.out);
                st.session_consumed = 0;
            }
            let was_over = before > MAX_BUFFERED;
            let now_under = st.pairs.get(&this.id).is_some_and(|p| p.recv_len <= MAX_BUFFERED);
            if was_over && now_under {
                st.over_limit -= 1;
            }
            this.shared.kick(st);
            if was_over && now_under {
                this.shared.drained.notify_one();
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(why) = &pair.reset {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, why.clone())));
        }
        if pair.fin {
            // The kubelet writes why it failed before it ends the streams.
            if !pair.error_text.is_empty() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, pair.error_text.clone())));
            }
            return Poll::Ready(Ok(()));
        }
        if st.ended.is_some() {
            return Poll::Ready(Err(Self::gone(&this.shared, st)));
        }
        pair.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for SpdyStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut st = this.shared.state.lock().expect("session lock");
        let st = &mut *st;
        if st.ended.is_some() {
            return Poll::Ready(Err(Self::gone(&this.shared, st)));
        }
        let window = match st.pairs.get(&this.id) {
            None => return Poll::Ready(Err(Self::gone(&this.shared, st))),
            Some(pair) if pair.shut => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Some(Pair { reset: Some(why), .. }) => {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, why.clone())));
            }
            Some(pair) => st.window_for(pair),
        };
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if st.out.len() >= HIGH_WATER || window == 0 {
            st.space_waiters.push(cx.waker().clone());
            if st.out.len() >= HIGH_WATER && !st.writer_busy {
                st.writer_busy = true;
                this.shared.pending_writes.notify_one();
            }
            return Poll::Pending;
        }
        let n = buf.len().min(MAX_DATA).min(window);
        Codec::encode_data(this.id, false, &buf[..n], &mut st.out);
        if st.peer_windows {
            st.session_send_window -= n as i64;
            if let Some(pair) = st.pairs.get_mut(&this.id) {
                pair.send_window -= n as i64;
            }
        }
        this.shared.kick(st);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // What the connection did not take is the write task's to finish.
        let this = self.get_mut();
        let st = this.shared.state.lock().expect("session lock");
        match &st.ended {
            Some(_) => Poll::Ready(Err(Self::gone(&this.shared, &st))),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut st = this.shared.state.lock().expect("session lock");
        let st = &mut *st;
        if let Some(pair) = st.pairs.get_mut(&this.id) {
            if !pair.shut && st.ended.is_none() {
                pair.shut = true;
                Codec::encode_data(this.id, true, &[], &mut st.out);
                this.shared.kick(st);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for SpdyStream {
    fn drop(&mut self) {
        let mut guard = self.shared.state.lock().expect("session lock");
        let st = &mut *guard;
        let Some(pair) = st.pairs.remove(&self.id) else { return };
        st.errors.remove(&pair.error_id);
        // Not ended both ways: tell the kubelet to drop both streams, as
        // kubectl does when it lets a connection go.
        if st.ended.is_none() && !(pair.fin && pair.shut) {
            for stream in [self.id, pair.error_id] {
                st.codec.encode(&Frame::RstStream { stream, status: rst::CANCEL }, &mut st.out);
            }
            self.shared.kick(st);
        }
        if pair.recv_len > MAX_BUFFERED {
            st.over_limit -= 1;
        }
        let last = st.abandoned && st.pairs.is_empty();
        drop(guard);
        if pair.recv_len > MAX_BUFFERED {
            self.shared.drained.notify_one();
        }
        if last {
            self.shared.end("no longer needed".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// What the fake kubelet saw.
    #[derive(Default)]
    struct Seen {
        resets: Mutex<Vec<(u32, u32)>>,
        /// The most data bytes received beyond the window granted.
        overrun: AtomicUsize,
        /// Data bytes it has written so far.
        written: AtomicUsize,
    }

    /// How the fake kubelet behaves.
    #[derive(Clone, Copy, Default)]
    struct Kubelet {
        /// Keep a window of this many bytes per stream (SETTINGS, then a
        /// WINDOW_UPDATE for what arrived).
        window: Option<u32>,
        /// On port 2, send this many bytes and end the stream.
        flood: usize,
    }

    /// A kubelet side: replies to streams, echoes data, ends streams when
    /// the client does; port 1 is refused on the error stream.
    async fn kubelet(io: DuplexStream, k: Kubelet, seen: Arc<Seen>) {
        let (mut rd, mut wr) = tokio::io::split(io);
        let (mut dec, mut enc) = (Codec::new(MAX_FRAME_LEN), Codec::new(MAX_FRAME_LEN));
        let mut out = BytesMut::new();
        if let Some(w) = k.window {
            enc.encode(
                &Frame::Settings { clear: false, entries: vec![(0, setting::INITIAL_WINDOW_SIZE, w)] },
                &mut out,
            );
            wr.write_all(&out.split()).await.unwrap();
        }
        let mut errors: HashMap<String, u32> = HashMap::new();
        let mut unacked = 0usize;
        let mut buf = BytesMut::new();
        loop {
            while let Some(frame) = dec.decode(&mut buf).unwrap() {
                match frame {
                    Frame::SynStream { stream, headers, .. } => {
                        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
                        enc.encode(&Frame::SynReply { stream, fin: false, headers: Vec::new() }, &mut out);
                        if get("streamtype") == "error" {
                            errors.insert(get("requestid"), stream);
                            continue;
                        }
                        let error = errors[&get("requestid")];
                        match get("port").as_str() {
                            "1" => {
                                let text = Bytes::from_static(b"error forwarding port 1 to pod p: connection refused");
                                enc.encode(&Frame::Data { stream: error, fin: true, data: text }, &mut out);
                                enc.encode(&Frame::Data { stream, fin: true, data: Bytes::new() }, &mut out);
                            }
                            "2" => {
                                wr.write_all(&out.split()).await.unwrap();
                                let chunk = vec![7u8; 32 * 1024];
                                let mut left = k.flood;
                                while left > 0 {
                                    let n = left.min(chunk.len());
                                    Codec::encode_data(stream, n == left, &chunk[..n], &mut out);
                                    if wr.write_all(&out.split()).await.is_err() {
                                        return;
                                    }
                                    seen.written.fetch_add(n, Ordering::SeqCst);
                                    left -= n;
                                }
                            }
                            "3" => {
                                let part = Bytes::from_static(b"HTTP/1.0 200 OK\r\n\r\npart of a body");
                                enc.encode(&Frame::Data { stream, fin: false, data: part }, &mut out);
                                enc.encode(&Frame::RstStream { stream, status: rst::INTERNAL_ERROR }, &mut out);
                            }
                            _ => {}
                        }
                    }
                    // Data streams are 3, 7, 11…: the second of each pair.
                    Frame::Data { stream, fin, data } if stream % 4 == 3 => {
                        unacked += data.len();
                        if let Some(w) = k.window {
                            let over = unacked.saturating_sub(w as usize);
                            seen.overrun.fetch_max(over, Ordering::SeqCst);
                            // Grant room for what arrived once a window's worth is in.
                            if unacked >= w as usize {
                                enc.encode(&Frame::WindowUpdate { stream, delta: unacked as u32 }, &mut out);
                                unacked = 0;
                            }
                        }
                        Codec::encode_data(stream, fin, &data, &mut out);
                    }
                    Frame::RstStream { stream, status } => seen.resets.lock().unwrap().push((stream, status)),
                    _ => {}
                }
            }
            if !out.is_empty() && wr.write_all(&out.split()).await.is_err() {
                return;
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    fn start(k: Kubelet) -> (Session, Arc<Seen>, tokio::task::JoinHandle<()>) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let seen = Arc::new(Seen::default());
        let peer = tokio::spawn(kubelet(theirs, k, seen.clone()));
        (Session::start(ours, "ns/p".into()), seen, peer)
    }

    #[tokio::test]
    async fn connections_share_one_session_and_close_half_way() {
        let (session, _, _peer) = start(Kubelet::default());
        let (mut a, mut b) = (session.open(80).unwrap(), session.open(80).unwrap());
        assert_eq!(session.streams(), 2);
        a.write_all(b"hello").await.unwrap();
        b.write_all(b"world").await.unwrap();
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"world");
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        // Our end of `a` ends; its other way still carries the echo, then ends cleanly.
        a.write_all(b"last").await.unwrap();
        a.shutdown().await.unwrap();
        let mut rest = Vec::new();
        a.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"last");
        drop(a);
        assert_eq!(session.streams(), 1);
    }

    #[tokio::test]
    async fn the_kubelets_error_text_ends_the_stream_as_an_error() {
        let (session, _, _peer) = start(Kubelet::default());
        let mut s = session.open(1).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        let e = s.read_to_end(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert!(e.to_string().contains("error forwarding port 1 to pod p"), "{e}");
    }

    /// The kubelet resets the data stream part way through an answer whose
    /// end only the connection's end marks (HTTP/1.0, no length): what came
    /// is read, then an error, never the end of the stream.
    #[tokio::test]
    async fn a_stream_the_kubelet_resets_mid_body_ends_as_an_error() {
        let (session, _, _peer) = start(Kubelet::default());
        let mut s = session.open(3).unwrap();
        let mut buf = Vec::new();
        let e = s.read_to_end(&mut buf).await.unwrap_err();
        assert_eq!(buf, b"HTTP/1.0 200 OK\r\n\r\npart of a body");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
        assert!(e.to_string().contains("the kubelet reset the stream"), "{e}");
    }

    #[tokio::test]
    async fn a_session_that_ends_never_looks_like_a_clean_end() {
        let (session, _, peer) = start(Kubelet::default());
        let mut s = session.open(80).unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.unwrap();
        peer.abort();
        let mut buf = Vec::new();
        let e = s.read_to_end(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
        assert!(!session.is_usable());
        assert!(matches!(session.open(80), Err(SessionError::Ended { .. })));
    }

    #[tokio::test]
    async fn a_dropped_connection_resets_both_of_its_streams() {
        let (session, seen, _peer) = start(Kubelet::default());
        let mut s = session.open(80).unwrap();
        s.write_all(b"x").await.unwrap();
        let mut got = [0u8; 1];
        s.read_exact(&mut got).await.unwrap();
        drop(s);
        let mut t = session.open(80).unwrap();
        t.write_all(b"y").await.unwrap();
        t.read_exact(&mut got).await.unwrap();
        assert_eq!(*seen.resets.lock().unwrap(), [(3, rst::CANCEL), (1, rst::CANCEL)]);
    }

    #[tokio::test]
    async fn a_peer_that_keeps_windows_is_never_sent_beyond_them() {
        let (session, seen, _peer) = start(Kubelet { window: Some(1000), ..Default::default() });
        let s = session.open(80).unwrap();
        // Let the SETTINGS arrive before writing.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let (mut rd, mut wr) = tokio::io::split(s);
        let writer = tokio::spawn(async move {
            wr.write_all(&body).await.unwrap();
            wr.shutdown().await.unwrap();
            body
        });
        let mut echoed = Vec::new();
        rd.read_to_end(&mut echoed).await.unwrap();
        assert_eq!(echoed, writer.await.unwrap());
        assert_eq!(seen.overrun.load(Ordering::SeqCst), 0, "bytes sent beyond the window");
    }

    #[tokio::test]
    async fn a_stream_nobody_reads_holds_a_bounded_amount() {
        let flood = 16 * 1024 * 1024;
        let (session, seen, _peer) = start(Kubelet { flood, ..Default::default() });
        let mut s = session.open(2).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let sent = seen.written.load(Ordering::SeqCst);
        assert!(sent < 2 * MAX_BUFFERED + 256 * 1024, "the kubelet got {sent} bytes out to a stream nobody reads");
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        assert_eq!(all.len(), flood);
        assert!(all.iter().all(|b| *b == 7));
    }
}
