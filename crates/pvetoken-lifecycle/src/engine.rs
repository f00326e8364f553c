//! One converging run against one server: role, user, token (its secret saved at once), ACLs, verification as the
//! token. `create` runs it for one token, `apply` for every declared token; it reports what it changed and tells
//! its [`Observer`] what the user should know, and never prints.
//!
//! A fresh run (password login) makes `6 + P` requests, `P` = the profile's ACL paths, plus `GET /nodes` when
//! neither the narrowing nor the token file names the node (measured in the CLI's `tests/it/lifecycle.rs`): `POST
//! /access/ticket`, `GET /version` (privileges depend on the release), `POST /access/roles`, `POST /access/users`,
//! `POST .../token/NAME` (the secret is saved at once), one `PUT /access/acl` per path with `users=` and `tokens=`
//! together (PVE takes one path per call; privsep needs both sides), and `GET /access/permissions` as the token.
//! An unchanged rerun makes 4: login, version, `GET` of the role, the token's own permissions (which prove the
//! saved secret works and nothing is missing).
//!
//! 1. the caller prepares the token file (a 0600 temp file in the destination directory) before anything touches
//!    the server;
//! 2. an existing role is compared and set to exactly the profile's privileges; an existing user is never touched;
//! 3. a marker `<token file>.pending` names the token while its creation is in flight: if the answer is lost, the
//!    next run recognises the token as left behind without its secret and replaces it; a token that exists
//!    without a marker and without its secret in the token file is an error (`rotate_if_exists` rotates it);
//! 4. if the secret cannot be saved, the token is deleted again;
//! 5. verify as the token itself.

use std::path::{Path, PathBuf};

use pvetoken_api::Secret;
use pvetoken_client::ClientError;
use pvetoken_client::pve::{AclChange, NewToken, PveClient};
use pvetoken_render::TokenFile;

use crate::error::Error;
use crate::observe::Observer;
use crate::profiles::{self, Narrowing, PveVersion, Resolved};
use crate::target::{Target, remote_error};
use crate::token::TokenRef;
use crate::token_store::PreparedTokenFile;
use crate::verify::Missing;

/// What one token should be, apart from its id.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The profile's name (in the token's comment).
    pub profile: String,
    /// The narrowing of the profile's paths (its first node also names the token file's node).
    pub narrowing: Narrowing,
    /// A custom role name instead of the profile's.
    pub role: Option<String>,
    /// Privilege separation (the token holds its own ACLs, intersected with the user's).
    pub privsep: bool,
    /// A token that exists without its secret saved gets a new secret instead of being an error.
    pub rotate_if_exists: bool,
    /// Expiry in epoch seconds (0: never).
    pub expire: i64,
}

/// What one converging run did.
#[derive(Debug, serde::Serialize)]
pub struct Converged {
    /// `created`, `unchanged`, `updated`, `recovered` or `rotated`.
    pub outcome: String,
    /// Full token id.
    pub token_id: String,
    /// Profile.
    pub profile: String,
    /// Role.
    pub role: String,
    /// PVE version.
    pub pve_version: String,
    /// Token file.
    pub token_file: PathBuf,
    /// What was changed on the server.
    pub changes: Vec<String>,
    /// API requests made (login included; pvesh runs with `--local`).
    pub requests: u64,
    /// Missing privileges found by the final verification (empty when complete).
    pub missing: Vec<Missing>,
}

/// The token file's saved token when it is `token` (or a rotation of it) on `target`; `None` when there is none;
/// an error when the file holds another token, whose secret writing this one would lose.
pub fn saved_for(
    saved: Option<TokenFile>,
    token: &TokenRef,
    target: &Target,
    token_file: &Path,
) -> Result<Option<TokenFile>, Error> {
    match saved {
        Some(saved) if crate::token::is_same_token(&saved, token) && same_server(&saved, target) => Ok(Some(saved)),
        Some(saved) => Err(Error::usage(format!(
            "{} already holds another token ({} on {}); writing {} there would lose its secret",
            token_file.display(),
            saved.token_id,
            saved.url,
            token.full()
        ))
        .with_hint("pass --token-file PATH for this token (one token per file), or revoke the other one first")),
        None => Ok(None),
    }
}

/// True when the token file `saved` names the server `target` (host names compare without case).
pub fn same_server(saved: &TokenFile, target: &Target) -> bool {
    match target {
        Target::Local { .. } => true,
        Target::Remote { endpoint, .. } => pvetoken_client::endpoint::Endpoint::parse_pve(&saved.url)
            .is_ok_and(|saved| saved.host_port().eq_ignore_ascii_case(&endpoint.host_port())),
    }
}

/// What a caller already knows about the server from earlier runs on the same connection (`apply` converges many
/// tokens on one): each saves its request per token.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// `GET /version`'s answer.
    pub version: Option<pvetoken_api::pve::Version>,
    /// The node a token file names when the narrowing names none.
    pub node: Option<String>,
    /// Roles already set in this run, with the exact privileges they were set to.
    pub roles_in_place: std::collections::BTreeSet<(String, Vec<String>)>,
    /// Users known to exist.
    pub users: std::collections::BTreeSet<String>,
}

/// The state of one lifecycle run against one server.
pub struct Lifecycle<'a> {
    settings: &'a Settings,
    target: &'a Target,
    client: &'a PveClient,
    as_token: crate::verify::AsToken<'a>,
    token_file: &'a Path,
    observer: &'a dyn Observer,
    changes: Vec<String>,
    node: String,
    /// A verification already made after the last change (an unchanged rerun).
    verified: Option<Vec<Missing>>,
    known: Known,
}

impl<'a> Lifecycle<'a> {
    /// A run for the token whose file is `token_file`, acting through `client` (an administrator) on `target`;
    /// `http` is the run's HTTP client, reused to act as the token.
    pub fn new(
        settings: &'a Settings,
        target: &'a Target,
        client: &'a PveClient,
        http: Option<reqwest::Client>,
        token_file: &'a Path,
        observer: &'a dyn Observer,
        timeout: std::time::Duration,
    ) -> Self {
        Self {
            settings,
            target,
            client,
            as_token: crate::verify::AsToken::new(http, target, timeout),
            token_file,
            observer,
            changes: Vec::new(),
            node: String::new(),
            verified: None,
            known: Known::default(),
        }
    }

    /// Starts from what earlier runs on this connection found out (see [`Self::known`]).
    #[must_use]
    pub fn knowing(mut self, known: Known) -> Self {
        self.known = known;
        self
    }

    /// What this run knows about the server now, for the next run on the same connection.
    pub fn known(&self) -> Known {
        self.known.clone()
    }
}

impl Lifecycle<'_> {
    fn remote(&self, error: &ClientError) -> Error {
        remote_error(error, self.target)
    }

    /// Every request made so far (admin and token).
    pub fn requests(&self) -> u64 {
        self.client.requests_sent() + self.as_token.requests()
    }

    /// The administrator's client (for what the caller does next on the same connection).
    pub fn client(&self) -> &PveClient {
        self.client
    }

    /// The node the token file names (chosen by [`Self::converge`]).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// [`Self::converge`] for the token whose file this run was made for, start to end: takes the token file's
    /// lock, reads what it holds (refusing a file that holds another token), prepares the destination, converges.
    pub async fn converge_file(&mut self, profile: &profiles::Profile, wanted: TokenRef) -> Result<Converged, Error> {
        let _lock = crate::token_store::lock(self.token_file, self.observer)?;
        let saved = crate::token_store::read_if_exists(self.token_file)?;
        let saved = saved_for(saved, &wanted, self.target, self.token_file)?;
        let prepared = PreparedTokenFile::prepare(self.token_file)?;
        self.converge(profile, wanted, saved, prepared).await
    }

    /// Converges the server on `wanted` with `profile`'s needs: reads the release, resolves the profile, then a
    /// fresh run (no saved secret) or a rerun (the token file holds this token or a rotation of it), and verifies
    /// as the token. `prepared` is the token file's destination, made ready before anything touches the server.
    pub async fn converge(
        &mut self,
        profile: &profiles::Profile,
        wanted: TokenRef,
        saved: Option<TokenFile>,
        prepared: PreparedTokenFile,
    ) -> Result<Converged, Error> {
        let version = match self.known.version.clone() {
            Some(version) => version,
            None => self.client.version().await.map_err(|error| self.remote(&error))?,
        };
        self.known.version = Some(version.clone());
        let pve = version
            .major_minor()
            .map(|(major, minor)| PveVersion { major, minor })
            .ok_or_else(|| Error::remote(format!("cannot read the PVE version from `{}`", version.version)))?;
        let resolved = profile.resolve(pve, &self.settings.narrowing, self.settings.role.as_deref());
        // A rotation before 9.1 renamed the token: keep working on the one the file holds.
        let token = match &saved {
            Some(saved) => TokenRef { user: wanted.user.clone(), name: saved.token_id.name_str().to_owned() },
            None => wanted,
        };
        self.node = match (self.settings.narrowing.nodes.first(), &saved) {
            (Some(node), _) => node.clone(),
            (None, Some(saved)) => saved.node.clone(),
            (None, None) => match self.known.node.clone() {
                Some(node) => node,
                None => self.pick_node().await?,
            },
        };
        if self.settings.narrowing.nodes.is_empty() {
            self.known.node.get_or_insert_with(|| self.node.clone());
        }

        let (outcome, secret) = match saved {
            Some(saved) => self.rerun(&resolved, &token, &pve, saved, prepared).await?,
            None => self.fresh(&resolved, &token, &pve, prepared).await?,
        };
        let missing = self.verify(&resolved, &token, &secret).await?;
        Ok(Converged {
            outcome: outcome.to_owned(),
            token_id: token.full(),
            profile: profile.name.clone(),
            role: resolved.role.clone(),
            pve_version: version.version.clone(),
            token_file: self.token_file.to_owned(),
            changes: std::mem::take(&mut self.changes),
            requests: self.requests(),
            missing,
        })
    }

    /// No saved secret for this token: role, user, token (saved at once), ACLs.
    async fn fresh(
        &mut self,
        resolved: &Resolved,
        token: &TokenRef,
        pve: &PveVersion,
        prepared: PreparedTokenFile,
    ) -> Result<(&'static str, Secret), Error> {
        self.ensure_role(resolved, false).await?;
        self.ensure_user(token).await?;
        // Read before this run writes its own marker.
        let left_by_interrupted_run = pending::names(self.token_file, &token.full());
        let (outcome, secret) = match self.try_create_and_save(token, prepared).await? {
            Created::Saved(secret) => ("created", secret),
            Created::AlreadyExists => {
                if left_by_interrupted_run {
                    self.observer.warn(&format!(
                        "{} was left on the server without its secret by an interrupted run; replacing it",
                        token.full()
                    ));
                    self.client.delete_token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?;
                    self.changes
                        .push(format!("deleted {} (left without its secret by an interrupted run)", token.full()));
                    let prepared = PreparedTokenFile::prepare(self.token_file)?;
                    ("recovered", self.create_and_save(token, prepared).await?)
                } else if self.settings.rotate_if_exists {
                    let prepared = PreparedTokenFile::prepare(self.token_file)?;
                    ("rotated", self.replace_secret(token, pve, prepared).await?)
                } else {
                    pending::clear(self.token_file);
                    return Err(exists_without_secret(token, self.token_file));
                }
            }
        };
        self.grant(resolved, token, resolved.paths.iter().map(|path| path.path.as_str()).collect()).await?;
        Ok((outcome, secret))
    }

    /// The token file holds this token: check the role, then let the token itself say what it lacks.
    async fn rerun(
        &mut self,
        resolved: &Resolved,
        token: &TokenRef,
        pve: &PveVersion,
        saved: TokenFile,
        prepared: PreparedTokenFile,
    ) -> Result<(&'static str, Secret), Error> {
        self.ensure_role(resolved, true).await?;
        let exists = if self.client.is_local() {
            // pvesh acts as root and cannot try the secret: ask whether the token exists.
            self.client.token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?.is_some()
        } else {
            true
        };
        let permissions = if exists { Some(self.token_permissions(&token.full(), &saved.secret).await) } else { None };
        match permissions {
            Some(Ok(map)) => {
                let missing = crate::verify::compare(&map, resolved);
                if missing.is_empty() {
                    drop(prepared);
                    self.verified = Some(missing);
                    let outcome = if self.changes.is_empty() { "unchanged" } else { "updated" };
                    return Ok((outcome, saved.secret));
                }
                self.ensure_user(token).await?;
                let mut paths: Vec<&str> = missing.iter().map(|item| item.path.as_str()).collect();
                paths.dedup();
                self.grant(resolved, token, paths).await?;
                Ok(("updated", saved.secret))
            }
            Some(Err(error)) if !matches!(error, ClientError::AuthFailed { .. }) => Err(self.remote(&error)),
            _ => {
                // The saved secret is refused: the token is gone, or its secret is not the saved one.
                let on_server = if exists {
                    self.client.token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?.is_some()
                } else {
                    false
                };
                let (outcome, secret) = if !on_server {
                    self.observer.warn(&format!(
                        "{} is in {} but no longer on the server; creating it again",
                        token.full(),
                        self.token_file.display()
                    ));
                    self.ensure_user(token).await?;
                    ("created", self.create_and_save(token, prepared).await?)
                } else if self.settings.rotate_if_exists {
                    ("rotated", self.replace_secret(token, pve, prepared).await?)
                } else {
                    return Err(Error::remote(format!(
                        "{} exists, but the server refuses the secret saved in {}",
                        token.full(),
                        self.token_file.display()
                    ))
                    .with_hint(format!(
                        "rerun with --rotate-if-exists to issue a new secret (consumers of the old one stop working), \
                         or pvetoken revoke {} and create it again",
                        token.full()
                    )));
                };
                self.grant(resolved, token, resolved.paths.iter().map(|path| path.path.as_str()).collect()).await?;
                Ok((outcome, secret))
            }
        }
    }

    /// The token's effective permissions: as the token itself over HTTPS; with `--local` (pvesh is root and
    /// cannot act as the token) root reads them with `userid=`.
    pub async fn token_permissions(
        &mut self,
        token_id: &str,
        secret: &Secret,
    ) -> Result<pvetoken_api::pve::Permissions, ClientError> {
        self.as_token.permissions(self.client, token_id, secret).await
    }

    /// Final verification as the token.
    pub async fn verify(
        &mut self,
        resolved: &Resolved,
        token: &TokenRef,
        secret: &Secret,
    ) -> Result<Vec<crate::verify::Missing>, Error> {
        if let Some(missing) = self.verified.take() {
            return Ok(missing);
        }
        let map = self
            .token_permissions(&token.full(), secret)
            .await
            .map_err(|error| crate::target::token_refused(&error, self.target))?;
        let mut missing = crate::verify::compare(&map, resolved);
        if !missing.is_empty() {
            crate::verify::explain_online(Some(self.client), token, resolved, &mut missing).await;
        }
        Ok(missing)
    }

    async fn pick_node(&self) -> Result<String, Error> {
        let nodes = self.client.nodes().await.map_err(|error| self.remote(&error))?;
        let host = match self.target {
            Target::Remote { endpoint, .. } => endpoint.host().split('.').next().unwrap_or_default().to_owned(),
            Target::Local { .. } => crate::target::local_hostname(),
        };
        if let Some(node) = nodes.iter().find(|node| node.node == host) {
            return Ok(node.node.clone());
        }
        let online: Vec<&str> = nodes
            .iter()
            .filter(|node| node.status.as_deref() != Some("offline"))
            .map(|node| node.node.as_str())
            .collect();
        match online.as_slice() {
            [] => Err(Error::remote("the server lists no node").with_hint("pass --node NAME")),
            [only] => Ok((*only).to_owned()),
            [first, ..] => {
                self.observer.warn(&format!(
                    "several nodes ({}); PROXMOX_NODE={first} (pass --node to choose)",
                    online.join(", ")
                ));
                Ok((*first).to_owned())
            }
        }
    }

    /// The role with exactly the profile's privileges. A fresh run tries `POST` first (1 request when new); a
    /// rerun reads it first (1 request when it is right).
    async fn ensure_role(&mut self, resolved: &Resolved, read_first: bool) -> Result<(), Error> {
        let key = (resolved.role.clone(), resolved.role_privileges());
        if self.known.roles_in_place.contains(&key) {
            return Ok(());
        }
        self.ensure_role_on_server(resolved, read_first).await?;
        self.known.roles_in_place.insert(key);
        Ok(())
    }

    /// [`Self::ensure_role`] against the server.
    async fn ensure_role_on_server(&mut self, resolved: &Resolved, read_first: bool) -> Result<(), Error> {
        let wanted = resolved.role_privileges();
        let current = if read_first {
            self.client.role(&resolved.role).await.map_err(|error| self.remote(&error))?
        } else {
            match self.client.create_role(&resolved.role, &wanted).await {
                Ok(()) => {
                    self.changes.push(format!("created role {} ({})", resolved.role, wanted.join(",")));
                    return Ok(());
                }
                Err(error) if error.is_already_exists() => {
                    self.client.role(&resolved.role).await.map_err(|error| self.remote(&error))?
                }
                Err(error) => return Err(self.role_error(&error, resolved)),
            }
        };
        match current {
            None => {
                self.client
                    .create_role(&resolved.role, &wanted)
                    .await
                    .map_err(|error| self.role_error(&error, resolved))?;
                self.changes.push(format!("created role {} ({})", resolved.role, wanted.join(",")));
            }
            Some(mut current) => {
                current.sort();
                if current != wanted {
                    self.client.set_role(&resolved.role, &wanted).await.map_err(|error| self.remote(&error))?;
                    self.changes.push(format!("set role {} to exactly {}", resolved.role, wanted.join(",")));
                }
            }
        }
        Ok(())
    }

    fn role_error(&self, error: &ClientError, resolved: &Resolved) -> Error {
        if error.server_message().is_some_and(|message| message.contains("'PVE' namespace")) {
            return Error::usage(error.to_string())
                .with_hint("role names starting with PVE are reserved since PVE 8.0: pass --role Token-<name>");
        }
        let cli = self.remote(error);
        if error.server_message().is_some_and(|message| message.contains("invalid privilege")) {
            return cli.with_hint(format!(
                "this PVE ({}) does not know a privilege of the profile; check the profile's since/before bounds",
                resolved.version
            ));
        }
        cli
    }

    /// Creates the user without a password; an existing user is left exactly as it is.
    async fn ensure_user(&mut self, token: &TokenRef) -> Result<(), Error> {
        if self.known.users.contains(&token.user) {
            return Ok(());
        }
        match self.client.create_user(&token.user, Some("API automation user created by pvetoken")).await {
            Ok(()) => self.changes.push(format!("created user {}", token.user)),
            Err(error) if error.is_already_exists() => {}
            Err(error) => return Err(self.remote(&error)),
        }
        self.known.users.insert(token.user.clone());
        Ok(())
    }

    /// One `PUT /access/acl` per path, naming the user and (privsep) the token: PVE intersects both sides.
    async fn grant(&mut self, resolved: &Resolved, token: &TokenRef, paths: Vec<&str>) -> Result<(), Error> {
        for path in resolved.paths.iter().filter(|path| paths.contains(&path.path.as_str())) {
            let mut change = AclChange::role(&path.path, &resolved.role, path.propagate).user(&token.user);
            if self.settings.privsep {
                change = change.token(token.full());
            }
            self.client.change_acl(&change).await.map_err(|error| {
                let mut cli = self.remote(&error);
                cli.hint = Some(format!(
                    "the token and its secret are saved in {}; rerun the same command to finish the ACLs",
                    self.token_file.display()
                ));
                cli
            })?;
            let subjects = change.users.iter().chain(&change.tokens).cloned().collect::<Vec<_>>().join(", ");
            self.changes.push(format!("granted {} on {} to {subjects}", resolved.role, path.path));
        }
        Ok(())
    }

    /// The token file content for `token_id` with `secret` on this server.
    pub fn token_file_for(&self, token_id: &str, secret: Secret) -> Result<TokenFile, Error> {
        let id: pvetoken_acl::TokenId = token_id
            .parse()
            .map_err(|_| Error::remote(format!("the server answered with an invalid token id `{token_id}`")))?;
        let mut file = TokenFile::new(&crate::target::target_url(self.target), &self.node, id, secret)
            .map_err(|error| Error::usage(format!("cannot describe the server in the token file: {error}")))?;
        if let Target::Remote { tls, .. } = self.target {
            file.fingerprint = tls.fingerprint.map(|fingerprint| fingerprint.to_string());
            file.ca_file = tls.ca_file.as_ref().and_then(|path| std::fs::canonicalize(path).ok());
            file.tls_insecure = tls.insecure;
        }
        file.expire = u64::try_from(self.settings.expire).unwrap_or(0);
        Ok(file)
    }

    /// Saves a new secret; if that fails, deletes the token again so none is left without its secret.
    async fn save_or_undo(
        &mut self,
        prepared: PreparedTokenFile,
        token: &TokenRef,
        token_id: &str,
        secret: &Secret,
    ) -> Result<(), Error> {
        let saved = self.token_file_for(token_id, secret.clone()).and_then(|file| prepared.commit(&file));
        if let Err(error) = saved {
            let deleted = self.client.delete_token(&token.user, &token.name).await;
            let what = if deleted.is_ok() {
                pending::clear(self.token_file);
                "the token was deleted again"
            } else {
                "deleting the token failed too (the next run replaces it)"
            };
            return Err(Error::usage(format!("cannot save the secret: {}; {what}", error.message))
                .with_hint("fix the token file's directory (space, permissions) and rerun"));
        }
        pending::clear(self.token_file);
        Ok(())
    }

    /// Creates the token and saves its secret at once. A marker next to the token file names the token while its
    /// creation is in flight, so that the next run can tell a token an interrupted run left behind (and replace
    /// it) from one whose secret lives elsewhere (an error).
    pub async fn create_and_save(&mut self, token: &TokenRef, prepared: PreparedTokenFile) -> Result<Secret, Error> {
        match self.try_create_and_save(token, prepared).await? {
            Created::Saved(secret) => Ok(secret),
            Created::AlreadyExists => {
                pending::clear(self.token_file);
                Err(exists_without_secret(token, self.token_file))
            }
        }
    }

    /// [`Self::create_and_save`], telling a token that already exists apart from other failures.
    async fn try_create_and_save(&mut self, token: &TokenRef, prepared: PreparedTokenFile) -> Result<Created, Error> {
        let new = NewToken {
            privsep: self.settings.privsep,
            expire: self.settings.expire,
            comment: Some(format!("pvetoken profile {}", self.settings.profile)),
        };
        pending::mark(self.token_file, &token.full())?;
        let created = match self.client.create_token(&token.user, &token.name, &new).await {
            Ok(created) => created,
            Err(error) if error.is_already_exists() => return Ok(Created::AlreadyExists),
            Err(error) => {
                if error.sent() != pvetoken_client::Sent::No {
                    self.cleanup_unsaved(token).await;
                } else {
                    pending::clear(self.token_file);
                }
                return Err(self.remote(&error));
            }
        };
        self.save_or_undo(prepared, token, &created.full_tokenid, &created.value).await?;
        self.changes.push(format!("created token {} and saved its secret", created.full_tokenid));
        Ok(Created::Saved(created.value))
    }

    /// After a create request whose answer was lost: a token that exists now has no saved secret; delete it.
    /// (If the server only acts later, the marker lets the next run replace it.)
    async fn cleanup_unsaved(&self, token: &TokenRef) {
        if let Ok(Some(_)) = self.client.token(&token.user, &token.name).await
            && self.client.delete_token(&token.user, &token.name).await.is_ok()
        {
            pending::clear(self.token_file);
        }
    }

    /// A new secret for an existing token whose secret is not saved: regenerate when the server's
    /// libpve-access-control can ([`crate::release::detect`]), else delete and create.
    pub async fn replace_secret(
        &mut self,
        token: &TokenRef,
        pve: &PveVersion,
        prepared: PreparedTokenFile,
    ) -> Result<Secret, Error> {
        let detection = crate::release::detect(self.client, Some(&self.node)).await;
        self.observer.detail(&format!("release: {}", detection.describe()));
        if detection.method == crate::release::RotationMethod::Regenerate {
            let regenerated =
                self.client.regenerate_token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?;
            let file = self.token_file_for(&token.full(), regenerated.value.clone())?;
            prepared.commit_regenerated(&file, "rerun with --rotate-if-exists (the new secret is lost)")?;
            self.changes.push(format!("regenerated the secret of {}", token.full()));
            return Ok(regenerated.value);
        }
        self.client.delete_token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?;
        self.changes.push(format!("deleted {} (PVE {pve}: {})", token.full(), detection.describe()));
        self.create_and_save(token, prepared).await
    }
}

fn exists_without_secret(token: &TokenRef, token_file: &Path) -> Error {
    Error::usage(format!(
        "{} already exists on the server, but {} does not hold its secret (PVE shows a secret only once)",
        token.full(),
        token_file.display()
    ))
    .with_hint(format!(
        "rotate it deliberately: rerun with --rotate-if-exists (consumers using the old secret stop working), or \
         point --token-file at the file that holds it; to start over: pvetoken revoke {}",
        token.full()
    ))
}

/// What a create request found.
enum Created {
    /// The token was created and its secret saved.
    Saved(Secret),
    /// A token with this id exists already (its secret is not ours to know).
    AlreadyExists,
}

/// The in-flight marker `<token file>.pending`: the full id of a token being created (no secret; mode 0600).
pub mod pending {
    use std::path::{Path, PathBuf};

    use crate::error::Error;

    fn path(token_file: &Path) -> PathBuf {
        crate::token_store::companion(token_file, ".pending")
    }

    /// Records that `token_id` is about to be created for `token_file`.
    pub fn mark(token_file: &Path, token_id: &str) -> Result<(), Error> {
        crate::token_store::write_secret_file_atomic(&path(token_file), format!("{token_id}\n").as_bytes())
    }

    /// True when the marker names `token_id`. Only a marker we (or root) wrote, 0600 and not a link, counts: a
    /// marker planted by someone else must never make create delete and replace an existing token.
    pub fn names(token_file: &Path, token_id: &str) -> bool {
        crate::token_store::read_private(&path(token_file), "pending marker").is_ok_and(|text| text.trim() == token_id)
    }

    /// Removes the marker.
    pub fn clear(token_file: &Path) {
        let _ = std::fs::remove_file(path(token_file));
    }
}
