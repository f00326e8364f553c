//! The lab's certificate: a self-signed leaf for `127.0.0.1` and `localhost` that is also its own CA (`CA:TRUE`),
//! so Go, Python requests, node and rustls accept it as a trust anchor. Generated at start, or kept in the state dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest;

use crate::LabError;
use crate::store::write_atomic;

/// The certificate and what the lab derives from it.
pub(crate) struct LabCert {
    /// PEM of the certificate (the CA file clients trust).
    pub(crate) cert_pem: String,
    /// The rustls server configuration.
    pub(crate) server_config: Arc<rustls::ServerConfig>,
    /// SHA-256 fingerprint, PVE's style: uppercase hex pairs separated by colons.
    pub(crate) fingerprint: String,
}

const CERT_FILE: &str = "pve-ssl.pem";
const KEY_FILE: &str = "priv/pve-ssl.key";

/// Loads `state_dir/pve-ssl.pem` + `priv/pve-ssl.key` when both exist, else generates a fresh pair and (with a
/// state dir) stores it (the key 0600).
pub(crate) fn load_or_create(state_dir: &Path) -> Result<LabCert, LabError> {
    let cert_path = state_dir.join(CERT_FILE);
    let key_path = state_dir.join(KEY_FILE);
    let (cert_pem, key_pem) = match (std::fs::read_to_string(&cert_path), std::fs::read_to_string(&key_path)) {
        (Ok(c), Ok(k)) => (c, k),
        _ => {
            let (c, k) = generate()?;
            write_atomic(&key_path, k.as_bytes(), true).map_err(|e| LabError::state(&key_path, e))?;
            write_atomic(&cert_path, c.as_bytes(), false).map_err(|e| LabError::state(&cert_path, e))?;
            (c, k)
        }
    };
    build(cert_pem, &key_pem)
}

fn generate() -> Result<(String, String), LabError> {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| LabError::Tls(format!("certificate parameters: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "127.0.0.1");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "pvetoken lab (SIMULATOR)");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(24 * 3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(365 * 24 * 3600)).into();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| LabError::Tls(format!("key generation: {e}")))?;
    let cert = params.self_signed(&key).map_err(|e| LabError::Tls(format!("self-signing: {e}")))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn pem_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = pem[start..].find(&end)? + start;
    let body: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn build(cert_pem: String, key_pem: &str) -> Result<LabCert, LabError> {
    let cert_der = pem_der(&cert_pem, "CERTIFICATE").ok_or_else(|| LabError::Tls("certificate PEM unreadable".into()))?;
    let key_der = pem_der(key_pem, "PRIVATE KEY").ok_or_else(|| LabError::Tls("key PEM unreadable (want PKCS#8)".into()))?;
    let fingerprint = sha2::Sha256::digest(&cert_der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LabError::Tls(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(cert_der)],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key_der.into()),
        )
        .map_err(|e| LabError::Tls(format!("certificate/key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(LabCert { cert_pem, server_config: Arc::new(config), fingerprint })
}

/// Where the CA file is written.
pub(crate) fn ca_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CERT_FILE)
}
