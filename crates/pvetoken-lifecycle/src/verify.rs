//! What a token lacks: its effective permissions (`GET /access/permissions` as the token) against a profile's
//! needs, and for each missing privilege which side lacks it (the user or the token) and the fix.

use pvetoken_acl::{Catalog, Evaluator, Subject, UserCfg, Verdict};
use pvetoken_api::pve::Permissions;
use pvetoken_client::pve::PveClient;

use crate::profiles::Resolved;
use crate::token::TokenRef;

/// One missing privilege.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Missing {
    /// ACL path.
    pub path: String,
    /// Privilege.
    pub privilege: String,
    /// Why the consumer needs it.
    pub reason: String,
    /// `user`, `token`, `both` or `unknown` (without admin credentials or --user-cfg).
    pub lacking_side: String,
    /// The `pveum` command that fixes it.
    pub fix: String,
}

/// The profile's needs that `map` (a `GET /access/permissions` answer) does not cover.
pub fn compare(map: &Permissions, resolved: &Resolved) -> Vec<Missing> {
    let mut missing = Vec::new();
    for path in &resolved.paths {
        let granted = effective_at(map, &path.path);
        for (privilege, reason) in &path.privileges {
            if !granted.contains(privilege) {
                missing.push(Missing {
                    path: path.path.clone(),
                    privilege: privilege.clone(),
                    reason: reason.clone(),
                    lacking_side: "unknown".to_owned(),
                    fix: String::new(),
                });
            }
        }
    }
    missing
}

/// The map lists ACL-tree paths; a path not listed inherits the propagating privileges of its nearest listed
/// ancestor.
fn effective_at(map: &Permissions, path: &str) -> std::collections::BTreeSet<String> {
    if let Some(privs) = map.get(path) {
        return privs.keys().cloned().collect();
    }
    let mut current = path.to_owned();
    while let Some(cut) = current.rfind('/') {
        current.truncate(cut);
        let key = if current.is_empty() { "/" } else { current.as_str() };
        if let Some(privs) = map.get(key) {
            return privs.iter().filter(|(_, propagate)| **propagate == 1).map(|(name, _)| name.clone()).collect();
        }
        if current.is_empty() {
            break;
        }
    }
    std::collections::BTreeSet::new()
}

/// Acting as a token on the run's connection: its effective permissions, and how many requests that took.
pub struct AsToken<'a> {
    http: Option<reqwest::Client>,
    target: &'a crate::target::Target,
    timeout: std::time::Duration,
    requests: u64,
}

impl<'a> AsToken<'a> {
    /// Acting as tokens on `target` through `http` (the run's connection pool).
    pub fn new(http: Option<reqwest::Client>, target: &'a crate::target::Target, timeout: std::time::Duration) -> Self {
        Self { http, target, timeout, requests: 0 }
    }

    /// Requests made as a token so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The token's effective permissions: as the token itself over HTTPS; on `pvesh` (root, which cannot act as
    /// the token) root reads them with `userid=`, counted by `admin`.
    pub async fn permissions(
        &mut self,
        admin: &PveClient,
        token_id: &str,
        secret: &pvetoken_api::Secret,
    ) -> Result<Permissions, pvetoken_client::ClientError> {
        if admin.is_local() {
            return admin.permissions_of(token_id, None).await;
        }
        let client = crate::target::token_client(self.http.as_ref(), self.target, token_id, secret, self.timeout);
        let result = client.own_permissions(None).await;
        self.requests += client.requests_sent();
        result
    }
}

/// Fills in the lacking side from the server (admin view of the user's and the token's effective permissions)
/// and the fix.
pub async fn explain_online(admin: Option<&PveClient>, token: &TokenRef, resolved: &Resolved, missing: &mut [Missing]) {
    let (user_map, token_map) = match admin {
        Some(admin) => {
            (admin.permissions_of(&token.user, None).await.ok(), admin.permissions_of(&token.full(), None).await.ok())
        }
        None => (None, None),
    };
    for item in missing.iter_mut() {
        let user_has = user_map.as_ref().map(|map| effective_at(map, &item.path).contains(&item.privilege));
        let token_has = token_map.as_ref().map(|map| effective_at(map, &item.path).contains(&item.privilege));
        item.lacking_side = match (user_has, token_has) {
            (Some(false), _) => "user",
            (Some(true), Some(_)) => "token",
            _ => "unknown",
        }
        .to_owned();
    }
    fill_fixes(token, resolved, missing);
}

/// Fills in the lacking side from a user.cfg through the permission engine's explanation, and the fix.
pub fn explain_offline(
    cfg: &UserCfg,
    catalog: &Catalog,
    token: &TokenRef,
    resolved: &Resolved,
    missing: &mut [Missing],
) {
    let evaluator = Evaluator::new(cfg, catalog);
    let subject: Option<Subject> = token.full().parse().ok();
    for item in missing.iter_mut() {
        let (Some(subject), Ok(privilege)) = (&subject, item.privilege.parse()) else {
            continue;
        };
        let explanation = evaluator.explain(subject, &item.path, privilege);
        item.lacking_side = match explanation.verdict {
            Verdict::MissingOnUserSide | Verdict::Missing => "user",
            Verdict::MissingOnTokenSide => "token",
            Verdict::MissingOnBothSides => "both",
            Verdict::UnknownToken => "token not in user.cfg",
            Verdict::UnknownPrivilege => "unknown to this release",
            Verdict::Superuser | Verdict::RootTokenFull | Verdict::Granted => "neither (user.cfg grants it)",
        }
        .to_owned();
    }
    fill_fixes(token, resolved, missing);
}

fn fill_fixes(token: &TokenRef, resolved: &Resolved, missing: &mut [Missing]) {
    for item in missing.iter_mut() {
        let propagate = resolved.paths.iter().find(|p| p.path == item.path).is_none_or(|p| p.propagate);
        let subject = match item.lacking_side.as_str() {
            "user" => format!("--users {}", token.user),
            "token" => format!("--tokens '{}'", token.full()),
            _ => format!("--users {} --tokens '{}'", token.user, token.full()),
        };
        item.fix = format!(
            "pveum acl modify {} {subject} --roles {}{}  (or: pvetoken create --profile {} --user {} --token-name {})",
            item.path,
            resolved.role,
            if propagate { "" } else { " --propagate 0" },
            resolved.profile,
            token.user,
            token.name
        );
    }
}
