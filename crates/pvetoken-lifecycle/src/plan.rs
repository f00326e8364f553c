//! What would change: declared tokens compared with one server, as typed steps, each with its reason and the
//! request it makes. Reading only: planning never changes anything.
//!
//! Drift made by hand shows here as it would be repaired: a privilege added to or removed from a managed role, an
//! ACL entry of a managed token missing or not declared, a token deleted or expired on the server, a token file
//! missing, readable by others or holding another token, a token due for rotation. Tokens of managed users that
//! nothing declares are listed apart ([`Plan::unmanaged`]), except the job tokens of `pvetoken exec`
//! ([`Plan::job_tokens`]): a live one belongs to a running job and is never pruned; an expired one, or one whose job
//! is gone, is pruned as `gc` would. A minter ([`Desired::minter`]) also keeps its group grant
//! ([`crate::minter::GROUP_ROLE`] on its own group), which an ordinary token would see revoked as drift.
//!
//! Requests: `GET /version`, `GET /access/acl`, `GET /access/users` once per server; per token `GET` of the token
//! and, once per role, `GET` of the role; `GET .../token` once per managed user for the undeclared ones.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use pvetoken_api::pve::{AclEntry, TokenInfo};
use pvetoken_client::pve::PveClient;
use serde::Serialize;

use crate::engine::Settings;
use crate::error::Error;
use crate::profiles::{Profile, PveVersion, Resolved};
use crate::target::{Target, remote_error};
use crate::token::TokenRef;

/// One token as declared.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The id as declared (`automation@pve!packer`); the plan is keyed by it.
    pub declared: String,
    /// The token as it is now: the declared one, or its rotation `NAME-rN` that the token file holds.
    pub token: TokenRef,
    /// The consumer profile.
    pub profile: Profile,
    /// Role, narrowing, privsep, expiry.
    pub settings: Settings,
    /// Where its secret is kept.
    pub token_file: PathBuf,
    /// Rotate when it expires within this many seconds (with the span as written, for the reason).
    pub rotate_within: Option<(i64, String)>,
    /// A minter (`create --minter`): its user and token also hold [`crate::minter::GROUP_ROLE`] on the user's own
    /// group.
    pub minter: bool,
}

impl Desired {
    /// The token `declared` as it is now: `rotate` on a release without regenerate replaces `NAME` by `NAME-rN`,
    /// and the token file then holds that one.
    pub fn current_token(declared: &TokenRef, token_file: &std::path::Path) -> TokenRef {
        if let Ok(saved) = crate::token_store::read(token_file) {
            let name = saved.token_id.name_str();
            if saved.token_id.user_str() == declared.user && crate::token::rotation_base(name) == declared.name {
                return TokenRef { user: declared.user.clone(), name: name.to_owned() };
            }
        }
        declared.clone()
    }
}

/// One thing that differs, and what repairing it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// The role does not exist: create it with exactly the profile's privileges.
    CreateRole {
        /// Role id.
        role: String,
        /// Its privileges.
        privileges: Vec<String>,
    },
    /// The role's privileges differ from the profile's: set them back.
    SetRole {
        /// Role id.
        role: String,
        /// Privileges the role lacks.
        added: Vec<String>,
        /// Privileges the role has beyond the profile.
        removed: Vec<String>,
    },
    /// The user does not exist: create it without a password.
    CreateUser {
        /// `user@realm`.
        user: String,
    },
    /// A minter's user is not in its own group (the group grant reaches it only through that membership).
    JoinGroup {
        /// `user@realm`.
        user: String,
        /// The minter's group.
        group: String,
    },
    /// The token does not exist: create it and save its secret.
    CreateToken {
        /// Full token id.
        token: String,
        /// Privilege separation.
        privsep: bool,
    },
    /// The token expired on the server: its secret is dead; delete it and create it again.
    ReplaceExpiredToken {
        /// Full token id.
        token: String,
    },
    /// The token expires within the declared span: rotate it, and its declared lifetime starts again.
    Rotate {
        /// Full token id.
        token: String,
        /// The declared span (`14d`).
        within: String,
    },
    /// No token file: it is written (0600) with the new secret.
    WriteTokenFile {
        /// Path.
        path: PathBuf,
    },
    /// The token file is readable or writable by others: back to 0600.
    FixTokenFileMode {
        /// Path.
        path: PathBuf,
        /// Its mode now.
        mode: u32,
    },
    /// The token file holds another token.
    TokenFileHoldsAnother {
        /// Path.
        path: PathBuf,
    },
    /// A declared sink does not hold the token yet: write the token there and record the sink, so that every
    /// rotation updates it.
    RegisterSink {
        /// The sink, named for the user.
        sink: String,
    },
    /// The token's secret changes: every recorded sink gets the new one.
    UpdateSinks {
        /// How many sinks are recorded.
        count: usize,
    },
    /// A declared ACL entry is missing: grant it.
    GrantAcl {
        /// ACL path.
        path: String,
        /// Role.
        role: String,
        /// The user or the token.
        subject: String,
        /// Propagate.
        propagate: bool,
    },
    /// The token holds an ACL entry nothing declares: remove it.
    RevokeAcl {
        /// ACL path.
        path: String,
        /// Role.
        role: String,
        /// The token.
        subject: String,
        /// Propagate.
        propagate: bool,
    },
}

impl Step {
    /// `+` adds, `~` changes, `-` removes.
    pub fn action(&self) -> char {
        match self {
            Step::CreateRole { .. }
            | Step::CreateUser { .. }
            | Step::JoinGroup { .. }
            | Step::CreateToken { .. }
            | Step::WriteTokenFile { .. }
            | Step::RegisterSink { .. }
            | Step::GrantAcl { .. } => '+',
            Step::SetRole { .. }
            | Step::ReplaceExpiredToken { .. }
            | Step::Rotate { .. }
            | Step::FixTokenFileMode { .. }
            | Step::UpdateSinks { .. }
            | Step::TokenFileHoldsAnother { .. } => '~',
            Step::RevokeAcl { .. } => '-',
        }
    }

    /// What it is about: `role Token-packer`, `user automation@pve`, `token`, `token file`, `acl /vms`.
    pub fn resource(&self) -> String {
        match self {
            Step::CreateRole { role, .. } | Step::SetRole { role, .. } => format!("role {role}"),
            Step::CreateUser { user } | Step::JoinGroup { user, .. } => format!("user {user}"),
            Step::CreateToken { .. } | Step::ReplaceExpiredToken { .. } | Step::Rotate { .. } => "token".to_owned(),
            Step::WriteTokenFile { .. } | Step::FixTokenFileMode { .. } | Step::TokenFileHoldsAnother { .. } => {
                "token file".to_owned()
            }
            Step::GrantAcl { path, .. } | Step::RevokeAcl { path, .. } => format!("acl {path}"),
            Step::RegisterSink { .. } | Step::UpdateSinks { .. } => "sink".to_owned(),
        }
    }

    /// The reason, in a few words.
    pub fn detail(&self) -> String {
        match self {
            Step::CreateRole { privileges, .. } => privileges.join(","),
            Step::SetRole { added, removed, .. } => {
                let added = added.iter().map(|p| format!("+{p}"));
                let removed = removed.iter().map(|p| format!("-{p}"));
                added.chain(removed).collect::<Vec<_>>().join(" ")
            }
            Step::CreateUser { .. } => "created without a password".to_owned(),
            Step::JoinGroup { group, .. } => format!("joins group {group} (the minter's own)"),
            Step::CreateToken { token, privsep } => format!("{token} (privsep {})", u8::from(*privsep)),
            Step::ReplaceExpiredToken { token } => format!("{token} expired on the server: replaced"),
            Step::Rotate { token, within } => format!("{token} expires within {within}: rotate"),
            Step::WriteTokenFile { path } => format!("{} (0600)", path.display()),
            Step::FixTokenFileMode { path, mode } => format!("{} mode {mode:o} → 600", path.display()),
            Step::TokenFileHoldsAnother { path } => format!("{} holds another token", path.display()),
            Step::GrantAcl { role, subject, propagate, .. } => {
                format!("{role} → {subject} (propagate {})", u8::from(*propagate))
            }
            Step::RevokeAcl { role, subject, .. } => format!("{role} → {subject} (not declared)"),
            Step::RegisterSink { sink } => sink.clone(),
            Step::UpdateSinks { count } => format!("{count} recorded sink(s) get the new secret"),
        }
    }

    /// The request that repairs it (`local` for what happens on this machine only).
    pub fn request(&self) -> &'static str {
        match self {
            Step::CreateRole { .. } => "POST /access/roles",
            Step::SetRole { .. } => "PUT /access/roles/{roleid}",
            Step::CreateUser { .. } => "POST /access/users",
            Step::JoinGroup { .. } => "PUT /access/users/{userid} groups=GROUP append=1",
            Step::CreateToken { .. } => "POST /access/users/{userid}/token/{tokenid}",
            Step::ReplaceExpiredToken { .. } => "DELETE then POST /access/users/{userid}/token/{tokenid}",
            Step::Rotate { .. } => "PUT /access/users/{userid}/token/{tokenid} regenerate=1 (or a new token)",
            Step::WriteTokenFile { .. } | Step::FixTokenFileMode { .. } | Step::TokenFileHoldsAnother { .. } => "local",
            Step::GrantAcl { .. } => "PUT /access/acl",
            Step::RevokeAcl { .. } => "PUT /access/acl delete=1",
            Step::RegisterSink { .. } | Step::UpdateSinks { .. } => "the sink's own API (docs/sinks.md)",
        }
    }
}

/// A step with its printable parts, as `plan --output json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `+`, `~` or `-`.
    pub action: char,
    /// What it is about.
    pub resource: String,
    /// The reason.
    pub detail: String,
    /// The request that repairs it.
    pub request: &'static str,
    /// The typed step.
    #[serde(flatten)]
    pub step: Step,
}

impl From<Step> for Change {
    fn from(step: Step) -> Self {
        Self { action: step.action(), resource: step.resource(), detail: step.detail(), request: step.request(), step }
    }
}

/// The plan of one token.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPlan {
    /// The id as declared.
    pub id: String,
    /// What differs, in the order it is repaired.
    pub changes: Vec<Change>,
}

impl TokenPlan {
    /// The token expired on the server.
    pub fn expired(&self) -> bool {
        self.changes.iter().any(|c| matches!(c.step, Step::ReplaceExpiredToken { .. }))
    }

    /// The token is due for rotation.
    pub fn rotate(&self) -> bool {
        self.changes.iter().any(|c| matches!(c.step, Step::Rotate { .. }))
    }

    /// The token's secret changes when this plan is applied (a new or replaced token, or a rotation).
    pub fn changes_secret(&self) -> bool {
        self.changes.iter().any(|c| {
            matches!(c.step, Step::CreateToken { .. } | Step::ReplaceExpiredToken { .. } | Step::Rotate { .. })
        })
    }

    /// ACL entries of the token that nothing declares: (path, role, propagate).
    pub fn undeclared_acls(&self) -> Vec<(String, String, bool)> {
        self.changes
            .iter()
            .filter_map(|c| match &c.step {
                Step::RevokeAcl { path, role, propagate, .. } => Some((path.clone(), role.clone(), *propagate)),
                _ => None,
            })
            .collect()
    }
}

/// A job token of `pvetoken exec` found among a managed user's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobToken {
    /// `user@realm!name`.
    pub id: String,
    /// `live` (kept), `expired` or `its job is gone` (both pruned).
    pub state: &'static str,
    /// Whether `apply --prune` deletes it.
    pub stale: bool,
}

/// The plan of one server.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The server's PVE version.
    pub pve_version: String,
    /// Per declared token.
    pub tokens: Vec<TokenPlan>,
    /// Tokens of managed users that nothing declares (job tokens of `pvetoken exec` apart).
    pub unmanaged: Vec<String>,
    /// Job tokens of `pvetoken exec` of managed users (a minter's): live ones are kept, stale ones pruned.
    pub job_tokens: Vec<JobToken>,
    /// Requests made.
    pub requests: u64,
}

impl Plan {
    /// How many changes (undeclared tokens not counted).
    pub fn changes(&self) -> usize {
        self.tokens.iter().map(|t| t.changes.len()).sum()
    }
}

/// Reads one server through `client` (an administrator) and compares it with `tokens`. Never changes anything.
pub async fn plan(client: &PveClient, target: &Target, tokens: &[Desired], now: i64) -> Result<Plan, Error> {
    let server = Server::read(client, target).await?;
    let mut plan = Plan {
        pve_version: server.version.clone(),
        tokens: Vec::new(),
        unmanaged: Vec::new(),
        job_tokens: Vec::new(),
        requests: 0,
    };
    let (mut roles_seen, mut users_seen) = (BTreeSet::new(), BTreeSet::new());
    for desired in tokens {
        let token = &desired.token;
        let settings = &desired.settings;
        let resolved = desired.profile.resolve(server.pve, &settings.narrowing, settings.role.as_deref());
        let mut steps = Vec::new();
        if roles_seen.insert(resolved.role.clone()) {
            role_steps(client, target, &resolved, &mut steps).await?;
        }
        if !server.user_exists(&token.user) && users_seen.insert(token.user.clone()) {
            steps.push(Step::CreateUser { user: token.user.clone() });
        }
        let on_server = client.token(&token.user, &token.name).await.map_err(|e| remote_error(&e, target))?;
        let live = token_steps(desired, on_server.as_ref(), now, &mut steps);
        token_file_steps(desired, live, &mut steps);
        if desired.minter {
            minter_steps(desired, &server, live, &mut steps);
        }
        acl_steps(desired, &resolved, &server, live, &mut steps);
        plan.tokens
            .push(TokenPlan { id: desired.declared.clone(), changes: steps.into_iter().map(Change::from).collect() });
    }
    undeclared_tokens(client, target, &server, tokens, now, &mut plan).await?;
    plan.requests = client.requests_sent();
    Ok(plan)
}

/// What one plan reads of the server once: its release, every ACL entry, every user with its groups.
struct Server {
    version: String,
    pve: PveVersion,
    acl: Vec<AclEntry>,
    users: serde_json::Value,
}

impl Server {
    async fn read(client: &PveClient, target: &Target) -> Result<Server, Error> {
        let remote = |error: pvetoken_client::ClientError| remote_error(&error, target);
        let version = client.version().await.map_err(remote)?;
        let pve = version
            .major_minor()
            .map(|(major, minor)| PveVersion { major, minor })
            .ok_or_else(|| Error::remote(format!("cannot read the PVE version from `{}`", version.version)))?;
        let acl = client.acl().await.map_err(remote)?;
        // With `full`, each user's groups (a minter must be in its own).
        let query = vec![("full".to_owned(), "1".to_owned())];
        let users = client.get("/access/users", &query).await.map_err(remote)?;
        Ok(Server { version: version.version, pve, acl, users })
    }

    fn users(&self) -> impl Iterator<Item = &serde_json::Value> {
        self.users.as_array().into_iter().flatten()
    }

    fn user_exists(&self, user: &str) -> bool {
        self.users().any(|u| u["userid"] == user)
    }

    fn in_group(&self, user: &str, group: &str) -> bool {
        self.users()
            .any(|u| u["userid"] == user && u["groups"].as_str().is_some_and(|g| g.split(',').any(|g| g == group)))
    }
}

/// The role: missing, or holding other privileges than the profile's.
async fn role_steps(
    client: &PveClient,
    target: &Target,
    resolved: &Resolved,
    steps: &mut Vec<Step>,
) -> Result<(), Error> {
    let wanted = resolved.role_privileges();
    match client.role(&resolved.role).await.map_err(|e| remote_error(&e, target))? {
        None => steps.push(Step::CreateRole { role: resolved.role.clone(), privileges: wanted }),
        Some(mut current) => {
            current.sort();
            if current != wanted {
                steps.push(Step::SetRole {
                    role: resolved.role.clone(),
                    added: wanted.iter().filter(|p| !current.contains(p)).cloned().collect(),
                    removed: current.iter().filter(|p| !wanted.contains(p)).cloned().collect(),
                });
            }
        }
    }
    Ok(())
}

/// The token: missing, expired, or due for rotation. True when the server's token stays (it is neither missing
/// nor replaced because it expired).
fn token_steps(desired: &Desired, on_server: Option<&TokenInfo>, now: i64, steps: &mut Vec<Step>) -> bool {
    let token = &desired.token;
    match on_server {
        None => {
            steps.push(Step::CreateToken { token: token.full(), privsep: desired.settings.privsep });
            false
        }
        Some(info) if info.expire > 0 && info.expire <= now => {
            steps.push(Step::ReplaceExpiredToken { token: token.full() });
            false
        }
        Some(info) => {
            if let Some((within, span)) = &desired.rotate_within
                && info.expire > 0
                && info.expire - now <= *within
            {
                steps.push(Step::Rotate { token: token.full(), within: span.clone() });
            }
            true
        }
    }
}

/// The token file: missing, readable by others, or holding another token than the one that stays.
fn token_file_steps(desired: &Desired, live: bool, steps: &mut Vec<Step>) {
    let path = &desired.token_file;
    match std::fs::symlink_metadata(path) {
        Err(_) => steps.push(Step::WriteTokenFile { path: path.clone() }),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                steps.push(Step::FixTokenFileMode { path: path.clone(), mode });
            }
            if live && crate::token_store::read(path).is_ok_and(|f| f.token_id.as_str() != desired.token.full()) {
                steps.push(Step::TokenFileHoldsAnother { path: path.clone() });
            }
        }
    }
}

/// A minter's own group: the user in it, and the group grant for the user and the token (a new token gets it
/// when it is created).
fn minter_steps(desired: &Desired, server: &Server, live: bool, steps: &mut Vec<Step>) {
    let token = &desired.token;
    let group = crate::minter::group_of(&token.user);
    let group_path = format!("/access/groups/{group}");
    if server.user_exists(&token.user) && !server.in_group(&token.user, &group) {
        steps.push(Step::JoinGroup { user: token.user.clone(), group });
    }
    for subject in [token.user.clone(), token.full()] {
        let held = server.acl.iter().any(|e| is_group_grant(desired, e) && e.ugid == subject);
        if !held && (live || subject != token.full()) {
            steps.push(Step::GrantAcl {
                path: group_path.clone(),
                role: crate::minter::GROUP_ROLE.to_owned(),
                subject,
                propagate: false,
            });
        }
    }
}

/// A minter's grant on its own group, which is not drift.
fn is_group_grant(desired: &Desired, entry: &AclEntry) -> bool {
    desired.minter
        && entry.roleid == crate::minter::GROUP_ROLE
        && entry.path == format!("/access/groups/{}", crate::minter::group_of(&desired.token.user))
        && !entry.propagate
}

/// ACL entries: the user's and (privsep) the token's on each profile path are granted when missing (a new token's
/// when it is created); any other entry of a token that stays is drift, revoked.
fn acl_steps(desired: &Desired, resolved: &Resolved, server: &Server, live: bool, steps: &mut Vec<Step>) {
    let token = &desired.token;
    let mut expected: BTreeSet<(String, String, bool)> = BTreeSet::new();
    for path in &resolved.paths {
        expected.insert((path.path.clone(), token.user.clone(), path.propagate));
        if desired.settings.privsep {
            expected.insert((path.path.clone(), token.full(), path.propagate));
        }
    }
    let actual: BTreeSet<(String, String, bool)> = server
        .acl
        .iter()
        .filter(|e| e.roleid == resolved.role && (e.ugid == token.user || e.ugid == token.full()))
        .map(|e| (e.path.clone(), e.ugid.clone(), e.propagate))
        .collect();
    for (path, subject, propagate) in expected.difference(&actual) {
        if !live && subject == &token.full() {
            continue; // granted with the new token
        }
        steps.push(Step::GrantAcl {
            path: path.clone(),
            role: resolved.role.clone(),
            subject: subject.clone(),
            propagate: *propagate,
        });
    }
    if live {
        for entry in server.acl.iter().filter(|e| e.ugid == token.full() && !is_group_grant(desired, e)) {
            let key = (entry.path.clone(), entry.ugid.clone(), entry.propagate);
            if entry.roleid != resolved.role || !expected.contains(&key) {
                steps.push(Step::RevokeAcl {
                    path: entry.path.clone(),
                    role: entry.roleid.clone(),
                    subject: entry.ugid.clone(),
                    propagate: entry.propagate,
                });
            }
        }
    }
}

/// Tokens of the managed users that nothing declares (nor is the current rotation of a declared one): job tokens
/// of `exec`, live or stale, apart from the rest.
async fn undeclared_tokens(
    client: &PveClient,
    target: &Target,
    server: &Server,
    tokens: &[Desired],
    now: i64,
    plan: &mut Plan,
) -> Result<(), Error> {
    let declared: BTreeSet<String> = tokens.iter().flat_map(|t| [t.declared.clone(), t.token.full()]).collect();
    let managed_users: BTreeSet<&str> = tokens.iter().map(|t| t.token.user.as_str()).collect();
    for user in managed_users {
        if !server.user_exists(user) {
            continue;
        }
        for info in client.tokens(user).await.map_err(|e| remote_error(&e, target))? {
            let Some(name) = info.tokenid else { continue };
            let full = format!("{user}!{name}");
            if declared.contains(&full) {
                continue;
            }
            match crate::minter::Ephemeral::here(info.comment.as_deref(), info.expire, now) {
                crate::minter::Ephemeral::No => plan.unmanaged.push(full),
                kind => plan.job_tokens.push(JobToken {
                    id: full,
                    state: if kind.is_stale() { kind.reason() } else { "live" },
                    stale: kind.is_stale(),
                }),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Change, Step};

    #[test]
    fn a_step_prints_as_the_plan_shows_it_and_serialises_with_its_kind() {
        let change = Change::from(Step::SetRole {
            role: "Token-packer".into(),
            added: vec!["VM.Audit".into()],
            removed: vec!["Sys.Modify".into()],
        });
        assert_eq!((change.action, change.resource.as_str()), ('~', "role Token-packer"));
        assert_eq!(change.detail, "+VM.Audit -Sys.Modify");
        let json = serde_json::to_value(&change).expect("serialises");
        assert_eq!(json["step"], "set-role");
        assert_eq!(json["request"], "PUT /access/roles/{roleid}");
        assert_eq!(json["removed"][0], "Sys.Modify");
        let revoke = Change::from(Step::RevokeAcl {
            path: "/nodes".into(),
            role: "PVEAuditor".into(),
            subject: "a@pve!x".into(),
            propagate: true,
        });
        assert_eq!(
            format!("{} {}: {}", revoke.action, revoke.resource, revoke.detail),
            "- acl /nodes: PVEAuditor → a@pve!x (not declared)"
        );
    }
}
