//! Where requests go (the HTTPS API or `pvesh` on this host), the HTTP client for it, and what a client error
//! means for the user: one message with the fix.

use std::path::PathBuf;

use pvetoken_api::Secret;
use pvetoken_client::ClientError;
use pvetoken_client::TlsSettings;
use pvetoken_client::endpoint::Endpoint;
use pvetoken_client::pve::PveClient;

use crate::error::Error;

/// Where requests go.
#[derive(Debug, Clone)]
pub enum Target {
    /// The HTTPS API.
    Remote {
        /// The validated base URL.
        endpoint: Endpoint,
        /// How the certificate is checked.
        tls: TlsSettings,
    },
    /// `pvesh` on this host.
    Local {
        /// The `pvesh` program (`PVETOKEN_PVESH` or `pvesh` from PATH).
        pvesh: PathBuf,
    },
}

impl Target {
    /// `https://host:port` or `local pvesh`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Remote { endpoint, .. } => endpoint.base(),
            Self::Local { .. } => "local pvesh".to_owned(),
        }
    }

    /// True for `--insecure`.
    pub fn is_insecure(&self) -> bool {
        matches!(self, Self::Remote { tls, .. } if tls.insecure)
    }
}

/// Builds the HTTP client for a remote target (one per run: one TLS handshake, kept alive).
pub fn http_client(target: &Target, timeout: std::time::Duration) -> Result<Option<reqwest::Client>, Error> {
    match target {
        Target::Local { .. } => Ok(None),
        Target::Remote { tls, .. } => pvetoken_client::tls::http_client_with_timeouts(
            tls,
            timeout.min(pvetoken_client::tls::CONNECT_TIMEOUT),
            timeout,
        )
        .map(Some)
        .map_err(|error| remote_error(&error, target)),
    }
}

/// A client authenticated as the token, reusing the run's HTTP client (same connection pool).
pub fn token_client(
    http: Option<&reqwest::Client>,
    target: &Target,
    token_id: &str,
    secret: &Secret,
    timeout: std::time::Duration,
) -> PveClient {
    match (target, http) {
        (Target::Remote { endpoint, .. }, Some(http)) => {
            PveClient::with_token(http.clone(), endpoint.clone(), token_id, secret)
        }
        (Target::Local { pvesh }, _) => {
            PveClient::local(pvesh.clone(), timeout).without_env(crate::env_vars::CREDENTIALS)
        }
        (Target::Remote { endpoint, .. }, None) => {
            PveClient::with_token(reqwest::Client::new(), endpoint.clone(), token_id, secret)
        }
    }
}

/// A client authenticated as the token of `file`, on an HTTP client of its own.
pub fn token_file_client(
    target: &Target,
    file: &pvetoken_render::TokenFile,
    timeout: std::time::Duration,
) -> Result<PveClient, Error> {
    let http = http_client(target, timeout)?;
    Ok(token_client(http.as_ref(), target, file.token_id.as_str(), &file.secret, timeout))
}

/// The error for a token whose permissions cannot be read (a refused secret gets the rotation hint).
pub fn token_refused(error: &ClientError, target: &Target) -> Error {
    let mut cli = remote_error(error, target);
    if matches!(error, ClientError::AuthFailed { .. }) {
        cli.message = format!("the token was refused: {error}");
        cli.hint = Some(
            "the secret in the token file is wrong, or the token/user expired or was deleted: \
             pvetoken create --rotate-if-exists (or pvetoken rotate) issues a new secret"
                .to_owned(),
        );
    }
    cli
}

/// Turns a client error into one line with its kind (usage for bad input, remote otherwise) and the fix.
pub fn remote_error(error: &pvetoken_client::ClientError, target: &Target) -> Error {
    use pvetoken_client::ClientError as E;
    let base = target.describe();
    match error {
        E::InvalidUrl { .. } => Error::usage(error.to_string()).with_hint("give the API address as https://HOST:8006"),
        E::CaFile { .. } => Error::usage(error.to_string())
            .with_hint("on the PVE host the cluster CA is /etc/pve/pve-root-ca.pem; copy it here and pass --ca-file"),
        E::CertificateMismatch { presented, .. } => Error::remote(error.to_string()).with_hint(format!(
            "if the certificate was renewed on purpose, check it on the host (`pvenode cert info`) and pin the new \
             one: --fingerprint {presented}; otherwise something is intercepting the connection"
        )),
        E::CertificateUntrusted { .. } => Error::remote(error.to_string()).with_hint(
            "PVE uses a self-signed certificate by default: pin it with --fingerprint SHA256 (from `pvenode cert \
             info` on the host) or trust the cluster CA with --ca-file /etc/pve/pve-root-ca.pem",
        ),
        E::Unreachable { .. } => Error::remote(error.to_string()).with_hint(format!(
            "check that {base} is the PVE host and that port 8006 is reachable from here (DNS, firewall, VPN)"
        )),
        E::Timeout { .. } | E::ConnectionLost { .. } => Error::remote(error.to_string())
            .with_hint("the server or the network is slow or dropping connections; rerun: every step is idempotent"),
        E::AuthFailed { .. } => Error::remote(error.to_string())
            .with_hint("check the credentials; a token may be expired, deleted or its secret rotated"),
        E::Api { status: 404 | 501, .. } => Error::remote(error.to_string())
            .with_hint(format!("{base} answered, but not like a Proxmox VE API: check --url (https://HOST:8006)")),
        E::Api { status: 403, .. } => Error::remote(error.to_string()).with_hint(
            "the administrator lacks this privilege: use root@pam or a user with Sys.Modify and User.Modify",
        ),
        E::Decode { .. } => Error::remote(error.to_string())
            .with_hint(format!("{base} does not answer like a Proxmox VE API: check --url (https://HOST:8006)")),
        E::Local { status: None, .. } => Error::remote(error.to_string())
            .with_hint("--local runs pvesh as root on a Proxmox VE host; elsewhere use --url"),
        _ => Error::remote(error.to_string()),
    }
}

/// This host's short name.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|text| text.trim().split('.').next().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// The URL saved in the token file.
pub fn target_url(target: &Target) -> String {
    match target {
        Target::Remote { endpoint, .. } => endpoint.base(),
        Target::Local { .. } => {
            let host = local_hostname();
            format!("https://{}:8006", if host.is_empty() { "localhost" } else { &host })
        }
    }
}
