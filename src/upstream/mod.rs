//! Sending requests to pods: pooled HTTP connections over port-forwards,
//! with one retry on another pod when a connection fails before any answer.

mod pool;
mod portforward;
pub mod spdy;

pub use pool::{Key, Pool};
pub use portforward::{PortForwardError, PortForwardProtocol, PortForwardStream, PortForwarder, Tunnel};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;

use crate::kubeclient::describe_error;
use crate::routes::{Backend, PodEndpoint, Protocol};
use pool::Conn;

/// Why a request body could not be read to its end (the client's
/// connection broke, a mirror's copy was cut off): hyper then ends the
/// request unfinished, so that the pod never takes a short body for whole.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The request body type the proxy sends upstream.
pub type UpstreamBody = BoxBody<Bytes, BodyError>;

/// Limits of the connection pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Keep connections alive and reuse them. Off, every request opens its
    /// own port-forward (the naive way; for comparison).
    pub enabled: bool,
    /// Idle connections kept per pod port.
    pub max_idle_per_endpoint: usize,
    /// Idle connections beyond the warm spares are closed after this long.
    pub idle_timeout: Duration,
    /// Connections opened ahead of need per pod port in the routing table.
    pub warm_per_endpoint: usize,
    /// Port-forward upgrades under way at once, at most.
    pub max_concurrent_upgrades: usize,
    /// The port-forward protocol.
    pub protocol: PortForwardProtocol,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            enabled: true,
            max_idle_per_endpoint: 1024,
            idle_timeout: Duration::from_secs(90),
            warm_per_endpoint: 1,
            max_concurrent_upgrades: 16,
            protocol: PortForwardProtocol::Auto,
        }
    }
}

/// Why a request to a pod failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made to the pod.
    #[error("could not connect to pod {endpoint}: {reason}")]
    Connect {
        /// The pod endpoint.
        endpoint: String,
        /// Why, in plain words.
        reason: String,
    },
    /// The connection failed before the pod answered.
    #[error("pod {endpoint} failed the request: {reason}")]
    Exchange {
        /// The pod endpoint.
        endpoint: String,
        /// Why, in plain words.
        reason: String,
    },
    /// RBAC forbids the kubeconfig's user to port-forward to the pod.
    #[error(
        "devingress may not port-forward to pod {endpoint}: {message}. The kubeconfig's user needs RBAC permission to \
         `create` and `get` `pods/portforward` in namespace {namespace}, for example: `kubectl create role \
         devingress-portforward --verb=create,get --resource=pods/portforward -n {namespace}` and `kubectl create \
         rolebinding devingress-portforward --role=devingress-portforward --user=YOUR-USER -n {namespace}`"
    )]
    Forbidden {
        /// The pod endpoint.
        endpoint: String,
        /// The pod's namespace.
        namespace: String,
        /// What the API server said.
        message: String,
    },
    /// The client's request body could not be read to its end (malformed,
    /// or cut short) while it was passed on; the pod got an unfinished
    /// request.
    #[error("the request body from the client could not be read: {reason}")]
    ClientBody {
        /// Why, in plain words.
        reason: String,
    },
}

/// The parts of a request needed to send it again.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// Path and query, as received.
    pub path_and_query: String,
    /// Headers, already rewritten for the pod.
    pub headers: HeaderMap,
}

impl RequestHead {
    fn build(&self, protocol: Protocol, ep: &PodEndpoint, body: UpstreamBody) -> Request<UpstreamBody> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.headers_mut() = self.headers.clone();
        match protocol {
            Protocol::Http1 => {
                *req.version_mut() = Version::HTTP_11;
                *req.uri_mut() = self.path_and_query.parse().unwrap_or_else(|_| Uri::from_static("/"));
            }
            Protocol::H2c => {
                // HTTP/2 wants the authority in the URI; keep the client's host.
                *req.version_mut() = Version::HTTP_2;
                let authority = self
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}:{}", ep.pod, ep.port));
                req.headers_mut().remove(http::header::HOST);
                *req.uri_mut() = format!("http://{authority}{}", self.path_and_query)
                    .parse()
                    .unwrap_or_else(|_| Uri::from_static("/"));
            }
        }
        req
    }
}

/// The answer of a pod and which pod gave it.
pub struct Answer {
    /// The pod's response.
    pub response: Response<Incoming>,
    /// The pod that answered.
    pub endpoint: PodEndpoint,
}

/// Sends requests to pods over pooled port-forward connections.
#[derive(Clone)]
pub struct Upstream {
    pool: Arc<Pool>,
}

impl Upstream {
    /// An upstream that opens port-forwards through `kube`.
    pub fn new(kube: kube::Client, settings: PoolSettings) -> Self {
        let opener = PortForwarder::new(kube, &settings);
        Upstream { pool: Pool::new(opener, settings) }
    }

    /// The pool, for its figures and for telling it the live endpoints.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Sends `head` + `body` to a ready pod of `backend`. When the body is
    /// empty, a request whose connection fails before any answer is sent
    /// once more, to another ready pod when there is one: a pod that just
    /// went away, or a pooled connection the pod side closed, then costs no
    /// failed request.
    pub async fn send(
        &self,
        backend: &Backend,
        first: PodEndpoint,
        head: &RequestHead,
        body: UpstreamBody,
    ) -> Result<Answer, UpstreamError> {
        let replayable = hyper::body::Body::is_end_stream(&body);
        let protocol = backend.protocol;
        let first = match self.pool.passed_over(&first) {
            true => backend.pick_other(&first).filter(|other| !self.pool.passed_over(other)).unwrap_or(first),
            false => first,
        };
        let err = match self.send_once(protocol, &first, head, body).await {
            Ok(response) => return Ok(Answer { response, endpoint: first }),
            Err(e) if replayable => e,
            Err(e) => return Err(e),
        };
        let retry = backend.pick_other(&first).unwrap_or(first);
        tracing::debug!(failed = %err, retry = %retry, "retrying once");
        let empty = http_body_util::Empty::<Bytes>::new().map_err(|n| match n {}).boxed();
        self.send_once(protocol, &retry, head, empty).await.map(|response| Answer { response, endpoint: retry })
    }

    /// Opens a byte stream to a ready pod of `backend` for one raw TCP
    /// connection: `first`, else, when its port-forward cannot be opened,
    /// each other ready pod in turn; pods being passed over (see
    /// [`Pool::passed_over`]) are tried last. Fails only when none could be
    /// opened.
    pub async fn open_stream(
        &self,
        backend: &Backend,
        first: PodEndpoint,
    ) -> Result<(PodEndpoint, Tunnel), UpstreamError> {
        let others: Vec<PodEndpoint> = match &backend.target {
            crate::routes::Target::Pods { ready, .. } => ready.iter().filter(|e| **e != first).cloned().collect(),
            _ => Vec::new(),
        };
        let mut order: Vec<PodEndpoint> = std::iter::once(first).chain(others).collect();
        // A stable sort: otherwise the picked pod first, then the table's order.
        order.sort_by_key(|ep| self.pool.passed_over(ep));
        let mut last = None;
        for ep in order {
            match self.pool.open_stream(&ep).await {
                Ok(stream) => return Ok((ep, stream)),
                Err(e) => {
                    tracing::debug!(endpoint = %ep, "cannot open a port-forward, trying another pod: {e}");
                    last = Some(self.cannot_connect(&ep, &e));
                }
            }
        }
        Err(last.unwrap_or_else(|| UpstreamError::Connect {
            endpoint: format!("{}/{}", backend.namespace, backend.service),
            reason: "no ready pod".into(),
        }))
    }

    /// Why no connection to `ep` could be made, in the user's terms; the
    /// pod is passed over for a while (see [`Pool::passed_over`]).
    fn cannot_connect(&self, ep: &PodEndpoint, e: &(dyn std::error::Error + 'static)) -> UpstreamError {
        self.pool.mark_failing(ep);
        let mut cause = Some(e);
        while let Some(c) = cause {
            if let Some(kube::Error::Api(status)) = c.downcast_ref::<kube::Error>() {
                if status.code == 403 {
                    return UpstreamError::Forbidden {
                        endpoint: ep.to_string(),
                        namespace: ep.namespace.clone(),
                        message: status.message.clone(),
                    };
                }
            }
            cause = c.source();
        }
        UpstreamError::Connect { endpoint: ep.to_string(), reason: describe_error(e) }
    }

    async fn send_once(
        &self,
        protocol: Protocol,
        ep: &PodEndpoint,
        head: &RequestHead,
        body: UpstreamBody,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let key = Key { endpoint: ep.clone(), protocol };
        let checkout = self.pool.checkout(&key).await.map_err(|e| self.cannot_connect(ep, &e))?;
        let req = head.build(protocol, ep, body);
        let (result, mut ended) = match checkout.conn {
            Conn::H1(mut conn, ended) => match conn.send_request(req).await {
                Ok(res) => {
                    self.pool.checkin(key, conn, ended);
                    return Ok(res);
                }
                Err(e) => (e, ended),
            },
            Conn::H2(mut conn, ended) => match conn.send_request(req).await {
                Ok(res) => return Ok(res),
                Err(e) => (e, ended),
            },
        };
        // "Connection was not ready": the connection had ended before the
        // request went out, and its own end says why. (A request cancelled
        // while queued carries the connection's error as its cause.)
        use std::error::Error as _;
        if result.is_user() && result.source().is_some_and(|s| s.downcast_ref::<hyper::Error>().is_some()) {
            // The request body failed: the client's, read by the server side.
            return Err(UpstreamError::ClientBody { reason: describe_error(&result) });
        }
        let not_sent = result.is_canceled() && result.source().and_then(|s| s.downcast_ref::<hyper::Error>()).is_none();
        let reason = match not_sent {
            true => ended.reason().await.unwrap_or_else(|| describe_error(&result)),
            false => describe_error(&result),
        };
        Err(UpstreamError::Exchange { endpoint: ep.to_string(), reason })
    }
}
