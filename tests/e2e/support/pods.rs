//! Local HTTP servers that play the pods. Each answers with its pod name and
//! what it received, and echoes WebSocket messages.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// A running pod server.
pub struct PodServer {
    pub name: String,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl PodServer {
    /// Starts a server for pod `name` on an ephemeral loopback port.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pod = name.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let pod = pod.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let pod = pod.clone();
                        async move { Ok::<_, Infallible>(answer(&pod, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        PodServer { name: name.to_string(), addr, task }
    }
}

impl Drop for PodServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(pod: &str, mut req: Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
    if req.headers().get(header::UPGRADE).is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket")) {
        let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned().unwrap_or(header::HeaderValue::from_static(""));
        let on_upgrade = hyper::upgrade::on(&mut req);
        let pod = pod.to_string();
        tokio::spawn(async move {
            let Ok(up) = on_upgrade.await else { return };
            let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() {
                    let reply = format!("{pod}: {}", msg.to_text().unwrap_or(""));
                    if ws.send(reply.into()).await.is_err() {
                        break;
                    }
                } else if msg.is_close() {
                    break;
                }
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key.as_bytes()))
            .body(Full::new(Bytes::new()).boxed())
            .expect("response");
    }
    if req.uri().path().starts_with("/slow") {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    }
    let headers: serde_json::Map<String, serde_json::Value> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap_or("")))).collect();
    let method = req.method().to_string();
    let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let out = json!({"pod": pod, "method": method, "path": path, "headers": headers, "body_len": body.len()});
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(out.to_string())).boxed())
        .expect("response")
}
