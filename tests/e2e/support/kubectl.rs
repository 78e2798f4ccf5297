//! `kubectl port-forward` (the machine's own, `/usr/bin/kubectl`) against
//! the fake API server: the reference peer for its SPDY port-forward, and
//! the baseline of the proxy benchmark.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where kubectl is installed on these machines.
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// Which of its two protocols kubectl speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// SPDY/3.1 tunnelled in a WebSocket (its default since 1.31).
    WebSocket,
    /// SPDY/3.1 after a plain HTTP/1.1 upgrade (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`).
    Spdy,
}

/// A running `kubectl port-forward` and the local port it listens on.
pub struct PortForward {
    pub child: Child,
    pub port: u16,
}

impl PortForward {
    /// Runs `kubectl port-forward -n NS pod/POD :PORT`; `None` (said on
    /// stderr) when kubectl is not installed.
    pub async fn start(kubeconfig: &Path, ns: &str, pod: &str, port: u16, mode: Mode) -> Option<PortForward> {
        if !Path::new(KUBECTL).exists() {
            eprintln!("{KUBECTL} is not installed: no kubectl port-forward");
            return None;
        }
        let mut child = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["port-forward", "-n", ns, &format!("pod/{pod}"), &format!(":{port}")])
            .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", if mode == Mode::WebSocket { "true" } else { "false" })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl runs");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = match tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await {
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
        // Keep reading its output ("Handling connection for …" per
        // connection) so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(PortForward { child, port: local })
    }

    /// The process id (kubectl's dispatcher; the forwarding may run in a
    /// child of it: count CPU with [`super::bench::cpu_seconds_tree`]).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }
}
