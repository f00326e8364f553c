//! An OpenBao / Vault KV v2 secret holding the token (`register openbao`, or a sink in `pvetoken.toml`), written
//! again when the token changes.
//!
//! The secret's fields (docs/openbao.md) serve each consumer as it reads OpenBao: Packer's `vault()` function
//! (`api_url`, `token_id`, `token_secret`), Terraform's `vault_kv_secret_v2` for bpg (`endpoint`, `api_token`),
//! Ansible's `community.hashi_vault.vault_kv2_get` for community.proxmox (`host`, `user`, `token_name`,
//! `token_secret`). A write uses check-and-set with the version just read, so two writers never silently
//! overwrite each other; an identical secret is not written again.

use std::path::{Path, PathBuf};

use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_client::openbao::{BaoAuth, BaoClient, BaoError};
use pvetoken_lifecycle::env_vars;
use pvetoken_render::TokenFile;
use serde_json::{Map, Value};

use crate::connection::{read_secret_line, service_tls};
use crate::exit::CliError;
use crate::printer::Printer;

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

/// What a write did.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `written` or `unchanged`.
    pub(crate) status: &'static str,
    /// The OpenBao node that took it.
    pub(crate) address: String,
    /// The secret's version now.
    pub(crate) version: u64,
    /// The field names written.
    pub(crate) fields: Vec<String>,
}

impl Outcome {
    pub(crate) fn sentence(&self, sink: &OpenbaoSink) -> String {
        let verb = if self.status == "unchanged" { "already holds" } else { "now holds" };
        format!(
            "OpenBao {}/{} (version {}, at {}) {verb} the token; read back and verified",
            sink.mount, sink.path, self.version, self.address
        )
    }
}

/// The KV fields for a token file (docs/openbao.md).
pub(crate) fn fields(token: &TokenFile) -> Map<String, Value> {
    let id = token.token_id.as_str();
    let (user, name) = id.rsplit_once('!').unwrap_or((id, ""));
    let endpoint = token.url.trim_end_matches('/').to_owned();
    let entries: [(&str, String); 12] = [
        ("token_id", id.to_owned()),
        ("token_secret", token.secret.expose_secret().to_owned()),
        ("api_token", format!("{id}={}", token.secret.expose_secret())),
        ("user", user.to_owned()),
        ("token_name", name.to_owned()),
        ("api_url", format!("{endpoint}/api2/json")),
        ("endpoint", endpoint),
        ("host", token.host.clone()),
        ("port", token.port.to_string()),
        ("node", token.node.clone()),
        ("fingerprint", token.fingerprint.clone().unwrap_or_default()),
        ("expire", token.expire.to_string()),
    ];
    entries.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect()
}

fn metadata(token: &TokenFile) -> Map<String, Value> {
    [
        ("written_by", format!("pvetoken {}", env!("CARGO_PKG_VERSION"))),
        ("token_id", token.token_id.as_str().to_owned()),
        ("cluster", token.url.clone()),
        ("expire", token.expire.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Value::String(v)))
    .collect()
}

/// Writes the token file's token to the sink (unless it already holds it), then reads it back. Used by `register`
/// and by the refresh (async: rotate calls it from inside its runtime).
pub(crate) async fn write(sink: &OpenbaoSink, token_file: &Path) -> Result<Outcome, CliError> {
    let token = pvetoken_lifecycle::token_store::read(token_file)?;
    let client = connect(sink).await?;
    let wanted = fields(&token);
    let bao = |error: BaoError| bao_error(&error, sink);
    let (status, version) = write_checked(&client, sink, &wanted).await?;
    client.set_custom_metadata(&sink.mount, &sink.path, &metadata(&token)).await.map_err(bao)?;
    let back = read_settled(&client, sink, &wanted).await.map_err(bao)?;
    let holds = back.as_ref().is_some_and(|b| {
        b.data.get("token_id") == wanted.get("token_id") && b.data.get("token_secret") == wanted.get("token_secret")
    });
    if !holds {
        return Err(CliError::remote(format!(
            "OpenBao {}/{}: the secret read back is not the one written",
            sink.mount, sink.path
        ))
        .with_hint("another writer may be changing this path; rerun"));
    }
    Ok(Outcome { status, address: client.address().to_owned(), version, fields: wanted.keys().cloned().collect() })
}

/// Writes `wanted` unless the secret holds it already, with check-and-set against the version just read. A
/// mismatch is read again, from the next node, and retried with growing pauses (about 15 s in all, as the
/// client's failover rounds): an OpenBao standby serves reads and can lag (a node just restarted, or one waiting
/// out an election, answers with an old version), and our own write may have landed with its answer lost. A path
/// that keeps changing under us is another writer's, and nothing is overwritten. Returns (status, version).
async fn write_checked(
    client: &BaoClient,
    sink: &OpenbaoSink,
    wanted: &Map<String, Value>,
) -> Result<(&'static str, u64), CliError> {
    let bao = |error: BaoError| bao_error(&error, sink);
    let pauses = std::iter::once(None).chain(pvetoken_client::openbao::ROUND_PAUSES.iter().map(Some));
    for (attempt, pause) in pauses.enumerate() {
        if let Some(pause) = pause {
            tokio::time::sleep(*pause).await;
        }
        let cas = match client.read(&sink.mount, &sink.path).await.map_err(bao)? {
            Some(existing) if &existing.data == wanted => {
                return Ok((if attempt == 0 { "unchanged" } else { "written" }, existing.version));
            }
            Some(existing) => existing.version,
            None => client.current_version(&sink.mount, &sink.path).await.map_err(bao)?,
        };
        match client.write(&sink.mount, &sink.path, wanted, cas).await {
            Ok(version) => return Ok(("written", version)),
            Err(BaoError::CasMismatch { .. }) => client.prefer_next_address(),
            Err(error) => return Err(bao(error)),
        }
    }
    Err(CliError::remote(format!(
        "OpenBao {}/{} kept changing while pvetoken wrote it (another writer?); nothing was overwritten",
        sink.mount, sink.path
    ))
    .with_hint("check who else writes this path, then rerun"))
}

/// Reads the secret until it holds `wanted` (at most about 3 s): a raft standby serving reads may lag the write
/// just made through another node for a moment. Returns the last read either way.
async fn read_settled(
    client: &BaoClient,
    sink: &OpenbaoSink,
    wanted: &Map<String, Value>,
) -> Result<Option<pvetoken_client::openbao::KvSecret>, BaoError> {
    let mut last = client.read(&sink.mount, &sink.path).await?;
    for _ in 0..6 {
        if last.as_ref().is_some_and(|secret| &secret.data == wanted) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        last = client.read(&sink.mount, &sink.path).await?;
    }
    Ok(last)
}

async fn connect(sink: &OpenbaoSink) -> Result<BaoClient, CliError> {
    let tls = service_tls("the recorded pin", &sink.ca_file, &sink.fingerprint, false)?;
    let http = pvetoken_client::http_client(&tls).map_err(|error| CliError::usage(error.to_string()))?;
    let auth = resolve_auth(&sink.auth)?;
    BaoClient::connect(http, sink.addresses.clone(), auth).await.map_err(|error| bao_error(&error, sink))
}

fn resolve_auth(record: &OpenbaoAuthRecord) -> Result<BaoAuth, CliError> {
    match record {
        OpenbaoAuthRecord::TokenFile { file } => Ok(BaoAuth::Token(read_secret_line(file, "OpenBao token file")?)),
        OpenbaoAuthRecord::AppRole { mount, role_id_file, secret_id_file } => Ok(BaoAuth::AppRole {
            mount: mount.clone(),
            role_id: read_secret_line(role_id_file, "AppRole role id file")?,
            secret_id: read_secret_line(secret_id_file, "AppRole secret id file")?,
        }),
        OpenbaoAuthRecord::Environment => {
            for name in [env_vars::BAO_TOKEN, env_vars::VAULT_TOKEN] {
                if let Some(value) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
                    return Ok(BaoAuth::Token(Secret::from(value.trim().to_owned())));
                }
            }
            Err(CliError::usage("no OpenBao credentials").with_hint(format!(
                "set {} (or {}), or pass --bao-token-file FILE, or --role-id-file and --secret-id-file for AppRole",
                env_vars::BAO_TOKEN,
                env_vars::VAULT_TOKEN
            )))
        }
    }
}

fn bao_error(error: &BaoError, sink: &OpenbaoSink) -> CliError {
    let hint = match error.status() {
        Some(403) => format!(
            "the OpenBao token needs a policy with create, read and update on {0}/data/{1} and {0}/metadata/{1}",
            sink.mount, sink.path
        ),
        Some(404) => {
            format!("is `{}` a KV version 2 mount? (bao secrets enable -path={} kv-v2)", sink.mount, sink.mount)
        }
        _ => "check the address, the CA file and that OpenBao is unsealed".to_owned(),
    };
    CliError::remote(error.to_string()).with_hint(hint)
}

/// Checks, before `rotate` changes anything, that the sink can be reached and its credentials read the secret.
pub(crate) async fn ready(sink: &OpenbaoSink) -> anyhow::Result<()> {
    let client = connect(sink).await?;
    client.read(&sink.mount, &sink.path).await.map_err(|error| bao_error(&error, sink))?;
    Ok(())
}

/// Brings a remembered OpenBao sink up to date with a (rotated) token.
pub(crate) async fn refresh(sink: &OpenbaoSink, token_file: &Path, printer: &Printer) -> anyhow::Result<()> {
    let outcome = write(sink, token_file).await?;
    printer.info(&outcome.sentence(sink));
    Ok(())
}
