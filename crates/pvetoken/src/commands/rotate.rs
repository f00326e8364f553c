//! `pvetoken rotate`: a new secret (PVE 9.1+: `regenerate=1` on the same token; before: a new token with the same
//! ACLs), saved to the token file, verified, pushed to every registered sink, then the old token retired.

use std::path::PathBuf;

use clap::Args;
use pvetoken_api::Secret;
use pvetoken_client::pve::{AclChange, PveClient};

use super::create::{CreateArgs, TokenRef, create_and_save, target_fingerprint, target_url, token_glue};
use crate::connection::{ConnectionArgs, Target, TargetFallback, remote_error};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use crate::profiles::PveVersion;

/// Arguments of `pvetoken rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Token file holding the token to rotate (it is updated in place).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

const REGENERATE_SINCE: PveVersion = PveVersion { major: 9, minor: 1 };

/// Replaces the secret of an existing token whose secret is not saved (`create --rotate-if-exists`): regenerate on
/// 9.1+, else delete and create again. Saves the new secret through `prepared`.
#[expect(clippy::too_many_arguments, reason = "mirrors create_and_save")]
pub(crate) async fn replace_secret(
    client: &PveClient,
    token: &TokenRef,
    pve: &PveVersion,
    args: &CreateArgs,
    expire: i64,
    prepared: token_glue::Prepared,
    target: &Target,
    node: &str,
    token_file: &std::path::Path,
    changes: &mut Vec<String>,
) -> anyhow::Result<Secret> {
    if *pve >= REGENERATE_SINCE {
        let regenerated =
            client.regenerate_token(&token.user, &token.name).await.map_err(|error| remote_error(&error, target))?;
        let saved = token_glue::Saved {
            url: target_url(target),
            node: node.to_owned(),
            token_id: token.full(),
            secret: regenerated.value.clone(),
            fingerprint: target_fingerprint(target),
            expire: if expire > 0 { Some(expire) } else { None },
        };
        token_glue::commit(prepared, &saved).map_err(|error| {
            CliError::usage(format!(
                "the secret of {} was regenerated but cannot be saved to {}: {error:#}",
                token.full(),
                token_file.display()
            ))
            .with_hint("fix the directory and rerun with --rotate-if-exists (the new secret is lost)")
        })?;
        changes.push(format!("regenerated the secret of {}", token.full()));
        return Ok(regenerated.value);
    }
    client.delete_token(&token.user, &token.name).await.map_err(|error| remote_error(&error, target))?;
    changes.push(format!("deleted {} (PVE {pve} cannot regenerate a secret)", token.full()));
    create_and_save(client, token, args, expire, prepared, target, node, pve, token_file, changes).await
}

/// Runs `pvetoken rotate`.
pub fn run(args: RotateArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let token_file = match &args.token_file {
        Some(path) => path.clone(),
        None => token_glue::default_path()?,
    };
    let saved = token_glue::read(&token_file)?;
    let token = TokenRef::parse(&saved.token_id)?;
    let fallback = TargetFallback { url: Some(saved.url.clone()), fingerprint: saved.fingerprint.clone() };
    let target = args.connection.resolve_target(&fallback)?;
    let admin = args.connection.resolve_admin()?;
    let timeout = args.connection.timeout();
    let runtime = tokio::runtime::Runtime::new()?;
    let new_id = runtime.block_on(async {
        let prepared = token_glue::prepare(&token_file)?;
        let http = crate::connection::http_client(&target, timeout)?;
        let admin_token = token_glue::read_admin_token(&admin)?;
        let client = crate::connection::connect_admin(
            &target,
            http.as_ref(),
            &admin,
            admin_token.as_ref().map(|(id, secret)| (id.as_str(), secret)),
            timeout,
        )
        .await?;
        let remote = |error| remote_error(&error, &target);
        let version = client.version().await.map_err(remote)?;
        let pve = version.major_minor().map(|(major, minor)| PveVersion { major, minor }).unwrap_or(REGENERATE_SINCE);
        let (new_token, secret) = if pve >= REGENERATE_SINCE {
            let regenerated = client.regenerate_token(&token.user, &token.name).await.map_err(remote)?;
            (token.clone(), regenerated.value)
        } else {
            // A new token with the same ACLs; the old one keeps working until the new one is verified and saved.
            let info = client.token(&token.user, &token.name).await.map_err(remote)?.ok_or_else(|| {
                CliError::remote(format!("{} does not exist on the server", token.full()))
                    .with_hint("create it again: pvetoken create --profile P")
            })?;
            let base = token.name.split("-r").next().unwrap_or(&token.name).to_owned();
            let new_token = TokenRef { user: token.user.clone(), name: format!("{base}-r{}", super::create::now()) };
            let created = client
                .create_token(
                    &new_token.user,
                    &new_token.name,
                    &pvetoken_client::pve::NewToken {
                        privsep: info.privsep,
                        expire: info.expire,
                        comment: info.comment,
                    },
                )
                .await
                .map_err(remote)?;
            let acl = client.acl().await.map_err(remote)?;
            for entry in acl.iter().filter(|entry| entry.kind == "token" && entry.ugid == token.full()) {
                client
                    .change_acl(&AclChange {
                        path: entry.path.clone(),
                        roles: vec![entry.roleid.clone()],
                        users: vec![],
                        tokens: vec![new_token.full()],
                        propagate: entry.propagate,
                        delete: false,
                    })
                    .await
                    .map_err(remote)?;
            }
            (new_token, created.value)
        };
        let saved_new = token_glue::Saved {
            url: saved.url.clone(),
            node: saved.node.clone(),
            token_id: new_token.full(),
            secret: secret.clone(),
            fingerprint: saved.fingerprint.clone(),
            expire: saved.expire,
        };
        token_glue::commit(prepared, &saved_new)?;
        // Verify the new secret before the old one stops working.
        let token_client =
            super::verify::token_client(&client, http.as_ref(), &target, &new_token.full(), &secret, timeout);
        token_client.version().await.map_err(|error| {
            CliError::remote(format!("the new secret does not work: {error}"))
                .with_hint("the old token was kept; check the server and rerun pvetoken rotate")
        })?;
        for sink in crate::sinks::load(&token_file)? {
            match sink {
                crate::sinks::SinkRecord::Semaphore(sink) => {
                    crate::commands::register::refresh_semaphore_sink(&sink, &token_file, printer)?;
                }
            }
        }
        if new_token != token {
            client.delete_token(&token.user, &token.name).await.map_err(remote)?;
        }
        Ok::<_, anyhow::Error>(new_token.full())
    })?;
    if printer.is_json() {
        printer.json(&serde_json::json!({"rotated": token.full(), "token_id": new_id, "token_file": token_file}))?;
    } else {
        printer.success(&format!("rotated {} → {new_id}; {} updated", token.full(), token_file.display()));
    }
    Ok(Exit::Success)
}
