//! A new secret for a saved token, saved to its token file, verified, pushed to every sink, then the old token
//! retired.
//!
//! The method depends on the installed libpve-access-control, read from the server ([`crate::release`]), never on
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
//!
//! Where the token was handed to is the caller's knowledge ([`Sinks`]): the CLI keeps Semaphore environments,
//! OpenBao secrets and guest files next to the token file.

use std::path::Path;

use pvetoken_api::Secret;
use pvetoken_client::ClientError;
use pvetoken_client::pve::{AclChange, NewToken, PveClient};
use pvetoken_render::TokenFile;

use crate::engine::pending;
use crate::error::Error;
use crate::observe::Observer;
use crate::release::{self, RotationMethod};
use crate::target::{Target, remote_error, token_refused};
use crate::token::{TokenRef, next_rotation_name};
use crate::token_store::{self, PreparedTokenFile};

/// A sink that could not be brought up to date: what it is and why.
#[derive(Debug, Clone)]
pub struct FailedSink {
    /// The sink, named for the user.
    pub sink: String,
    /// Why.
    pub error: String,
}

/// The places a token was handed to. A rotation asks every one whether it can take a new secret before anything
/// changes, and pushes the new token to all of them before the old one is retired.
pub trait Sinks {
    /// Every sink can take a new secret now; all are tried, the failures returned.
    fn check(&self, admin: &PveClient) -> impl Future<Output = Result<(), Vec<FailedSink>>>;
    /// Pushes the token file's (new) token to every sink; all are tried, the failures returned.
    fn update(&self, admin: &PveClient) -> impl Future<Output = Result<(), Vec<FailedSink>>>;
    /// Where the sinks are recorded (for the hint when one must be removed).
    fn record(&self) -> String;
}

/// No sinks: the token file is the only place the token lives.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSinks;

impl Sinks for NoSinks {
    async fn check(&self, _: &PveClient) -> Result<(), Vec<FailedSink>> {
        Ok(())
    }

    async fn update(&self, _: &PveClient) -> Result<(), Vec<FailedSink>> {
        Ok(())
    }

    fn record(&self) -> String {
        "no sink record".to_owned()
    }
}

/// What one rotation did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The token before.
    pub old_id: String,
    /// The token the token file holds now (the same id after a regenerate).
    pub new_id: String,
    /// Requests made.
    pub requests: u64,
    /// What the server's access control can do, and how that was found out.
    pub detection: release::Detection,
    /// This run finished a rotation an earlier run was interrupted in.
    pub finished_interrupted: bool,
}

/// The error for sinks left holding an old secret: each sink, why, and how to finish.
fn sinks_failed(failed: &[FailedSink], holding: &str) -> Error {
    let list: Vec<String> = failed.iter().map(|f| format!("{}: {}", f.sink, f.error)).collect();
    Error::remote(format!(
        "the token file holds the new secret, but {} sink(s) could not be updated and still hold {holding}: {}",
        failed.len(),
        list.join("; ")
    ))
    .with_hint("fix what stops them (see above) and rerun pvetoken rotate: it updates the sinks and then finishes")
}

impl<'a> Rotation<'a> {
    /// A rotation acting through `client` (an administrator) on `target`; `http` is reused to act as the token.
    pub fn new(
        client: &'a PveClient,
        http: Option<reqwest::Client>,
        target: &'a Target,
        timeout: std::time::Duration,
        observer: &'a dyn Observer,
    ) -> Self {
        Self { client, as_token: crate::verify::AsToken::new(http, target, timeout), target, observer }
    }

    /// Rotates the token `saved` (read from `token_file` under its lock by the caller); `prepared` is the token
    /// file's destination, made ready before anything touches the server.
    pub async fn rotate(
        &mut self,
        token_file: &Path,
        saved: &TokenFile,
        prepared: PreparedTokenFile,
        sinks: &impl Sinks,
    ) -> Result<Rotated, Error> {
        let token = TokenRef::parse(saved.token_id.as_str())?;
        let detection = release::detect(self.client, Some(saved.node.as_str())).await;
        self.observer.detail(&format!("release: {}", detection.describe()));
        if let Some(previous) = self.interrupted_predecessor(&token).await? {
            // An earlier run switched the token file to this token but stopped before the old one was retired:
            // finish that rotation (ACLs, sinks, then delete) instead of starting a new one.
            self.copy_missing_acls(&previous, &token).await?;
            self.check_works(&token, &saved.secret).await?;
            sinks.update(self.client).await.map_err(|failed| {
                sinks_failed(&failed, &format!("{} (the old token, kept until they are updated)", previous.full()))
            })?;
            self.delete_old(&previous, &token).await?;
            self.observer.warn(&format!(
                "finished the interrupted rotation {} → {}; deleted the old token",
                previous.full(),
                token.full()
            ));
            return Ok(Rotated {
                old_id: previous.full(),
                new_id: token.full(),
                requests: self.requests(),
                detection,
                finished_interrupted: true,
            });
        }
        // Every sink must be reachable with its credentials before the secret changes: a regenerated secret
        // kills the old one at once, and a sink that cannot take the new one would be left dead.
        sinks.check(self.client).await.map_err(|failed| {
            let list: Vec<String> = failed.iter().map(|f| format!("{}: {}", f.sink, f.error)).collect();
            Error::remote(format!(
                "nothing was rotated: {} sink(s) could not take a new secret now: {}",
                failed.len(),
                list.join("; ")
            ))
            .with_hint(format!(
                "fix what stops them (see above) and rerun, or remove a sink you no longer use from {}",
                sinks.record()
            ))
        })?;
        let new_token = match detection.method {
            RotationMethod::Regenerate => self.regenerate(&token, saved, prepared).await?,
            RotationMethod::NewToken => self.replace(&token, saved, prepared, token_file).await?,
        };
        if let Err(failed) = sinks.update(self.client).await {
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
            });
        }
        if new_token != token {
            self.delete_old(&token, &new_token).await?;
        }
        Ok(Rotated {
            old_id: token.full(),
            new_id: new_token.full(),
            requests: self.requests(),
            detection,
            finished_interrupted: false,
        })
    }
}

/// One rotation against one server.
pub struct Rotation<'a> {
    client: &'a PveClient,
    as_token: crate::verify::AsToken<'a>,
    target: &'a Target,
    observer: &'a dyn Observer,
}

impl Rotation<'_> {
    /// Every request made so far (admin and token).
    pub fn requests(&self) -> u64 {
        self.client.requests_sent() + self.as_token.requests()
    }

    fn remote(&self, error: &ClientError) -> Error {
        remote_error(error, self.target)
    }

    /// The token's permissions, as itself (or as root through pvesh).
    async fn permissions(
        &mut self,
        token_id: &str,
        secret: &Secret,
    ) -> Result<pvetoken_api::pve::Permissions, ClientError> {
        self.as_token.permissions(self.client, token_id, secret).await
    }

    /// The token an interrupted new-token rotation left behind (`NAME` for `NAME-r1`, `NAME-r1` for `NAME-r2`),
    /// if it still exists. The token file already names its successor; the old one may still hold the ACLs and
    /// still be what sinks use, so it is only deleted after both are carried over.
    async fn interrupted_predecessor(&self, token: &TokenRef) -> Result<Option<TokenRef>, Error> {
        let base = crate::token::rotation_base(&token.name);
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
    async fn copy_missing_acls(&self, old: &TokenRef, new: &TokenRef) -> Result<(), Error> {
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
                .change_acl(&AclChange::role(path, roleid, propagate).token(new.full()))
                .await
                .map_err(|error| self.remote(&error))?;
            copied += 1;
        }
        if copied > 0 {
            self.observer.info(&format!("copied {copied} missing ACL entries from {} to {}", old.full(), new.full()));
        }
        Ok(())
    }

    /// The saved secret authenticates (the token's permissions can be read as itself).
    async fn check_works(&mut self, token: &TokenRef, secret: &Secret) -> Result<(), Error> {
        self.permissions(&token.full(), secret).await.map(|_| ()).map_err(|error| token_refused(&error, self.target))
    }

    /// Deletes the old token once the new one holds its ACLs and every sink holds the new secret.
    async fn delete_old(&self, old: &TokenRef, new: &TokenRef) -> Result<(), Error> {
        self.client.delete_token(&old.user, &old.name).await.map_err(|error| {
            Error::remote(format!(
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
    ) -> Result<TokenRef, Error> {
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
        prepared.commit_regenerated(&file, "rerun pvetoken rotate (the old secret no longer works)")?;
        self.permissions(&token.full(), &regenerated.value)
            .await
            .map_err(|error| token_refused(&error, self.target))?;
        Ok(token.clone())
    }

    /// Without regenerate: a new token with the same settings and ACLs; undone entirely when any step fails.
    async fn replace(
        &mut self,
        token: &TokenRef,
        saved: &TokenFile,
        prepared: PreparedTokenFile,
        token_file: &std::path::Path,
    ) -> Result<TokenRef, Error> {
        let info = self.client.token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?.ok_or_else(
            || {
                Error::remote(format!("{} does not exist on the server", token.full()))
                    .with_hint("create it again: pvetoken create --profile PROFILE")
            },
        )?;
        let before = self.permissions(&token.full(), &saved.secret).await.map_err(|error| {
            let mut cli = token_refused(&error, self.target);
            cli.hint =
                Some("the saved secret no longer works: pvetoken create --rotate-if-exists replaces it".to_owned());
            cli
        })?;
        let new_token = TokenRef { user: token.user.clone(), name: next_rotation_name(&token.name) };
        // A token of that name left behind by an interrupted rotation has no saved secret: replace it.
        if self.client.token(&new_token.user, &new_token.name).await.map_err(|error| self.remote(&error))?.is_some() {
            if !pending::names(token_file, &new_token.full()) {
                return Err(Error::usage(format!(
                    "{} already exists and is not the rotation target",
                    new_token.full()
                ))
                .with_hint(format!("revoke it first: pvetoken revoke {}", new_token.full())));
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
                return Err(self.remote(&error));
            }
        };
        let mut file = saved.clone();
        file.token_id = created.full_tokenid.parse().map_err(|_| {
            Error::remote(format!("the server answered with an invalid token id `{}`", created.full_tokenid))
        })?;
        file.secret = created.value.clone();
        if let Err(error) = prepared.commit(&file) {
            self.undo(&new_token, None, token_file).await;
            return Err(Error::usage(format!(
                "cannot save the new secret: {}; the rotation was undone",
                error.message
            ))
            .with_hint("fix the token file's directory and rerun pvetoken rotate"));
        }
        pending::clear(token_file);
        let result = self.finish_replacement(token, &new_token, &created.value, &before).await;
        if let Err(mut error) = result {
            self.undo(&new_token, Some(saved), token_file).await;
            error.message =
                format!("{}; the rotation was undone (the token file holds the old token again)", error.message);
            return Err(error);
        }
        Ok(new_token)
    }

    async fn finish_replacement(
        &mut self,
        old: &TokenRef,
        new: &TokenRef,
        secret: &Secret,
        before: &pvetoken_api::pve::Permissions,
    ) -> Result<(), Error> {
        let acl = self.client.acl().await.map_err(|error| self.remote(&error))?;
        for entry in acl.iter().filter(|entry| entry.kind == "token" && entry.ugid == old.full()) {
            self.client
                .change_acl(&AclChange::role(&entry.path, &entry.roleid, entry.propagate).token(new.full()))
                .await
                .map_err(|error| self.remote(&error))?;
        }
        let after = self.permissions(&new.full(), secret).await.map_err(|error| token_refused(&error, self.target))?;
        if &after != before {
            return Err(Error::remote(format!(
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
