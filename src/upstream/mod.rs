//! Sending requests to pods: a pooled HTTP client over port-forwards.

mod portforward;

pub use portforward::{PortForwardConnector, PortForwardError, endpoint_uri, parse_endpoint};

use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::kubeclient::describe_error;
use crate::routes::PodEndpoint;

/// The request body type the proxy sends upstream.
pub type UpstreamBody = BoxBody<Bytes, hyper::Error>;

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
    /// The connection failed during the exchange.
    #[error("pod {endpoint} failed the request: {reason}")]
    Exchange {
        /// The pod endpoint.
        endpoint: String,
        /// Why, in plain words.
        reason: String,
    },
}

/// HTTP client whose connections are pod port-forwards, pooled per pod and
/// port with keep-alive so a connection serves many requests.
#[derive(Clone)]
pub struct Upstream {
    client: Client<PortForwardConnector, UpstreamBody>,
}

impl Upstream {
    /// An upstream client opening port-forwards through `kube`.
    pub fn new(kube: kube::Client) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(PortForwardConnector::new(kube));
        Upstream { client }
    }

    /// Sends a request (whose URI came from [`endpoint_uri`]) to the pod.
    pub async fn send(
        &self,
        ep: &PodEndpoint,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        self.client.request(req).await.map_err(|e| {
            let reason = describe_error(&e);
            if e.is_connect() {
                UpstreamError::Connect { endpoint: ep.to_string(), reason }
            } else {
                UpstreamError::Exchange { endpoint: ep.to_string(), reason }
            }
        })
    }
}
