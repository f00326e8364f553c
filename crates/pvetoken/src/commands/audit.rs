//! `pvetoken audit`: every token of a cluster (live, through the API) or of a user.cfg (offline), what it can
//! really do, and what is wrong with it. Exit 1 when a finding at or above `--fail-on` exists.

use std::path::{Path, PathBuf};

use clap::Args;
use pvetoken_acl::{Catalog, PveVersion};

use crate::args::OutputFormat;
use crate::audit::model::{Report, Severity, SourceInfo};
use crate::audit::{self, Options};
use crate::connection::{ConnectionArgs, TargetFallback};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;

/// Arguments of `pvetoken audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Audit this user.cfg (e.g. a copy of /etc/pve/user.cfg) offline instead of asking a server.
    #[arg(long, value_name = "FILE")]
    pub user_cfg: Option<PathBuf>,
    /// PVE release whose privileges and built-in roles apply (7, 8, 9, or major.minor). Offline default 9; live,
    /// the server's own version unless given.
    #[arg(long, value_name = "VERSION")]
    pub pve_version: Option<String>,
    /// Report tokens and users expiring within this period: `14d`, `48h`, `2w`, `0` to disable.
    #[arg(long, value_name = "DURATION", default_value = "14d")]
    pub expiring_within: String,
    /// Exit 1 when a finding at or above this severity exists: critical, high, medium, low, info, or none.
    #[arg(long, value_name = "SEVERITY", default_value = "high")]
    pub fail_on: String,
    /// Compare tokens created by pvetoken (comment `pvetoken profile <name>`, or named like a built-in profile)
    /// with what their profile needs, and report extra rights.
    #[arg(long)]
    pub profile_check: bool,
    /// Write the HTML report to this file (with `--output html`, instead of stdout; with text or json, in
    /// addition to them).
    #[arg(long, value_name = "FILE")]
    pub html_out: Option<PathBuf>,
    /// pveproxy access logs (plain or .gz): report, per token, the privileges no logged call needed
    /// (`token-unused-privileges`, with the narrower profile `pvetoken learn` derives as the fix).
    #[arg(long, value_name = "FILE")]
    pub access_log: Vec<PathBuf>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Parses `14d`, `48h`, `2w`, `90m`, `3600s`, `3600` (seconds) or `0`.
pub fn parse_duration(text: &str) -> Result<u64, CliError> {
    let text = text.trim();
    let bad = || {
        CliError::usage(format!("--expiring-within `{text}` is not a duration"))
            .with_hint("use a number with a unit: 14d, 48h, 2w, 30m (or 0 to disable)")
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    number.checked_mul(factor).ok_or_else(bad)
}

fn parse_fail_on(text: &str) -> Result<Option<Severity>, CliError> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.parse::<Severity>().map(Some).map_err(|message| {
        CliError::usage(format!("--fail-on: {message}")).with_hint("use --fail-on high (the default) or none")
    })
}

fn parse_version(text: &str) -> Result<PveVersion, CliError> {
    text.parse::<PveVersion>()
        .map_err(|error| CliError::usage(error.to_string()).with_hint("e.g. --pve-version 8.4 or --pve-version 9"))
}

fn now() -> u64 {
    u64::try_from(pvetoken_lifecycle::clock::now()).unwrap_or(0)
}

/// Runs `pvetoken audit`.
pub fn run(args: AuditArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let options = Options {
        now: now(),
        expiring_within: parse_duration(&args.expiring_within)?,
        profile_check: args.profile_check,
        fail_on: parse_fail_on(&args.fail_on)?,
    };
    let forced_version = args.pve_version.as_deref().map(parse_version).transpose()?;
    let mut report = match &args.user_cfg {
        Some(path) => offline(path, forced_version, &options)?,
        None => live(&args, forced_version, &options, printer)?,
    };
    if !args.access_log.is_empty() {
        unused_privileges(&mut report, &args.access_log, printer)?;
    }
    emit(&report, args.html_out.as_deref(), printer)?;
    if report.fails(options.fail_on) {
        let threshold = options.fail_on.map_or("none", Severity::as_str);
        let n = report.findings.iter().filter(|f| options.fail_on.is_some_and(|t| f.severity.at_least(t))).count();
        printer.warn(&format!("{n} finding{} at or above {threshold}", if n == 1 { "" } else { "s" }));
        return Ok(Exit::CheckFailed);
    }
    Ok(Exit::Success)
}

/// `--access-log`: per token, the privileges it holds that no logged call needed, and the 403s it got.
fn unused_privileges(report: &mut Report, logs: &[PathBuf], printer: &Printer) -> Result<(), CliError> {
    use crate::audit::model::{Finding, Fix};
    let log = crate::evidence::read_logs(logs, printer)?;
    let files: Vec<String> = logs.iter().map(|p| p.display().to_string()).collect();
    let mut added = Vec::new();
    for token in &mut report.tokens {
        let held: std::collections::BTreeSet<&str> =
            token.access.iter().flat_map(|line| line.privileges.iter().copied()).collect();
        if held.is_empty() {
            continue;
        }
        let (calls, _) = crate::evidence::map_calls(&log, &token.id);
        let used: std::collections::BTreeSet<&str> =
            calls.iter().flat_map(|c| c.needs.iter().map(|n| n.1.as_str())).collect();
        let unused: Vec<&str> = held.iter().copied().filter(|p| !used.contains(p)).collect();
        let denied: usize = calls.iter().filter(|c| c.status == 403).map(|c| c.count).sum();
        if unused.is_empty() {
            continue;
        }
        let title = if calls.is_empty() {
            format!("no call in the logs: all {} privileges unused", held.len())
        } else {
            let logged = crate::evidence::call_count(&calls);
            format!("{} of {} privileges never needed by its {logged} logged calls", unused.len(), held.len())
        };
        let profile = format!("{}.toml", token.id.replace(['@', '!'], "-"));
        token.findings.push(crate::audit::rules::ids::TOKEN_UNUSED_PRIVILEGES);
        added.push(Finding {
            id: crate::audit::rules::ids::TOKEN_UNUSED_PRIVILEGES,
            severity: Severity::Low,
            subject: token.id.clone(),
            title,
            detail: format!(
                "Held but never needed: {}. Used: {}.{}",
                unused.join(","),
                if used.is_empty() { "nothing".to_owned() } else { used.iter().copied().collect::<Vec<_>>().join(",") },
                if denied > 0 { format!(" {denied} call(s) were refused with 403.") } else { String::new() }
            ),
            evidence: files.clone(),
            fix: Fix {
                summary: "narrow the token to what its consumer called".to_owned(),
                pveum: Vec::new(),
                pvetoken: vec![
                    format!(
                        "pvetoken learn --access-log {} --token {} --out {profile}",
                        files.join(" --access-log "),
                        token.id
                    ),
                    format!("pvetoken create --profile {profile} --user {} --token-name NAME", token.owner),
                ],
            },
        });
    }
    report.findings.extend(added);
    report.counts = crate::audit::model::Counts::of(&report.findings);
    Ok(())
}

fn offline(path: &Path, version: Option<PveVersion>, options: &Options) -> Result<Report, CliError> {
    let bytes = pvetoken_lifecycle::token_store::read_limited(path, pvetoken_lifecycle::token_store::USER_CFG_MAX)
        .map_err(|error| {
            CliError::usage(format!("cannot read {}: {error}", path.display()))
                .with_hint("give the path of a user.cfg (on a PVE node: /etc/pve/user.cfg, readable by root)")
        })?;
    let text = String::from_utf8_lossy(&bytes);
    let version = version.unwrap_or(PveVersion::NEWEST);
    let catalog = Catalog::for_version(version);
    let source = SourceInfo { mode: "offline", location: path.display().to_string(), pve_version: version.to_string() };
    Ok(audit::audit(&text, &catalog, source, options))
}

fn live(args: &AuditArgs, forced: Option<PveVersion>, options: &Options, printer: &Printer) -> anyhow::Result<Report> {
    let target = args.connection.resolve_target(&TargetFallback::default(), printer).map_err(|error| {
        if error.hint.is_none() {
            error.with_hint("give --url https://HOST:8006 for a live audit, or --user-cfg FILE to audit a file")
        } else {
            error
        }
    })?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (state, target) = runtime.block_on(async {
        let session = args.connection.admin_session(target).await?;
        let state = audit::live::fetch(&session.client).await.map_err(|error| session.remote(&error))?;
        Ok::<_, CliError>((state, session.target))
    })?;
    for note in &state.notes {
        printer.warn(note);
    }
    let version = match forced {
        Some(version) => version,
        None => {
            let (version, assumption) = PveVersion::of_server(&state.version);
            if let Some(assumption) = assumption {
                printer.warn(&assumption);
            }
            version
        }
    };
    let catalog = Catalog::for_version(version);
    let text = audit::live::to_user_cfg(&state);
    printer.verbose(&format!("rebuilt user.cfg from the API:\n{text}"));
    let source = SourceInfo { mode: "live", location: target.describe(), pve_version: version.to_string() };
    Ok(audit::audit(&text, &catalog, source, options))
}

fn emit(report: &Report, html_out: Option<&Path>, printer: &Printer) -> anyhow::Result<()> {
    let html = || audit::html::render(report);
    if let Some(path) = html_out {
        write_file(path, &html())?;
        printer.info(&format!("HTML report written to {}", path.display()));
    }
    match printer.output() {
        OutputFormat::Json => printer.json(report)?,
        OutputFormat::Html if html_out.is_none() => printer.data(&html())?,
        OutputFormat::Html => {}
        OutputFormat::Text => printer.data(&audit::text::render(report))?,
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename.
fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    pvetoken_lifecycle::token_store::write_output(path, text.as_bytes()).map(|_| ()).map_err(|error| {
        let error = CliError::from(error);
        if error.hint.is_none() { error.with_hint("choose a writable location for --html-out") } else { error }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_reject_garbage() {
        assert_eq!(parse_duration("14d").expect("days"), 14 * 86_400);
        assert_eq!(parse_duration("2w").expect("weeks"), 14 * 86_400);
        assert_eq!(parse_duration("48h").expect("hours"), 48 * 3600);
        assert_eq!(parse_duration("0").expect("zero"), 0);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn fail_on_accepts_severities_and_none() {
        assert_eq!(parse_fail_on("high").expect("high"), Some(Severity::High));
        assert_eq!(parse_fail_on("none").expect("none"), None);
        assert!(parse_fail_on("urgent").is_err());
    }
}
