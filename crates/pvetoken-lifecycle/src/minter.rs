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

use crate::error::Error;
use crate::profiles::{Grant, PrivilegeNeed, Profile};

/// The minter user `create --minter` sets up unless told otherwise.
pub const DEFAULT_USER: &str = "pvetoken-minter@pve";

/// The minter's own token name.
pub const DEFAULT_TOKEN_NAME: &str = "mint";

/// The group whose only member is `user` (a group id: letters, digits, `.`, `-`, `_`).
pub fn group_of(user: &str) -> String {
    user.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '-' }).collect()
}

/// The minter's profile: every grant of `profiles`, one role `Token-minter-<names>`, and `User.Modify` on its own
/// group (what lets its token create and delete the user's tokens).
pub fn profile(profiles: &[Profile], user: &str) -> Result<Profile, Error> {
    if profiles.is_empty() {
        return Err(Error::usage("a minter needs at least one profile")
            .with_hint("pvetoken create --minter --profiles packer,ansible"));
    }
    let names: Vec<&str> = profiles.iter().map(|profile| profile.name.as_str()).collect();
    let mut grants: Vec<Grant> = profiles.iter().flat_map(|profile| profile.grants.iter().cloned()).collect();
    grants.push(Grant {
        path: format!("/access/groups/{}", group_of(user)),
        propagate: false,
        pool_narrowable: false,
        privileges: vec![PrivilegeNeed {
            name: "User.Modify".to_owned(),
            reason: "create and delete its own tokens (a token is never 'self': userid-group User.Modify on a group \
                     whose only member is the minter)"
                .to_owned(),
            since: None,
            before: None,
        }],
    });
    Ok(Profile {
        name: format!("minter-{}", names.join("-")),
        description: format!("pvetoken minter for {}: mints short-lived tokens with its own rights", names.join(", ")),
        role: Some(format!("Token-minter-{}", names.join("-"))),
        grants,
    })
}

/// Makes the minter's group and puts `user` in it: a missing user is created in it (no password: a token-only
/// user), an existing one is added to it (`append`, its other groups kept). Returns what changed.
pub async fn ensure_group(
    client: &pvetoken_client::pve::PveClient,
    user: &str,
    target: &crate::target::Target,
) -> Result<Vec<String>, Error> {
    let remote = |error: &pvetoken_client::ClientError| crate::target::remote_error(error, target);
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
