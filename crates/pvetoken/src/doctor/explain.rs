//! `pvetoken doctor --explain-error`: from an error text that PVE or a consumer (Packer, Terraform, Ansible,
//! Semaphore, curl, cloud-init) printed, to what it means and the fix. Pure: the command adds the live check of a
//! named privilege on a named path with the token file's token.
//!
//! Recognised (see `peers.md` §4 and the design notes' troubleshooting sections):
//! `Permission check failed (PATH, PRIV|PRIV)`, `authentication failure` / `invalid token value` / `no such token`
//! / `No ticket` (401), `invalid privilege 'X'`, `no such user (user@realm!id@realm)` (the community.proxmox
//! id mix-up), `does not look like a valid user name`, `PVEAPIToken=PVEAPIToken=`, x509 / certificate-verify / 596
//! TLS failures, Packer's `PARTUUID does not exist` and `Timeout waiting for SSH`, exit status 2 of
//! `cloud-init status --wait`, and Semaphore's `invalid environment secret type` and
//! `Environment ID in body and URL must be the same`.

use serde::Serialize;

use super::explanation_id;
use super::knowledge::{self, PrivilegeFacts};

/// What the explanation may use to make fixes concrete.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The token id of the token file, when one is readable.
    pub token_id: Option<String>,
    /// The profile to name in `pvetoken` commands (default `packer`-like: the token name).
    pub profile: Option<String>,
    /// The custom role holding the profile's privileges (default `Token-<profile>`).
    pub role: Option<String>,
}

impl Context {
    fn profile(&self) -> String {
        self.profile
            .clone()
            .or_else(|| {
                self.token_id
                    .as_deref()
                    .and_then(|id| id.rsplit_once('!'))
                    .map(|(_, name)| pvetoken_lifecycle::token::rotation_base(name).to_owned())
            })
            .unwrap_or_else(|| "PROFILE".to_owned())
    }

    fn role(&self) -> String {
        self.role.clone().unwrap_or_else(|| format!("Token-{}", self.profile()))
    }
}

/// A `Permission check failed (PATH, PRIVS)` parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionCheck {
    /// The ACL path, e.g. `/vms/100`.
    pub path: String,
    /// The privileges named.
    pub privileges: Vec<String>,
    /// True for `A|B` (any one is enough), false for a single privilege or `A&B`.
    pub any_of: bool,
}

/// One recognised error.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// Stable identifier, e.g. `pve-permission-check-failed`.
    pub id: &'static str,
    /// The part of the input that was recognised.
    pub matched: String,
    /// What it means.
    pub meaning: String,
    /// The likely cause(s).
    pub why: String,
    /// The fix, in order: `pveum`/config changes, then the `pvetoken` command.
    pub fix: Vec<String>,
    /// The parsed permission check, for the live check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_check: Option<PermissionCheck>,
    /// Facts about the privileges named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub privileges: Vec<PrivilegeFacts>,
}

impl Explanation {
    fn new(id: &'static str, matched: impl Into<String>, meaning: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            id,
            matched: matched.into(),
            meaning: meaning.into(),
            why: why.into(),
            fix: Vec::new(),
            permission_check: None,
            privileges: Vec::new(),
        }
    }

    fn fix(mut self, command: impl Into<String>) -> Self {
        self.fix.push(command.into());
        self
    }
}

/// Recognises every known error in `text` (several may appear in one log), in the order of the recognisers.
pub fn explain(text: &str, context: &Context) -> Vec<Explanation> {
    let mut out = Vec::new();
    permission_checks(text, context, &mut out);
    authentication(text, context, &mut out);
    invalid_privilege(text, context, &mut out);
    no_such_user(text, &mut out);
    not_a_user_name(text, &mut out);
    double_prefix(text, &mut out);
    tls(text, &mut out);
    packer(text, context, &mut out);
    cloud_init(text, &mut out);
    semaphore(text, &mut out);
    out
}

/// Case-insensitive find, returning the byte offset in `text`.
fn find(text: &str, needle: &str) -> Option<usize> {
    text.to_ascii_lowercase().find(&needle.to_ascii_lowercase())
}

/// Secret-shaped parts of an error text, masked before anything is echoed: PVE token secrets (UUIDs), the value
/// after a token id (`user@realm!name=VALUE`), tickets (`PVE:user@realm:...`), and the value of a `KEY=`/`KEY:`
/// whose name ends in password, secret, token, ticket or cookie (`PROXMOX_TOKEN_ID=` is an id and stays;
/// `PVEAPIToken=` is followed by the token id, whose secret the second rule masks).
static SECRET_SHAPES: std::sync::LazyLock<[regex::Regex; 4]> = std::sync::LazyLock::new(|| {
    [
        r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        r#"(![A-Za-z0-9_.-]+=)[^\s'"&,;]+"#,
        r#"\bPVE:[^\s'";]+"#,
        r#"(?i)((?:password|passwd|secret|token|ticket|cookie|csrfpreventiontoken)["']?\s*[=:]\s*["']?)[^\s'"&,;]+"#,
    ]
    .map(|pattern| regex::Regex::new(pattern).expect("a valid static pattern"))
});

/// `text` with every secret-shaped part masked (see [`SECRET_SHAPES`]).
pub fn redact_secrets(text: &str) -> String {
    let [uuid, after_token_id, ticket, keyed] = &*SECRET_SHAPES;
    let out = uuid.replace_all(text, "<redacted>");
    let out = after_token_id.replace_all(&out, "${1}<redacted>");
    let out = ticket.replace_all(&out, "PVE:<redacted>");
    keyed
        .replace_all(&out, |caps: &regex::Captures<'_>| {
            let whole = caps.get(0).map_or(0..0, |m| m.range());
            if out[..whole.start].to_ascii_lowercase().ends_with("pveapi") {
                caps[0].to_owned()
            } else {
                format!("{}<redacted>", &caps[1])
            }
        })
        .into_owned()
}

/// The line of `text` around `offset`, trimmed, secrets masked and shortened for display.
fn line_at(text: &str, offset: usize) -> String {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = redact_secrets(text[start..end].trim());
    let line = line.as_str();
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// Parses `PATH, PRIV|PRIV` (the inside of PVE's parentheses).
pub fn parse_permission_check(inside: &str) -> Option<PermissionCheck> {
    let (path, privileges) = inside.split_once(',')?;
    let path = path.trim();
    if !path.starts_with('/') {
        return None;
    }
    let privileges = privileges.trim();
    let any_of = privileges.contains('|');
    let list: Vec<String> = privileges
        .split(['|', '&'])
        .map(str::trim)
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'))
        .map(str::to_owned)
        .collect();
    if list.is_empty() {
        return None;
    }
    Some(PermissionCheck { path: path.to_owned(), privileges: list, any_of })
}

fn permission_checks(text: &str, context: &Context, out: &mut Vec<Explanation>) {
    const NEEDLE: &str = "permission check failed (";
    let lower = text.to_ascii_lowercase();
    let mut seen = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find(NEEDLE) {
        let start = from + found + NEEDLE.len();
        let Some(close) = text[start..].find(')') else { break };
        let inside = &text[start..start + close];
        from = start + close;
        if seen.iter().any(|done: &String| done == inside) {
            continue;
        }
        seen.push(inside.to_owned());
        let matched = format!("Permission check failed ({inside})");
        let Some(check) = parse_permission_check(inside) else {
            out.push(
                Explanation::new(
                    explanation_id::PVE_PERMISSION_CHECK_FAILED,
                    matched,
                    format!("PVE refused the call: the check `{inside}` failed"),
                    "this check is not about a privilege on a path: it usually needs root@pam (a ticket, not a \
                     token) or a different user",
                )
                .fix("run this step as root@pam with a password login, or see the endpoint's permission rule"),
            );
            continue;
        };
        let facts: Vec<PrivilegeFacts> = check.privileges.iter().map(|name| knowledge::facts(name)).collect();
        let wanted = if check.any_of {
            format!("any one of {}", check.privileges.join(", "))
        } else {
            check.privileges.join(" and ")
        };
        let mut meaning = format!(
            "HTTP 403: the caller (user or API token) lacks {wanted} on {} (or on a parent path with propagation).",
            check.path
        );
        for fact in &facts {
            meaning.push_str(&format!(" {}.", fact.sentence()));
        }
        let mut why = "the role granted on this path does not contain the privilege, or the ACL is missing; for an \
                       API token with privilege separation (privsep=1) the privilege must be granted to BOTH the \
                       user and the token (the token gets the intersection)"
            .to_owned();
        if check.privileges.iter().any(|name| name.starts_with("VM.GuestAgent.")) {
            why.push_str(
                ". PVE 9 moved guest-agent calls from VM.Monitor to VM.GuestAgent.*: a role written for PVE 8 \
                 lacks them. Packer reports this as an SSH timeout (it cannot read the VM's IP from the agent)",
            );
        }
        // Grant the first (least powerful) of the alternatives.
        let grant = &check.privileges[0];
        let acl_path = broad_path(&check.path);
        let mut explanation = Explanation::new(explanation_id::PVE_PERMISSION_CHECK_FAILED, matched, meaning, why);
        explanation.fix = knowledge::privilege_fix(
            grant,
            &acl_path,
            &context.role(),
            context.token_id.as_deref(),
            &context.profile(),
        );
        explanation.permission_check = Some(check);
        explanation.privileges = facts;
        out.push(explanation);
    }
}

/// `/vms/123` → `/vms` (profiles grant on the collection with propagation); other paths stay.
fn broad_path(path: &str) -> String {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["vms", id] if id.chars().all(|c| c.is_ascii_digit()) => "/vms".to_owned(),
        _ => path.to_owned(),
    }
}

fn authentication(text: &str, context: &Context, out: &mut Vec<Explanation>) {
    let profile = context.profile();
    let rotate = "pvetoken rotate   (new secret, saved to the token file and pushed to registered sinks)";
    if let Some(at) = find(text, "invalid token value") {
        out.push(
            Explanation::new(
                explanation_id::PVE_401_INVALID_TOKEN_VALUE,
                line_at(text, at),
                "HTTP 401: the token exists, but the secret sent is not its secret",
                "the secret was rotated or regenerated elsewhere, copied incompletely, or the consumer got the \
                 wrong part of the token string (e.g. `PVEAPIToken=...` or `user@realm!name=` in a variable that \
                 must hold the secret only)",
            )
            .fix("pvetoken doctor   (checks the token file and the consumers' environment variables)")
            .fix(rotate),
        );
    } else if let Some(at) = find(text, "no such token") {
        out.push(
            Explanation::new(
                explanation_id::PVE_401_NO_SUCH_TOKEN,
                line_at(text, at),
                "HTTP 401: PVE has no token with that name for that user",
                "the token was revoked or rotated to a new name (`NAME-rN` before PVE 9.1), or the token id is \
                 split wrongly (user and token name swapped, name given as `user@realm!name`)",
            )
            .fix("pveum user token list USER@REALM --output-format json")
            .fix(format!("pvetoken create --profile {profile}   (recreates it and rewrites the token file)")),
        );
    } else if let Some(at) = find(text, "no ticket") {
        out.push(
            Explanation::new(
                explanation_id::PVE_401_NO_TICKET,
                line_at(text, at),
                "HTTP 401: the request carried no credentials at all",
                "the consumer did not send an Authorization header: its token variables are empty or named \
                 differently than it expects (e.g. PROXMOX_VE_API_TOKEN for bpg, PROXMOX_USERNAME + PROXMOX_TOKEN \
                 for Packer)",
            )
            .fix("pvetoken doctor   (lists the consumers' variables found in this shell)")
            .fix("pvetoken render --format packer|terraform-bpg|ansible-env"),
        );
    } else if let Some(at) = find(text, "authentication failure").or_else(|| find(text, "401 unauthorized")) {
        out.push(
            Explanation::new(
                explanation_id::PVE_401_AUTHENTICATION_FAILURE,
                line_at(text, at),
                "HTTP 401: PVE refused the credentials (it gives the same answer for every cause, on purpose)",
                "a wrong secret or password; a token or user that expired, was disabled or deleted; a password \
                 login attempted with a token id as user name; or the wrong realm (`@pam` vs `@pve`)",
            )
            .fix("pvetoken doctor   (tests the token file's token against the server and its expiry)")
            .fix(rotate),
        );
    }
}

fn invalid_privilege(text: &str, context: &Context, out: &mut Vec<Explanation>) {
    let Some(at) = find(text, "invalid privilege '") else { return };
    let start = at + "invalid privilege '".len();
    let name: String = text[start..].chars().take_while(|c| *c != '\'').collect();
    let facts = knowledge::facts(&name);
    let profile = context.profile();
    let mut explanation = Explanation::new(
        explanation_id::PVE_INVALID_PRIVILEGE,
        line_at(text, at),
        format!("HTTP 400: this PVE release does not know the privilege {name}. {}.", facts.sentence()),
        if name == "VM.Monitor" {
            "the role was written for PVE 8: PVE 9.0 dropped VM.Monitor (pve8to9 flags such roles); guest-agent \
             calls now need VM.GuestAgent.Audit (read) up to VM.GuestAgent.Unrestricted, the QEMU monitor \
             Sys.Audit / Sys.Modify"
                .to_owned()
        } else if facts.known_on.is_empty() {
            "the name is misspelt (privilege names are case-sensitive)".to_owned()
        } else {
            format!("the role was written for another release: {name} exists on PVE {}", facts.known_on.join(", "))
        },
    );
    if name == "VM.Monitor" {
        explanation = explanation.fix(format!(
            "pveum role modify {} --privs '<the list without VM.Monitor>,VM.GuestAgent.Audit'",
            context.role()
        ));
    } else {
        explanation =
            explanation.fix(format!("pveum role modify {} --privs '<the list without {name}>'", context.role()));
    }
    explanation = explanation
        .fix(format!("pvetoken create --profile {profile}   (picks the privilege names of the server's release)"))
        .fix("pvetoken lint   (finds VM.Monitor in role definitions meant for PVE 9)");
    explanation.privileges = vec![facts];
    out.push(explanation);
}

fn no_such_user(text: &str, out: &mut Vec<Explanation>) {
    let Some(at) = find(text, "no such user (") else { return };
    let start = at + "no such user (".len();
    let inside: String = text[start..].chars().take_while(|c| *c != ')').collect();
    let Some((user, token_part)) = inside.split_once('!') else {
        out.push(
            Explanation::new(
                explanation_id::PVE_NO_SUCH_USER,
                line_at(text, at),
                format!("PVE has no user {inside}"),
                "the user was never created, was deleted, or the realm is wrong (`@pam` is a Linux account, `@pve` \
                 a PVE-only user)",
            )
            .fix("pveum user list --output-format json")
            .fix("pvetoken create --profile PROFILE --user USER@pve"),
        );
        return;
    };
    let name = token_part.rsplit_once('!').map_or(token_part, |(_, name)| name);
    let mixed = token_part.contains('@') || token_part.contains('!');
    let (meaning, fixes) = if mixed {
        (
            format!(
                "the token id `{inside}` was glued together from two fields that both hold an id: `{user}` as the \
                 user and `{token_part}` as the token name"
            ),
            vec![
                format!(
                    "community.proxmox: api_user / PROXMOX_USER = the token's owner (user@realm), api_token_id / \
                     PROXMOX_TOKEN_ID = the token NAME only (e.g. `{}`), not `user@realm!name`",
                    name.rsplit_once('@').map_or(name, |(n, _)| n)
                ),
                "pvetoken render --format ansible-env   (or --format ansible-vars: the split the modules expect)"
                    .to_owned(),
            ],
        )
    } else {
        (
            format!("PVE has no user {user} owning a token {token_part}"),
            vec![
                format!("pveum user token list {user} --output-format json"),
                "pvetoken render --format ansible-env".to_owned(),
            ],
        )
    };
    let mut explanation = Explanation::new(
        explanation_id::ANSIBLE_TOKEN_ID_MIXUP,
        line_at(text, at),
        meaning,
        "community.proxmox builds the token id as `api_user!api_token_id`; the design note's PROXMOX_TOKEN_ID holds \
         the FULL id while community.proxmox's PROXMOX_TOKEN_ID is the name only, so reusing the same variable gives \
         `user@realm!user@realm!name`-like ids",
    );
    explanation.fix = fixes;
    out.push(explanation);
}

fn not_a_user_name(text: &str, out: &mut Vec<Explanation>) {
    let Some(at) = find(text, "does not look like a valid user name") else { return };
    out.push(
        Explanation::new(
            explanation_id::PVE_TOKEN_ID_AS_USER_NAME,
            line_at(text, at),
            "an endpoint that wants a user name got a token id (`user@realm!name`)",
            "password login (`/access/ticket`), `vncshell`/`termproxy` and a few other endpoints do not accept API \
             tokens; or the consumer put the token id in its user field with token authentication switched off",
        )
        .fix("use the consumer's token fields (Packer: username = user@realm!name + token = secret)")
        .fix("pvetoken render --format packer|terraform-bpg|ansible-env"),
    );
}

fn double_prefix(text: &str, out: &mut Vec<Explanation>) {
    let Some(at) = find(text, "PVEAPIToken=PVEAPIToken=") else { return };
    out.push(
        Explanation::new(
            explanation_id::TOKEN_DOUBLE_PREFIX,
            line_at(text, at),
            "the Authorization header carries `PVEAPIToken=` twice",
            "a variable holding the full header value (`PVEAPIToken=user@realm!name=secret`) was given to a \
             consumer that adds the prefix itself (bpg's api_token, scripts building the header)",
        )
        .fix("PROXMOX_VE_API_TOKEN / api_token = `user@realm!name=secret` (no prefix)")
        .fix("pvetoken render --format terraform-bpg")
        .fix("pvetoken lint"),
    );
}

fn tls(text: &str, out: &mut Vec<Explanation>) {
    let needles = [
        "x509: certificate signed by unknown authority",
        "certificate verify failed",
        "certificate_verify_failed",
        "self signed certificate",
        "self-signed certificate",
        "unknownissuer",
        "596 ",
    ];
    let Some(at) = needles.iter().find_map(|needle| find(text, needle)) else { return };
    out.push(
        Explanation::new(
            explanation_id::TLS_UNKNOWN_AUTHORITY,
            line_at(text, at),
            "the consumer does not trust the PVE server's certificate (PVE's default certificate is signed by the \
             cluster's own CA, which no system trusts; `596` is pveproxy failing TLS towards another node)",
            "the server uses its self-signed certificate and the consumer verifies against the system roots",
        )
        .fix("on the PVE host: pvenode cert info --output-format json   (the fingerprint of pve-ssl.pem)")
        .fix("trust the cluster CA: copy /etc/pve/pve-root-ca.pem here (Ansible ca_path, pvetoken --ca-file)")
        .fix("pvetoken create ... --fingerprint SHA256   (pins it in the token file; `pvetoken doctor` checks it)")
        .fix("only if no CA option exists (Packer): insecure_skip_tls_verify = true, on a trusted network"),
    );
}

fn packer(text: &str, context: &Context, out: &mut Vec<Explanation>) {
    if let Some(at) = find(text, "PARTUUID does not exist") {
        out.push(
            Explanation::new(
                explanation_id::PACKER_LINKED_CLONE_PARTUUID,
                line_at(text, at),
                "the cloned VM cannot find its root disk at boot (\"Dropping to a shell!\")",
                "a linked clone of the template: the disk the boot loader points at is not the clone's",
            )
            .fix("in the proxmox-clone source: full_clone = true")
            .fix("pvetoken lint packer/   (flags a clone without full_clone)"),
        );
    }
    if let Some(at) = find(text, "Timeout waiting for SSH").or_else(|| find(text, "timeout waiting for ssh")) {
        let profile = context.profile();
        out.push(
            Explanation::new(
                explanation_id::PACKER_SSH_TIMEOUT,
                line_at(text, at),
                "Packer never connected over SSH",
                "with the Proxmox builder the usual cause is that Packer cannot read the VM's IP from the guest \
                 agent: on PVE 9 the token lacks VM.GuestAgent.Audit (on PVE 8: VM.Monitor), and the 403 is only \
                 in Packer's debug log; otherwise the guest agent is not running or the network is wrong",
            )
            .fix(format!("pvetoken verify --profile {profile}   (predicts the 403 before the build)"))
            .fix(format!("pveum role modify {} --append 1 --privs VM.GuestAgent.Audit", context.role())),
        );
    }
}

fn cloud_init(text: &str, out: &mut Vec<Explanation>) {
    let lower = text.to_ascii_lowercase();
    let exit_two = ["exit status: 2", "exit status 2", "exit code 2", "exit code: 2", "exited with 2"]
        .iter()
        .find_map(|needle| lower.find(needle));
    let Some(at) = exit_two else { return };
    if !(lower.contains("cloud-init") || lower.contains("non-zero exit status")) {
        return;
    }
    out.push(
        Explanation::new(
            explanation_id::CLOUD_INIT_EXIT_2,
            line_at(text, at),
            "`cloud-init status --wait` returned 2: cloud-init finished \"degraded done\", not failed",
            "cloud-init finished with recoverable warnings, typically deprecation warnings about the Proxmox-generated \
             user-data (`user` instead of `users`)",
        )
        .fix("in the Packer shell provisioner: valid_exit_codes = [0, 2]")
        .fix("pvetoken lint packer/   (flags `cloud-init status --wait` without exit code 2 accepted)"),
    );
}

fn semaphore(text: &str, out: &mut Vec<Explanation>) {
    if let Some(at) = find(text, "invalid environment secret type") {
        out.push(
            Explanation::new(
                explanation_id::SEMAPHORE_SECRET_TYPE,
                line_at(text, at),
                "Semaphore refused an environment secret without a valid `type`",
                "each secret needs type \"env\" (becomes an environment variable of the task) or \"var\" (an Ansible \
                 extra var); PrivateBox's first payload sent none",
            )
            .fix("pvetoken register semaphore --project ID   (sends type env, reads the environment back)"),
        );
    }
    if let Some(at) = find(text, "Environment ID in body and URL must be the same") {
        out.push(
            Explanation::new(
                explanation_id::SEMAPHORE_ENVIRONMENT_ID,
                line_at(text, at),
                "Semaphore refused an environment update whose body lacks the environment's `id`",
                "PUT /api/project/P/environment/ID needs `id` = ID in the JSON body",
            )
            .fix("pvetoken register semaphore --project ID   (idempotent create-or-update)"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{Context, explain, parse_permission_check};

    #[test]
    fn permission_check_with_alternatives_parses_path_and_both_privileges() {
        let check = parse_permission_check("/vms/100, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted").expect("parses");
        assert_eq!(check.path, "/vms/100");
        assert_eq!(check.privileges, ["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"]);
        assert!(check.any_of);
    }

    #[test]
    fn secrets_in_echoed_lines_are_masked_and_ids_are_kept() {
        let secret = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
        for line in [
            format!("Authorization: PVEAPIToken=PVEAPIToken=a@pve!b={secret}"),
            "Authorization: PVEAPIToken=a@pve!b=not-a-uuid-secret".to_owned(),
            "PROXMOX_TOKEN=not-a-uuid-secret PROXMOX_USERNAME=a@pve!b".to_owned(),
            "Cookie: PVEAuthCookie=PVE:root@pam:65A1B2C3::c2lnbmF0dXJl".to_owned(),
            r#"{"password": "not-a-uuid-secret"}"#.to_owned(),
            format!("token secret {secret} was refused"),
        ] {
            let masked = super::redact_secrets(&line);
            assert!(!masked.contains(secret) && !masked.contains("not-a-uuid-secret"), "{line} -> {masked}");
            assert!(!masked.contains("c2lnbmF0dXJl"), "{line} -> {masked}");
            assert!(masked.contains("<redacted>"), "{line} -> {masked}");
        }
        let ids = "PROXMOX_TOKEN_ID=automation@pve!packer on /vms/100";
        assert_eq!(super::redact_secrets(ids), ids);
        let explained =
            explain(&format!("Authorization: PVEAPIToken=PVEAPIToken=a@pve!b={secret}"), &Context::default());
        assert_eq!(explained.len(), 1);
        assert!(explained[0].matched.contains("a@pve!b=<redacted>"), "{}", explained[0].matched);
    }

    #[test]
    fn a_text_with_nothing_known_explains_nothing() {
        assert!(explain("everything is fine", &Context::default()).is_empty());
    }
}
