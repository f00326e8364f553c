//! TLS settings shared by every client: system roots, a CA file, a pinned SHA-256 fingerprint, or (with a
//! warning printed by the CLI) no verification at all.
//!
//! One [`reqwest::Client`] is built per run with [`http_client`]; it keeps its connections alive, so a whole
//! command costs one TLS handshake per server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

use crate::error::ClientError;
pub use crate::fingerprint::{Fingerprint, FingerprintError, FingerprintMismatch};

/// How the server's certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file with the CA certificate(s) (or the server certificate itself) to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Accept exactly the server certificate with this SHA-256 fingerprint (host name and expiry are not checked,
    /// as PVE's own clients do for pinned certificates).
    pub fingerprint: Option<Fingerprint>,
    /// Accept any certificate. The CLI warns loudly when this is set.
    pub insecure: bool,
}

/// Default time allowed to connect (TCP + TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for one request, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the one HTTP client of a run: rustls (ring), HTTP/1.1 keep-alive, the timeouts above.
pub fn http_client(settings: &TlsSettings) -> Result<reqwest::Client, ClientError> {
    http_client_with_timeouts(settings, CONNECT_TIMEOUT, REQUEST_TIMEOUT)
}

/// [`http_client`] with explicit timeouts (tests use short ones).
pub fn http_client_with_timeouts(
    settings: &TlsSettings,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    let config = rustls_config(settings)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .http1_only()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .no_proxy()
        .user_agent(concat!("pvetoken/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| ClientError::Tls { message: format!("cannot build the HTTPS client: {error}") })
}

/// The rustls configuration for these settings (exposed for callers that drive rustls themselves).
pub fn rustls_config(settings: &TlsSettings) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = if settings.insecure {
        Arc::new(AcceptAnything { algorithms: provider.signature_verification_algorithms })
    } else if let Some(expected) = settings.fingerprint {
        Arc::new(PinnedLeaf { expected, algorithms: provider.signature_verification_algorithms })
    } else if let Some(path) = &settings.ca_file {
        Arc::new(CaFileVerifier::new(path, provider.clone())?)
    } else {
        Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|error| ClientError::Tls { message: format!("cannot load the system CA roots: {error}") })?,
        )
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientError::Tls { message: format!("TLS configuration: {error}") })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Reads every certificate of a PEM file.
pub fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bad = |reason: String| ClientError::CaFile { path: path.to_owned(), reason };
    let bytes = std::fs::read(path).map_err(|error| bad(error.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|error| bad(format!("not a PEM certificate file: {error}")))?;
    if certs.is_empty() {
        return Err(bad("holds no `-----BEGIN CERTIFICATE-----` block".to_owned()));
    }
    Ok(certs)
}

/// The handshake-signature half of a [`ServerCertVerifier`], the same for every verifier here: rustls' own checks
/// with the provider's algorithms (`self.algorithms`). Only who is trusted differs between the verifiers.
macro_rules! handshake_signatures_by_algorithms {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

/// Accepts exactly one leaf certificate, identified by its SHA-256 fingerprint, and still checks the handshake
/// signature so the server proves it holds that certificate's key.
#[derive(Debug)]
struct PinnedLeaf {
    expected: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity);
        if presented == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(FingerprintMismatch {
                expected: self.expected,
                presented,
            })))))
        }
    }

    handshake_signatures_by_algorithms!();
}

/// Trusts the certificates of a PEM file: as CA roots (full WebPKI check incl. host name), or, for a self-signed
/// server certificate that is not a CA, as that exact leaf.
#[derive(Debug)]
struct CaFileVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    leaves: Vec<Fingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl CaFileVerifier {
    fn new(path: &Path, provider: Arc<CryptoProvider>) -> Result<Self, ClientError> {
        let certs = read_pem_certificates(path)?;
        let leaves = certs.iter().map(|cert| Fingerprint::of_der(cert)).collect();
        let mut roots = RootCertStore::empty();
        let (_added, _ignored) = roots.add_parsable_certificates(certs);
        let algorithms = provider.signature_verification_algorithms;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build().map_err(|error| {
                ClientError::CaFile { path: path.to_owned(), reason: format!("no usable CA certificate: {error}") }
            })?;
        Ok(Self { webpki, leaves, algorithms })
    }
}

fn is_validity_error(error: &rustls::Error) -> bool {
    use rustls::CertificateError;
    matches!(
        error,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    )
}

/// Whether `der`'s own validity period contains `now`, checked by webpki with the certificate as its own trust
/// anchor (a self-signed leaf), so that no date parsing is written here.
fn leaf_valid_at(der: &CertificateDer<'_>, now: UnixTime) -> bool {
    let Ok(anchor) = webpki::anchor_from_trusted_cert(der) else { return false };
    let Ok(cert) = webpki::EndEntityCert::try_from(der) else { return false };
    let anchors = [anchor];
    let result = cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &[],
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    );
    !matches!(result, Err(webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. }))
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(verified) => Ok(verified),
            // The exact-leaf fallback stands in for a missing CA chain only: a certificate that is expired or not
            // yet valid stays refused, as curl refuses the same file.
            Err(error) if is_validity_error(&error) => Err(error),
            Err(error) => {
                if self.leaves.contains(&Fingerprint::of_der(end_entity)) && leaf_valid_at(end_entity, now) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(error)
                }
            }
        }
    }

    handshake_signatures_by_algorithms!();
}

/// `--insecure`: any certificate (the handshake signature is still checked, which costs nothing).
#[derive(Debug)]
struct AcceptAnything {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_by_algorithms!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_file_with(params: rcgen::CertificateParams) -> (tempfile::TempDir, CaFileVerifier, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, cert.pem()).expect("write");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = CaFileVerifier::new(&path, provider).expect("verifier");
        (dir, verifier, cert.der().clone())
    }

    fn verify(verifier: &CaFileVerifier, der: &CertificateDer<'_>) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from("127.0.0.1").expect("name");
        verifier.verify_server_cert(der, &[], &name, &[], UnixTime::now())
    }

    #[test]
    fn an_expired_self_signed_certificate_in_the_ca_file_is_refused_as_curl_refuses_it() {
        for is_ca in [true, false] {
            let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            if is_ca {
                params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            }
            let (_dir, verifier, der) = ca_file_with(params);
            let error = verify(&verifier, &der).expect_err("expired");
            assert!(is_validity_error(&error) || format!("{error}").contains("expired"), "CA {is_ca}: {error}");
        }
    }

    #[test]
    fn a_valid_self_signed_leaf_in_the_ca_file_is_still_accepted_as_that_exact_leaf() {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2090, 1, 1);
        let (_dir, verifier, der) = ca_file_with(params);
        assert!(verify(&verifier, &der).is_ok());
    }
}
