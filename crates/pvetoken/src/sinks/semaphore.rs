//! A Semaphore UI environment ("Variable Group") holding the token as secrets of type `env`: registered by
//! `pvetoken register semaphore`, brought up to date when the token changes.
//!
//! Semaphore never returns secret values, so "unchanged" cannot be decided from Semaphore alone: after a verified
//! registration pvetoken keeps a SHA-256 digest of what it stored (never the values) in
//! `<token file>.semaphore.json` (0600). A rerun with the same variables, the same secret names in Semaphore and
//! the same digest changes nothing; anything else replaces the secrets (delete + create in one update, which works
//! on every Semaphore since 2.10.13, where `update` was a no-op until at least 2.14).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use pvetoken_api::semaphore::{
    Environment, EnvironmentRequest, EnvironmentSecretRequest, Project, SecretOperation, SecretType,
};
use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_client::semaphore::{Created, ProjectRef, SemaphoreAuth, SemaphoreClient, SemaphoreError};
use pvetoken_client::{ClientError, TlsSettings};
use pvetoken_lifecycle::env_vars;
use pvetoken_render::TokenFile;
use pvetoken_render::consumers::SemaphoreLayout;
use sha2::{Digest, Sha256};

use crate::connection::{env_secret, read_secret_line, service_tls};
use crate::exit::CliError;
use crate::printer::Printer;

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

/// Resolved settings of one registration.
#[derive(Debug)]
pub(crate) struct Settings {
    /// Semaphore's base URL.
    pub(crate) url: String,
    /// The project, by id or name.
    pub(crate) project: ProjectRef,
    /// The environment's name.
    pub(crate) environment: String,
    /// Which variables the environment holds.
    pub(crate) layout: SemaphoreLayout,
    /// The token file whose token is registered.
    pub(crate) token_file: PathBuf,
    /// How Semaphore's certificate is checked.
    pub(crate) tls: TlsSettings,
}

/// Checks, before `rotate` changes anything, that the credentials of a remembered Semaphore sink are at hand (no
/// request is made: a login is only tried when the sink is updated).
pub(crate) fn credentials_ready(sink: &SemaphoreSink) -> anyhow::Result<()> {
    sink_auth(sink)?;
    Ok(())
}

/// The credentials a remembered sink names (a login is `admin` unless it recorded another user).
fn sink_auth(sink: &SemaphoreSink) -> Result<SemaphoreAuth, CliError> {
    let user = sink.user.as_deref().unwrap_or("admin");
    resolve_auth(sink.api_token_file.as_deref(), sink.password_file.as_deref(), user, std::io::stdin().is_terminal())
}

/// Brings a remembered Semaphore sink up to date with a (rotated) token (`rotate`, and `create`/`apply` when they
/// make a new secret).
///
/// The token is passed as the token file's path so this function reads it through the token store.
///
/// Async because `rotate` calls it from inside its own runtime (starting a second runtime there panics).
pub(crate) async fn refresh(sink: &SemaphoreSink, token_file: &Path, printer: &Printer) -> anyhow::Result<()> {
    let layout = SemaphoreLayout::parse(&sink.layout)
        .ok_or_else(|| CliError::usage(format!("remembered Semaphore sink has an unknown layout `{}`", sink.layout)))?;
    let tls = service_tls("the recorded pin", &sink.ca_file, &sink.fingerprint, false)?;
    let settings = Settings {
        url: sink.url.clone(),
        project: sink.project.parse().unwrap_or(ProjectRef::Name(sink.project.clone())),
        environment: sink.environment.clone(),
        layout,
        token_file: token_file.to_path_buf(),
        tls,
    };
    crate::connection::check_plain_http(std::slice::from_ref(&settings.url), sink.allow_http, printer)?;
    let report = register(&settings, sink_auth(sink)?).await?;
    printer.info(&report.sentence(&settings));
    Ok(())
}

/// API token (file, then SEMAPHORE_API_TOKEN), else password (file, then SEMAPHORE_PASSWORD, then a prompt on a
/// terminal). Never an argument; never a prompt without a terminal.
pub(crate) fn resolve_auth(
    api_token_file: Option<&Path>,
    password_file: Option<&Path>,
    user: &str,
    interactive: bool,
) -> Result<SemaphoreAuth, CliError> {
    if let Some(path) = api_token_file {
        return Ok(SemaphoreAuth::ApiToken(read_secret_line(path, "--api-token-file")?));
    }
    if password_file.is_none()
        && let Some(token) = env_secret(env_vars::SEMAPHORE_API_TOKEN)?
    {
        return Ok(SemaphoreAuth::ApiToken(token));
    }
    let password = if let Some(path) = password_file {
        read_secret_line(path, "--password-file")?
    } else if let Some(password) = env_secret(env_vars::SEMAPHORE_PASSWORD)? {
        password
    } else if interactive {
        let value = rpassword::prompt_password(format!("Semaphore password for {user}: "))
            .map_err(|error| CliError::usage(format!("cannot read the password from the terminal: {error}")))?;
        Secret::from(value)
    } else {
        return Err(CliError::usage("no Semaphore credentials (stdin is not a terminal, so no prompt)").with_hint(
            format!(
                "set {} or pass --api-token-file FILE (preferred), or set {} / --password-file FILE for a login",
                env_vars::SEMAPHORE_API_TOKEN,
                env_vars::SEMAPHORE_PASSWORD
            ),
        ));
    };
    Ok(SemaphoreAuth::Password { user: user.to_owned(), password })
}

/// Reads the token file through the token store (strict parser, never a shell; a file readable by group or others
/// is refused with the `chmod 600` fix). Errors never echo a value.
fn read_token_file(path: &Path) -> Result<TokenFile, CliError> {
    pvetoken_lifecycle::token_store::read(path).map_err(|mut error| {
        if error.message.contains("does not exist") {
            error.hint = Some(
                "create it with `pvetoken create`, or pass --token-file PATH (or --if-token-file to skip quietly)"
                    .to_owned(),
            );
        }
        error.into()
    })
}

/// SHA-256 over the layout and every name and value (the values cannot be recovered from it: the token secret is a
/// random UUID).
fn digest(layout: SemaphoreLayout, variables: &[(&'static str, Secret)]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"pvetoken-semaphore-v1\0");
    hasher.update(layout.name().as_bytes());
    for (name, value) in variables {
        hasher.update([0]);
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(value.expose_secret().as_bytes());
    }
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Created,
    Updated,
    Unchanged,
}

impl Status {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        }
    }
}

/// What one registration did.
pub(crate) struct Report {
    pub(crate) status: Status,
    pub(crate) project: Project,
    pub(crate) environment_id: i64,
    pub(crate) variables: Vec<&'static str>,
}

impl Report {
    pub(crate) fn sentence(&self, settings: &Settings) -> String {
        format!(
            "{}: Semaphore environment `{}` (id {}) in project `{}` (id {}) at {}: {} as env secrets, verified",
            self.status.word(),
            settings.environment,
            self.environment_id,
            self.project.name,
            self.project.id,
            settings.url,
            self.variables.join(", ")
        )
    }
}

/// Registers the token file's token in the environment (created, updated or left as it is), reads it back and
/// verifies it.
pub(crate) async fn register(settings: &Settings, auth: SemaphoreAuth) -> anyhow::Result<Report> {
    let token = read_token_file(&settings.token_file)?;
    let wanted = settings.layout.variables(&token);
    let wanted_digest = digest(settings.layout, &wanted);
    let http = pvetoken_client::http_client(&settings.tls).map_err(|error| CliError::usage(error.to_string()))?;
    let (client, _user) =
        SemaphoreClient::connect(http, &settings.url, auth).await.map_err(|error| explain(error, settings))?;
    let outcome = register_with(&client, settings, &wanted, &wanted_digest).await;
    client.logout().await;
    outcome
}

async fn register_with(
    client: &SemaphoreClient,
    settings: &Settings,
    wanted: &[(&'static str, Secret)],
    wanted_digest: &str,
) -> anyhow::Result<Report> {
    let fail = |error| explain(error, settings);
    let project = client.resolve_project(&settings.project).await.map_err(fail)?;
    let existing = client.environments_named(project.id, &settings.environment).await.map_err(fail)?;
    let names: Vec<&'static str> = wanted.iter().map(|(name, _)| *name).collect();
    let state = RegistrationState::new(&settings.token_file);
    let key = state_key(settings, project.id);
    let (status, environment_id) = match existing.as_slice() {
        [] => (Status::Created, create(client, settings, &project, wanted).await?),
        [env] => {
            let same_values = state.digest(&key).is_some_and(|(id, digest)| id == env.id && digest == wanted_digest);
            (update(client, settings, &project, env, wanted, same_values).await?, env.id)
        }
        many => return Err(ambiguous(settings, &project, many).into()),
    };
    let stored = client.environment(project.id, environment_id).await.map_err(fail)?;
    verify(&stored, &names)?;
    state.save(&key, environment_id, wanted_digest)?;
    Ok(Report { status, project, environment_id, variables: names })
}

/// The secret operations that create every wanted variable.
fn secret_creates(wanted: &[(&'static str, Secret)]) -> Vec<EnvironmentSecretRequest> {
    wanted
        .iter()
        .map(|(name, value)| EnvironmentSecretRequest {
            id: None,
            name: (*name).to_owned(),
            secret: Some(Secret::from(value.expose_secret().to_owned())),
            kind: Some(SecretType::Env),
            operation: Some(SecretOperation::Create),
        })
        .collect()
}

/// Creates the environment with every variable; its id. A failed create is rolled back (or explained).
async fn create(
    client: &SemaphoreClient,
    settings: &Settings,
    project: &Project,
    wanted: &[(&'static str, Secret)],
) -> anyhow::Result<i64> {
    let request = EnvironmentRequest {
        id: None,
        name: settings.environment.clone(),
        project_id: project.id,
        password: None,
        json: "{}".to_owned(),
        env: Some("{}".to_owned()),
        secrets: secret_creates(wanted),
    };
    let known: Vec<i64> =
        client.environments(project.id).await.map_err(|e| explain(e, settings))?.iter().map(|env| env.id).collect();
    match client.create_environment(project.id, &request, &known).await {
        Ok(Created::Id(id)) => Ok(id),
        Ok(Created::Unknown) => Err(CliError::remote(format!(
            "Semaphore accepted the environment `{}` but it cannot be found by name afterwards",
            settings.environment
        ))
        .with_hint("rerun the same command: it finds the environment by name and finishes the job")
        .into()),
        Err(error) => Err(roll_back(client, settings, project.id, &known, error).await),
    }
}

/// Leaves `env` alone when it holds exactly the wanted names as `env` secrets and the digest says their values
/// are the ones stored last; otherwise replaces the managed secrets (delete and create in one update).
async fn update(
    client: &SemaphoreClient,
    settings: &Settings,
    project: &Project,
    env: &Environment,
    wanted: &[(&'static str, Secret)],
    same_values: bool,
) -> anyhow::Result<Status> {
    let managed: Vec<_> =
        env.secrets.iter().filter(|secret| SemaphoreLayout::managed_names().contains(&secret.name.as_str())).collect();
    let present: BTreeSet<&str> = managed.iter().map(|secret| secret.name.as_str()).collect();
    let same_names = managed.len() == wanted.len()
        && present == wanted.iter().map(|(name, _)| *name).collect()
        && managed.iter().all(|secret| secret.kind == SecretType::Env);
    if same_names && same_values {
        return Ok(Status::Unchanged);
    }
    let mut secrets: Vec<EnvironmentSecretRequest> = managed
        .iter()
        .map(|secret| EnvironmentSecretRequest {
            id: Some(secret.id),
            name: secret.name.clone(),
            secret: None,
            kind: Some(secret.kind),
            operation: Some(SecretOperation::Delete),
        })
        .collect();
    secrets.extend(secret_creates(wanted));
    let request = EnvironmentRequest {
        id: Some(env.id),
        name: env.name.clone(),
        project_id: project.id,
        password: env.password.clone(),
        json: if env.json.trim().is_empty() { "{}".to_owned() } else { env.json.clone() },
        env: env.env.clone().or_else(|| Some("{}".to_owned())),
        secrets,
    };
    client.update_environment(project.id, env.id, &request).await.map_err(|error| {
        anyhow::Error::from(explain(error, settings)).context(format!(
            "updating environment `{}` (id {}) failed part-way; rerun the same command to finish it",
            env.name, env.id
        ))
    })?;
    Ok(Status::Updated)
}

/// Several environments carry the name: pvetoken does not guess.
fn ambiguous(settings: &Settings, project: &Project, many: &[Environment]) -> CliError {
    let ids: Vec<String> = many.iter().map(|env| env.id.to_string()).collect();
    CliError::remote(format!(
        "{} environments in Semaphore project `{}` are named `{}` (ids {}); pvetoken will not guess which one to \
         update",
        many.len(),
        project.name,
        settings.environment,
        ids.join(", ")
    ))
    .with_hint("delete or rename the extra ones in Semaphore (Variable Groups), or choose another --environment")
}

/// Reads back: every wanted name exactly once, as `env`, and no other pvetoken-managed name.
fn verify(stored: &Environment, names: &[&'static str]) -> Result<(), CliError> {
    let managed: Vec<_> = stored
        .secrets
        .iter()
        .filter(|secret| SemaphoreLayout::managed_names().contains(&secret.name.as_str()))
        .collect();
    let mut problems = Vec::new();
    for name in names {
        let found: Vec<_> = managed.iter().filter(|secret| secret.name == *name).collect();
        match found.as_slice() {
            [one] if one.kind == SecretType::Env => {}
            [_] => problems.push(format!("{name} is not of type env")),
            [] => problems.push(format!("{name} is missing")),
            _ => problems.push(format!("{name} is present {} times", found.len())),
        }
    }
    for secret in &managed {
        if !names.contains(&secret.name.as_str()) {
            problems.push(format!("{} is left over from another layout", secret.name));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::remote(format!(
        "verification of environment `{}` (id {}) failed: {}",
        stored.name,
        stored.id,
        problems.join("; ")
    ))
    .with_hint("rerun the same command to replace the secrets; the token file was kept"))
}

/// After a failed create: remove any environment of that name that was not there before (Semaphore stores the row
/// before the secrets, so a failure can leave a half-made one).
async fn roll_back(
    client: &SemaphoreClient,
    settings: &Settings,
    project_id: i64,
    known: &[i64],
    error: SemaphoreError,
) -> anyhow::Error {
    let cause = explain(error, settings);
    let leftovers: Vec<i64> = match client.environments(project_id).await {
        Ok(list) => list
            .into_iter()
            .filter(|env| env.name == settings.environment && !known.contains(&env.id))
            .map(|env| env.id)
            .collect(),
        Err(_) => {
            return anyhow::Error::from(cause).context(
                "creating the environment failed and Semaphore could not be asked what was left; rerun the same \
                 command to finish",
            );
        }
    };
    let mut kept = Vec::new();
    for id in &leftovers {
        if client.delete_environment(project_id, *id).await.is_err() {
            kept.push(id.to_string());
        }
    }
    let note = if kept.is_empty() {
        if leftovers.is_empty() {
            "creating the environment failed; nothing was left behind".to_owned()
        } else {
            "creating the environment failed; the half-made environment was removed".to_owned()
        }
    } else {
        format!(
            "creating the environment failed; half-made environment id {} is left, rerun to finish it",
            kept.join(", ")
        )
    };
    anyhow::Error::from(cause).context(note)
}

/// Turns a Semaphore error into a CLI error with the fix.
fn explain(error: SemaphoreError, settings: &Settings) -> CliError {
    let url = &settings.url;
    let message = error.to_string();
    match error {
        SemaphoreError::PlainHttpServer { .. } => CliError::remote(message).with_hint(format!(
            "Semaphore listens on plain HTTP here: use --url {}",
            url.replacen("https://", "http://", 1)
        )),
        SemaphoreError::HttpsServer { .. } => CliError::remote(message)
            .with_hint(format!("Semaphore speaks HTTPS here: use --url {}", url.replacen("http://", "https://", 1))),
        SemaphoreError::LoginRefused { .. } => CliError::remote(message).with_hint(format!(
            "check --user and the password ({} or --password-file); prefer an API token ({} or --api-token-file)",
            env_vars::SEMAPHORE_PASSWORD,
            env_vars::SEMAPHORE_API_TOKEN
        )),
        SemaphoreError::TokenRefused => CliError::remote(message)
            .with_hint("create a new API token in Semaphore (User menu > API tokens, or POST /api/user/tokens)"),
        SemaphoreError::Forbidden { .. } => {
            CliError::remote(format!("{message}: the user may not change environments in project {}", settings.project))
                .with_hint(
                    "the user needs the owner or manager role in the project (guest and task_runner can only read)",
                )
        }
        SemaphoreError::ProjectNotFound { .. } | SemaphoreError::ProjectAmbiguous { .. } => CliError::remote(message)
            .with_hint("pass --project with the id or exact name of a project the user is a member of"),
        SemaphoreError::NotSemaphore { .. } => {
            CliError::remote(message).with_hint("check --url: it must point at Semaphore UI, e.g. https://host:3000")
        }
        SemaphoreError::Client(client) => match client {
            ClientError::InvalidUrl { .. } | ClientError::CaFile { .. } | ClientError::Tls { .. } => {
                CliError::usage(message)
            }
            ClientError::Unreachable { .. } => CliError::remote(message)
                .with_hint(format!("is Semaphore running and reachable at {url}? check the host, port and scheme")),
            ClientError::CertificateUntrusted { .. } | ClientError::CertificateMismatch { .. } => {
                CliError::remote(message)
                    .with_hint("pass --ca-file PEM or --fingerprint SHA256 for Semaphore's certificate")
            }
            _ => CliError::remote(message),
        },
        _ => CliError::remote(message),
    }
}

fn state_key(settings: &Settings, project_id: i64) -> String {
    format!("{}|{}|{}", settings.url.trim_end_matches('/'), project_id, settings.environment)
}

/// `<token file>.semaphore.json`: what pvetoken last stored in each environment, as a digest (no secret).
struct RegistrationState {
    path: PathBuf,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct StateFile {
    registrations: std::collections::BTreeMap<String, StateEntry>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StateEntry {
    environment_id: i64,
    digest: String,
}

impl RegistrationState {
    fn new(token_file: &Path) -> Self {
        Self { path: pvetoken_lifecycle::token_store::companion(token_file, ".semaphore.json") }
    }

    fn load(&self) -> StateFile {
        std::fs::read_to_string(&self.path).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default()
    }

    fn digest(&self, key: &str) -> Option<(i64, String)> {
        self.load().registrations.remove(key).map(|entry| (entry.environment_id, entry.digest))
    }

    fn save(&self, key: &str, environment_id: i64, digest: &str) -> anyhow::Result<()> {
        let mut file = self.load();
        file.registrations.insert(key.to_owned(), StateEntry { environment_id, digest: digest.to_owned() });
        let text = serde_json::to_string_pretty(&file)?;
        pvetoken_lifecycle::token_store::write_secret_file_atomic(&self.path, text.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> TokenFile {
        TokenFile::new(
            "https://192.168.1.10:8006",
            "pve",
            "automation@pve!ansible".parse().expect("valid id"),
            Secret::from("11111111-2222-3333-4444-555555555555".to_owned()),
        )
        .expect("valid url")
    }

    #[test]
    fn digest_changes_with_the_secret_and_does_not_contain_it() {
        let first = digest(SemaphoreLayout::Seed, &SemaphoreLayout::Seed.variables(&token()));
        let mut rotated = token();
        rotated.secret = Secret::from("99999999-2222-3333-4444-555555555555".to_owned());
        let second = digest(SemaphoreLayout::Seed, &SemaphoreLayout::Seed.variables(&rotated));
        assert_ne!(first, second);
        assert!(!first.contains("11111111"));
    }

    #[test]
    fn no_prompt_and_a_clear_hint_without_a_terminal() {
        // Only meaningful when the test runner's environment carries no Semaphore credentials.
        let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
        if set(env_vars::SEMAPHORE_API_TOKEN) || set(env_vars::SEMAPHORE_PASSWORD) {
            return;
        }
        let error = resolve_auth(None, None, "admin", false).expect_err("no credentials");
        assert_eq!(error.exit, crate::exit::Exit::Usage);
        assert!(error.hint.unwrap_or_default().contains("SEMAPHORE_API_TOKEN"));
    }
}
