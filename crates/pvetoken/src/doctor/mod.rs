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

/// Declares string ids once: a module of constants (what the code uses) and the list of all of them (what the
/// documentation test compares docs/doctor.md with), so an id cannot exist in one and not the other.
macro_rules! declare_ids {
    ($(#[$module_doc:meta])* mod $module:ident; $(#[$all_doc:meta])* const $all:ident;
     $($(#[$doc:meta])* $name:ident = $id:literal;)*) => {
        $(#[$module_doc])*
        pub mod $module {
            $($(#[$doc])* pub const $name: &str = $id;)*
            /// `(constant name, id)` of each id, for the tests that check every id is used.
            #[cfg(test)]
            pub(crate) const NAMED: &[(&str, &str)] = &[$((stringify!($name), $id)),*];
        }
        $(#[$all_doc])*
        pub const $all: &[&str] = &[$($id),*];
    };
}

declare_ids! {
    /// The stable id of every finding `pvetoken doctor` can emit (documented in docs/doctor.md; tests match on them).
    #[expect(
        dead_code,
        reason = "the env-<rule> ids are built from lint's rule names at run time; a test checks them against these \
                  constants"
    )]
    mod id;
    /// Every finding id, in check order. A unit test proves each one has a row in docs/doctor.md and vice versa.
    #[cfg_attr(not(test), expect(dead_code, reason = "the list exists for the documentation tests"))]
    const ALL_IDS;
    // token-file
    /// The token file does not exist.
    TOKEN_FILE_MISSING = "token-file-missing";
    /// The token file cannot be read (permissions, I/O), or pvetoken's private-file reader refused it.
    TOKEN_FILE_UNREADABLE = "token-file-unreadable";
    /// The path is a directory or a special file.
    TOKEN_FILE_NOT_A_FILE = "token-file-not-a-file";
    /// Group or others can access the file.
    TOKEN_FILE_MODE = "token-file-mode";
    /// The file belongs to another user than the one running doctor.
    TOKEN_FILE_OWNER = "token-file-owner";
    /// A required key is missing.
    TOKEN_FILE_MISSING_KEY = "token-file-missing-key";
    /// A value is invalid for its key.
    TOKEN_FILE_BAD_VALUE = "token-file-bad-value";
    /// A line is not `KEY='value'`.
    TOKEN_FILE_SYNTAX = "token-file-syntax";
    /// PROXMOX_TOKEN_SECRET holds a whole token string, or is not a UUID.
    TOKEN_SECRET_FORMAT = "token-secret-format";
    /// PROXMOX_NODE is not a node name.
    TOKEN_NODE_FORMAT = "token-node-format";
    /// The token belongs to root@pam.
    TOKEN_OF_ROOT = "token-of-root";
    /// PROXMOX_TLS_INSECURE is set in the token file.
    TOKEN_FILE_INSECURE = "token-file-insecure";
    // environment: pvetoken lint's rules that can fire on consumer variables, as `env-<rule>`
    /// `PVEAPIToken=` in a consumer variable.
    ENV_PVEAPITOKEN_PREFIX = "env-pveapitoken-prefix";
    /// `!` written as `\u0021` / `\x21` in a token id.
    ENV_TOKEN_ID_ESCAPED_BANG = "env-token-id-escaped-bang";
    /// A token id without `!` where the full id is needed.
    ENV_TOKEN_ID_NOT_FULL = "env-token-id-not-full";
    /// community.proxmox's PROXMOX_TOKEN_ID holding a full id next to PROXMOX_USER.
    ENV_COMMUNITY_PROXMOX_TOKEN_ID_FULL = "env-community-proxmox-token-id-full";
    /// PROXMOX_TOKEN_ID is a bare name without PROXMOX_USER.
    ENV_TOKEN_ID_AMBIGUOUS = "env-token-id-ambiguous";
    /// PROXMOX_USER holds `user@realm!name`.
    ENV_USER_HAS_TOKEN_NAME = "env-user-has-token-name";
    /// A token user in the `@pam` realm.
    ENV_PAM_TOKEN_USER = "env-pam-token-user";
    /// A Packer/Telmate URL without `/api2/json`.
    ENV_API_PATH_MISSING = "env-api-path-missing";
    /// A bpg endpoint with `/api2/json`.
    ENV_API_PATH_PRESENT = "env-api-path-present";
    /// `VM.Monitor` in a variable's value (checked for PVE 9).
    ENV_PRIVILEGE_REMOVED_IN_PVE9 = "env-privilege-removed-in-pve9";
    /// A consumer's TLS switch turns verification off (`PROXMOX_VE_INSECURE=true`, `PROXMOX_VALIDATE_CERTS=false`).
    ENV_INSECURE_TLS = "env-insecure-tls";
    // environment: doctor's own checks against the token file
    /// PROXMOX_USER is not the token's owner.
    ENV_USER_NOT_TOKEN_OWNER = "env-user-not-token-owner";
    /// A secret variable differs from the token file's secret.
    ENV_STALE_SECRET = "env-stale-secret";
    // dns
    /// The URL, fingerprint or CA settings cannot be resolved into a target (commands/doctor.rs).
    CONNECTION_SETTINGS = "connection-settings";
    /// The host name does not resolve.
    DNS_UNRESOLVABLE = "dns-unresolvable";
    // tcp
    /// The connection was refused.
    TCP_REFUSED = "tcp-refused";
    /// No answer or another connect error.
    TCP_UNREACHABLE = "tcp-unreachable";
    // tls
    /// Certificate verification is off.
    TLS_INSECURE = "tls-insecure";
    /// The pinned fingerprint does not match.
    TLS_PIN_MISMATCH = "tls-pin-mismatch";
    /// The certificate is not trusted.
    TLS_UNTRUSTED = "tls-untrusted";
    /// HTTPS answers, but not like PVE.
    TLS_NOT_PVE = "tls-not-pve";
    /// Any other TLS or HTTP failure of the probe.
    TLS_HANDSHAKE_FAILED = "tls-handshake-failed";
    // auth (and expiry)
    /// The token has expired (auth: 401 and an expiry in the past; expiry: the date is past).
    TOKEN_EXPIRED = "token-expired";
    /// PVE answered 401 to the token.
    TOKEN_AUTH_FAILED = "token-auth-failed";
    /// `GET /version` as the token failed for another reason.
    AUTH_REQUEST_FAILED = "auth-request-failed";
    // version
    /// The version string cannot be read.
    PVE_VERSION_UNKNOWN = "pve-version-unknown";
    /// PVE older than 8.
    PVE_VERSION_OLD = "pve-version-old";
    /// PVE newer than any release pvetoken knows (checks assume the newest known).
    PVE_VERSION_NEWER = "pve-version-newer";
    // privileges
    /// The profile is not known (commands/doctor.rs).
    PROFILE_UNKNOWN = "profile-unknown";
    /// `GET /access/permissions` as the token failed.
    PERMISSIONS_UNREADABLE = "permissions-unreadable";
    /// The token holds no privilege anywhere.
    TOKEN_NO_PERMISSIONS = "token-no-permissions";
    /// One privilege of the profile is missing on one path.
    PRIVILEGE_MISSING = "privilege-missing";
    /// No admin credentials to say which side lacks a privilege (commands/doctor.rs).
    ADMIN_UNAVAILABLE = "admin-unavailable";
    // expiry
    /// The token expires within [`pve::EXPIRY_WARNING_DAYS`].
    TOKEN_EXPIRING = "token-expiring";
    // semaphore
    /// Neither SEMAPHORE_API_TOKEN nor SEMAPHORE_PASSWORD (commands/doctor.rs).
    SEMAPHORE_NO_CREDENTIALS = "semaphore-no-credentials";
    /// The login or API token is refused.
    SEMAPHORE_LOGIN_REFUSED = "semaphore-login-refused";
    /// Semaphore's certificate is not pinned / not trusted.
    SEMAPHORE_TLS = "semaphore-tls";
    /// The URL does not reach Semaphore's API.
    SEMAPHORE_NOT_SEMAPHORE = "semaphore-not-semaphore";
    /// Semaphore cannot be reached.
    SEMAPHORE_UNREACHABLE = "semaphore-unreachable";
    /// The project is not found or not visible.
    SEMAPHORE_PROJECT_MISSING = "semaphore-project-missing";
    /// Listing the environments failed.
    SEMAPHORE_REQUEST_FAILED = "semaphore-request-failed";
    /// The environment does not exist.
    SEMAPHORE_ENVIRONMENT_MISSING = "semaphore-environment-missing";
    /// The environment lacks expected secrets.
    SEMAPHORE_VARIABLES_MISSING = "semaphore-variables-missing";
    /// Expected secrets are `var`, not `env`.
    SEMAPHORE_SECRET_TYPE_VAR = "semaphore-secret-type-var";
    /// PROXMOX_TOKEN_SECRET in the plain `env` JSON.
    SEMAPHORE_SECRET_IN_PLAIN_ENV = "semaphore-secret-in-plain-env";
    /// No template of the project uses the environment.
    SEMAPHORE_ENVIRONMENT_UNUSED = "semaphore-environment-unused";
}

declare_ids! {
    /// The stable id of every explanation `pvetoken doctor --explain-error` can give (documented in docs/doctor.md).
    mod explanation_id;
    /// Every explanation id, in recogniser order. A unit test proves each one has a row in docs/doctor.md.
    #[cfg_attr(not(test), expect(dead_code, reason = "the list exists for the documentation tests"))]
    const EXPLANATION_IDS;
    /// `Permission check failed (PATH, PRIV)`.
    PVE_PERMISSION_CHECK_FAILED = "pve-permission-check-failed";
    /// `invalid token value`.
    PVE_401_INVALID_TOKEN_VALUE = "pve-401-invalid-token-value";
    /// `no such token`.
    PVE_401_NO_SUCH_TOKEN = "pve-401-no-such-token";
    /// `No ticket`.
    PVE_401_NO_TICKET = "pve-401-no-ticket";
    /// `authentication failure` / `401 Unauthorized`.
    PVE_401_AUTHENTICATION_FAILURE = "pve-401-authentication-failure";
    /// `invalid privilege 'X'`.
    PVE_INVALID_PRIVILEGE = "pve-invalid-privilege";
    /// `no such user (user@realm)` without a token part.
    PVE_NO_SUCH_USER = "pve-no-such-user";
    /// `no such user (user@realm!...)`: the community.proxmox id mix-up.
    ANSIBLE_TOKEN_ID_MIXUP = "ansible-token-id-mixup";
    /// `does not look like a valid user name`.
    PVE_TOKEN_ID_AS_USER_NAME = "pve-token-id-as-user-name";
    /// `PVEAPIToken=PVEAPIToken=`.
    TOKEN_DOUBLE_PREFIX = "token-double-prefix";
    /// x509 / certificate verify / 596 TLS failures.
    TLS_UNKNOWN_AUTHORITY = "tls-unknown-authority";
    /// Packer's `PARTUUID does not exist`.
    PACKER_LINKED_CLONE_PARTUUID = "packer-linked-clone-partuuid";
    /// Packer's `Timeout waiting for SSH`.
    PACKER_SSH_TIMEOUT = "packer-ssh-timeout";
    /// `cloud-init status --wait` exit status 2.
    CLOUD_INIT_EXIT_2 = "cloud-init-exit-2";
    /// Semaphore's `invalid environment secret type`.
    SEMAPHORE_SECRET_TYPE = "semaphore-secret-type";
    /// Semaphore's `Environment ID in body and URL must be the same`.
    SEMAPHORE_ENVIRONMENT_ID = "semaphore-environment-id";
}

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
    pub fn record(&mut self, check: Check, detail: impl Into<String>, findings: Vec<Finding>) -> bool {
        let check = check.as_str();
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

    /// [`Self::record`], and when a blocking finding stops the chain, every check not run yet is recorded as
    /// skipped and the chain ends (`?`).
    pub fn gate(&mut self, check: Check, detail: impl Into<String>, findings: Vec<Finding>) -> Result<(), Stopped> {
        if self.record(check, detail, findings) { Ok(()) } else { Err(self.stop()) }
    }

    /// Ends the chain here: every check not run yet is recorded as skipped.
    pub fn stop(&mut self) -> Stopped {
        let reason = match &self.blocked_by {
            Some(id) => format!("not run: {id} must be fixed first"),
            None => "not run".to_owned(),
        };
        for check in Check::ALL {
            if !self.checks.iter().any(|done| done.check == check.as_str()) {
                self.skip(check, reason.clone());
            }
        }
        Stopped
    }

    /// Records a check that did not run.
    pub fn skip(&mut self, check: Check, why: impl Into<String>) {
        self.checks.push(CheckResult { check: check.as_str(), status: Status::Skipped, detail: why.into() });
    }

    /// True when doctor should exit 1.
    pub fn fails(&self) -> bool {
        self.findings.iter().any(|finding| finding.severity.fails())
    }
}

/// The check groups, in the order they run; each names a link of the chain from the token file to a working call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The token file: present, private, parsable.
    TokenFile,
    /// Consumer variables in this shell.
    Environment,
    /// The server's name resolves.
    Dns,
    /// Its port answers.
    Tcp,
    /// Its certificate is trusted.
    Tls,
    /// The token authenticates.
    Auth,
    /// The PVE release is known.
    Version,
    /// The token holds its profile's privileges.
    Privileges,
    /// It does not expire soon.
    Expiry,
    /// The Semaphore environment holds it.
    Semaphore,
}

impl Check {
    /// Every check, in the order they run.
    pub const ALL: [Check; 10] = [
        Check::TokenFile,
        Check::Environment,
        Check::Dns,
        Check::Tcp,
        Check::Tls,
        Check::Auth,
        Check::Version,
        Check::Privileges,
        Check::Expiry,
        Check::Semaphore,
    ];

    /// The name in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::TokenFile => "token-file",
            Check::Environment => "environment",
            Check::Dns => "dns",
            Check::Tcp => "tcp",
            Check::Tls => "tls",
            Check::Auth => "auth",
            Check::Version => "version",
            Check::Privileges => "privileges",
            Check::Expiry => "expiry",
            Check::Semaphore => "semaphore",
        }
    }
}

/// The chain stopped at a blocking finding (or a check that leaves nothing to go on); the report says why.
#[derive(Debug, thiserror::Error)]
#[error("the doctor chain stopped")]
pub struct Stopped;

#[cfg(test)]
mod tests {
    use super::{Check, Finding, Report, Severity, Status};

    #[test]
    fn a_blocking_finding_stops_the_chain_and_later_checks_are_skipped_naming_it() {
        let mut report = Report::default();
        assert!(report.gate(Check::TokenFile, "ok", vec![]).is_ok());
        let blocking = Finding::new("tcp-refused", Severity::Blocking, "tcp", "refused");
        assert!(report.gate(Check::Tcp, "connect", vec![blocking]).is_err());
        assert_eq!(report.checks.len(), Check::ALL.len());
        let tls = report.checks.iter().find(|c| c.check == "tls").expect("tls listed");
        assert_eq!(tls.status, Status::Skipped);
        assert!(tls.detail.contains("tcp-refused"));
        assert!(report.fails());
    }

    #[test]
    fn warnings_alone_do_not_fail() {
        let mut report = Report::default();
        report.record(Check::Expiry, "x", vec![Finding::new("token-expiring", Severity::Warning, "expiry", "soon")]);
        assert!(!report.fails());
        assert_eq!(report.checks[0].status, Status::Warning);
    }

    /// The ids in the first column of the tables of the doc section headed `heading` (up to the next `## `).
    fn documented_ids(heading: &str) -> std::collections::BTreeSet<String> {
        let doc = include_str!("../../../../docs/doctor.md");
        let section = doc
            .split("\n## ")
            .find(|section| section.starts_with(heading))
            .unwrap_or_else(|| panic!("docs/doctor.md has no section `## {heading}`"));
        section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split_once('`').map(|(id, _)| id.to_owned()))
            .collect()
    }

    fn compare(declared: &[&str], documented: &std::collections::BTreeSet<String>, what: &str) {
        let undocumented: Vec<&&str> = declared.iter().filter(|id| !documented.contains(**id)).collect();
        let unknown: Vec<&String> = documented.iter().filter(|id| !declared.contains(&id.as_str())).collect();
        assert!(undocumented.is_empty(), "{what} ids without a row in docs/doctor.md: {undocumented:?}");
        assert!(unknown.is_empty(), "docs/doctor.md lists {what} ids the code does not declare: {unknown:?}");
    }

    #[test]
    fn every_finding_id_has_a_row_in_docs_doctor_md_and_every_row_is_a_real_id() {
        compare(super::ALL_IDS, &documented_ids("Findings"), "finding");
    }

    #[test]
    fn every_explain_error_id_has_a_row_in_docs_doctor_md_and_every_row_is_a_real_id() {
        compare(super::EXPLANATION_IDS, &documented_ids("Explaining an error"), "explanation");
    }

    /// The non-test part of each file that builds findings or explanations.
    const SOURCES: [(&str, &str); 7] = [
        ("doctor/token_file.rs", include_str!("token_file.rs")),
        ("doctor/environment.rs", include_str!("environment.rs")),
        ("doctor/network.rs", include_str!("network.rs")),
        ("doctor/pve.rs", include_str!("pve.rs")),
        ("doctor/semaphore.rs", include_str!("semaphore.rs")),
        ("doctor/explain.rs", include_str!("explain.rs")),
        ("commands/doctor.rs", include_str!("../commands/doctor.rs")),
    ];

    fn code(source: &str) -> &str {
        source.split("#[cfg(test)]").next().unwrap_or(source)
    }

    /// The string literal right after each `call` (e.g. `Finding::new(`), when the first argument is one.
    fn literal_arguments<'a>(source: &'a str, call: &str) -> Vec<&'a str> {
        source
            .match_indices(call)
            .filter_map(|(at, _)| source[at + call.len()..].trim_start().strip_prefix('"'))
            .filter_map(|rest| rest.split_once('"').map(|(literal, _)| literal))
            .collect()
    }

    #[test]
    fn ids_written_as_literals_in_the_code_are_declared_ids() {
        for (file, source) in SOURCES {
            for literal in literal_arguments(code(source), "Finding::new(") {
                assert!(super::ALL_IDS.contains(&literal), "{file}: Finding::new(\"{literal}\") is not in ALL_IDS");
            }
            for literal in literal_arguments(code(source), "Explanation::new(") {
                assert!(
                    super::EXPLANATION_IDS.contains(&literal),
                    "{file}: Explanation::new(\"{literal}\") is not in EXPLANATION_IDS"
                );
            }
        }
    }

    /// Every id `pvetoken lint` can produce on consumer variables, as doctor reports it (`env-<rule>`): each
    /// variable doctor reads, alone and next to the variables that change lint's reading, with the values of the
    /// known mistakes.
    fn environment_lint_ids() -> std::collections::BTreeSet<String> {
        const SECRET: &str = "11111111-2222-3333-4444-555555555555";
        let values = [
            format!("PVEAPIToken=automation@pve!ci={SECRET}"),
            "automation@pve\\u0021ci".to_owned(),
            "automation@pve".to_owned(),
            "automation@pve!ci".to_owned(),
            "root@pam".to_owned(),
            "root@pam!ci".to_owned(),
            "ci".to_owned(),
            "https://pve.lan:8006".to_owned(),
            "https://pve.lan:8006/api2/json".to_owned(),
            "VM.Monitor".to_owned(),
            SECRET.to_owned(),
            format!("automation@pve!ci={SECRET}"),
            "true".to_owned(),
            "false".to_owned(),
        ];
        let companions: [&[(&str, &str)]; 3] =
            [&[], &[("PROXMOX_USER", "automation@pve")], &[("PROXMOX_USERNAME", "automation@pve!ci")]];
        let mut ids = std::collections::BTreeSet::new();
        for name in pvetoken_render::consumers::environment_variables() {
            for value in &values {
                for companion in companions {
                    let mut vars: Vec<(String, String)> = companion
                        .iter()
                        .filter(|(other, _)| *other != name)
                        .map(|(other, v)| ((*other).to_owned(), (*v).to_owned()))
                        .collect();
                    vars.push((name.to_owned(), value.clone()));
                    ids.extend(super::environment::check(&vars, None).into_iter().map(|finding| finding.id));
                }
            }
        }
        ids
    }

    #[test]
    fn the_lint_rules_doctor_relays_on_consumer_variables_are_exactly_the_declared_env_ids() {
        let produced = environment_lint_ids();
        let declared: std::collections::BTreeSet<String> = super::ALL_IDS
            .iter()
            .filter(|id| id.starts_with("env-"))
            .filter(|id| ![super::id::ENV_USER_NOT_TOKEN_OWNER, super::id::ENV_STALE_SECRET].contains(id))
            .map(|id| (*id).to_owned())
            .collect();
        assert_eq!(produced, declared, "env-<rule> ids reachable from consumer variables vs the declared ones");
    }

    #[test]
    fn every_declared_id_is_used_by_the_code() {
        let lint_ids = environment_lint_ids();
        let named = super::id::NAMED.iter().map(|named| ("id", named));
        let explained = super::explanation_id::NAMED.iter().map(|named| ("explanation_id", named));
        for (module, (name, id)) in named.chain(explained) {
            let by_constant = format!("{module}::{name}");
            let used = lint_ids.contains(*id)
                || SOURCES.iter().any(|(_, source)| {
                    let code = code(source);
                    code.contains(&format!("\"{id}\""))
                        || code.match_indices(&by_constant).any(|(at, _)| {
                            let next = code[at + by_constant.len()..].chars().next();
                            !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                        })
                });
            assert!(used, "{module}::{name} (`{id}`) is declared but nothing emits it");
        }
    }
}
