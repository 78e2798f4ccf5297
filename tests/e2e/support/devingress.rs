//! Running the real `devingress` binary and talking to it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub const BIN: &str = env!("CARGO_BIN_EXE_devingress");

/// The control socket's directory for the daemon of the test cluster whose
/// kubeconfig is `kubeconfig` (one per test, so tests do not see each other).
pub fn runtime_dir(kubeconfig: &Path) -> std::path::PathBuf {
    kubeconfig.parent().expect("kubeconfig in a directory").join("run")
}

/// A running `devingress up`, killed when dropped.
pub struct Devingress {
    child: Child,
    /// The HTTP port.
    pub port: u16,
    /// The HTTPS port, unless started with `--no-https`.
    pub https_port: Option<u16>,
    /// The DNS port on 127.0.0.1, unless started with `--no-dns`.
    pub dns_port: Option<u16>,
    /// Its data directory (CA and certificates).
    pub data_dir: std::path::PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Devingress {
    /// The directory of its control socket.
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        self.data_dir.with_file_name("run")
    }

    /// Starts `devingress up` on an ephemeral port and waits until it serves.
    /// Its system files (hosts, resolver) live under `<kubeconfig dir>/system`,
    /// never the machine's own.
    pub async fn up(kubeconfig: &Path, extra: &[&str]) -> Self {
        Self::up_with_env(kubeconfig, extra, &[]).await
    }

    /// [`Devingress::up`] with more environment variables (these win, a
    /// `DEVINGRESS_SYSTEM_ROOT` of the caller's included).
    pub async fn up_with_env(kubeconfig: &Path, extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Self {
        let system_root = kubeconfig.parent().expect("kubeconfig in a directory").join("system");
        let mut all = vec![("DEVINGRESS_SYSTEM_ROOT", system_root.as_os_str())];
        all.extend_from_slice(env);
        Self::up_wrapped(&[], kubeconfig, extra, &all).await
    }

    /// Starts `devingress up` through `wrapper` (a program and its
    /// arguments, which end by running the binary given after them), with
    /// `env`. Unlike [`Devingress::up_with_env`], its system files are the
    /// machine's unless `env` says otherwise: for a wrapper that gives it
    /// a private copy of them.
    pub async fn up_wrapped(
        wrapper: &[&str],
        kubeconfig: &Path,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let mut args = vec!["up", "--http-port", "0", "--https-port", "0", "--dns-port", "0"];
        args.extend_from_slice(extra);
        let data_dir = kubeconfig.parent().expect("kubeconfig in a directory").join("data");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env("DEVINGRESS_DATA_DIR", &data_dir)
            .env("RUST_LOG", "devingress=debug")
            .env("NO_COLOR", "1")
            .env("DEVINGRESS_RUNTIME_DIR", runtime_dir(kubeconfig))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn devingress");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (https_tx, mut https_rx) = tokio::sync::mpsc::unbounded_channel();
        let (dns_tx, mut dns_rx) = tokio::sync::mpsc::unbounded_channel();
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("answering DNS for served hosts on 127.0.0.1:").nth(1) {
                    let _ = dns_tx.send(rest.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()));
                }
                if let Some(rest) = line.split("serving HTTPS on https://").nth(1) {
                    let _ = https_tx.send(rest.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
                }
                if let Some(rest) = line.split("serving HTTP on http://").nth(1) {
                    let port = rest.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                    let _ = tx.send(port);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let port = match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(Some(p))) => p,
            other => {
                let _ = child.kill();
                panic!("devingress did not start serving ({other:?}); log:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        // HTTPS is announced before HTTP.
        let https_port = https_rx.try_recv().ok().flatten();
        let dns_port = dns_rx.try_recv().ok().flatten();
        Devingress { child, port, https_port, dns_port, data_dir, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle`.
    pub async fn wait_log(&self, needle: &str, deadline: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGTERM and waits for the exit on a blocking thread, so that
    /// the test's runtime (which runs the fake API server that devingress
    /// talks to while it shuts down) goes on. Returns the exit and the log.
    pub async fn stop(self, deadline: Duration) -> (Option<std::process::ExitStatus>, String) {
        tokio::task::spawn_blocking(move || {
            let mut d = self;
            (d.terminate(deadline), d.log())
        })
        .await
        .expect("stop thread")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `deadline` for the process to exit by itself; returns
    /// whether it did, and its log.
    pub async fn exited_within(mut self, deadline: Duration) -> (bool, String) {
        let end = Instant::now() + deadline;
        while self.running() && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (!self.running(), self.log())
    }
}

impl Drop for Devingress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP client for talking to devingress.
pub fn http_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The pod that answered (pod servers answer JSON with `pod`).
    pub fn pod(&self) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.body).ok()?["pod"].as_str().map(str::to_string)
    }

    /// A header the pod received.
    pub fn pod_header(&self, name: &str) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.body).ok()?["headers"][name].as_str().map(str::to_string)
    }
}

/// GET `path` with `Host: host` from devingress on `port`.
pub async fn get(port: u16, host: &str, path: &str) -> Answer {
    try_get(port, host, path).await.expect("an answer within 20 s")
}

/// Like [`get`], `None` when nothing answers on `port` (refused, closed, or
/// silent for 20 s).
pub async fn try_get(port: u16, host: &str, path: &str) -> Option<Answer> {
    let req = http::Request::get(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = tokio::time::timeout(Duration::from_secs(20), http_client().request(req)).await.ok()?.ok()?;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.ok()?.to_bytes();
    Some(Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Repeats `f` until it returns true or the deadline passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Whether `program` is on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Panics, naming the Debian package and `tests/setup`, unless `program`
/// is on `PATH`: a test that needs a tool never passes without it.
pub fn require(program: &str, package: &str, why: &str) {
    assert!(
        on_path(program) || std::path::Path::new("/usr/sbin").join(program).is_file(),
        "this test needs `{program}` ({why}): run `bash tests/setup`, or `sudo apt-get install {package}`"
    );
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Panics unless the tests run as root: `tests/run` leaves the tests that
/// need root out, by name and saying so, when it is not root.
pub fn require_root(why: &str) {
    assert!(is_root(), "this test needs root ({why}); `bash tests/run` leaves it out, saying so, when not root");
}

/// Runs Debian's Chromium headless, as the CI machine allows it (root, no
/// network: background networking off), with a fresh profile and `env`.
pub async fn chromium(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> std::process::Output {
    require("chromium", "chromium", "it loads pages in a real browser");
    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("chromium ends within 60s").unwrap()
}
