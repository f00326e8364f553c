//! The one error type of the clients. Messages never contain a secret: request bodies are never echoed, and
//! server messages are the server's own text.

use std::path::PathBuf;

use crate::fingerprint::{Fingerprint, FingerprintMismatch};

/// Whether a failed request may have reached the server (and so may have taken effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sent {
    /// The request never left this machine (bad URL, DNS, connection refused, TLS failure).
    No,
    /// The server answered, so it received the request.
    Yes,
    /// The connection broke or timed out after the request may have been written.
    Maybe,
}

/// Everything that can go wrong talking to Proxmox VE or Semaphore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL cannot be used.
    #[error("invalid server URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `--ca-file` cannot be used.
    #[error("CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A local TLS configuration problem.
    #[error("{message}")]
    Tls {
        /// What went wrong.
        message: String,
    },
    /// The server's certificate is not the pinned one.
    #[error("certificate mismatch at {host}: the server presented SHA-256 {presented}, but {expected} is pinned")]
    CertificateMismatch {
        /// `host:port`.
        host: String,
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The presented one.
        presented: Fingerprint,
    },
    /// The server's certificate is not trusted (unknown issuer, wrong name, expired...).
    #[error("the TLS certificate of {host} is not trusted: {reason}")]
    CertificateUntrusted {
        /// `host:port`.
        host: String,
        /// rustls' reason.
        reason: String,
    },
    /// DNS, TCP or TLS connection failure: nothing was sent.
    #[error("cannot connect to {host}: {reason}")]
    Unreachable {
        /// `host:port`.
        host: String,
        /// The cause.
        reason: String,
    },
    /// No answer in time.
    #[error("{method} {path}: no answer from {host} in time ({reason})")]
    Timeout {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// `host:port`.
        host: String,
        /// The cause.
        reason: String,
        /// Whether the request may have reached the server.
        sent: Sent,
    },
    /// The connection broke before an answer arrived.
    #[error("{method} {path}: the connection to {host} broke before an answer ({reason})")]
    ConnectionLost {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// `host:port`.
        host: String,
        /// The cause.
        reason: String,
        /// Whether the request may have reached the server.
        sent: Sent,
    },
    /// Login or token authentication was refused.
    #[error("authentication as {who} failed: {message}")]
    AuthFailed {
        /// The user or token id.
        who: String,
        /// PVE's message (e.g. `authentication failure`, `invalid token value!`).
        message: String,
    },
    /// The server answered with an error status.
    #[error("{method} {path}: HTTP {status}: {message}")]
    Api {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// HTTP status.
        status: u16,
        /// PVE's message (status line reason and/or the `errors` object, flattened).
        message: String,
    },
    /// The answer could not be understood.
    #[error("{method} {path}: unexpected answer: {reason}")]
    Decode {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// Running `pvesh` (`--local`) failed.
    #[error("pvesh {args}: {message}")]
    Local {
        /// The sub-command and path (never a secret).
        args: String,
        /// What failed (pvesh's stderr, first line, or the spawn error).
        message: String,
        /// The HTTP-like status pvesh reported, when it did.
        status: Option<u16>,
    },
}

impl ClientError {
    /// Whether the failed request may have reached the server.
    pub fn sent(&self) -> Sent {
        match self {
            Self::InvalidUrl { .. }
            | Self::CaFile { .. }
            | Self::Tls { .. }
            | Self::CertificateMismatch { .. }
            | Self::CertificateUntrusted { .. }
            | Self::Unreachable { .. } => Sent::No,
            Self::Timeout { sent, .. } | Self::ConnectionLost { sent, .. } => *sent,
            Self::AuthFailed { .. } | Self::Api { .. } | Self::Decode { .. } => Sent::Yes,
            Self::Local { status, .. } => {
                if status.is_some() {
                    Sent::Yes
                } else {
                    Sent::Maybe
                }
            }
        }
    }

    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::AuthFailed { .. } => Some(401),
            Self::Local { status, .. } => *status,
            _ => None,
        }
    }

    /// The server's message, if it answered with one.
    pub fn server_message(&self) -> Option<&str> {
        match self {
            Self::Api { message, .. } | Self::AuthFailed { message, .. } | Self::Local { message, .. } => Some(message),
            _ => None,
        }
    }

    /// True for PVE's "already exists" answers (`create user failed: user '...' already exists`, role, token).
    pub fn is_already_exists(&self) -> bool {
        self.server_message().is_some_and(|message| message.contains("already exists"))
    }

    /// True when the object does not exist (404, or PVE's 500 "does not exist"/"no such ...").
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
            || self.server_message().is_some_and(|message| {
                message.contains("does not exist") || message.contains("no such") || message.contains("not found")
            })
    }

    /// True when the server refused for lack of a privilege (403).
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }

    /// Classifies a transport error from reqwest for `method path` at `host`.
    pub fn from_reqwest(error: &reqwest::Error, method: &str, path: &str, host: &str) -> Self {
        if let Some(mismatch) = find_source::<FingerprintMismatch>(error) {
            return Self::CertificateMismatch {
                host: host.to_owned(),
                expected: mismatch.expected,
                presented: mismatch.presented,
            };
        }
        if let Some(tls) = find_source::<rustls::Error>(error) {
            return Self::CertificateUntrusted { host: host.to_owned(), reason: tls.to_string() };
        }
        let reason = chain_text(error);
        if error.is_connect() {
            // reqwest reports connect timeouts as connect errors: nothing was sent either way.
            return Self::Unreachable { host: host.to_owned(), reason };
        }
        if error.is_timeout() {
            return Self::Timeout {
                method: method.to_owned(),
                path: path.to_owned(),
                host: host.to_owned(),
                reason,
                sent: Sent::Maybe,
            };
        }
        if error.is_decode() || error.is_body() {
            return Self::Decode { method: method.to_owned(), path: path.to_owned(), reason };
        }
        Self::ConnectionLost {
            method: method.to_owned(),
            path: path.to_owned(),
            host: host.to_owned(),
            reason,
            sent: Sent::Maybe,
        }
    }
}

fn find_source<'a, T: std::error::Error + 'static>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) =
            cause.downcast_ref::<rustls::Error>()
            && let Some(found) = other.0.downcast_ref::<T>()
        {
            return Some(found);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find_source::<T>(inner)
        {
            return Some(found);
        }
        current = cause.source();
    }
    None
}

/// The innermost distinct messages of an error chain, joined (`error sending request: connection refused`).
fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        current = cause.source();
    }
    // The outermost reqwest message repeats the URL; keep the causes.
    if parts.len() > 1 {
        parts.remove(0);
    }
    parts.join(": ")
}
