//! Wire types shared by pvetoken's clients, simulators and CLI.
//!
//! This crate names the JSON shapes of the Proxmox VE (`/api2/json/...`) and Semaphore (`/api/...`) endpoints that
//! pvetoken calls, and the [`Secret`] type every credential travels in. It knows nothing about HTTP clients or
//! servers: the client crate sends these types, the lab answers with them, and tests compare them.
//!
//! ```
//! use pvetoken_api::{ExposeSecret, Secret};
//! let secret = Secret::from("11111111-2222-3333-4444-555555555555".to_owned());
//! assert_eq!(format!("{secret:?}"), "SecretBox<str>([REDACTED])");
//! assert_eq!(secret.expose_secret().len(), 36);
//! ```

/// A credential (token secret, password, ticket): redacted `Debug`, no `Display`, no `Serialize`, zeroed on drop.
///
/// Read it only through [`ExposeSecret::expose_secret`], at the one place that needs the clear text.
pub type Secret = secrecy::SecretString;
pub use secrecy::ExposeSecret;
pub mod pve;
pub mod semaphore;
