//! The OS resolver integrations, driven by the real binary against a
//! temporary system root (`DEVINGRESS_SYSTEM_ROOT`) with stand-ins for
//! resolvectl, nmcli, setcap and systemctl that record how they were called.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::support::apiserver::resources::INGRESSES;
use crate::support::cluster::TestCluster;
use crate::support::devingress::{BIN, Devingress, eventually};

const SETTLE: Duration = Duration::from_secs(15);

/// A system root and a directory of stand-in programs that append
/// `name args…` to a log.
struct FakeSystem {
    dir: tempfile::TempDir,
}

impl FakeSystem {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeSystem { dir };
        std::fs::create_dir_all(fake.root()).unwrap();
        std::fs::create_dir_all(fake.bin()).unwrap();
        for name in ["resolvectl", "nmcli", "setcap"] {
            fake.program(name, "");
        }
        // `enable --now` starts the unit, which creates the link.
        fake.program(
            "systemctl",
            r#"case "$*" in
  "enable --now devingress-link.service") mkdir -p "$DEVINGRESS_SYSTEM_ROOT/sys/class/net/devingress0" ;;
  "disable --now devingress-link.service") rm -rf "$DEVINGRESS_SYSTEM_ROOT/sys/class/net/devingress0" ;;
esac"#,
        );
        fake
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default().lines().map(String::from).collect()
    }

    fn program(&self, name: &str, then: &str) {
        let path = self.bin().join(name);
        let log = self.dir.path().join("calls");
        std::fs::write(&path, format!("#!/bin/sh\necho \"{name} $*\" >> '{}'\n{then}\n", log.display())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn path_var(&self) -> std::ffi::OsString {
        let mut dirs = vec![self.bin()];
        dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
        std::env::join_paths(dirs).unwrap()
    }

    fn file(&self, abs: &str) -> PathBuf {
        self.root().join(abs.trim_start_matches('/'))
    }

    /// Runs `devingress setup` with these arguments.
    fn setup(&self, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new(BIN)
            .arg("setup")
            .args(args)
            .env("DEVINGRESS_SYSTEM_ROOT", self.root())
            .env("PATH", self.path_var())
            .env("USER", "alice")
            .env_remove("SUDO_USER")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    async fn up(&self, c: &TestCluster, extra: &[&str]) -> Devingress {
        let path = self.path_var();
        let root = self.root();
        let env: [(&str, &OsStr); 2] = [("DEVINGRESS_SYSTEM_ROOT", root.as_os_str()), ("PATH", &path)];
        Devingress::up_with_env(&c.kubeconfig, extra, &env).await
    }

    /// Every file under the root (not directories: the real ones exist
    /// already), with its bytes.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root(), &mut out);
        out.sort();
        out
    }
}

fn late_ingress(c: &TestCluster) {
    c.ingress(
        "default",
        "late",
        json!({"rules": [{"host": "*.apps.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
    );
}

async fn stop(mut d: Devingress) -> String {
    let (status, log) =
        tokio::task::spawn_blocking(move || (d.terminate(Duration::from_secs(15)), d.log())).await.unwrap();
    assert!(status.unwrap().success(), "{log}");
    log
}

#[tokio::test]
async fn setup_then_up_route_served_domains_through_systemd_resolved() {
    let sys = FakeSystem::new();
    std::fs::create_dir_all(sys.file("/run/systemd/resolve")).unwrap();
    let before = sys.snapshot();
    let mut c = TestCluster::start().await;
    c.examples().await;

    // Without setup: up serves, and says what setup would add.
    let d = sys.up(&c, &[]).await;
    assert!(d.wait_log("run `devingress setup` once", SETTLE).await, "{}", d.log());
    assert!(d.log().contains("devingress0"), "{}", d.log());
    drop(d);

    // setup explains every step before doing it, then does it.
    let (ok, out) = sys.setup(&["--yes"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("1. let ").count(), 2, "once explained, once done:\n{out}");
    assert!(out.rfind("why: ").unwrap() < out.rfind("1. let ").unwrap(), "all explained first:\n{out}");
    for line in [
        "why: browsers use http://host",
        "run: setcap cap_net_bind_service=+ep ",
        "write /etc/systemd/system/devingress-link.service (mode 644, owned by root)",
        "run: systemctl enable --now devingress-link.service",
        "3. let alice set DNS on devingress0 without a password",
        "write /etc/polkit-1/rules.d/50-devingress.rules",
        "done: `devingress up` now runs without sudo",
    ] {
        assert!(out.contains(line), "missing {line:?}:\n{out}");
    }
    let unit = std::fs::read_to_string(sys.file("/etc/systemd/system/devingress-link.service")).unwrap();
    assert!(unit.contains("ExecStart=-ip link add devingress0 type dummy"), "{unit}");
    let rule = std::fs::read_to_string(sys.file("/etc/polkit-1/rules.d/50-devingress.rules")).unwrap();
    assert!(rule.contains("subject.user == \"alice\""), "{rule}");

    // up now routes exactly the served domains on devingress0.
    let d = sys.up(&c, &[]).await;
    let port = d.dns_port.unwrap();
    // The calls of one update end with mdns.
    let applied = |want: &'static str| {
        let sys = &sys;
        move || async move {
            let calls = sys.calls();
            calls.iter().any(|l| l == want)
                && calls.last().is_some_and(|l| l == "resolvectl --no-ask-password mdns devingress0 no")
        }
    };
    let want = "resolvectl --no-ask-password domain devingress0 ~alpaca.example.com ~bandicoot.example.com";
    assert!(eventually(SETTLE, applied(want)).await, "{:?}", sys.calls());
    let calls = sys.calls();
    let first_revert =
        calls.iter().position(|l| l == "resolvectl --no-ask-password revert devingress0").expect("crash repair first");
    let dns = format!("resolvectl --no-ask-password dns devingress0 127.0.0.1:{port} [::1]:{port}");
    assert!(calls.iter().position(|l| *l == dns).unwrap() > first_revert, "{calls:?}");
    for l in [
        "resolvectl --no-ask-password default-route devingress0 false",
        "resolvectl --no-ask-password dnssec devingress0 no",
    ] {
        assert!(calls.iter().any(|c| c == l), "{l}: {calls:?}");
    }
    assert!(d.log().contains("the OS resolves served hosts through systemd-resolved"), "{}", d.log());
    // A wildcard host arrives: its parent domain is routed too.
    late_ingress(&c);
    let want = "resolvectl --no-ask-password domain devingress0 ~alpaca.example.com ~apps.test ~bandicoot.example.com";
    assert!(eventually(SETTLE, applied(want)).await, "{:?}", sys.calls());
    // Exit takes it all back.
    let n = sys.calls().len();
    stop(d).await;
    assert_eq!(sys.calls()[n..], ["resolvectl --no-ask-password revert devingress0"]);

    // setup --undo removes every file and the link, leaving the root as it was.
    let (ok, out) = sys.setup(&["--undo", "--yes"]);
    assert!(ok, "{out}");
    assert!(sys.calls().iter().any(|l| l.starts_with("setcap -r ")), "{:?}", sys.calls());
    let calls = sys.calls();
    let disabled = calls.iter().position(|l| l == "systemctl disable --now devingress-link.service").unwrap();
    let reloaded = calls.iter().rposition(|l| l == "systemctl daemon-reload").unwrap();
    assert!(reloaded > disabled, "systemd reloads after the unit is gone: {calls:?}");
    assert_eq!(sys.snapshot(), before, "every file setup wrote is gone");
    assert!(!sys.file("/sys/class/net/devingress0").exists(), "the link is gone");
}

#[tokio::test]
async fn networkmanager_dnsmasq_servers_follow_routes_and_are_emptied_on_exit() {
    let sys = FakeSystem::new();
    std::fs::create_dir_all(sys.file("/etc/NetworkManager/dnsmasq.d")).unwrap();
    std::fs::write(sys.file("/etc/NetworkManager/dnsmasq.d/theirs.conf"), "cache-size=1000\n").unwrap();
    let mut c = TestCluster::start().await;
    c.examples().await;
    let (ok, out) = sys.setup(&["--yes"]);
    assert!(ok, "{out}");
    let dropin = sys.file("/etc/NetworkManager/dnsmasq.d/devingress.conf");
    assert!(std::fs::read_to_string(&dropin).unwrap().contains("servers-file=/var/lib/devingress/dnsmasq-servers"));
    let servers = sys.file("/var/lib/devingress/dnsmasq-servers");
    let empty = std::fs::read(&servers).unwrap();

    let d = sys.up(&c, &[]).await;
    let port = d.dns_port.unwrap();
    let line = format!("server=/alpaca.example.com/127.0.0.1#{port}");
    let read = || std::fs::read_to_string(&servers).unwrap();
    assert!(eventually(SETTLE, || async { read().contains(&line) }).await, "{}\n{}", read(), d.log());
    assert!(read().contains(&format!("server=/bandicoot.example.com/127.0.0.1#{port}")));
    assert!(sys.calls().iter().any(|l| l == "nmcli general reload dns-full"));
    late_ingress(&c);
    assert!(eventually(SETTLE, || async { read().contains("server=/apps.test/") }).await, "{}", read());
    // A crash leaves the servers; the next start empties them first.
    drop(d);
    assert!(read().contains(&line));
    let d = sys.up(&c, &[]).await;
    assert!(d.log().contains("took back what an earlier run left"), "{}", d.log());
    assert!(eventually(SETTLE, || async { read().contains("server=/apps.test/") }).await);
    stop(d).await;
    assert_eq!(std::fs::read(&servers).unwrap(), empty, "byte for byte as setup left it");
    assert_eq!(
        std::fs::read_to_string(sys.file("/etc/NetworkManager/dnsmasq.d/theirs.conf")).unwrap(),
        "cache-size=1000\n"
    );

    let (ok, out) = sys.setup(&["--undo", "--yes"]);
    assert!(ok, "{out}");
    assert!(!dropin.exists() && !servers.exists());
    assert!(sys.file("/etc/NetworkManager/dnsmasq.d/theirs.conf").exists(), "the user's drop-in stays");
}

#[tokio::test]
async fn resolver_files_follow_routes_and_a_crash_is_repaired() {
    let sys = FakeSystem::new();
    let dir = sys.file("/etc/resolver");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("corp.example"), "nameserver 10.0.0.1\n").unwrap();
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = sys.up(&c, &["--resolver", "macos"]).await;
    let port = d.dns_port.unwrap();
    let file = dir.join("alpaca.example.com");
    assert!(eventually(SETTLE, || async { file.exists() }).await, "{}", d.log());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("nameserver 127.0.0.1\n") && text.contains(&format!("port {port}\n")), "{text}");
    late_ingress(&c);
    assert!(eventually(SETTLE, || async { dir.join("apps.test").exists() }).await);
    c.api.delete(INGRESSES, "default", "late");
    assert!(eventually(SETTLE, || async { !dir.join("apps.test").exists() }).await, "removed with its Ingress");
    drop(d); // crash
    assert!(file.exists());
    let d = sys.up(&c, &["--resolver", "macos"]).await;
    assert!(d.log().contains("took back what an earlier run left"), "{}", d.log());
    assert!(eventually(SETTLE, || async { file.exists() }).await);
    stop(d).await;
    let left: Vec<String> =
        std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["corp.example"]);
    assert_eq!(std::fs::read_to_string(dir.join("corp.example")).unwrap(), "nameserver 10.0.0.1\n");
}

#[tokio::test]
async fn a_resolver_the_user_chose_that_fails_ends_the_run_with_the_reason() {
    let sys = FakeSystem::new();
    sys.program("resolvectl", "echo 'Failed to revert interface configuration: Access denied' >&2; exit 1");
    let c = TestCluster::start().await;
    let out = tokio::process::Command::new(BIN)
        .args(["up", "--http-port", "0", "--https-port", "0", "--dns-port", "0", "--resolver", "systemd-resolved"])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("DEVINGRESS_DATA_DIR", sys.dir.path().join("data"))
        .env("DEVINGRESS_SYSTEM_ROOT", sys.root())
        .env("DEVINGRESS_RUNTIME_DIR", sys.dir.path().join("run"))
        .env("PATH", sys.path_var())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot use systemd-resolved") && stderr.contains("Access denied"), "{stderr}");
}

/// Runs `program args` in `pid`'s mount namespace.
async fn in_namespace(pid: u32, program: &str, args: &[&str], data_dir: &Path) -> std::process::Output {
    tokio::process::Command::new("nsenter")
        .env("DEVINGRESS_DATA_DIR", data_dir)
        .args(["-t", &pid.to_string(), "-m", program])
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn getaddrinfo_resolves_served_hosts_through_the_hosts_file_and_doctor_agrees() {
    crate::support::devingress::require_root("it gives devingress a private /etc in a mount namespace");
    crate::support::devingress::require("unshare", "util-linux", "it makes a mount namespace");
    crate::support::devingress::require("nsenter", "util-linux", "it runs getent in that namespace");
    // devingress gets a private copy of /etc in its own mount namespace, so
    // that it edits a real /etc/hosts that glibc reads, and the machine's stays as it is.
    let machine_hosts = std::fs::read("/etc/hosts").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    assert!(std::process::Command::new("cp").arg("-a").arg("/etc").arg(&etc).status().unwrap().success());
    let original = std::fs::read(etc.join("hosts")).unwrap();
    let mut c = TestCluster::start().await;
    c.examples().await;
    let etc_arg = etc.display().to_string();
    let wrapper = ["unshare", "-m", "sh", "-c", "mount --bind \"$0\" /etc && exec \"$@\"", &etc_arg];
    let d = Devingress::up_wrapped(&wrapper, &c.kubeconfig, &["--resolver", "hosts"], &[]).await;
    let pid = d.pid();
    let data_dir = d.data_dir.clone();
    let resolves = |host: &'static str| {
        let data_dir = data_dir.clone();
        async move {
            let out = in_namespace(pid, "getent", &["ahostsv4", host], &data_dir).await;
            String::from_utf8_lossy(&out.stdout).lines().next().is_some_and(|l| l.starts_with("127.0.0.1 "))
        }
    };
    assert!(eventually(SETTLE, || resolves("alpaca.example.com")).await, "{}", d.log());
    // A new Ingress: how long until getaddrinfo gives 127.0.0.1.
    let added = std::time::Instant::now();
    c.ingress(
        "default",
        "late",
        json!({"rules": [{"host": "late.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}),
    );
    assert!(eventually(SETTLE, || resolves("late.example.com")).await, "{}", d.log());
    eprintln!("a new Ingress's host resolved through getaddrinfo after {:?}", added.elapsed());

    // doctor, run where devingress runs, finds every part working but the CA.
    let (http, dns) = (d.port.to_string(), d.dns_port.unwrap().to_string());
    let https = d.https_port.unwrap().to_string();
    let kubeconfig = c.kubeconfig.display().to_string();
    let args =
        ["doctor", "--kubeconfig", &kubeconfig, "--http-port", &http, "--https-port", &https, "--dns-port", &dns];
    let out = in_namespace(pid, BIN, &args, &d.data_dir).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let resolver_ok = stdout
        .lines()
        .any(|l| l.starts_with("ok    OS resolver: alpaca.example.com resolves to [") && l.contains("127.0.0.1"));
    assert!(resolver_ok, "{stdout}");
    assert!(stdout.contains("FAIL  CA trusted: devingress local CA"), "{stdout}");
    assert_eq!(stdout.matches("FAIL").count(), 1, "only the CA, which no store trusts here:\n{stdout}");

    c.api.delete(INGRESSES, "default", "late");
    assert!(eventually(SETTLE, || async { !resolves("late.example.com").await }).await, "gone with its Ingress");
    stop(d).await;
    assert_eq!(std::fs::read(etc.join("hosts")).unwrap(), original, "restored byte for byte");
    assert_eq!(std::fs::read("/etc/hosts").unwrap(), machine_hosts, "the machine's own hosts file never changed");
}
