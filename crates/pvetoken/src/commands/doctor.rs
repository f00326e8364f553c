//! `pvetoken doctor`: every check between this machine and a working token, in order, each finding with its fix;
//! and `pvetoken doctor --explain-error TEXT|-`: from an error text to its cause and fix.
//!
//! Exit codes: 0 when nothing blocks (warnings allowed), 1 when a finding is an error or blocking (or an error text
//! is not recognised), 2 for bad usage.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use pvetoken_client::pve::PveClient;
use pvetoken_client::semaphore::SemaphoreAuth;
use pvetoken_render::TokenFile;
use pvetoken_render::consumers::SemaphoreLayout;

use pvetoken_lifecycle::token::TokenRef;

use crate::args::NarrowingArgs;
use crate::connection::{ConnectionArgs, Target, TargetFallback, service_tls};
use crate::doctor::explain::{self, Explanation};
use crate::doctor::{self, Check, Finding, Report, Severity, Status, Stopped};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use pvetoken_lifecycle::env_vars;
use pvetoken_lifecycle::profiles::{self, PveVersion, ResolvedPath};
use pvetoken_lifecycle::target::token_client;
use pvetoken_lifecycle::token_store;

/// Arguments of `pvetoken doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Explain an error text instead of running the checks (`-` or no value: read it from stdin).
    #[arg(long, value_name = "TEXT", num_args = 0..=1, default_missing_value = "-")]
    pub explain_error: Option<String>,
    #[command(flatten)]
    pub token: crate::args::CheckedTokenArgs,
    /// Also check the Semaphore registration at this URL (credentials from SEMAPHORE_API_TOKEN or
    /// SEMAPHORE_PASSWORD).
    #[arg(long, env = env_vars::SEMAPHORE_URL, value_name = "URL", help_heading = "Semaphore")]
    pub semaphore_url: Option<String>,
    /// Semaphore login for a password session.
    #[arg(long, value_name = "NAME", default_value = "admin", help_heading = "Semaphore")]
    pub semaphore_user: String,
    /// Semaphore project id or name.
    #[arg(long, value_name = "ID|NAME", default_value = "1", help_heading = "Semaphore")]
    pub semaphore_project: String,
    /// The environment that must exist.
    #[arg(long, value_name = "NAME", default_value = "ProxmoxAPI", help_heading = "Semaphore")]
    pub semaphore_environment: String,
    /// The variable layout it must hold: `seed` (the design note's four variables) or `community-proxmox`.
    #[arg(long, value_name = "LAYOUT", value_enum, default_value = "seed", help_heading = "Semaphore")]
    pub semaphore_layout: SemaphoreLayout,
    /// Trust this CA for Semaphore's HTTPS.
    #[arg(long, value_name = "PEM", help_heading = "Semaphore")]
    pub semaphore_ca_file: Option<PathBuf>,
    /// Pin Semaphore's certificate by SHA-256 fingerprint.
    #[arg(long, value_name = "SHA256", help_heading = "Semaphore")]
    pub semaphore_fingerprint: Option<String>,
    /// Accept any certificate from Semaphore (dangerous).
    #[arg(long, help_heading = "Semaphore")]
    pub semaphore_insecure: bool,
    #[command(flatten)]
    pub narrowing: NarrowingArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Runs `pvetoken doctor`.
pub fn run(args: DoctorArgs, printer: &Printer) -> anyhow::Result<Exit> {
    if let Some(text) = &args.explain_error {
        return run_explain(&args, text, printer);
    }
    if args.connection.insecure {
        printer.warn("--insecure: the server certificate is not checked; anyone on the path can read the credentials");
    }
    let report = tokio::runtime::Runtime::new()?.block_on(diagnose(&args))?;
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "ok": !report.fails(),
            "blocked_by": report.blocked_by,
            "checks": report.checks,
            "findings": report.findings,
        }))?;
    } else {
        print_report(&report, printer)?;
    }
    Ok(if report.fails() { Exit::CheckFailed } else { Exit::Success })
}

/// Runs every check in order and returns the report (the demo calls this too).
pub async fn diagnose(args: &DoctorArgs) -> anyhow::Result<Report> {
    let mut report = Report::default();
    match chain(args, &mut report).await {
        Ok(()) => Ok(report),
        Err(error) if error.is::<Stopped>() => Ok(report),
        Err(error) => Err(error),
    }
}

/// The checks, each a link of the chain; a blocking finding ends it (`report.gate(..)?`).
async fn chain(args: &DoctorArgs, report: &mut Report) -> anyhow::Result<()> {
    let token_path = args.token.token_path()?;
    let profile_hint = args.token.profile.clone().unwrap_or_else(|| "PROFILE".to_owned());
    let checked = doctor::token_file::check(&token_path, &profile_hint);
    let token = checked.token;
    report.gate(Check::TokenFile, token_path.display().to_string(), checked.findings)?;
    let Some(token) = token else {
        return Err(report.stop().into());
    };

    let vars = doctor::environment::present(std::env::vars());
    let names: Vec<&str> = vars.iter().map(|(name, _)| name.as_str()).collect();
    let detail = if names.is_empty() {
        "no consumer variables set in this shell".to_owned()
    } else {
        format!("checked {}", names.join(", "))
    };
    report.record(Check::Environment, detail, doctor::environment::check(&vars, Some(&token)));

    let target = match resolve_target(args, &token) {
        Ok(target) => target,
        Err(error) => {
            let finding =
                Finding::new(crate::doctor::id::CONNECTION_SETTINGS, Severity::Blocking, "dns", error.message)
                    .why("doctor cannot tell where the server is or how to check its certificate")
                    .fix(error.hint.unwrap_or_else(|| "pvetoken doctor --url https://HOST:8006".to_owned()));
            report.record(Check::Dns, "settings", vec![finding]);
            return Err(report.stop().into());
        }
    };
    let timeout = args.connection.timeout();
    if let Target::Remote { endpoint, tls } = &target {
        let (addresses, findings, detail) = doctor::network::dns(endpoint).await;
        report.gate(Check::Dns, detail, findings)?;
        let (findings, detail) = doctor::network::tcp(endpoint, &addresses, timeout).await;
        report.gate(Check::Tcp, detail, findings)?;
        let (findings, detail) = doctor::network::tls(endpoint, tls, timeout).await;
        report.gate(Check::Tls, detail, findings)?;
    } else {
        for check in [Check::Dns, Check::Tcp, Check::Tls] {
            report.skip(check, "--local: pvesh on this host");
        }
    }

    let http = crate::connection::http_client(&target, timeout)?;
    let client = token_client(http.as_ref(), &target, token.token_id.as_str(), &token.secret, timeout);
    let now = pvetoken_lifecycle::clock::now();
    let (version, findings, detail) = doctor::pve::auth(&client, &token, now).await;
    report.gate(Check::Auth, detail, findings)?;
    let Some(version) = version else {
        return Err(report.stop().into());
    };
    let (pve, findings, detail) = doctor::pve::version(&version);
    report.gate(Check::Version, detail, findings)?;

    let token_ref = TokenRef::parse(token.token_id.as_str())?;
    let admin = connect_admin(args, &target, http.as_ref(), timeout).await;
    privileges(args, &client, &token_ref, pve, &admin, report).await;
    if report.is_blocked() {
        return Err(report.stop().into());
    }

    let server_expire = match &admin {
        Ok(admin) => admin.token(&token_ref.user, &token_ref.name).await.ok().flatten().map(|info| info.expire),
        Err(_) => None,
    };
    let (findings, detail) = doctor::pve::expiry(&token, server_expire, now);
    report.gate(Check::Expiry, detail, findings)?;

    match &args.semaphore_url {
        None => report.skip(Check::Semaphore, "not asked (--semaphore-url URL, or SEMAPHORE_URL)"),
        Some(url) => {
            let (findings, detail) = check_semaphore(args, url).await?;
            report.record(Check::Semaphore, detail, findings);
        }
    }
    Ok(())
}

/// The privileges check: the token's effective rights against its profile (with admin access, which side lacks
/// what); a warning when the profile is unknown, skipped when the release is.
async fn privileges(
    args: &DoctorArgs,
    client: &PveClient,
    token_ref: &TokenRef,
    pve: Option<PveVersion>,
    admin: &Result<PveClient, String>,
    report: &mut Report,
) {
    match (profiles::load(&args.token.profile_for(token_ref)), pve) {
        (Ok(profile), Some(pve)) => {
            let resolved = profile.resolve(pve, &args.narrowing.narrowing(), args.token.role.as_deref());
            let (mut findings, detail) =
                doctor::pve::privileges(client, token_ref, &resolved, admin.as_ref().ok()).await;
            if let Err(why) = admin
                && findings.iter().any(|finding| finding.id == "privilege-missing")
            {
                findings.push(
                    Finding::new(crate::doctor::id::ADMIN_UNAVAILABLE, Severity::Info, "privileges", why.clone())
                        .why("without admin access doctor cannot tell whether the user, the token or the role lacks it")
                        .fix("PVETOKEN_PASSWORD=... pvetoken doctor   (or --local on the PVE host)"),
                );
            }
            report.record(Check::Privileges, detail, findings);
        }
        (Err(error), _) => {
            let finding = Finding::new(
                crate::doctor::id::PROFILE_UNKNOWN,
                Severity::Warning,
                "privileges",
                format!("{error}: cannot tell which privileges the token needs"),
            )
            .why("the privileges check compares the token's rights with a consumer profile")
            .fix(format!("pvetoken doctor --profile {}", profiles::builtin_names().join("|")));
            report.record(Check::Privileges, "no profile", vec![finding]);
        }
        (Ok(_), None) => report.skip(Check::Privileges, "unknown PVE version"),
    }
}

/// The target: flags and environment first, then the token file (URL, pin, CA file, insecure).
fn resolve_target(args: &DoctorArgs, token: &TokenFile) -> Result<Target, CliError> {
    let mut connection = args.connection.clone();
    if connection.ca_file.is_none() && connection.fingerprint.is_none() && !connection.insecure {
        connection.ca_file.clone_from(&token.ca_file);
        connection.insecure = token.tls_insecure && token.fingerprint.is_none() && token.ca_file.is_none();
    }
    connection.resolve_target_quietly(&TargetFallback::from_token_file(token))
}

/// Admin access when available without a prompt (never required).
async fn connect_admin(
    args: &DoctorArgs,
    target: &Target,
    http: Option<&reqwest::Client>,
    timeout: std::time::Duration,
) -> Result<PveClient, String> {
    if !args.connection.admin_available_without_prompt() {
        return Err("no admin credentials (PVETOKEN_PASSWORD, --password-file, PVETOKEN_ADMIN_TOKEN_FILE or --local)"
            .to_owned());
    }
    let auth = args.connection.resolve_admin().map_err(|error| error.message)?;
    crate::connection::connect_admin(target, http, &auth, timeout)
        .await
        .map_err(|error| format!("admin login failed: {}", error.message))
}

async fn check_semaphore(args: &DoctorArgs, url: &str) -> anyhow::Result<(Vec<Finding>, String)> {
    let tls = service_tls(
        "--semaphore-fingerprint",
        &args.semaphore_ca_file,
        &args.semaphore_fingerprint,
        args.semaphore_insecure,
    )?;
    let secret_env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let auth = if let Some(token) = secret_env(env_vars::SEMAPHORE_API_TOKEN) {
        SemaphoreAuth::ApiToken(token.into())
    } else if let Some(password) = secret_env(env_vars::SEMAPHORE_PASSWORD) {
        SemaphoreAuth::Password { user: args.semaphore_user.clone(), password: password.into() }
    } else {
        let finding = Finding::new(
            crate::doctor::id::SEMAPHORE_NO_CREDENTIALS,
            Severity::Warning,
            "semaphore",
            "no Semaphore credentials: the registration was not checked",
        )
        .why("reading the environment needs a login")
        .fix("SEMAPHORE_PASSWORD=... pvetoken doctor --semaphore-url URL   (or SEMAPHORE_API_TOKEN)");
        return Ok((vec![finding], "not checked".to_owned()));
    };
    let names = args.semaphore_layout.names();
    let target = doctor::semaphore::Target {
        url,
        project: &args.semaphore_project,
        environment: &args.semaphore_environment,
        names: &names,
        tls: &tls,
        user: &args.semaphore_user,
    };
    Ok(doctor::semaphore::check(&target, auth).await)
}

fn print_report(report: &Report, printer: &Printer) -> anyhow::Result<()> {
    let mut out = String::new();
    for check in &report.checks {
        let mark = match check.status {
            Status::Ok => "ok  ",
            Status::Warning => "warn",
            Status::Failed => "FAIL",
            Status::Skipped => "skip",
        };
        out.push_str(&format!("{mark}  {:<11} {}\n", check.check, check.detail));
    }
    for finding in &report.findings {
        out.push_str(&format!("\n[{}] {}: {}\n", finding.severity.word(), finding.id, finding.what));
        if !finding.why.is_empty() {
            out.push_str(&format!("  why: {}\n", finding.why));
        }
        for (index, fix) in finding.fix.iter().enumerate() {
            let label = if index == 0 { "fix:" } else { "    " };
            out.push_str(&format!("  {label} {fix}\n"));
        }
    }
    out.push('\n');
    out.push_str(&match (&report.blocked_by, report.fails()) {
        (Some(id), _) => format!("stopped at {id}: fix it and run pvetoken doctor again\n"),
        (None, true) => "some checks failed: apply the fixes above\n".to_owned(),
        (None, false) => "nothing blocks\n".to_owned(),
    });
    printer.data(&crate::printer::sanitize(&out))?;
    Ok(())
}

fn run_explain(args: &DoctorArgs, text: &str, printer: &Printer) -> anyhow::Result<Exit> {
    let input = if text == "-" {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|error| CliError::usage(format!("cannot read the error text from stdin: {error}")))?;
        input
    } else {
        text.to_owned()
    };
    if input.trim().is_empty() {
        return Err(CliError::usage("no error text given")
            .with_hint(
                "pass it as --explain-error 'TEXT', or pipe it: packer build . 2>&1 | pvetoken doctor --explain-error",
            )
            .into());
    }
    // The token file is optional here: it makes fixes concrete and enables the live check.
    let token_path = args.token.token_path().ok();
    let token = token_path.as_deref().and_then(|path| token_store::read(path).ok());
    let context = explain::Context {
        token_id: token.as_ref().map(|token| token.token_id.to_string()),
        profile: args.token.profile.clone(),
        role: args.token.role.clone(),
    };
    let explanations = explain::explain(&input, &context);
    let live = match &token {
        Some(token) if explanations.iter().any(|e| e.permission_check.is_some()) => {
            tokio::runtime::Runtime::new()?.block_on(live_checks(args, token, &explanations))
        }
        _ => Vec::new(),
    };
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "recognised": !explanations.is_empty(),
            "explanations": explanations,
            "live": live,
        }))?;
    } else if explanations.is_empty() {
        printer.error("this error text is not one pvetoken recognises");
        printer.hint("run `pvetoken doctor` to check the token, its file, the network and the privileges");
    } else {
        let mut out = String::new();
        for explanation in &explanations {
            out.push_str(&format!("[{}] {}\n", explanation.id, explanation.matched));
            out.push_str(&format!("  means: {}\n", explanation.meaning));
            out.push_str(&format!("  why:   {}\n", explanation.why));
            for (index, fix) in explanation.fix.iter().enumerate() {
                out.push_str(&format!("  {} {fix}\n", if index == 0 { "fix:  " } else { "      " }));
            }
            out.push('\n');
        }
        for line in &live {
            out.push_str(&format!("live: {line}\n"));
        }
        printer.data(&crate::printer::sanitize(&out))?;
    }
    Ok(if explanations.is_empty() { Exit::CheckFailed } else { Exit::Success })
}

/// With the token file's token: does it hold the named privilege on the named path now?
async fn live_checks(args: &DoctorArgs, token: &TokenFile, explanations: &[Explanation]) -> Vec<String> {
    let target = match resolve_target(args, token) {
        Ok(target) => target,
        Err(error) => return vec![format!("not checked: {}", error.message)],
    };
    let timeout = args.connection.timeout();
    let client = match pvetoken_lifecycle::target::token_file_client(&target, token, timeout) {
        Ok(client) => client,
        Err(error) => return vec![format!("not checked: {}", error.message)],
    };
    let mut lines = Vec::new();
    for check in explanations.iter().filter_map(|e| e.permission_check.as_ref()) {
        let map = if client.is_local() {
            client.permissions_of(token.token_id.as_str(), Some(&check.path)).await
        } else {
            client.own_permissions(Some(&check.path)).await
        };
        let map = match map {
            Ok(map) => map,
            Err(error) => {
                lines.push(format!("{} on {}: cannot ask the server: {error}", token.token_id, check.path));
                continue;
            }
        };
        let needs = profiles::Resolved {
            profile: String::new(),
            role: String::new(),
            version: profiles::PveVersion { major: 0, minor: 0 },
            paths: vec![ResolvedPath {
                path: check.path.clone(),
                propagate: true,
                privileges: check.privileges.iter().map(|p| (p.clone(), String::new())).collect(),
            }],
        };
        let missing = pvetoken_lifecycle::verify::compare(&map, &needs);
        let held: Vec<&String> =
            check.privileges.iter().filter(|p| !missing.iter().any(|m| &m.privilege == *p)).collect();
        let satisfied = if check.any_of { !held.is_empty() } else { missing.is_empty() };
        if satisfied {
            lines.push(format!(
                "{} now HAS {} on {}: the error came from another credential, or it was fixed since",
                token.token_id,
                held.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
                check.path
            ));
        } else {
            lines.push(format!(
                "confirmed: {} lacks {} on {} right now",
                token.token_id,
                check.privileges.join(if check.any_of { "|" } else { ", " }),
                check.path
            ));
        }
    }
    lines
}
