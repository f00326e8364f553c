//! Exit codes (documented in README.md and `pvetoken --help`) and the error type that carries one.

use crate::printer::Printer;

/// The process exit status of every `pvetoken` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done or is in place.
    Success,
    /// A check ran and failed (a missing privilege, a lint finding, an audit finding at or above `--fail-on`).
    CheckFailed,
    /// Bad usage or bad input: a flag, a file, an identifier. Nothing was sent to a server.
    Usage,
    /// The server or the network failed or refused.
    Remote,
    /// A bug or an unexpected local failure.
    Internal,
    /// `pvetoken exec`: the exit status of the command it ran (`128 + N` for a signal, 127 for a command that
    /// does not exist), as a shell reports it.
    Child(u8),
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::CheckFailed => 1,
            Exit::Usage => 2,
            Exit::Remote => 3,
            Exit::Internal => 4,
            Exit::Child(code) => code,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// An error that knows its exit code and, ideally, the fix.
///
/// Commands return `anyhow::Result<Exit>`; wrap failures in a `CliError` (or attach one with
/// `.context(...)`) to choose the exit code. Anything else is reported as an internal error (4).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// The exit code this error ends the process with.
    pub exit: Exit,
    /// What went wrong, in one sentence. Never contains a secret.
    pub message: String,
    /// How to fix it, when we know.
    pub hint: Option<String>,
}

impl CliError {
    /// A usage or input error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self { exit: Exit::Usage, message: message.into(), hint: None }
    }

    /// A server or network error (exit 3).
    pub fn remote(message: impl Into<String>) -> Self {
        Self { exit: Exit::Remote, message: message.into(), hint: None }
    }

    /// A failed check (exit 1).
    pub fn check_failed(message: impl Into<String>) -> Self {
        Self { exit: Exit::CheckFailed, message: message.into(), hint: None }
    }

    /// Adds the fix the user should apply.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<pvetoken_lifecycle::Kind> for Exit {
    fn from(kind: pvetoken_lifecycle::Kind) -> Self {
        match kind {
            pvetoken_lifecycle::Kind::CheckFailed => Exit::CheckFailed,
            pvetoken_lifecycle::Kind::Usage => Exit::Usage,
            pvetoken_lifecycle::Kind::Remote => Exit::Remote,
        }
    }
}

impl From<pvetoken_lifecycle::Error> for CliError {
    fn from(error: pvetoken_lifecycle::Error) -> Self {
        Self { exit: error.kind.into(), message: error.message, hint: error.hint }
    }
}

impl From<pvetoken_lifecycle::profiles::ProfileError> for CliError {
    fn from(error: pvetoken_lifecycle::profiles::ProfileError) -> Self {
        pvetoken_lifecycle::Error::from(error).into()
    }
}

/// Reports the outcome of a command and returns the exit code.
pub fn finish(outcome: anyhow::Result<Exit>, printer: &Printer) -> Exit {
    match outcome {
        Ok(exit) => exit,
        Err(error) => {
            if is_broken_pipe(&error) {
                return Exit::Success;
            }
            // The first cause that knows its exit code: ours, or the lifecycle library's.
            let known = error.chain().find_map(|cause| {
                if let Some(cli) = cause.downcast_ref::<CliError>() {
                    return Some((cli.exit, cli.hint.as_deref()));
                }
                cause
                    .downcast_ref::<pvetoken_lifecycle::Error>()
                    .map(|lifecycle| (Exit::from(lifecycle.kind), lifecycle.hint.as_deref()))
            });
            printer.error(&format!("{error:#}"));
            match known {
                Some((exit, hint)) => {
                    if let Some(hint) = hint {
                        printer.hint(hint);
                    }
                    exit
                }
                None => Exit::Internal,
            }
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
