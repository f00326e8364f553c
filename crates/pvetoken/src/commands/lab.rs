//! `pvetoken lab serve`: the PVE + Semaphore API simulators (a lab, never a real Proxmox VE).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::exit::{CliError, Exit};
use crate::printer::Printer;

/// Arguments of `pvetoken lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Run the PVE and Semaphore API simulators on 127.0.0.1 until SIGINT/SIGTERM.
    Serve(ServeArgs),
}

/// Arguments of `pvetoken lab serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The PVE release to simulate, as its point release shipped (7.0 - 9.2; 9.1 = before May 2026, whose
    /// libpve-access-control 9.0.x cannot regenerate a token; 9.2 can). `--package` overrides single packages.
    #[arg(long, default_value = "9.2", value_parser = parse_release, long_help = release_help())]
    pve_version: pvetoken_acl::PveVersion,
    /// An installed package version differing from the release's, NAME=VERSION (repeatable): e.g.
    /// `--pve-version 9.1 --package pve-manager=9.1.11 --package libpve-access-control=9.1.0` for a host
    /// upgraded in part. Listed by GET /nodes/NODE/apt/versions; libpve-access-control decides behaviour.
    #[arg(long = "package", value_name = "NAME=VERSION", value_parser = parse_package)]
    packages: Vec<(String, String)>,
    /// Keep state (user.cfg, priv/token.cfg, guests, certificate) here; default: a temp dir removed at exit.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Write the ready information (URLs, CA file, fingerprint, credentials) as JSON to this file, mode 0600.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// PVE API port (default: any free port).
    #[arg(long, default_value_t = 0)]
    pve_port: u16,
    /// Semaphore API port (default: any free port).
    #[arg(long, default_value_t = 0)]
    semaphore_port: u16,
    /// Read the root@pam password from this file (first line) instead of generating one.
    #[arg(long)]
    root_password_file: Option<PathBuf>,
    /// A TOML scenario (node, storages, bridges, guests, starting user.cfg); see docs/lab-scenario.md.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Delay every 401 answer like PVE does (seconds; 3 when given without a value).
    #[arg(long, num_args = 0..=1, default_missing_value = "3", value_name = "SECONDS")]
    auth_failure_delay: Option<f64>,
    /// Make generated passwords and token secrets deterministic (demos only).
    #[arg(long)]
    seed: Option<u64>,
    /// Serve the Semaphore simulator over plain HTTP, as a default Semaphore install does (`http://...:3000`).
    #[arg(long)]
    semaphore_http: bool,
}

/// Runs `pvetoken lab`.
pub fn run(args: LabArgs, printer: &Printer) -> anyhow::Result<Exit> {
    match args.command {
        LabCommand::Serve(serve) => run_serve(serve, printer),
    }
}

fn config(args: &ServeArgs) -> anyhow::Result<pvetoken_lab::LabConfig> {
    let pve_version = args.pve_version;
    let root_password = match &args.root_password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("cannot read --root-password-file {}: {e}", path.display())))?;
            let first = text.lines().next().unwrap_or_default().to_owned();
            if first.len() < 8 {
                return Err(CliError::usage("the root password file holds fewer than 8 characters")
                    .with_hint("put a password of 8 or more characters on the first line")
                    .into());
            }
            Some(first)
        }
        None => None,
    };
    let mut scenario = match &args.scenario {
        Some(path) => pvetoken_lab::Scenario::from_file(path)
            .map_err(|e| CliError::usage(e.to_string()).with_hint("see docs/lab-scenario.md for the format"))?,
        None => pvetoken_lab::Scenario::default(),
    };
    scenario.packages.extend(args.packages.iter().cloned());
    let delay = match args.auth_failure_delay {
        Some(s) if s.is_finite() && (0.0..=60.0).contains(&s) => Duration::from_secs_f64(s),
        Some(_) => return Err(CliError::usage("--auth-failure-delay must be between 0 and 60 seconds").into()),
        None => Duration::ZERO,
    };
    Ok(pvetoken_lab::LabConfig {
        pve_version,
        state_dir: args.state_dir.clone(),
        pve_port: args.pve_port,
        semaphore_port: args.semaphore_port,
        root_password,
        scenario,
        auth_failure_delay: delay,
        seed: args.seed,
        semaphore_http: args.semaphore_http,
        // The guests have this pvetoken installed (what `deliver -- pvetoken ...` runs in them).
        guest_pvetoken: std::env::current_exe().ok(),
    })
}

fn parse_release(text: &str) -> Result<pvetoken_acl::PveVersion, String> {
    text.parse().map_err(|e: pvetoken_acl::VersionError| e.to_string())
}

fn release_help() -> String {
    let mut help = String::from(
        "The PVE release to simulate, as its point release shipped: GET /version answers with that pve-manager \
         version and the access API behaves as that release's libpve-access-control.\n\nKnown releases:",
    );
    for release in pvetoken_acl::release::RELEASES {
        help.push_str(&format!(
            "\n  {}  pve-manager {} ({}), libpve-access-control {}: {}",
            release.version, release.manager, release.date, release.access_control, release.note
        ));
    }
    help
}

fn parse_package(text: &str) -> Result<(String, String), String> {
    let (name, version) = text.split_once('=').ok_or_else(|| format!("'{text}': expected NAME=VERSION"))?;
    let plausible =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !plausible {
        return Err(format!("'{name}' is not a Debian package name"));
    }
    if pvetoken_acl::AccessControlVersion::parse_debian(version).is_none() {
        return Err(format!("'{version}' is not a Debian version (e.g. 9.1.0)"));
    }
    Ok((name.to_owned(), version.to_owned()))
}

fn run_serve(args: ServeArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let config = config(&args)?;
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    runtime.block_on(async {
        let lab = pvetoken_lab::start(config).await.map_err(|e| CliError::usage(e.to_string()))?;
        let ready = lab.ready().clone();
        printer.warn(
            "THIS IS A SIMULATOR (pvetoken lab): a Proxmox VE and Semaphore API stand-in for tests and demos, \
             not a real server. Never point production automation at it.",
        );
        printer.info(&format!(
            "PVE {} simulator: {}/api2/json (node {}), Semaphore simulator: {}",
            ready.pve_version, ready.pve_url, ready.node, ready.semaphore_url
        ));
        printer.info(&format!("CA file: {}  fingerprint: {}", ready.ca_file.display(), ready.fingerprint_sha256));
        match &args.ready_file {
            Some(path) => {
                let json = serde_json::to_vec_pretty(&ready).context("serialise the ready information")?;
                pvetoken_lifecycle::token_store::write_secret_file_atomic(path, &json)
                    .map_err(|e| CliError::usage(format!("cannot write --ready-file: {}", e.message)))?;
                printer.info(&format!("ready file (0600, holds the passwords): {}", path.display()));
            }
            None => printer.hint("pass --ready-file FILE to get the root and Semaphore passwords (mode 0600)"),
        }
        if printer.is_json() {
            let mut value = serde_json::to_value(&ready).context("serialise the ready information")?;
            if let Some(map) = value.as_object_mut() {
                map.remove("root_password");
                map.remove("semaphore_password");
            }
            printer.json(&value)?;
        }
        wait_for_signal().await?;
        printer.info("lab stopping");
        lab.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Exit::Success)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
