//! `pvetoken revoke USER@REALM!NAME`: delete the token and its ACL entries, then the local token file that holds
//! its (now useless) secret.
//!
//! The server side is the lifecycle library's ([`pvetoken_lifecycle::revoke`]); here the token file and its sink
//! record are forgotten. Sinks the token was handed to are named in a warning, since they still hold the dead
//! secret.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::connection::{ConnectionArgs, Target, TargetFallback};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use pvetoken_lifecycle::token::TokenRef;
use pvetoken_lifecycle::token_store;

/// Arguments of `pvetoken revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Full token id, `user@realm!name`.
    #[arg(value_name = "TOKEN_ID")]
    pub token_id: String,
    /// Token file to remove when it holds the revoked token (default: the standard token file). A file holding any
    /// other token is left alone.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Keep the token file even when it holds the revoked token.
    #[arg(long)]
    pub keep_token_file: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Runs `pvetoken revoke`.
pub fn run(args: RevokeArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let token = TokenRef::parse(&args.token_id)?;
    let token_file = token_store::path_or_default(args.token_file.as_deref()).ok();
    let target = args.connection.resolve_target(&TargetFallback::from_default_token_file(), printer)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let removed_acls = runtime.block_on(async {
        let session = args.connection.admin_session(target.clone()).await?;
        Ok::<_, anyhow::Error>(pvetoken_lifecycle::revoke::revoke(&session.client, &target, &token).await?)
    })?;
    let local = match token_file.as_deref() {
        Some(path) if !args.keep_token_file => forget_local_copy(path, &token.full(), &target, printer)?,
        _ => LocalCopy::default(),
    };
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "revoked": token.full(),
            "acl_entries_removed": removed_acls,
            "token_file_removed": local.removed.as_ref().map(|path| path.display().to_string()),
            "sinks_still_holding_secret": local.sinks,
        }))?;
    } else {
        printer.success(&format!("revoked {} and {} ACL entries", token.full(), removed_acls.len()));
        if let Some(path) = &local.removed {
            printer.info(&format!("removed {} (it held the revoked token)", path.display()));
        }
    }
    Ok(Exit::Success)
}

/// What happened to the local copy of a revoked token.
#[derive(Debug, Default)]
struct LocalCopy {
    /// The token file removed, if it held the revoked token.
    removed: Option<PathBuf>,
    /// Sinks that were handed the token (they still hold its dead secret).
    sinks: Vec<String>,
}

/// Removes `path` (and its sink record) when it holds `full_id` of the server just revoked on; names the sinks
/// that still hold the dead secret. A missing file, or a file holding another token or a token of another server
/// (same id, different URL), is left alone.
fn forget_local_copy(path: &Path, full_id: &str, target: &Target, printer: &Printer) -> anyhow::Result<LocalCopy> {
    let saved = match token_store::read_if_exists(path) {
        Ok(Some(saved)) => saved,
        Ok(None) => return Ok(LocalCopy::default()),
        Err(error) => {
            // Say why the file stays (a link, someone else's file, readable by others) instead of keeping it
            // silently.
            printer.warn(&format!("kept {}: {}", path.display(), error.message));
            return Ok(LocalCopy::default());
        }
    };
    if saved.token_id.as_str() != full_id {
        return Ok(LocalCopy::default());
    }
    if !pvetoken_lifecycle::engine::same_server(&saved, target) {
        printer.info(&format!(
            "kept {}: it holds {full_id} of {}, not of {}",
            path.display(),
            saved.url,
            target.describe()
        ));
        return Ok(LocalCopy::default());
    }
    let sinks: Vec<String> = crate::sinks::load(path)?.iter().map(crate::sinks::SinkRecord::describe).collect();
    for sink in &sinks {
        printer.warn(&format!("{sink} still holds the revoked token's secret: remove or replace it there"));
    }
    std::fs::remove_file(path).map_err(|error| {
        CliError::usage(format!("revoked on the server, but cannot remove {}: {error}", path.display()))
            .with_hint("delete the file by hand; its secret no longer works")
    })?;
    let record = crate::sinks::sinks_path(path);
    if let Err(error) = std::fs::remove_file(&record)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        printer.warn(&format!("cannot remove {}: {error}", record.display()));
    }
    Ok(LocalCopy { removed: Some(path.to_path_buf()), sinks })
}
