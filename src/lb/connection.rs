//! One listening port and its connections: each accepted connection goes
//! through a port-forward to one ready pod, bytes copied both ways with a
//! fixed buffer each (backpressure: nothing is read from one side faster
//! than the other side takes it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Instrument;

use super::PortStats;
use crate::routes::{Backend, LbPortState, PodEndpoint, RouteTable, ServiceKey, Target};
use crate::upstream::{Tunnel, Upstream, UpstreamError};

/// The copy buffer of each direction (one port-forward frame at most).
const BUFFER: usize = 64 * 1024;

/// After the client has closed its side, how long the pod may stay silent
/// before the connection is ended. A v4 port-forward cannot pass a
/// half-close on, so the pod never learns the client is done; a pod still
/// answering keeps the connection alive, a quiet one lets it go.
const LINGER: Duration = Duration::from_secs(2);

/// Accepts connections on `listener` for `service`'s `port` until aborted.
pub async fn accept_loop(
    listener: TcpListener,
    service: ServiceKey,
    port: u16,
    table: watch::Receiver<Arc<RouteTable>>,
    upstream: Upstream,
    stats: Arc<PortStats>,
) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!("{service}: cannot accept on port {port}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        // The backend as the table has it now: pods that turned ready since
        // the port was bound take this connection.
        let backend = current_backend(&table.borrow(), &service, port);
        let span = tracing::info_span!("tcp", service = %service, port, %peer);
        tokio::spawn(serve(client, backend, upstream.clone(), stats.clone()).instrument(span));
    }
}

/// The backend of `service`'s `port`, while the table serves it.
fn current_backend(table: &RouteTable, service: &ServiceKey, port: u16) -> Option<Arc<Backend>> {
    table
        .load_balancers
        .iter()
        .find(|lb| lb.service == *service)?
        .ports
        .iter()
        .find(|p| p.port == port && matches!(p.state, LbPortState::Serve))
        .map(|p| p.backend.clone())
}

/// Counts a connection as open for as long as it lives.
struct Open<'a>(&'a PortStats);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One client connection: a ready pod, else the connection is closed at once.
async fn serve(mut client: TcpStream, backend: Option<Arc<Backend>>, upstream: Upstream, stats: Arc<PortStats>) {
    PortStats::add(&stats.total, 1);
    PortStats::add(&stats.open, 1);
    let _open = Open(&stats);
    let Some((backend, first)) = backend.and_then(|b| b.pick().cloned().map(|ep| (b, ep))) else {
        tracing::debug!("no ready pod: closing the connection");
        PortStats::add(&stats.errors, 1);
        let _ = client.shutdown().await;
        return;
    };
    let (endpoint, pod, client_done) = match reach_pod(&mut client, &backend, first, &upstream, &stats).await {
        Ok(Reached::Pod(endpoint, pod, client_done)) => (endpoint, pod, client_done),
        Ok(Reached::Ended) => return,
        Err(e) => {
            tracing::warn!("closing the connection: {e}");
            PortStats::add(&stats.errors, 1);
            let _ = client.shutdown().await;
            return;
        }
    };
    let (client_read, client_write) = client.split();
    let (pod_read, pod_write) = tokio::io::split(*pod);
    let sent = AtomicU64::new(0);
    let received = AtomicU64::new(0);
    let upload = async {
        if client_done { Ok(()) } else { pump(client_read, pod_write, [&stats.bytes_in, &sent], false).await }
    };
    let download = pump(pod_read, client_write, [&stats.bytes_out, &received], true);
    tokio::pin!(upload, download);
    // The pod's side ending ends the connection. The client's side ending
    // does not at once: what the pod still sends reaches the client, until
    // the pod has been quiet for LINGER.
    let result = tokio::select! {
        r = &mut download => r,
        r = &mut upload => match r {
            Ok(()) => loop {
                let before = received.load(Ordering::Relaxed);
                match tokio::time::timeout(LINGER, &mut download).await {
                    Ok(r) => break r,
                    Err(_) if received.load(Ordering::Relaxed) == before => break Ok(()),
                    Err(_) => {}
                }
            },
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => tracing::debug!(%endpoint, "connection ended"),
        Err(e) => {
            PortStats::add(&stats.errors, 1);
            tracing::debug!(%endpoint, "connection broke: {e}");
        }
    }
}

/// How far [`reach_pod`] got.
enum Reached {
    /// A pod answered: its first bytes reached the client. Whether the
    /// client has already ended its side.
    Pod(PodEndpoint, Box<Tunnel>, bool),
    /// The pod ended the connection before sending anything.
    Ended,
}

/// The most client bytes kept to send again to another pod.
const REPLAY: usize = 64 * 1024;

/// Connects the client to a pod that answers. Until the pod's first byte,
/// what the client sends is kept (up to [`REPLAY`] bytes): when the kubelet
/// then reports on the error channel that it could not reach the pod (a pod
/// that went away before the EndpointSlice said so), the connection moves to
/// another ready pod and the kept bytes are sent there, so the client never
/// sees the failure. A pod that closes cleanly is never tried again: it may
/// have acted on what it got.
async fn reach_pod(
    client: &mut TcpStream,
    backend: &Backend,
    first: PodEndpoint,
    upstream: &Upstream,
    stats: &PortStats,
) -> Result<Reached, UpstreamError> {
    let mut replay: Option<Vec<u8>> = Some(Vec::new());
    let mut tried: Vec<PodEndpoint> = Vec::new();
    let mut next = Some(first);
    let mut client_done = false;
    let mut cbuf = vec![0u8; BUFFER];
    let mut pbuf = vec![0u8; BUFFER];
    loop {
        let Some(want) = next.take() else {
            return Err(UpstreamError::Connect {
                endpoint: format!("{}/{}", backend.namespace, backend.service),
                reason: "no ready pod could be reached".into(),
            });
        };
        let (endpoint, mut pod) = upstream.open_stream(backend, want).await?;
        tracing::debug!(%endpoint, "connected");
        tried.push(endpoint.clone());
        if let Some(kept) = replay.as_ref().filter(|k| !k.is_empty()) {
            pod.write_all(kept).await.and(pod.flush().await).map_err(|e| exchange(&endpoint, &e))?;
        }
        let failure = loop {
            tokio::select! {
                n = client.read(&mut cbuf), if !client_done => {
                    let n = n.map_err(|e| exchange(&endpoint, &e))?;
                    if n == 0 {
                        client_done = true;
                        continue;
                    }
                    replay = replay.take().filter(|k| k.len() + n <= REPLAY).map(|mut k| {
                        k.extend_from_slice(&cbuf[..n]);
                        k
                    });
                    pod.write_all(&cbuf[..n]).await.and(pod.flush().await).map_err(|e| exchange(&endpoint, &e))?;
                    PortStats::add(&stats.bytes_in, n as u64);
                }
                r = pod.read(&mut pbuf) => match r {
                    Ok(0) => {
                        let _ = client.shutdown().await;
                        return Ok(Reached::Ended);
                    }
                    Ok(n) => {
                        client.write_all(&pbuf[..n]).await.map_err(|e| exchange(&endpoint, &e))?;
                        PortStats::add(&stats.bytes_out, n as u64);
                        return Ok(Reached::Pod(endpoint, Box::new(pod), client_done));
                    }
                    Err(e) => break e,
                },
            }
        };
        // Only the kubelet's word that it could not reach the pod is safe
        // to act on with kept bytes; anything else ends the connection.
        if failure.kind() != std::io::ErrorKind::ConnectionAborted || replay.is_none() {
            return Err(exchange(&endpoint, &failure));
        }
        tracing::debug!(%endpoint, "the pod could not be reached ({failure}); trying another");
        next = match &backend.target {
            Target::Pods { ready, .. } => ready.iter().find(|e| !tried.contains(e)).cloned(),
            _ => None,
        };
    }
}

fn exchange(endpoint: &PodEndpoint, e: &std::io::Error) -> UpstreamError {
    UpstreamError::Exchange { endpoint: endpoint.to_string(), reason: e.to_string() }
}

/// Copies `from` into `to` until `from` ends, adding the bytes to each of
/// `counters`; shuts `to` down at the end when `shutdown`.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    counters: [&AtomicU64; 2],
    shutdown: bool,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            if shutdown {
                to.shutdown().await?;
            }
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        for c in counters {
            PortStats::add(c, n as u64);
        }
    }
}
