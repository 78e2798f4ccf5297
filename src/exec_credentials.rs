//! Tokens from a kubeconfig's exec credential plugin (the way EKS, GKE and
//! AKS clusters are reached), renewed when the API server starts refusing
//! them. kube-rs runs the plugin once, and again only when the token says
//! when it expires; a token that is revoked or expires early, or says
//! nothing of its expiry, would be refused for as long as devingress runs.
//! As client-go (kubectl) does, a 401 makes the plugin run again, and the
//! requests after it carry the new token.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode, header};
use kube::config::ExecConfig;
use tower::{Layer, Service};

/// How long the plugin may take.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The plugin runs at most this often, however many requests are refused.
const MIN_INTERVAL: Duration = Duration::from_secs(2);

/// Why the plugin gave no token.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// It could not be started, or ran too long.
    #[error("could not run `{command}`: {reason}")]
    Run {
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
    /// It failed, or printed no token.
    #[error("`{command}` gave no token: {reason}")]
    NoToken {
        /// The command.
        command: String,
        /// Why: its exit status and error output, or what it printed.
        reason: String,
    },
}

/// Renews the plugin's token on a 401. Goes after kube's auth layer, whose
/// `Authorization` it replaces once a token has been renewed.
#[derive(Clone)]
pub struct RenewOn401Layer {
    renewal: Arc<Renewal>,
}

impl RenewOn401Layer {
    /// For the user whose token `exec` gives; `None` when there is no
    /// command to run.
    pub fn new(exec: &ExecConfig) -> Option<Self> {
        exec.command.as_ref()?;
        Some(RenewOn401Layer {
            renewal: Arc::new(Renewal {
                exec: exec.clone(),
                replacement: RwLock::new(None),
                last_run: tokio::sync::Mutex::new(None),
            }),
        })
    }
}

impl<S> Layer<S> for RenewOn401Layer {
    type Service = RenewOn401<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RenewOn401 { inner, renewal: self.renewal.clone() }
    }
}

/// The service of [`RenewOn401Layer`].
#[derive(Clone)]
pub struct RenewOn401<S> {
    inner: S,
    renewal: Arc<Renewal>,
}

struct Renewal {
    exec: ExecConfig,
    /// `(the header kube's layer sets, the renewed one that replaces it)`.
    replacement: RwLock<Option<(HeaderValue, HeaderValue)>>,
    /// When the plugin last ran; held while it runs (one run at a time).
    last_run: tokio::sync::Mutex<Option<Instant>>,
}

impl Renewal {
    fn command(&self) -> String {
        self.exec.command.clone().unwrap_or_default()
    }

    /// The header to send in place of `from_kube`, if it was renewed.
    fn replace(&self, from_kube: Option<&HeaderValue>) -> Option<HeaderValue> {
        let guard = self.replacement.read().expect("replacement lock");
        match (&*guard, from_kube) {
            (Some((old, new)), Some(sent)) if old == sent => Some(new.clone()),
            _ => None,
        }
    }

    /// The API server refused `sent` (in place of `from_kube`): runs the
    /// plugin for a new token, unless another request did just that.
    async fn renew(&self, from_kube: HeaderValue, sent: HeaderValue) {
        let mut last_run = self.last_run.lock().await;
        if self.replace(Some(&from_kube)).is_some_and(|current| current != sent) {
            return; // renewed since this request was sent
        }
        if last_run.is_some_and(|t| t.elapsed() < MIN_INTERVAL) {
            return;
        }
        *last_run = Some(Instant::now());
        match run_plugin(&self.exec).await {
            Ok(token) if token == sent => {
                tracing::warn!(
                    "the API server refuses the token from the credential plugin `{}`, and the plugin gives the same \
                     one again; log in again with your cloud's CLI",
                    self.command()
                );
            }
            Ok(token) => {
                tracing::info!(
                    "the API server refused the token from the credential plugin `{}` (401): ran the credential \
                     plugin again for a new token",
                    self.command()
                );
                *self.replacement.write().expect("replacement lock") = Some((from_kube, token));
            }
            Err(e) => tracing::warn!("the API server refused the token (401), and a new one could not be had: {e}"),
        }
    }
}

impl<S, B, RB> Service<Request<B>> for RenewOn401<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let from_kube = req.headers().get(header::AUTHORIZATION).cloned();
        if let Some(renewed) = self.renewal.replace(from_kube.as_ref()) {
            req.headers_mut().insert(header::AUTHORIZATION, renewed);
        }
        let sent = req.headers().get(header::AUTHORIZATION).cloned();
        let renewal = self.renewal.clone();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let res = answer.await?;
            if res.status() == StatusCode::UNAUTHORIZED {
                if let (Some(from_kube), Some(sent)) = (from_kube, sent) {
                    renewal.renew(from_kube, sent).await;
                }
            }
            Ok(res)
        })
    }
}

/// Runs the plugin as kubectl does, without a terminal (a daemon has
/// none), and returns its token as an `Authorization` header.
async fn run_plugin(exec: &ExecConfig) -> Result<HeaderValue, PluginError> {
    let command = exec.command.clone().unwrap_or_default();
    let run_error = |reason: String| PluginError::Run { command: command.clone(), reason };
    let no_token = |reason: String| PluginError::NoToken { command: command.clone(), reason };
    let mut cmd = tokio::process::Command::new(&command);
    cmd.args(exec.args.iter().flatten());
    for pair in exec.env.iter().flatten() {
        if let (Some(name), Some(value)) = (pair.get("name"), pair.get("value")) {
            cmd.env(name, value);
        }
    }
    let mut spec = serde_json::json!({"interactive": false});
    if exec.provide_cluster_info {
        if let Some(cluster) = &exec.cluster {
            spec["cluster"] = serde_json::to_value(cluster).unwrap_or_default();
        }
    }
    let info = serde_json::json!({
        "apiVersion": exec.api_version.clone().unwrap_or_else(|| "client.authentication.k8s.io/v1".into()),
        "kind": "ExecCredential",
        "spec": spec,
    });
    cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
    for name in exec.drop_env.iter().flatten() {
        cmd.env_remove(name);
    }
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = match tokio::time::timeout(PLUGIN_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(run_error(e.to_string())),
        Err(_) => return Err(run_error(format!("no answer within {PLUGIN_TIMEOUT:?}"))),
    };
    if !out.status.success() {
        return Err(no_token(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim())));
    }
    token_header(&out.stdout).map_err(no_token)
}

/// The `Authorization` header for the token in an ExecCredential.
fn token_header(stdout: &[u8]) -> Result<HeaderValue, String> {
    let credential: serde_json::Value =
        serde_json::from_slice(stdout).map_err(|e| format!("its output is not an ExecCredential: {e}"))?;
    let token = credential["status"]["token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
        if credential["status"]["clientCertificateData"].is_string() {
            "it gives a client certificate, which devingress cannot renew while it runs".to_string()
        } else {
            "its ExecCredential has no status.token".to_string()
        }
    })?;
    let mut value =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| "its token is not ASCII".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_exec_credential_status() {
        let v = token_header(br#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"abc","expirationTimestamp":"2026-12-01T00:00:00Z"}}"#).unwrap();
        assert_eq!(v, "Bearer abc");
        assert!(v.is_sensitive());
        let certs = token_header(br#"{"status":{"clientCertificateData":"x","clientKeyData":"y"}}"#).unwrap_err();
        assert!(certs.contains("client certificate"), "{certs}");
        assert!(token_header(br#"{"status":{}}"#).unwrap_err().contains("no status.token"));
        assert!(token_header(b"not json").unwrap_err().contains("not an ExecCredential"));
    }

    #[tokio::test]
    async fn a_401_runs_the_plugin_again_and_later_requests_carry_its_token() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "second").unwrap();
        let exec: ExecConfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "/bin/sh",
            "args": ["-c", format!(r#"printf '{{"status":{{"token":"%s"}}}}' "$(cat {})""#, token.display())],
        }))
        .unwrap();
        // The API server takes only "Bearer second".
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        let api = tower::service_fn(move |req: Request<()>| {
            let auth = req.headers().get(header::AUTHORIZATION).unwrap().to_str().unwrap().to_string();
            log.lock().unwrap().push(auth.clone());
            let status = if auth == "Bearer second" { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
            async move { Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(()).unwrap()) }
        });
        let mut svc = RenewOn401Layer::new(&exec).unwrap().layer(api);
        let req = || Request::builder().header(header::AUTHORIZATION, "Bearer first").body(()).unwrap();
        use tower::ServiceExt;
        assert_eq!(svc.ready().await.unwrap().call(req()).await.unwrap().status(), 401);
        assert_eq!(svc.ready().await.unwrap().call(req()).await.unwrap().status(), 200);
        assert_eq!(svc.ready().await.unwrap().call(req()).await.unwrap().status(), 200);
        assert_eq!(*seen.lock().unwrap(), ["Bearer first", "Bearer second", "Bearer second"]);
    }
}
