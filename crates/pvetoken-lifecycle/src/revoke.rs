//! Revoking a token on the server: its ACL entries first (so that a failure leaves a token the next run can
//! still find and finish), then the token. The owner's own ACL entries stay: the user may own other tokens.

use pvetoken_client::pve::{AclChange, PveClient};

use crate::error::Error;
use crate::target::{Target, remote_error};
use crate::token::TokenRef;

/// Deletes `token`'s ACL entries and then the token; returns the entries removed (`PATH ROLE`).
pub async fn revoke(client: &PveClient, target: &Target, token: &TokenRef) -> Result<Vec<String>, Error> {
    let remote = |error| remote_error(&error, target);
    if client.token(&token.user, &token.name).await.map_err(remote)?.is_none() {
        return Err(Error::usage(format!("{} does not exist", token.full()))
            .with_hint(format!("pvetoken list --user {} shows the user's tokens", token.user)));
    }
    let acl = client.acl().await.map_err(remote)?;
    let mut removed = Vec::new();
    for entry in acl.iter().filter(|entry| entry.kind == "token" && entry.ugid == token.full()) {
        client
            .change_acl(&AclChange::role(&entry.path, &entry.roleid, entry.propagate).token(token.full()).removing())
            .await
            .map_err(remote)?;
        removed.push(format!("{} {}", entry.path, entry.roleid));
    }
    client.delete_token(&token.user, &token.name).await.map_err(remote)?;
    Ok(removed)
}
