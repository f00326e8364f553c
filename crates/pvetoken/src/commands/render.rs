//! `pvetoken render`: the token file in one consumer's format, to stdout or `--out FILE` (0600, atomic).
//!
//! Nothing is written when anything is wrong: the format, the recipients and the token file are checked first,
//! the whole output is rendered (and encrypted) in memory, and only then written.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use clap::builder::PossibleValuesParser;
use pvetoken_render::Format;

use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use crate::sinks::file::{RenderSettings, parse_recipients, produce};
use pvetoken_lifecycle::token_store;

/// Arguments of `pvetoken render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Consumer format (`env` is the token file itself; `sops` with --age-recipient is encrypted).
    #[arg(long, value_name = "FORMAT", default_value = "env", value_parser = format_names())]
    format: String,
    /// Token file to read (default: /root/.proxmox-api-token as root, else $XDG_CONFIG_HOME/pvetoken/token.env).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Write to this file (mode 0600, atomically) instead of stdout.
    #[arg(long, value_name = "FILE", visible_alias = "snippet-path")]
    out: Option<PathBuf>,
    /// Print a secret-bearing format to a terminal anyway.
    #[arg(long)]
    force: bool,
    /// `--format sops`: encrypt for this age recipient (`age1...`, repeatable) with the `sops` program. The
    /// repository's .sops.yaml is not consulted: the recipients given here are the only ones.
    #[arg(long = "age-recipient", value_name = "AGE1...")]
    age_recipients: Vec<String>,
    /// Storage pool for the `sops` schema's proxmox_storage_pool (default: PROXMOX_STORAGE of the token file).
    #[arg(long, value_name = "POOL")]
    storage: Option<String>,
    /// `--format semaphore`: the project id the environment belongs to.
    #[arg(long, value_name = "ID", default_value_t = 1)]
    semaphore_project: i64,
    /// `--format semaphore`: the environment name.
    #[arg(long, value_name = "NAME", default_value = "ProxmoxAPI")]
    semaphore_environment: String,
    /// `--format cloud-init`: where the guest writes the token file.
    #[arg(long, value_name = "PATH", default_value = "/root/.proxmox-api-token")]
    guest_path: String,
    /// With --out: remember the file next to the token file, so that `rotate` (and `create`, `apply` when they make a
    /// new secret) render it again with the new token (docs/sinks.md).
    #[arg(long, requires = "out")]
    keep_updated: bool,
}

impl RenderArgs {
    fn settings(&self) -> RenderSettings {
        RenderSettings {
            age_recipients: self.age_recipients.clone(),
            storage: self.storage.clone(),
            semaphore_project: self.semaphore_project,
            semaphore_environment: self.semaphore_environment.clone(),
            guest_path: self.guest_path.clone(),
        }
    }
}

fn format_names() -> PossibleValuesParser {
    PossibleValuesParser::new(Format::ALL.iter().map(|format| format.name()))
}

/// Runs `pvetoken render`.
pub fn run(args: RenderArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let format: Format = args.format.parse().map_err(|error| {
        CliError::usage(format!("{error}")).with_hint(format!(
            "choose one of: {}",
            Format::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let recipients = parse_recipients(format, &args.age_recipients)?;
    if format == Format::Sops
        && recipients.is_empty()
        && let Some(out) = &args.out
        && out.to_string_lossy().contains(".enc.")
    {
        return Err(CliError::usage(format!(
            "refusing to write the plaintext SOPS schema to {}, whose name says it is encrypted; nothing was written",
            out.display()
        ))
        .with_hint("add --age-recipient age1... (repeatable) to encrypt it with sops")
        .into());
    }
    let path = token_store::path_or_default(args.token_file.as_deref())?;
    let token = token_store::read(&path)?;
    if format == Format::Sops && token.storage.is_none() && args.storage.is_none() {
        printer.warn("proxmox_storage_pool is empty: the token file has no PROXMOX_STORAGE; pass --storage POOL");
    }
    let settings = args.settings();
    let bytes = produce(format, &token, &settings)?;
    let carries_clear_secret = recipients.is_empty() && format.carries_secret();

    if format == Format::CloudInit {
        printer.warn(
            "CLOUD-INIT USER-DATA IS NOT SECRET STORAGE: the token secret will be readable in the snippet on the \
             Proxmox host and in the guest's /var/lib/cloud. Delete the snippet after the first boot, and prefer \
             `pvetoken deliver --vmid N` (QEMU guest agent, nothing left on the host).",
        );
    }

    if args.keep_updated
        && let Some(out) = &args.out
    {
        // Remembered only once the file is written; an absolute path, as rotate may run from elsewhere.
        token_store::write_output(out, &bytes)?;
        let absolute =
            std::path::absolute(out).map_err(|error| CliError::usage(format!("{}: {error}", out.display())))?;
        let sink = crate::sinks::FileSink { path: absolute.clone(), format: format.name().to_owned(), settings };
        crate::sinks::remember(&path, crate::sinks::SinkRecord::File(sink)).map_err(|error| {
            CliError::usage(format!("wrote {}, but could not remember it for rotate: {error:#}", out.display()))
        })?;
        printer.success(&format!(
            "wrote {} ({format}, mode 0600); rotate renders it again (recorded in {})",
            absolute.display(),
            crate::sinks::sinks_path(&path).display()
        ));
        return Ok(Exit::Success);
    }
    match &args.out {
        Some(out) => match token_store::write_output(out, &bytes)? {
            token_store::OutputWritten::Replaced => {
                printer.success(&format!("wrote {} ({format}, mode 0600)", out.display()));
            }
            token_store::OutputWritten::Streamed => {
                printer.success(&format!("wrote {format} into {} (not a regular file: left in place)", out.display()));
            }
        },
        None => {
            if carries_clear_secret && std::io::stdout().is_terminal() && !args.force {
                return Err(CliError::usage(format!(
                    "refusing to print the {format} format, which contains the token secret, to a terminal"
                ))
                .with_hint("write it with --out FILE (mode 0600), pipe it to the consumer, or pass --force")
                .into());
            }
            let text = String::from_utf8(bytes)
                .map_err(|_| CliError::usage("sops produced output that is not UTF-8; nothing was written"))?;
            printer.data(&text)?;
        }
    }
    Ok(Exit::Success)
}
