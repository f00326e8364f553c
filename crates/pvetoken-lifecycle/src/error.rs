//! The error every fallible step of the lifecycle returns: what went wrong, of which kind, and the fix.

/// What kind of failure, so that a caller can decide what to do (the CLI maps each kind to an exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A check ran and failed (a missing privilege, a dead sink).
    CheckFailed,
    /// Bad input: a setting, a file, an identifier. Nothing was sent to a server.
    Usage,
    /// The server or the network failed or refused.
    Remote,
}

/// A failure with its kind and, ideally, the fix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// What kind of failure this is.
    pub kind: Kind,
    /// What went wrong, in one sentence. Never contains a secret.
    pub message: String,
    /// How to fix it, when we know.
    pub hint: Option<String>,
}

impl Error {
    /// A usage or input error.
    pub fn usage(message: impl Into<String>) -> Self {
        Self { kind: Kind::Usage, message: message.into(), hint: None }
    }

    /// A server or network error.
    pub fn remote(message: impl Into<String>) -> Self {
        Self { kind: Kind::Remote, message: message.into(), hint: None }
    }

    /// A failed check.
    pub fn check_failed(message: impl Into<String>) -> Self {
        Self { kind: Kind::CheckFailed, message: message.into(), hint: None }
    }

    /// Adds the fix the user should apply.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}
