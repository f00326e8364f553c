//! `pvetoken create`: converge role, user, token and ACLs for a consumer profile, save the token, verify it.
//!
//! Order (a fresh create on a password login is 6 requests plus one `PUT /access/acl` per profile path, plus
//! `GET /nodes` when `--node` is not given):
//! 1. prepare the token file (a 0600 temp file in the destination directory) before anything touches the server;
//! 2. login, `GET /version` (privileges depend on it);
//! 3. `POST` the role and the user, falling back on "already exists" (an existing role is compared and corrected,
//!    an existing user is never touched);
//! 4. `POST` the token and save its secret at once (if saving fails, the token is deleted); a token that exists
//!    while the token file does not hold its secret is an error (`--rotate-if-exists` rotates it);
//! 5. one `PUT /access/acl` per path with `users=` and `tokens=` (privsep needs both sides);
//! 6. verify as the token itself.

use std::path::PathBuf;

use clap::Args;
use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_client::ClientError;
use pvetoken_client::pve::{AclChange, NewToken, PveClient};

use crate::connection::{AdminAuth, ConnectionArgs, Target, TargetFallback, remote_error};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use crate::profiles::{self, Narrowing, PveVersion, Resolved};

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
        let (year, month, day): (i64, i64, i64) =
            (year.parse().map_err(|_| bad())?, month.parse().map_err(|_| bad())?, day.parse().map_err(|_| bad())?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(bad());
        }
        let epoch = days_from_civil(year, month, day) * 86_400;
        if epoch <= now {
            return Err(CliError::usage(format!("--expire {text} is in the past")));
        }
        return Ok(epoch);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    if number <= 0 {
        return Err(bad());
    }
    Ok(now + number * seconds)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    /// `created`, `unchanged`, `updated` or `rotated`.
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
    /// API requests made (login included).
    pub requests: u64,
    /// Missing privileges found by the final verification (empty when complete).
    pub missing: Vec<super::verify::Missing>,
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
    let expire = args.expire.as_deref().map(|text| parse_expire(text, now())).transpose()?.unwrap_or(0);
    let token = TokenRef { user: args.user.clone(), name: token_name };
    let token_file = match &args.token_file {
        Some(path) => path.clone(),
        None => token_glue::default_path()?,
    };
    let saved = token_glue::read_if_exists(&token_file)?;
    let fallback = TargetFallback {
        url: saved.as_ref().map(|saved| saved.url.clone()),
        fingerprint: saved.as_ref().and_then(|saved| saved.fingerprint.clone()),
    };
    let target = args.connection.resolve_target(&fallback)?;
    if target.is_insecure() {
        printer.warn("--insecure: the server certificate is not checked; anyone on the path can read the credentials");
    }
    let admin = args.connection.resolve_admin()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let report =
        runtime.block_on(converge(&args, &profile, &token, expire, &token_file, saved, &target, &admin, printer))?;
    let exit = if report.missing.is_empty() { Exit::Success } else { Exit::CheckFailed };
    if printer.is_json() {
        printer.json(&report)?;
    } else {
        match report.outcome.as_str() {
            "unchanged" => printer.success(&format!(
                "{} unchanged: role {}, user, token and ACLs already in place; secret in {}",
                report.token_id,
                report.role,
                report.token_file.display()
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
        super::verify::print_missing(&report.missing, printer);
    }
    Ok(exit)
}

#[expect(clippy::too_many_arguments, reason = "one call site; the pieces are resolved separately")]
async fn converge(
    args: &CreateArgs,
    profile: &profiles::Profile,
    token: &TokenRef,
    expire: i64,
    token_file: &std::path::Path,
    saved: Option<token_glue::Saved>,
    target: &Target,
    admin: &AdminAuth,
    printer: &Printer,
) -> anyhow::Result<CreateReport> {
    // 1. The destination must be writable before a secret exists.
    let prepared = token_glue::prepare(token_file)?;
    let timeout = args.connection.timeout();
    let http = crate::connection::http_client(target, timeout)?;
    let admin_token = token_glue::read_admin_token(admin)?;
    let client = crate::connection::connect_admin(
        target,
        http.as_ref(),
        admin,
        admin_token.as_ref().map(|(id, secret)| (id.as_str(), secret)),
        timeout,
    )
    .await?;
    let remote = |error: ClientError| remote_error(&error, target);
    let version = client.version().await.map_err(remote)?;
    let pve = version
        .major_minor()
        .map(|(major, minor)| PveVersion { major, minor })
        .ok_or_else(|| CliError::remote(format!("cannot read the PVE version from `{}`", version.version)))?;
    let resolved = profile.resolve(pve, &args.narrowing.narrowing(), args.role.as_deref());
    let mut changes = Vec::new();

    // The saved token counts only if it is this token on this server.
    let saved_here = saved.filter(|saved| saved.token_id == token.full() && same_server(saved, target));

    let node = match (args.narrowing.node.first(), &saved_here) {
        (Some(node), _) => node.clone(),
        (None, Some(saved)) if !saved.node.is_empty() => saved.node.clone(),
        (None, _) => pick_node(&client, target, printer).await?,
    };

    ensure_role(&client, &resolved, target, &mut changes).await?;
    match client.create_user(&token.user, Some("API automation user created by pvetoken")).await {
        Ok(()) => changes.push(format!("created user {}", token.user)),
        Err(error) if error.is_already_exists() => {}
        Err(error) => return Err(remote(error).into()),
    }

    let mut outcome = "created";
    let secret: Secret = match &saved_here {
        Some(saved) => match client.token(&token.user, &token.name).await.map_err(remote)? {
            Some(_) => {
                outcome = "unchanged";
                saved.secret.clone()
            }
            None => {
                printer.warn(&format!(
                    "{} is in {} but no longer on the server; creating it again",
                    token.full(),
                    token_file.display()
                ));
                create_and_save(&client, token, args, expire, prepared, target, &node, &pve, token_file, &mut changes)
                    .await?
            }
        },
        None => {
            match create_and_save(&client, token, args, expire, prepared, target, &node, &pve, token_file, &mut changes)
                .await
            {
                Ok(secret) => secret,
                Err(error) if is_token_exists(&error) => {
                    if !args.rotate_if_exists {
                        return Err(CliError::usage(format!(
                            "{} already exists on the server, but {} does not hold its secret (PVE shows a secret \
                             only once)",
                            token.full(),
                            token_file.display()
                        ))
                        .with_hint(format!(
                            "rotate it deliberately: rerun with --rotate-if-exists (consumers using the old secret \
                             stop working), or point --token-file at the file that holds it; to start over: \
                             pvetoken revoke {}",
                            token.full()
                        ))
                        .into());
                    }
                    outcome = "rotated";
                    let prepared = token_glue::prepare(token_file)?;
                    super::rotate::replace_secret(
                        &client,
                        token,
                        &pve,
                        args,
                        expire,
                        prepared,
                        target,
                        &node,
                        token_file,
                        &mut changes,
                    )
                    .await?
                }
                Err(error) => return Err(error),
            }
        }
    };

    // ACLs: on a fresh token they cannot exist yet; otherwise add only what is missing.
    let existing = if outcome == "created" { Vec::new() } else { client.acl().await.map_err(remote)? };
    for path in &resolved.paths {
        let mut users = Vec::new();
        let mut tokens = Vec::new();
        let has = |kind: &str, ugid: &str| {
            existing.iter().any(|entry| {
                entry.path == path.path
                    && entry.kind == kind
                    && entry.ugid == ugid
                    && entry.roleid == resolved.role
                    && entry.propagate == path.propagate
            })
        };
        if !has("user", &token.user) {
            users.push(token.user.clone());
        }
        if !args.no_privsep && !has("token", &token.full()) {
            tokens.push(token.full());
        }
        if users.is_empty() && tokens.is_empty() {
            continue;
        }
        let change = AclChange {
            path: path.path.clone(),
            roles: vec![resolved.role.clone()],
            users: users.clone(),
            tokens: tokens.clone(),
            propagate: path.propagate,
            delete: false,
        };
        client.change_acl(&change).await.map_err(|error| {
            let mut cli = remote(error);
            cli.hint = Some(format!(
                "the token and its secret are saved in {}; rerun the same command to finish the ACLs",
                token_file.display()
            ));
            cli
        })?;
        changes.push(format!("granted {} on {} to {}", resolved.role, path.path, [users, tokens].concat().join(", ")));
    }
    if outcome == "unchanged" && !changes.is_empty() {
        outcome = "updated";
    }

    // Verify as the token itself, over the same connection.
    let token_client = super::verify::token_client(&client, http.as_ref(), target, &token.full(), &secret, timeout);
    let missing = super::verify::check(&token_client, &resolved, target).await?;
    Ok(CreateReport {
        outcome: outcome.to_owned(),
        token_id: token.full(),
        profile: profile.name.clone(),
        role: resolved.role.clone(),
        pve_version: version.version.clone(),
        token_file: token_file.to_owned(),
        changes,
        requests: client.requests_sent() + token_client.requests_sent(),
        missing,
    })
}

fn is_token_exists(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<ClientError>().is_some_and(ClientError::is_already_exists))
}

fn same_server(saved: &token_glue::Saved, target: &Target) -> bool {
    match target {
        Target::Local { .. } => true,
        Target::Remote { endpoint, .. } => pvetoken_client::endpoint::Endpoint::parse_pve(&saved.url)
            .is_ok_and(|saved| saved.host_port() == endpoint.host_port()),
    }
}

async fn pick_node(client: &PveClient, target: &Target, printer: &Printer) -> anyhow::Result<String> {
    let nodes = client.nodes().await.map_err(|error| remote_error(&error, target))?;
    let host = match target {
        Target::Remote { endpoint, .. } => endpoint.host().split('.').next().unwrap_or_default().to_owned(),
        Target::Local { .. } => String::new(),
    };
    if let Some(node) = nodes.iter().find(|node| node.node == host) {
        return Ok(node.node.clone());
    }
    let online: Vec<&str> =
        nodes.iter().filter(|node| node.status.as_deref() != Some("offline")).map(|node| node.node.as_str()).collect();
    match online.as_slice() {
        [] => Err(CliError::remote("the server lists no node").with_hint("pass --node NAME").into()),
        [only] => Ok((*only).to_owned()),
        [first, ..] => {
            printer
                .warn(&format!("several nodes ({}); PROXMOX_NODE={first} (pass --node to choose)", online.join(", ")));
            Ok((*first).to_owned())
        }
    }
}

async fn ensure_role(
    client: &PveClient,
    resolved: &Resolved,
    target: &Target,
    changes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let wanted = resolved.role_privileges();
    match client.create_role(&resolved.role, &wanted).await {
        Ok(()) => {
            changes.push(format!("created role {} ({})", resolved.role, wanted.join(",")));
            Ok(())
        }
        Err(error) if error.is_already_exists() => {
            let mut current =
                client.role(&resolved.role).await.map_err(|error| remote_error(&error, target))?.unwrap_or_default();
            current.sort();
            if current != wanted {
                client.set_role(&resolved.role, &wanted).await.map_err(|error| remote_error(&error, target))?;
                changes.push(format!("set role {} to exactly {}", resolved.role, wanted.join(",")));
            }
            Ok(())
        }
        Err(error) => {
            let mut cli = remote_error(&error, target);
            if error.server_message().is_some_and(|message| message.contains("PVE")) {
                cli = CliError::usage(error.to_string())
                    .with_hint("role names starting with PVE are reserved since PVE 8.0: pass --role Token-<name>");
            } else if error.server_message().is_some_and(|message| message.contains("invalid privilege")) {
                cli = cli.with_hint(format!(
                    "this PVE ({}) does not know a privilege of the profile; check the profile's since/before bounds",
                    resolved.version
                ));
            }
            Err(cli.into())
        }
    }
}

/// Creates the token and saves its secret at once; if saving fails, deletes the token again. If the request may
/// have reached the server without an answer, removes a token that appeared, so none is left without its secret.
#[expect(clippy::too_many_arguments, reason = "shared by create and rotate")]
pub(crate) async fn create_and_save(
    client: &PveClient,
    token: &TokenRef,
    args: &CreateArgs,
    expire: i64,
    prepared: token_glue::Prepared,
    target: &Target,
    node: &str,
    pve: &PveVersion,
    token_file: &std::path::Path,
    changes: &mut Vec<String>,
) -> anyhow::Result<Secret> {
    let new =
        NewToken { privsep: !args.no_privsep, expire, comment: Some(format!("pvetoken profile {}", args.profile)) };
    let created = match client.create_token(&token.user, &token.name, &new).await {
        Ok(created) => created,
        Err(error) if error.is_already_exists() => return Err(error.into()),
        Err(error) => {
            if error.sent() != pvetoken_client::Sent::No {
                cleanup_unsaved(client, token).await;
            }
            return Err(remote_error(&error, target).into());
        }
    };
    let _ = pve;
    let saved = token_glue::Saved {
        url: target_url(target),
        node: node.to_owned(),
        token_id: created.full_tokenid.clone(),
        secret: created.value.clone(),
        fingerprint: target_fingerprint(target),
        expire: if expire > 0 { Some(expire) } else { None },
    };
    if let Err(error) = token_glue::commit(prepared, &saved) {
        let deleted = client.delete_token(&token.user, &token.name).await;
        let what = if deleted.is_ok() { "the token was deleted again" } else { "deleting the token failed too" };
        return Err(CliError::usage(format!("cannot save the secret to {}: {error:#}; {what}", token_file.display()))
            .with_hint("fix the token file's directory (space, permissions) and rerun")
            .into());
    }
    changes.push(format!("created token {} and saved its secret", created.full_tokenid));
    let _ = created.value.expose_secret().len();
    Ok(created.value)
}

/// After a create request whose answer was lost: a token that now exists has no saved secret; delete it.
async fn cleanup_unsaved(client: &PveClient, token: &TokenRef) {
    if let Ok(Some(_)) = client.token(&token.user, &token.name).await {
        let _ = client.delete_token(&token.user, &token.name).await;
    }
}

/// The URL saved in the token file.
pub(crate) fn target_url(target: &Target) -> String {
    match target {
        Target::Remote { endpoint, .. } => endpoint.base(),
        Target::Local { .. } => {
            let host = std::fs::read_to_string("/etc/hostname").map(|text| text.trim().to_owned()).unwrap_or_default();
            format!("https://{}:8006", if host.is_empty() { "localhost" } else { &host })
        }
    }
}

/// The pin saved in the token file.
pub(crate) fn target_fingerprint(target: &Target) -> Option<String> {
    match target {
        Target::Remote { tls, .. } => tls.fingerprint.map(|fingerprint| fingerprint.to_string()),
        Target::Local { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{TokenRef, parse_expire, validate_user};

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
}

/// The one place the lifecycle commands touch the token file. It delegates to the token store
/// (`crate::token_store`, `pvetoken_render::TokenFile`) once that lands; until then every call fails clearly.
pub(crate) mod token_glue {
    use std::path::{Path, PathBuf};

    use pvetoken_api::Secret;

    use crate::connection::AdminAuth;
    use crate::exit::CliError;

    /// What the lifecycle needs from a token file.
    #[derive(Debug, Clone)]
    pub(crate) struct Saved {
        /// `PROXMOX_URL`.
        pub url: String,
        /// `PROXMOX_NODE`.
        pub node: String,
        /// `PROXMOX_TOKEN_ID` (full).
        pub token_id: String,
        /// `PROXMOX_TOKEN_SECRET`.
        pub secret: Secret,
        /// `PROXMOX_FINGERPRINT`.
        pub fingerprint: Option<String>,
        /// `PROXMOX_TOKEN_EXPIRE`.
        pub expire: Option<i64>,
    }

    /// A prepared destination (0600 temp file in the target directory).
    #[derive(Debug)]
    pub(crate) struct Prepared {
        _path: PathBuf,
    }

    fn missing() -> CliError {
        CliError {
            exit: crate::exit::Exit::Internal,
            message: "the token store (token file read/write) is not built yet".to_owned(),
            hint: None,
        }
    }

    pub(crate) fn default_path() -> Result<PathBuf, CliError> {
        Err(missing())
    }

    pub(crate) fn read_if_exists(path: &Path) -> Result<Option<Saved>, CliError> {
        if path.exists() { Err(missing()) } else { Ok(None) }
    }

    pub(crate) fn read(_path: &Path) -> Result<Saved, CliError> {
        Err(missing())
    }

    pub(crate) fn prepare(_path: &Path) -> Result<Prepared, CliError> {
        Err(missing())
    }

    pub(crate) fn commit(_prepared: Prepared, _saved: &Saved) -> anyhow::Result<()> {
        Err(missing().into())
    }

    /// The admin token (id, secret) when `PVETOKEN_ADMIN_TOKEN_FILE` is used.
    pub(crate) fn read_admin_token(admin: &AdminAuth) -> Result<Option<(String, Secret)>, CliError> {
        match admin {
            AdminAuth::TokenFile(path) => {
                let saved = read(path)?;
                Ok(Some((saved.token_id, saved.secret)))
            }
            _ => Ok(None),
        }
    }
}
