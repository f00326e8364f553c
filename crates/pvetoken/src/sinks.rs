//! Sinks: the places a token was handed to (a Semaphore environment, ...), remembered next to the token file so
//! that `pvetoken rotate` can update every one of them.
//!
//! The lifecycle engineer owns this file (record storage, `load`/`remember`); each sink's update lives with the
//! command that registers it (`commands::register::refresh_semaphore_sink`).

use std::path::PathBuf;

/// One place the token was handed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SinkRecord {
    /// A Semaphore UI environment holding the token as secrets.
    Semaphore(SemaphoreSink),
}

/// A Semaphore environment registered by `pvetoken register semaphore`. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SemaphoreSink {
    /// Semaphore base URL, e.g. `https://semaphore.lan:3000`.
    pub url: String,
    /// Project id or name, as given.
    pub project: String,
    /// Environment name, e.g. `ProxmoxAPI`.
    pub environment: String,
    /// Variable layout: `seed` or `community-proxmox`.
    pub layout: String,
    /// Login name when password authentication was used.
    pub user: Option<String>,
    /// File holding a Semaphore API token, when that was used.
    pub api_token_file: Option<PathBuf>,
    /// CA bundle used to verify Semaphore, if any.
    pub ca_file: Option<PathBuf>,
    /// Pinned certificate fingerprint, if any.
    pub fingerprint: Option<String>,
}
