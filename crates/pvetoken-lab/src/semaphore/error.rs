//! Why the Semaphore simulator could not start.

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
    /// The `[semaphore]` table names something it does not define (a template's repository, inventory, ...).
    #[error("lab scenario [semaphore]: {0}")]
    Scenario(String),
}
