//! Local HTTP servers that play the pods. Each answers with its pod name and
//! what it received, and echoes WebSocket messages.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
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
    /// The requests it read to the end of their bodies, or to a broken body:
    /// `{"method", "path", "body_len", "complete"}`.
    pub seen: Arc<Mutex<Vec<serde_json::Value>>>,
    task: JoinHandle<()>,
}

impl PodServer {
    /// Starts a server for pod `name` on an ephemeral loopback port.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pod = name.to_string();
        let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let pod = pod.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let pod = pod.clone();
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(answer(&pod, req, &log).await) }
                    });
                    // HTTP/1.1, and HTTP/2 with prior knowledge (h2c) for gRPC.
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        PodServer { name: name.to_string(), addr, seen, task }
    }
}

impl Drop for PodServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bodies of pod answers; an error cuts the connection.
type PodBody = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> PodBody {
    Full::new(bytes.into()).map_err(|n: Infallible| match n {}).boxed()
}

async fn answer(pod: &str, mut req: Request<Incoming>, seen: &Mutex<Vec<serde_json::Value>>) -> Response<PodBody> {
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
            .body(full(Bytes::new()))
            .expect("response");
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let number = |name: &str| -> u64 {
        query.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    if path.starts_with("/slow") {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    }
    if path == "/download" {
        return stream_bytes(number("bytes"));
    }
    if path == "/events" {
        return server_sent_events(pod);
    }
    if path == "/reset" {
        return reset_midway();
    }
    if req.headers().get(header::CONTENT_TYPE).is_some_and(|c| c.as_bytes().starts_with(b"application/grpc")) {
        return grpc_echo(pod, req);
    }
    // A header sent more than once reads as its values joined by commas.
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .keys()
        .map(|k| {
            let values: Vec<&str> = req.headers().get_all(k).iter().map(|v| v.to_str().unwrap_or("")).collect();
            (k.as_str().to_string(), json!(values.join(",")))
        })
        .collect();
    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    // Count the body as it streams, without keeping it.
    let mut body = req.into_body();
    let mut body_len: u64 = 0;
    let complete = loop {
        match body.frame().await {
            Some(Ok(frame)) => body_len += frame.data_ref().map_or(0, |d| d.len() as u64),
            Some(Err(_)) => break false,
            None => break true,
        }
    };
    seen.lock().unwrap().push(json!({"method": method, "path": path, "body_len": body_len, "complete": complete}));
    let out = json!({"pod": pod, "method": method, "path": path, "version": version, "headers": headers, "body_len": body_len});
    Response::builder().header(header::CONTENT_TYPE, "application/json").body(full(out.to_string())).expect("response")
}

/// `n` bytes, streamed in 64 KiB chunks as they are asked for.
fn stream_bytes(n: u64) -> Response<PodBody> {
    const CHUNK: u64 = 64 * 1024;
    let chunk = Bytes::from(vec![b'z'; CHUNK as usize]);
    let frames = futures::stream::unfold(n, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let take = left.min(CHUNK);
            Some((Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk.slice(..take as usize))), left - take))
        }
    });
    Response::builder()
        .header(header::CONTENT_LENGTH, n)
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("response")
}

/// One server-sent event now, then nothing until the client goes away.
fn server_sent_events(pod: &str) -> Response<PodBody> {
    let first = Bytes::from(format!("data: hello from {pod}\n\n"));
    let frames = futures::stream::once(async move { Ok::<_, std::io::Error>(hyper::body::Frame::data(first)) })
        .chain(futures::stream::pending());
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("response")
}

/// Headers and part of the body, then the connection is cut.
fn reset_midway() -> Response<PodBody> {
    let frames = futures::stream::iter([Ok(hyper::body::Frame::data(Bytes::from_static(b"partial answer")))]).chain(
        futures::stream::once(async {
            // Let the headers and the first bytes go out, then fail: an
            // error from the body makes hyper abort the connection.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Err(std::io::Error::other("pod cut the connection"))
        }),
    );
    Response::builder()
        .header(header::CONTENT_LENGTH, 1000)
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("response")
}

/// A gRPC-style echo over HTTP/2: every length-prefixed message in the
/// request is answered at once with "{pod}: {message}", then trailers
/// `grpc-status: 0`. Request and response stream both ways.
fn grpc_echo(pod: &str, req: Request<Incoming>) -> Response<PodBody> {
    let pod = pod.to_string();
    let version = req.version();
    let (tx, rx) = tokio::sync::mpsc::channel::<hyper::body::Frame<Bytes>>(16);
    tokio::spawn(async move {
        let mut body = req.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                buf.extend_from_slice(d);
            }
            while buf.len() >= 5 {
                let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                if buf.len() < 5 + len {
                    break;
                }
                let msg: Vec<u8> = buf.drain(..5 + len).skip(5).collect();
                let reply = format!("{pod}: {}", String::from_utf8_lossy(&msg));
                let mut out = vec![0u8];
                out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
                out.extend_from_slice(reply.as_bytes());
                if tx.send(hyper::body::Frame::data(Bytes::from(out))).await.is_err() {
                    return;
                }
            }
        }
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let _ = tx.send(hyper::body::Frame::trailers(trailers)).await;
    });
    let frames =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (Ok::<_, std::io::Error>(f), rx)) });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("x-pod-http-version", format!("{version:?}"))
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("response")
}

/// A raw TCP server that plays a pod behind a LoadBalancer Service: it
/// greets each connection with `pod NAME\n`, then echoes every byte back.
/// Dropping it is the pod going away: its connections end too.
pub struct TcpPodServer {
    pub name: String,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    gone: tokio::sync::watch::Sender<bool>,
}

impl TcpPodServer {
    /// Starts one on an ephemeral loopback port.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let greeting = format!("pod {name}\n");
        let (gone, gone_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else { continue };
                let greeting = greeting.clone();
                let mut gone = gone_rx.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let echo = async {
                        tcp.write_all(greeting.as_bytes()).await?;
                        let (mut r, mut w) = tcp.split();
                        tokio::io::copy(&mut r, &mut w).await?;
                        w.shutdown().await
                    };
                    tokio::select! {
                        _ = echo => {}
                        _ = gone.wait_for(|g| *g) => {}
                    }
                });
            }
        });
        TcpPodServer { name: name.to_string(), addr, task, gone }
    }
}

impl Drop for TcpPodServer {
    fn drop(&mut self) {
        let _ = self.gone.send(true);
        self.task.abort();
    }
}
