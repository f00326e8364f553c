//! HTTPS clients for Proxmox VE and Semaphore: auth, TLS pinning, safe retries.
//!
//! - [`tls`]: [`tls::TlsSettings`] and [`tls::http_client`], the one `reqwest::Client` of a run (rustls with the
//!   `ring` provider; system roots, a CA file, a pinned leaf or, with a warning, anything); [`fingerprint`]:
//!   [`Fingerprint`], a certificate's SHA-256 as PVE shows it.
//! - [`error`]: [`ClientError`], which carries the server's status and message and whether a failed request may
//!   have been sent.

pub mod agent;
pub mod endpoint;
pub mod error;
pub mod fingerprint;
pub mod openbao;
pub mod pve;
pub mod semaphore;
pub mod tls;

pub use error::{ClientError, Sent};
pub use fingerprint::Fingerprint;
pub use tls::{TlsSettings, http_client};
