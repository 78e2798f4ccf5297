//! Minted certificates, cached in memory and on disk, renewed well before
//! they expire.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

use super::ca::{CaError, Leaf, LocalCa, describe_cert};
use crate::paths::{private_dir, write_atomic};

/// A leaf is replaced once it has less than this left.
pub const RENEW_BEFORE: Duration = Duration::days(30);

/// Leaf certificates by name.
pub struct LeafStore {
    ca: Arc<LocalCa>,
    dir: PathBuf,
    cache: Mutex<HashMap<String, Leaf>>,
}

/// The file a leaf is kept in: `*.example.com` becomes `_wildcard.example.com.pem`.
fn file_name(name: &str) -> String {
    format!("{}.pem", name.replace('*', "_wildcard"))
}

impl LeafStore {
    /// A store minting with `ca` and keeping files in `dir`.
    pub fn new(ca: Arc<LocalCa>, dir: PathBuf) -> Self {
        LeafStore { ca, dir, cache: Mutex::new(HashMap::new()) }
    }

    /// The CA that signs the leaves.
    pub fn ca(&self) -> &Arc<LocalCa> {
        &self.ca
    }

    /// The certificate for `name`, from memory, disk, or minted now.
    pub fn get(&self, name: &str, now: OffsetDateTime) -> Result<Arc<CertifiedKey>, CaError> {
        let fresh = |leaf: &Leaf| leaf.not_after - now > RENEW_BEFORE;
        if let Some(leaf) = self.cache.lock().expect("leaf cache").get(name).filter(|l| fresh(l)) {
            return Ok(leaf.certified.clone());
        }
        if let Some(leaf) = self.load(name).filter(|l| fresh(l)) {
            let certified = leaf.certified.clone();
            self.cache.lock().expect("leaf cache").insert(name.to_string(), leaf);
            return Ok(certified);
        }
        let leaf = self.ca.issue(name, now)?;
        tracing::info!("minted a certificate for {name}, valid until {}", leaf.not_after.date());
        if let Err(e) = self.save(&leaf) {
            tracing::warn!("cannot keep the certificate for {name} on disk: {e}");
        }
        let certified = leaf.certified.clone();
        self.cache.lock().expect("leaf cache").insert(name.to_string(), leaf);
        Ok(certified)
    }

    fn save(&self, leaf: &Leaf) -> std::io::Result<()> {
        private_dir(&self.dir)?;
        let pem = format!("{}{}", leaf.cert_pem, leaf.key_pem);
        write_atomic(&self.dir.join(file_name(&leaf.name)), pem.as_bytes(), true)
    }

    /// A leaf from disk, if it is there, parses, was signed by this CA and is for `name`.
    fn load(&self, name: &str) -> Option<Leaf> {
        let pem = std::fs::read_to_string(self.dir.join(file_name(name))).ok()?;
        let cert = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).ok()?;
        let (cn, not_after) = describe_cert(&cert)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert).ok()?;
        let (_, ca) = x509_parser::parse_x509_certificate(&self.ca.cert_der).ok()?;
        if cn != name || parsed.issuer() != ca.subject() || parsed.verify_signature(Some(ca.public_key())).is_err() {
            return None;
        }
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(vec![cert], key, &provider).ok()?;
        let cert_pem = pem.split_inclusive("-----END CERTIFICATE-----\n").next().unwrap_or("").to_string();
        let key_pem = pem[cert_pem.len()..].to_string();
        Some(Leaf { name: name.to_string(), cert_pem, key_pem, not_after, certified: Arc::new(certified) })
    }
}
