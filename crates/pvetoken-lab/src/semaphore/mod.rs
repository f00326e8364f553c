//! The Semaphore UI API simulator (second listener of the lab).
//!
//! Contract with the rest of the lab (the server code starts it next to the PVE simulator, on its own port, with
//! the same certificate):
//! - [`SemaphoreScenario`] is the `[semaphore]` table of the lab scenario;
//! - [`SemaphoreSim::open`] loads or creates its state (in `state_dir/semaphore/` when a state dir is given);
//! - [`SemaphoreSim::router`] is the axum router to serve under `/`;
//! - [`SemaphoreSim::admin_user`] / [`SemaphoreSim::admin_password`] go into the ready file as
//!   `semaphore_user` / `semaphore_password`.

use std::path::Path;

/// The `[semaphore]` table of a lab scenario.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct SemaphoreScenario {}

/// Why the Semaphore simulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SemaphoreError {
    /// The state directory could not be read or written.
    #[error("semaphore state in {path}: {source}")]
    State {
        /// The file or directory concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A running Semaphore simulator's state.
#[derive(Debug, Clone)]
pub struct SemaphoreSim {
    admin_user: String,
    admin_password: String,
}

impl SemaphoreSim {
    /// Opens (or creates) the simulator state.
    pub fn open(
        _state_dir: Option<&Path>,
        _scenario: &SemaphoreScenario,
        admin_password: String,
    ) -> Result<Self, SemaphoreError> {
        Ok(Self { admin_user: "admin".to_owned(), admin_password })
    }

    /// The router that answers Semaphore's `/api/...`.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
    }

    /// The simulator's administrator login.
    pub fn admin_user(&self) -> &str {
        &self.admin_user
    }

    /// The simulator's administrator password (written only to the 0600 ready file).
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }
}
