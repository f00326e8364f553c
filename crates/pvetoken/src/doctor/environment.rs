//! Consumer environment variables found in the current shell (Packer, Terraform bpg and Telmate, community.proxmox,
//! home-infra scripts): each value in the shape its consumer expects, and consistent with the token file.
//!
//! The shape rules are `pvetoken lint`'s own ([`pvetoken_render::lint`]): the variables present are handed to it
//! as one `.env` file of `export NAME='value'` lines, and each lint finding becomes a doctor finding `env-<rule>`.
//! What lint cannot know (the token file) is checked here: a stale secret, a user that is not the token's owner.
//! Messages name the variable, never a secret value.

use pvetoken_api::ExposeSecret;
use pvetoken_render::TokenFile;
use pvetoken_render::consumers;
use pvetoken_render::lint::{self, DirectoryContext, LintOptions};

use super::{Finding, Severity, id};

const CHECK: &str = "environment";

/// The consumer variables present in `vars` (name, value), in [`consumers::environment_variables`] order.
pub fn present(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let all: Vec<(String, String)> = vars.into_iter().collect();
    consumers::environment_variables()
        .into_iter()
        .filter_map(|name| all.iter().find(|(key, _)| key == name).cloned())
        .filter(|(_, value)| !value.is_empty())
        .collect()
}

/// Checks the consumer variables in `vars` against their consumers' formats and the token file (when read).
pub fn check(vars: &[(String, String)], token: Option<&TokenFile>) -> Vec<Finding> {
    let get = |name: &str| vars.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let error = |id: &'static str, what: String| Finding::new(id, Severity::Error, CHECK, what);
    let mut findings = lint_findings(vars);
    if let (Some(user), Some(token)) = (get("PROXMOX_USER"), token)
        && !user.contains('!')
        && user != token.token_id.user_str()
    {
        findings.push(
            error(
                id::ENV_USER_NOT_TOKEN_OWNER,
                format!("PROXMOX_USER `{user}` is not the token's owner `{}`", token.token_id.user_str()),
            )
            .why("a token is always used with its owner (`@pam` vs `@pve` is a different user): 401")
            .fix(format!("export PROXMOX_USER='{}'", token.token_id.user_str()))
            .fix("eval \"$(pvetoken render --format ansible-env)\""),
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
                    error(id::ENV_STALE_SECRET, format!("{name} differs from the token file's secret"))
                        .why("after a rotation the old secret answers 401")
                        .fix("reload the shell's credentials (direnv reload), or: eval \"$(pvetoken render --format packer)\""),
                );
            }
        }
    }
    findings
}

/// `pvetoken lint`'s rules over the variables, as one `.env` file (line N = the N-th variable present).
fn lint_findings(vars: &[(String, String)]) -> Vec<Finding> {
    let text: String = vars
        .iter()
        .map(|(name, value)| format!("export {name}={}\n", pvetoken_render::shell_single_quote(value)))
        .collect();
    let findings = lint::lint_text("environment.env", &text, &DirectoryContext::default(), &LintOptions::default());
    findings
        .into_iter()
        .map(|found| {
            let severity = match found.severity {
                lint::Severity::Error => Severity::Error,
                lint::Severity::Warning => Severity::Warning,
                lint::Severity::Info => Severity::Info,
            };
            let variable = vars.get(found.line.saturating_sub(1)).map(|(name, _)| name.as_str()).unwrap_or("?");
            Finding::new(format!("env-{}", found.rule), severity, CHECK, found.message)
                .why(format!("{variable} is read by its consumer as it is set in this shell (rule {} of pvetoken lint)", found.rule))
                .fix(found.fix)
                .fix("pvetoken render --format packer|terraform-bpg|terraform-telmate|ansible-env   (the exact variables)")
        })
        .collect()
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
        assert_eq!(found[0].id, "env-pveapitoken-prefix");
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
        assert_eq!(found[0].id, "env-community-proxmox-token-id-full");
    }
}
