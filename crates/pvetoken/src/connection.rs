//! Connection and administrative-credential flags shared by every command that talks to a PVE server
//! (`create`, `verify`, `list`, `revoke`, `rotate`, `register`, `deliver`, `doctor`, `audit`), and their
//! resolution into plain settings.
//!
//! Secrets are never accepted as arguments: the admin password comes from `PVETOKEN_PASSWORD`, `--password-file`
//! or an interactive prompt (only when stdin is a terminal); an admin token from the token file named by
//! `PVETOKEN_ADMIN_TOKEN_FILE`; or `--local` runs `pvesh` as root on the PVE host.
//!
//! ```text
//! #[derive(clap::Args)]
//! struct MyArgs {
//!     #[command(flatten)]
//!     connection: ConnectionArgs,
//! }
//! let target = args.connection.resolve_target(fallback_from_token_file)?;   // where + TLS
//! let admin = args.connection.resolve_admin()?;                            // who (may prompt)
//! ```

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use pvetoken_api::Secret;
use pvetoken_client::endpoint::Endpoint;
use pvetoken_client::{Fingerprint, TlsSettings};

use crate::exit::CliError;
use crate::printer::Printer;
use pvetoken_lifecycle::env_vars;
pub use pvetoken_lifecycle::target::{Target, http_client};

/// Where the PVE server is and how to authenticate as an administrator.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    /// PVE API address, e.g. `https://pve.lan:8006` (a bare host gets https and port 8006).
    #[arg(long, env = env_vars::PVETOKEN_URL, value_name = "URL", help_heading = "Connection")]
    pub url: Option<String>,
    /// Trust the CA certificate(s) in this PEM file instead of the system roots (PVE: /etc/pve/pve-root-ca.pem).
    #[arg(long, value_name = "PEM", help_heading = "Connection", conflicts_with = "insecure")]
    pub ca_file: Option<PathBuf>,
    /// Pin the server certificate by SHA-256 fingerprint (`AB:CD:...` as `pvenode cert info` prints it, or hex).
    #[arg(long, value_name = "SHA256", help_heading = "Connection", conflicts_with = "insecure")]
    pub fingerprint: Option<String>,
    /// Accept any server certificate. Dangerous: anyone on the path can read the credentials. Prefer
    /// --fingerprint.
    #[arg(long, help_heading = "Connection")]
    pub insecure: bool,
    /// Administrator to log in as with a password (the password comes from PVETOKEN_PASSWORD, --password-file,
    /// or a prompt on a terminal; never from an argument).
    #[arg(long, value_name = "USER@REALM", default_value = "root@pam", help_heading = "Connection")]
    pub auth_user: String,
    /// Read the administrator's password from the first line of this file (should be mode 0600).
    #[arg(long, value_name = "FILE", help_heading = "Connection")]
    pub password_file: Option<PathBuf>,
    /// Act as the administrator token saved in this token file (mode 0600) instead of logging in with a password
    /// (also PVETOKEN_ADMIN_TOKEN_FILE).
    #[arg(long, value_name = "FILE", help_heading = "Connection", conflicts_with = "password_file")]
    pub admin_token_file: Option<PathBuf>,
    /// Run `pvesh` on this PVE host (as root) instead of calling the HTTPS API: no URL, no password.
    #[arg(long, help_heading = "Connection", conflicts_with_all = ["ca_file", "fingerprint", "insecure", "password_file"])]
    pub local: bool,
    /// Seconds to wait for each answer (connecting included).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, help_heading = "Connection")]
    pub timeout: u64,
}

/// Connection details found elsewhere (the token file) used when no flag or env var names them.
#[derive(Debug, Clone, Default)]
pub struct TargetFallback {
    /// The token file's `PROXMOX_URL` (or built from `PROXMOX_HOST`/`PROXMOX_PORT`).
    pub url: Option<String>,
    /// The token file's `PROXMOX_FINGERPRINT`.
    pub fingerprint: Option<String>,
    /// The token file's `PROXMOX_CA_FILE`.
    pub ca_file: Option<PathBuf>,
}

impl TargetFallback {
    /// The server, pin and CA file a token file names.
    pub fn from_token_file(token: &pvetoken_render::TokenFile) -> Self {
        Self { url: Some(token.url.clone()), fingerprint: token.fingerprint.clone(), ca_file: token.ca_file.clone() }
    }

    /// The server named by the default token file (when it exists and is readable), for commands whose `--url`
    /// is optional.
    pub fn from_default_token_file() -> Self {
        let saved = pvetoken_lifecycle::token_store::default_token_path()
            .ok()
            .and_then(|path| pvetoken_lifecycle::token_store::read_if_exists(&path).ok().flatten());
        Self::from_optional(saved.as_ref())
    }

    /// [`Self::from_token_file`] when there is a token file, else nothing.
    pub fn from_optional(token: Option<&pvetoken_render::TokenFile>) -> Self {
        token.map(Self::from_token_file).unwrap_or_default()
    }
}

/// Administrative credentials.
#[derive(Debug)]
pub enum AdminAuth {
    /// Ticket login with a password.
    Password {
        /// `user@realm`.
        user: String,
        /// The password.
        password: Secret,
        /// Where it came from (for messages): `PVETOKEN_PASSWORD`, the file path, or `prompt`.
        source: String,
    },
    /// An admin API token stored in a token file (read through the token store when connecting).
    TokenFile(PathBuf),
    /// `--local`: pvesh runs as root, no credential needed.
    Local,
}

impl AdminAuth {
    /// Who acts, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Password { user, .. } => user.clone(),
            Self::TokenFile(path) => format!("the admin token in {}", path.display()),
            Self::Local => "root (local pvesh)".to_owned(),
        }
    }
}

impl ConnectionArgs {
    /// The per-request timeout.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout.max(1))
    }

    /// Resolves where to connect. `fallback` fills in what neither flags nor environment give (the token file).
    ///
    /// Every command resolves its target here, so `--insecure` is warned about in one place: whatever is sent
    /// next (a password, a token) crosses unverified TLS.
    pub fn resolve_target(&self, fallback: &TargetFallback, printer: &Printer) -> Result<Target, CliError> {
        let target = self.resolve_target_quietly(fallback)?;
        if target.is_insecure() {
            printer
                .warn("--insecure: the server certificate is not checked; anyone on the path can read the credentials");
        }
        Ok(target)
    }

    /// [`Self::resolve_target`] without the `--insecure` warning.
    pub fn resolve_target_quietly(&self, fallback: &TargetFallback) -> Result<Target, CliError> {
        if self.local {
            let pvesh = std::env::var_os(env_vars::PVETOKEN_PVESH)
                .filter(|value| !value.is_empty())
                .map_or_else(|| PathBuf::from("pvesh"), PathBuf::from);
            return Ok(Target::Local { pvesh });
        }
        let Some(url) = self.url.clone().or_else(|| fallback.url.clone()) else {
            return Err(CliError::usage("no PVE server given").with_hint(
                "pass --url https://HOST:8006 (or set PVETOKEN_URL), or --local when running on the PVE host as root",
            ));
        };
        let endpoint = Endpoint::parse_pve(&url).map_err(|error| {
            CliError::usage(error.to_string()).with_hint("give the API address as https://HOST:8006")
        })?;
        let fingerprint_text = self.fingerprint.clone().or_else(|| {
            // A pin stored in the token file only applies to the server it was stored for.
            if self.url.is_none() || self.url == fallback.url { fallback.fingerprint.clone() } else { None }
        });
        let fingerprint = match fingerprint_text {
            Some(text) if !self.insecure => Some(
                text.parse::<Fingerprint>()
                    .map_err(|error| CliError::usage(error.to_string()).with_hint(FINGERPRINT_HINT))?,
            ),
            _ => None,
        };
        // A CA file stored in the token file applies to its own server, unless a pin or --insecure was asked for.
        let ca_file = self.ca_file.clone().or_else(|| {
            let same_server = self.url.is_none() || self.url == fallback.url;
            if same_server && self.fingerprint.is_none() && !self.insecure { fallback.ca_file.clone() } else { None }
        });
        if let Some(ca_file) = &ca_file
            && !ca_file.is_file()
        {
            return Err(CliError::usage(format!("CA file {}: no such file", ca_file.display())).with_hint(
                "it comes from --ca-file or from PROXMOX_CA_FILE in the token file; on the PVE host the cluster CA is \
                 /etc/pve/pve-root-ca.pem",
            ));
        }
        Ok(Target::Remote { endpoint, tls: TlsSettings { ca_file, fingerprint, insecure: self.insecure } })
    }

    /// Resolves administrative credentials: `--local`; else an admin token file (`PVETOKEN_ADMIN_TOKEN_FILE`);
    /// else a password from `PVETOKEN_PASSWORD`, `--password-file`, or a prompt when stdin is a terminal.
    pub fn resolve_admin(&self) -> Result<AdminAuth, CliError> {
        if self.local {
            return Ok(AdminAuth::Local);
        }
        if self.auth_user.contains('!') {
            return Err(CliError::usage(format!(
                "--auth-user {} is a token id; --auth-user takes a user (user@realm) who logs in with a password",
                self.auth_user
            ))
            .with_hint(format!(
                "to act with an admin token, save it in a token file (mode 0600) and set {}=/path/to/file",
                env_vars::PVETOKEN_ADMIN_TOKEN_FILE
            )));
        }
        if !self.auth_user.contains('@') {
            return Err(CliError::usage(format!("--auth-user {}: missing realm", self.auth_user))
                .with_hint(format!("write it as user@realm, e.g. {}@pam", self.auth_user)));
        }
        if let Some(path) = &self.admin_token_file {
            return Ok(AdminAuth::TokenFile(path.clone()));
        }
        let password_file = self.password_file.as_deref();
        if password_file.is_none()
            && let Some(path) = std::env::var_os(env_vars::PVETOKEN_ADMIN_TOKEN_FILE).filter(|value| !value.is_empty())
        {
            return Ok(AdminAuth::TokenFile(PathBuf::from(path)));
        }
        let (password, source) = if let Some(path) = password_file {
            (read_secret_line(path, "--password-file")?, path.display().to_string())
        } else if let Some(value) = env_secret(env_vars::PVETOKEN_PASSWORD)? {
            (value, env_vars::PVETOKEN_PASSWORD.to_owned())
        } else if std::io::stdin().is_terminal() {
            let prompt = format!("Password for {}: ", self.auth_user);
            let value = rpassword::prompt_password(prompt)
                .map_err(|error| CliError::usage(format!("cannot read the password from the terminal: {error}")))?;
            (Secret::from(value), "prompt".to_owned())
        } else {
            return Err(CliError::usage(format!("no administrator credentials for {}", self.auth_user)).with_hint(
                format!(
                    "set {} (or --password-file FILE) for a password login, {} for an admin token, or use \
                     --local on the PVE host",
                    env_vars::PVETOKEN_PASSWORD,
                    env_vars::PVETOKEN_ADMIN_TOKEN_FILE
                ),
            ));
        };
        Ok(AdminAuth::Password { user: self.auth_user.clone(), password, source })
    }

    /// True when administrative credentials are available without prompting (used by commands for which admin
    /// access is optional, e.g. `verify` explaining which side lacks a privilege).
    pub fn admin_available_without_prompt(&self) -> bool {
        self.local
            || self.password_file.is_some()
            || std::env::var_os(env_vars::PVETOKEN_PASSWORD).is_some_and(|value| !value.is_empty())
            || std::env::var_os(env_vars::PVETOKEN_ADMIN_TOKEN_FILE).is_some_and(|value| !value.is_empty())
    }
}

const FINGERPRINT_HINT: &str =
    "on the PVE host, `pvenode cert info --output-format json` shows the fingerprint of pve-ssl.pem";

/// A secret from the environment variable `name`: `None` when it is unset or empty.
pub fn env_secret(name: &str) -> Result<Option<Secret>, CliError> {
    match std::env::var_os(name).filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(value) => value
            .into_string()
            .map(|text| Some(Secret::from(text)))
            .map_err(|_| CliError::usage(format!("{name} is not valid UTF-8"))),
    }
}

/// The first line of a file that holds a secret (a password, an API token, an AppRole id), its line ending removed.
/// Owned by us or root, 0600, not a link: a secret file others can read or replace is refused. `what` names it in
/// messages (`--password-file`, `OpenBao token file`, ...).
pub fn read_secret_line(path: &Path, what: &str) -> Result<Secret, CliError> {
    let mut text = pvetoken_lifecycle::token_store::read_private(path, what)?;
    let first = text.lines().next().unwrap_or_default().to_owned();
    zeroize::Zeroize::zeroize(&mut text);
    if first.is_empty() {
        return Err(CliError::usage(format!("{what} {}: the first line is empty", path.display())));
    }
    Ok(Secret::from(first))
}

/// The admin token (full id, secret) when `PVETOKEN_ADMIN_TOKEN_FILE` is used: read through the token store, so a
/// file readable by group or others is refused.
pub fn read_admin_token(admin: &AdminAuth) -> Result<Option<(String, Secret)>, CliError> {
    match admin {
        AdminAuth::TokenFile(path) => {
            let token = pvetoken_lifecycle::token_store::read(path).map_err(|mut error| {
                error.message = format!("admin token ({}): {}", env_vars::PVETOKEN_ADMIN_TOKEN_FILE, error.message);
                error
            })?;
            Ok(Some((token.token_id.to_string(), token.secret)))
        }
        AdminAuth::Password { .. } | AdminAuth::Local => Ok(None),
    }
}

/// Connects as the administrator: logs in with the password, uses the admin token, or runs pvesh.
///
/// `admin_token` is the (token id, secret) read from `PVETOKEN_ADMIN_TOKEN_FILE` by the caller through the token
/// store when `admin` is [`AdminAuth::TokenFile`].
pub async fn connect_admin(
    target: &Target,
    http: Option<&reqwest::Client>,
    admin: &AdminAuth,
    timeout: std::time::Duration,
) -> Result<pvetoken_client::pve::PveClient, CliError> {
    use pvetoken_client::pve::PveClient;
    let admin_token = read_admin_token(admin)?;
    match (target, http) {
        (Target::Local { pvesh }, _) => Ok(PveClient::local(pvesh.clone(), timeout).without_env(env_vars::CREDENTIALS)),
        (Target::Remote { endpoint, .. }, Some(http)) => match admin {
            AdminAuth::Password { user, password, source } => {
                PveClient::login(http.clone(), endpoint.clone(), user, password).await.map_err(|error| {
                    let mut cli = remote_error(&error, target);
                    if matches!(error, pvetoken_client::ClientError::AuthFailed { .. }) {
                        cli.message =
                            format!("login as {user} failed: wrong password or user (password from {source})");
                        cli.hint = Some(format!(
                            "check the password in {source} and the realm of --auth-user ({user}); PVE answers every \
                             failed login with the same message on purpose"
                        ));
                    }
                    cli
                })
            }
            AdminAuth::TokenFile(path) => match &admin_token {
                Some((token_id, secret)) => Ok(PveClient::with_token(http.clone(), endpoint.clone(), token_id, secret)),
                None => Err(CliError::usage(format!("the admin token file {} was not read", path.display()))),
            },
            AdminAuth::Local => Err(CliError::usage("--local cannot be combined with --url")),
        },
        (Target::Remote { .. }, None) => Err(CliError::usage("no HTTP client for a remote target")),
    }
}

/// An administrator logged in to one target: the client, the target (for error messages) and the connection pool
/// (reused to act as a token).
pub struct AdminSession {
    /// The logged-in client.
    pub client: pvetoken_client::pve::PveClient,
    /// Where its requests go.
    pub target: Target,
    /// The connection pool (none for `--local`).
    pub http: Option<reqwest::Client>,
    /// The request timeout.
    pub timeout: std::time::Duration,
}

impl AdminSession {
    /// [`remote_error`] for this session's target.
    pub fn remote(&self, error: &pvetoken_client::ClientError) -> CliError {
        remote_error(error, &self.target)
    }
}

impl ConnectionArgs {
    /// Logs in as the administrator at `target` (see [`ConnectionArgs::resolve_target`]): the credentials from
    /// [`ConnectionArgs::resolve_admin`], one HTTP client, [`connect_admin`].
    pub async fn admin_session(&self, target: Target) -> Result<AdminSession, CliError> {
        let admin = self.resolve_admin()?;
        let timeout = self.timeout();
        let http = http_client(&target, timeout)?;
        let client = connect_admin(&target, http.as_ref(), &admin, timeout).await?;
        Ok(AdminSession { client, target, http, timeout })
    }
}

/// The TLS settings of a service other than PVE (Semaphore, OpenBao): its CA file, its pinned certificate
/// fingerprint as given by `what` (a flag, or a sink record), or neither.
pub fn service_tls(
    what: &str,
    ca_file: &Option<PathBuf>,
    fingerprint: &Option<String>,
    insecure: bool,
) -> Result<TlsSettings, CliError> {
    let fingerprint = fingerprint.as_deref().map(str::parse::<Fingerprint>).transpose().map_err(|error| {
        CliError::usage(format!("{what}: {error}")).with_hint(
            "the SHA-256 fingerprint of the service's certificate: openssl s_client -connect HOST:PORT \
                 </dev/null | openssl x509 -noout -fingerprint -sha256",
        )
    })?;
    Ok(TlsSettings { ca_file: ca_file.clone(), fingerprint, insecure })
}

/// [`pvetoken_lifecycle::target::remote_error`] as the CLI's error (its exit code: 2 for bad input, else 3).
pub fn remote_error(error: &pvetoken_client::ClientError, target: &Target) -> CliError {
    pvetoken_lifecycle::target::remote_error(error, target).into()
}

/// A token over plain HTTP to anything but loopback needs `--allow-http`, and is warned about even then.
pub fn check_plain_http(addresses: &[String], allowed: bool, printer: &Printer) -> Result<(), CliError> {
    for address in addresses {
        let Ok(url) = url::Url::parse(address) else { continue };
        if url.scheme() != "http" {
            continue;
        }
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        if loopback {
            continue;
        }
        if !allowed {
            return Err(CliError::usage(format!(
                "{address} is plain HTTP: the Proxmox token would cross the network unencrypted"
            ))
            .with_hint("use https:// (OpenBao's listener with TLS), or pass --allow-http if you accept the risk"));
        }
        printer.warn(&format!("{address} is plain HTTP: the token crosses the network unencrypted (--allow-http)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{ConnectionArgs, Target, TargetFallback};

    #[test]
    fn a_bare_host_resolves_to_https_on_8006_with_the_pin_from_the_token_file() {
        let args = ConnectionArgs { auth_user: "root@pam".into(), ..ConnectionArgs::default() };
        let fallback =
            TargetFallback { url: Some("pve.lan".into()), fingerprint: Some("00".repeat(32)), ca_file: None };
        match args.resolve_target_quietly(&fallback).expect("resolves") {
            Target::Remote { endpoint, tls } => {
                assert_eq!(endpoint.base(), "https://pve.lan:8006");
                assert!(tls.fingerprint.is_some());
            }
            Target::Local { .. } => panic!("not local"),
        }
    }

    #[test]
    fn a_token_id_as_auth_user_is_refused_with_the_admin_token_hint() {
        let args = ConnectionArgs { auth_user: "root@pam!ci".into(), ..ConnectionArgs::default() };
        let error = args.resolve_admin().expect_err("token id");
        assert!(error.hint.unwrap_or_default().contains("PVETOKEN_ADMIN_TOKEN_FILE"));
    }

    #[test]
    fn no_url_anywhere_is_a_usage_error_naming_the_flag() {
        let args = ConnectionArgs { auth_user: "root@pam".into(), ..ConnectionArgs::default() };
        if std::env::var_os("PVETOKEN_URL").is_none() {
            let error = args.resolve_target_quietly(&TargetFallback::default()).expect_err("no url");
            assert!(error.hint.unwrap_or_default().contains("--url"));
        }
    }
}
