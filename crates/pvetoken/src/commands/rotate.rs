//! `pvetoken rotate`: a new secret, saved to the token file, verified, pushed to every registered sink, then the
//! old token retired.
//!
//! The method depends on the installed libpve-access-control, read from the server ([`pvetoken_lifecycle::release`]), never on
//! `GET /version` alone:
//! - access-control 9.1.0+ (PVE 9.2, late 9.1): `PUT .../token/NAME regenerate=1` on the same token (the old
//!   secret stops working at once; the new one is saved before anything else happens), then every sink updated.
//! - otherwise, or when the version cannot be read: a new token `NAME-rN` with the old token's settings and ACLs;
//!   the token file is switched to it only after its secret is saved; the ACLs are copied and the new token
//!   verified (its permissions must equal the old one's); every sink is updated; only then is the old token
//!   deleted. A failure before the sinks restores the old token file and deletes the new token. A run killed after
//!   the switch leaves the token file naming `NAME-rN` while `NAME` still exists: the next run finishes that
//!   rotation (copies the ACL entries `NAME-rN` lacks, updates the sinks, then deletes `NAME`) instead of starting
//!   a new one. A sink that cannot be updated keeps the old token alive and is reported by name.

use std::path::PathBuf;

use clap::Args;
use pvetoken_api::Secret;
use pvetoken_client::ClientError;
use pvetoken_client::pve::{AclChange, NewToken, PveClient};
use pvetoken_render::TokenFile;

use crate::connection::{ConnectionArgs, Target, TargetFallback, remote_error};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use pvetoken_lifecycle::engine::pending;
use pvetoken_lifecycle::release::{self, RotationMethod};
use pvetoken_lifecycle::token::{TokenRef, next_rotation_name};
use pvetoken_lifecycle::token_store::{self, PreparedTokenFile};

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
    let outcome = runtime.block_on(async {
        let prepared = PreparedTokenFile::prepare(&token_file)?;
        let http = crate::connection::http_client(&target, timeout)?;
        let client = crate::connection::connect_admin(&target, http.as_ref(), &admin, timeout).await?;
        let mut rotation = Rotation { client, http, target: &target, timeout, token_requests: 0 };
        let detection = release::detect(&rotation.client, Some(saved.node.as_str())).await;
        printer.verbose(&format!("release: {}", detection.describe()));
        if let Some(previous) = rotation.interrupted_predecessor(&token).await? {
            // An earlier run switched the token file to this token but stopped before the old one was retired:
            // finish that rotation (ACLs, sinks, then delete) instead of starting a new one.
            rotation.copy_missing_acls(&previous, &token, printer).await?;
            rotation.check_works(&token, &saved.secret).await?;
            update_sinks(&token_file, &rotation.client, &target, printer).await.map_err(|failed| {
                sinks_failed(&failed, &format!("{} (the old token, kept until they are updated)", previous.full()))
            })?;
            rotation.delete_old(&previous, &token).await?;
            printer.warn(&format!(
                "finished the interrupted rotation {} → {}; deleted the old token",
                previous.full(),
                token.full()
            ));
            return Ok::<_, anyhow::Error>(Outcome {
                new_id: token.full(),
                requests: rotation.requests(),
                detection,
                finished_interrupted: true,
            });
        }
        // Every sink must be reachable with its credentials before the secret changes: a regenerated secret
        // kills the old one at once, and a sink that cannot take the new one would be left dead.
        check_sinks(&token_file, &rotation.client).await.map_err(|failed| {
            let list: Vec<String> = failed.iter().map(|f| format!("{}: {}", f.sink, f.error)).collect();
            CliError::remote(format!(
                "nothing was rotated: {} sink(s) could not take a new secret now: {}",
                failed.len(),
                list.join("; ")
            ))
            .with_hint(format!(
                "fix what stops them (see above) and rerun, or remove a sink you no longer use from {}",
                crate::sinks::sinks_path(&token_file).display()
            ))
        })?;
        let new_token = match detection.method {
            RotationMethod::Regenerate => rotation.regenerate(&token, &saved, prepared, &token_file).await?,
            RotationMethod::NewToken => rotation.replace(&token, &saved, prepared, &token_file).await?,
        };
        if let Err(failed) = update_sinks(&token_file, &rotation.client, &target, printer).await {
            return Err(if new_token == token {
                sinks_failed(&failed, "the old secret, which no longer works")
            } else {
                sinks_failed(
                    &failed,
                    &format!(
                        "{} (the old token; it is kept, so they still work, until they are updated)",
                        token.full()
                    ),
                )
            }
            .into());
        }
        if new_token != token {
            rotation.delete_old(&token, &new_token).await?;
        }
        Ok(Outcome { new_id: new_token.full(), requests: rotation.requests(), detection, finished_interrupted: false })
    })?;
    let Outcome { new_id, requests, detection, finished_interrupted } = outcome;
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

/// What one rotation did.
struct Outcome {
    new_id: String,
    requests: u64,
    detection: release::Detection,
    finished_interrupted: bool,
}

/// A sink that could not be brought up to date: what it is and why.
struct FailedSink {
    sink: String,
    error: String,
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
        match sink {
            crate::sinks::SinkRecord::Guest(guest) => {
                let result = async {
                    let token = token_store::read(token_file)?;
                    let mut request =
                        crate::deliver::DeliveryRequest::new(guest.node.clone(), guest.vmid, "pvetoken rotate");
                    request.guest_path = guest.guest_path.clone();
                    request.owner = guest.owner.clone();
                    crate::deliver::deliver(admin, target, &request, &token, printer).await?;
                    printer.info(&format!(
                        "{} holds the new token",
                        crate::sinks::SinkRecord::Guest(guest.clone()).describe()
                    ));
                    Ok::<_, anyhow::Error>(())
                }
                .await;
                if let Err(error) = result {
                    failed.push(FailedSink {
                        sink: crate::sinks::SinkRecord::Guest(guest).describe(),
                        error: format!("{error:#}"),
                    });
                }
            }
            crate::sinks::SinkRecord::Openbao(sink) => {
                if let Err(error) = crate::commands::register_openbao::refresh(&sink, token_file, printer).await {
                    failed.push(FailedSink {
                        sink: crate::sinks::SinkRecord::Openbao(sink.clone()).describe(),
                        error: format!("{error:#}"),
                    });
                }
            }
            crate::sinks::SinkRecord::Semaphore(sink) => {
                if let Err(error) = crate::commands::register::refresh_semaphore_sink(&sink, token_file, printer).await
                {
                    failed.push(FailedSink {
                        sink: format!(
                            "Semaphore environment `{}` (project {}, {})",
                            sink.environment, sink.project, sink.url
                        ),
                        error: format!("{error:#}"),
                    });
                }
            }
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(failed) }
}

/// The error for sinks left holding an old secret: each sink, why, and how to finish.
fn sinks_failed(failed: &[FailedSink], holding: &str) -> CliError {
    let list: Vec<String> = failed.iter().map(|f| format!("{}: {}", f.sink, f.error)).collect();
    CliError::remote(format!(
        "the token file holds the new secret, but {} sink(s) could not be updated and still hold {holding}: {}",
        failed.len(),
        list.join("; ")
    ))
    .with_hint("fix what stops them (see above) and rerun pvetoken rotate: it updates the sinks and then finishes")
}

struct Rotation<'a> {
    client: PveClient,
    http: Option<reqwest::Client>,
    target: &'a Target,
    timeout: std::time::Duration,
    token_requests: u64,
}

impl Rotation<'_> {
    fn requests(&self) -> u64 {
        self.client.requests_sent() + self.token_requests
    }

    fn remote(&self, error: &ClientError) -> CliError {
        remote_error(error, self.target)
    }

    /// The token's permissions, as itself (or as root through pvesh).
    async fn permissions(
        &mut self,
        token_id: &str,
        secret: &Secret,
    ) -> Result<pvetoken_api::pve::Permissions, ClientError> {
        let (result, requests) = pvetoken_lifecycle::verify::token_permissions(
            &self.client,
            self.http.as_ref(),
            self.target,
            token_id,
            secret,
            self.timeout,
        )
        .await;
        self.token_requests += requests;
        result
    }

    /// The token an interrupted new-token rotation left behind (`NAME` for `NAME-r1`, `NAME-r1` for `NAME-r2`),
    /// if it still exists. The token file already names its successor; the old one may still hold the ACLs and
    /// still be what sinks use, so it is only deleted after both are carried over.
    async fn interrupted_predecessor(&self, token: &TokenRef) -> Result<Option<TokenRef>, CliError> {
        let base = pvetoken_lifecycle::token::rotation_base(&token.name);
        let Some(number) =
            token.name.strip_prefix(base).and_then(|rest| rest.strip_prefix("-r")).and_then(|n| n.parse::<u64>().ok())
        else {
            return Ok(None);
        };
        let previous = if number <= 1 { base.to_owned() } else { format!("{base}-r{}", number - 1) };
        let exists = self.client.token(&token.user, &previous).await.map_err(|error| self.remote(&error))?.is_some();
        Ok(exists.then(|| TokenRef { user: token.user.clone(), name: previous }))
    }

    /// Gives `new` every ACL entry `old` has that `new` lacks (same path, role and propagate flag).
    async fn copy_missing_acls(&self, old: &TokenRef, new: &TokenRef, printer: &Printer) -> Result<(), CliError> {
        let acl = self.client.acl().await.map_err(|error| self.remote(&error))?;
        let held = |ugid: String| {
            acl.iter()
                .filter(move |entry| entry.kind == "token" && entry.ugid == ugid)
                .map(|entry| (entry.path.clone(), entry.roleid.clone(), entry.propagate))
        };
        let have: std::collections::BTreeSet<_> = held(new.full()).collect();
        let mut copied = 0;
        for (path, roleid, propagate) in held(old.full()).filter(|entry| !have.contains(entry)) {
            self.client
                .change_acl(&AclChange {
                    path,
                    roles: vec![roleid],
                    users: vec![],
                    tokens: vec![new.full()],
                    propagate,
                    delete: false,
                })
                .await
                .map_err(|error| self.remote(&error))?;
            copied += 1;
        }
        if copied > 0 {
            printer.info(&format!("copied {copied} missing ACL entries from {} to {}", old.full(), new.full()));
        }
        Ok(())
    }

    /// The saved secret authenticates (the token's permissions can be read as itself).
    async fn check_works(&mut self, token: &TokenRef, secret: &Secret) -> Result<(), CliError> {
        self.permissions(&token.full(), secret)
            .await
            .map(|_| ())
            .map_err(|error| pvetoken_lifecycle::target::token_refused(&error, self.target).into())
    }

    /// Deletes the old token once the new one holds its ACLs and every sink holds the new secret.
    async fn delete_old(&self, old: &TokenRef, new: &TokenRef) -> Result<(), CliError> {
        self.client.delete_token(&old.user, &old.name).await.map_err(|error| {
            CliError::remote(format!(
                "rotated to {}, but deleting the old token {} failed: {error}",
                new.full(),
                old.full()
            ))
            .with_hint("the token file already holds the new token; rerun pvetoken rotate to finish".to_string())
        })
    }

    /// libpve-access-control 9.1.0+: a new secret for the same token, saved at once, then tried.
    async fn regenerate(
        &mut self,
        token: &TokenRef,
        saved: &TokenFile,
        prepared: PreparedTokenFile,
        token_file: &std::path::Path,
    ) -> anyhow::Result<TokenRef> {
        let regenerated = self.client.regenerate_token(&token.user, &token.name).await.map_err(|error| {
            let mut cli = self.remote(&error);
            if error.sent() != pvetoken_client::Sent::No {
                cli.hint = Some(
                    "the server may have issued a new secret that never arrived; the saved one may no longer work: \
                     rerun pvetoken rotate"
                        .to_owned(),
                );
            }
            cli
        })?;
        let mut file = saved.clone();
        file.secret = regenerated.value.clone();
        prepared.commit_or_keep(&file).map_err(|error| {
            let hint = error.hint.clone().unwrap_or_else(|| {
                "fix the directory and rerun pvetoken rotate (the old secret no longer works)".to_owned()
            });
            CliError::usage(format!(
                "the secret of {} was regenerated but cannot be saved to {}: {}",
                token.full(),
                token_file.display(),
                error.message
            ))
            .with_hint(hint)
        })?;
        self.permissions(&token.full(), &regenerated.value)
            .await
            .map_err(|error| pvetoken_lifecycle::target::token_refused(&error, self.target))?;
        Ok(token.clone())
    }

    /// Without regenerate: a new token with the same settings and ACLs; undone entirely when any step fails.
    async fn replace(
        &mut self,
        token: &TokenRef,
        saved: &TokenFile,
        prepared: PreparedTokenFile,
        token_file: &std::path::Path,
    ) -> anyhow::Result<TokenRef> {
        let info = self.client.token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?.ok_or_else(
            || {
                CliError::remote(format!("{} does not exist on the server", token.full()))
                    .with_hint("create it again: pvetoken create --profile PROFILE")
            },
        )?;
        let before = self.permissions(&token.full(), &saved.secret).await.map_err(|error| {
            let mut cli = pvetoken_lifecycle::target::token_refused(&error, self.target);
            cli.hint =
                Some("the saved secret no longer works: pvetoken create --rotate-if-exists replaces it".to_owned());
            cli
        })?;
        let new_token = TokenRef { user: token.user.clone(), name: next_rotation_name(&token.name) };
        // A token of that name left behind by an interrupted rotation has no saved secret: replace it.
        if self.client.token(&new_token.user, &new_token.name).await.map_err(|error| self.remote(&error))?.is_some() {
            if !pending::names(token_file, &new_token.full()) {
                return Err(CliError::usage(format!(
                    "{} already exists and is not the rotation target",
                    new_token.full()
                ))
                .with_hint(format!("revoke it first: pvetoken revoke {}", new_token.full()))
                .into());
            }
            self.client.delete_token(&new_token.user, &new_token.name).await.map_err(|error| self.remote(&error))?;
        }
        pending::mark(token_file, &new_token.full())?;
        let new = NewToken { privsep: info.privsep, expire: info.expire, comment: info.comment.clone() };
        let created = match self.client.create_token(&new_token.user, &new_token.name, &new).await {
            Ok(created) => created,
            Err(error) => {
                if error.sent() != pvetoken_client::Sent::No
                    && let Ok(Some(_)) = self.client.token(&new_token.user, &new_token.name).await
                    && self.client.delete_token(&new_token.user, &new_token.name).await.is_ok()
                {
                    pending::clear(token_file);
                }
                return Err(self.remote(&error).into());
            }
        };
        let mut file = saved.clone();
        file.token_id = created.full_tokenid.parse().map_err(|_| {
            CliError::remote(format!("the server answered with an invalid token id `{}`", created.full_tokenid))
        })?;
        file.secret = created.value.clone();
        if let Err(error) = prepared.commit(&file) {
            self.undo(&new_token, None, token_file).await;
            return Err(CliError::usage(format!(
                "cannot save the new secret: {}; the rotation was undone",
                error.message
            ))
            .with_hint("fix the token file's directory and rerun pvetoken rotate")
            .into());
        }
        pending::clear(token_file);
        let result = self.finish_replacement(token, &new_token, &created.value, &before).await;
        if let Err(mut error) = result {
            self.undo(&new_token, Some(saved), token_file).await;
            error.message =
                format!("{}; the rotation was undone (the token file holds the old token again)", error.message);
            return Err(error.into());
        }
        Ok(new_token)
    }

    async fn finish_replacement(
        &mut self,
        old: &TokenRef,
        new: &TokenRef,
        secret: &Secret,
        before: &pvetoken_api::pve::Permissions,
    ) -> Result<(), CliError> {
        let acl = self.client.acl().await.map_err(|error| self.remote(&error))?;
        for entry in acl.iter().filter(|entry| entry.kind == "token" && entry.ugid == old.full()) {
            self.client
                .change_acl(&AclChange {
                    path: entry.path.clone(),
                    roles: vec![entry.roleid.clone()],
                    users: vec![],
                    tokens: vec![new.full()],
                    propagate: entry.propagate,
                    delete: false,
                })
                .await
                .map_err(|error| self.remote(&error))?;
        }
        let after = self
            .permissions(&new.full(), secret)
            .await
            .map_err(|error| pvetoken_lifecycle::target::token_refused(&error, self.target))?;
        if &after != before {
            return Err(CliError::remote(format!(
                "the new token {} does not have the same permissions as {}",
                new.full(),
                old.full()
            ))
            .with_hint("check the ACLs (pvetoken verify) and rerun pvetoken rotate"));
        }
        Ok(())
    }

    /// Puts the old token file back (when it was replaced) and deletes the new token.
    async fn undo(&self, new: &TokenRef, old_file: Option<&TokenFile>, token_file: &std::path::Path) {
        if let Some(old) = old_file {
            let _ = token_store::write_secret_file_atomic(token_file, old.render().as_bytes());
        }
        if self.client.delete_token(&new.user, &new.name).await.is_ok() {
            pending::clear(token_file);
        } else {
            let _ = pending::mark(token_file, &new.full());
        }
    }
}
