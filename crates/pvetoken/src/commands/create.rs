//! `pvetoken create`: converge role, user, token and ACLs for a consumer profile, save the token, verify it.
//!
//! A fresh create (password login) makes `6 + P` requests, `P` = the profile's ACL paths, plus `GET /nodes` when
//! neither `--node` nor the token file names the node (measured in `tests/it/lifecycle.rs`): `POST
//! /access/ticket`, `GET /version` (privileges depend on the release), `POST /access/roles`, `POST /access/users`,
//! `POST .../token/NAME` (the secret is saved at once), one `PUT /access/acl` per path with `users=` and `tokens=`
//! together (PVE takes one path per call; privsep needs both sides), and `GET /access/permissions` as the token.
//! An unchanged rerun makes 4: login, version, `GET` of the role, the token's own permissions (which prove the
//! saved secret works and nothing is missing).
//!
//! 1. prepare the token file (a 0600 temp file in the destination directory) before anything touches the server;
//! 2. an existing role is compared and set to exactly the profile's privileges; an existing user is never touched;
//! 3. a marker `<token file>.pending` names the token while its creation is in flight: if the answer is lost, the
//!    next run recognises the token as left behind without its secret and replaces it; a token that exists
//!    without a marker and without its secret in the token file is an error (`--rotate-if-exists` rotates it);
//! 4. if the secret cannot be saved, the token is deleted again;
//! 5. verify as the token itself; `--deliver-to VMID` then writes the token file into a guest.

use std::path::{Path, PathBuf};

use clap::Args;
use pvetoken_api::Secret;
use pvetoken_client::ClientError;
use pvetoken_client::pve::{AclChange, NewToken, PveClient};
use pvetoken_render::TokenFile;

use crate::connection::{ConnectionArgs, Target, TargetFallback, remote_error};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use crate::profiles::{self, Narrowing, PveVersion, Resolved};
use crate::token_store::{self, PreparedTokenFile};

/// Arguments of `pvetoken create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Consumer profile: privatebox, packer, terraform, terraform-telmate, ansible, readonly, or a TOML file.
    #[arg(long, value_name = "PROFILE")]
    pub profile: String,
    /// The user that owns the token (created without a password if missing; an existing user is not changed).
    #[arg(long, value_name = "USER@REALM", default_value = "automation@pve")]
    pub user: String,
    /// Token name (default: the profile's name).
    #[arg(long, value_name = "NAME")]
    pub token_name: Option<String>,
    /// Where to save the token (default: /root/.proxmox-api-token as root, else $XDG_CONFIG_HOME/pvetoken/token.env).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Custom role name (default: Token-<profile>; never starting with PVE).
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Create the token without privilege separation (it then has all of the user's rights). Not recommended.
    #[arg(long)]
    pub no_privsep: bool,
    /// Token expiry: a duration (`90d`, `12h`, `4w`) or a date (`2026-12-31`).
    #[arg(long, value_name = "WHEN")]
    pub expire: Option<String>,
    /// If the token exists but its secret is not in the token file, rotate it (new secret) instead of failing.
    #[arg(long)]
    pub rotate_if_exists: bool,
    /// After saving, write the token file into this VM through the guest agent (as `pvetoken deliver`).
    #[arg(long, value_name = "VMID")]
    pub deliver_to: Option<u64>,
    /// With --deliver-to: the file in the guest (default /root/.proxmox-api-token).
    #[arg(long, value_name = "PATH", requires = "deliver_to")]
    pub guest_path: Option<String>,
    #[command(flatten)]
    pub narrowing: NarrowingArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `--pool`, `--storage`, `--node`, `--bridge`.
#[derive(Debug, Clone, Default, Args)]
pub struct NarrowingArgs {
    /// Grant VM privileges on this pool only (/pool/POOL instead of /vms).
    #[arg(long, value_name = "POOL", help_heading = "Narrowing")]
    pub pool: Option<String>,
    /// Grant storage privileges on these storages only (repeatable).
    #[arg(long, value_name = "STORAGE", help_heading = "Narrowing")]
    pub storage: Vec<String>,
    /// Node(s) the token is for: narrows node paths and names PROXMOX_NODE (the first one).
    #[arg(long, value_name = "NODE", help_heading = "Narrowing")]
    pub node: Vec<String>,
    /// Grant SDN.Use on these bridges only (repeatable; default the whole localnetwork zone).
    #[arg(long, value_name = "BRIDGE", help_heading = "Narrowing")]
    pub bridge: Vec<String>,
}

impl NarrowingArgs {
    /// The profile narrowing.
    pub fn narrowing(&self) -> Narrowing {
        Narrowing {
            pool: self.pool.clone(),
            storages: self.storage.clone(),
            nodes: self.node.clone(),
            bridges: self.bridge.clone(),
        }
    }
}

/// A full token id `user@realm!name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    /// `user@realm`.
    pub user: String,
    /// `name`.
    pub name: String,
}

impl TokenRef {
    /// Parses `user@realm!name` with a clear error for the usual mistakes.
    pub fn parse(text: &str) -> Result<Self, CliError> {
        let Some((user, name)) = text.rsplit_once('!') else {
            return Err(CliError::usage(format!("`{text}` is not a token id: it has no `!`")).with_hint(format!(
                "a token id is user@realm!name, e.g. {}!{}",
                if text.contains('@') { text } else { "automation@pve" },
                "packer"
            )));
        };
        validate_user(user)?;
        if !profiles::is_token_name(name) {
            return Err(CliError::usage(format!("`{name}` is not a valid token name"))
                .with_hint("a token name starts with a letter and has at least 2 of: letters, digits, `.`, `-`, `_`"));
        }
        Ok(Self { user: user.to_owned(), name: name.to_owned() })
    }

    /// `user@realm!name`.
    pub fn full(&self) -> String {
        format!("{}!{}", self.user, self.name)
    }
}

/// Checks a `user@realm` id (refusing a token id).
pub fn validate_user(user: &str) -> Result<(), CliError> {
    if user.contains('!') {
        return Err(CliError::usage(format!("`{user}` is a token id, not a user"))
            .with_hint("give the user as user@realm and the token name separately (--token-name)"));
    }
    let Some((name, realm)) = user.rsplit_once('@') else {
        return Err(CliError::usage(format!("`{user}` has no realm"))
            .with_hint(format!("write it as user@realm, e.g. {user}@pve (PVE-managed) or {user}@pam (Linux user)")));
    };
    if name.is_empty() || name.contains([' ', ':', '/']) || realm.len() < 2 {
        return Err(CliError::usage(format!("`{user}` is not a valid PVE user id"))
            .with_hint("write it as user@realm, e.g. automation@pve"));
    }
    Ok(())
}

/// Parses `--expire`: `0`/`never`, a duration (`90d`, `12h`, `30m`, `4w`, `1y`) or a date `YYYY-MM-DD` (UTC
/// midnight). Returns epoch seconds.
pub fn parse_expire(text: &str, now: i64) -> Result<i64, CliError> {
    let text = text.trim();
    let bad = || {
        CliError::usage(format!("--expire `{text}` is neither a duration nor a date"))
            .with_hint("use e.g. 90d, 12h, 4w, 1y, or a date like 2026-12-31")
    };
    if text == "0" || text.eq_ignore_ascii_case("never") {
        return Ok(0);
    }
    if let Some((year, rest)) = text.split_once('-')
        && let Some((month, day)) = rest.split_once('-')
    {
        let year: i64 = year.parse().map_err(|_| bad())?;
        if year > 9999 {
            return Err(too_far(text));
        }
        let (year, month, day): (i16, i8, i8) = (
            i16::try_from(year).map_err(|_| bad())?,
            month.parse().map_err(|_| bad())?,
            day.parse().map_err(|_| bad())?,
        );
        // jiff checks the calendar: 2027-02-30 is an invalid date, not 2027-03-02.
        let date = jiff::civil::Date::new(year, month, day).map_err(|_| {
            CliError::usage(format!("--expire {text} is an invalid date"))
                .with_hint("give a real calendar date as YYYY-MM-DD, e.g. 2026-12-31")
        })?;
        let epoch = date.to_zoned(jiff::tz::TimeZone::UTC).map_err(|_| too_far(text))?.timestamp().as_second();
        if epoch > EXPIRE_MAX {
            return Err(too_far(text));
        }
        if epoch <= now {
            return Err(CliError::usage(format!("--expire {text} is in the past")));
        }
        return Ok(epoch);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let seconds = unit_seconds(unit).ok_or_else(bad)?;
    let number: i64 = number.parse().map_err(|_| too_far(text))?;
    if number <= 0 {
        return Err(bad());
    }
    // Overflow would wrap into a token that never expires (or one in the past): refuse instead.
    number
        .checked_mul(seconds)
        .and_then(|span| now.checked_add(span))
        .filter(|&at| at <= EXPIRE_MAX)
        .ok_or_else(|| too_far(text))
}

/// Seconds in one unit of a span: `s`, `m`/`min`, `h`, `d`, `w`, `y` (365 days).
pub(crate) fn unit_seconds(unit: &str) -> Option<i64> {
    Some(match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    })
}

/// A span such as `14d`, `12h`, `4w`, `1y`, `90m`, `30s`, in seconds (`rotate --if-*`, `exec --ttl`, apply files).
pub(crate) fn parse_span(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit_seconds(unit).ok_or_else(|| format!("'{text}' is not a span: use e.g. 14d, 12h, 4w or 1y"))?;
    number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("'{text}' is not a span a token could have: use e.g. 14d, 12h, 4w or 1y"))
}

/// The latest expiry accepted: 9999-12-31T23:59:59Z (PVE stores a plain epoch, but nothing later is meaningful).
pub const EXPIRE_MAX: i64 = 253_402_300_799;

fn too_far(text: &str) -> CliError {
    CliError::usage(format!("--expire {text} is too far in the future"))
        .with_hint("the latest expiry is 9999-12-31; use 0 or never for a token that does not expire")
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// What `create` reports.
#[derive(Debug, serde::Serialize)]
pub struct CreateReport {
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
    pub missing: Vec<super::verify::Missing>,
    /// The delivery into a guest (`--deliver-to`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<crate::deliver::DeliveryReport>,
}

/// Runs `pvetoken create`.
pub fn run(args: CreateArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let profile = profiles::load(&args.profile).map_err(CliError::from)?;
    validate_user(&args.user)?;
    let token_name = args.token_name.clone().unwrap_or_else(|| profile.name.clone());
    if !profiles::is_token_name(&token_name) {
        return Err(CliError::usage(format!("token name `{token_name}` is not valid"))
            .with_hint("a token name starts with a letter and has at least 2 of: letters, digits, `.`, `-`, `_`")
            .into());
    }
    if let Some(role) = &args.role {
        profiles::validate_role_name(role).map_err(|reason| {
            CliError::usage(reason).with_hint("choose another name, e.g. Token-<profile>; PVE* is reserved")
        })?;
    }
    if args.deliver_to.is_some() && args.connection.local {
        return Err(CliError::usage(
            "--deliver-to cannot use --local: pvesh would take the token file's content as an argument, which every \
             user of the host can read in the process list",
        )
        .with_hint("connect over HTTPS instead: --url https://localhost:8006 --ca-file /etc/pve/pve-root-ca.pem")
        .into());
    }
    let expire = args.expire.as_deref().map(|text| parse_expire(text, now())).transpose()?.unwrap_or(0);
    let token = TokenRef { user: args.user.clone(), name: token_name };
    let token_file = match &args.token_file {
        Some(path) => path.clone(),
        None => token_store::default_token_path()?,
    };
    // One run per token file at a time, from before it is read until the secret is saved.
    let _lock = token_store::lock(&token_file, printer)?;
    let saved = token_store::read_if_exists(&token_file)?;
    let fallback = TargetFallback::from_optional(saved.as_ref());
    let target = args.connection.resolve_target(&fallback, printer)?;
    // The token file may hold this token (a rerun), or a rotation of it; anything else would be overwritten.
    let saved = match saved {
        Some(saved) if is_same_token(&saved, &token) && same_server(&saved, &target) => Some(saved),
        Some(saved) => {
            return Err(CliError::usage(format!(
                "{} already holds another token ({} on {}); writing {} there would lose its secret",
                token_file.display(),
                saved.token_id,
                saved.url,
                token.full()
            ))
            .with_hint("pass --token-file PATH for this token (one token per file), or revoke the other one first")
            .into());
        }
        None => None,
    };
    let admin = args.connection.resolve_admin()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(async {
        let timeout = args.connection.timeout();
        // 1. The destination must be writable before a secret exists.
        let prepared = PreparedTokenFile::prepare(&token_file)?;
        let http = crate::connection::http_client(&target, timeout)?;
        let client = crate::connection::connect_admin(&target, http.as_ref(), &admin, timeout).await?;
        let mut run = Lifecycle {
            args: &args,
            target: &target,
            client,
            http,
            token_file: &token_file,
            printer,
            changes: Vec::new(),
            expire,
            node: String::new(),
            timeout,
            token_requests: 0,
            verified: None,
        };
        let mut report = run.converge(&profile, token, saved, prepared).await?;
        if let Some(vmid) = args.deliver_to {
            let token = token_store::read(&token_file)?;
            let mut request = crate::deliver::DeliveryRequest::new(run.node.clone(), vmid, admin.describe());
            if let Some(path) = &args.guest_path {
                request.guest_path = path.clone();
            }
            let delivered = crate::deliver::deliver(&run.client, &target, &request, &token, printer).await?;
            crate::deliver::remember(&token_file, &request)?;
            report.requests = run.requests();
            report.delivered = Some(delivered);
        }
        Ok::<_, anyhow::Error>(report)
    })?;
    let exit = if report.missing.is_empty() { Exit::Success } else { Exit::CheckFailed };
    if printer.is_json() {
        printer.json(&report)?;
    } else {
        match report.outcome.as_str() {
            "unchanged" => printer.success(&format!(
                "{} unchanged: role {}, user, token and ACLs already in place; secret in {} ({} requests)",
                report.token_id,
                report.role,
                report.token_file.display(),
                report.requests
            )),
            outcome => printer.success(&format!(
                "{} {outcome} for profile {} on PVE {} ({} requests); secret saved to {} (0600)",
                report.token_id,
                report.profile,
                report.pve_version,
                report.requests,
                report.token_file.display()
            )),
        }
        for change in &report.changes {
            printer.verbose(&format!("  {change}"));
        }
        if let Some(delivered) = &report.delivered {
            printer.success(&format!(
                "delivered into VM {} on {} at {} ({} bytes, read back and identical)",
                delivered.vmid, delivered.node, delivered.guest_path, delivered.bytes
            ));
        }
        super::verify::print_missing(&report.missing, printer);
    }
    Ok(exit)
}

/// The server named by the default token file (when it exists and is readable), for commands whose `--url` is
/// optional.
pub(crate) fn token_file_fallback() -> TargetFallback {
    let saved =
        token_store::default_token_path().ok().and_then(|path| token_store::read_if_exists(&path).ok().flatten());
    TargetFallback::from_optional(saved.as_ref())
}

/// True when `saved` holds `token`, or a rotation of it (`NAME-rN`, made by `rotate` where the server cannot regenerate).
fn is_same_token(saved: &TokenFile, token: &TokenRef) -> bool {
    saved.token_id.user_str() == token.user && rotation_base(saved.token_id.name_str()) == token.name
}

/// `packer-r3` → `packer`; any other name is its own base.
pub(crate) fn rotation_base(name: &str) -> &str {
    match name.rsplit_once("-r") {
        Some((base, number))
            if !base.is_empty() && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

/// The name the next rotation uses where the server cannot regenerate (libpve-access-control before 9.1.0): `packer` → `packer-r1` → `packer-r2` …
pub(crate) fn next_rotation_name(name: &str) -> String {
    let base = rotation_base(name);
    let next = name.strip_prefix(base).and_then(|rest| rest.strip_prefix("-r")).and_then(|n| n.parse::<u64>().ok());
    format!("{base}-r{}", next.map_or(1, |n| n + 1))
}

fn same_server(saved: &TokenFile, target: &Target) -> bool {
    match target {
        Target::Local { .. } => true,
        Target::Remote { endpoint, .. } => pvetoken_client::endpoint::Endpoint::parse_pve(&saved.url)
            .is_ok_and(|saved| saved.host_port() == endpoint.host_port()),
    }
}

/// The state of one lifecycle run against the server (shared by `create` and `rotate`).
pub(crate) struct Lifecycle<'a> {
    pub(crate) args: &'a CreateArgs,
    pub(crate) target: &'a Target,
    pub(crate) client: PveClient,
    pub(crate) http: Option<reqwest::Client>,
    pub(crate) token_file: &'a Path,
    pub(crate) printer: &'a Printer,
    pub(crate) changes: Vec<String>,
    pub(crate) expire: i64,
    pub(crate) node: String,
    pub(crate) timeout: std::time::Duration,
    /// Requests made as the token itself (verification).
    pub(crate) token_requests: u64,
    /// A verification already made after the last change (an unchanged rerun).
    pub(crate) verified: Option<Vec<super::verify::Missing>>,
}

impl Lifecycle<'_> {
    fn remote(&self, error: &ClientError) -> CliError {
        remote_error(error, self.target)
    }

    /// Every request made so far (admin and token).
    pub(crate) fn requests(&self) -> u64 {
        self.client.requests_sent() + self.token_requests
    }

    async fn converge(
        &mut self,
        profile: &profiles::Profile,
        wanted: TokenRef,
        saved: Option<TokenFile>,
        prepared: PreparedTokenFile,
    ) -> anyhow::Result<CreateReport> {
        let version = self.client.version().await.map_err(|error| self.remote(&error))?;
        let pve = version
            .major_minor()
            .map(|(major, minor)| PveVersion { major, minor })
            .ok_or_else(|| CliError::remote(format!("cannot read the PVE version from `{}`", version.version)))?;
        let resolved = profile.resolve(pve, &self.args.narrowing.narrowing(), self.args.role.as_deref());
        // A rotation before 9.1 renamed the token: keep working on the one the file holds.
        let token = match &saved {
            Some(saved) => TokenRef { user: wanted.user.clone(), name: saved.token_id.name_str().to_owned() },
            None => wanted,
        };
        self.node = match (self.args.narrowing.node.first(), &saved) {
            (Some(node), _) => node.clone(),
            (None, Some(saved)) => saved.node.clone(),
            (None, None) => self.pick_node().await?,
        };

        let (outcome, secret) = match saved {
            Some(saved) => self.rerun(&resolved, &token, &pve, saved, prepared).await?,
            None => self.fresh(&resolved, &token, &pve, prepared).await?,
        };
        let missing = self.verify(&resolved, &token, &secret).await?;
        Ok(CreateReport {
            outcome: outcome.to_owned(),
            token_id: token.full(),
            profile: profile.name.clone(),
            role: resolved.role.clone(),
            pve_version: version.version.clone(),
            token_file: self.token_file.to_owned(),
            changes: std::mem::take(&mut self.changes),
            requests: self.requests(),
            missing,
            delivered: None,
        })
    }

    /// No saved secret for this token: role, user, token (saved at once), ACLs.
    async fn fresh(
        &mut self,
        resolved: &Resolved,
        token: &TokenRef,
        pve: &PveVersion,
        prepared: PreparedTokenFile,
    ) -> anyhow::Result<(&'static str, Secret)> {
        self.ensure_role(resolved, false).await?;
        self.ensure_user(token).await?;
        // Read before this run writes its own marker.
        let left_by_interrupted_run = pending::names(self.token_file, &token.full());
        let (outcome, secret) = match self.create_and_save(token, prepared).await {
            Ok(secret) => ("created", secret),
            Err(error) if is_token_exists(&error) => {
                if left_by_interrupted_run {
                    self.printer.warn(&format!(
                        "{} was left on the server without its secret by an interrupted run; replacing it",
                        token.full()
                    ));
                    self.client.delete_token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?;
                    self.changes
                        .push(format!("deleted {} (left without its secret by an interrupted run)", token.full()));
                    let prepared = PreparedTokenFile::prepare(self.token_file)?;
                    ("recovered", self.create_and_save(token, prepared).await?)
                } else if self.args.rotate_if_exists {
                    let prepared = PreparedTokenFile::prepare(self.token_file)?;
                    ("rotated", self.replace_secret(token, pve, prepared).await?)
                } else {
                    pending::clear(self.token_file);
                    return Err(exists_without_secret(token, self.token_file).into());
                }
            }
            Err(error) => return Err(error),
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
    ) -> anyhow::Result<(&'static str, Secret)> {
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
                let missing = super::verify::compare(&map, resolved);
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
            Some(Err(error)) if !matches!(error, ClientError::AuthFailed { .. }) => Err(self.remote(&error).into()),
            _ => {
                // The saved secret is refused: the token is gone, or its secret is not the saved one.
                let on_server = if exists {
                    self.client.token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?.is_some()
                } else {
                    false
                };
                let (outcome, secret) = if !on_server {
                    self.printer.warn(&format!(
                        "{} is in {} but no longer on the server; creating it again",
                        token.full(),
                        self.token_file.display()
                    ));
                    self.ensure_user(token).await?;
                    ("created", self.create_and_save(token, prepared).await?)
                } else if self.args.rotate_if_exists {
                    ("rotated", self.replace_secret(token, pve, prepared).await?)
                } else {
                    return Err(CliError::remote(format!(
                        "{} exists, but the server refuses the secret saved in {}",
                        token.full(),
                        self.token_file.display()
                    ))
                    .with_hint(format!(
                        "rerun with --rotate-if-exists to issue a new secret (consumers of the old one stop working), \
                         or pvetoken revoke {} and create it again",
                        token.full()
                    ))
                    .into());
                };
                self.grant(resolved, token, resolved.paths.iter().map(|path| path.path.as_str()).collect()).await?;
                Ok((outcome, secret))
            }
        }
    }

    /// The token's effective permissions: as the token itself over HTTPS; with `--local` (pvesh is root and
    /// cannot act as the token) root reads them with `userid=`.
    pub(crate) async fn token_permissions(
        &mut self,
        token_id: &str,
        secret: &Secret,
    ) -> Result<pvetoken_api::pve::Permissions, ClientError> {
        if self.client.is_local() {
            return self.client.permissions_of(token_id, None).await;
        }
        let client = super::verify::token_client(self.http.as_ref(), self.target, token_id, secret, self.timeout);
        let result = client.own_permissions(None).await;
        self.token_requests += client.requests_sent();
        result
    }

    /// Final verification as the token.
    pub(crate) async fn verify(
        &mut self,
        resolved: &Resolved,
        token: &TokenRef,
        secret: &Secret,
    ) -> anyhow::Result<Vec<super::verify::Missing>> {
        if let Some(missing) = self.verified.take() {
            return Ok(missing);
        }
        let map = self
            .token_permissions(&token.full(), secret)
            .await
            .map_err(|error| super::verify::token_refused(&error, self.target))?;
        let mut missing = super::verify::compare(&map, resolved);
        if !missing.is_empty() {
            super::verify::explain_online(Some(&self.client), token, resolved, &mut missing).await;
        }
        Ok(missing)
    }

    async fn pick_node(&self) -> anyhow::Result<String> {
        let nodes = self.client.nodes().await.map_err(|error| self.remote(&error))?;
        let host = match self.target {
            Target::Remote { endpoint, .. } => endpoint.host().split('.').next().unwrap_or_default().to_owned(),
            Target::Local { .. } => local_hostname(),
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
            [] => Err(CliError::remote("the server lists no node").with_hint("pass --node NAME").into()),
            [only] => Ok((*only).to_owned()),
            [first, ..] => {
                self.printer.warn(&format!(
                    "several nodes ({}); PROXMOX_NODE={first} (pass --node to choose)",
                    online.join(", ")
                ));
                Ok((*first).to_owned())
            }
        }
    }

    /// The role with exactly the profile's privileges. A fresh run tries `POST` first (1 request when new); a
    /// rerun reads it first (1 request when it is right).
    async fn ensure_role(&mut self, resolved: &Resolved, read_first: bool) -> anyhow::Result<()> {
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
                Err(error) => return Err(self.role_error(&error, resolved).into()),
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

    fn role_error(&self, error: &ClientError, resolved: &Resolved) -> CliError {
        if error.server_message().is_some_and(|message| message.contains("'PVE' namespace")) {
            return CliError::usage(error.to_string())
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
    async fn ensure_user(&mut self, token: &TokenRef) -> anyhow::Result<()> {
        match self.client.create_user(&token.user, Some("API automation user created by pvetoken")).await {
            Ok(()) => {
                self.changes.push(format!("created user {}", token.user));
                Ok(())
            }
            Err(error) if error.is_already_exists() => Ok(()),
            Err(error) => Err(self.remote(&error).into()),
        }
    }

    /// One `PUT /access/acl` per path, naming the user and (privsep) the token: PVE intersects both sides.
    async fn grant(&mut self, resolved: &Resolved, token: &TokenRef, paths: Vec<&str>) -> anyhow::Result<()> {
        for path in resolved.paths.iter().filter(|path| paths.contains(&path.path.as_str())) {
            let tokens = if self.args.no_privsep { Vec::new() } else { vec![token.full()] };
            let change = AclChange {
                path: path.path.clone(),
                roles: vec![resolved.role.clone()],
                users: vec![token.user.clone()],
                tokens: tokens.clone(),
                propagate: path.propagate,
                delete: false,
            };
            self.client.change_acl(&change).await.map_err(|error| {
                let mut cli = self.remote(&error);
                cli.hint = Some(format!(
                    "the token and its secret are saved in {}; rerun the same command to finish the ACLs",
                    self.token_file.display()
                ));
                cli
            })?;
            let subjects = [vec![token.user.clone()], tokens].concat().join(", ");
            self.changes.push(format!("granted {} on {} to {subjects}", resolved.role, path.path));
        }
        Ok(())
    }

    /// The token file content for `token_id` with `secret` on this server.
    pub(crate) fn token_file_for(&self, token_id: &str, secret: Secret) -> Result<TokenFile, CliError> {
        let id: pvetoken_acl::TokenId = token_id
            .parse()
            .map_err(|_| CliError::remote(format!("the server answered with an invalid token id `{token_id}`")))?;
        let mut file = TokenFile::new(&target_url(self.target), &self.node, id, secret)
            .map_err(|error| CliError::usage(format!("cannot describe the server in the token file: {error}")))?;
        if let Target::Remote { tls, .. } = self.target {
            file.fingerprint = tls.fingerprint.map(|fingerprint| fingerprint.to_string());
            file.ca_file = tls.ca_file.as_ref().and_then(|path| std::fs::canonicalize(path).ok());
            file.tls_insecure = tls.insecure;
        }
        file.expire = u64::try_from(self.expire).unwrap_or(0);
        Ok(file)
    }

    /// Saves a new secret; if that fails, deletes the token again so none is left without its secret.
    async fn save_or_undo(
        &mut self,
        prepared: PreparedTokenFile,
        token: &TokenRef,
        token_id: &str,
        secret: &Secret,
    ) -> anyhow::Result<()> {
        let saved = self.token_file_for(token_id, secret.clone()).and_then(|file| prepared.commit(&file));
        if let Err(error) = saved {
            let deleted = self.client.delete_token(&token.user, &token.name).await;
            let what = if deleted.is_ok() {
                pending::clear(self.token_file);
                "the token was deleted again"
            } else {
                "deleting the token failed too (the next run replaces it)"
            };
            return Err(CliError::usage(format!("cannot save the secret: {}; {what}", error.message))
                .with_hint("fix the token file's directory (space, permissions) and rerun")
                .into());
        }
        pending::clear(self.token_file);
        Ok(())
    }

    /// Creates the token and saves its secret at once. A marker next to the token file names the token while its
    /// creation is in flight, so that the next run can tell a token an interrupted run left behind (and replace
    /// it) from one whose secret lives elsewhere (an error).
    pub(crate) async fn create_and_save(
        &mut self,
        token: &TokenRef,
        prepared: PreparedTokenFile,
    ) -> anyhow::Result<Secret> {
        let new = NewToken {
            privsep: !self.args.no_privsep,
            expire: self.expire,
            comment: Some(format!("pvetoken profile {}", self.args.profile)),
        };
        pending::mark(self.token_file, &token.full())?;
        let created = match self.client.create_token(&token.user, &token.name, &new).await {
            Ok(created) => created,
            Err(error) if error.is_already_exists() => return Err(error.into()),
            Err(error) => {
                if error.sent() != pvetoken_client::Sent::No {
                    self.cleanup_unsaved(token).await;
                } else {
                    pending::clear(self.token_file);
                }
                return Err(self.remote(&error).into());
            }
        };
        self.save_or_undo(prepared, token, &created.full_tokenid, &created.value).await?;
        self.changes.push(format!("created token {} and saved its secret", created.full_tokenid));
        Ok(created.value)
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
    pub(crate) async fn replace_secret(
        &mut self,
        token: &TokenRef,
        pve: &PveVersion,
        prepared: PreparedTokenFile,
    ) -> anyhow::Result<Secret> {
        let detection = crate::release::detect(&self.client, Some(&self.node)).await;
        self.printer.verbose(&format!("release: {}", detection.describe()));
        if detection.method == crate::release::RotationMethod::Regenerate {
            let regenerated =
                self.client.regenerate_token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?;
            let file = self.token_file_for(&token.full(), regenerated.value.clone())?;
            prepared.commit_or_keep(&file).map_err(|error| {
                let hint = error.hint.clone().unwrap_or_else(|| {
                    "fix the directory and rerun with --rotate-if-exists (the new secret is lost)".to_owned()
                });
                CliError::usage(format!(
                    "the secret of {} was regenerated but cannot be saved: {}",
                    token.full(),
                    error.message
                ))
                .with_hint(hint)
            })?;
            self.changes.push(format!("regenerated the secret of {}", token.full()));
            return Ok(regenerated.value);
        }
        self.client.delete_token(&token.user, &token.name).await.map_err(|error| self.remote(&error))?;
        self.changes.push(format!("deleted {} (PVE {pve}: {})", token.full(), detection.describe()));
        self.create_and_save(token, prepared).await
    }
}

fn exists_without_secret(token: &TokenRef, token_file: &Path) -> CliError {
    CliError::usage(format!(
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

fn is_token_exists(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<ClientError>().is_some_and(ClientError::is_already_exists))
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|text| text.trim().split('.').next().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// The URL saved in the token file.
pub(crate) fn target_url(target: &Target) -> String {
    match target {
        Target::Remote { endpoint, .. } => endpoint.base(),
        Target::Local { .. } => {
            let host = local_hostname();
            format!("https://{}:8006", if host.is_empty() { "localhost" } else { &host })
        }
    }
}

/// The in-flight marker `<token file>.pending`: the full id of a token being created (no secret; mode 0600).
pub(crate) mod pending {
    use std::path::{Path, PathBuf};

    use crate::exit::CliError;

    fn path(token_file: &Path) -> PathBuf {
        let mut name = token_file.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
        name.push(".pending");
        token_file.with_file_name(name)
    }

    /// Records that `token_id` is about to be created for `token_file`.
    pub(crate) fn mark(token_file: &Path, token_id: &str) -> Result<(), CliError> {
        crate::token_store::write_secret_file_atomic(&path(token_file), format!("{token_id}\n").as_bytes())
    }

    /// True when the marker names `token_id`. Only a marker we (or root) wrote, 0600 and not a link, counts: a
    /// marker planted by someone else must never make create delete and replace an existing token.
    pub(crate) fn names(token_file: &Path, token_id: &str) -> bool {
        crate::token_store::read_private(&path(token_file), "pending marker").is_ok_and(|text| text.trim() == token_id)
    }

    /// Removes the marker.
    pub(crate) fn clear(token_file: &Path) {
        let _ = std::fs::remove_file(path(token_file));
    }
}

#[cfg(test)]
mod tests {
    use super::{TokenRef, next_rotation_name, parse_expire, rotation_base, validate_user};

    #[test]
    fn token_id_without_bang_is_refused_with_an_example() {
        let error = TokenRef::parse("automation@pve").expect_err("no bang");
        assert!(error.message.contains("no `!`"));
        assert!(error.hint.unwrap_or_default().contains("automation@pve!"));
        assert_eq!(TokenRef::parse("a@pve!ci").expect("valid").full(), "a@pve!ci");
    }

    #[test]
    fn a_token_id_given_as_user_is_refused() {
        assert!(validate_user("automation@pve!x").is_err());
        assert!(validate_user("automation").is_err());
        assert!(validate_user("automation@pve").is_ok());
    }

    #[test]
    fn expire_accepts_durations_and_dates() {
        assert_eq!(parse_expire("90d", 1_000).expect("duration"), 1_000 + 90 * 86_400);
        assert_eq!(parse_expire("2030-01-01", 1_000).expect("date"), 1_893_456_000);
        assert_eq!(parse_expire("never", 1_000).expect("never"), 0);
        assert!(parse_expire("soon", 1_000).is_err());
        assert!(parse_expire("2001-01-01", 1_900_000_000).is_err());
    }

    #[test]
    fn rotation_names_count_up_from_the_base_name() {
        assert_eq!(next_rotation_name("packer"), "packer-r1");
        assert_eq!(next_rotation_name("packer-r1"), "packer-r2");
        assert_eq!(rotation_base("packer-r12"), "packer");
        assert_eq!(rotation_base("my-role"), "my-role");
    }
}
