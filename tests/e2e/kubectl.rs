//! kubectl's own `port-forward` against the fake API server, in both of the
//! protocols it speaks: SPDY/3.1 tunnelled in a WebSocket (its default) and
//! SPDY/3.1 after a plain HTTP/1.1 upgrade. kubectl is the reference peer
//! that keeps the fake kubelet's SPDY side honest, and the baseline of the
//! proxy benchmark.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::support::cluster::TestCluster;

const KUBECTL: &str = "/usr/bin/kubectl";

/// `kubectl port-forward pod/NAME :PORT` and the local port it chose.
pub async fn kubectl_port_forward(c: &TestCluster, pod: &str, port: u16, websockets: bool) -> Option<(Child, u16)> {
    if !std::path::Path::new(KUBECTL).exists() {
        eprintln!("skipped: {KUBECTL} is not installed");
        return None;
    }
    let mut child = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["port-forward", "-n", "default", &format!("pod/{pod}"), &format!(":{port}")])
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", if websockets { "true" } else { "false" })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
    let line = match line {
        Ok(Ok(Some(l))) => l,
        other => {
            let mut err = String::new();
            let _ = child.stderr.take().expect("stderr").read_to_string(&mut err).await;
            panic!("kubectl port-forward printed no port ({other:?}): {err}");
        }
    };
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let local = line
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected kubectl output: {line}"));
    // Keep reading its output so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some((child, local))
}

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
    let Some((_kubectl, port)) = kubectl_port_forward(&c, "web-0", 8080, websockets).await else { return };

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
