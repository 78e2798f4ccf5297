//! Connections to pods, pooled per pod, port and protocol.
//!
//! HTTP/1.1 connections are kept alive and reused one request at a time;
//! an h2c backend shares one multiplexed connection. Idle connections are
//! closed after the idle timeout, and at once when their endpoint leaves the
//! routing table (a pod that turned not-ready or went away). A spare
//! connection is opened ahead of need, so a request seldom pays for the
//! port-forward upgrade, and a semaphore caps how many upgrades are under
//! way so a burst cannot overload the API server.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;

use super::portforward::{PortForwardError, PortForwarder, Tunnel};
use super::{PoolSettings, UpstreamBody};
use crate::routes::{PodEndpoint, Protocol};

/// What a connection is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The pod port.
    pub endpoint: PodEndpoint,
    /// What the pod speaks on it.
    pub protocol: Protocol,
}

/// A connection checked out of the pool.
pub enum Conn {
    /// One HTTP/1.1 connection, used by one request at a time.
    H1(http1::SendRequest<UpstreamBody>, Ended),
    /// A handle on a shared HTTP/2 connection.
    H2(http2::SendRequest<UpstreamBody>, Ended),
}

/// Why a connection to a pod ended, once it has. The task that drives the
/// connection fills it in; a request that failed because the connection
/// closed before it was sent ("connection was not ready") reads it, so
/// that the user sees the cause (such as the kubelet's "error forwarding
/// port 8080 to pod …") rather than hyper's word for the symptom.
#[derive(Clone)]
pub struct Ended(watch::Receiver<Option<String>>);

impl Ended {
    fn new() -> (watch::Sender<Option<String>>, Ended) {
        let (tx, rx) = watch::channel(None);
        (tx, Ended(rx))
    }

    /// What ended the connection, waiting a moment for the task that
    /// drives it to say (it is ending when a request on it was cancelled).
    pub async fn reason(&mut self) -> Option<String> {
        let said = tokio::time::timeout(Duration::from_millis(500), self.0.wait_for(Option::is_some)).await;
        said.ok()?.ok()?.clone()
    }
}

/// Runs a connection to its end and says why it ended.
async fn drive<F, E>(endpoint: String, conn: F, ended: watch::Sender<Option<String>>)
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    let reason = match conn.await {
        Ok(()) => "the connection to the pod closed".to_string(),
        Err(e) => {
            tracing::debug!(%endpoint, "upstream connection ended: {e}");
            crate::kubeclient::describe_error(&e)
        }
    };
    ended.send_replace(Some(reason));
}

/// A checked-out connection and whether it had been used before.
pub struct Checkout {
    /// The connection.
    pub conn: Conn,
    /// Whether it came from the pool (a reused connection may turn out
    /// closed by the pod side; such a failure is safe to retry).
    pub reused: bool,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The port-forward could not be opened.
    #[error(transparent)]
    PortForward(#[from] PortForwardError),
    /// The HTTP handshake over it failed.
    #[error("HTTP handshake with pod {endpoint} failed: {source}")]
    Handshake {
        /// The pod endpoint.
        endpoint: String,
        /// What hyper said.
        #[source]
        source: hyper::Error,
    },
}

#[derive(Default)]
struct Slot {
    idle: VecDeque<(http1::SendRequest<UpstreamBody>, Ended, Instant)>,
    shared: Option<(http2::SendRequest<UpstreamBody>, Ended, Instant)>,
    warming: usize,
}

impl Slot {
    /// How many connections short of `warm` spares it is, counting those
    /// being opened.
    fn missing(&self, protocol: Protocol, warm: usize) -> usize {
        let (have, want) = match protocol {
            Protocol::Http1 => (self.idle.len(), warm),
            Protocol::H2c => (usize::from(self.shared.is_some()), 1),
        };
        want.saturating_sub(have + self.warming)
    }
}

/// The pool. Shared as `Arc<Pool>`.
pub struct Pool {
    opener: PortForwarder,
    settings: PoolSettings,
    slots: Mutex<HashMap<Key, Slot>>,
    /// Endpoints currently in the routing table; connections to others are not kept.
    live: Mutex<HashSet<PodEndpoint>>,
    /// Endpoints whose port-forward could not be opened, and when.
    failing: Mutex<HashMap<PodEndpoint, Instant>>,
    /// How many entries `failing` has: while none, a request's check takes no lock.
    failing_count: AtomicUsize,
}

/// How long a pod whose port-forward could not be opened is passed over:
/// no new requests while its Service has other ready pods, and no warm
/// spares opened to it.
const PASS_OVER: Duration = Duration::from_secs(30);

impl Pool {
    /// A pool opening connections with `opener`. Starts its idle reaper.
    pub fn new(opener: PortForwarder, settings: PoolSettings) -> Arc<Self> {
        let pool = Arc::new(Pool {
            opener,
            settings,
            slots: Mutex::new(HashMap::new()),
            live: Mutex::new(HashSet::new()),
            failing: Mutex::new(HashMap::new()),
            failing_count: AtomicUsize::new(0),
        });
        tokio::spawn(reap(Arc::downgrade(&pool)));
        pool
    }

    /// Takes a ready connection, or opens one.
    pub async fn checkout(self: &Arc<Self>, key: &Key) -> Result<Checkout, ConnectError> {
        let (reused, short) = {
            let mut slots = self.slots.lock().expect("pool lock");
            let slot = slots.entry(key.clone()).or_default();
            let reused = match key.protocol {
                Protocol::Http1 => {
                    let mut found = None;
                    while let Some((conn, ended, _)) = slot.idle.pop_back() {
                        if conn.is_ready() {
                            found = Some(Conn::H1(conn, ended));
                            break;
                        }
                    }
                    found
                }
                Protocol::H2c => match &mut slot.shared {
                    Some((conn, ended, used)) if !conn.is_closed() => {
                        *used = Instant::now();
                        Some(Conn::H2(conn.clone(), ended.clone()))
                    }
                    _ => {
                        slot.shared = None;
                        None
                    }
                },
            };
            (reused, slot.missing(key.protocol, self.settings.warm_per_endpoint) > 0)
        };
        if let Some(conn) = reused {
            // Most requests find spares left and need not look further.
            if short {
                self.top_up(key);
            }
            return Ok(Checkout { conn, reused: true });
        }
        let conn = self.connect(key).await?;
        if let Conn::H2(h2, ended) = &conn {
            if self.settings.enabled && self.is_live(&key.endpoint) {
                self.slots.lock().expect("pool lock").entry(key.clone()).or_default().shared =
                    Some((h2.clone(), ended.clone(), Instant::now()));
            }
        }
        self.top_up(key);
        Ok(Checkout { conn, reused: false })
    }

    /// Gives an HTTP/1.1 connection back once its exchange has finished:
    /// at once when it has (a response whose body hyper has already taken
    /// in whole, the usual case for small answers), else from a task that
    /// waits for the rest of the body to pass.
    pub fn checkin(self: &Arc<Self>, key: Key, mut conn: http1::SendRequest<UpstreamBody>, ended: Ended) {
        if !self.settings.enabled {
            return;
        }
        if conn.is_ready() {
            self.put_idle(key, conn, ended);
            return;
        }
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            // Ready again once the response body has been read to its end.
            if conn.ready().await.is_err() {
                return;
            }
            if let Some(pool) = pool.upgrade() {
                pool.put_idle(key, conn, ended);
            }
        });
    }

    fn put_idle(&self, key: Key, conn: http1::SendRequest<UpstreamBody>, ended: Ended) {
        if !self.is_live(&key.endpoint) {
            return;
        }
        let mut slots = self.slots.lock().expect("pool lock");
        let slot = slots.entry(key).or_default();
        if slot.idle.len() < self.settings.max_idle_per_endpoint {
            slot.idle.push_back((conn, ended, Instant::now()));
        }
    }

    fn is_live(&self, ep: &PodEndpoint) -> bool {
        self.live.lock().expect("pool lock").contains(ep)
    }

    /// Sets the endpoints that are in the routing table: connections to
    /// others are closed now (idle) or when their exchange ends (busy), and
    /// each new one gets a warm connection.
    pub fn set_live(self: &Arc<Self>, keys: &[Key]) {
        let endpoints: HashSet<PodEndpoint> = keys.iter().map(|k| k.endpoint.clone()).collect();
        self.opener.keep_pods(&endpoints.iter().map(|e| (e.namespace.clone(), e.pod.clone())).collect());
        *self.live.lock().expect("pool lock") = endpoints.clone();
        let closed: usize = {
            let mut slots = self.slots.lock().expect("pool lock");
            let before: usize = slots.values().map(|s| s.idle.len() + usize::from(s.shared.is_some())).sum();
            slots.retain(|k, _| endpoints.contains(&k.endpoint));
            before - slots.values().map(|s| s.idle.len() + usize::from(s.shared.is_some())).sum::<usize>()
        };
        if closed > 0 {
            tracing::debug!(closed, "closed pooled connections to endpoints that left the table");
        }
        for key in keys {
            self.top_up(key);
        }
    }

    /// Notes that a port-forward to `ep` could not be opened: it is passed
    /// over for [`PASS_OVER`].
    pub fn mark_failing(&self, ep: &PodEndpoint) {
        let mut failing = self.failing.lock().expect("pool lock");
        failing.insert(ep.clone(), Instant::now());
        self.failing_count.store(failing.len(), Ordering::Release);
    }

    /// Whether `ep`'s port-forward could not be opened less than
    /// [`PASS_OVER`] ago (pod gone, kubelet not answering, forbidden).
    pub fn passed_over(&self, ep: &PodEndpoint) -> bool {
        if self.failing_count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut failing = self.failing.lock().expect("pool lock");
        match failing.get(ep) {
            Some(when) if when.elapsed() < PASS_OVER => true,
            Some(_) => {
                failing.remove(ep);
                self.failing_count.store(failing.len(), Ordering::Release);
                false
            }
            None => false,
        }
    }

    /// Opens connections in the background until the endpoint has its warm spares.
    fn top_up(self: &Arc<Self>, key: &Key) {
        if !self.settings.enabled
            || self.settings.warm_per_endpoint == 0
            || !self.is_live(&key.endpoint)
            || self.passed_over(&key.endpoint)
        {
            return;
        }
        let wanted = {
            let mut slots = self.slots.lock().expect("pool lock");
            let slot = slots.entry(key.clone()).or_default();
            let n = slot.missing(key.protocol, self.settings.warm_per_endpoint);
            slot.warming += n;
            n
        };
        for _ in 0..wanted {
            let pool = self.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let result = pool.connect(&key).await;
                let mut slots = pool.slots.lock().expect("pool lock");
                let slot = slots.entry(key.clone()).or_default();
                slot.warming = slot.warming.saturating_sub(1);
                let live = pool.live.lock().expect("pool lock").contains(&key.endpoint);
                match result {
                    Ok(Conn::H1(c, ended)) if live => slot.idle.push_back((c, ended, Instant::now())),
                    Ok(Conn::H2(c, ended)) if live && slot.shared.is_none() => {
                        slot.shared = Some((c, ended, Instant::now()))
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(endpoint = %key.endpoint, "warming a connection failed: {e}");
                        if matches!(e, ConnectError::PortForward(_)) {
                            pool.mark_failing(&key.endpoint);
                        }
                    }
                }
            });
        }
    }

    /// Opens a port-forward to `ep` as a plain byte stream (for raw TCP),
    /// under the same cap on concurrent upgrades as pooled connections.
    pub async fn open_stream(&self, ep: &PodEndpoint) -> Result<Tunnel, PortForwardError> {
        self.opener.open(ep).await
    }

    /// Opens a port-forward and runs the HTTP handshake over it.
    async fn connect(&self, key: &Key) -> Result<Conn, ConnectError> {
        let io = TokioIo::new(self.opener.open(&key.endpoint).await?);
        let endpoint = key.endpoint.to_string();
        let (said, ended) = Ended::new();
        match key.protocol {
            Protocol::Http1 => {
                let (send, conn) = http1::handshake(io)
                    .await
                    .map_err(|source| ConnectError::Handshake { endpoint: endpoint.clone(), source })?;
                tokio::spawn(drive(endpoint, conn.with_upgrades(), said));
                Ok(Conn::H1(send, ended))
            }
            Protocol::H2c => {
                let (send, conn) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .keep_alive_interval(Duration::from_secs(30))
                    .handshake(io)
                    .await
                    .map_err(|source| ConnectError::Handshake { endpoint: endpoint.clone(), source })?;
                tokio::spawn(drive(endpoint, conn, said));
                Ok(Conn::H2(send, ended))
            }
        }
    }

    fn expire(&self, now: Instant) {
        let timeout = self.settings.idle_timeout;
        // The newest few stay as warm spares, however long they wait.
        let spares = if self.settings.enabled { self.settings.warm_per_endpoint } else { 0 };
        let mut slots = self.slots.lock().expect("pool lock");
        for slot in slots.values_mut() {
            let keep_from = slot.idle.len().saturating_sub(spares);
            let mut i = 0;
            slot.idle.retain(|(c, _, since)| {
                let spare = i >= keep_from;
                i += 1;
                !c.is_closed() && (spare || now.duration_since(*since) < timeout)
            });
            if slot.shared.as_ref().is_some_and(|(c, _, used)| now.duration_since(*used) >= timeout || c.is_closed()) {
                slot.shared = None;
            }
        }
        slots.retain(|_, s| !s.idle.is_empty() || s.shared.is_some() || s.warming > 0);
    }
}

/// Closes connections idle for longer than the idle timeout.
async fn reap(pool: Weak<Pool>) {
    let period = match pool.upgrade() {
        Some(p) => (p.settings.idle_timeout / 4).max(Duration::from_millis(100)),
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        match pool.upgrade() {
            Some(p) => p.expire(Instant::now()),
            None => return,
        }
    }
}
