//! `pvetoken register openbao`: write the token to an OpenBao / Vault KV v2 secret, read it back, and remember the
//! sink so that `pvetoken rotate` updates it before it retires the old secret (the work itself is
//! `sinks::openbao`).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::connection::service_tls;
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use crate::sinks::{OpenbaoAuthRecord, OpenbaoSink, SinkRecord, openbao};
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
    let outcome = runtime.block_on(openbao::write(&sink, &token_file))?;
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
