//! Sinks: the places a token was handed to (a Semaphore environment, an OpenBao secret, a file in a guest, a
//! rendered file), remembered next to the token file so that `pvetoken rotate` (and `create`/`apply` when they make
//! a new secret) can update every one of them.
//!
//! This module holds the record (`load`, `remember`) and the CLI's side of the lifecycle's `Sinks` trait
//! (`RegisteredSinks`: check every recorded sink before a secret changes, update them after). Each kind lives in
//! its own module, with its record, its `ready` check and its `refresh`: `semaphore`, `openbao`, `guest`, `file`.
//! The commands that first hand a token to a sink (`register semaphore`, `register openbao`, `deliver`,
//! `render --keep-updated`) call the same code.

pub mod file;
pub mod guest;
pub mod openbao;
pub mod semaphore;

use std::path::PathBuf;

use pvetoken_client::pve::PveClient;
use pvetoken_lifecycle::rotate::{FailedSink, Sinks};

use crate::connection::Target;
use crate::printer::Printer;

pub use file::FileSink;
pub use guest::GuestSink;
pub use openbao::{OpenbaoAuthRecord, OpenbaoSink};
pub use semaphore::SemaphoreSink;

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

/// The file that remembers the sinks of a token file: `<token file>.sinks.json` in the same directory, mode 0600.
pub fn sinks_path(token_file: &std::path::Path) -> PathBuf {
    pvetoken_lifecycle::token_store::companion(token_file, ".sinks.json")
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
            SinkRecord::Semaphore(s) => semaphore::credentials_ready(s),
            SinkRecord::Openbao(s) => openbao::ready(s).await,
            SinkRecord::Guest(s) => guest::ready(s, admin).await,
            SinkRecord::File(s) => file::ready(s),
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
        SinkRecord::Guest(sink) => guest::refresh(&sink, token_file, admin, target, printer).await,
        SinkRecord::Openbao(sink) => openbao::refresh(&sink, token_file, printer).await,
        SinkRecord::Semaphore(sink) => semaphore::refresh(&sink, token_file, printer).await,
        SinkRecord::File(sink) => file::refresh(&sink, token_file, printer),
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
