//! `pvetoken create`: the arguments of one token, run through the lifecycle engine
//! ([`pvetoken_lifecycle::engine`], which documents the steps and the requests), then `--deliver-to VMID` writes
//! the token file into a guest, and the report is printed.

use std::path::PathBuf;

use clap::Args;
use pvetoken_lifecycle::engine::{self, Converged, Lifecycle, Settings};
use pvetoken_lifecycle::profiles;
use pvetoken_lifecycle::rotate::Sinks as _;
use pvetoken_lifecycle::token::{TokenRef, validate_user};
use pvetoken_lifecycle::token_store::{self, PreparedTokenFile};

use crate::args::NarrowingArgs;
use crate::connection::{ConnectionArgs, TargetFallback};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;

/// Arguments of `pvetoken create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Consumer profile: privatebox, packer, terraform, terraform-telmate, ansible, readonly, or a TOML file.
    #[arg(long, value_name = "PROFILE", required_unless_present = "minter", conflicts_with = "minter")]
    pub profile: Option<String>,
    /// Set up a minter instead: a user holding the rights of --profiles, in a group of its own, whose token can only
    /// create and delete that user's tokens, for `pvetoken exec --minter` (docs/exec.md).
    #[arg(long, requires = "profiles", conflicts_with = "no_privsep")]
    pub minter: bool,
    /// With --minter: the profiles its jobs may use (comma-separated names or TOML files).
    #[arg(long, value_name = "PROFILE,...", value_delimiter = ',', requires = "minter")]
    pub profiles: Vec<String>,
    /// The user that owns the token (created without a password if missing; an existing user is not changed)
    /// [default: automation@pve; with --minter: pvetoken-minter@pve].
    #[arg(long, value_name = "USER@REALM")]
    pub user: Option<String>,
    /// Token name (default: the profile's name; with --minter: mint).
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

/// What `create` reports: the engine's run, and the delivery into a guest.
#[derive(Debug, serde::Serialize)]
pub struct CreateReport {
    /// The converging run.
    #[serde(flatten)]
    pub converged: Converged,
    /// The delivery into a guest (`--deliver-to`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<crate::deliver::DeliveryReport>,
}

impl CreateArgs {
    /// The engine's settings for these arguments (`expire` already parsed) and `profile`.
    fn settings(&self, profile: &profiles::Profile, expire: i64) -> Settings {
        Settings {
            profile: self.profile.clone().unwrap_or_else(|| profile.name.clone()),
            narrowing: self.narrowing.narrowing(),
            role: self.role.clone(),
            privsep: !self.no_privsep,
            rotate_if_exists: self.rotate_if_exists,
            expire,
        }
    }
}

/// Runs `pvetoken create`.
pub fn run(args: CreateArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let (profile, token) = profile_and_token(&args)?;
    let expire = args
        .expire
        .as_deref()
        .map(|text| pvetoken_lifecycle::clock::parse_expire(text, pvetoken_lifecycle::clock::now()))
        .transpose()?
        .unwrap_or(0);
    let token_file = token_store::path_or_default(args.token_file.as_deref())?;
    // One run per token file at a time, from before it is read until the secret is saved.
    let _lock = token_store::lock(&token_file, printer)?;
    let saved = token_store::read_if_exists(&token_file)?;
    let fallback = TargetFallback::from_optional(saved.as_ref());
    let target = args.connection.resolve_target(&fallback, printer)?;
    // The token file may hold this token (a rerun), or a rotation of it; anything else would be overwritten.
    let saved = engine::saved_for(saved, &token, &target, &token_file)?;
    let admin = args.connection.resolve_admin()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(async {
        let timeout = args.connection.timeout();
        // The destination must be writable before a secret exists.
        let prepared = PreparedTokenFile::prepare(&token_file)?;
        let http = crate::connection::http_client(&target, timeout)?;
        let client = crate::connection::connect_admin(&target, http.as_ref(), &admin, timeout).await?;
        let settings = args.settings(&profile, expire);
        let group_changes = if args.minter {
            pvetoken_lifecycle::minter::ensure_group(&client, &token.user, &target).await?
        } else {
            Vec::new()
        };
        let mut run = Lifecycle::new(&settings, &target, &client, http, &token_file, printer, timeout);
        let minter_token = args.minter.then(|| token.clone());
        let mut converged = run.converge(&profile, token, saved, prepared).await?;
        converged.changes.splice(0..0, group_changes);
        if let Some(token) = &minter_token {
            converged.changes.extend(pvetoken_lifecycle::minter::grant_group(&client, token, &target).await?);
        }
        if matches!(converged.outcome.as_str(), "created" | "recovered" | "rotated") {
            // A new secret: the sinks recorded for this token file (Semaphore, OpenBao, guests) get it too.
            let sinks = crate::sinks::RegisteredSinks { token_file: &token_file, target: &target, printer };
            sinks.update(run.client()).await.map_err(|failed| crate::sinks::stale_sinks(&failed))?;
        }
        let mut report = CreateReport { converged, delivered: None };
        if let Some(vmid) = args.deliver_to {
            let token = token_store::read(&token_file)?;
            let mut request = crate::deliver::DeliveryRequest::new(run.node().to_owned(), vmid, admin.describe());
            if let Some(path) = &args.guest_path {
                request.guest_path = path.clone();
            }
            let delivered = crate::deliver::deliver(run.client(), &target, &request, &token, printer).await?;
            crate::sinks::guest::remember(&token_file, &request)?;
            report.converged.requests = run.requests();
            report.delivered = Some(delivered);
        }
        Ok::<_, anyhow::Error>(report)
    })?;
    print_report(&report, printer)?;
    Ok(if report.converged.missing.is_empty() { Exit::Success } else { Exit::CheckFailed })
}

/// The profile (or a minter's merged profiles) and the token it makes, checked before anything is read or asked:
/// the user, the token name, `--role`, and `--deliver-to` without `--local`.
fn profile_and_token(args: &CreateArgs) -> Result<(profiles::Profile, TokenRef), CliError> {
    let user = args.user.clone().unwrap_or_else(|| {
        if args.minter { pvetoken_lifecycle::minter::DEFAULT_USER } else { "automation@pve" }.to_owned()
    });
    validate_user(&user)?;
    let profile = match &args.profile {
        Some(name) => profiles::load(name).map_err(CliError::from)?,
        None => {
            let each = args.profiles.iter().map(|name| profiles::load(name)).collect::<Result<Vec<_>, _>>();
            pvetoken_lifecycle::minter::profile(&each.map_err(CliError::from)?)?
        }
    };
    let default_name = if args.minter { pvetoken_lifecycle::minter::DEFAULT_TOKEN_NAME } else { &profile.name };
    let token_name = args.token_name.clone().unwrap_or_else(|| default_name.to_owned());
    if !profiles::is_token_name(&token_name) {
        return Err(CliError::usage(format!("token name `{token_name}` is not valid"))
            .with_hint("a token name starts with a letter and has at least 2 of: letters, digits, `.`, `-`, `_`"));
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
        .with_hint("connect over HTTPS instead: --url https://localhost:8006 --ca-file /etc/pve/pve-root-ca.pem"));
    }
    Ok((profile, TokenRef { user, name: token_name }))
}

/// The text report: the outcome, the changes (verbose), the delivery, what is missing; or the JSON report.
fn print_report(report: &CreateReport, printer: &Printer) -> anyhow::Result<()> {
    if printer.is_json() {
        printer.json(report)?;
    } else {
        let converged = &report.converged;
        match converged.outcome.as_str() {
            "unchanged" => printer.success(&format!(
                "{} unchanged: role {}, user, token and ACLs already in place; secret in {} ({} requests)",
                converged.token_id,
                converged.role,
                converged.token_file.display(),
                converged.requests
            )),
            outcome => printer.success(&format!(
                "{} {outcome} for profile {} on PVE {} ({} requests); secret saved to {} (0600)",
                converged.token_id,
                converged.profile,
                converged.pve_version,
                converged.requests,
                converged.token_file.display()
            )),
        }
        for change in &converged.changes {
            printer.verbose(&format!("  {change}"));
        }
        if let Some(delivered) = &report.delivered {
            printer.success(&format!(
                "delivered into VM {} on {} at {} ({} bytes, read back and identical)",
                delivered.vmid, delivered.node, delivered.guest_path, delivered.bytes
            ));
        }
        printer.missing(&report.converged.missing);
    }
    Ok(())
}
