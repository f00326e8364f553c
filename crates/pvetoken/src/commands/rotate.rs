//! `pvetoken rotate`: the policy flags (`--if-expiring-within`, `--if-older-than`, `--if-exists`), the token
//! file's lock, the sinks registered next to it, and the report. The rotation itself, with its safety rules, is
//! the lifecycle library's ([`pvetoken_lifecycle::rotate`]).

use std::path::PathBuf;

use clap::Args;
use pvetoken_lifecycle::rotate::{Rotated, Rotation};
use pvetoken_lifecycle::token::TokenRef;
use pvetoken_lifecycle::token_store::{self, PreparedTokenFile};
use pvetoken_render::TokenFile;

use crate::connection::{ConnectionArgs, TargetFallback};
use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Token file holding the token to rotate (it is updated in place).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Rotate only when the token expires within this span (e.g. 14d) or has expired; a token that never
    /// expires is not due by this rule. Not due: exit 0, nothing changed, so a daily timer can run it.
    #[arg(long, value_name = "SPAN", value_parser = pvetoken_lifecycle::clock::parse_span)]
    pub if_expiring_within: Option<i64>,
    /// Rotate only when the token file was last written (by create or rotate) longer ago than this span (e.g.
    /// 90d). With --if-expiring-within, either rule makes the token due.
    #[arg(long, value_name = "SPAN", value_parser = pvetoken_lifecycle::clock::parse_span)]
    pub if_older_than: Option<i64>,
    /// Exit 0 with one line when the token file does not exist (nothing to rotate), instead of an error.
    #[arg(long)]
    pub if_exists: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Why a token is (or is not) due under the policy flags; `None` when no policy flag was given.
fn due(args: &RotateArgs, saved: &TokenFile, token_file: &std::path::Path) -> Option<(bool, Vec<String>)> {
    if args.if_expiring_within.is_none() && args.if_older_than.is_none() {
        return None;
    }
    let now = pvetoken_lifecycle::clock::now();
    let days = |seconds: i64| seconds.div_euclid(86_400);
    let mut reasons = Vec::new();
    let mut is_due = false;
    if let Some(within) = args.if_expiring_within {
        let expire = i64::try_from(saved.expire).unwrap_or(i64::MAX);
        if expire == 0 {
            reasons.push("it never expires".to_owned());
        } else if expire <= now {
            is_due = true;
            reasons.push("it has expired".to_owned());
        } else if expire - now <= within {
            is_due = true;
            reasons.push(format!("it expires in {} day(s), within {} day(s)", days(expire - now), days(within)));
        } else {
            reasons.push(format!("it expires in {} day(s), not within {} day(s)", days(expire - now), days(within)));
        }
    }
    if let Some(older) = args.if_older_than {
        let written = std::fs::metadata(token_file)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(now, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(now));
        let age = now.saturating_sub(written);
        if age >= older {
            is_due = true;
            reasons.push(format!("it was written {} day(s) ago, at least {} day(s)", days(age), days(older)));
        } else {
            reasons.push(format!("it was written {} day(s) ago, less than {} day(s)", days(age), days(older)));
        }
    }
    Some((is_due, reasons))
}

/// Runs `pvetoken rotate`.
pub fn run(args: RotateArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let token_file = token_store::path_or_default(args.token_file.as_deref())?;
    if args.if_exists && std::fs::symlink_metadata(&token_file).is_err() {
        let line = format!(
            "no token file at {}: nothing to rotate (create one with pvetoken create --profile P --token-file {0})",
            token_file.display()
        );
        if printer.is_json() {
            printer
                .json(&serde_json::json!({ "rotated": null, "status": "no-token-file", "token_file": token_file }))?;
        } else {
            printer.data(&line)?;
        }
        return Ok(Exit::Success);
    }
    let _lock = token_store::lock(&token_file, printer)?;
    let saved = token_store::read(&token_file)?;
    if let Some((false, reasons)) = due(&args, &saved, &token_file) {
        let line = format!("{} is not due for rotation: {}", saved.token_id.as_str(), reasons.join("; "));
        if printer.is_json() {
            printer.json(&serde_json::json!({
                "rotated": null,
                "status": "not-due",
                "token_id": saved.token_id.as_str(),
                "reasons": reasons,
                "token_file": token_file,
            }))?;
        } else {
            printer.data(&line)?;
        }
        return Ok(Exit::Success);
    }
    let token = TokenRef::parse(saved.token_id.as_str())?;
    let fallback = TargetFallback::from_token_file(&saved);
    let target = args.connection.resolve_target(&fallback, printer)?;
    let admin = args.connection.resolve_admin()?;
    let timeout = args.connection.timeout();
    let runtime = tokio::runtime::Runtime::new()?;
    let rotated = runtime.block_on(async {
        let prepared = PreparedTokenFile::prepare(&token_file)?;
        let http = crate::connection::http_client(&target, timeout)?;
        let client = crate::connection::connect_admin(&target, http.as_ref(), &admin, timeout).await?;
        let sinks = crate::sinks::RegisteredSinks { token_file: &token_file, target: &target, printer };
        let mut rotation = Rotation::new(&client, http, &target, timeout, printer);
        Ok::<_, anyhow::Error>(rotation.rotate(&token_file, &saved, prepared, &sinks).await?)
    })?;
    let Rotated { new_id, requests, detection, finished_interrupted, .. } = rotated;
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "rotated": token.full(),
            "token_id": new_id,
            "token_file": token_file,
            "requests": requests,
            "method": detection.method,
            "release": detection,
            "finished_interrupted_rotation": finished_interrupted,
        }))?;
    } else {
        printer.success(&format!(
            "rotated {} → {new_id}; {} updated ({requests} requests)",
            token.full(),
            token_file.display()
        ));
    }
    Ok(Exit::Success)
}
