//! Sinks: the places a token was handed to (a Semaphore environment, an OpenBao secret), remembered next to the token file so
//! that `pvetoken rotate` can update every one of them.
//!
//! This file holds the record (`load`, `remember`) and the CLI's side of the lifecycle's `Sinks` trait
//! (`RegisteredSinks`: check every recorded sink before a secret changes, update them after); each kind's own
//! update lives with the command that registers it (`commands::register::refresh_semaphore_sink`,
//! `commands::register_openbao::refresh`, `deliver::deliver`, `commands::render::refresh_file_sink`).

use std::path::PathBuf;

use pvetoken_client::pve::PveClient;
use pvetoken_lifecycle::rotate::{FailedSink, Sinks};

use crate::connection::Target;
use crate::printer::Printer;

/// One place the token was handed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SinkRecord {
    /// A Semaphore UI environment holding the token as secrets.
    Semaphore(SemaphoreSink),
    /// An OpenBao / Vault KV v2 secret.
    Openbao(OpenbaoSink),
    /// The token file inside a guest, written through the QEMU guest agent (`deliver`, `create --deliver-to`).
    Guest(GuestSink),
    /// A local file in a consumer's format (`render --out FILE --keep-updated`).
    File(FileSink),
}

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
    pub settings: crate::commands::render::RenderSettings,
}

/// A guest the token file was delivered into. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuestSink {
    /// The node the VM runs on.
    pub node: String,
    /// The VM.
    pub vmid: u64,
    /// The file in the guest.
    pub guest_path: String,
    /// `user:group` of the file.
    pub owner: String,
    /// The guest command run after each delivery (`deliver -- COMMAND`), e.g. the guest's
    /// `pvetoken register semaphore ... --if-token-file --remove-token-file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<String>,
}

impl SinkRecord {
    /// One line naming the sink, for messages.
    pub fn describe(&self) -> String {
        match self {
            SinkRecord::Semaphore(s) => {
                format!("Semaphore environment `{}` (project {}, {})", s.environment, s.project, s.url)
            }
            SinkRecord::Openbao(s) => format!("OpenBao secret {}/{} at {}", s.mount, s.path, s.addresses.join(", ")),
            SinkRecord::Guest(s) if s.then.is_empty() => {
                format!("guest file {} in VM {} on {}", s.guest_path, s.vmid, s.node)
            }
            SinkRecord::Guest(s) => {
                format!("guest file {} in VM {} on {}, then `{}` there", s.guest_path, s.vmid, s.node, s.then.join(" "))
            }
            SinkRecord::File(s) => format!("{} file {}", s.format, s.path.display()),
        }
    }
}

/// An OpenBao / Vault KV v2 secret written by `pvetoken register openbao`. Holds no secret: only where the
/// OpenBao credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenbaoSink {
    /// Base URLs, tried in order.
    pub addresses: Vec<String>,
    /// KV v2 mount.
    pub mount: String,
    /// Path below the mount.
    pub path: String,
    /// CA bundle for OpenBao's HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Pinned certificate fingerprint.
    pub fingerprint: Option<String>,
    /// How to log in.
    pub auth: OpenbaoAuthRecord,
}

/// Where the OpenBao credentials come from at rotation time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum OpenbaoAuthRecord {
    /// `BAO_TOKEN`, else `VAULT_TOKEN`.
    Environment,
    /// A token file (first line).
    TokenFile {
        /// The file.
        file: PathBuf,
    },
    /// AppRole with a role id and a secret id read from files.
    AppRole {
        /// Auth mount.
        mount: String,
        /// Role id file.
        role_id_file: PathBuf,
        /// Secret id file.
        secret_id_file: PathBuf,
    },
}

/// A Semaphore environment registered by `pvetoken register semaphore`. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SemaphoreSink {
    /// Semaphore base URL, e.g. `https://semaphore.lan:3000`.
    pub url: String,
    /// Project id or name, as given.
    pub project: String,
    /// Environment name, e.g. `ProxmoxAPI`.
    pub environment: String,
    /// Variable layout: `seed` or `community-proxmox`.
    pub layout: String,
    /// Login name when password authentication was used.
    pub user: Option<String>,
    /// File holding a Semaphore API token, when that was used.
    pub api_token_file: Option<PathBuf>,
    /// File holding the login's password, when `--password-file` was used (its path, never its content): an
    /// unattended rotate reads it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// CA bundle used to verify Semaphore, if any.
    pub ca_file: Option<PathBuf>,
    /// Pinned certificate fingerprint, if any.
    pub fingerprint: Option<String>,
    /// Plain HTTP to a non-loopback address was allowed at registration (`--allow-http`).
    #[serde(default)]
    pub allow_http: bool,
}

/// The file that remembers the sinks of a token file: `<token file>.sinks.json` in the same directory, mode 0600.
pub fn sinks_path(token_file: &std::path::Path) -> PathBuf {
    let mut name = token_file.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".sinks.json");
    token_file.with_file_name(name)
}

/// The stored form: a versioned list.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SinkFile {
    version: u32,
    sinks: Vec<SinkRecord>,
}

/// Reads the sinks remembered for a token file (none when the file does not exist).
pub fn load(token_file: &std::path::Path) -> anyhow::Result<Vec<SinkRecord>> {
    let path = sinks_path(token_file);
    if std::fs::symlink_metadata(&path).is_err_and(|error| error.kind() == std::io::ErrorKind::NotFound) {
        return Ok(Vec::new());
    }
    // The record decides where rotate sends secrets: trusted only when it is ours, private and not a link.
    let text = pvetoken_lifecycle::token_store::read_private(&path, "sink record")?;
    let file: SinkFile = serde_json::from_str(&text)
        .map_err(|error| anyhow::anyhow!("{} is not a pvetoken sink list: {error}", path.display()))?;
    Ok(file.sinks)
}

/// Adds (or replaces, matched by kind, URL, project and environment) a sink record and saves the list atomically
/// with mode 0600.
pub fn remember(token_file: &std::path::Path, record: SinkRecord) -> anyhow::Result<()> {
    let mut sinks = load(token_file)?;
    sinks.retain(|existing| !same_sink(existing, &record));
    sinks.push(record);
    save(token_file, &sinks)
}

/// True when `record` is among the sinks recorded for `token_file` (same place; how to log in may differ).
pub fn is_recorded(token_file: &std::path::Path, record: &SinkRecord) -> anyhow::Result<bool> {
    Ok(load(token_file)?.iter().any(|existing| same_sink(existing, record)))
}

fn same_sink(a: &SinkRecord, b: &SinkRecord) -> bool {
    match (a, b) {
        (SinkRecord::Semaphore(a), SinkRecord::Semaphore(b)) => {
            a.url == b.url && a.project == b.project && a.environment == b.environment
        }
        (SinkRecord::Openbao(a), SinkRecord::Openbao(b)) => a.mount == b.mount && a.path == b.path,
        (SinkRecord::Guest(a), SinkRecord::Guest(b)) => a.vmid == b.vmid && a.guest_path == b.guest_path,
        (SinkRecord::File(a), SinkRecord::File(b)) => a.path == b.path,
        _ => false,
    }
}

fn save(token_file: &std::path::Path, sinks: &[SinkRecord]) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&SinkFile { version: 1, sinks: sinks.to_vec() })?;
    pvetoken_lifecycle::token_store::write_secret_file_atomic(&sinks_path(token_file), text.as_bytes())?;
    Ok(())
}

/// The sinks recorded next to a token file (Semaphore environments, OpenBao secrets, guest files).
pub(crate) struct RegisteredSinks<'a> {
    pub(crate) token_file: &'a std::path::Path,
    pub(crate) target: &'a Target,
    pub(crate) printer: &'a Printer,
}

impl Sinks for RegisteredSinks<'_> {
    async fn check(&self, admin: &PveClient) -> Result<(), Vec<FailedSink>> {
        check_sinks(self.token_file, admin).await
    }

    async fn update(&self, admin: &PveClient) -> Result<(), Vec<FailedSink>> {
        update_sinks(self.token_file, admin, self.target, self.printer).await
    }

    fn record(&self) -> String {
        sinks_path(self.token_file).display().to_string()
    }
}

/// Checks every remembered sink before anything changes; all are tried, the failures returned.
async fn check_sinks(token_file: &std::path::Path, admin: &PveClient) -> Result<(), Vec<FailedSink>> {
    let sinks = load(token_file)
        .map_err(|error| vec![FailedSink { sink: "the sink record".to_owned(), error: error.to_string() }])?;
    let mut failed = Vec::new();
    for sink in sinks {
        let result = match &sink {
            SinkRecord::Semaphore(s) => crate::commands::register::semaphore_credentials_ready(s),
            SinkRecord::Openbao(s) => crate::commands::register_openbao::preflight(s).await,
            SinkRecord::Guest(s) => {
                // The guest agent must answer now, or the guest would keep a dead secret.
                let path = format!("/nodes/{}/qemu/{}/agent/ping", s.node, s.vmid);
                admin.post::<serde_json::Value>(&path, &Vec::new()).await.map(drop).map_err(anyhow::Error::from)
            }
            SinkRecord::File(s) => crate::commands::render::file_sink_ready(s),
        };
        if let Err(error) = result {
            failed.push(FailedSink { sink: sink.describe(), error: format!("{error:#}") });
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(failed) }
}

/// Sinks that could not take the current token (after `create` or `apply` made a new secret): each, and why.
pub(crate) fn stale_sinks(failed: &[FailedSink]) -> crate::exit::CliError {
    let list: Vec<String> = failed.iter().map(|f| format!("{}: {}", f.sink, f.error)).collect();
    crate::exit::CliError::remote(format!(
        "the token file holds a new secret, but {} sink(s) do not: {}",
        failed.len(),
        list.join("; ")
    ))
    .with_hint("fix what stops them and rerun: the secret is written to every recorded sink again")
}

/// Pushes the token file's (new) token to every remembered sink; all are tried, the failures returned.
async fn update_sinks(
    token_file: &std::path::Path,
    admin: &PveClient,
    target: &Target,
    printer: &Printer,
) -> Result<(), Vec<FailedSink>> {
    let sinks = load(token_file)
        .map_err(|error| vec![FailedSink { sink: "the sink record".to_owned(), error: error.to_string() }])?;
    let mut failed = Vec::new();
    for sink in sinks {
        if let Err(failure) = update_sink(sink, token_file, admin, target, printer).await {
            failed.push(failure);
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(failed) }
}

/// Pushes the token file's token to one sink.
pub(crate) async fn update_sink(
    sink: SinkRecord,
    token_file: &std::path::Path,
    admin: &PveClient,
    target: &Target,
    printer: &Printer,
) -> Result<(), FailedSink> {
    let describe = sink.describe();
    let result = match sink {
        SinkRecord::Guest(guest) => {
            async {
                let token = pvetoken_lifecycle::token_store::read(token_file)?;
                let mut request =
                    crate::deliver::DeliveryRequest::new(guest.node.clone(), guest.vmid, "pvetoken rotate");
                request.guest_path = guest.guest_path.clone();
                request.owner = guest.owner.clone();
                request.then = guest.then.clone();
                crate::deliver::deliver(admin, target, &request, &token, printer).await?;
                printer.info(&format!("{describe} holds the new token"));
                Ok::<_, anyhow::Error>(())
            }
            .await
        }
        SinkRecord::Openbao(sink) => crate::commands::register_openbao::refresh(&sink, token_file, printer).await,
        SinkRecord::Semaphore(sink) => {
            crate::commands::register::refresh_semaphore_sink(&sink, token_file, printer).await
        }
        SinkRecord::File(sink) => crate::commands::render::refresh_file_sink(&sink, token_file, printer),
    };
    result.map_err(|error| FailedSink { sink: describe, error: format!("{error:#}") })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::{SemaphoreSink, SinkRecord, load, remember, sinks_path};

    fn sink(environment: &str) -> SinkRecord {
        SinkRecord::Semaphore(SemaphoreSink {
            url: "https://sem.lan".into(),
            project: "1".into(),
            environment: environment.into(),
            layout: "seed".into(),
            user: Some("admin".into()),
            api_token_file: None,
            password_file: None,
            ca_file: None,
            fingerprint: None,
            allow_http: false,
        })
    }

    #[test]
    fn remembered_sinks_are_listed_once_each_and_stored_0600_next_to_the_token_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token.env");
        assert!(load(&token_file).expect("empty").is_empty());
        remember(&token_file, sink("ProxmoxAPI")).expect("remember");
        remember(&token_file, sink("ProxmoxAPI")).expect("remember again");
        remember(&token_file, sink("Other")).expect("remember other");
        assert_eq!(load(&token_file).expect("load"), vec![sink("ProxmoxAPI"), sink("Other")]);
        let mode = std::fs::metadata(sinks_path(&token_file)).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
