//! kubectl's own `port-forward` against the fake API server, in both of the
//! protocols it speaks: SPDY/3.1 tunnelled in a WebSocket (its default) and
//! SPDY/3.1 after a plain HTTP/1.1 upgrade. kubectl is the reference peer
//! that keeps the fake kubelet's SPDY side honest, and the baseline of the
//! proxy benchmark.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::cluster::TestCluster;
use crate::support::kubectl::{Mode, PortForward};

/// One HTTP/1.1 exchange on a new connection: the whole answer.
async fn exchange(port: u16, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    tcp.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer))
        .await
        .expect("an answer within 20 s")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

async fn forwards_through_the_fake(websockets: bool) {
    let mut c = TestCluster::start().await;
    c.service("default", "web", "", 8080, serde_json::json!(8080));
    c.pods("default", "web", "", 8080, 1).await;
    let mode = if websockets { Mode::WebSocket } else { Mode::Spdy };
    let Some(kubectl) = PortForward::start(&c.kubeconfig, "default", "web-0", 8080, mode).await else { return };
    let port = kubectl.port;

    // Several connections at once, each its own pair of streams in the one session.
    let answers = futures::future::join_all((0..8).map(|i| {
        exchange(port, format!("GET /n{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").leak().as_bytes())
    }))
    .await;
    for (i, a) in answers.iter().enumerate() {
        assert!(
            a.starts_with("HTTP/1.1 200") && a.contains("\"pod\":\"web-0\"") && a.contains(&format!("/n{i}")),
            "{a}"
        );
    }
    // A body larger than SPDY's initial window (64 KiB) each way.
    let body = vec![b'u'; 3 << 20];
    let mut upload =
        format!("POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len())
            .into_bytes();
    upload.extend_from_slice(&body);
    let a = exchange(port, &upload).await;
    assert!(a.contains(&format!("\"body_len\":{}", body.len())), "{a}");
    let a = exchange(port, b"GET /download?bytes=5000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let (head, rest) = a.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(rest.len(), 5_000_000);

    // One upgrade served them all, with the method of the protocol kubectl chose.
    let upgrades: Vec<String> = c.api.requests().into_iter().filter(|r| r.contains("/portforward")).collect();
    let method = if websockets { "GET " } else { "POST " };
    assert_eq!(upgrades.len(), 1, "{upgrades:?}");
    assert!(upgrades[0].starts_with(method) && upgrades[0].contains("/pods/web-0/portforward"), "{upgrades:?}");
}

#[tokio::test]
async fn kubectl_port_forward_over_spdy_in_a_websocket() {
    forwards_through_the_fake(true).await;
}

#[tokio::test]
async fn kubectl_port_forward_over_spdy_after_an_http_upgrade() {
    forwards_through_the_fake(false).await;
}
