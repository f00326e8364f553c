//! As the token: it authenticates, the server's version, the profile's privileges on its paths (and, with admin
//! credentials, which side lacks what and whether the role itself lacks it), and expiry.

use pvetoken_api::pve::Version;
use pvetoken_client::ClientError;
use pvetoken_client::pve::PveClient;
use pvetoken_render::TokenFile;

use super::{Finding, Severity, id, knowledge};
use pvetoken_lifecycle::profiles::{PveVersion, Resolved};
use pvetoken_lifecycle::token::TokenRef;
use pvetoken_lifecycle::verify;

/// Warn when the token expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// `GET /version` as the token: the cheapest call that needs a valid token.
pub async fn auth(client: &PveClient, token: &TokenFile, now: i64) -> (Option<Version>, Vec<Finding>, String) {
    match client.version().await {
        Ok(version) => {
            let detail = format!("{} authenticates", token.token_id);
            (Some(version), Vec::new(), detail)
        }
        Err(ClientError::AuthFailed { message, .. }) => {
            let expire = i64::try_from(token.expire).unwrap_or(i64::MAX);
            let finding = if token.expire != 0 && expire <= now {
                Finding::new(
                    id::TOKEN_EXPIRED,
                    Severity::Blocking,
                    "auth",
                    format!("{} expired {} (PVE answers 401: {message})", token.token_id, describe_epoch(expire, now)),
                )
                .why("an expired token is refused on every call")
                .fix(format!(
                    "pveum user token modify {} {} --expire 0   (or a new date)",
                    token.token_id.user_str(),
                    token.token_id.name_str()
                ))
                .fix("pvetoken rotate   (new secret; or pvetoken create --profile PROFILE --expire 90d)")
            } else {
                Finding::new(
                    id::TOKEN_AUTH_FAILED,
                    Severity::Blocking,
                    "auth",
                    format!("PVE refused {}: {message}", token.token_id),
                )
                .why(
                    "the secret in the token file is not the token's secret (rotated elsewhere, mistyped), or the \
                     token, its user or the user's account was deleted, disabled or expired",
                )
                .fix(format!(
                    "pveum user token list {} --output-format json   (does the token exist? expired?)",
                    token.token_id.user_str()
                ))
                .fix("pvetoken rotate   (a new secret, saved to the token file and every registered sink)")
            };
            (None, vec![finding], "refused".to_owned())
        }
        Err(error) => {
            let finding = Finding::new(id::AUTH_REQUEST_FAILED, Severity::Blocking, "auth", error.to_string())
                .why("the token could not be tested")
                .fix("rerun: pvetoken doctor -v");
            (None, vec![finding], "request failed".to_owned())
        }
    }
}

fn newest_known() -> PveVersion {
    let newest = pvetoken_acl::PveVersion::NEWEST;
    PveVersion { major: u32::from(newest.major), minor: u32::from(newest.minor) }
}

/// The server version as a finding-free detail, with a warning for releases pvetoken does not target.
pub fn version(version: &Version) -> (Option<PveVersion>, Vec<Finding>, String) {
    let Some((major, minor)) = version.major_minor() else {
        let finding = Finding::new(
            id::PVE_VERSION_UNKNOWN,
            Severity::Warning,
            "version",
            format!("cannot read the PVE version from `{}`", version.version),
        )
        .why("privilege names depend on the release (VM.Monitor on 8, VM.GuestAgent.* on 9)")
        .fix("pveversion -v   (on the host)");
        return (None, vec![finding], "unknown".to_owned());
    };
    let parsed = PveVersion { major, minor };
    let mut findings = Vec::new();
    if major < 8 {
        findings.push(
            Finding::new(
                id::PVE_VERSION_OLD,
                Severity::Warning,
                "version",
                format!("PVE {parsed} is older than the releases pvetoken targets (8.x, 9.x)"),
            )
            .why("PVE 7 is out of support; privilege checks may differ")
            .fix("upgrade the host (pve7to8, then pve8to9)"),
        );
    }
    if let (_, Some(assumption)) = pvetoken_acl::PveVersion::of_server(&version.version)
        && parsed > newest_known()
    {
        findings.push(
            Finding::new(id::PVE_VERSION_NEWER, Severity::Warning, "version", assumption)
                .why("privileges and ACL paths of a release pvetoken does not know may differ")
                .fix("upgrade pvetoken (pvetoken --version lists the releases it knows)"),
        );
    }
    let note = if major >= 9 {
        "guest-agent calls need VM.GuestAgent.*; VM.Monitor no longer exists"
    } else {
        "guest-agent calls need VM.Monitor"
    };
    (Some(parsed), findings, format!("PVE {} ({note})", version.version))
}

/// Compares the token's effective permissions with the profile's needs; explains each gap.
pub async fn privileges(
    client: &PveClient,
    token: &TokenRef,
    resolved: &Resolved,
    admin: Option<&PveClient>,
) -> (Vec<Finding>, String) {
    let map = match client.own_permissions(None).await {
        Ok(map) => map,
        Err(error) => {
            let finding = Finding::new(id::PERMISSIONS_UNREADABLE, Severity::Blocking, "privileges", error.to_string())
                .why("GET /access/permissions as the token failed")
                .fix(format!("pvetoken verify --profile {}", resolved.profile));
            return (vec![finding], "cannot read".to_owned());
        }
    };
    let mut missing = verify::compare(&map, resolved);
    if missing.is_empty() {
        return (
            Vec::new(),
            format!(
                "{} has every privilege profile {} needs on PVE {}",
                token.full(),
                resolved.profile,
                resolved.version
            ),
        );
    }
    verify::explain_online(admin, token, resolved, &mut missing).await;
    let role_privileges = match admin {
        Some(admin) => admin.role(&resolved.role).await.ok().flatten(),
        None => None,
    };
    let mut findings = Vec::new();
    if map.values().all(|privs| privs.is_empty()) {
        findings.push(
            Finding::new(
                id::TOKEN_NO_PERMISSIONS,
                Severity::Error,
                "privileges",
                format!("{} has no permission at all", token.full()),
            )
            .why(
                "a token with privilege separation (privsep=1, PVE's default) starts with nothing: it needs ACLs of \
                 its own AND its user needs the same privileges (the token gets the intersection)",
            )
            .fix(format!(
                "pveum acl modify / --users {} --tokens '{}' --roles {}",
                token.user,
                token.full(),
                resolved.role
            ))
            .fix(format!(
                "pvetoken create --profile {} --user {} --token-name {}",
                resolved.profile, token.user, token.name
            )),
        );
    }
    for item in &missing {
        let role_lacks = role_privileges.as_ref().map(|privs| !privs.contains(&item.privilege));
        let side = match role_lacks {
            Some(true) => format!("the role {} lacks it", resolved.role),
            _ => format!("{} side", item.lacking_side),
        };
        let mut why = format!("needed to {}", item.reason);
        if let Some(failure) = knowledge::predicted_failure(&item.privilege, &item.path) {
            why.push_str(&format!(". Without it: {failure}"));
        }
        let mut finding = Finding::new(
            id::PRIVILEGE_MISSING,
            Severity::Error,
            "privileges",
            format!("missing {} on {} ({side})", item.privilege, item.path),
        )
        .why(why);
        if role_lacks != Some(false) {
            // The role was changed (or cannot be read): extending it fixes every path at once.
            finding = finding.fix(format!("pveum role modify {} --append 1 --privs {}", resolved.role, item.privilege));
        }
        if role_lacks != Some(true) {
            finding = finding.fix(item.fix.clone());
        }
        finding = finding.fix(format!(
            "pvetoken create --profile {} --user {} --token-name {}   (converges role and ACLs)",
            resolved.profile, token.user, token.name
        ));
        findings.push(finding);
    }
    let detail = format!("{} of the profile's privileges missing", missing.len());
    (findings, detail)
}

/// Expiry from the token file (`PROXMOX_TOKEN_EXPIRE`) and, with admin access, from the server.
pub fn expiry(token: &TokenFile, server_expire: Option<i64>, now: i64) -> (Vec<Finding>, String) {
    let file_expire = i64::try_from(token.expire).unwrap_or(i64::MAX);
    let expire = server_expire.filter(|e| *e != 0).unwrap_or(file_expire);
    if expire == 0 {
        return (Vec::new(), "never expires".to_owned());
    }
    let when = describe_epoch(expire, now);
    let rotate = "pvetoken rotate   (new secret; the expiry stays)".to_owned();
    let extend = format!(
        "pveum user token modify {} {} --expire $(date -d '+90 days' +%s)",
        token.token_id.user_str(),
        token.token_id.name_str()
    );
    if expire <= now {
        let finding =
            Finding::new(id::TOKEN_EXPIRED, Severity::Blocking, "expiry", format!("{} expired {when}", token.token_id))
                .why("PVE answers 401 to an expired token")
                .fix(extend)
                .fix(rotate);
        return (vec![finding], format!("expired {when}"));
    }
    if expire - now <= EXPIRY_WARNING_DAYS * 86_400 {
        let finding =
            Finding::new(id::TOKEN_EXPIRING, Severity::Warning, "expiry", format!("{} expires {when}", token.token_id))
                .why(format!("within {EXPIRY_WARNING_DAYS} days every consumer using it starts failing with 401"))
                .fix(extend)
                .fix("pvetoken create --profile PROFILE --expire 90d --rotate-if-exists".to_owned());
        return (vec![finding], format!("expires {when}"));
    }
    (Vec::new(), format!("expires {when}"))
}

/// `in 3 days` / `2 days ago` / `in 5 hours`.
pub fn describe_epoch(epoch: i64, now: i64) -> String {
    let delta = epoch - now;
    let (amount, unit) =
        if delta.abs() >= 86_400 { (delta.abs() / 86_400, "day") } else { (delta.abs() / 3600, "hour") };
    let plural = if amount == 1 { "" } else { "s" };
    if delta >= 0 { format!("in {amount} {unit}{plural}") } else { format!("{amount} {unit}{plural} ago") }
}

#[cfg(test)]
mod tests {
    use super::describe_epoch;

    #[test]
    fn epochs_are_described_relative_to_now() {
        assert_eq!(describe_epoch(1000 + 3 * 86_400, 1000), "in 3 days");
        assert_eq!(describe_epoch(1000 - 86_400, 1000), "1 day ago");
    }
}
