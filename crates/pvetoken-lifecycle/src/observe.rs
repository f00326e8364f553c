//! How the lifecycle tells its caller what happens while it works, without printing: the CLI's printer
//! implements [`Observer`]; a library user passes [`Silent`] or its own logger.

/// Receives progress and warnings. Messages never contain a secret.
pub trait Observer: Sync {
    /// Progress worth showing by default (e.g. waiting for another run's lock).
    fn info(&self, message: &str);
    /// Something the user should know about and may want to fix.
    fn warn(&self, message: &str);
    /// Detail for a verbose run (which rotation method was chosen and why).
    fn detail(&self, message: &str);
}

/// An observer that drops every message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {
    fn info(&self, _: &str) {}
    fn warn(&self, _: &str) {}
    fn detail(&self, _: &str) {}
}
