//! Pod port-forward over WebSocket, `v4.channel.k8s.io`, as the kubelet
//! answers it behind the API server: port-prefix frames on the data and
//! error channels, data as `[channel, bytes…]`, errors as text on the odd
//! channel, and a close frame with code 1000 when the pod side ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};

use super::Shared;
use super::handlers::{Body, json_answer, status_error};
use super::resources::{ApiPath, PODS};
use super::spdy;
use super::store::{Event, Store};
use tokio::sync::broadcast;

pub async fn handle(
    shared: Arc<Shared>,
    ap: ApiPath,
    q: BTreeMap<String, String>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let ns = ap.namespace.clone().unwrap_or_default();
    let pod = ap.name.clone().unwrap_or_default();
    if shared.hanging.lock().unwrap().contains(&pod) {
        std::future::pending::<()>().await;
    }
    let key = Store::key(&ap.resource, &ns, &pod);
    let uid = {
        let store = shared.store.lock().unwrap();
        match store.objects.get(&key) {
            Some(o) => o.pointer("/metadata/uid").and_then(|u| u.as_str()).unwrap_or("").to_string(),
            None => {
                drop(store);
                let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("pods \"{pod}\" not found"), "reason": "NotFound",
                    "details": {"name": pod, "kind": "pods"}, "code": 404});
                return json_answer(&shared, StatusCode::NOT_FOUND, &body, false);
            }
        }
    };
    let offers = |name: &str, wanted: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case(wanted))
    };
    let ws_key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let spdy_upgrade = offers(header::UPGRADE.as_str(), SPDY) && shared.spdy_upgrade.load(Ordering::SeqCst);
    let protocol = if spdy_upgrade && req.method() == http::Method::POST {
        if !offers("x-stream-protocol-version", SPDY_PORTFORWARD) {
            return status_error(&shared, 400, "BadRequest", "unable to upgrade: no common protocol", None);
        }
        Protocol::Spdy
    } else if ws_key.is_some()
        && offers(header::SEC_WEBSOCKET_PROTOCOL.as_str(), TUNNEL)
        && shared.spdy_tunnel.load(Ordering::SeqCst)
    {
        Protocol::Tunnel
    } else if ws_key.is_some() && offers(header::SEC_WEBSOCKET_PROTOCOL.as_str(), V4) {
        let Some(port) = q.get("ports").and_then(|p| p.split(',').next()).and_then(|p| p.parse::<u16>().ok()) else {
            return status_error(&shared, 400, "BadRequest", "query parameter \"ports\" is required", None);
        };
        Protocol::V4(port)
    } else {
        return status_error(&shared, 400, "BadRequest", "Upgrade request required", None);
    };
    let delay = *shared.upgrade_delay.lock().unwrap();
    if !delay.is_zero() {
        {
            let mut u = shared.upgrading.lock().unwrap();
            u.0 += 1;
            u.1 = u.1.max(u.0);
        }
        tokio::time::sleep(delay).await;
        shared.upgrading.lock().unwrap().0 -= 1;
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    shared.portforwards.fetch_add(1, Ordering::SeqCst);
    // When the Pod is deleted its container stops, and the kubelet ends the stream.
    let events = shared.store.lock().unwrap().feed.subscribe();
    let session = Session::open(shared.clone(), ns.clone(), pod.clone());
    let target = {
        let (shared, ns, pod) = (shared.clone(), ns.clone(), pod.clone());
        spdy::Target {
            forwarded: shared.clone(),
            pod: pod.clone(),
            uid: uid.clone(),
            backend: Box::new(move |port| {
                shared.backends.lock().unwrap().get(&(ns.clone(), pod.clone(), port)).copied()
            }),
        }
    };
    let task = tokio::spawn(async move {
        let _session = session;
        let Ok(upgraded) = on_upgrade.await else { return };
        let io = TokioIo::new(upgraded);
        let gone = pod_deleted(events, ns, pod.clone());
        match protocol {
            Protocol::V4(port) => {
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                let backend = (target.backend)(port);
                serve_stream(ws, backend, &pod, &uid, port, gone).await;
            }
            Protocol::Spdy => spdy::serve(io, target, gone).await,
            Protocol::Tunnel => {
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                spdy::serve(spdy::WsBytes::new(ws), target, gone).await;
            }
        }
    });
    shared.track(task.abort_handle());
    let answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS).header(header::CONNECTION, "Upgrade");
    let answer = match (protocol, ws_key) {
        (Protocol::Spdy, _) => {
            answer.header(header::UPGRADE, SPDY).header("X-Stream-Protocol-Version", SPDY_PORTFORWARD)
        }
        (_, ws_key) => {
            let accept = derive_accept_key(ws_key.expect("a WebSocket key").as_bytes());
            let chosen = if matches!(protocol, Protocol::Tunnel) { TUNNEL } else { V4 };
            answer
                .header(header::UPGRADE, "websocket")
                .header(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).expect("ascii"))
                .header(header::SEC_WEBSOCKET_PROTOCOL, chosen)
        }
    };
    answer.body(Empty::new().map_err(|n| match n {}).boxed()).expect("response")
}

/// The port-forward protocols the kubelet speaks behind the API server.
#[derive(Clone, Copy)]
enum Protocol {
    /// `v4.channel.k8s.io`: one WebSocket per port, the port in the query.
    V4(u16),
    /// SPDY/3.1 straight after the HTTP/1.1 upgrade.
    Spdy,
    /// SPDY/3.1 in binary WebSocket messages.
    Tunnel,
}

const V4: &str = "v4.channel.k8s.io";
const SPDY: &str = "SPDY/3.1";
const SPDY_PORTFORWARD: &str = "portforward.k8s.io";
const TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// Counts a session as open from its upgrade until its task ends.
struct Session {
    shared: Arc<Shared>,
    key: (String, String),
}

impl Session {
    fn open(shared: Arc<Shared>, namespace: String, pod: String) -> Self {
        let key = (namespace, pod);
        *shared.active.lock().unwrap().entry(key.clone()).or_default() += 1;
        Session { shared, key }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(n) = self.shared.active.lock().unwrap().get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Resolves when the Pod `namespace/name` is deleted.
async fn pod_deleted(mut events: broadcast::Receiver<Event>, namespace: String, name: String) {
    loop {
        match events.recv().await {
            Ok(ev)
                if ev.resource == PODS
                    && ev.kind == "DELETED"
                    && ev.namespace == namespace
                    && ev.object.pointer("/metadata/name").and_then(|n| n.as_str()) == Some(name.as_str()) =>
            {
                return;
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

async fn serve_stream<S>(
    mut ws: WebSocketStream<S>,
    backend: Option<std::net::SocketAddr>,
    pod: &str,
    uid: &str,
    port: u16,
    gone: impl std::future::Future<Output = ()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::pin!(gone);
    let [lo, hi] = port.to_le_bytes();
    if ws.send(Message::binary(vec![0, lo, hi])).await.is_err()
        || ws.send(Message::binary(vec![1, lo, hi])).await.is_err()
    {
        return;
    }
    let close = Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }));
    let target = backend.map(|a| a.to_string()).unwrap_or_else(|| format!("127.0.0.1:{port}"));
    let tcp = match backend {
        Some(addr) => TcpStream::connect(addr).await,
        None => Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
    };
    let tcp = match tcp {
        Ok(t) => t,
        Err(e) => {
            let mut text = vec![1u8];
            text.extend_from_slice(
                format!("error forwarding port {port} to pod {pod}, uid {uid}: failed to connect to {target}: {e}")
                    .as_bytes(),
            );
            let _ = ws.send(Message::binary(text)).await;
            let _ = ws.send(close).await;
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.into_split();
    // Both directions at once, as the kubelet copies them: a pod that
    // echoes while the client still sends must never wait on the other way.
    let (mut sink, mut stream) = ws.split();
    let mut buf = vec![0u8; 32 * 1024];
    let send_close = {
        let client_to_pod = async {
            loop {
                match stream.next().await {
                    Some(Ok(Message::Binary(data))) if data.len() > 1 && data[0] == 0 => {
                        if wr.write_all(&data[1..]).await.is_err() {
                            return true;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        let _ = wr.shutdown().await;
                        return false;
                    }
                    Some(Ok(_)) => {}
                }
            }
        };
        let pod_to_client = async {
            loop {
                match rd.read(&mut buf[1..]).await {
                    Ok(0) | Err(_) => return true,
                    Ok(n) => {
                        buf[0] = 0;
                        if sink.send(Message::binary(buf[..=n].to_vec())).await.is_err() {
                            return false;
                        }
                    }
                }
            }
        };
        tokio::select! {
            () = &mut gone => true,
            close = client_to_pod => close,
            close = pod_to_client => close,
        }
    };
    if send_close {
        let _ = sink.send(close).await;
    }
}
