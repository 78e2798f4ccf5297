//! HTTPS: minted certificates trusted through the local CA, HTTP/2 and
//! HTTP/1.1, Secret certificates, the 308 redirect, `curl --cacert`, the
//! `ca` commands, and `trust`/`untrust` against a temporary store layout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::support::apiserver::resources::{INGRESSES, SECRETS};
use crate::support::cluster::TestCluster;
use crate::support::devingress::{BIN, Devingress, eventually, get};

const SETTLE: Duration = Duration::from_secs(15);

fn roots_from_pem(pem: &str) -> rustls::RootCertStore {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// Connects with TLS to devingress's HTTPS port, offering `alpn`, trusting only `roots`.
async fn connect(
    port: u16,
    sni: &str,
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
}

/// GET over an established TLS stream, by the negotiated protocol; returns (version, body).
async fn get_over(
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    host: &str,
    path: &str,
) -> (String, String) {
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let res = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(format!("https://{host}{path}")).body(Empty::<Bytes>::new()).unwrap();
        send.send_request(req).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(path).header("host", host).body(Empty::<Bytes>::new()).unwrap();
        send.send_request(req).await.unwrap()
    };
    let version = format!("{:?}", res.version());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (version, String::from_utf8_lossy(&body).into_owned())
}

fn ca_pem(d: &Devingress) -> String {
    std::fs::read_to_string(d.data_dir.join("ca/rootCA.pem")).expect("CA written")
}

#[tokio::test]
async fn https_over_http2_and_http1_with_a_certificate_from_the_local_ca() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let port = d.https_port.expect("serves HTTPS");
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    for (alpn, version) in [(&b"h2"[..], "HTTP/2.0"), (&b"http/1.1"[..], "HTTP/1.1")] {
        let tls = connect(port, "alpaca.example.com", roots_from_pem(&ca_pem(&d)), &[alpn])
            .await
            .expect("handshake verifies");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
        let (v, body) = get_over(tls, "alpaca.example.com", "/secure").await;
        assert_eq!(v, version);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(body["pod"].as_str().unwrap().starts_with("alpaca-"), "{body}");
        assert_eq!(body["headers"]["x-forwarded-proto"], "https");
        assert_eq!(body["headers"]["x-forwarded-port"], port.to_string());
    }
    // A name without a route gets no certificate: the handshake fails cleanly.
    let refused = connect(port, "www.example.org", roots_from_pem(&ca_pem(&d)), &[b"h2"]).await;
    assert!(refused.is_err());
    // Another client trusting only some other root refuses our certificate.
    let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
    assert!(connect(port, "alpaca.example.com", roots_from_pem(&other.cert.pem()), &[b"h2"]).await.is_err());
    assert_eq!(get(d.port, "bandicoot.example.com", "/").await.status, 200, "still serving");
    assert!(d.log().contains("minted a certificate for alpaca.example.com"), "{}", d.log());
    // The CA is in no store of this test: `up` said so, once.
    assert_eq!(
        d.log().matches("browsers do not trust the local CA yet: run `devingress trust` once").count(),
        1,
        "{}",
        d.log()
    );
}

pub(crate) fn tls_secret(c: &TestCluster, name: &str, cert_pem: &str, key_pem: &str) {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    c.api.apply(
        SECRETS,
        json!({"metadata": {"name": name, "namespace": "default"}, "type": "kubernetes.io/tls",
               "data": {"tls.crt": b(cert_pem), "tls.key": b(key_pem)}}),
    );
}

pub(crate) fn tls_ingress(c: &TestCluster, name: &str, host: &str, secret: &str, annotations: serde_json::Value) {
    c.api.apply(
        INGRESSES,
        json!({"metadata": {"name": name, "namespace": "default", "annotations": annotations},
               "spec": {"tls": [{"hosts": [host], "secretName": secret}],
                        "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                            "backend": {"service": {"name": "bandicoot", "port": {"number": 8080}}}}]}}]}}),
    );
}

/// A CA of the test's own and a leaf it signed for `host`.
pub(crate) fn own_ca_leaf(host: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "test secret CA");
    let ca_cert = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

#[tokio::test]
async fn ingress_tls_secrets_are_served_and_bad_ones_fall_back() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let (own_ca, cert, key) = own_ca_leaf("secure.example.com");
    tls_secret(&c, "secure-tls", &cert, &key);
    tls_ingress(&c, "secure", "secure.example.com", "secure-tls", json!({}));
    let (_, wrong_cert, wrong_key) = own_ca_leaf("someone.else.test");
    tls_secret(&c, "wrong-tls", &wrong_cert, &wrong_key);
    tls_ingress(&c, "mismatch", "mismatch.example.com", "wrong-tls", json!({}));
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let port = d.https_port.unwrap();
    // The Secret's own certificate: a client trusting only the Secret's CA connects.
    assert!(
        eventually(SETTLE, || async {
            connect(port, "secure.example.com", roots_from_pem(&own_ca), &[b"h2"]).await.is_ok()
        })
        .await,
        "{}",
        d.log()
    );
    let tls = connect(port, "secure.example.com", roots_from_pem(&own_ca), &[b"http/1.1"]).await.unwrap();
    let (_, body) = get_over(tls, "secure.example.com", "/").await;
    assert!(body.contains("bandicoot-0"), "{body}");
    // The mismatched Secret: a minted certificate, and one warning naming it.
    let tls =
        connect(port, "mismatch.example.com", roots_from_pem(&ca_pem(&d)), &[b"h2"]).await.expect("minted fallback");
    drop(tls);
    let needle = "TLS Secret default/wrong-tls (Ingress default/mismatch) cannot be used for mismatch.example.com: its certificate does not cover";
    assert!(d.wait_log(needle, SETTLE).await, "{}", d.log());
    // The watch follows the Secret: fixing it switches the certificate.
    let (fixed_ca, fixed_cert, fixed_key) = own_ca_leaf("mismatch.example.com");
    tls_secret(&c, "wrong-tls", &fixed_cert, &fixed_key);
    assert!(
        eventually(SETTLE, || async {
            connect(port, "mismatch.example.com", roots_from_pem(&fixed_ca), &[b"h2"]).await.is_ok()
        })
        .await,
        "{}",
        d.log()
    );
    assert_eq!(d.log().matches(needle).count(), 1);
    // A sound Secret is never reported, not even before its first list is in.
    assert!(!d.log().contains("TLS Secret default/secure-tls"), "{}", d.log());
    // Only the referenced Secrets were asked for, by name.
    let secret_requests: Vec<String> = c.api.requests().into_iter().filter(|r| r.contains("/secrets")).collect();
    assert!(!secret_requests.is_empty());
    assert!(secret_requests.iter().all(|r| r.contains("fieldSelector=metadata.name")), "{secret_requests:?}");
}

#[tokio::test]
async fn tls_hosts_redirect_http_to_https_unless_opted_out() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    tls_ingress(&c, "secure", "secure.example.com", "", json!({}));
    tls_ingress(&c, "plain", "plain.example.com", "", json!({"nginx.ingress.kubernetes.io/ssl-redirect": "false"}));
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let port = d.https_port.unwrap();
    assert!(eventually(SETTLE, || async { get(d.port, "secure.example.com", "/a?b=c").await.status == 308 }).await);
    let a = get(d.port, "secure.example.com", "/a?b=c").await;
    assert_eq!(a.headers["location"], format!("https://secure.example.com:{port}/a?b=c"));
    // (The 308 can come before the Services are loaded.)
    let plain = eventually(SETTLE, || async { get(d.port, "plain.example.com", "/").await.status != 503 }).await;
    assert!(plain, "{}", d.log());
    let plain = get(d.port, "plain.example.com", "/").await;
    assert_eq!(plain.pod().as_deref(), Some("bandicoot-0"), "{plain:?}\n{}", d.log());
    assert_eq!(get(d.port, "alpaca.example.com", "/").await.status, 200, "hosts without spec.tls are not redirected");
    // Over HTTPS the same host is served, not redirected.
    let tls = connect(port, "secure.example.com", roots_from_pem(&ca_pem(&d)), &[b"h2"]).await.unwrap();
    let (_, body) = get_over(tls, "secure.example.com", "/").await;
    assert!(body.contains("bandicoot-0"), "{body}");
}

#[tokio::test]
async fn curl_with_cacert_against_the_running_binary() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let port = d.https_port.unwrap();
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    let ca = d.data_dir.join("ca/rootCA.pem");
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&ca)
        .args(["--resolve", &format!("alpaca.example.com:{port}:127.0.0.1")])
        .arg(format!("https://alpaca.example.com:{port}/via-curl"))
        .output()
        .await
        .expect("curl is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\"pod\":\"alpaca-") && stdout.contains("/via-curl"), "{stdout}");
}

#[tokio::test]
async fn ca_path_prints_only_the_path_and_show_prints_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["ca", "path"])
        .env("DEVINGRESS_DATA_DIR", dir.path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let path = String::from_utf8(out.stdout).unwrap();
    assert_eq!(path, format!("{}\n", dir.path().join("ca/rootCA.pem").display()));
    let pem = std::fs::read_to_string(path.trim()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let out = tokio::process::Command::new(BIN)
        .args(["ca", "show"])
        .env("DEVINGRESS_DATA_DIR", dir.path())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("name:        devingress local CA "), "{text}");
    let fp = text.lines().find(|l| l.starts_with("SHA-256:")).unwrap().split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(fp.len(), 95, "{fp}");
    assert!(text.contains("expires:     20"), "{text}");
}

/// Every file under `root`, with its bytes (or symlink target).
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.file_type().is_symlink() {
                out.push((p.clone(), std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        if meta.is_dir() {
            copy_tree(&e.path(), &target);
        } else if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn trust_installs_into_a_copy_of_the_system_store_and_untrust_restores_it_byte_for_byte() {
    crate::support::devingress::require("update-ca-certificates", "ca-certificates", "it runs Debian's store tool");
    assert!(Path::new("/usr/share/ca-certificates").is_dir(), "needs Debian's ca-certificates layout");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    copy_tree(Path::new("/usr/share/ca-certificates"), &root.join("usr/share/ca-certificates"));
    std::fs::create_dir_all(root.join("etc/ssl/certs")).unwrap();
    std::fs::create_dir_all(root.join("etc/ca-certificates/update.d")).unwrap();
    std::fs::create_dir_all(root.join("usr/local/share/ca-certificates")).unwrap();
    std::fs::copy("/etc/ca-certificates.conf", root.join("etc/ca-certificates.conf")).unwrap();
    // The layout as update-ca-certificates leaves it.
    let dirs = |r: &Path| {
        vec![
            "--certsconf".to_string(),
            r.join("etc/ca-certificates.conf").display().to_string(),
            "--certsdir".into(),
            r.join("usr/share/ca-certificates").display().to_string(),
            "--localcertsdir".into(),
            r.join("usr/local/share/ca-certificates").display().to_string(),
            "--etccertsdir".into(),
            r.join("etc/ssl/certs").display().to_string(),
            "--hooksdir".into(),
            r.join("etc/ca-certificates/update.d").display().to_string(),
        ]
    };
    let st = std::process::Command::new("update-ca-certificates").args(dirs(&root)).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let before = snapshot(&root);
    let data = dir.path().join("data");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env("DEVINGRESS_DATA_DIR", &data)
            .env("DEVINGRESS_TRUST_ROOT", &root)
            .env("HOME", &home)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = run(&["trust"]);
    let ca = std::fs::read_to_string(data.join("ca/rootCA.pem")).unwrap();
    let bundle = std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    let body: String = ca.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(bundle.lines().collect::<String>().contains(&body), "the bundle holds the CA");
    assert!(said.contains("system trust store (update-ca-certificates): wrote"), "{said}");
    assert!(said.contains("usr/local/share/ca-certificates/devingress_"), "{said}");
    assert!(run(&["ca", "show"]).contains("system trust store (update-ca-certificates) (trusted)"));
    // Again: nothing to do.
    assert!(run(&["trust"]).contains("nothing to do"));
    let said = run(&["untrust"]);
    assert!(said.contains("removed"), "{said}");
    let after = snapshot(&root);
    let differ: Vec<String> = before
        .iter()
        .map(|(p, _)| p)
        .chain(after.iter().map(|(p, _)| p))
        .filter(|p| {
            before.iter().find(|(q, _)| q == *p).map(|x| &x.1) != after.iter().find(|(q, _)| q == *p).map(|x| &x.1)
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(differ.is_empty(), "untrust restores the store byte for byte; these differ: {differ:?}");
}

#[tokio::test]
async fn trust_and_untrust_an_nss_database() {
    crate::support::devingress::require("certutil", "libnss3-tools", "it reads and writes an NSS database");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let st = std::process::Command::new("certutil")
        .args(["-N", "--empty-password", "-d"])
        .arg(format!("sql:{}", db.display()))
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let list = || {
        let out = std::process::Command::new("certutil")
            .args(["-L", "-d"])
            .arg(format!("sql:{}", db.display()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env("DEVINGRESS_DATA_DIR", dir.path().join("data"))
            .env("DEVINGRESS_TRUST_ROOT", dir.path().join("no-system-store"))
            .env("HOME", &home)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = run(&["trust"]);
    assert!(said.contains("NSS databases (Firefox, Chrome): added devingress_"), "{said}");
    assert!(list().contains("devingress_"), "{}", list());
    let said = run(&["untrust"]);
    assert!(said.contains("removed devingress_"), "{said}");
    assert!(!list().contains("devingress_"), "{}", list());
}

/// Chrome on Linux trusts local CAs through the user's NSS database, which
/// it makes only on its first run with a profile: never for headless runs
/// or fresh profiles. One `devingress trust` on a fresh home makes it, and
/// headless Chromium then loads an HTTPS Ingress host without a certificate
/// error (and with one before).
#[tokio::test]
async fn chromium_on_a_fresh_home_loads_an_https_host_after_one_trust() {
    crate::support::devingress::require("certutil", "libnss3-tools", "trust writes Chrome's NSS database with it");
    let mut c = TestCluster::start().await;
    c.examples().await;
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    assert!(eventually(SETTLE, || async { get(d.port, "alpaca.example.com", "/").await.status == 200 }).await);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let url = format!("https://alpaca.example.com:{}/", d.https_port.expect("HTTPS"));
    let load = || async {
        let out = crate::support::devingress::chromium(
            &[
                "--host-resolver-rules=MAP alpaca.example.com 127.0.0.1",
                "--virtual-time-budget=3000",
                "--dump-dom",
                &url,
            ],
            &[("HOME", home.as_os_str())],
        )
        .await;
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (dom, log) = load().await;
    assert!(!dom.contains("\"pod\":\"alpaca-"), "not trusted yet, so the page must not load:\n{dom}\n{log}");
    assert!(!home.join(".pki/nssdb").exists(), "Chromium headless makes no NSS database itself");

    let out = std::process::Command::new(BIN)
        .arg("trust")
        .env("DEVINGRESS_DATA_DIR", &d.data_dir)
        .env("DEVINGRESS_TRUST_ROOT", dir.path().join("no-system-store"))
        .env("HOME", &home)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("created Chrome's NSS database"), "{said}");
    assert!(home.join(".pki/nssdb/cert9.db").exists(), "{said}");

    let (dom, log) = load().await;
    assert!(dom.contains("\"pod\":\"alpaca-"), "the pod's answer over trusted HTTPS:\n{dom}\n{log}");
    assert!(!dom.contains("ERR_CERT"), "{dom}");

    // doctor now finds Chrome's database trusting the CA.
    let out = std::process::Command::new(BIN)
        .arg("doctor")
        .env("DEVINGRESS_DATA_DIR", &d.data_dir)
        .env("DEVINGRESS_TRUST_ROOT", dir.path().join("no-system-store"))
        .env("DEVINGRESS_RUNTIME_DIR", d.runtime_dir())
        .env("HOME", &home)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("ok    CA trusted:") && said.contains(".pki/nssdb (Chrome)"), "{said}");
}

/// A Gateway's HTTPS listener serves the certificate of the Secret its
/// `certificateRefs` names; a reference to another namespace without a
/// ReferenceGrant is refused in the listener's status.
#[tokio::test]
async fn a_gateway_https_listener_serves_its_certificate_refs_secret() {
    use crate::support::apiserver::resources::{GATEWAYS, HTTP_ROUTES};
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.api.install_gateway_api();
    let (secret_ca, cert, key) = own_ca_leaf("secure.gw.test");
    tls_secret(&c, "gw-cert", &cert, &key);
    c.api.apply(
        GATEWAYS,
        json!({"metadata": {"name": "web", "namespace": "default"},
               "spec": {"gatewayClassName": "devingress", "listeners": [
                   {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "secure.gw.test",
                    "tls": {"mode": "Terminate", "certificateRefs": [{"name": "gw-cert"}]}},
                   {"name": "elsewhere", "port": 443, "protocol": "HTTPS", "hostname": "other.gw.test",
                    "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert", "namespace": "vault"}]}}]}}),
    );
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "secure", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "web", "sectionName": "https"}],
                        "rules": [{"backendRefs": [{"name": "bandicoot", "port": 8080}]}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let port = d.https_port.unwrap();
    let served = || async {
        match connect(port, "secure.gw.test", roots_from_pem(&secret_ca), &[b"h2"]).await {
            Ok(tls) => get_over(tls, "secure.gw.test", "/").await.1.contains("bandicoot-0"),
            Err(_) => false,
        }
    };
    assert!(eventually(SETTLE, served).await, "{}", d.log());
    let status = || c.api.get(GATEWAYS, "default", "web").unwrap()["status"]["listeners"].clone();
    let resolved = |i: usize| {
        let l = status();
        l[i]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "ResolvedRefs"))
            .map(|c| c["reason"].clone())
    };
    assert!(eventually(SETTLE, || async { resolved(1) == Some(json!("RefNotPermitted")) }).await, "{}", status());
    assert_eq!(resolved(0), Some(json!("ResolvedRefs")));
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn gateway_listeners_on_other_ports_are_served_on_their_own_numbers() {
    use crate::support::apiserver::resources::{GATEWAYS, HTTP_ROUTES};
    use crate::support::devingress::try_get;
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.api.install_gateway_api();
    let (http_alt, https_alt) = (free_port(), free_port());
    // Another program holds this one.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let (secret_ca, cert, key) = own_ca_leaf("alt.gw.test");
    tls_secret(&c, "alt-cert", &cert, &key);
    c.api.apply(
        GATEWAYS,
        json!({"metadata": {"name": "alt", "namespace": "default"},
               "spec": {"gatewayClassName": "devingress", "listeners": [
                   {"name": "plain", "port": http_alt, "protocol": "HTTP"},
                   {"name": "secure", "port": https_alt, "protocol": "HTTPS", "hostname": "alt.gw.test",
                    "tls": {"mode": "Terminate", "certificateRefs": [{"name": "alt-cert"}]}},
                   {"name": "taken", "port": held, "protocol": "HTTP"}]}}),
    );
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "alt", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "alt"}], "hostnames": ["alt.gw.test"],
                        "rules": [{"backendRefs": [{"name": "bandicoot", "port": 8080}]}]}}),
    );
    // Attached by port: served on that listener only.
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "by-port", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "alt", "port": http_alt}], "hostnames": ["port.gw.test"],
                        "rules": [{"backendRefs": [{"name": "alpaca", "port": 8080}]}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let pod_at = |port: u16, host: &'static str| async move { try_get(port, host, "/").await.and_then(|a| a.pod()) };
    assert!(
        eventually(SETTLE, || async { pod_at(http_alt, "alt.gw.test").await.as_deref() == Some("bandicoot-0") }).await,
        "{}",
        d.log()
    );
    assert!(pod_at(http_alt, "port.gw.test").await.is_some_and(|p| p.starts_with("alpaca")));
    // Its own port serves its Gateway routes only: an Ingress host is not found there.
    let ingress_host = try_get(http_alt, "alpaca.example.com", "/").await.unwrap();
    assert_eq!(ingress_host.status, 404, "{}", ingress_host.body);
    assert!(ingress_host.body.contains(&format!("on port {http_alt}")), "{}", ingress_host.body);
    // The listener is not on devingress's HTTP port: that serves port 80's.
    assert_ne!(get(d.port, "alt.gw.test", "/").await.pod().as_deref(), Some("bandicoot-0"));
    // HTTPS on a port of its own, with the Secret's certificate by SNI.
    let tls = connect(https_alt, "alt.gw.test", roots_from_pem(&secret_ca), &[b"h2"]).await.expect("TLS");
    let (version, body) = get_over(tls, "alt.gw.test", "/").await;
    assert_eq!(version, "HTTP/2.0");
    assert!(body.contains("bandicoot-0"), "{body}");
    assert!(d.log().contains(&format!("on https://127.0.0.1:{https_alt}")), "{}", d.log());

    // Status: the held port is PortUnavailable, the others Programmed.
    let listener = |i: usize, kind: &str| {
        let g = c.api.get(GATEWAYS, "default", "alt").unwrap();
        g["status"]["listeners"][i]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .map(|c| (c["status"].as_str().unwrap().to_string(), c["reason"].as_str().unwrap().to_string()))
    };
    let pair = |s: &str, r: &str| Some((s.to_string(), r.to_string()));
    assert!(
        eventually(SETTLE, || async { listener(2, "Accepted") == pair("False", "PortUnavailable") }).await,
        "{:?}\n{}",
        c.api.get(GATEWAYS, "default", "alt"),
        d.log()
    );
    assert_eq!(listener(0, "Programmed"), pair("True", "Programmed"));
    assert_eq!(listener(1, "Programmed"), pair("True", "Programmed"));
    assert_eq!(listener(2, "Programmed"), pair("False", "Invalid"));
    assert!(d.log().contains(&format!("port http:{held} not served: 127.0.0.1:{held} is in use")), "{}", d.log());
    // Freed, it is taken within the retry, and the status follows.
    drop(holder);
    assert!(
        eventually(SETTLE, || async { pod_at(held, "alt.gw.test").await.as_deref() == Some("bandicoot-0") }).await,
        "{}",
        d.log()
    );
    assert!(eventually(SETTLE, || async { listener(2, "Programmed") == pair("True", "Programmed") }).await);
    // The route attached by port is not on this listener.
    assert_eq!(try_get(held, "port.gw.test", "/").await.map(|a| a.status), Some(404));

    // A listener taken out of the Gateway closes its port.
    c.api.apply(
        GATEWAYS,
        json!({"metadata": {"name": "alt", "namespace": "default"},
               "spec": {"gatewayClassName": "devingress", "listeners": [
                   {"name": "plain", "port": http_alt, "protocol": "HTTP"}]}}),
    );
    assert!(
        eventually(SETTLE, || async { tokio::net::TcpStream::connect(("127.0.0.1", held)).await.is_err() }).await,
        "{}",
        d.log()
    );
    assert_eq!(pod_at(http_alt, "alt.gw.test").await.as_deref(), Some("bandicoot-0"));
}

/// A self-signed certificate for `host` and its key, made by `openssl` with
/// `keygen` (`req -newkey` arguments), the key then converted by `convert`
/// (an `openssl` command reading and writing PEM on stdin/stdout), if given.
fn openssl_pair(dir: &Path, host: &str, keygen: &[&str], convert: Option<&[&str]>) -> (String, String) {
    crate::support::devingress::require("openssl", "openssl", "it makes keys in each PEM format");
    let (key, crt) = (dir.join(format!("{host}.key")), dir.join(format!("{host}.crt")));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "30", "-subj", &format!("/CN={host}")])
        .args(["-addext", &format!("subjectAltName=DNS:{host}"), "-addext", "basicConstraints=critical,CA:FALSE"])
        .args(keygen)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut key_pem = std::fs::read_to_string(&key).unwrap();
    if let Some(args) = convert {
        let out = std::process::Command::new("openssl").args(args).arg("-in").arg(&key).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        key_pem = String::from_utf8(out.stdout).unwrap();
    }
    (std::fs::read_to_string(&crt).unwrap(), key_pem)
}

#[tokio::test]
async fn rsa_keys_in_pkcs1_and_pkcs8_and_ecdsa_keys_all_serve() {
    use crate::support::apiserver::resources::{GATEWAYS, HTTP_ROUTES};
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.api.install_gateway_api();
    let dir = tempfile::tempdir().unwrap();
    let rsa: &[&str] = &["-newkey", "rsa:2048"];
    let ec: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    /// Host, key generation, conversion, and the PEM header the key must have.
    type Case<'a> = (&'a str, &'a [&'a str], Option<&'a [&'a str]>, &'a str);
    let cases: [Case; 4] = [
        ("rsa-pkcs1.keys.test", rsa, Some(&["rsa", "-traditional"]), "BEGIN RSA PRIVATE KEY"),
        ("rsa-pkcs8.keys.test", rsa, None, "BEGIN PRIVATE KEY"),
        ("ec-sec1.keys.test", ec, Some(&["ec"]), "BEGIN EC PRIVATE KEY"),
        ("ec-pkcs8.keys.test", ec, None, "BEGIN PRIVATE KEY"),
    ];
    let mut certs = Vec::new();
    let mut listeners = Vec::new();
    for (i, (host, keygen, convert, header)) in cases.iter().enumerate() {
        let (crt, key) = openssl_pair(dir.path(), host, keygen, *convert);
        assert!(key.contains(header), "{host}: {key}");
        let secret = format!("key-{i}");
        tls_secret(&c, &secret, &crt, &key);
        // Two through Ingresses, two through a Gateway's HTTPS listeners.
        if i % 2 == 0 {
            tls_ingress(&c, &format!("keys-{i}"), host, &secret, json!({}));
        } else {
            listeners.push(json!({"name": format!("l{i}"), "port": 443, "protocol": "HTTPS", "hostname": host,
                                  "tls": {"certificateRefs": [{"name": secret}]}}));
        }
        certs.push((*host, crt));
    }
    c.api.apply(
        GATEWAYS,
        json!({"metadata": {"name": "keys", "namespace": "default"},
               "spec": {"gatewayClassName": "devingress", "listeners": listeners}}),
    );
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "keys", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "keys"}],
                        "rules": [{"backendRefs": [{"name": "bandicoot", "port": 8080}]}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let port = d.https_port.unwrap();
    for (host, crt) in &certs {
        // Trusting only the Secret's self-signed certificate: the handshake
        // proves devingress served it, with its key.
        let served = || async {
            match connect(port, host, roots_from_pem(crt), &[b"http/1.1"]).await {
                Ok(tls) => get_over(tls, host, "/").await.1.contains("bandicoot-0"),
                Err(_) => false,
            }
        };
        assert!(eventually(SETTLE, served).await, "{host}\n{}", d.log());
    }
    assert!(!d.log().contains("not a PEM private key") && !d.log().contains("does not fit"), "{}", d.log());
}

#[tokio::test]
async fn a_listener_without_hostname_serves_its_secret_for_its_routes_and_bad_secrets_are_invalid_refs() {
    use crate::support::apiserver::resources::{GATEWAYS, HTTP_ROUTES};
    let mut c = TestCluster::start().await;
    c.examples().await;
    c.api.install_gateway_api();
    let (secret_ca, cert, key) = own_ca_leaf("example.org");
    tls_secret(&c, "any-host", &cert, &key);
    tls_secret(&c, "malformed", "not a certificate", "not a key");
    let https = |name: &str, hostname: Option<&str>, secret: &str| {
        let mut l = json!({"name": name, "port": 443, "protocol": "HTTPS",
                           "tls": {"certificateRefs": [{"group": "", "kind": "Secret", "name": secret}]}});
        if let Some(h) = hostname {
            l["hostname"] = json!(h);
        }
        l
    };
    c.api.apply(
        GATEWAYS,
        json!({"metadata": {"name": "tls", "namespace": "default"},
               "spec": {"gatewayClassName": "devingress", "listeners": [
                   https("https", None, "any-host"),
                   https("missing", Some("missing.test"), "nonexistent-certificate"),
                   https("malformed", Some("malformed.test"), "malformed"),
                   {"name": "other-kind", "port": 443, "protocol": "HTTPS", "hostname": "kind.test",
                    "tls": {"certificateRefs": [{"group": "example.com", "kind": "Vault", "name": "x"}]}}]}}),
    );
    c.api.apply(
        HTTP_ROUTES,
        json!({"metadata": {"name": "org", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "tls", "sectionName": "https"}], "hostnames": ["example.org"],
                        "rules": [{"backendRefs": [{"name": "bandicoot", "port": 8080}]}]}}),
    );
    let d = Devingress::up(&c.kubeconfig, &[]).await;
    let port = d.https_port.unwrap();
    // The listener has no hostname: its Secret serves the route's.
    let served = || async {
        match connect(port, "example.org", roots_from_pem(&secret_ca), &[b"h2"]).await {
            Ok(tls) => get_over(tls, "example.org", "/").await.1.contains("bandicoot-0"),
            Err(_) => false,
        }
    };
    assert!(eventually(SETTLE, served).await, "{}", d.log());
    let resolved = |name: &str| {
        let g = c.api.get(GATEWAYS, "default", "tls").unwrap();
        g["status"]["listeners"].as_array().and_then(|ls| {
            let l = ls.iter().find(|l| l["name"] == name)?;
            let c = l["conditions"].as_array()?.iter().find(|c| c["type"] == "ResolvedRefs")?;
            Some((c["status"].as_str()?.to_string(), c["reason"].as_str()?.to_string()))
        })
    };
    let invalid = Some(("False".to_string(), "InvalidCertificateRef".to_string()));
    for name in ["missing", "malformed", "other-kind"] {
        assert!(
            eventually(SETTLE, || async { resolved(name) == invalid }).await,
            "{name}: {:?}\n{}",
            c.api.get(GATEWAYS, "default", "tls"),
            d.log()
        );
    }
    assert_eq!(resolved("https"), Some(("True".to_string(), "ResolvedRefs".to_string())));
}
