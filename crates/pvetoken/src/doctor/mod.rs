//! `pvetoken doctor`'s checks, one module per group, and the findings they produce.
//!
//! The checks run in the order a support engineer would follow (token file → consumer environment variables →
//! DNS → TCP → TLS → the token authenticates → server version → privileges of the profile → expiry → Semaphore).
//! A [`Severity::Blocking`] finding stops the chain: every later check is reported as skipped, because its answer
//! would only repeat the first problem. Every finding says what is wrong, why it matters, and the exact fix (a
//! `pveum` command for the PVE host and the `pvetoken` command that does it for you).
//!
//! `--explain-error` ([`explain`]) is the same knowledge read backwards: from an error text a consumer printed to
//! its cause and fix.

pub mod environment;
pub mod explain;
pub mod knowledge;
pub mod network;
pub mod pve;
pub mod semaphore;
pub mod token_file;

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For information (e.g. the server version).
    Info,
    /// Works today but will break or is unsafe (expiry within 14 days, no certificate pin).
    Warning,
    /// Broken for some consumer, but later checks still mean something (a bad environment variable).
    Error,
    /// Broken, and later checks cannot run meaningfully: doctor stops explaining here.
    Blocking,
}

impl Severity {
    /// The word printed in text mode.
    pub fn word(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Blocking => "blocking",
        }
    }

    /// True when the finding makes doctor exit 1.
    pub fn fails(self) -> bool {
        self >= Self::Error
    }
}

/// One thing doctor found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `token-file-mode` (documented in docs/doctor.md; tests match on it).
    pub id: String,
    /// How bad it is.
    pub severity: Severity,
    /// The check group that found it (`token-file`, `environment`, `dns`, ...).
    pub check: &'static str,
    /// What is wrong, in one sentence. Never contains a secret.
    pub what: String,
    /// Why it matters: what will fail, and how it will look.
    pub why: String,
    /// The exact fix: `pveum` / shell commands and the `pvetoken` command, in the order to run them.
    pub fix: Vec<String>,
}

impl Finding {
    /// A finding without a fix yet.
    pub fn new(id: impl Into<String>, severity: Severity, check: &'static str, what: impl Into<String>) -> Self {
        Self { id: id.into(), severity, check, what: what.into(), why: String::new(), fix: Vec::new() }
    }

    /// Adds the reason.
    #[must_use]
    pub fn why(mut self, why: impl Into<String>) -> Self {
        self.why = why.into();
        self
    }

    /// Adds one fix command.
    #[must_use]
    pub fn fix(mut self, command: impl Into<String>) -> Self {
        self.fix.push(command.into());
        self
    }
}

/// The outcome of one check group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing wrong.
    Ok,
    /// Only warnings or information.
    Warning,
    /// At least one error or blocking finding.
    Failed,
    /// Not run: an earlier check blocks it, or it was not asked for.
    Skipped,
}

/// One check group's result, in the order they ran.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The group (`token-file`, `environment`, ...).
    pub check: &'static str,
    /// Its status.
    pub status: Status,
    /// One line: what was checked, or why it was skipped.
    pub detail: String,
}

/// Everything doctor found, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Each check group's result.
    pub checks: Vec<CheckResult>,
    /// Every finding, in the order found.
    pub findings: Vec<Finding>,
    /// The first blocking finding's id, when one stopped the chain.
    pub blocked_by: Option<String>,
}

impl Report {
    /// True when a blocking finding stopped the chain.
    pub fn is_blocked(&self) -> bool {
        self.blocked_by.is_some()
    }

    /// Records a check group's findings and its status; returns false when a blocking finding stops the chain.
    pub fn record(&mut self, check: &'static str, detail: impl Into<String>, findings: Vec<Finding>) -> bool {
        let worst = findings.iter().map(|finding| finding.severity).max();
        let status = match worst {
            None => Status::Ok,
            Some(severity) if severity.fails() => Status::Failed,
            Some(_) => Status::Warning,
        };
        if let Some(blocking) = findings.iter().find(|finding| finding.severity == Severity::Blocking) {
            self.blocked_by.get_or_insert_with(|| blocking.id.clone());
        }
        self.checks.push(CheckResult { check, status, detail: detail.into() });
        self.findings.extend(findings);
        !self.is_blocked()
    }

    /// Records a check that did not run.
    pub fn skip(&mut self, check: &'static str, why: impl Into<String>) {
        self.checks.push(CheckResult { check, status: Status::Skipped, detail: why.into() });
    }

    /// Records every remaining check of `checks` as skipped because of the blocking finding.
    pub fn skip_rest(&mut self, checks: &[&'static str]) {
        let reason = match &self.blocked_by {
            Some(id) => format!("not run: {id} must be fixed first"),
            None => "not run".to_owned(),
        };
        for check in checks {
            if !self.checks.iter().any(|done| done.check == *check) {
                self.skip(check, reason.clone());
            }
        }
    }

    /// True when doctor should exit 1.
    pub fn fails(&self) -> bool {
        self.findings.iter().any(|finding| finding.severity.fails())
    }
}

/// Every check group, in the order they run.
pub const CHECKS: [&str; 10] =
    ["token-file", "environment", "dns", "tcp", "tls", "auth", "version", "privileges", "expiry", "semaphore"];

#[cfg(test)]
mod tests {
    use super::{Finding, Report, Severity, Status};

    #[test]
    fn a_blocking_finding_stops_the_chain_and_later_checks_are_skipped_naming_it() {
        let mut report = Report::default();
        assert!(report.record("token-file", "ok", vec![]));
        let blocking = Finding::new("tcp-refused", Severity::Blocking, "tcp", "refused");
        assert!(!report.record("tcp", "connect", vec![blocking]));
        report.skip_rest(&["token-file", "tcp", "tls"]);
        assert_eq!(report.checks.len(), 3);
        assert_eq!(report.checks[2].status, Status::Skipped);
        assert!(report.checks[2].detail.contains("tcp-refused"));
        assert!(report.fails());
    }

    #[test]
    fn warnings_alone_do_not_fail() {
        let mut report = Report::default();
        report.record("expiry", "x", vec![Finding::new("token-expiring", Severity::Warning, "expiry", "soon")]);
        assert!(!report.fails());
        assert_eq!(report.checks[0].status, Status::Warning);
    }
}
