//! HTTPS clients for Proxmox VE and Semaphore: auth, TLS pinning, safe retries.
//!
//! - [`tls`]: [`tls::TlsSettings`], [`tls::Fingerprint`] and [`tls::http_client`], the one `reqwest::Client` of a
//!   run (rustls with the `ring` provider; system roots, a CA file, a pinned leaf or, with a warning, anything).
//! - [`error`]: [`ClientError`], which carries the server's status and message and whether a failed request may
//!   have been sent.

pub mod agent;
pub mod endpoint;
pub mod error;
pub mod openbao;
pub mod pve;
pub mod semaphore;
pub mod tls;

pub use error::{ClientError, Sent};
pub use tls::{Fingerprint, TlsSettings, http_client};
