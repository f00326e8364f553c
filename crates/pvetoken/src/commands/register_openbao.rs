//! `pvetoken register openbao`: write the token to an OpenBao / Vault KV v2 secret, read it back, and remember the
//! sink so that `pvetoken rotate` updates it before it retires the old secret.
//!
//! The secret's fields (docs/openbao.md) serve each consumer as it reads OpenBao: Packer's `vault()` function
//! (`api_url`, `token_id`, `token_secret`), Terraform's `vault_kv_secret_v2` for bpg (`endpoint`, `api_token`),
//! Ansible's `community.hashi_vault.vault_kv2_get` for community.proxmox (`host`, `user`, `token_name`,
//! `token_secret`). A write uses check-and-set with the version just read, so two writers never silently
//! overwrite each other; an identical secret is not written again.

use std::path::{Path, PathBuf};

use clap::Args;
use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_client::openbao::{BaoAuth, BaoClient, BaoError};
use pvetoken_render::TokenFile;
use serde_json::{Map, Value};

use crate::connection::service_tls;
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use crate::sinks::{OpenbaoAuthRecord, OpenbaoSink, SinkRecord};
use pvetoken_lifecycle::env_vars;

/// Arguments of `pvetoken register openbao`.
#[derive(Debug, Args)]
pub struct OpenbaoArgs {
    /// OpenBao address(es), e.g. `https://bao.lan:8200`; repeat or separate with commas for the nodes of a
    /// cluster (the next is tried when one cannot be reached). Default: BAO_ADDR, else VAULT_ADDR.
    #[arg(long = "addr", value_name = "URL", value_delimiter = ',')]
    addresses: Vec<String>,
    /// The KV version 2 mount.
    #[arg(long, value_name = "MOUNT", default_value = "secret")]
    mount: String,
    /// The secret's path below the mount, e.g. `proxmox/packer`.
    #[arg(long, value_name = "PATH")]
    path: String,
    /// Token file to register (default: /root/.proxmox-api-token as root, else $XDG_CONFIG_HOME/pvetoken/token.env).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Trust the CA certificate(s) in this PEM file for OpenBao's HTTPS (default: BAO_CACERT, else the system roots).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Pin OpenBao's certificate by SHA-256 fingerprint.
    #[arg(long, value_name = "SHA256")]
    fingerprint: Option<String>,
    /// Read the OpenBao token from the first line of this file (private, ours) instead of BAO_TOKEN / VAULT_TOKEN.
    #[arg(long, value_name = "FILE")]
    bao_token_file: Option<PathBuf>,
    /// AppRole login: the role id's file (with --secret-id-file).
    #[arg(long, value_name = "FILE", requires = "secret_id_file", conflicts_with = "bao_token_file")]
    role_id_file: Option<PathBuf>,
    /// AppRole login: the secret id's file (with --role-id-file).
    #[arg(long, value_name = "FILE", requires = "role_id_file")]
    secret_id_file: Option<PathBuf>,
    /// The AppRole auth mount.
    #[arg(long, value_name = "MOUNT", default_value = "approle")]
    approle_mount: String,
    /// Send the token over plain HTTP to an address that is not loopback (prints a warning).
    #[arg(long)]
    allow_http: bool,
}

/// Runs `pvetoken register openbao`.
pub fn run(args: &OpenbaoArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let token_file = pvetoken_lifecycle::token_store::path_or_default(args.token_file.as_deref())?;
    let sink = sink_from_args(args)?;
    crate::connection::check_plain_http(&sink.addresses, args.allow_http, printer)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(write_sink(&sink, &token_file))?;
    crate::sinks::remember(&token_file, SinkRecord::Openbao(sink.clone())).map_err(|error| {
        CliError::usage(format!("written, but the sink could not be remembered for `pvetoken rotate`: {error:#}"))
    })?;
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "status": outcome.status,
            "address": outcome.address,
            "mount": sink.mount,
            "path": sink.path,
            "version": outcome.version,
            "fields": outcome.fields,
            "verified": true,
            "token_file": token_file,
        }))?;
    } else {
        printer.data(&outcome.sentence(&sink))?;
    }
    Ok(Exit::Success)
}

fn sink_from_args(args: &OpenbaoArgs) -> Result<OpenbaoSink, CliError> {
    let mut addresses: Vec<String> =
        args.addresses.iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
    if addresses.is_empty() {
        for name in [env_vars::BAO_ADDR, env_vars::VAULT_ADDR] {
            if let Some(value) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
                addresses.push(value.trim().to_owned());
                break;
            }
        }
    }
    if addresses.is_empty() {
        return Err(CliError::usage("no OpenBao address")
            .with_hint(format!("pass --addr https://bao.example:8200 (repeatable) or set {}", env_vars::BAO_ADDR)));
    }
    for address in &addresses {
        let url = url::Url::parse(address).map_err(|error| {
            CliError::usage(format!("--addr {address}: {error}")).with_hint("give a URL such as https://bao.lan:8200")
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(CliError::usage(format!("--addr {address}: expected an http(s) URL with a host")));
        }
    }
    let path = args.path.trim().trim_matches('/').to_owned();
    let mount = args.mount.trim().trim_matches('/').to_owned();
    for (flag, value) in [("--path", &path), ("--mount", &mount)] {
        let clean = !value.is_empty()
            && value.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
            && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_./@+".contains(c));
        if !clean {
            return Err(CliError::usage(format!("{flag} '{value}' is not a plain KV path"))
                .with_hint("use letters, digits and - _ . / @ +, e.g. proxmox/packer"));
        }
    }
    service_tls("--fingerprint", &None, &args.fingerprint, false)?;
    let auth = match (&args.bao_token_file, &args.role_id_file, &args.secret_id_file) {
        (Some(file), _, _) => OpenbaoAuthRecord::TokenFile { file: absolute(file) },
        (None, Some(role), Some(secret)) => OpenbaoAuthRecord::AppRole {
            mount: args.approle_mount.clone(),
            role_id_file: absolute(role),
            secret_id_file: absolute(secret),
        },
        _ => OpenbaoAuthRecord::Environment,
    };
    let ca_file = args.ca_file.clone().or_else(|| std::env::var_os(env_vars::BAO_CACERT).map(PathBuf::from));
    Ok(OpenbaoSink {
        addresses,
        mount,
        path,
        ca_file: ca_file.map(|f| absolute(&f)),
        fingerprint: args.fingerprint.clone(),
        auth,
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// What a write did.
#[derive(Debug)]
pub struct Outcome {
    status: &'static str,
    address: String,
    version: u64,
    fields: Vec<String>,
}

impl Outcome {
    fn sentence(&self, sink: &OpenbaoSink) -> String {
        let verb = if self.status == "unchanged" { "already holds" } else { "now holds" };
        format!(
            "OpenBao {}/{} (version {}, at {}) {verb} the token; read back and verified",
            sink.mount, sink.path, self.version, self.address
        )
    }
}

/// The KV fields for a token file (docs/openbao.md).
pub fn fields(token: &TokenFile) -> Map<String, Value> {
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
/// and by `rotate` (async: rotate calls it from inside its runtime).
pub async fn write_sink(sink: &OpenbaoSink, token_file: &Path) -> Result<Outcome, CliError> {
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
        OpenbaoAuthRecord::TokenFile { file } => Ok(BaoAuth::Token(first_line(file, "OpenBao token file")?)),
        OpenbaoAuthRecord::AppRole { mount, role_id_file, secret_id_file } => Ok(BaoAuth::AppRole {
            mount: mount.clone(),
            role_id: first_line(role_id_file, "AppRole role id file")?,
            secret_id: first_line(secret_id_file, "AppRole secret id file")?,
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

fn first_line(path: &Path, what: &str) -> Result<Secret, CliError> {
    let mut text = pvetoken_lifecycle::token_store::read_private(path, what)?;
    let first = text.lines().next().unwrap_or_default().trim().to_owned();
    zeroize::Zeroize::zeroize(&mut text);
    if first.is_empty() {
        return Err(CliError::usage(format!("{what} {}: the first line is empty", path.display())));
    }
    Ok(Secret::from(first))
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
pub async fn preflight(sink: &OpenbaoSink) -> anyhow::Result<()> {
    let client = connect(sink).await?;
    client.read(&sink.mount, &sink.path).await.map_err(|error| bao_error(&error, sink))?;
    Ok(())
}

/// Brings a remembered OpenBao sink up to date with a (rotated) token. Called by `pvetoken rotate`.
pub async fn refresh(sink: &OpenbaoSink, token_file: &Path, printer: &Printer) -> anyhow::Result<()> {
    let outcome = write_sink(sink, token_file).await?;
    printer.info(&outcome.sentence(sink));
    Ok(())
}
