//! Connecting to the cluster: kubeconfig loading and a kube `Client` built
//! on a TCP_NODELAY connector.

use std::path::PathBuf;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tower::{BoxError, ServiceBuilder};

/// Where the kubeconfig comes from and which context to use.
#[derive(Debug, Clone, Default)]
pub struct KubeOptions {
    /// An explicit kubeconfig file; otherwise `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// A context other than the current one.
    pub context: Option<String>,
}

/// What devingress connected to, for messages.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    /// The kubeconfig context.
    pub context: String,
    /// The cluster name in that context.
    pub cluster: String,
    /// The API server URL.
    pub server: String,
    /// Every context in the kubeconfig (one may switch to them).
    pub contexts: Vec<String>,
    /// The Kubernetes version, once the API server has said it.
    pub version: std::sync::Arc<std::sync::OnceLock<String>>,
}

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig could not be found or read.
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// The kubeconfig has no usable context.
    #[error("the kubeconfig has no current context; pass --context NAME")]
    NoContext,
    /// The chosen context is not in the kubeconfig.
    #[error("context {0:?} is not in the kubeconfig (it has: {1})")]
    UnknownContext(String, String),
    /// The client could not be built (TLS material, auth settings).
    #[error("cannot set up the client: {0}")]
    Client(#[source] kube::Error),
}

/// Loads the kubeconfig and builds a client for the chosen context.
pub async fn connect(opts: &KubeOptions) -> Result<(Client, ClusterInfo), ConnectError> {
    let kubeconfig = match &opts.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    }
    .map_err(ConnectError::Kubeconfig)?;
    let context = match opts.context.clone().or_else(|| kubeconfig.current_context.clone()) {
        Some(c) => c,
        None => return Err(ConnectError::NoContext),
    };
    let Some(named) = kubeconfig.contexts.iter().find(|c| c.name == context) else {
        let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(ConnectError::UnknownContext(context, known.join(", ")));
    };
    let cluster = named.context.as_ref().map(|c| c.cluster.clone()).unwrap_or_default();
    let contexts = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    let options = KubeConfigOptions { context: Some(context.clone()), ..KubeConfigOptions::default() };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(ConnectError::Kubeconfig)?;
    let info =
        ClusterInfo { context, cluster, server: config.cluster_url.to_string(), contexts, version: Default::default() };
    let client = client_from_config(config).map_err(ConnectError::Client)?;
    Ok((client, info))
}

/// The TCP connector under the client: Nagle off. kube-rs's own builder
/// leaves Nagle on, which on a real API server stalls about 10% of
/// port-forwarded requests by ~40 ms (small WebSocket frames wait for the
/// peer's delayed ACK).
pub fn nodelay_connector(config: &Config) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    http
}

/// Builds a kube `Client` with the same layers kube's default builder
/// uses (base URI, auth, extra headers), on [`nodelay_connector`].
pub fn client_from_config(config: Config) -> Result<Client, kube::Error> {
    let https = config.rustls_https_connector_with_connector(nodelay_connector(&config))?;
    let http_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http_client);
    Ok(Client::new(service, config.default_namespace))
}

/// A short, plain description of a kube error for users: the innermost
/// cause (such as "Connection refused") rather than a nested debug dump.
pub fn describe_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        // The API server's own words beat the client's wrapping of them.
        if let Some(kube::Error::Api(status)) = e.downcast_ref::<kube::Error>() {
            return format!("{} ({})", status.message, status.reason);
        }
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    // The innermost cause says what happened; one level up says where.
    match parts.len() {
        0 => "unknown error".into(),
        1 => parts.remove(0),
        n => format!("{}: {}", parts[n - 2], parts[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("port-forward failed")]
    struct Outer(#[source] kube::Error);

    #[test]
    fn api_status_is_said_in_its_own_words() {
        let status = kube::core::Status::failure("pods \"web-0\" not found", "NotFound");
        let err = Outer(kube::Error::Api(Box::new(status)));
        assert_eq!(describe_error(&err), "pods \"web-0\" not found (NotFound)");
    }

    #[test]
    fn innermost_cause_with_its_context() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        #[derive(Debug, thiserror::Error)]
        #[error("tcp connect error")]
        struct Connect(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Client(#[source] Connect);
        assert_eq!(describe_error(&Client(Connect(io))), "tcp connect error: Connection refused");
    }
}
