//! The lab's certificates: a lab CA (`pve-root-ca.pem`, the `ca_file` clients trust) and the server certificate
//! for `127.0.0.1` and `localhost` it signed (`pve-ssl.pem`), as PVE lays them out. A proper CA + leaf pair is
//! accepted by every TLS stack (Go, Python requests, node, rustls/webpki, which refuses a CA used as a leaf).
//! Generated at first start and kept in the state dir; the CA key is never stored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest;

use crate::LabError;
use crate::store::write_atomic;

/// The certificate and what the lab derives from it.
pub(crate) struct LabCert {
    /// The rustls server configuration.
    pub(crate) server_config: Arc<rustls::ServerConfig>,
    /// SHA-256 fingerprint, PVE's style: uppercase hex pairs separated by colons.
    pub(crate) fingerprint: String,
}

const CA_FILE: &str = "pve-root-ca.pem";
const CERT_FILE: &str = "pve-ssl.pem";
const KEY_FILE: &str = "priv/pve-ssl.key";

/// Loads `state_dir/pve-ssl.pem` + `priv/pve-ssl.key` when both exist, else generates a fresh pair and (with a
/// state dir) stores it (the key 0600).
pub(crate) fn load_or_create(state_dir: &Path) -> Result<LabCert, LabError> {
    let cert_path = state_dir.join(CERT_FILE);
    let key_path = state_dir.join(KEY_FILE);
    let ca_path = state_dir.join(CA_FILE);
    let existing =
        (std::fs::read_to_string(&ca_path), std::fs::read_to_string(&cert_path), std::fs::read_to_string(&key_path));
    let (ca_pem, cert_pem, key_pem) = match existing {
        (Ok(a), Ok(c), Ok(k)) => (a, c, k),
        _ => {
            let (a, c, k) = generate()?;
            write_atomic(&key_path, k.as_bytes(), true).map_err(|e| LabError::state(&key_path, e))?;
            write_atomic(&cert_path, c.as_bytes(), false).map_err(|e| LabError::state(&cert_path, e))?;
            write_atomic(&ca_path, a.as_bytes(), false).map_err(|e| LabError::state(&ca_path, e))?;
            (a, c, k)
        }
    };
    build(&ca_pem, &cert_pem, &key_pem)
}

fn validity(params: &mut rcgen::CertificateParams) {
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(24 * 3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(365 * 24 * 3600)).into();
}

fn generate() -> Result<(String, String, String), LabError> {
    let tls = |what: &str, e: rcgen::Error| LabError::Tls(format!("{what}: {e}"));
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| tls("CA parameters", e))?;
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name.push(rcgen::DnType::CommonName, "pvetoken lab CA (SIMULATOR)");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    validity(&mut ca);
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| tls("CA key", e))?;
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| tls("CA self-signing", e))?;

    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| tls("certificate parameters", e))?;
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name.push(rcgen::DnType::CommonName, "127.0.0.1");
    leaf.distinguished_name.push(rcgen::DnType::OrganizationName, "pvetoken lab (SIMULATOR)");
    leaf.is_ca = rcgen::IsCa::ExplicitNoCa;
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut leaf);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| tls("key", e))?;
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(|e| tls("signing", e))?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
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

fn build(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<LabCert, LabError> {
    let ca_der = pem_der(ca_pem, "CERTIFICATE").ok_or_else(|| LabError::Tls("CA PEM unreadable".into()))?;
    let cert_der =
        pem_der(cert_pem, "CERTIFICATE").ok_or_else(|| LabError::Tls("certificate PEM unreadable".into()))?;
    let key_der =
        pem_der(key_pem, "PRIVATE KEY").ok_or_else(|| LabError::Tls("key PEM unreadable (want PKCS#8)".into()))?;
    let fingerprint = sha2::Sha256::digest(&cert_der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LabError::Tls(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(cert_der), rustls::pki_types::CertificateDer::from(ca_der)],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key_der.into()),
        )
        .map_err(|e| LabError::Tls(format!("certificate/key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(LabCert { server_config: Arc::new(config), fingerprint })
}

/// Where the CA file is written.
pub(crate) fn ca_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CA_FILE)
}
