//! `pvetoken lint`: find the credential mistakes the design notes and the research record, in the files
//! infrastructure repositories keep them in (`.envrc`, `*.env`, `*.sh`, `*.pkr.hcl`, `*.pkrvars.hcl`, `*.tf`,
//! `*.tfvars`, Ansible and SOPS YAML).
//!
//! The rules read each file line by line (no consumer tool is run); values that are expressions (`var.x`,
//! `${...}`, `{{ ... }}`, `$VAR`) are not judged, except for a literal `PVEAPIToken=` prefix. Every finding names
//! the rule, the consumer's expectation and the fix.
//!
//! | rule | severity | finds |
//! |---|---|---|
//! | `pveapitoken-prefix` | error | `PVEAPIToken=` in a variable (Packer/Ansible secrets, bpg's token, any env var) |
//! | `token-id-not-full` | error | a token id without `!` where `user@realm!name` is needed (Packer username, Telmate, bpg) |
//! | `token-id-not-name` | error | a full id where only the token name goes (`api_token_id`, SOPS `proxmox_token_id`) |
//! | `community-proxmox-token-id-full` | error | `PROXMOX_TOKEN_ID=user@realm!name` next to `PROXMOX_USER` |
//! | `user-has-token-name` | error | `api_user`/`PROXMOX_USER` holding `user@realm!name` |
//! | `token-id-escaped-bang` | error | a token id spelling `!` as `\u0021` or `\x21`, which bash and jq keep literally |
//! | `token-id-ambiguous` | warning | `PROXMOX_TOKEN_ID=name` without `PROXMOX_USER` (community.proxmox then assumes root@pam) |
//! | `pam-token-user` | warning | a token user in the `@pam` realm where a `@pve` automation user is meant |
//! | `api-path-missing` | error | a Packer/Telmate URL without `/api2/json` |
//! | `api-path-present` | error/warning | a bpg endpoint with `/api2/json` |
//! | `privilege-removed-in-pve9` | error | `VM.Monitor` in a role for PVE 9 |
//! | `privilege-unknown-in-pve8` | error | `VM.GuestAgent.*` in a role for PVE 8 |
//! | `packer-clone-full-clone` | warning | `proxmox-clone` without `full_clone = true` |
//! | `cloud-init-exit-code` | error | `cloud-init status --wait` in a provisioner without `valid_exit_codes` accepting 2 |
//! | `insecure-tls` | info | certificate verification turned off |

mod rules;
pub mod scan;

use std::collections::BTreeSet;

use serde::Serialize;

pub use scan::{Kind, Role, classify};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a failure by default.
    Info,
    /// Likely wrong.
    Warning,
    /// Wrong: the consumer will fail or misbehave.
    Error,
}

impl Severity {
    /// `info`, `warning`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// The PVE major version roles are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PveMajor {
    /// PVE 8 (has `VM.Monitor`, no `VM.GuestAgent.*`).
    V8,
    /// PVE 9 (no `VM.Monitor`).
    V9,
}

/// Settings of a lint run.
#[derive(Debug, Clone)]
pub struct LintOptions {
    /// The PVE version role privileges are checked for.
    pub pve: PveMajor,
}

impl Default for LintOptions {
    fn default() -> Self {
        Self { pve: PveMajor::V9 }
    }
}

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// Rule id, e.g. `pveapitoken-prefix`.
    pub rule: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What is wrong (never contains a secret: values are not quoted).
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

/// Facts collected across the files of one directory before the rules run (Terraform splits a configuration
/// across files).
#[derive(Debug, Clone, Default)]
pub struct DirectoryContext {
    /// Terraform variables used as a bpg `endpoint = var.NAME`.
    pub bpg_endpoint_vars: BTreeSet<String>,
}

impl DirectoryContext {
    /// Adds what `file` (already scanned) tells about its directory.
    pub fn learn(&mut self, file: &scan::Scanned) {
        rules::learn(self, file);
    }
}

/// Whether a lint rule judges the value of `key` (any case): every key that holds a credential, a URL or a TLS
/// switch must be one ([`crate::consumers`] tests it for every format).
pub fn judges_key(key: &str) -> bool {
    rules::judges(key)
}

/// Lints one file's text. `file_name` selects the language (see [`classify`]); an unknown name is read as shell.
pub fn lint_text(file_name: &str, text: &str, context: &DirectoryContext, options: &LintOptions) -> Vec<Finding> {
    let (kind, role) = classify(file_name).unwrap_or((Kind::Shell, Role::Other));
    let scanned = scan::scan(text, kind, role);
    let mut findings = rules::check(&scanned, context, options);
    findings.sort_by(|a, b| (a.line, a.column, a.rule).cmp(&(b.line, b.column, b.rule)));
    findings.dedup_by(|a, b| a.line == b.line && a.rule == b.rule);
    findings
}

/// Scans a file for [`DirectoryContext::learn`].
pub fn scan_for_context(file_name: &str, text: &str) -> scan::Scanned {
    let (kind, role) = classify(file_name).unwrap_or((Kind::Shell, Role::Other));
    scan::scan(text, kind, role)
}
