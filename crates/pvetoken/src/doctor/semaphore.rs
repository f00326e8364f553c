//! Semaphore: reachable, the login works, the project and the environment exist, the environment holds the
//! expected variable names as `env` secrets (what `pvetoken register semaphore` writes and what the design note's
//! "Verify Registration" step looks for), and a template of the project uses that environment (a template runs
//! with its own environment's variables only: "environment not attached to a template" is the design note's common
//! failure).

use pvetoken_api::semaphore::{Environment, Project, SecretType, Template};
use pvetoken_client::semaphore::{ProjectRef, SemaphoreAuth, SemaphoreClient, SemaphoreError};
use pvetoken_client::{ClientError, TlsSettings};

use super::{Finding, Severity, id};

const CHECK: &str = "semaphore";

/// Where and what to check.
pub struct Target<'a> {
    /// Base URL.
    pub url: &'a str,
    /// Project id or name.
    pub project: &'a str,
    /// Environment name.
    pub environment: &'a str,
    /// Expected variable names.
    pub names: &'a [&'a str],
    /// TLS settings.
    pub tls: &'a TlsSettings,
    /// Login name (for messages and fixes).
    pub user: &'a str,
}

/// Runs the Semaphore checks in order, stopping at the first failure.
pub async fn check(target: &Target<'_>, auth: SemaphoreAuth) -> (Vec<Finding>, String) {
    let register = format!(
        "pvetoken register semaphore --url {} --project {} --environment {}",
        target.url, target.project, target.environment
    );
    let http = match pvetoken_client::tls::http_client(target.tls) {
        Ok(http) => http,
        Err(error) => {
            return (vec![connect_finding(&SemaphoreError::Client(error), target)], "cannot build a client".to_owned());
        }
    };
    let client = match SemaphoreClient::connect(http, target.url, auth).await {
        Ok((client, _user)) => client,
        Err(error) => return (vec![connect_finding(&error, target)], "cannot log in".to_owned()),
    };
    let reference: ProjectRef = target.project.parse().unwrap_or(ProjectRef::Name(target.project.to_owned()));
    let project = match client.resolve_project(&reference).await {
        Ok(project) => project,
        Err(error) => {
            let finding = Finding::new(id::SEMAPHORE_PROJECT_MISSING, Severity::Blocking, CHECK, error.to_string())
                .why("the environment lives in a project; the user must be a member of it")
                .fix("in Semaphore: add the user to the project (role Manager or Owner)")
                .fix("pvetoken doctor --semaphore-project ID   (one of the visible projects)");
            client.logout().await;
            return (vec![finding], "project not found".to_owned());
        }
    };
    let environments = client.environments_named(project.id, target.environment).await;
    let templates = match &environments {
        Ok(found) if !found.is_empty() => Some(client.templates(project.id).await),
        _ => None,
    };
    client.logout().await;
    let environments = match environments {
        Ok(environments) => environments,
        Err(error) => {
            let finding = Finding::new(id::SEMAPHORE_REQUEST_FAILED, Severity::Error, CHECK, error.to_string())
                .why("the environments could not be listed")
                .fix(register);
            return (vec![finding], "cannot list environments".to_owned());
        }
    };
    let Some(environment) = environments.first() else {
        let finding = Finding::new(
            id::SEMAPHORE_ENVIRONMENT_MISSING,
            Severity::Error,
            CHECK,
            format!("project {} ({}) has no environment named {}", project.name, project.id, target.environment),
        )
        .why(
            "templates using it cannot reach Proxmox; the guest-side registration did not run or failed (was the \
              token file there? see /var/log/privatebox-setup.log)",
        )
        .fix(format!("{register} --token-file /root/.proxmox-api-token"));
        return (vec![finding], "environment missing".to_owned());
    };
    let mut findings = environment_findings(target, environment, &register);
    match templates {
        Some(Ok(templates)) => findings.extend(unused_environment(target, &project, &environments, &templates)),
        Some(Err(error)) => findings.push(
            Finding::new(id::SEMAPHORE_REQUEST_FAILED, Severity::Error, CHECK, error.to_string())
                .why("the templates could not be listed: doctor cannot say whether one uses the environment")
                .fix(format!(
                    "in Semaphore: Task Templates → each template → Edit → Variable Group {}",
                    target.environment
                )),
        ),
        None => {}
    }
    let detail = format!(
        "environment {} (id {}) in project {} has {} secret(s)",
        target.environment,
        environment.id,
        project.name,
        environment.secrets.len()
    );
    (findings, detail)
}

/// What is wrong inside the environment: wanted secrets missing, secrets of type `var` (never environment
/// variables), the token secret in the plain `env` JSON.
fn environment_findings(target: &Target<'_>, environment: &Environment, register: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let missing: Vec<&str> = target
        .names
        .iter()
        .copied()
        .filter(|name| !environment.secrets.iter().any(|secret| secret.name == *name))
        .collect();
    if !missing.is_empty() {
        findings.push(
            Finding::new(
                id::SEMAPHORE_VARIABLES_MISSING,
                Severity::Error,
                CHECK,
                format!("environment {} lacks the secrets {}", target.environment, missing.join(", ")),
            )
            .why("playbooks reading them (lookup('env', ...)) get empty values and fail against PVE")
            .fix(format!("{register} --layout seed|community-proxmox")),
        );
    }
    let as_vars: Vec<&str> = environment
        .secrets
        .iter()
        .filter(|secret| secret.kind == SecretType::Var && target.names.contains(&secret.name.as_str()))
        .map(|secret| secret.name.as_str())
        .collect();
    if !as_vars.is_empty() {
        findings.push(
            Finding::new(
                id::SEMAPHORE_SECRET_TYPE_VAR,
                Severity::Error,
                CHECK,
                format!("{} are `var` secrets (Ansible extra vars), not `env`", as_vars.join(", ")),
            )
            .why(
                "a `var` secret never becomes an environment variable: lookup('env', ...) finds nothing (PrivateBox's \
                  03eee91 bug)",
            )
            .fix(register),
        );
    }
    let plain_env = environment.env.as_deref().unwrap_or_default();
    if plain_env.contains("PROXMOX_TOKEN_SECRET") {
        findings.push(
            Finding::new(
                id::SEMAPHORE_SECRET_IN_PLAIN_ENV,
                Severity::Warning,
                CHECK,
                format!("environment {} holds PROXMOX_TOKEN_SECRET in its plain `env` JSON", target.environment),
            )
            .why("plain variables are shown in the UI and the API to every project member; secrets are not")
            .fix(register),
        );
    }
    findings
}

/// `semaphore-environment-unused`: the environment exists but no template of the project has it as its
/// `environment_id`; names the templates that use another environment (or none) so the user knows which to edit.
fn unused_environment(
    target: &Target<'_>,
    project: &Project,
    environments: &[Environment],
    templates: &[Template],
) -> Option<Finding> {
    let ours: Vec<i64> = environments.iter().map(|env| env.id).collect();
    if templates.iter().any(|template| template.environment_id.is_some_and(|id| ours.contains(&id))) {
        return None;
    }
    let environment_id = ours.first().copied().unwrap_or_default();
    let others: Vec<String> = templates
        .iter()
        .map(|template| match template.environment_id {
            Some(id) => format!("{} (environment id {id})", template.name),
            None => format!("{} (no environment)", template.name),
        })
        .collect();
    let what = if others.is_empty() {
        format!(
            "no template of project {} ({}) uses environment {} (id {environment_id}): the project has no template",
            project.name, project.id, target.environment
        )
    } else {
        format!(
            "no template of project {} ({}) uses environment {} (id {environment_id}); templates use another: {}",
            project.name,
            project.id,
            target.environment,
            others.join(", ")
        )
    };
    Some(
        Finding::new(id::SEMAPHORE_ENVIRONMENT_UNUSED, Severity::Warning, CHECK, what)
            .why(
                "a task gets the variables and secrets of its template's environment only: templates without this \
                 one run without PROXMOX_* and fail against PVE (\"environment not attached to a template\")",
            )
            .fix(format!(
                "in Semaphore: project {} → Task Templates → the template → Edit → Variable Group (Environment): {}",
                project.name, target.environment
            ))
            .fix(format!(
                "or by API: GET /api/project/{}/templates/ID, set \"environment_id\": {environment_id}, PUT the whole \
                 template back to /api/project/{}/templates/ID",
                project.id, project.id
            )),
    )
}

fn connect_finding(error: &SemaphoreError, target: &Target<'_>) -> Finding {
    let (id, why, fix) = match error {
        SemaphoreError::LoginRefused { .. } | SemaphoreError::TokenRefused => (
            id::SEMAPHORE_LOGIN_REFUSED,
            "the credentials given to doctor (SEMAPHORE_PASSWORD / SEMAPHORE_API_TOKEN) are wrong; for PrivateBox the \
             admin password is SERVICES_PASSWORD",
            format!("check the password of `{}`, or create an API token in Semaphore (User → API tokens)", target.user),
        ),
        SemaphoreError::Client(ClientError::CertificateMismatch { presented, .. }) => (
            id::SEMAPHORE_TLS,
            "Semaphore's certificate is not the pinned one",
            format!("pvetoken doctor --semaphore-fingerprint {presented}   (after checking it on the Semaphore host)"),
        ),
        SemaphoreError::Client(ClientError::CertificateUntrusted { .. }) => (
            id::SEMAPHORE_TLS,
            "Semaphore's certificate is not trusted",
            "pvetoken doctor --semaphore-fingerprint SHA256 | --semaphore-ca-file PEM".to_owned(),
        ),
        SemaphoreError::PlainHttpServer { .. }
        | SemaphoreError::HttpsServer { .. }
        | SemaphoreError::NotSemaphore { .. } => (
            id::SEMAPHORE_NOT_SEMAPHORE,
            "the URL does not reach Semaphore's API (wrong scheme or port)",
            "pvetoken doctor --semaphore-url http(s)://HOST:PORT   (PrivateBox: https://localhost:2443)".to_owned(),
        ),
        // A server answered, with a status Semaphore's login never gives (a PVE proxy's 501, a web server's 404).
        SemaphoreError::Client(client) if client.status().is_some() => (
            id::SEMAPHORE_NOT_SEMAPHORE,
            "a server answered at this URL, but not as Semaphore's API does (another service on that port?)",
            "pvetoken doctor --semaphore-url http(s)://HOST:PORT   (PrivateBox: https://localhost:2443)".to_owned(),
        ),
        _ => (
            id::SEMAPHORE_UNREACHABLE,
            "Semaphore is not running or not reachable from here",
            "systemctl status semaphore   (PrivateBox: podman ps; journalctl -u semaphore)".to_owned(),
        ),
    };
    Finding::new(id, Severity::Blocking, CHECK, error.to_string()).why(why).fix(fix)
}
