//! `pvetoken revoke USER@REALM!NAME`: delete the token and its ACL entries.

use clap::Args;
use pvetoken_client::pve::AclChange;

use super::create::TokenRef;
use crate::connection::{ConnectionArgs, remote_error};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;

/// Arguments of `pvetoken revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Full token id, `user@realm!name`.
    #[arg(value_name = "TOKEN_ID")]
    pub token_id: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Runs `pvetoken revoke`.
pub fn run(args: RevokeArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let token = TokenRef::parse(&args.token_id)?;
    let target = args.connection.resolve_target(&super::create::token_file_fallback())?;
    let admin = args.connection.resolve_admin()?;
    let timeout = args.connection.timeout();
    let runtime = tokio::runtime::Runtime::new()?;
    let removed_acls = runtime.block_on(async {
        let http = crate::connection::http_client(&target, timeout)?;
        let admin_token = crate::connection::read_admin_token(&admin)?;
        let client = crate::connection::connect_admin(
            &target,
            http.as_ref(),
            &admin,
            admin_token.as_ref().map(|(id, secret)| (id.as_str(), secret)),
            timeout,
        )
        .await?;
        let remote = |error| remote_error(&error, &target);
        if client.token(&token.user, &token.name).await.map_err(remote)?.is_none() {
            return Err(anyhow::Error::from(
                CliError::usage(format!("{} does not exist", token.full()))
                    .with_hint(format!("pvetoken list --user {} shows the user's tokens", token.user)),
            ));
        }
        // ACL entries first, so that a failure leaves a token that the next run can still find and finish.
        let acl = client.acl().await.map_err(remote)?;
        let mut removed = Vec::new();
        for entry in acl.iter().filter(|entry| entry.kind == "token" && entry.ugid == token.full()) {
            client
                .change_acl(&AclChange {
                    path: entry.path.clone(),
                    roles: vec![entry.roleid.clone()],
                    users: vec![],
                    tokens: vec![token.full()],
                    propagate: entry.propagate,
                    delete: true,
                })
                .await
                .map_err(remote)?;
            removed.push(format!("{} {}", entry.path, entry.roleid));
        }
        client.delete_token(&token.user, &token.name).await.map_err(remote)?;
        Ok(removed)
    })?;
    if printer.is_json() {
        printer.json(&serde_json::json!({"revoked": token.full(), "acl_entries_removed": removed_acls}))?;
    } else {
        printer.success(&format!("revoked {} and {} ACL entries", token.full(), removed_acls.len()));
    }
    Ok(Exit::Success)
}
