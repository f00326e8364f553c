//! `pvetoken register semaphore`: hand the token to Semaphore UI as an environment ("Variable Group") whose
//! variables are Semaphore secrets of type `env`, idempotently, and verify it (the work itself is
//! `sinks::semaphore`, which `rotate` uses too).
//!
//! The guest-side step of the PrivateBox design note is `pvetoken register semaphore --if-token-file
//! --remove-token-file --log-file /var/log/privatebox-setup.log ...`: nothing to do (exit 0, one line) when the
//! token file is absent; otherwise register, read the environment back, and only then delete the token file.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use pvetoken_client::semaphore::ProjectRef;
use pvetoken_lifecycle::env_vars;
use pvetoken_render::consumers::SemaphoreLayout;

use crate::connection::service_tls;
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use crate::sinks::semaphore::{Settings, register, resolve_auth};
use crate::sinks::{SemaphoreSink, SinkRecord};

/// Arguments of `pvetoken register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(subcommand)]
    target: RegisterTarget,
}

#[derive(Debug, Subcommand)]
enum RegisterTarget {
    /// Create or update a Semaphore UI environment holding the token as `env` secrets.
    Semaphore(SemaphoreArgs),
    /// Write the token to an OpenBao / Vault KV v2 secret (check-and-set), read it back, remember it for rotate.
    ///
    /// The OpenBao token comes from BAO_TOKEN (or VAULT_TOKEN), --bao-token-file, or an AppRole login
    /// (--role-id-file, --secret-id-file); never from an argument. Fields: token_id, token_secret, api_token
    /// (`user@realm!name=secret`, for bpg), user, token_name, api_url (…/api2/json), endpoint, host, port, node,
    /// fingerprint, expire; see docs/openbao.md for how Packer, Terraform and Ansible read them.
    Openbao(super::register_openbao::OpenbaoArgs),
}

/// Arguments of `pvetoken register semaphore`.
#[derive(Debug, Args)]
struct SemaphoreArgs {
    /// Semaphore address, e.g. `https://semaphore.lan:3000` (with or without `/api`).
    #[arg(long, env = env_vars::SEMAPHORE_URL, value_name = "URL")]
    url: String,
    /// Login for a password session (password from SEMAPHORE_PASSWORD, --password-file or a terminal prompt).
    /// Not used when an API token is given.
    #[arg(long, value_name = "NAME", default_value = "admin")]
    user: String,
    /// Project id or name.
    #[arg(long, value_name = "ID|NAME")]
    project: String,
    /// Environment ("Variable Group") name.
    #[arg(long, value_name = "NAME", default_value = "ProxmoxAPI")]
    environment: String,
    /// Variable layout.
    #[arg(long, value_enum, default_value = "seed")]
    layout: SemaphoreLayout,
    /// Token file to register (default: /root/.proxmox-api-token as root, else $XDG_CONFIG_HOME/pvetoken/token.env).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Semaphore API token file (first line), preferred over a password; SEMAPHORE_API_TOKEN also works.
    #[arg(long, value_name = "FILE")]
    api_token_file: Option<PathBuf>,
    /// Read the Semaphore password from the first line of this file (its path is recorded for rotate, which reads
    /// it again unattended; the password itself is never stored).
    #[arg(long, value_name = "FILE", conflicts_with = "api_token_file")]
    password_file: Option<PathBuf>,
    /// Trust the CA certificate(s) in this PEM file for Semaphore's HTTPS.
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    ca_file: Option<PathBuf>,
    /// Pin Semaphore's certificate by SHA-256 fingerprint.
    #[arg(long, value_name = "SHA256", conflicts_with = "insecure")]
    fingerprint: Option<String>,
    /// Accept any certificate from Semaphore (dangerous; prefer --fingerprint).
    #[arg(long)]
    insecure: bool,
    /// Send the token over plain HTTP to a Semaphore that is not on loopback (prints a warning). A default
    /// Semaphore listens on plain HTTP :3000; on the same machine (`http://127.0.0.1:3000`) no flag is needed.
    #[arg(long)]
    allow_http: bool,
    /// Exit 0 with one line when the token file does not exist (the guest-side "if found" step).
    #[arg(long)]
    if_token_file: bool,
    /// Delete the token file after the registration was read back and verified.
    #[arg(long)]
    remove_token_file: bool,
    /// Append what happened (never a secret) to this file.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
}

/// Runs `pvetoken register`.
pub fn run(args: RegisterArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let args = match args.target {
        RegisterTarget::Semaphore(args) => args,
        RegisterTarget::Openbao(args) => return super::register_openbao::run(&args, printer),
    };
    let log = Log::open(args.log_file.as_deref())?;
    let outcome = run_semaphore(&args, printer, &log);
    if let Err(error) = &outcome {
        log.line(&format!("error: {error:#}"));
    }
    outcome
}

fn run_semaphore(args: &SemaphoreArgs, printer: &Printer, log: &Log) -> anyhow::Result<Exit> {
    let token_file = pvetoken_lifecycle::token_store::path_or_default(args.token_file.as_deref())?;
    if args.if_token_file && !token_file.exists() {
        let line = format!("no token file at {}: nothing to register", token_file.display());
        log.line(&line);
        if printer.is_json() {
            printer.json(&serde_json::json!({ "status": "skipped", "token_file": token_file }))?;
        } else {
            printer.data(&line)?;
        }
        return Ok(Exit::Success);
    }
    let settings = settings_from_args(args, token_file)?;
    crate::connection::check_plain_http(std::slice::from_ref(&settings.url), args.allow_http, printer)?;
    if settings.tls.insecure {
        printer.warn("--insecure: Semaphore's certificate is not checked; anyone on the path can read the secrets");
    }
    log.line(&format!(
        "registering {} in Semaphore {} project {} environment {} (layout {})",
        settings.token_file.display(),
        settings.url,
        settings.project,
        settings.environment,
        settings.layout.name()
    ));
    let auth = resolve_auth(
        args.api_token_file.as_deref(),
        args.password_file.as_deref(),
        &args.user,
        std::io::stdin().is_terminal(),
    )?;
    let report = block_on(register(&settings, auth))?;
    let line = report.sentence(&settings);
    log.line(&line);
    crate::sinks::remember(&settings.token_file, SinkRecord::Semaphore(sink_record(&settings, args)))
        .context("registered, but could not remember the Semaphore sink for `pvetoken rotate`")?;
    let mut removed = false;
    if args.remove_token_file {
        std::fs::remove_file(&settings.token_file).map_err(|error| {
            CliError::usage(format!(
                "registered and verified, but {} could not be removed: {error}",
                settings.token_file.display()
            ))
        })?;
        removed = true;
        log.line(&format!("removed {} after the verified registration", settings.token_file.display()));
    }
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "status": report.status.word(),
            "url": settings.url,
            "project": { "id": report.project.id, "name": report.project.name },
            "environment": { "id": report.environment_id, "name": settings.environment },
            "layout": settings.layout.name(),
            "variables": report.variables,
            "secret_type": "env",
            "verified": true,
            "token_file": settings.token_file,
            "token_file_removed": removed,
        }))?;
    } else {
        printer.data(&line)?;
        if removed {
            printer.info(&format!("removed {}", settings.token_file.display()));
        }
    }
    Ok(Exit::Success)
}

fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")?.block_on(future)
}

/// The settings of `register semaphore`, checked.
fn settings_from_args(args: &SemaphoreArgs, token_file: PathBuf) -> Result<Settings, CliError> {
    let tls = service_tls("--fingerprint", &args.ca_file, &args.fingerprint, args.insecure)?;
    if args.environment.trim().is_empty() {
        return Err(CliError::usage("--environment must not be empty"));
    }
    if args.project.trim().is_empty() {
        return Err(CliError::usage("--project must not be empty").with_hint("give the project id (e.g. 1) or name"));
    }
    let url = args.url.trim().to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(CliError::usage(format!("--url {url}: Semaphore's URL must start with http:// or https://"))
            .with_hint("e.g. --url https://semaphore.lan:2443 (or http://localhost:3000 for a plain-HTTP Semaphore)"));
    }
    Ok(Settings {
        url,
        project: args.project.parse().unwrap_or(ProjectRef::Name(args.project.clone())),
        environment: args.environment.clone(),
        layout: args.layout,
        token_file,
        tls,
    })
}

/// The record `rotate` reads to update this environment (no secret: where the credentials are).
fn sink_record(settings: &Settings, args: &SemaphoreArgs) -> SemaphoreSink {
    let uses_token = args.api_token_file.is_some() || env_set(env_vars::SEMAPHORE_API_TOKEN);
    SemaphoreSink {
        url: settings.url.clone(),
        project: settings.project.to_string(),
        environment: settings.environment.clone(),
        layout: settings.layout.name().to_owned(),
        user: (!uses_token).then(|| args.user.clone()),
        api_token_file: args.api_token_file.clone(),
        password_file: (!uses_token)
            .then(|| args.password_file.clone().and_then(|p| std::path::absolute(p).ok()))
            .flatten(),
        ca_file: settings.tls.ca_file.clone(),
        fingerprint: settings.tls.fingerprint.map(|fingerprint| fingerprint.to_string()),
        allow_http: args.allow_http,
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|value| !value.is_empty())
}

/// The append-only `--log-file` (created 0600). Lines never contain a secret: they are built from names, ids and
/// error messages, which never hold one.
struct Log {
    file: Option<std::sync::Mutex<std::fs::File>>,
}

impl Log {
    fn open(path: Option<&Path>) -> Result<Self, CliError> {
        let Some(path) = path else { return Ok(Self { file: None }) };
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|error| CliError::usage(format!("--log-file {}: {error}", path.display())))?;
        Ok(Self { file: Some(std::sync::Mutex::new(file)) })
    }

    fn line(&self, message: &str) {
        let Some(file) = &self.file else { return };
        let seconds =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
        if let Ok(mut file) = file.lock() {
            let flat = message.replace('\n', " ");
            // A log that cannot be written must not fail the registration.
            let _ = writeln!(file, "{seconds} pvetoken register semaphore: {flat}");
        }
    }
}
