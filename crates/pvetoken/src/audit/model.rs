//! The audit report: severities, findings, per-token summaries. Its serde form is the `--output json` schema
//! (docs/audit.md); the text and HTML reports render the same values.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Schema identifier written at the top of the JSON report. Bump the number on an incompatible change.
pub const SCHEMA: &str = "pvetoken.audit/1";

/// How bad a finding is, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Full control of the cluster, now.
    Critical,
    /// A token that can do (or grant itself) far more than automation should.
    High,
    /// Broken or latent problems: dead tokens, dangling grants, silently dropped privileges.
    Medium,
    /// Housekeeping that will bite soon (expiring credentials, upgrade traps).
    Low,
    /// Worth knowing, not wrong by itself.
    Info,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 5] =
        [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];

    /// The lowercase name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }

    /// True when `self` is as severe as `threshold` or more.
    pub fn at_least(self, threshold: Severity) -> bool {
        self <= threshold
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown severity '{s}': use critical, high, medium, low or info"))
    }
}

/// The exact commands that fix a finding: with Proxmox's own tool and with pvetoken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fix {
    /// What to do, in one sentence.
    pub summary: String,
    /// `pveum ...` commands to run on a PVE node, in order.
    pub pveum: Vec<String>,
    /// `pvetoken ...` commands doing the same (or the safer replacement), in order.
    pub pvetoken: Vec<String>,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable rule id (docs/audit.md lists them), e.g. `token-privsep-off`.
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// What the finding is about: a token id, a user id, `@group`, a role id or an ACL path.
    pub subject: String,
    /// One line saying what is wrong.
    pub title: String,
    /// Why it matters, with the specifics (paths, privileges).
    pub detail: String,
    /// The configuration lines that prove it, in user.cfg syntax (`acl:1:/:user@pve:Administrator:`); lines read
    /// verbatim from a file are prefixed with `line N: `.
    pub evidence: Vec<String>,
    /// How to fix it.
    pub fix: Fix,
}

/// Effective privileges on one path (or one group of pool members), with a role-like name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessLine {
    /// The ACL path; for pool members `/pool/<id>` (or `/pool/*` for every pool without ACL entries of its own).
    pub path: String,
    /// `subtree` (the path and everything below), `path` (only this path: a non-propagating grant) or `members`
    /// (the guests and storages of the pool, which get the pool's roles).
    pub scope: &'static str,
    /// Human summary such as `VM admin`, `datastore user + Sys.Audit`, or `nothing` (a NoAccess or an
    /// intersection that removes inherited rights).
    pub label: String,
    /// The privileges, sorted.
    pub privileges: Vec<&'static str>,
}

/// One API token and what it can really do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenReport {
    /// Full token id `user@realm!name`.
    pub id: String,
    /// Owner `user@realm`.
    pub owner: String,
    /// Privilege separation (false: the token has exactly its owner's rights).
    pub privsep: bool,
    /// Expiry, epoch seconds; 0 = never.
    pub expire: u64,
    /// `active`, `expired`, `owner-expired`, `owner-disabled` (the last three answer 401 to every request).
    pub status: &'static str,
    /// The token's comment.
    pub comment: Option<String>,
    /// The pvetoken profile it was created for (comment marker `pvetoken profile <name>`, or a token named like a
    /// built-in profile), if any.
    pub profile: Option<String>,
    /// Effective privileges by path, broadest first; children whose rights equal what they inherit are omitted.
    pub access: Vec<AccessLine>,
    /// One line: `VM admin on /vms, datastore user on /storage/local` (`no effective privileges` when empty).
    pub access_summary: String,
    /// Ids of the findings about this token.
    pub findings: Vec<&'static str>,
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    /// `offline` (a user.cfg file) or `live` (rebuilt from the API).
    pub mode: &'static str,
    /// The file (offline) or the API address (live).
    pub location: String,
    /// The PVE release whose privileges and built-in roles were used.
    pub pve_version: String,
}

/// Finding counts per severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Critical findings.
    pub critical: usize,
    /// High findings.
    pub high: usize,
    /// Medium findings.
    pub medium: usize,
    /// Low findings.
    pub low: usize,
    /// Informational findings.
    pub info: usize,
}

impl Counts {
    /// Counts `findings`.
    pub fn of(findings: &[Finding]) -> Counts {
        let mut counts = Counts::default();
        for finding in findings {
            *counts.slot(finding.severity) += 1;
        }
        counts
    }

    fn slot(&mut self, severity: Severity) -> &mut usize {
        match severity {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::Info => &mut self.info,
        }
    }

    /// The count for one severity.
    pub fn get(&self, severity: Severity) -> usize {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Info => self.info,
        }
    }
}

/// Settings echoed in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportOptions {
    /// The clock used for expiry, epoch seconds.
    pub now: u64,
    /// `--expiring-within`, in seconds.
    pub expiring_within_seconds: u64,
    /// `--fail-on` (`none` when the audit never fails).
    pub fail_on: String,
    /// `--profile-check`.
    pub profile_check: bool,
}

/// A parse warning of the configuration (line numbers refer to the file offline, to the rebuilt text live).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based line.
    pub line: usize,
    /// Proxmox's wording.
    pub message: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// Where the configuration came from.
    pub source: SourceInfo,
    /// Settings.
    pub options: ReportOptions,
    /// Number of users (root@pam included).
    pub users: usize,
    /// Findings per severity.
    pub counts: Counts,
    /// Every token, sorted by id.
    pub tokens: Vec<TokenReport>,
    /// Every finding, most severe first, then by id and subject.
    pub findings: Vec<Finding>,
    /// What Proxmox's parser would say about the configuration.
    pub warnings: Vec<Warning>,
}

impl Report {
    /// True when a finding at `threshold` or above exists.
    pub fn fails(&self, threshold: Option<Severity>) -> bool {
        threshold.is_some_and(|t| self.findings.iter().any(|f| f.severity.at_least(t)))
    }
}
