//! Certificates from the Ingresses' own `kubernetes.io/tls` Secrets (rules
//! 17 and 18): used for their hosts when they are sound, else the host gets
//! a minted certificate and the Secret is named in one warning.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use crate::routes::{HostPattern, SecretRef, TlsHost};

/// Certificates from Secrets, by the host pattern they serve, and the
/// problems found with the Secrets that could not be used.
#[derive(Default, Clone)]
pub struct SecretCerts {
    /// Usable certificates.
    pub by_host: HashMap<HostPattern, Arc<CertifiedKey>>,
    /// One line per Secret that could not be used, naming it.
    pub problems: Vec<(SecretRef, String)>,
    /// Secrets that cannot serve any host (missing, of another type, not
    /// PEM, expired, a key that does not fit), with why: a Gateway
    /// listener naming one is `InvalidCertificateRef`.
    pub invalid: std::collections::BTreeMap<SecretRef, String>,
}

/// A name the certificate must cover for `host`: the host itself, or a
/// name one label under a wildcard's domain.
fn probe_name(host: &HostPattern) -> Option<String> {
    match host {
        HostPattern::Exact(h) => Some(h.clone()),
        HostPattern::Wildcard(d) => Some(format!("devingress-probe.{d}")),
        HostPattern::Any => None,
    }
}

/// Parses a Secret into a certificate for `host`, or says why it cannot be used.
pub fn certificate_for(secret: &Secret, host: &HostPattern, now: OffsetDateTime) -> Result<Arc<CertifiedKey>, String> {
    let cert = usable(secret, now)?;
    covers(&cert, host)?;
    Ok(cert)
}

/// Whether `cert` covers `host`. `Any` (a Gateway listener without a
/// hostname) needs nothing: its routes' hostnames are checked one by one.
fn covers(cert: &CertifiedKey, host: &HostPattern) -> Result<(), String> {
    let Some(name) = probe_name(host) else { return Ok(()) };
    let parsed = rustls::server::ParsedCertificate::try_from(&cert.cert[0]).map_err(|e| format!("tls.crt: {e}"))?;
    let server_name = ServerName::try_from(name.clone()).map_err(|e| e.to_string())?;
    rustls::client::verify_server_name(&parsed, &server_name)
        .map_err(|_| format!("its certificate does not cover {host}"))
}

/// A Secret as a certificate and key, whatever host it is for, or why it
/// cannot be used for any.
fn usable(secret: &Secret, now: OffsetDateTime) -> Result<Arc<CertifiedKey>, String> {
    if secret.type_.as_deref() != Some("kubernetes.io/tls") {
        return Err(format!("its type is {:?}, not kubernetes.io/tls", secret.type_.as_deref().unwrap_or("")));
    }
    let data = secret.data.as_ref().ok_or("it has no data")?;
    let crt = data.get("tls.crt").ok_or("it has no tls.crt")?;
    let key = data.get("tls.key").ok_or("it has no tls.key")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&crt.0)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt is not PEM certificates: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&key.0).map_err(|e| format!("tls.key is not a PEM private key: {e}"))?;
    rustls::server::ParsedCertificate::try_from(&chain[0]).map_err(|e| format!("tls.crt: {e}"))?;
    if let Some((_, not_after)) = super::ca::describe_cert(&chain[0]) {
        if not_after <= now {
            return Err(format!("its certificate expired on {}", not_after.date()));
        }
    }
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| format!("tls.key does not fit tls.crt: {e}"))
}

/// The certificates the `spec.tls` entries' Secrets give, with the problems.
pub fn load(tls: &[TlsHost], secrets: &HashMap<SecretRef, Arc<Secret>>, now: OffsetDateTime) -> SecretCerts {
    let mut out = SecretCerts::default();
    for t in tls {
        let Some(r) = &t.secret else { continue };
        let usable = match secrets.get(r) {
            Some(secret) => usable(secret, now),
            None => Err("it does not exist or cannot be read".into()),
        };
        if let Err(why) = &usable {
            out.invalid.insert(r.clone(), why.clone());
        }
        let result = usable.and_then(|cert| covers(&cert, &t.host).map(|()| cert));
        match result {
            Ok(cert) => {
                out.by_host.insert(t.host.clone(), cert);
            }
            Err(why) => out.problems.push((
                r.clone(),
                format!(
                    "TLS Secret {r} ({}) cannot be used for {}: {why}; serving a devingress certificate instead",
                    t.owner, t.host
                ),
            )),
        }
    }
    out
}
