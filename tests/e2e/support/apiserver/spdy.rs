//! Pod port-forward over SPDY/3.1, as the kubelet answers it behind the
//! API server: either straight after `Upgrade: SPDY/3.1` (kubectl with
//! `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`) or tunnelled in binary
//! WebSocket messages under the subprotocol `SPDY/3.1+portforward.k8s.io`
//! (kubectl's default since 1.31, KEP-4006).
//!
//! The client opens, per forwarded connection, an error stream and a data
//! stream with the headers `streamType`, `port` and `requestID`. Each gets
//! a SYN_REPLY with no headers at once. When both streams of a request are
//! there, the kubelet dials the pod's port and copies bytes both ways as
//! data frames; a failed dial is written as text on the error stream. Both
//! streams end with FIN. PINGs the client starts are echoed; SETTINGS and
//! WINDOW_UPDATE are read and ignored, as the kubelet's spdystream does
//! (it does no flow control). The pod's deletion ends the whole session.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
pub use devingress::upstream::spdy::WsBytes;
use devingress::upstream::spdy::{Codec, Frame, MAX_FRAME_LEN, rst};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What the session forwards to.
pub struct Target {
    /// Counts the connections forwarded.
    pub forwarded: std::sync::Arc<super::Shared>,
    /// The pod's name and uid, for error messages.
    pub pod: String,
    pub uid: String,
    /// Where a pod port is served, looked up at each dial.
    pub backend: Box<dyn Fn(u16) -> Option<SocketAddr> + Send + Sync>,
}

/// The two streams of one forwarded connection, as they arrive.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<(u32, mpsc::Receiver<Bytes>)>,
    port: u16,
}

/// Serves one SPDY session on `io` until the client goes or `gone` resolves.
pub async fn serve<IO>(io: IO, target: Target, gone: impl std::future::Future<Output = ()>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (out, frames) = mpsc::channel::<Frame>(256);
    let writer = tokio::spawn(write_frames(wr, frames));
    let mut codec = Codec::new(MAX_FRAME_LEN);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut inbound: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut forwards: HashMap<u32, tokio::task::AbortHandle> = HashMap::new();
    let target = std::sync::Arc::new(target);
    tokio::pin!(gone);
    'session: loop {
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("fake kubelet: bad SPDY frame: {e}");
                    let _ = out.send(Frame::GoAway { last_good: 0, status: 1 }).await;
                    break 'session;
                }
            };
            match frame {
                Frame::SynStream { stream, headers, fin, .. } => {
                    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                    let port = get("port").and_then(|p| p.parse::<u16>().ok());
                    let (Some(kind), Some(port)) = (get("streamtype"), port) else {
                        let _ = out.send(Frame::RstStream { stream, status: rst::PROTOCOL_ERROR }).await;
                        continue;
                    };
                    let request = get("requestid").unwrap_or_default();
                    let _ = out.send(Frame::SynReply { stream, fin: false, headers: Vec::new() }).await;
                    let pair = pairs.entry(request.clone()).or_default();
                    pair.port = port;
                    match kind.as_str() {
                        "error" => pair.error = Some(stream),
                        "data" => {
                            let (tx, rx) = mpsc::channel(16);
                            if !fin {
                                inbound.insert(stream, tx);
                            }
                            pair.data = Some((stream, rx));
                        }
                        _ => {
                            let _ = out.send(Frame::RstStream { stream, status: rst::PROTOCOL_ERROR }).await;
                            continue;
                        }
                    }
                    if pair.error.is_some() && pair.data.is_some() {
                        let pair = pairs.remove(&request).expect("just seen");
                        target.forwarded.spdy_streams.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let (data, rx) = pair.data.expect("both streams");
                        let error = pair.error.expect("both streams");
                        let task = tokio::spawn(forward(target.clone(), pair.port, data, rx, error, out.clone()));
                        forwards.insert(data, task.abort_handle());
                        forwards.insert(error, task.abort_handle());
                    }
                }
                Frame::Data { stream, fin, data } => {
                    if !data.is_empty() {
                        if let Some(tx) = inbound.get(&stream) {
                            let _ = tx.send(data).await;
                        }
                    }
                    if fin {
                        inbound.remove(&stream);
                    }
                }
                Frame::RstStream { stream, .. } => {
                    inbound.remove(&stream);
                    if let Some(task) = forwards.remove(&stream) {
                        task.abort();
                    }
                }
                // Echo the client's pings (odd ids); ours would be even.
                Frame::Ping { id } if id % 2 == 1 => {
                    let _ = out.send(Frame::Ping { id }).await;
                }
                Frame::GoAway { .. } => break 'session,
                _ => {}
            }
        }
        forwards.retain(|_, t| !t.is_finished());
        tokio::select! {
            () = &mut gone => break,
            n = rd.read_buf(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    for task in forwards.values() {
        task.abort();
    }
    drop(out);
    let _ = writer.await;
}

/// Writes frames as they come, several to one write when they queue up.
async fn write_frames<W: AsyncWrite>(wr: W, mut frames: mpsc::Receiver<Frame>) {
    tokio::pin!(wr);
    let mut codec = Codec::new(MAX_FRAME_LEN);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(frame) = frames.recv().await {
        codec.encode(&frame, &mut buf);
        while buf.len() < 256 * 1024 {
            match frames.try_recv() {
                Ok(f) => codec.encode(&f, &mut buf),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
    let _ = wr.shutdown().await;
}

/// One forwarded connection: dial the pod port, copy both ways, end both
/// streams. A failed dial is reported on the error stream, as the kubelet does.
async fn forward(
    target: std::sync::Arc<Target>,
    port: u16,
    data: u32,
    mut from_client: mpsc::Receiver<Bytes>,
    error: u32,
    out: mpsc::Sender<Frame>,
) {
    let addr = (target.backend)(port);
    let dialled = match addr {
        Some(addr) => TcpStream::connect(addr).await,
        None => Err(io::Error::from(io::ErrorKind::ConnectionRefused)),
    };
    match dialled {
        Err(e) => {
            let shown = addr.map(|a| a.to_string()).unwrap_or_else(|| format!("127.0.0.1:{port}"));
            let text = format!(
                "error forwarding port {port} to pod {}, uid {}: failed to connect to {shown}: {e}",
                target.pod, target.uid
            );
            let _ = out.send(Frame::Data { stream: error, fin: false, data: Bytes::from(text) }).await;
        }
        Ok(tcp) => {
            let _ = tcp.set_nodelay(true);
            let (mut rd, mut wr) = tcp.into_split();
            let to_pod = async {
                while let Some(chunk) = from_client.recv().await {
                    if wr.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                let _ = wr.shutdown().await;
            };
            let reset_after = target.forwarded.resetting.lock().unwrap().get(&target.pod).copied();
            let reset = std::sync::atomic::AtomicBool::new(false);
            let to_client = async {
                let mut buf = vec![0u8; 32 * 1024];
                let mut sent = 0;
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let n = reset_after.map_or(n, |limit| n.min(limit - sent));
                            let chunk = Bytes::copy_from_slice(&buf[..n]);
                            if out.send(Frame::Data { stream: data, fin: false, data: chunk }).await.is_err() {
                                return;
                            }
                            sent += n;
                            if reset_after == Some(sent) {
                                let _ = out.send(Frame::RstStream { stream: data, status: rst::INTERNAL_ERROR }).await;
                                reset.store(true, std::sync::atomic::Ordering::SeqCst);
                                return;
                            }
                        }
                    }
                }
            };
            // As the container runtime does: when one direction ends, the
            // other gets a second to finish.
            tokio::pin!(to_pod, to_client);
            tokio::select! {
                () = &mut to_pod => { let _ = tokio::time::timeout(std::time::Duration::from_secs(1), to_client).await; }
                () = &mut to_client => { let _ = tokio::time::timeout(std::time::Duration::from_secs(1), to_pod).await; }
            }
            if reset.load(std::sync::atomic::Ordering::SeqCst) {
                // A reset stream gets nothing more.
                let _ = out.send(Frame::Data { stream: error, fin: true, data: Bytes::new() }).await;
                return;
            }
        }
    }
    let _ = out.send(Frame::Data { stream: data, fin: true, data: Bytes::new() }).await;
    let _ = out.send(Frame::Data { stream: error, fin: true, data: Bytes::new() }).await;
}
