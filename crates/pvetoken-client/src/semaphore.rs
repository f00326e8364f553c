//! A client for Semaphore UI's API (`/api/...`), tolerant of the differences between 2.10 and 2.16+.
//!
//! Authentication is an API token sent as `Authorization: Bearer` (preferred: no session, not blocked by TOTP) or a
//! login (`POST /api/auth/login`, which answers 204 and a `semaphore` session cookie). The password only ever
//! travels inside the JSON body, serialized by serde, so quotes and backslashes in it are safe.
//!
//! Version tolerance (Semaphore's `api/` handlers and `api-docs.yml` across 2.10 - 2.19):
//! - creating an environment answers 201 with the environment (2.16) or 204 with no body (2.10): without an id in
//!   the answer, the new environment is found by listing and matching the name against the ids seen before;
//! - environment names are not unique in Semaphore: callers look environments up by name and decide what to do with
//!   duplicates ([`SemaphoreClient::environments_named`]);
//! - a secret `update` was a no-op until at least 2.14, so callers replace secrets by `delete` + `create`.

use std::fmt;
use std::str::FromStr;

use pvetoken_api::semaphore::{Environment, EnvironmentRequest, LoginRequest, Project, Template, User};
use pvetoken_api::{ExposeSecret, Secret};
use reqwest::header::{AUTHORIZATION, COOKIE, HeaderValue, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// How to authenticate to Semaphore.
pub enum SemaphoreAuth {
    /// An API token (`POST /api/user/tokens`), sent as a Bearer token.
    ApiToken(Secret),
    /// A login and password (a cookie session is opened).
    Password {
        /// Login or e-mail.
        user: String,
        /// The password.
        password: Secret,
    },
}

impl fmt::Debug for SemaphoreAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiToken(_) => f.write_str("ApiToken([REDACTED])"),
            Self::Password { user, .. } => write!(f, "Password {{ user: {user:?}, password: [REDACTED] }}"),
        }
    }
}

/// A project given by id (all digits) or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    /// `--project 1`
    Id(i64),
    /// `--project PrivateBox`
    Name(String),
}

impl FromStr for ProjectRef {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        Ok(match text.parse::<i64>() {
            Ok(id) if id > 0 && text.chars().all(|c| c.is_ascii_digit()) => Self::Id(id),
            _ => Self::Name(text.to_owned()),
        })
    }
}

impl fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// What can go wrong talking to Semaphore. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SemaphoreError {
    /// Transport, TLS or an error status not covered below.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An `https://` URL reached a server that answers in plain HTTP.
    #[error("{url} answered in plain HTTP, not HTTPS")]
    PlainHttpServer {
        /// The base URL.
        url: String,
    },
    /// An `http://` URL reached a server that speaks HTTPS.
    #[error("{url} speaks HTTPS, but the URL says http://")]
    HttpsServer {
        /// The base URL.
        url: String,
    },
    /// The server answered, but not as Semaphore's API does.
    #[error("{url} does not look like Semaphore's API ({detail})")]
    NotSemaphore {
        /// The base URL.
        url: String,
        /// What was seen.
        detail: String,
    },
    /// `POST /api/auth/login` answered 401.
    #[error("Semaphore refused the login of `{user}`: wrong login or password")]
    LoginRefused {
        /// The login.
        user: String,
    },
    /// The API token was refused (401).
    #[error("Semaphore refused the API token (unknown or expired)")]
    TokenRefused,
    /// 403 on a change: the user's project role may not do it.
    #[error("{method} {path}: Semaphore answered 403 Forbidden")]
    Forbidden {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
    },
    /// No project with that id or name is visible to the user.
    #[error("no Semaphore project `{project}` visible to this user (visible: {})", list_or_none(.visible))]
    ProjectNotFound {
        /// The project as given.
        project: String,
        /// `name (id N)` of the projects the user can see.
        visible: Vec<String>,
    },
    /// Several projects have that name.
    #[error("{} Semaphore projects are named `{name}` (ids {})", .ids.len(), join_ids(.ids))]
    ProjectAmbiguous {
        /// The name.
        name: String,
        /// Their ids.
        ids: Vec<i64>,
    },
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

impl SemaphoreError {
    /// Whether the failed request may have reached the server.
    pub fn sent(&self) -> crate::Sent {
        match self {
            Self::Client(error) => error.sent(),
            Self::PlainHttpServer { .. } => crate::Sent::No,
            Self::HttpsServer { .. } => crate::Sent::Maybe,
            _ => crate::Sent::Yes,
        }
    }
}

/// A logged-in Semaphore API client.
pub struct SemaphoreClient {
    http: reqwest::Client,
    base: String,
    host: String,
    credential: Credential,
}

enum Credential {
    Bearer(Secret),
    Cookie(Secret),
}

impl fmt::Debug for SemaphoreClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreClient").field("base", &self.base).finish_non_exhaustive()
    }
}

/// The answer to a create: 2.16 returns the environment, 2.10 nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The id the server returned or that the listing revealed.
    Id(i64),
    /// The server returned no id and the listing did not show a single new environment with that name.
    Unknown,
}

impl SemaphoreClient {
    /// Opens a session: with a token, checks it with `GET /api/user`; with a password, logs in.
    pub async fn connect(
        http: reqwest::Client,
        base_url: &str,
        auth: SemaphoreAuth,
    ) -> Result<(Self, User), SemaphoreError> {
        let parsed = url::Url::parse(base_url).map_err(|error| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason: format!("{error}; expected e.g. https://semaphore.lan:3000"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ClientError::InvalidUrl {
                url: base_url.to_owned(),
                reason: "expected an http:// or https:// URL with a host, e.g. https://semaphore.lan:3000".to_owned(),
            }
            .into());
        }
        let host = format!("{}:{}", parsed.host_str().unwrap_or_default(), parsed.port_or_known_default().unwrap_or(0));
        // Semaphore's API lives under `/api`; accept the base URL with or without it.
        let mut base = base_url.trim_end_matches('/').to_owned();
        if let Some(stripped) = base.strip_suffix("/api") {
            base = stripped.to_owned();
        }
        let mut client = Self { http, base, host, credential: Credential::Bearer(Secret::from(String::new())) };
        match auth {
            SemaphoreAuth::ApiToken(token) => {
                client.credential = Credential::Bearer(token);
                let user = client.get::<User>("/api/user").await.map_err(|error| match error {
                    SemaphoreError::Client(ClientError::AuthFailed { .. }) => SemaphoreError::TokenRefused,
                    other => other,
                })?;
                Ok((client, user))
            }
            SemaphoreAuth::Password { user, password } => {
                let cookie = client.login(&user, password).await?;
                client.credential = Credential::Cookie(cookie);
                let user = client.get::<User>("/api/user").await?;
                Ok((client, user))
            }
        }
    }

    /// The base URL (without `/api`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn login(&self, user: &str, password: Secret) -> Result<Secret, SemaphoreError> {
        let path = "/api/auth/login";
        let body = LoginRequest { auth: user.to_owned(), password };
        let response = self.raw(Method::POST, path, Some(&body), false).await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(SemaphoreError::LoginRefused { user: user.to_owned() });
        }
        let cookie =
            response.headers().get_all(SET_COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|line| {
                let pair = line.split(';').next()?.trim();
                let value = pair.strip_prefix("semaphore=")?;
                (!value.is_empty()).then(|| value.to_owned())
            });
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(self.status_error(&Method::POST, path, status, &bytes));
        }
        cookie.map(Secret::from).ok_or_else(|| SemaphoreError::NotSemaphore {
            url: self.base.clone(),
            detail: format!("POST {path} answered {status} without a `semaphore` session cookie"),
        })
    }

    /// Ends a cookie session (no-op for API tokens). Errors are ignored: the session expires on its own.
    pub async fn logout(&self) {
        if matches!(self.credential, Credential::Cookie(_)) {
            let _ = self.raw(Method::POST, "/api/auth/logout", None::<&()>, true).await;
        }
    }

    /// `GET /api/projects`: every project for an admin, the member projects for others.
    pub async fn projects(&self) -> Result<Vec<Project>, SemaphoreError> {
        self.get("/api/projects").await
    }

    /// Finds a project by id or name among those the user can see.
    pub async fn resolve_project(&self, reference: &ProjectRef) -> Result<Project, SemaphoreError> {
        let not_found = |projects: &[Project]| SemaphoreError::ProjectNotFound {
            project: reference.to_string(),
            visible: projects.iter().map(|p| format!("{} (id {})", p.name, p.id)).collect(),
        };
        match reference {
            ProjectRef::Id(id) => match self.get::<Project>(&format!("/api/project/{id}")).await {
                Ok(project) => Ok(project),
                Err(SemaphoreError::Client(error)) if error.status() == Some(404) => {
                    Err(not_found(&self.projects().await.unwrap_or_default()))
                }
                Err(other) => Err(other),
            },
            ProjectRef::Name(name) => {
                let projects = self.projects().await?;
                let exact: Vec<&Project> = projects.iter().filter(|p| p.name == *name).collect();
                let matches = if exact.is_empty() {
                    projects.iter().filter(|p| p.name.eq_ignore_ascii_case(name)).collect()
                } else {
                    exact
                };
                match matches.as_slice() {
                    [one] => Ok((*one).clone()),
                    [] => Err(not_found(&projects)),
                    many => Err(SemaphoreError::ProjectAmbiguous {
                        name: name.clone(),
                        ids: many.iter().map(|p| p.id).collect(),
                    }),
                }
            }
        }
    }

    /// `GET /api/project/{pid}/environment` (names and ids; secrets may be missing from a listing).
    pub async fn environments(&self, project_id: i64) -> Result<Vec<Environment>, SemaphoreError> {
        self.get(&format!("/api/project/{project_id}/environment?sort=name&order=asc")).await
    }

    /// `GET /api/project/{pid}/environment/{eid}`, with its secrets' ids, names and types.
    pub async fn environment(&self, project_id: i64, environment_id: i64) -> Result<Environment, SemaphoreError> {
        self.get(&format!("/api/project/{project_id}/environment/{environment_id}")).await
    }

    /// Every environment named exactly `name`, each read individually so that its secrets are listed.
    pub async fn environments_named(&self, project_id: i64, name: &str) -> Result<Vec<Environment>, SemaphoreError> {
        let mut found = Vec::new();
        for env in self.environments(project_id).await?.into_iter().filter(|env| env.name == name) {
            found.push(self.environment(project_id, env.id).await?);
        }
        Ok(found)
    }

    /// `POST /api/project/{pid}/environment`. Without an id in the answer (2.10's 204), lists the environments and
    /// takes the one named `request.name` whose id is not in `known_ids`.
    pub async fn create_environment(
        &self,
        project_id: i64,
        request: &EnvironmentRequest,
        known_ids: &[i64],
    ) -> Result<Created, SemaphoreError> {
        let path = format!("/api/project/{project_id}/environment");
        let bytes = self.send(Method::POST, &path, Some(request)).await?;
        if let Ok(env) = serde_json::from_slice::<Environment>(&bytes) {
            return Ok(Created::Id(env.id));
        }
        let new: Vec<i64> = self
            .environments(project_id)
            .await?
            .into_iter()
            .filter(|env| env.name == request.name && !known_ids.contains(&env.id))
            .map(|env| env.id)
            .collect();
        Ok(match new.as_slice() {
            [id] => Created::Id(*id),
            _ => Created::Unknown,
        })
    }

    /// `PUT /api/project/{pid}/environment/{eid}` (answers 204).
    pub async fn update_environment(
        &self,
        project_id: i64,
        environment_id: i64,
        request: &EnvironmentRequest,
    ) -> Result<(), SemaphoreError> {
        let path = format!("/api/project/{project_id}/environment/{environment_id}");
        self.send(Method::PUT, &path, Some(request)).await.map(|_| ())
    }

    /// `DELETE /api/project/{pid}/environment/{eid}`.
    pub async fn delete_environment(&self, project_id: i64, environment_id: i64) -> Result<(), SemaphoreError> {
        let path = format!("/api/project/{project_id}/environment/{environment_id}");
        self.send(Method::DELETE, &path, None::<&()>).await.map(|_| ())
    }

    /// `GET /api/project/{pid}/templates`: every template of the project, with the environment each one uses
    /// (`environment_id`, `None` when it has none). Any project member may read them.
    pub async fn templates(&self, project_id: i64) -> Result<Vec<Template>, SemaphoreError> {
        self.get(&format!("/api/project/{project_id}/templates?sort=name&order=asc")).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, SemaphoreError> {
        let bytes = self.send(Method::GET, path, None::<&()>).await?;
        serde_json::from_slice(&bytes).map_err(|error| {
            let looks_like_html = bytes.trim_ascii_start().starts_with(b"<");
            if looks_like_html {
                SemaphoreError::NotSemaphore {
                    url: self.base.clone(),
                    detail: format!("GET {} answered HTML", strip_query(path)),
                }
            } else {
                ClientError::Decode {
                    method: "GET".to_owned(),
                    path: strip_query(path).to_owned(),
                    reason: error.to_string(),
                }
                .into()
            }
        })
    }

    /// Sends an authenticated request and returns the body of a 2xx answer.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Vec<u8>, SemaphoreError> {
        let response = self.raw(method.clone(), path, body, true).await?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| ClientError::from_reqwest(&error, method.as_str(), strip_query(path), &self.host))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(self.status_error(&method, path, status, &bytes))
    }

    async fn raw<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        authenticated: bool,
    ) -> Result<reqwest::Response, SemaphoreError> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if authenticated {
            request =
                match &self.credential {
                    Credential::Bearer(token) => {
                        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                            .map_err(|_| SemaphoreError::TokenRefused)?;
                        value.set_sensitive(true);
                        request.header(AUTHORIZATION, value)
                    }
                    Credential::Cookie(cookie) => {
                        let mut value = HeaderValue::from_str(&format!("semaphore={}", cookie.expose_secret()))
                            .map_err(|_| SemaphoreError::NotSemaphore {
                                url: self.base.clone(),
                                detail: "the session cookie is not a valid header value".to_owned(),
                            })?;
                        value.set_sensitive(true);
                        request.header(COOKIE, value)
                    }
                };
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(|error| self.transport_error(&error, &method, path))
    }

    fn transport_error(&self, error: &reqwest::Error, method: &Method, path: &str) -> SemaphoreError {
        let text = error_chain_text(error);
        let https = self.base.starts_with("https://");
        if https && (text.contains("InvalidContentType") || text.contains("corrupt message")) {
            return SemaphoreError::PlainHttpServer { url: self.base.clone() };
        }
        let classified = ClientError::from_reqwest(error, method.as_str(), strip_query(path), &self.host);
        if !https && matches!(classified, ClientError::ConnectionLost { .. }) {
            return SemaphoreError::HttpsServer { url: self.base.clone() };
        }
        classified.into()
    }

    fn status_error(&self, method: &Method, path: &str, status: StatusCode, body: &[u8]) -> SemaphoreError {
        let text = String::from_utf8_lossy(body);
        // Go's HTTP server answers a plain request on a TLS port with this 400.
        if status == StatusCode::BAD_REQUEST && text.contains("HTTP request to an HTTPS server") {
            return SemaphoreError::HttpsServer { url: self.base.clone() };
        }
        let message = serde_json::from_slice::<pvetoken_api::semaphore::ErrorBody>(body)
            .map(|error| error.error)
            .unwrap_or_else(|_| status.canonical_reason().unwrap_or("error").to_owned());
        match status {
            StatusCode::UNAUTHORIZED => ClientError::AuthFailed {
                who: match self.credential {
                    Credential::Bearer(_) => "the API token".to_owned(),
                    Credential::Cookie(_) => "the session".to_owned(),
                },
                message,
            }
            .into(),
            StatusCode::FORBIDDEN => {
                SemaphoreError::Forbidden { method: method.to_string(), path: strip_query(path).to_owned() }
            }
            _ => ClientError::Api {
                method: method.to_string(),
                path: strip_query(path).to_owned(),
                status: status.as_u16(),
                message,
            }
            .into(),
        }
    }
}

fn strip_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

fn error_chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        text.push_str(&format!("{cause} / {cause:?} | "));
        current = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_reference_is_an_id_only_when_all_digits() {
        assert_eq!("1".parse::<ProjectRef>(), Ok(ProjectRef::Id(1)));
        assert_eq!("PrivateBox".parse::<ProjectRef>(), Ok(ProjectRef::Name("PrivateBox".to_owned())));
        assert_eq!("1st".parse::<ProjectRef>(), Ok(ProjectRef::Name("1st".to_owned())));
        assert_eq!("+1".parse::<ProjectRef>(), Ok(ProjectRef::Name("+1".to_owned())));
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let auth = SemaphoreAuth::Password { user: "admin".to_owned(), password: Secret::from("p\"w".to_owned()) };
        assert!(!format!("{auth:?}").contains("p\"w"));
        let token = SemaphoreAuth::ApiToken(Secret::from("tok-123".to_owned()));
        assert!(!format!("{token:?}").contains("tok-123"));
    }
}
