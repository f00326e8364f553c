//! `pvetoken rotate`: the policy flags (`--if-expiring-within`, `--if-older-than`, `--if-exists`), the token
//! file's lock, the sinks registered next to it, and the report. The rotation itself, with its safety rules, is
//! the lifecycle library's ([`pvetoken_lifecycle::rotate`]).

use std::path::PathBuf;

use clap::Args;
use pvetoken_client::pve::PveClient;
use pvetoken_lifecycle::rotate::{FailedSink, Rotated, Rotation, Sinks};
use pvetoken_lifecycle::token::TokenRef;
use pvetoken_lifecycle::token_store::{self, PreparedTokenFile};
use pvetoken_render::TokenFile;

use crate::connection::{ConnectionArgs, Target, TargetFallback};
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
    let token_file = match &args.token_file {
        Some(path) => path.clone(),
        None => token_store::default_token_path()?,
    };
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
        let sinks = RegisteredSinks { token_file: &token_file, target: &target, printer };
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

/// The sinks recorded next to a token file (Semaphore environments, OpenBao secrets, guest files).
pub(crate) struct RegisteredSinks<'a> {
    pub(crate) token_file: &'a std::path::Path,
    pub(crate) target: &'a Target,
    pub(crate) printer: &'a Printer,
}

impl Sinks for RegisteredSinks<'_> {
    async fn check(&self, admin: &PveClient) -> Result<(), Vec<FailedSink>> {
        check_sinks(self.token_file, admin).await
    }

    async fn update(&self, admin: &PveClient) -> Result<(), Vec<FailedSink>> {
        update_sinks(self.token_file, admin, self.target, self.printer).await
    }

    fn record(&self) -> String {
        crate::sinks::sinks_path(self.token_file).display().to_string()
    }
}

/// Checks every remembered sink before anything changes; all are tried, the failures returned.
async fn check_sinks(token_file: &std::path::Path, admin: &PveClient) -> Result<(), Vec<FailedSink>> {
    let sinks = crate::sinks::load(token_file)
        .map_err(|error| vec![FailedSink { sink: "the sink record".to_owned(), error: error.to_string() }])?;
    let mut failed = Vec::new();
    for sink in sinks {
        let result = match &sink {
            crate::sinks::SinkRecord::Semaphore(s) => crate::commands::register::semaphore_credentials_ready(s),
            crate::sinks::SinkRecord::Openbao(s) => crate::commands::register_openbao::preflight(s).await,
            crate::sinks::SinkRecord::Guest(s) => {
                // The guest agent must answer now, or the guest would keep a dead secret.
                let path = format!("/nodes/{}/qemu/{}/agent/ping", s.node, s.vmid);
                admin.post::<serde_json::Value>(&path, &Vec::new()).await.map(drop).map_err(anyhow::Error::from)
            }
        };
        if let Err(error) = result {
            failed.push(FailedSink { sink: sink.describe(), error: format!("{error:#}") });
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(failed) }
}

/// Sinks that could not take the current token (after `create` or `apply` made a new secret): each, and why.
pub(crate) fn stale_sinks(failed: &[FailedSink]) -> crate::exit::CliError {
    let list: Vec<String> = failed.iter().map(|f| format!("{}: {}", f.sink, f.error)).collect();
    crate::exit::CliError::remote(format!(
        "the token file holds a new secret, but {} sink(s) do not: {}",
        failed.len(),
        list.join("; ")
    ))
    .with_hint("fix what stops them and rerun: the secret is written to every recorded sink again")
}

/// Pushes the token file's (new) token to every remembered sink; all are tried, the failures returned.
async fn update_sinks(
    token_file: &std::path::Path,
    admin: &PveClient,
    target: &Target,
    printer: &Printer,
) -> Result<(), Vec<FailedSink>> {
    let sinks = crate::sinks::load(token_file)
        .map_err(|error| vec![FailedSink { sink: "the sink record".to_owned(), error: error.to_string() }])?;
    let mut failed = Vec::new();
    for sink in sinks {
        if let Err(failure) = update_sink(sink, token_file, admin, target, printer).await {
            failed.push(failure);
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(failed) }
}

/// Pushes the token file's token to one sink.
pub(crate) async fn update_sink(
    sink: crate::sinks::SinkRecord,
    token_file: &std::path::Path,
    admin: &PveClient,
    target: &Target,
    printer: &Printer,
) -> Result<(), FailedSink> {
    let describe = sink.describe();
    let result = match sink {
        crate::sinks::SinkRecord::Guest(guest) => {
            async {
                let token = token_store::read(token_file)?;
                let mut request =
                    crate::deliver::DeliveryRequest::new(guest.node.clone(), guest.vmid, "pvetoken rotate");
                request.guest_path = guest.guest_path.clone();
                request.owner = guest.owner.clone();
                crate::deliver::deliver(admin, target, &request, &token, printer).await?;
                printer.info(&format!("{describe} holds the new token"));
                Ok::<_, anyhow::Error>(())
            }
            .await
        }
        crate::sinks::SinkRecord::Openbao(sink) => {
            crate::commands::register_openbao::refresh(&sink, token_file, printer).await
        }
        crate::sinks::SinkRecord::Semaphore(sink) => {
            crate::commands::register::refresh_semaphore_sink(&sink, token_file, printer).await
        }
    };
    result.map_err(|error| FailedSink { sink: describe, error: format!("{error:#}") })
}
