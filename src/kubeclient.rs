//! Connecting to the cluster: kubeconfig loading and a kube `Client` built
//! on a TCP_NODELAY connector.

use std::path::PathBuf;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::{Client, Config};
use tower::{BoxError, ServiceBuilder};

use crate::kubeconfig::{self, KubeconfigError, Loaded};

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
    /// The kubeconfig file(s) it was read from.
    pub kubeconfig: Vec<std::path::PathBuf>,
    /// Why the API server did not answer the first question, if it did not
    /// (already said to the user).
    pub unreachable: Option<String>,
    /// The Kubernetes version, once the API server has said it.
    pub version: std::sync::Arc<std::sync::OnceLock<String>>,
}

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig is missing, unreadable, or its context unusable.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// The context's settings cannot be used (a certificate file, say).
    #[error("cannot use context {context:?}: {reason}. Fix the kubeconfig or pick another context with --context")]
    Settings {
        /// The context.
        context: String,
        /// What is wrong.
        reason: String,
    },
    /// The context's credential plugin ran and failed.
    #[error(
        "the credential plugin of context {context:?} failed: {reason}. Log in again with your provider's tool \
         (such as `aws sso login`, `gcloud auth login` or `az login`), then run devingress again"
    )]
    Plugin {
        /// The context.
        context: String,
        /// What it said.
        reason: String,
    },
}

/// What asking the API server for its version found.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Nothing answers (yet): the cluster may be stopped. Not fatal for `up`.
    #[error(
        "cannot reach the API server at {server} (context {context}): {reason}. Is the cluster running? Start it \
         (`docker start kind-control-plane` for kind, `minikube start`, `k3d cluster start`), or pick another \
         context with --context"
    )]
    Unreachable {
        /// The API server URL.
        server: String,
        /// The context.
        context: String,
        /// The innermost cause ("Connection refused", "no answer within 5s").
        reason: String,
    },
    /// The API server refused the credentials (401): expired or revoked.
    #[error(
        "the API server at {server} refused the credentials of context {context} (401 Unauthorized{message}): \
         they have expired or do not belong to this cluster. Get fresh ones: `kind export kubeconfig`, \
         `minikube update-context`, `k3d kubeconfig merge --kubeconfig-merge-default`, or your provider's command \
         (`aws eks update-kubeconfig`, `gcloud container clusters get-credentials`, `az aks get-credentials`)"
    )]
    Unauthorized {
        /// The API server URL.
        server: String,
        /// The context.
        context: String,
        /// The API server's message, after ": ", when it says more than "Unauthorized".
        message: String,
    },
    /// The credential plugin failed when asked for a token.
    #[error(transparent)]
    Plugin(ConnectError),
}

impl ProbeError {
    /// Whether devingress can go on and retry (the server may come up).
    pub fn is_transient(&self) -> bool {
        matches!(self, ProbeError::Unreachable { .. })
    }
}

/// Loads the kubeconfig and builds a client for the chosen context.
pub async fn connect(opts: &KubeOptions) -> Result<(Client, ClusterInfo), ConnectError> {
    let loaded = kubeconfig::load(opts.kubeconfig.as_deref(), opts.context.as_deref())?;
    connect_loaded(loaded).await
}

/// Builds a client for an already checked kubeconfig.
pub async fn connect_loaded(loaded: Loaded) -> Result<(Client, ClusterInfo), ConnectError> {
    let options = kubeconfig::options(&loaded);
    let Loaded { kubeconfig, files, context, cluster, contexts, .. } = loaded;
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| ConnectError::Settings { context: context.clone(), reason: describe_error(&e) })?;
    let info = ClusterInfo {
        context,
        cluster,
        server: config.cluster_url.to_string(),
        contexts,
        kubeconfig: files,
        unreachable: None,
        version: Default::default(),
    };
    let client = client_from_config(config).map_err(|e| classify_client_error(&info.context, e))?;
    Ok((client, info))
}

/// A client error as a [`ConnectError`]: credential plugin failures apart.
fn classify_client_error(context: &str, e: kube::Error) -> ConnectError {
    match &e {
        kube::Error::Auth(_) => ConnectError::Plugin { context: context.into(), reason: describe_error(&e) },
        _ => ConnectError::Settings { context: context.into(), reason: describe_error(&e) },
    }
}

/// Asks the API server for its version within `deadline`, and says plainly
/// why it could not.
pub async fn probe(client: &Client, info: &ClusterInfo, deadline: std::time::Duration) -> Result<String, ProbeError> {
    let unreachable =
        |reason: String| ProbeError::Unreachable { server: info.server.clone(), context: info.context.clone(), reason };
    match tokio::time::timeout(deadline, client.apiserver_version()).await {
        Ok(Ok(v)) => Ok(v.git_version),
        Ok(Err(kube::Error::Api(status))) if status.code == 401 => Err(ProbeError::Unauthorized {
            server: info.server.clone(),
            context: info.context.clone(),
            message: if status.message.is_empty() || status.message == "Unauthorized" {
                String::new()
            } else {
                format!(": {}", status.message)
            },
        }),
        Ok(Err(e @ kube::Error::Auth(_))) => Err(ProbeError::Plugin(classify_client_error(&info.context, e))),
        Ok(Err(e)) => Err(unreachable(describe_error(&e))),
        Err(_) => Err(unreachable(format!("no answer within {}s", deadline.as_secs()))),
    }
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
    // A credential plugin's token is renewed when the API server refuses it.
    let renew = config.auth_info.exec.as_ref().and_then(crate::exec_credentials::RenewOn401Layer::new);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .option_layer(renew)
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
