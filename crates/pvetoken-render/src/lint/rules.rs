//! The rules. Each looks at assignments by key (case-insensitive) and at lines; see the table in the module above.

use super::scan::{Assignment, Kind, Role, Scanned};
use super::{DirectoryContext, Finding, LintOptions, PveMajor, Severity};

/// Packer's secret-only settings (the plugin builds the header from `username` + `token`).
const PACKER_SECRET_KEYS: &[&str] = &["proxmox_token", "pkr_var_proxmox_token"];
/// Ansible / community.proxmox / proxmoxer secret-only settings.
const ANSIBLE_SECRET_KEYS: &[&str] =
    &["api_token_secret", "proxmox_token_secret", "token_secret", "token_value", "pm_api_token_secret"];
/// bpg's combined `user@realm!name=secret` (no prefix).
const BPG_TOKEN_KEYS: &[&str] =
    &["proxmox_ve_api_token", "pm_ve_api_token", "api_token", "proxmox_api_token", "tf_var_proxmox_api_token"];
/// Settings that must hold the full `user@realm!name`.
const FULL_ID_KEYS: &[&str] = &["pm_api_token_id", "proxmox_username", "pkr_var_proxmox_username"];
/// Settings that must hold the token name only.
const NAME_ONLY_KEYS: &[&str] = &["api_token_id", "proxmox_token_id"];
/// Settings that hold the owner `user@realm`.
const USER_KEYS: &[&str] = &["api_user", "proxmox_user", "pm_user"];
/// Settings whose URL must end in `/api2/json` (Packer, Telmate).
const API_PATH_KEYS: &[&str] = &["pm_api_url", "pkr_var_proxmox_url"];
/// bpg endpoints (no `/api2/json`).
const BPG_ENDPOINT_KEYS: &[&str] = &["proxmox_ve_endpoint", "pm_ve_endpoint", "proxmox_endpoint"];
/// `true` turns verification off.
const INSECURE_TRUE_KEYS: &[&str] = &[
    "insecure_skip_tls_verify",
    "pm_tls_insecure",
    "proxmox_ve_insecure",
    "proxmox_tls_insecure",
    "proxmox_skip_tls_verify",
    "proxmox_insecure",
    "tls_insecure",
];
/// `false` turns verification off.
const VERIFY_FALSE_KEYS: &[&str] = &["validate_certs", "proxmox_validate_certs", "verify_ssl"];

const PIN_FIX: &str = "keep verification on and trust the server instead: pin its certificate \
                       (`pvetoken create --fingerprint SHA256`) and give consumers the CA file \
                       (PROXMOX_CA_FILE → Ansible ca_path, SSL_CERT_FILE for Packer/Terraform)";

fn finding(a: &Assignment, rule: &'static str, severity: Severity, message: String, fix: &str) -> Finding {
    Finding { line: a.line, column: a.column, rule, severity, message, fix: fix.to_owned() }
}

fn is(key: &str, table: &[&str]) -> bool {
    table.contains(&key)
}

/// Keys some rule judges only by their file's role or neighbours (Packer's `token` and `username`, the inventory
/// plugin's `user` and `token_id`, `proxmox_url` in a Packer or SOPS file).
const CONTEXT_KEYS: &[&str] = &["proxmox_url", "token", "username", "user", "token_id"];

/// Whether a rule looks at the value of `key` (any case).
pub(crate) fn judges(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        PACKER_SECRET_KEYS,
        ANSIBLE_SECRET_KEYS,
        BPG_TOKEN_KEYS,
        FULL_ID_KEYS,
        NAME_ONLY_KEYS,
        USER_KEYS,
        API_PATH_KEYS,
        BPG_ENDPOINT_KEYS,
        INSECURE_TRUE_KEYS,
        VERIFY_FALSE_KEYS,
        CONTEXT_KEYS,
    ]
    .iter()
    .any(|table| is(&key, table))
}

/// Collects directory-wide facts.
pub fn learn(context: &mut DirectoryContext, file: &Scanned) {
    if file.role != Role::Terraform {
        return;
    }
    for a in &file.assignments {
        if a.key_lower() == "endpoint"
            && let Some(name) = a.value.strip_prefix("var.")
        {
            context.bpg_endpoint_vars.insert(name.trim().to_owned());
        }
    }
}

/// What a rule sees of one assignment.
struct Site<'a> {
    file: &'a Scanned,
    context: &'a DirectoryContext,
    facts: Facts,
    a: &'a Assignment,
    /// The key as judged, lower case (`default` inside `variable "NAME"` is NAME).
    key: String,
    /// The key as written, for messages.
    name: String,
    /// The value, trimmed.
    value: &'a str,
    /// The enclosing `variable "NAME"`, if any.
    variable: Option<&'a str>,
}

/// Facts of the whole file that change how a key is read.
#[derive(Clone, Copy)]
struct Facts {
    packer_env: bool,
    community_env: bool,
    sops_schema: bool,
    inventory_plugin: bool,
    packer_token_set: bool,
}

/// Whether later rules still look at the assignment.
#[derive(PartialEq, Eq)]
enum Next {
    Continue,
    Stop,
}

/// One rule over assignments: its finding ids (the table in the module above), whether it judges only literal
/// values, and its check.
struct Rule {
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the test that keeps the table and the docs in step"))]
    ids: &'static [&'static str],
    literal_only: bool,
    check: fn(&Site<'_>, &mut Vec<Finding>) -> Next,
}

/// The assignment rules, in the order they run. A rule returning [`Next::Stop`] ends the assignment's checks.
const RULES: &[Rule] = &[
    Rule { ids: &["pveapitoken-prefix"], literal_only: false, check: pveapitoken_prefix },
    Rule { ids: &["token-id-escaped-bang"], literal_only: true, check: escaped_bang },
    Rule {
        ids: &[
            "token-id-not-full",
            "community-proxmox-token-id-full",
            "token-id-ambiguous",
            "token-id-not-name",
            "user-has-token-name",
        ],
        literal_only: true,
        check: token_id_shapes,
    },
    Rule { ids: &["pam-token-user"], literal_only: true, check: pam_token_user },
    Rule { ids: &["api-path-missing", "api-path-present"], literal_only: true, check: url_shapes },
    Rule { ids: &["insecure-tls"], literal_only: true, check: insecure_tls },
];

/// Runs every rule on one file.
pub fn check(file: &Scanned, context: &DirectoryContext, options: &LintOptions) -> Vec<Finding> {
    let mut out = Vec::new();
    let facts = Facts {
        packer_env: file.kind == Kind::Shell && (file.has_key("PROXMOX_USERNAME") || file.has_key("PROXMOX_TOKEN")),
        community_env: file.has_key("PROXMOX_USER"),
        sops_schema: file.kind == Kind::Yaml && file.has_key("proxmox_token_secret"),
        inventory_plugin: file.kind == Kind::Yaml
            && file.assignments.iter().any(|a| a.key_lower() == "plugin" && a.value.contains("proxmox")),
        packer_token_set: file.role == Role::Packer && file.has_key("token"),
    };
    for a in &file.assignments {
        // `default = ...` inside `variable "NAME" { }` is judged as NAME.
        let variable = a.block.and_then(|b| variable_name(&file.blocks[b].header));
        let (key, name) = match variable {
            Some(variable) if a.key_lower() == "default" => (variable.to_ascii_lowercase(), variable.to_owned()),
            _ => (a.key_lower(), a.key.clone()),
        };
        let site = Site { file, context, facts, a, key, name, value: a.value.trim(), variable };
        let judged = a.literal && !site.value.is_empty();
        for rule in RULES.iter().filter(|rule| judged || !rule.literal_only) {
            if (rule.check)(&site, &mut out) == Next::Stop {
                break;
            }
        }
    }

    // endpoint wired to home-infra's sops proxmox_url (which carries /api2/json, the Packer form)
    if file.role == Role::Terraform {
        for a in &file.assignments {
            if a.key_lower() == "endpoint"
                && a.value.contains("\"proxmox_url\"")
                && !a.value.contains("replace(")
                && !a.value.contains("trimsuffix(")
            {
                out.push(finding(
                    a,
                    "api-path-present",
                    Severity::Warning,
                    "bpg's endpoint reads proxmox_url, which the home-infra SOPS schema writes with /api2/json (the \
                     Packer form); bpg would call /api2/json/api2/json"
                        .to_owned(),
                    "strip it: `endpoint = trimsuffix(data.sops_file.x.data[\"proxmox_url\"], \"/api2/json\")`, or \
                     keep a separate bpg endpoint",
                ));
            }
        }
    }

    privileges(file, options, &mut out);
    if file.kind == Kind::Hcl {
        packer_clone(file, &mut out);
        cloud_init_wait(file, &mut out);
    }
    out
}

/// `pveapitoken-prefix`: a `PVEAPIToken=` header value in a variable (judged even in expressions).
fn pveapitoken_prefix(site: &Site<'_>, out: &mut Vec<Finding>) -> Next {
    let Site { file, a, key, name, value, .. } = site;
    if value.get(..12).is_some_and(|head| head.eq_ignore_ascii_case("PVEAPIToken=")) {
        if key.contains("header") || key.contains("authorization") {
            return Next::Stop;
        }
        let (message, fix) = if is(key, PACKER_SECRET_KEYS) || (file.role == Role::Packer && key == "token") {
            (
                format!("{} holds a `PVEAPIToken=...` header value; Packer wants the secret alone", name),
                "set the secret alone here and the full id `user@realm!name` as username/PROXMOX_USERNAME \
                 (`pvetoken render --format packer`)",
            )
        } else if is(key, ANSIBLE_SECRET_KEYS) {
            (
                format!("{} holds a `PVEAPIToken=...` header value; it must be the secret alone", name),
                "set the secret alone; the user and token name go in api_user and api_token_id \
                 (`pvetoken render --format ansible-vars`)",
            )
        } else if is(key, BPG_TOKEN_KEYS) {
            (
                format!(
                    "{} starts with `PVEAPIToken=`, which bpg adds itself (its pattern still accepts it, so this \
                     fails only at request time with 401)",
                    name
                ),
                "use `user@realm!name=secret` without the prefix; bpg reads it from PROXMOX_VE_API_TOKEN \
                 (`pvetoken render --format terraform-bpg`)",
            )
        } else {
            (
                format!(
                    "{} holds a `PVEAPIToken=...` header value; no Proxmox consumer reads a prefixed token from \
                     a variable (the prefix belongs only in the HTTP Authorization header)",
                    name
                ),
                "store the parts each consumer reads (`pvetoken render --format packer|terraform-bpg|\
                 ansible-env`) and build the header only where HTTP is sent",
            )
        };
        out.push(finding(a, "pveapitoken-prefix", Severity::Error, message, fix));
        return Next::Stop;
    }
    Next::Continue
}

/// `token-id-escaped-bang`: a `!` written as an escape that the reader never decodes (PrivateBox 97f1361: bash
/// kept `\u0021`).
fn escaped_bang(site: &Site<'_>, out: &mut Vec<Finding>) -> Next {
    let Site { a, key, name, value, .. } = site;
    let id_key = is(key, FULL_ID_KEYS)
        || is(key, BPG_TOKEN_KEYS)
        || is(key, NAME_ONLY_KEYS)
        || key == "username"
        || key == "token_id";
    if id_key && (value.contains("\\u0021") || value.contains("\\x21")) {
        out.push(finding(
            a,
            "token-id-escaped-bang",
            Severity::Error,
            format!(
                "{name} spells `!` as an escape sequence; shells, YAML single quotes and jq keep it literally, so \
                 the id reaches the consumer as `user@realm\\u0021name`"
            ),
            "write the `!` itself, inside single quotes in shell (`'automation@pve!ansible'`): `!` is valid in \
             JSON and YAML strings",
        ));
        return Next::Stop;
    }
    Next::Continue
}

/// `token-id-not-full`, `community-proxmox-token-id-full`, `token-id-ambiguous`, `token-id-not-name`,
/// `user-has-token-name`: the token id in the shape each consumer reads.
fn token_id_shapes(site: &Site<'_>, out: &mut Vec<Finding>) -> Next {
    let Site { file, a, key, name, value, facts, .. } = site;
    let Facts { community_env, inventory_plugin, packer_token_set, .. } = *facts;
    if (is(key, FULL_ID_KEYS) || (packer_token_set && key == "username" && value.contains('@')))
        && !value.contains('!')
        && !is_placeholder(value)
    {
        out.push(finding(
            a,
            "token-id-not-full",
            Severity::Error,
            format!("{} must be the full token id `user@realm!name` (it has no `!`)", name),
            "write `user@realm!name`, e.g. `automation@pve!packer` (`pvetoken render --format packer` or \
             `--format terraform-telmate`)",
        ));
    }
    if is(key, BPG_TOKEN_KEYS) && !is_placeholder(value) && !bpg_shape(value) {
        out.push(finding(
            a,
            "token-id-not-full",
            Severity::Error,
            format!("{} must be `user@realm!name=secret` (bpg checks `^\\S+@\\S+!\\S+=[a-zA-Z0-9-]+$`)", name),
            "write the full token id, `=`, then the secret (`pvetoken render --format terraform-bpg`)",
        ));
    }
    if key == "proxmox_token_id" && file.kind == Kind::Shell && value.contains('!') && community_env {
        out.push(finding(
            a,
            "community-proxmox-token-id-full",
            Severity::Error,
            "next to PROXMOX_USER this is community.proxmox's PROXMOX_TOKEN_ID, which is the token NAME only; \
             a full id becomes `user@realm!user@realm!name`"
                .to_owned(),
            "set PROXMOX_TOKEN_ID to the part after `!` (`pvetoken render --format ansible-env`)",
        ));
    } else if key == "proxmox_token_id" && file.kind == Kind::Shell && !value.contains('!') && !community_env {
        out.push(finding(
            a,
            "token-id-ambiguous",
            Severity::Warning,
            "PROXMOX_TOKEN_ID is a bare name but PROXMOX_USER is not set: community.proxmox then uses root@pam, \
             and PrivateBox-style readers expect the full id"
                .to_owned(),
            "either export PROXMOX_USER=user@realm next to it (community.proxmox) or write the full \
             `user@realm!name` (pvetoken token file)",
        ));
    } else if ((is(key, NAME_ONLY_KEYS) && file.kind != Kind::Shell) || (inventory_plugin && key == "token_id"))
        && value.contains('!')
    {
        out.push(finding(
            a,
            "token-id-not-name",
            Severity::Error,
            format!("{} is the token NAME only; a full id here is sent as `user@realm!user@realm!name`", name),
            "keep the part after `!` here and the owner `user@realm` in the user setting \
             (`pvetoken render --format ansible-vars` / `--format sops`)",
        ));
    }
    if (is(key, USER_KEYS) || (inventory_plugin && key == "user")) && value.contains('!') {
        out.push(finding(
            a,
            "user-has-token-name",
            Severity::Error,
            format!("{} is the token's owner `user@realm`; the token name does not belong here", name),
            "move the part after `!` to the token id setting",
        ));
    }
    Next::Continue
}

/// `pam-token-user`: a token of a `@pam` user where an `@pve` automation user is meant.
fn pam_token_user(site: &Site<'_>, out: &mut Vec<Finding>) -> Next {
    let Site { a, key, name, value, .. } = site;
    let looks_like_id = value.contains('@') || value.contains('!');
    if looks_like_id && (is(key, USER_KEYS) || is(key, FULL_ID_KEYS) || is(key, BPG_TOKEN_KEYS) || key == "username") {
        let user = value.split('!').next().unwrap_or(value);
        if user.ends_with("@pam") {
            let message = if user == "root@pam" {
                format!("{} uses root@pam: a token of root is as powerful as root, and bpg treats it as root", name)
            } else {
                format!("{} uses the @pam realm (a Linux account on the node) for automation", name)
            };
            out.push(finding(
                a,
                "pam-token-user",
                Severity::Warning,
                message,
                "create a dedicated @pve user for automation (`pvetoken create --profile P` makes \
                 `automation@pve` with least privilege)",
            ));
        }
    }
    Next::Continue
}

/// `api-path-missing`, `api-path-present`: `/api2/json` where Packer and Telmate need it, not where bpg appends it.
fn url_shapes(site: &Site<'_>, out: &mut Vec<Finding>) -> Next {
    let Site { file, context, a, key, name, value, facts, .. } = site;
    let Facts { packer_env, sops_schema, .. } = *facts;
    let is_url = value.starts_with("https://") || value.starts_with("http://");
    let packer_url =
        is(key, API_PATH_KEYS) || (key == "proxmox_url" && (file.role == Role::Packer || sops_schema || packer_env));
    if is_url && packer_url && !value.trim_end_matches('/').ends_with("/api2/json") {
        out.push(finding(
            a,
            "api-path-missing",
            Severity::Error,
            format!("{} must end in /api2/json for Packer and Telmate", name),
            "append /api2/json (`https://HOST:8006/api2/json`)",
        ));
    }
    let bpg_endpoint = is(key, BPG_ENDPOINT_KEYS)
        || (file.role == Role::Terraform && (key == "endpoint" || context.bpg_endpoint_vars.contains(key.as_str())));
    if is_url && bpg_endpoint && value.contains("/api2/json") {
        out.push(finding(
            a,
            "api-path-present",
            Severity::Error,
            "the bpg endpoint must not contain /api2/json (bpg appends it, giving /api2/json/api2/json)".to_owned(),
            "use `https://HOST:8006/` (`pvetoken render --format terraform-bpg`)",
        ));
    }
    Next::Continue
}

/// `insecure-tls`: certificate verification turned off.
fn insecure_tls(site: &Site<'_>, out: &mut Vec<Finding>) -> Next {
    let Site { file, a, key, name, value, variable, .. } = site;
    let truthy = matches!(value.to_ascii_lowercase().as_str(), "true" | "1" | "yes");
    let falsy = matches!(value.to_ascii_lowercase().as_str(), "false" | "0" | "no");
    let insecure_default = a.key_lower() == "default"
        && truthy
        && variable.is_some_and(|name| name.contains("insecure") || name.contains("skip_tls"));
    let insecure_provider = key == "insecure" && truthy && file.role == Role::Terraform;
    if (is(key, INSECURE_TRUE_KEYS) && truthy)
        || (is(key, VERIFY_FALSE_KEYS) && falsy)
        || insecure_default
        || insecure_provider
    {
        out.push(finding(
            a,
            "insecure-tls",
            Severity::Info,
            format!("{} turns certificate verification off", name),
            PIN_FIX,
        ));
    }
    Next::Continue
}

/// `variable "NAME"` → NAME.
fn variable_name(header: &str) -> Option<&str> {
    let rest = header.strip_prefix("variable")?.trim();
    Some(rest.trim_matches('"'))
}

fn is_placeholder(value: &str) -> bool {
    value.starts_with('<') || value.contains("CHANGE") || value.contains("your-") || value.contains("xxx")
}

/// bpg's pattern `^\S+@\S+!\S+=([a-zA-Z0-9-]+)$`.
fn bpg_shape(value: &str) -> bool {
    if value.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((id, secret)) = value.rsplit_once('=') else { return false };
    let Some((user, name)) = id.split_once('!') else { return false };
    let Some((account, realm)) = user.split_once('@') else { return false };
    !account.is_empty()
        && !realm.is_empty()
        && !name.is_empty()
        && !secret.is_empty()
        && secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn word_at(line: &str, index: usize, word: &str) -> bool {
    let before_ok = line[..index].chars().next_back().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '.'));
    let after = &line[index + word.len()..];
    let after_ok = after.chars().next().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'));
    before_ok && after_ok
}

fn privileges(file: &Scanned, options: &LintOptions, out: &mut Vec<Finding>) {
    for (index, line) in file.code.iter().enumerate() {
        match options.pve {
            PveMajor::V9 => {
                for (at, _) in line.match_indices("VM.Monitor") {
                    if word_at(line, at, "VM.Monitor") {
                        out.push(Finding {
                            line: index + 1,
                            column: line[..at].chars().count() + 1,
                            rule: "privilege-removed-in-pve9",
                            severity: Severity::Error,
                            message: "VM.Monitor does not exist in PVE 9: `pveum role add/modify` fails with \
                                      \"invalid privilege 'VM.Monitor'\""
                                .to_owned(),
                            fix: "use VM.GuestAgent.Audit (guest agent reads, e.g. Packer's IP lookup) and Sys.Audit \
                                  (monitor) on PVE 9; lint with --pve-version 8 for PVE 8 roles"
                                .to_owned(),
                        });
                    }
                }
            }
            PveMajor::V8 => {
                for (at, _) in line.match_indices("VM.GuestAgent.") {
                    out.push(Finding {
                        line: index + 1,
                        column: line[..at].chars().count() + 1,
                        rule: "privilege-unknown-in-pve8",
                        severity: Severity::Error,
                        message: "VM.GuestAgent.* privileges exist only from PVE 9; PVE 8 gates guest-agent calls \
                                  with VM.Monitor"
                            .to_owned(),
                        fix: "use VM.Monitor on PVE 8 (and switch to VM.GuestAgent.* when upgrading to 9)".to_owned(),
                    });
                }
            }
        }
    }
}

fn packer_clone(file: &Scanned, out: &mut Vec<Finding>) {
    for (index, block) in file.blocks.iter().enumerate() {
        let header = block.header.replace(char::is_whitespace, "");
        if !header.starts_with("source\"proxmox-clone\"") {
            continue;
        }
        let full_clone = file.assignments.iter().find(|a| a.key == "full_clone" && a.block == Some(index));
        let problem = match full_clone {
            Some(a) if a.value == "true" => None,
            Some(a) if a.value == "false" => Some((a.line, a.column, "full_clone = false makes a linked clone")),
            Some(_) => None,
            None => Some((block.lines.0, 1, "proxmox-clone without `full_clone = true`")),
        };
        if let Some((line, column, what)) = problem {
            out.push(Finding {
                line,
                column,
                rule: "packer-clone-full-clone",
                severity: Severity::Warning,
                message: format!(
                    "{what}: linked clones of the template failed to boot (\"PARTUUID does not exist\") in the \
                     home-infra builds"
                ),
                fix: "set `full_clone = true` in the source block".to_owned(),
            });
        }
    }
}

fn cloud_init_wait(file: &Scanned, out: &mut Vec<Finding>) {
    for (index, line) in file.code.iter().enumerate() {
        let Some(at) = line.find("cloud-init status --wait") else { continue };
        let number = index + 1;
        let provisioner =
            file.blocks_around(number).into_iter().find(|b| file.blocks[*b].header.starts_with("provisioner"));
        let accepts_two = provisioner.is_some_and(|b| {
            let text = file.block_text(b);
            text.split_once("valid_exit_codes").is_some_and(|(_, rest)| {
                let list = rest.split_once('[').map(|(_, l)| l.split(']').next().unwrap_or("")).unwrap_or("");
                list.split(',').any(|code| code.trim() == "2")
            })
        });
        if !accepts_two {
            out.push(Finding {
                line: number,
                column: line[..at].chars().count() + 1,
                rule: "cloud-init-exit-code",
                severity: Severity::Error,
                message: "`cloud-init status --wait` exits 2 for \"degraded done\" (deprecation warnings on \
                          Proxmox-generated user-data), which fails the build"
                    .to_owned(),
                fix: "add `valid_exit_codes = [0, 2]` to this provisioner".to_owned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RULES;

    /// The rules of whole files (roles, Packer clones, cloud-init provisioners) rather than of assignments.
    const FILE_RULES: &[&str] =
        &["privilege-removed-in-pve9", "privilege-unknown-in-pve8", "packer-clone-full-clone", "cloud-init-exit-code"];

    /// The table in `lint/mod.rs` (what `--help` and the docs promise) and the rules that run are the same set.
    #[test]
    fn every_documented_rule_runs_and_every_rule_is_documented() {
        let documented: std::collections::BTreeSet<&str> = include_str!("mod.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .filter_map(|rest| rest.split_once('`').map(|(id, _)| id))
            .collect();
        let running: std::collections::BTreeSet<&str> =
            RULES.iter().flat_map(|rule| rule.ids.iter().copied()).chain(FILE_RULES.iter().copied()).collect();
        assert_eq!(documented, running);
    }
}
