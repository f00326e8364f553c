//! Consumer environment variables found in the current shell (Packer, Terraform bpg and Telmate, community.proxmox,
//! home-infra scripts): each value in the shape its consumer expects, and consistent with the token file.
//!
//! These are the rules `pvetoken lint` applies to `.envrc` / `*.env` files, applied to live values. `lint` is
//! being written by another engineer; until its rule code is public these checks are the adapter (see the report
//! to the lead: switch `check` to call lint's rules on `(name, value)` pairs when they land). Messages name the
//! variable, never a secret value.

use pvetoken_api::ExposeSecret;
use pvetoken_render::TokenFile;

use super::{Finding, Severity};

const CHECK: &str = "environment";

/// Every variable name a consumer reads (those present are checked; the rest are ignored).
pub const CONSUMER_VARIABLES: &[&str] = &[
    "PROXMOX_URL",
    "PROXMOX_USERNAME",
    "PROXMOX_TOKEN",
    "PROXMOX_VE_ENDPOINT",
    "PROXMOX_VE_API_TOKEN",
    "PM_API_URL",
    "PM_API_TOKEN_ID",
    "PM_API_TOKEN_SECRET",
    "PROXMOX_HOST",
    "PROXMOX_USER",
    "PROXMOX_TOKEN_ID",
    "PROXMOX_TOKEN_SECRET",
    "PROXMOX_API_TOKEN",
];

/// The consumer variables present in `vars` (name, value), in [`CONSUMER_VARIABLES`] order.
pub fn present(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let all: Vec<(String, String)> = vars.into_iter().collect();
    CONSUMER_VARIABLES
        .iter()
        .filter_map(|name| all.iter().find(|(key, _)| key == name).cloned())
        .filter(|(_, value)| !value.is_empty())
        .collect()
}

/// Checks the consumer variables in `vars` against their consumers' formats and the token file (when read).
pub fn check(vars: &[(String, String)], token: Option<&TokenFile>) -> Vec<Finding> {
    let get = |name: &str| vars.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let mut findings = Vec::new();
    let error = |id: &'static str, what: String| Finding::new(id, Severity::Error, CHECK, what);

    // Packer: PROXMOX_USERNAME = user@realm!name, PROXMOX_TOKEN = secret only, PROXMOX_URL ends in /api2/json.
    if let Some(value) = get("PROXMOX_TOKEN") {
        if value.starts_with("PVEAPIToken") || value.contains('!') || value.contains('=') {
            findings.push(
                error(
                    "env-packer-token-not-secret",
                    "PROXMOX_TOKEN holds a whole token string; Packer wants the secret alone".to_owned(),
                )
                .why("Packer sends `PVEAPIToken=<PROXMOX_USERNAME>=<PROXMOX_TOKEN>` itself: PVE answers 401")
                .fix("export PROXMOX_TOKEN='<secret only>'")
                .fix("eval \"$(pvetoken render --format packer)\""),
            );
        }
        if let Some(username) = get("PROXMOX_USERNAME")
            && !username.contains('!')
        {
            findings.push(
                error(
                    "env-packer-username-not-token-id",
                    format!("PROXMOX_USERNAME `{username}` is not a token id (user@realm!name) but PROXMOX_TOKEN is set"),
                )
                .why("with a token Packer needs the full token id as username, else it logs in with a password and fails")
                .fix("export PROXMOX_USERNAME='user@realm!name'")
                .fix("eval \"$(pvetoken render --format packer)\""),
            );
        }
        if let Some(url) = get("PROXMOX_URL")
            && !url.trim_end_matches('/').ends_with("/api2/json")
        {
            findings.push(
                Finding::new(
                    "env-packer-url-path",
                    Severity::Warning,
                    CHECK,
                    format!("PROXMOX_URL `{url}` does not end in /api2/json, which Packer expects"),
                )
                .why("packer-plugin-proxmox calls PROXMOX_URL + the API path: requests go to the web UI and fail")
                .fix(format!("export PROXMOX_URL='{}/api2/json'", url.trim_end_matches('/')))
                .fix("eval \"$(pvetoken render --format packer)\""),
            );
        }
    }
    // bpg: PROXMOX_VE_API_TOKEN = user@realm!name=secret, no prefix; the endpoint without /api2/json.
    if let Some(value) = get("PROXMOX_VE_API_TOKEN") {
        if value.starts_with("PVEAPIToken") {
            findings.push(
                error(
                    "env-bpg-token-prefixed",
                    "PROXMOX_VE_API_TOKEN starts with `PVEAPIToken=`; bpg adds that prefix itself".to_owned(),
                )
                .why("bpg's format check accepts it, then PVE receives `PVEAPIToken=PVEAPIToken=...` and answers 401")
                .fix("export PROXMOX_VE_API_TOKEN='user@realm!name=secret'")
                .fix("eval \"$(pvetoken render --format terraform-bpg)\""),
            );
        } else if !(value.contains('!') && value.contains('=')) {
            findings.push(
                error("env-bpg-token-format", "PROXMOX_VE_API_TOKEN is not `user@realm!name=secret`".to_owned())
                    .why("bpg refuses the provider configuration or PVE answers 401")
                    .fix("eval \"$(pvetoken render --format terraform-bpg)\""),
            );
        }
    }
    if let Some(endpoint) = get("PROXMOX_VE_ENDPOINT")
        && endpoint.trim_end_matches('/').ends_with("/api2/json")
    {
        findings.push(
            Finding::new(
                "env-bpg-endpoint-path",
                Severity::Warning,
                CHECK,
                format!("PROXMOX_VE_ENDPOINT `{endpoint}` ends in /api2/json"),
            )
            .why("bpg appends /api2/json itself: requests go to /api2/json/api2/json/... and fail")
            .fix(format!(
                "export PROXMOX_VE_ENDPOINT='{}'",
                endpoint.trim_end_matches('/').trim_end_matches("/api2/json")
            ))
            .fix("eval \"$(pvetoken render --format terraform-bpg)\""),
        );
    }
    // Telmate: PM_API_TOKEN_ID = user@realm!name, PM_API_TOKEN_SECRET = secret only.
    if let Some(id) = get("PM_API_TOKEN_ID")
        && !id.contains('!')
    {
        findings.push(
            error("env-telmate-token-id", format!("PM_API_TOKEN_ID `{id}` has no `!`: Telmate wants user@realm!name"))
                .why("PVE answers 401")
                .fix("eval \"$(pvetoken render --format terraform-telmate)\""),
        );
    }
    if let Some(secret) = get("PM_API_TOKEN_SECRET")
        && (secret.contains('=') || secret.contains('!'))
    {
        findings.push(
            error("env-telmate-token-secret", "PM_API_TOKEN_SECRET holds more than the secret".to_owned())
                .why("PVE answers 401")
                .fix("eval \"$(pvetoken render --format terraform-telmate)\""),
        );
    }
    // community.proxmox: PROXMOX_USER = user@realm, PROXMOX_TOKEN_ID = name only. Without PROXMOX_USER the design
    // note's layout (full id in PROXMOX_TOKEN_ID) is meant, which is fine.
    if let (Some(user), Some(token_id)) = (get("PROXMOX_USER"), get("PROXMOX_TOKEN_ID")) {
        if token_id.contains('!') || token_id.contains('@') {
            findings.push(
                error(
                    "env-ansible-token-id-full",
                    format!(
                        "PROXMOX_TOKEN_ID `{token_id}` is a full id, but PROXMOX_USER is set: community.proxmox wants \
                         the token name only"
                    ),
                )
                .why(format!("the modules join `{user}!{token_id}`: PVE answers `no such user` or 401"))
                .fix("eval \"$(pvetoken render --format ansible-env)\""),
            );
        }
        if user.contains('!') {
            findings.push(
                error("env-ansible-user-is-token", format!("PROXMOX_USER `{user}` is a token id, not user@realm"))
                    .why("community.proxmox joins it with PROXMOX_TOKEN_ID: the id is wrong")
                    .fix("eval \"$(pvetoken render --format ansible-env)\""),
            );
        }
        if let Some(token) = token
            && !user.contains('!')
            && user != token.token_id.user_str()
        {
            findings.push(
                error(
                    "env-user-realm-mismatch",
                    format!("PROXMOX_USER `{user}` is not the token's owner `{}`", token.token_id.user_str()),
                )
                .why("a token is always used with its owner (`@pam` vs `@pve` is a different user): 401")
                .fix(format!("export PROXMOX_USER='{}'", token.token_id.user_str())),
            );
        }
    } else if let Some(token_id) = get("PROXMOX_TOKEN_ID")
        && !token_id.contains('!')
        && get("PROXMOX_TOKEN_SECRET").is_some()
    {
        findings.push(
            error(
                "env-token-id-without-user",
                format!("PROXMOX_TOKEN_ID `{token_id}` is a name only and PROXMOX_USER is not set"),
            )
            .why("the design note's scripts need the full id user@realm!name; community.proxmox needs PROXMOX_USER")
            .fix("export PROXMOX_USER='user@realm'   (community.proxmox), or PROXMOX_TOKEN_ID='user@realm!name'"),
        );
    }
    if let Some(value) = get("PROXMOX_API_TOKEN")
        && value.starts_with("PVEAPIToken")
    {
        findings.push(
            Finding::new(
                "env-api-token-prefixed",
                Severity::Warning,
                CHECK,
                "PROXMOX_API_TOKEN holds the header form `PVEAPIToken=...`".to_owned(),
            )
            .why("scripts that add the prefix themselves (home-infra's wait-vm-dhcp.sh) send it twice: 401")
            .fix("pvetoken render --format header   (the header form, for curl only)"),
        );
    }
    // Consistency with the token file: a stale secret in the shell gives 401 after a rotation.
    if let Some(token) = token {
        let secret = token.secret.expose_secret();
        for name in ["PROXMOX_TOKEN", "PROXMOX_TOKEN_SECRET", "PM_API_TOKEN_SECRET"] {
            if let Some(value) = get(name)
                && is_plain_secret(value)
                && value != secret
            {
                findings.push(
                    error("env-stale-secret", format!("{name} differs from the token file's secret"))
                        .why("after a rotation the old secret answers 401")
                        .fix("reload the shell's credentials (direnv reload), or: eval \"$(pvetoken render --format packer)\""),
                );
            }
        }
    }
    findings
}

fn is_plain_secret(value: &str) -> bool {
    !value.contains('=') && !value.contains('!')
}

#[cfg(test)]
mod tests {
    use super::check;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn packer_token_with_the_header_prefix_is_an_error_and_the_message_has_no_secret() {
        let found = check(&vars(&[("PROXMOX_TOKEN", "PVEAPIToken=a@pve!b=s3cr3t-value")]), None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "env-packer-token-not-secret");
        assert!(!format!("{found:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn the_design_note_layout_with_a_full_token_id_is_fine() {
        let found =
            check(&vars(&[("PROXMOX_TOKEN_ID", "automation@pve!privatebox"), ("PROXMOX_TOKEN_SECRET", "x")]), None);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn community_proxmox_with_a_full_token_id_is_the_mix_up() {
        let found = check(
            &vars(&[("PROXMOX_USER", "automation@pve"), ("PROXMOX_TOKEN_ID", "automation@pve!privatebox")]),
            None,
        );
        assert_eq!(found[0].id, "env-ansible-token-id-full");
    }
}
