//! Token file checks: exists, is a regular file, mode 0600, owned by whoever runs the consumers, parses strictly,
//! and each value has the format its consumers need.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use pvetoken_api::ExposeSecret;
use pvetoken_render::{TokenFile, TokenFileError};

use super::{Finding, Severity, id};
use pvetoken_lifecycle::token_store;

const CHECK: &str = "token-file";

/// The checks' result: findings, and the token when the file could be read.
pub struct TokenFileCheck {
    /// What was found.
    pub findings: Vec<Finding>,
    /// The parsed token (when readable and valid).
    pub token: Option<TokenFile>,
}

/// Checks the token file at `path`; `profile` names the profile in the fix commands.
pub fn check(path: &Path, profile: &str) -> TokenFileCheck {
    let shown = path.display();
    let create =
        format!("pvetoken create --profile {profile} --token-file {shown}   (creates the token, writes the file 0600)");
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let finding = Finding::new(id::TOKEN_FILE_MISSING, Severity::Blocking, CHECK, format!("{shown} does not exist"))
                .why(
                    "every consumer step (register, render, verify) reads the token from this file; the guest-side \
                     registration silently does nothing without it",
                )
                .fix(format!("pveum user token add automation@pve {profile} --privsep 1 --output-format json   (then write the file by hand, mode 0600)"))
                .fix(create)
                .fix("or, for a token made on the PVE host: pvetoken deliver --vmid VMID   (writes it into the guest)");
            return TokenFileCheck { findings: vec![finding], token: None };
        }
        Err(error) => {
            let finding = Finding::new(
                id::TOKEN_FILE_UNREADABLE,
                Severity::Blocking,
                CHECK,
                format!("cannot read {shown}: {error}"),
            )
            .why("the token cannot be used from here")
            .fix(format!("ls -l {shown}; run as the file's owner (or root)"));
            return TokenFileCheck { findings: vec![finding], token: None };
        }
    };
    if !metadata.is_file() {
        let finding = Finding::new(
            id::TOKEN_FILE_NOT_A_FILE,
            Severity::Blocking,
            CHECK,
            format!("{shown} is not a regular file"),
        )
        .why("a token file is one regular file of KEY='value' lines")
        .fix(format!("remove it, then: {create}"));
        return TokenFileCheck { findings: vec![finding], token: None };
    }
    let mut findings = Vec::new();
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        findings.push(
            Finding::new(
                id::TOKEN_FILE_MODE,
                Severity::Blocking,
                CHECK,
                format!("{shown} has mode {mode:04o}: group or others can access the token secret"),
            )
            .why(
                "anyone who can read it can act as the token; pvetoken refuses such a file (as ssh refuses a \
                 readable private key)",
            )
            .fix(format!("chmod 600 {shown}"))
            .fix(format!("pvetoken rotate --token-file {shown}   (after chmod: the secret may already have leaked)")),
        );
        return TokenFileCheck { findings, token: None };
    }
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if let Some(me) = me
        && metadata.uid() != me
        && me != 0
    {
        findings.push(
            Finding::new(
                id::TOKEN_FILE_OWNER,
                Severity::Warning,
                CHECK,
                format!("{shown} belongs to uid {}, not to the user running doctor (uid {me})", metadata.uid()),
            )
            .why("the consumers run as some user; with mode 0600 only the owner can read the file")
            .fix(format!("chown $(id -un) {shown}   (as root), or run the consumers as uid {}", metadata.uid())),
        );
    }
    let text = match token_store::read_private(path, "token file") {
        Ok(text) => text,
        Err(error) => {
            findings.push(
                Finding::new(id::TOKEN_FILE_UNREADABLE, Severity::Blocking, CHECK, error.message)
                    .why("the token cannot be used from here")
                    .fix(error.hint.unwrap_or_else(|| format!("ls -l {shown}"))),
            );
            return TokenFileCheck { findings, token: None };
        }
    };
    let token = match TokenFile::parse(&text) {
        Ok(token) => token,
        Err(error) => {
            findings.push(parse_finding(&error, path, &create));
            return TokenFileCheck { findings, token: None };
        }
    };
    findings.extend(value_findings(&token, path, profile));
    let blocked = findings.iter().any(|finding| finding.severity == Severity::Blocking);
    TokenFileCheck { findings, token: (!blocked).then_some(token) }
}

fn parse_finding(error: &TokenFileError, path: &Path, create: &str) -> Finding {
    let shown = path.display();
    let (id, why) = match error {
        TokenFileError::Missing { .. } => (
            id::TOKEN_FILE_MISSING_KEY,
            "consumers and pvetoken need PROXMOX_HOST (or PROXMOX_URL), PROXMOX_NODE, PROXMOX_TOKEN_ID and \
             PROXMOX_TOKEN_SECRET",
        ),
        TokenFileError::Invalid { .. } => (
            id::TOKEN_FILE_BAD_VALUE,
            "a consumer given this value fails (401, wrong server, or a refused certificate)",
        ),
        _ => (
            id::TOKEN_FILE_SYNTAX,
            "the file must be KEY='value' lines that need no shell to read; pvetoken never runs a shell on it",
        ),
    };
    Finding::new(id, Severity::Blocking, CHECK, format!("{shown}: {error}"))
        .why(why)
        .fix(format!("fix the line named above in {shown}, or recreate the file: {create}"))
}

/// The format of each value beyond what the parser enforces.
fn value_findings(token: &TokenFile, path: &Path, profile: &str) -> Vec<Finding> {
    let shown = path.display();
    let mut findings = Vec::new();
    let secret = token.secret.expose_secret();
    if secret.starts_with("PVEAPIToken") || secret.contains('!') || secret.contains('=') {
        findings.push(
            Finding::new(
                id::TOKEN_SECRET_FORMAT,
                Severity::Blocking,
                CHECK,
                "PROXMOX_TOKEN_SECRET holds a whole token string (`PVEAPIToken=` / `user@realm!name=`), not the \
                 secret alone",
            )
            .why("every consumer adds the id itself: PVE receives a wrong secret and answers 401")
            .fix(format!("edit {shown}: PROXMOX_TOKEN_SECRET='<the UUID after the last =>'"))
            .fix(format!(
                "pvetoken rotate --token-file {shown}   (with admin credentials: a fresh secret, the file rewritten)"
            )),
        );
    } else if !is_uuid(secret) {
        findings.push(
            Finding::new(
                id::TOKEN_SECRET_FORMAT,
                Severity::Warning,
                CHECK,
                "PROXMOX_TOKEN_SECRET is not a UUID (PVE's token secrets always are)",
            )
            .why("a truncated or mistyped secret gives 401 `invalid token value`")
            .fix(format!("pvetoken rotate --token-file {shown}   (issues a fresh secret)")),
        );
    }
    if !token.node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        findings.push(
            Finding::new(
                id::TOKEN_NODE_FORMAT,
                Severity::Error,
                CHECK,
                format!("PROXMOX_NODE `{}` is not a PVE node name", token.node),
            )
            .why("consumers building on this node get 400/404")
            .fix("on the PVE host: pvesh get /nodes --output-format json")
            .fix(format!("pvetoken create --profile {profile} --token-file {shown}   (detects the node)")),
        );
    }
    if token.token_id.user_str() == "root@pam" {
        findings.push(
            Finding::new(
                id::TOKEN_OF_ROOT,
                Severity::Warning,
                CHECK,
                format!("{} is a token of root@pam", token.token_id),
            )
            .why("a root token with privsep=0 can do everything; a leak is a full compromise")
            .fix(format!("pvetoken create --profile {profile} --user automation@pve   (a least-privilege token)"))
            .fix(format!("pvetoken revoke {}", token.token_id)),
        );
    }
    if token.tls_insecure {
        findings.push(
            Finding::new(
                id::TOKEN_FILE_INSECURE,
                Severity::Warning,
                CHECK,
                "PROXMOX_TLS_INSECURE is set: consumers skip certificate verification",
            )
            .why("anyone on the path can read the secret from the Authorization header")
            .fix("on the PVE host: pvenode cert info --output-format json")
            .fix(format!("pvetoken create --profile {profile} --fingerprint SHA256   (pins the certificate)")),
        );
    }
    findings
}

/// `8-4-4-4-12` hexadecimal digits.
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}
