//! The daemon's front ends: the control socket (`status`, `down`, `logs`,
//! `pause`, `resume`, `use-context`, a second `up`) and the status page.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::cluster::TestCluster;
use crate::support::devingress::{BIN, Devingress, eventually, get, runtime_dir};

const SETTLE: Duration = Duration::from_secs(15);

/// Runs a devingress command that talks to the test cluster's daemon.
async fn cli(kubeconfig: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env("DEVINGRESS_RUNTIME_DIR", runtime_dir(kubeconfig))
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn status_json(kubeconfig: &Path) -> Value {
    let out = cli(kubeconfig, &["status", "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn hosts(status: &Value) -> Vec<String> {
    status["hosts"].as_array().unwrap().iter().map(|h| h["host"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn control_commands_status_pause_logs_and_down() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let mut d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);

    // The socket is the user's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = d.runtime_dir();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("control.sock")), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }

    // status --json: the model, with request counts.
    let s = status_json(&c.kubeconfig).await;
    assert_eq!(s["cluster"]["context"], "fake");
    assert_eq!(s["pid"], d.pid());
    assert_eq!(hosts(&s), ["alpaca.example.com", "bandicoot.example.com", "*"]);
    let alpaca = &s["hosts"][0];
    let before = alpaca["requests"].as_u64().unwrap();
    assert!(before >= 1);
    assert_eq!(get(d.port, "alpaca.example.com", "/").await.status, 200);
    assert_eq!(status_json(&c.kubeconfig).await["hosts"][0]["requests"].as_u64(), Some(before + 1));
    assert_eq!(alpaca["routes"][0]["backend"], "default/alpaca:8080");
    assert_eq!(alpaca["routes"][0]["ready"], 2);
    assert_eq!(alpaca["urls"][0], format!("http://alpaca.example.com:{}/", d.port));
    assert_eq!(s["state"], "connected", "{s:#}");
    assert_eq!(s["tls"]["ca_trusted"], false);

    // A host added while running shows up.
    c.ingress(
        "default",
        "late",
        json!({"rules": [{"host": "late.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
    );
    assert!(
        eventually(SETTLE, || async { hosts(&status_json(&c.kubeconfig).await).contains(&"late.example.com".into()) })
            .await
    );

    // The text form.
    let text = stdout(&cli(&c.kubeconfig, &["status"]).await);
    assert!(text.contains(&format!("devingress {}, pid {}", env!("CARGO_PKG_VERSION"), d.pid())), "{text}");
    assert!(
        text.contains("HOST                   PATH  TYPE     BACKEND                  READY  REQUESTS  5XX  INGRESS"),
        "{text}"
    );
    assert!(text.contains("late.example.com"), "{text}");
    eprintln!("{text}");

    // Pause and resume.
    let errors_before = status_json(&c.kubeconfig).await["requests"]["classes"]["server_error"].as_u64().unwrap();
    let out = cli(&c.kubeconfig, &["pause"]).await;
    assert!(out.status.success());
    let paused = get(d.port, "alpaca.example.com", "/").await;
    assert_eq!(paused.status, 503);
    assert!(paused.body.contains("devingress is paused"), "{}", paused.body);
    assert_eq!(status_json(&c.kubeconfig).await["state"], "paused");
    assert!(cli(&c.kubeconfig, &["resume"]).await.status.success());
    assert_eq!(get(d.port, "alpaca.example.com", "/").await.status, 200);
    let s = status_json(&c.kubeconfig).await;
    assert_eq!(s["requests"]["classes"]["server_error"].as_u64(), Some(errors_before + 1));
    let last_error = s["requests"]["recent_errors"].as_array().unwrap().last().unwrap();
    assert!(last_error["message"].as_str().unwrap().contains("devingress is paused"), "{s:#}");

    // A second `up` says so and exits, without touching a port.
    let second = cli(&c.kubeconfig, &["up", "--http-port", &d.port.to_string()]).await;
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{err}");
    assert!(err.contains(&format!("devingress is already running (pid {}, context fake", d.pid())), "{err}");
    assert!(d.running());

    // logs: the past lines, then following.
    let past = stdout(&cli(&c.kubeconfig, &["logs", "-n", "1000"]).await);
    assert!(past.contains("serving HTTP on http://127.0.0.1:"), "{past}");
    assert!(!past.contains('\u{1b}'), "no colour codes");
    let follow = tokio::process::Command::new(BIN)
        .args(["logs", "-f", "-n", "0"])
        .env("DEVINGRESS_RUNTIME_DIR", runtime_dir(&c.kubeconfig))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cli(&c.kubeconfig, &["pause"]).await.status.success());
    assert!(cli(&c.kubeconfig, &["resume"]).await.status.success());

    // down: stops cleanly, and the follower ends with the daemon.
    let out = cli(&c.kubeconfig, &["down"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains(&format!("stopping devingress (pid {})", d.pid())), "{}", stdout(&out));
    assert!(stdout(&out).ends_with("stopped\n"));
    let followed = tokio::time::timeout(SETTLE, follow.wait_with_output()).await.expect("logs -f ends").unwrap();
    let followed = stdout(&followed);
    assert!(followed.contains("paused: requests get 503 until resumed"), "{followed}");
    assert!(followed.contains("resumed serving"), "{followed}");
    let exited = d.exited_within(SETTLE).await;
    assert!(exited.0, "{}", exited.1);
    assert!(exited.1.contains("stopping: asked by `devingress down`"), "{}", exited.1);
    assert!(!runtime_dir(&c.kubeconfig).join("control.sock").exists(), "the socket is removed");
    let after = cli(&c.kubeconfig, &["status"]).await;
    assert!(!after.status.success());
    assert!(String::from_utf8_lossy(&after.stderr).contains("devingress is not running"));
}

#[tokio::test]
async fn use_context_restarts_on_another_context_and_refuses_unknown_ones() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let pid = d.pid();
    let out = cli(&c.kubeconfig, &["use-context", "nope"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no context \"nope\" in the kubeconfig (it has: fake, fake-again)")
    );
    let out = cli(&c.kubeconfig, &["use-context", "fake-again"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The same process starts again (exec) on the other context.
    assert!(
        eventually(SETTLE, || async {
            let out = cli(&c.kubeconfig, &["status", "--json"]).await;
            serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|s| s["cluster"]["context"] == "fake-again")
        })
        .await,
        "{}",
        d.log()
    );
    let s = status_json(&c.kubeconfig).await;
    assert_eq!(s["pid"], pid);
    assert!(cli(&c.kubeconfig, &["down"]).await.status.success());
}

#[tokio::test]
async fn status_page_shows_the_model_on_devingress_localhost() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    let page = get(d.port, "devingress.localhost", "/").await;
    assert_eq!(page.status, 200);
    let link = format!("<a href=\"http://alpaca.example.com:{0}/\">http://alpaca.example.com:{0}/</a>", d.port);
    assert!(page.body.contains(&link), "{}", page.body);
    assert!(page.body.contains("default/alpaca:8080"));
    assert!(page.body.contains("not trusted</span>"), "the CA is not trusted here");
    assert!(!page.body.contains("src=\"http") && !page.body.contains("href=\"//"), "no external assets");
    let json = get(d.port, "devingress.localhost", "/status.json").await;
    let s: Value = serde_json::from_str(&json.body).unwrap();
    assert!(s["hosts"][0]["requests"].as_u64().unwrap() >= 1);
    assert_eq!(s["hosts"][0]["host"], "alpaca.example.com");
    assert_eq!(get(d.port, "devingress.localhost", "/nope").await.status, 404);
}

async fn chromium(args: &[&str]) -> Output {
    crate::support::devingress::chromium(args, &[]).await
}

#[tokio::test]
async fn status_page_renders_in_headless_chromium() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    for _ in 0..4 {
        get(d.port, "bandicoot.example.com", "/").await;
    }
    // Chromium sends *.localhost to loopback by itself: no DNS set-up.
    let url = format!("http://devingress.localhost:{}/", d.port);
    let dom = chromium(&["--virtual-time-budget=3000", "--dump-dom", &url]).await;
    let dom = stdout(&dom);
    for host in ["alpaca.example.com", "bandicoot.example.com"] {
        let link = format!("<a href=\"http://{host}:{}/\">", d.port);
        assert!(dom.contains(&link), "{link} missing from the DOM:\n{dom}");
    }
    assert!(dom.contains("<span id=\"state\" class=\"state connected\">connected</span>"), "{dom}");
    assert!(dom.contains("default/bandicoot:8080"), "{dom}");
    assert!(dom.contains("data-requests=\"bandicoot.example.com\">4<"), "live counts: {dom}");

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let shot =
        chromium(&["--window-size=1200,800", "--hide-scrollbars", &format!("--screenshot={}", png.display()), &url])
            .await;
    let bytes =
        std::fs::read(&png).unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&shot.stderr)));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000, "{} bytes", bytes.len());
    eprintln!("status page screenshot: {}", png.display());
}

/// `doctor` next to a running daemon checks what the daemon uses: its
/// kubeconfig (which the shell's environment does not name), context,
/// served hosts and listeners, and says that it asked the daemon.
#[tokio::test]
async fn doctor_takes_kubeconfig_context_hosts_and_listeners_from_the_running_daemon() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(BIN)
        .arg("doctor")
        .env_remove("KUBECONFIG")
        .env("HOME", home.path())
        .env("DEVINGRESS_RUNTIME_DIR", d.runtime_dir())
        .env("DEVINGRESS_DATA_DIR", &d.data_dir)
        .env("DEVINGRESS_TRUST_ROOT", home.path().join("no-system-store"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        &format!(
            "asked the running daemon (pid {}) over its control socket: checking its kubeconfig ({}), context fake, \
             its 2 served host name(s) and its listeners",
            d.pid(),
            c.kubeconfig.display()
        ),
        "ok    kubeconfig: context fake",
        "ok    routes: 2 Ingress(es)",
        &format!("ok    HTTP listener: 127.0.0.1:{} accepts connections", d.port),
        &format!("ok    HTTPS listener: 127.0.0.1:{} accepts connections", d.https_port.unwrap()),
        &format!("ok    DNS server: 127.0.0.1:{} answers alpaca.example.com with 127.0.0.1", d.dns_port.unwrap()),
        "ok    HTTP round trip: GET http://alpaca.example.com/ gave 200 OK",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("no kubeconfig found"), "{stdout}");
}
