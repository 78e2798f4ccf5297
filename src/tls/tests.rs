//! Unit tests: CA creation and reload, leaf issuance, renewal, file
//! permissions, SNI selection and Secret certificates.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::paths::Paths;
use crate::routes::{HostPattern, SecretRef, TlsHost};

fn temp_paths() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths { data_dir: dir.path().join("data") };
    (dir, paths)
}

/// Verifies `leaf` for `name` against a root store holding only `ca`.
fn verify(
    ca: &LocalCa,
    leaf: &rustls::sign::CertifiedKey,
    name: &str,
    at: OffsetDateTime,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der.clone()).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.unix_timestamp() as u64));
    verifier
        .verify_server_cert(&leaf.cert[0], &leaf.cert[1..], &ServerName::try_from(name.to_string()).unwrap(), &[], now)
        .map(|_| ())
}

#[test]
fn ca_is_created_private_and_reloaded() {
    let (_d, paths) = temp_paths();
    let (ca, created) = LocalCa::load_or_create(&paths).unwrap();
    assert!(created);
    assert!(ca.subject.starts_with("devingress local CA ") && ca.subject.contains('@'), "{}", ca.subject);
    let years = (ca.not_after - OffsetDateTime::now_utc()).whole_days() / 365;
    assert!((9..=10).contains(&years), "{years} years");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.ca_key()), 0o600);
        assert_eq!(mode(&paths.ca_dir()), 0o700);
        // A key made readable by others is made private again on load.
        std::fs::set_permissions(paths.ca_key(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let _ = LocalCa::load(&paths).unwrap().unwrap();
        assert_eq!(mode(&paths.ca_key()), 0o600);
    }
    let (again, created) = LocalCa::load_or_create(&paths).unwrap();
    assert!(!created);
    assert_eq!(again.fingerprint, ca.fingerprint);
    assert_eq!(again.fingerprint.len(), 32 * 3 - 1);
    // The CA certificate says it is a CA.
    let (_, parsed) = x509_parser::parse_x509_certificate(&ca.cert_der).unwrap();
    assert!(parsed.is_ca());
    assert_eq!(parsed.public_key().algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1", "EC key");
}

#[test]
fn broken_ca_files_are_a_clear_error() {
    let (_d, paths) = temp_paths();
    std::fs::create_dir_all(paths.ca_dir()).unwrap();
    std::fs::write(paths.ca_cert(), "not a certificate").unwrap();
    std::fs::write(paths.ca_key(), "not a key").unwrap();
    let err = LocalCa::load(&paths).err().unwrap().to_string();
    assert!(err.contains("cannot be used") && err.contains("move that directory away"), "{err}");
}

#[test]
fn leaves_cover_their_name_and_chain_to_the_ca() {
    let (_d, paths) = temp_paths();
    let (ca, _) = LocalCa::load_or_create(&paths).unwrap();
    let now = OffsetDateTime::now_utc();
    let leaf = ca.issue("alpaca.example.com", now).unwrap();
    verify(&ca, &leaf.certified, "alpaca.example.com", now).unwrap();
    assert!(verify(&ca, &leaf.certified, "bandicoot.example.com", now).is_err());
    let days = (leaf.not_after - now).whole_days();
    assert!((30..398).contains(&days), "{days} days");
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf.certified.cert[0]).unwrap();
    let eku = parsed.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth);
    assert!(!parsed.is_ca());

    let wild = ca.issue("*.example.com", now).unwrap();
    verify(&ca, &wild.certified, "bandicoot.example.com", now).unwrap();
    assert!(verify(&ca, &wild.certified, "a.b.example.com", now).is_err(), "one label only");
    assert!(verify(&ca, &wild.certified, "example.com", now).is_err());
    // Expired leaves are refused by clients.
    assert!(verify(&ca, &leaf.certified, "alpaca.example.com", now + Duration::days(91)).is_err());
}

#[test]
fn leaves_are_cached_on_disk_privately_and_renewed_before_expiry() {
    let (_d, paths) = temp_paths();
    let (ca, _) = LocalCa::load_or_create(&paths).unwrap();
    let ca = Arc::new(ca);
    let now = OffsetDateTime::now_utc();
    let store = LeafStore::new(ca.clone(), paths.leaves_dir());
    let first = store.get("alpaca.example.com", now).unwrap();
    assert!(Arc::ptr_eq(&first, &store.get("alpaca.example.com", now).unwrap()), "memory cache");
    let file = paths.leaves_dir().join("alpaca.example.com.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // A new process reuses the certificate on disk.
    let reloaded = LeafStore::new(ca.clone(), paths.leaves_dir()).get("alpaca.example.com", now).unwrap();
    assert_eq!(reloaded.cert[0], first.cert[0]);
    // 70 days on, less than 30 days are left: a new one is minted.
    let later = now + Duration::days(70);
    let renewed = store.get("alpaca.example.com", later).unwrap();
    assert_ne!(renewed.cert[0], first.cert[0]);
    verify(&ca, &renewed, "alpaca.example.com", later + Duration::days(60)).unwrap();
    // A file signed by another CA is not trusted from disk.
    let (_d2, other_paths) = temp_paths();
    let (other, _) = LocalCa::load_or_create(&other_paths).unwrap();
    let store2 = LeafStore::new(Arc::new(other), paths.leaves_dir());
    let fresh = store2.get("alpaca.example.com", now).unwrap();
    assert_ne!(fresh.cert[0], renewed.cert[0]);
}

use crate::routes::table_for_hosts as table_with;

#[test]
fn sni_selection() {
    let t = table_with(&["alpaca.example.com", "*.apps.test", ""]);
    let name = |sni: Option<&str>| resolver::choose(&t, sni).map(|(_, n)| n);
    assert_eq!(name(Some("alpaca.example.com")).as_deref(), Some("alpaca.example.com"));
    assert_eq!(name(Some("ALPACA.example.com")).as_deref(), Some("alpaca.example.com"));
    assert_eq!(name(Some("web.apps.test")).as_deref(), Some("*.apps.test"));
    assert_eq!(name(Some("a.web.apps.test")), None, "wildcards cover one label");
    // The empty-host rule routes everything, but certificates are minted
    // only for named hosts: an arbitrary name is refused.
    assert_eq!(name(Some("www.google.com")), None);
    assert_eq!(name(Some("localhost")).as_deref(), Some("localhost"));
    assert_eq!(name(None).as_deref(), Some("alpaca.example.com"), "the only exact host");
    let two = table_with(&["a.test", "b.test"]);
    assert_eq!(resolver::choose(&two, None).map(|(_, n)| n).as_deref(), Some("localhost"));
}

#[test]
fn secret_certificates_are_checked() {
    let (_d, paths) = temp_paths();
    let (ca, _) = LocalCa::load_or_create(&paths).unwrap();
    let now = OffsetDateTime::now_utc();
    let leaf = ca.issue("secure.example.com", now).unwrap();
    let secret = |ty: &str, crt: &str, key: &str| -> Arc<k8s_openapi::api::core::v1::Secret> {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "tls", "namespace": "default"}, "type": ty,
                "data": {"tls.crt": b(crt), "tls.key": b(key)}}))
            .unwrap(),
        )
    };
    let host = |h: &str| TlsHost {
        host: HostPattern::parse(Some(h)).unwrap(),
        secret: Some(SecretRef { namespace: "default".into(), name: "tls".into() }),
        redirect: true,
        owner: "Ingress default/i".into(),
    };
    let good = secret("kubernetes.io/tls", &leaf.cert_pem, &leaf.key_pem);
    let r = SecretRef { namespace: "default".into(), name: "tls".into() };
    let certs = secret::load(&[host("secure.example.com")], &HashMap::from([(r.clone(), good.clone())]), now);
    assert!(certs.problems.is_empty(), "{:?}", certs.problems);
    assert_eq!(certs.by_host.len(), 1);
    let cases = [
        (host("other.example.com"), good.clone(), "does not cover other.example.com"),
        (host("secure.example.com"), secret("Opaque", &leaf.cert_pem, &leaf.key_pem), "not kubernetes.io/tls"),
        (host("secure.example.com"), secret("kubernetes.io/tls", "garbage", &leaf.key_pem), "tls.crt"),
        (
            host("secure.example.com"),
            secret("kubernetes.io/tls", &leaf.cert_pem, &ca.issue("x.test", now).unwrap().key_pem),
            "does not fit",
        ),
    ];
    for (h, s, why) in cases {
        let certs = secret::load(&[h], &HashMap::from([(r.clone(), s)]), now);
        assert!(certs.by_host.is_empty());
        assert_eq!(certs.problems.len(), 1);
        let (secret, text) = &certs.problems[0];
        assert_eq!(secret, &r);
        assert!(text.contains("TLS Secret default/tls") && text.contains(why), "{text}");
    }
    let missing = secret::load(&[host("secure.example.com")], &HashMap::new(), now);
    assert!(missing.problems[0].1.contains("does not exist"), "{:?}", missing.problems);
    let expired = secret::load(&[host("secure.example.com")], &HashMap::from([(r, good)]), now + Duration::days(100));
    assert!(expired.problems[0].1.contains("expired"), "{:?}", expired.problems);
}

#[test]
fn a_name_deep_under_a_gateway_wildcard_gets_a_certificate_of_its_own() {
    use crate::routes::ServedHost;
    let mut table = crate::routes::table_for_hosts(&["alpaca.example.com"]);
    table.served_hosts.push(ServedHost::Wildcard { suffix: "apps.test".into(), any_depth: true });
    assert_eq!(
        crate::tls::resolver::choose(&table, Some("a.apps.test")),
        Some((Some(HostPattern::Wildcard("apps.test".into())), "*.apps.test".into()))
    );
    assert_eq!(
        crate::tls::resolver::choose(&table, Some("a.b.apps.test")),
        Some((Some(HostPattern::Exact("a.b.apps.test".into())), "a.b.apps.test".into()))
    );
    assert_eq!(crate::tls::resolver::choose(&table, Some("apps.test")), None);
}
