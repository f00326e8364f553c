//! `pvetoken verify`: as the token itself, read `GET /access/permissions` (without `userid`, which needs
//! `Sys.Audit` before PVE 8.2) and compare with the profile's needs; report each missing privilege with its path,
//! its reason and whether the user side or the token side lacks it (from `--user-cfg FILE` through the permission
//! engine's explanation, or with admin credentials from the server); print the fix; exit 1 when short.

use std::path::PathBuf;

use clap::Args;
use pvetoken_acl::{Catalog, UserCfg};
use pvetoken_lifecycle::target::{token_client, token_file_client, token_refused};
use pvetoken_lifecycle::verify::{compare, explain_offline, explain_online};

use crate::connection::{ConnectionArgs, TargetFallback};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use pvetoken_lifecycle::profiles::{self, PveVersion};
use pvetoken_lifecycle::token::TokenRef;
use pvetoken_lifecycle::token_store;

/// Arguments of `pvetoken verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub token: crate::args::CheckedTokenArgs,
    /// Explain which side (user or token) lacks a privilege from this user.cfg (e.g. a copy of /etc/pve/user.cfg)
    /// instead of asking the server with admin credentials.
    #[arg(long, value_name = "FILE")]
    pub user_cfg: Option<PathBuf>,
    /// Instead of a profile: would the token's current rights have satisfied every call it made in these
    /// pveproxy access logs? (exit 1 with the missing privilege per call)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["profile", "user_cfg"])]
    pub against_log: Vec<PathBuf>,
    #[command(flatten)]
    pub narrowing: crate::args::NarrowingArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Runs `pvetoken verify`.
pub fn run(args: VerifyArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let token_file = args.token.token_path()?;
    let saved = token_store::read(&token_file)?;
    let token = TokenRef::parse(saved.token_id.as_str())?;
    if !args.against_log.is_empty() {
        return against_log(&args, &saved, printer);
    }
    let profile_name = args.token.profile_for(&token);
    let profile = profiles::load(&profile_name).map_err(|error| {
        let mut cli = CliError::from(error);
        if args.token.profile.is_none() {
            cli.hint = Some(format!("pass --profile (one of {})", profiles::builtin_names().join(", ")));
        }
        cli
    })?;
    let user_cfg = match &args.user_cfg {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|error| {
            CliError::usage(format!("--user-cfg {}: {error}", path.display()))
                .with_hint("on the PVE host it is /etc/pve/user.cfg")
        })?),
        None => None,
    };
    let fallback = TargetFallback::from_token_file(&saved);
    let target = args.connection.resolve_target(&fallback, printer)?;
    let admin_auth = if user_cfg.is_none() && args.connection.admin_available_without_prompt() {
        Some(args.connection.resolve_admin()?)
    } else {
        None
    };
    let timeout = args.connection.timeout();
    let runtime = tokio::runtime::Runtime::new()?;
    let (resolved, missing) = runtime.block_on(async {
        let http = crate::connection::http_client(&target, timeout)?;
        let client = token_client(http.as_ref(), &target, saved.token_id.as_str(), &saved.secret, timeout);
        let version = client.version().await.map_err(|error| token_refused(&error, &target))?;
        let pve = version
            .major_minor()
            .map(|(major, minor)| PveVersion { major, minor })
            .ok_or_else(|| CliError::remote("cannot read the PVE version"))?;
        let resolved = profile.resolve(pve, &args.narrowing.narrowing(), args.token.role.as_deref());
        // pvesh is root and cannot act as the token: root reads the token's permissions with userid=.
        let map = if client.is_local() {
            client.permissions_of(saved.token_id.as_str(), None).await
        } else {
            client.own_permissions(None).await
        }
        .map_err(|error| token_refused(&error, &target))?;
        let mut missing = compare(&map, &resolved);
        if !missing.is_empty() {
            if let Some(text) = &user_cfg {
                let (version, assumption) = pvetoken_acl::PveVersion::of_server(&version.version);
                if let Some(assumption) = assumption {
                    printer.warn(&assumption);
                }
                let catalog = Catalog::for_version(version);
                let (cfg, _warnings) = UserCfg::parse(text, &catalog);
                explain_offline(&cfg, &catalog, &token, &resolved, &mut missing);
            } else {
                let admin = match &admin_auth {
                    Some(auth) => {
                        // An unsafe admin token file is an error even here; a failed login only loses the detail.
                        crate::connection::read_admin_token(auth)?;
                        crate::connection::connect_admin(&target, http.as_ref(), auth, timeout).await.ok()
                    }
                    None => None,
                };
                explain_online(admin.as_ref(), &token, &resolved, &mut missing).await;
            }
        }
        Ok::<_, anyhow::Error>((resolved, missing))
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
        printer.missing(&missing);
        if missing.iter().any(|item| item.lacking_side == "unknown") {
            printer.hint(
                "set PVETOKEN_PASSWORD (or use --local), or pass --user-cfg /etc/pve/user.cfg, to learn whether the \
                 user or the token side lacks it",
            );
        }
    }
    Ok(if missing.is_empty() { Exit::Success } else { Exit::CheckFailed })
}

/// `verify --against-log`: the token's effective privileges on each path its logged calls needed.
fn against_log(args: &VerifyArgs, saved: &pvetoken_render::TokenFile, printer: &Printer) -> anyhow::Result<Exit> {
    let log = crate::evidence::read_logs(&args.against_log, printer)?;
    let (calls, unknown) = crate::evidence::map_calls(&log, saved.token_id.as_str());
    if calls.is_empty() {
        return Err(CliError::usage(format!("the logs hold no call of {}", saved.token_id.as_str()))
            .with_hint("pass the pveproxy access logs of the host the token was used on")
            .into());
    }
    let paths: std::collections::BTreeSet<String> =
        calls.iter().flat_map(|c| c.needs.iter().map(|n| n.0.clone())).collect();
    let target = args.connection.resolve_target(&TargetFallback::from_token_file(saved), printer)?;
    let timeout = args.connection.timeout();
    let runtime = tokio::runtime::Runtime::new()?;
    let held = runtime.block_on(async {
        let client = token_file_client(&target, saved, timeout)?;
        let mut held = std::collections::BTreeMap::new();
        for path in &paths {
            let map = if client.is_local() {
                client.permissions_of(saved.token_id.as_str(), Some(path)).await
            } else {
                client.own_permissions(Some(path)).await
            }
            .map_err(|error| token_refused(&error, &target))?;
            let privileges: std::collections::BTreeSet<String> =
                map.get(path).map(|m| m.keys().cloned().collect()).unwrap_or_default();
            held.insert(path.clone(), privileges);
        }
        Ok::<_, anyhow::Error>(held)
    })?;
    let mut missing: std::collections::BTreeMap<(String, String, String), usize> = std::collections::BTreeMap::new();
    for call in &calls {
        for (path, privilege, _, _) in &call.needs {
            if !held.get(path).is_some_and(|p| p.contains(privilege)) {
                *missing.entry((call.call.clone(), path.clone(), privilege.clone())).or_default() += call.count;
            }
        }
    }
    if printer.is_json() {
        let items: Vec<serde_json::Value> = missing
            .iter()
            .map(|((call, path, privilege), n)| {
                serde_json::json!({"call": call, "path": path, "privilege": privilege, "count": n})
            })
            .collect();
        printer.json(&serde_json::json!({
            "token_id": saved.token_id.as_str(), "calls": crate::evidence::call_count(&calls), "missing": items, "unknown": unknown,
        }))?;
    } else if missing.is_empty() {
        printer.success(&format!(
            "{} holds what every one of its {} logged calls needed",
            saved.token_id.as_str(),
            crate::evidence::call_count(&calls)
        ));
    } else {
        for ((call, path, privilege), n) in &missing {
            printer.error(&format!("{call} ×{n} needs {privilege} on {path}, which the token lacks"));
        }
    }
    for (call, n) in &unknown {
        printer.warn(&format!("{call} ×{n}: not in the endpoint catalog; not checked"));
    }
    Ok(if missing.is_empty() { Exit::Success } else { Exit::CheckFailed })
}
