//! A minter: a dedicated user whose token can hand out short-lived tokens (`pvetoken exec --minter`) that hold at
//! most the minter's own rights, and nothing else.
//!
//! What PVE allows, read from pve-access-control (`PVE/API2/User.pm`: the token endpoints'
//! `or(userid-param self, userid-group User.Modify)`; `PVE/RPCEnvironment.pm`: a token is never "self"):
//! - a token can create and delete tokens of a user only through `User.Modify` on a group that user is in (or on
//!   `/access/groups`); the minter therefore is the only member of its own group and holds `User.Modify` on
//!   `/access/groups/<that group>`, which lets it manage the tokens (and plain attributes) of itself alone;
//! - the minter holds the privileges of its profiles on their paths, as `create` grants them, and nothing that
//!   changes ACLs (`Permissions.Modify`) or roles (`Sys.Modify`);
//! - the tokens it mints are **not** privilege-separated, so each holds exactly the minter user's rights: no ACL is
//!   written for them, and none could be (the minter cannot write ACLs at all). A leaked minter credential, or a job
//!   token, can mint more tokens of the same user with the same rights (persistence, not escalation): `audit` names
//!   the minter's tokens, `gc` deletes the ephemeral ones that outlived their job.

use pvetoken_client::pve::{AclChange, PveClient};

use crate::error::Error;
use crate::profiles::Profile;
use crate::target::{Target, remote_error};
use crate::token::TokenRef;

/// The minter user `create --minter` sets up unless told otherwise.
pub const DEFAULT_USER: &str = "pvetoken-minter@pve";

/// The minter's own token name.
pub const DEFAULT_TOKEN_NAME: &str = "mint";

/// The group whose only member is `user` (a group id: letters, digits, `.`, `-`, `_`).
pub fn group_of(user: &str) -> String {
    user.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '-' }).collect()
}

/// The role of the minter's own group: `User.Modify` alone, granted on that group only (a role of its own, so that
/// `User.Modify` is not also granted on the profiles' paths).
pub const GROUP_ROLE: &str = "Token-minter";

/// The minter's profile: every grant of `profiles` under one role `Token-minter-<names>`. The group grant that lets
/// its token create and delete the user's tokens is [`grant_group`]'s.
pub fn profile(profiles: &[Profile]) -> Result<Profile, Error> {
    if profiles.is_empty() {
        return Err(Error::usage("a minter needs at least one profile")
            .with_hint("pvetoken create --minter --profiles packer,ansible"));
    }
    let names: Vec<&str> = profiles.iter().map(|profile| profile.name.as_str()).collect();
    let grants = profiles.iter().flat_map(|profile| profile.grants.iter().cloned()).collect();
    Ok(Profile {
        name: format!("minter-{}", names.join("-")),
        description: format!("pvetoken minter for {}: mints short-lived tokens with its own rights", names.join(", ")),
        role: Some(format!("Token-minter-{}", names.join("-"))),
        grants,
    })
}

/// Makes the minter's group and puts `user` in it: a missing user is created in it (no password: a token-only
/// user), an existing one is added to it (`append`, its other groups kept). Returns what changed.
pub async fn ensure_group(client: &PveClient, user: &str, target: &Target) -> Result<Vec<String>, Error> {
    let remote = |error: &pvetoken_client::ClientError| remote_error(error, target);
    let group = group_of(user);
    let mut changes = Vec::new();
    match client.create_group(&group, &format!("pvetoken minter {user}: its only member")).await {
        Ok(()) => changes.push(format!("created group {group}")),
        Err(error) if error.is_already_exists() => {}
        Err(error) => return Err(remote(&error)),
    }
    match client.create_user_in_group(user, &group, "pvetoken minter (tokens only, no password)").await {
        Ok(()) => changes.push(format!("created user {user} in group {group}")),
        Err(error) if error.is_already_exists() => {
            client.add_to_group(user, &group).await.map_err(|error| remote(&error))?;
        }
        Err(error) => return Err(remote(&error)),
    }
    Ok(changes)
}

/// Grants [`GROUP_ROLE`] (`User.Modify` alone) on the minter's group to the minter user and its token: what lets the
/// token create and delete the user's tokens (a token is never "self"). Returns what changed.
pub async fn grant_group(client: &PveClient, token: &TokenRef, target: &Target) -> Result<Vec<String>, Error> {
    let remote = |error: &pvetoken_client::ClientError| remote_error(error, target);
    let mut changes = Vec::new();
    let wanted = vec!["User.Modify".to_owned()];
    match client.role(GROUP_ROLE).await.map_err(|error| remote(&error))? {
        None => {
            client.create_role(GROUP_ROLE, &wanted).await.map_err(|error| remote(&error))?;
            changes.push(format!("created role {GROUP_ROLE} (User.Modify)"));
        }
        Some(current) if current != wanted => {
            client.set_role(GROUP_ROLE, &wanted).await.map_err(|error| remote(&error))?;
            changes.push(format!("set role {GROUP_ROLE} to User.Modify alone"));
        }
        Some(_) => {}
    }
    let path = format!("/access/groups/{}", group_of(&token.user));
    let change = AclChange::role(&path, GROUP_ROLE, false).user(&token.user).token(token.full());
    client.change_acl(&change).await.map_err(|error| remote(&error))?;
    changes.push(format!("granted {GROUP_ROLE} on {path} to {}, {}", token.user, token.full()));
    Ok(changes)
}

/// How the comment of a job token of `pvetoken exec` starts.
pub const EPHEMERAL: &str = "pvetoken exec ephemeral";

/// The comment `exec` gives a job token: that it is ephemeral, the host and process of its job, its expiry.
pub fn ephemeral_comment(host: &str, pid: u32, expire: i64) -> String {
    format!("{EPHEMERAL}; host={host}; pid={pid}; expires={expire}")
}

/// This host's name, as job token comments record it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// What to do with a token whose comment may mark it as a job token of `pvetoken exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ephemeral {
    /// Not a job token.
    No,
    /// A job token whose job may still run (another host's job is trusted until the token expires).
    Live,
    /// A job token that expired: delete it.
    Expired,
    /// A job token of this host whose process is gone: delete it.
    JobGone,
}

impl Ephemeral {
    /// Classifies a token by its comment and expiry; `host` is this host's name, `now` epoch seconds, and
    /// `process_exists` says whether a process id runs on this host.
    pub fn of(
        comment: Option<&str>,
        expire: i64,
        host: &str,
        now: i64,
        process_exists: impl Fn(&str) -> bool,
    ) -> Ephemeral {
        let Some(comment) = comment.filter(|c| c.starts_with(EPHEMERAL)) else { return Ephemeral::No };
        let field = |key: &str| comment.split("; ").find_map(|part| part.strip_prefix(key));
        if expire > 0 && expire <= now {
            Ephemeral::Expired
        } else if !host.is_empty()
            && field("host=") == Some(host)
            && field("pid=").is_some_and(|pid| !process_exists(pid))
        {
            Ephemeral::JobGone
        } else {
            Ephemeral::Live
        }
    }

    /// Classifies a token as seen from this host (its processes in `/proc`).
    pub fn here(comment: Option<&str>, expire: i64, now: i64) -> Ephemeral {
        Ephemeral::of(comment, expire, &hostname(), now, |pid| {
            pid.chars().all(|c| c.is_ascii_digit()) && std::path::Path::new("/proc").join(pid).exists()
        })
    }

    /// Whether `gc` and `apply --prune` delete it.
    pub fn is_stale(self) -> bool {
        matches!(self, Ephemeral::Expired | Ephemeral::JobGone)
    }

    /// Why it is deleted.
    pub fn reason(self) -> &'static str {
        match self {
            Ephemeral::Expired => "expired",
            Ephemeral::JobGone => "its job is gone",
            Ephemeral::Live => "its job may still run",
            Ephemeral::No => "not a job token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Ephemeral, ephemeral_comment};

    #[test]
    fn job_tokens_are_told_apart_by_comment_expiry_host_and_process() {
        let comment = ephemeral_comment("ci-1", 4242, 2_000);
        let running = |pid: &str| pid == "4242";
        let gone = |_: &str| false;
        assert_eq!(Ephemeral::of(Some("made by hand"), 1_000, "ci-1", 1_500, gone), Ephemeral::No);
        assert_eq!(Ephemeral::of(None, 0, "ci-1", 1_500, gone), Ephemeral::No);
        assert_eq!(Ephemeral::of(Some(&comment), 2_000, "ci-1", 1_500, running), Ephemeral::Live);
        assert_eq!(Ephemeral::of(Some(&comment), 2_000, "ci-1", 1_500, gone), Ephemeral::JobGone);
        // Another host's job cannot be looked at: trusted until its token expires.
        assert_eq!(Ephemeral::of(Some(&comment), 2_000, "ci-2", 1_500, gone), Ephemeral::Live);
        assert_eq!(Ephemeral::of(Some(&comment), 2_000, "ci-2", 2_000, gone), Ephemeral::Expired);
        assert!(Ephemeral::Expired.is_stale() && Ephemeral::JobGone.is_stale());
        assert!(!Ephemeral::Live.is_stale() && !Ephemeral::No.is_stale());
    }
}
