//! `pvetoken verify`: as the token itself, read `GET /access/permissions` (without `userid`, which needs
//! `Sys.Audit` before PVE 8.2) and compare with the profile's needs; report each missing privilege with its path,
//! its reason and, with admin credentials, whether the user side or the token side lacks it; print the fix.

use std::path::PathBuf;

use clap::Args;
use pvetoken_api::Secret;
use pvetoken_client::pve::PveClient;

use super::create::{TokenRef, token_glue};
use crate::connection::{ConnectionArgs, Target, TargetFallback, remote_error};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use crate::profiles::{self, PveVersion, Resolved};

/// Arguments of `pvetoken verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The profile whose needs to check (default: the token name, when it names a built-in profile).
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Token file to read the token from.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Custom role name used at create time (for the suggested fix).
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    #[command(flatten)]
    pub narrowing: super::create::NarrowingArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// One missing privilege.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Missing {
    /// ACL path.
    pub path: String,
    /// Privilege.
    pub privilege: String,
    /// Why the consumer needs it.
    pub reason: String,
    /// `user`, `token`, `both` or `unknown` (without admin credentials).
    pub lacking_side: String,
    /// The `pveum` command that fixes it.
    pub fix: String,
}

/// A client authenticated as the token, reusing the run's HTTP client (same connection pool).
pub fn token_client(
    admin: &PveClient,
    http: Option<&reqwest::Client>,
    target: &Target,
    token_id: &str,
    secret: &Secret,
    timeout: std::time::Duration,
) -> PveClient {
    match (target, http) {
        (Target::Remote { endpoint, .. }, Some(http)) => {
            PveClient::with_token(http.clone(), endpoint.clone(), token_id, secret)
        }
        _ => {
            let _ = admin;
            match target {
                Target::Local { pvesh } => PveClient::local(pvesh.clone(), timeout),
                Target::Remote { endpoint, .. } => {
                    PveClient::with_token(reqwest::Client::new(), endpoint.clone(), token_id, secret)
                }
            }
        }
    }
}

/// Compares the token's own permissions with the resolved needs. `--local` (pvesh as root) cannot act as the
/// token, so it reads the token's permissions as root with `userid=`.
pub async fn check(client: &PveClient, resolved: &Resolved, target: &Target) -> anyhow::Result<Vec<Missing>> {
    check_as(client, None, resolved, target).await
}

async fn check_as(
    client: &PveClient,
    token_id_for_local: Option<&str>,
    resolved: &Resolved,
    target: &Target,
) -> anyhow::Result<Vec<Missing>> {
    let map = match (client.is_local(), token_id_for_local) {
        (true, Some(token_id)) => client.permissions_of(token_id, None).await,
        _ => client.own_permissions(None).await,
    }
    .map_err(|error| {
        let mut cli = remote_error(&error, target);
        if matches!(error, pvetoken_client::ClientError::AuthFailed { .. }) {
            cli.message = format!("the token was refused: {error}");
            cli.hint = Some(
                "the secret in the token file is wrong, or the token/user expired or was deleted: \
                             pvetoken create --rotate-if-exists (or pvetoken rotate) issues a new secret"
                    .to_owned(),
            );
        }
        cli
    })?;
    let mut missing = Vec::new();
    for path in &resolved.paths {
        // The map lists ACL-tree paths; fall back on the nearest listed ancestor with a propagating grant.
        let granted = effective_at(&map, &path.path);
        for (privilege, reason) in &path.privileges {
            if !granted.contains(privilege) {
                missing.push(Missing {
                    path: path.path.clone(),
                    privilege: privilege.clone(),
                    reason: reason.clone(),
                    lacking_side: "unknown".to_owned(),
                    fix: String::new(),
                });
            }
        }
    }
    Ok(missing)
}

fn effective_at(map: &pvetoken_api::pve::Permissions, path: &str) -> std::collections::BTreeSet<String> {
    if let Some(privs) = map.get(path) {
        return privs.keys().cloned().collect();
    }
    let mut current = path.to_owned();
    while let Some(cut) = current.rfind('/') {
        current.truncate(cut);
        let key = if current.is_empty() { "/" } else { current.as_str() };
        if let Some(privs) = map.get(key) {
            return privs.iter().filter(|(_, propagate)| **propagate == 1).map(|(name, _)| name.clone()).collect();
        }
        if current.is_empty() {
            break;
        }
    }
    std::collections::BTreeSet::new()
}

/// Fills in which side lacks each privilege (admin view of the user and the token) and the exact fix.
pub async fn explain(admin: Option<&PveClient>, token: &TokenRef, resolved: &Resolved, missing: &mut [Missing]) {
    let (user_map, token_map) = match admin {
        Some(admin) => {
            (admin.permissions_of(&token.user, None).await.ok(), admin.permissions_of(&token.full(), None).await.ok())
        }
        None => (None, None),
    };
    for item in missing.iter_mut() {
        let user_has = user_map.as_ref().map(|map| effective_at(map, &item.path).contains(&item.privilege));
        let token_acl_has = token_map.as_ref().map(|map| effective_at(map, &item.path).contains(&item.privilege));
        item.lacking_side = match (user_has, token_acl_has) {
            (Some(false), _) => "user".to_owned(),
            (Some(true), Some(false)) => "token".to_owned(),
            (Some(true), Some(true)) => "token".to_owned(),
            _ => "unknown".to_owned(),
        };
        let propagate = resolved.paths.iter().find(|p| p.path == item.path).is_none_or(|p| p.propagate);
        let subject = match item.lacking_side.as_str() {
            "user" => format!("--users {}", token.user),
            "token" => format!("--tokens '{}'", token.full()),
            _ => format!("--users {} --tokens '{}'", token.user, token.full()),
        };
        item.fix = format!(
            "pveum acl modify {} {subject} --roles {}{}  (or: pvetoken create --profile {} --user {} --token-name {})",
            item.path,
            resolved.role,
            if propagate { "" } else { " --propagate 0" },
            resolved.profile,
            token.user,
            token.name
        );
    }
}

/// Prints the missing privileges (text mode).
pub fn print_missing(missing: &[Missing], printer: &Printer) {
    for item in missing {
        printer.error(&format!(
            "missing {} on {} ({} side): needed to {}",
            item.privilege, item.path, item.lacking_side, item.reason
        ));
        if !item.fix.is_empty() {
            printer.hint(&item.fix);
        }
    }
}

/// Runs `pvetoken verify`.
pub fn run(args: VerifyArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let token_file = match &args.token_file {
        Some(path) => path.clone(),
        None => token_glue::default_path()?,
    };
    let saved = token_glue::read(&token_file)?;
    let token = TokenRef::parse(&saved.token_id)?;
    let profile_name = args.profile.clone().unwrap_or_else(|| token.name.clone());
    let profile = profiles::load(&profile_name).map_err(|error| {
        let mut cli = CliError::from(error);
        if args.profile.is_none() {
            cli.hint = Some(format!("pass --profile (one of {})", profiles::builtin_names().join(", ")));
        }
        cli
    })?;
    let fallback = TargetFallback { url: Some(saved.url.clone()), fingerprint: saved.fingerprint.clone() };
    let target = args.connection.resolve_target(&fallback)?;
    if target.is_insecure() {
        printer.warn("--insecure: the server certificate is not checked");
    }
    let admin_auth =
        if args.connection.admin_available_without_prompt() { Some(args.connection.resolve_admin()?) } else { None };
    let timeout = args.connection.timeout();
    let runtime = tokio::runtime::Runtime::new()?;
    let (resolved, missing) = runtime.block_on(async {
        let http = crate::connection::http_client(&target, timeout)?;
        let client = match (&target, http.as_ref()) {
            (Target::Remote { endpoint, .. }, Some(http)) => {
                PveClient::with_token(http.clone(), endpoint.clone(), &saved.token_id, &saved.secret)
            }
            (Target::Local { pvesh }, _) => PveClient::local(pvesh.clone(), timeout),
            _ => return Err(anyhow::Error::from(CliError::usage("no client"))),
        };
        let version = client.version().await.map_err(|error| remote_error(&error, &target))?;
        let pve = version
            .major_minor()
            .map(|(major, minor)| PveVersion { major, minor })
            .ok_or_else(|| CliError::remote("cannot read the PVE version"))?;
        let resolved = profile.resolve(pve, &args.narrowing.narrowing(), args.role.as_deref());
        let mut missing = check_as(&client, Some(&saved.token_id), &resolved, &target).await?;
        if !missing.is_empty() {
            let admin = match &admin_auth {
                Some(auth) => {
                    let admin_token = token_glue::read_admin_token(auth)?;
                    crate::connection::connect_admin(
                        &target,
                        http.as_ref(),
                        auth,
                        admin_token.as_ref().map(|(id, secret)| (id.as_str(), secret)),
                        timeout,
                    )
                    .await
                    .ok()
                }
                None => None,
            };
            explain(admin.as_ref(), &token, &resolved, &mut missing).await;
        }
        Ok((resolved, missing))
    })?;
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "token_id": token.full(),
            "profile": resolved.profile,
            "pve_version": resolved.version.to_string(),
            "ok": missing.is_empty(),
            "missing": missing,
        }))?;
    } else if missing.is_empty() {
        printer.success(&format!(
            "{} has every privilege profile {} needs on PVE {}",
            token.full(),
            resolved.profile,
            resolved.version
        ));
    } else {
        print_missing(&missing, printer);
        if missing.iter().any(|item| item.lacking_side == "unknown") {
            printer.hint("set PVETOKEN_PASSWORD (or use --local) to learn whether the user or the token side lacks it");
        }
    }
    Ok(if missing.is_empty() { Exit::Success } else { Exit::CheckFailed })
}
