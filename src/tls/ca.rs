//! devingress's local certificate authority: created on first use in the
//! user's data directory, ECDSA P-256, valid about 10 years, named after
//! the user and host as mkcert does. Its key is mode 0600 in a 0700
//! directory.

use std::fs;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

use crate::paths::{Paths, private_dir, write_atomic};

/// How long the CA is valid.
pub const CA_LIFETIME: Duration = Duration::days(3650);
/// How long a minted leaf is valid: well under the 398 days browsers accept.
pub const LEAF_LIFETIME: Duration = Duration::days(90);

/// Why the CA could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing its files failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The files are there but are not a usable CA.
    #[error("the CA in {path} cannot be used: {reason}; move that directory away to have a new one made")]
    Invalid {
        /// Its directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Making a certificate failed.
    #[error("cannot make a certificate for {name}: {reason}")]
    Mint {
        /// The name it was for.
        name: String,
        /// What failed.
        reason: String,
    },
}

/// A certificate minted by the CA, with its key.
#[derive(Clone)]
pub struct Leaf {
    /// The name it is for (`alpaca.example.com` or `*.example.com`).
    pub name: String,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub key_pem: String,
    /// When it expires.
    pub not_after: OffsetDateTime,
    /// Ready for rustls.
    pub certified: Arc<CertifiedKey>,
}

/// The loaded CA.
pub struct LocalCa {
    /// The CA certificate (PEM).
    pub cert_pem: String,
    /// The CA certificate (DER).
    pub cert_der: CertificateDer<'static>,
    /// Its subject, e.g. `devingress local CA alice@laptop`.
    pub subject: String,
    /// SHA-256 of the DER certificate, as upper-case hex pairs.
    pub fingerprint: String,
    /// When it expires.
    pub not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

fn io_err<'a>(action: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> CaError + 'a {
    move |source| CaError::Io { action, path: path.display().to_string(), source }
}

/// `user@host`, for the CA's name.
pub fn user_at_host() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "user".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| {
            std::process::Command::new("hostname")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        })
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("system randomness");
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Subject CN and expiry of a DER certificate.
pub fn describe_cert(der: &[u8]) -> Option<(String, OffsetDateTime)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or("").to_string();
    Some((cn, cert.validity().not_after.to_datetime()))
}

impl LocalCa {
    /// Loads the CA from `paths`, or makes one there. Returns whether it was made now.
    pub fn load_or_create(paths: &Paths) -> Result<(Self, bool), CaError> {
        match Self::load(paths)? {
            Some(ca) => Ok((ca, false)),
            None => Ok((Self::create(paths)?, true)),
        }
    }

    /// Loads the CA if its files exist.
    pub fn load(paths: &Paths) -> Result<Option<Self>, CaError> {
        let (cert_path, key_path) = (paths.ca_cert(), paths.ca_key());
        if !cert_path.exists() && !key_path.exists() {
            return Ok(None);
        }
        let invalid = |reason: String| CaError::Invalid { path: paths.ca_dir().display().to_string(), reason };
        let cert_pem = fs::read_to_string(&cert_path).map_err(io_err("cannot read", &cert_path))?;
        let key_pem = fs::read_to_string(&key_path).map_err(io_err("cannot read", &key_path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key_path).map_err(io_err("cannot read", &key_path))?.permissions().mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))
                    .map_err(io_err("cannot restrict", &key_path))?;
                tracing::warn!("the CA key {} was readable by others; made it 0600", key_path.display());
            }
        }
        let key = KeyPair::from_pem(&key_pem).map_err(|e| invalid(format!("its key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| invalid(format!("its certificate: {e}")))?;
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e: rustls::pki_types::pem::Error| invalid(format!("its certificate: {e}")))?;
        Self::from_parts(cert_pem, der, issuer).map(Some).map_err(invalid)
    }

    fn from_parts(
        cert_pem: String,
        cert_der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    ) -> Result<Self, String> {
        let (subject, not_after) = describe_cert(&cert_der).ok_or("its certificate does not parse")?;
        Ok(LocalCa { fingerprint: fingerprint(&cert_der), cert_pem, cert_der, subject, not_after, issuer })
    }

    /// Makes a new CA and writes it to `paths`.
    pub fn create(paths: &Paths) -> Result<Self, CaError> {
        let dir = paths.ca_dir();
        private_dir(&dir).map_err(io_err("cannot create", &dir))?;
        let mint = |reason: rcgen::Error| CaError::Mint { name: "the local CA".into(), reason: reason.to_string() };
        let key = KeyPair::generate().map_err(mint)?;
        let mut params = CertificateParams::default();
        let who = user_at_host();
        params.distinguished_name.push(DnType::CommonName, format!("devingress local CA {who}"));
        params.distinguished_name.push(DnType::OrganizationName, "devingress local CA");
        params.distinguished_name.push(DnType::OrganizationalUnitName, who);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(mint)?;
        let (cert_path, key_path) = (paths.ca_cert(), paths.ca_key());
        write_atomic(&key_path, key.serialize_pem().as_bytes(), true).map_err(io_err("cannot write", &key_path))?;
        write_atomic(&cert_path, cert.pem().as_bytes(), false).map_err(io_err("cannot write", &cert_path))?;
        let issuer = Issuer::new(params, key);
        let der = cert.der().clone();
        Self::from_parts(cert.pem(), der, issuer)
            .map_err(|reason| CaError::Invalid { path: dir.display().to_string(), reason })
    }

    /// Mints a server certificate for `name` (a host or `*.domain`), valid from `now`.
    pub fn issue(&self, name: &str, now: OffsetDateTime) -> Result<Leaf, CaError> {
        let mint = |reason: String| CaError::Mint { name: name.to_string(), reason };
        let key = KeyPair::generate().map_err(|e| mint(e.to_string()))?;
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(|e| mint(e.to_string()))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationName, "devingress development certificate");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::hours(1);
        params.not_after = now + LEAF_LIFETIME;
        params.serial_number = Some(random_serial());
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| mint(e.to_string()))?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = rustls::crypto::ring::default_provider();
        let certified =
            CertifiedKey::from_der(vec![cert.der().clone()], key_der, &provider).map_err(|e| mint(e.to_string()))?;
        Ok(Leaf {
            name: name.to_string(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after: params.not_after,
            certified: Arc::new(certified),
        })
    }
}
