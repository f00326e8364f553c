//! The Proxmox VE client: ticket login, admin-token or token authentication over one kept-alive HTTPS
//! connection, or `pvesh` on the PVE host (`--local`).
//!
//! Retries happen only where they are safe: a `GET` is retried after a transport failure or a 502/503/504; a
//! `POST`/`PUT`/`DELETE` is retried only when the request certainly never left this machine (connection refused).
//! Every error carries PVE's status and message and whether the request may have been sent ([`crate::Sent`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pvetoken_api::pve::{
    AclEntry, Envelope, ErrorBody, NodeListItem, PackageVersion, Permissions, RoleListItem, RolePrivileges, Ticket,
    TokenInfo, TokenSecret, UserListItem, Version,
};
use pvetoken_api::{ExposeSecret, Secret};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;

use crate::endpoint::Endpoint;
use crate::error::{ClientError, Sent};

/// Request parameters (query for GET/DELETE, form body for POST/PUT). Never secrets: the only secret ever sent in
/// a body is the login password, which [`PveClient::login`] handles itself.
pub type Params = Vec<(String, String)>;

/// A Proxmox VE API client.
#[derive(Debug)]
pub struct PveClient {
    backend: Backend,
    requests: AtomicU64,
}

#[derive(Debug)]
enum Backend {
    Http(Http),
    Local(Local),
}

#[derive(Debug)]
struct Http {
    client: reqwest::Client,
    endpoint: Endpoint,
    auth: HttpAuth,
}

#[derive(Debug)]
enum HttpAuth {
    None,
    Ticket { csrf: Secret, cookie: Secret },
    Token { header: Secret },
}

#[derive(Debug)]
struct Local {
    pvesh: PathBuf,
    /// Environment variables removed from pvesh's environment (the caller's credentials).
    scrubbed: Vec<String>,
    timeout: Duration,
}

/// Parameters of a new token.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    /// Privilege separation (PVE default 1).
    pub privsep: bool,
    /// Epoch seconds, 0 = never.
    pub expire: i64,
    /// Comment.
    pub comment: Option<String>,
}

/// One `PUT /access/acl` call: one path, one or more roles, for users and/or tokens.
#[derive(Debug, Clone, Default)]
pub struct AclChange {
    /// ACL path.
    pub path: String,
    /// Roles.
    pub roles: Vec<String>,
    /// User ids.
    pub users: Vec<String>,
    /// Full token ids.
    pub tokens: Vec<String>,
    /// Propagate to children.
    pub propagate: bool,
    /// Remove instead of add.
    pub delete: bool,
}

impl AclChange {
    /// `role` on `path`, propagating or not, for no one yet: [`AclChange::user`] and [`AclChange::token`] add
    /// subjects, [`AclChange::removing`] turns the grant into a removal.
    pub fn role(path: impl Into<String>, role: impl Into<String>, propagate: bool) -> AclChange {
        AclChange { path: path.into(), roles: vec![role.into()], propagate, ..AclChange::default() }
    }

    /// For the user `userid` too.
    #[must_use]
    pub fn user(mut self, userid: impl Into<String>) -> AclChange {
        self.users.push(userid.into());
        self
    }

    /// For the token `tokenid` (full id) too.
    #[must_use]
    pub fn token(mut self, tokenid: impl Into<String>) -> AclChange {
        self.tokens.push(tokenid.into());
        self
    }

    /// Removes the entries instead of adding them.
    #[must_use]
    pub fn removing(mut self) -> AclChange {
        self.delete = true;
        self
    }
}

impl PveClient {
    /// Logs in with a password (`POST /access/ticket`) over `client` and keeps the ticket and CSRF token.
    pub async fn login(
        client: reqwest::Client,
        endpoint: Endpoint,
        user: &str,
        password: &Secret,
    ) -> Result<Self, ClientError> {
        let mut http = Http { client, endpoint, auth: HttpAuth::None };
        let requests = AtomicU64::new(0);
        let form = [("username", user), ("password", password.expose_secret())];
        let ticket: Ticket =
            match http.send(&requests, Method::POST, "/access/ticket", |request| request.form(&form)).await {
                Ok(ticket) => ticket,
                Err(ClientError::AuthFailed { message, .. }) => {
                    return Err(ClientError::AuthFailed { who: user.to_owned(), message });
                }
                Err(error) => return Err(error),
            };
        let cookie = Secret::from(format!("PVEAuthCookie={}", ticket.ticket.expose_secret()));
        http.auth = HttpAuth::Ticket { csrf: ticket.csrf_prevention_token, cookie };
        Ok(Self { backend: Backend::Http(http), requests })
    }

    /// Authenticates every request with an API token (`user@realm!name` and its secret).
    pub fn with_token(client: reqwest::Client, endpoint: Endpoint, token_id: &str, secret: &Secret) -> Self {
        let header = Secret::from(format!("PVEAPIToken={token_id}={}", secret.expose_secret()));
        Self {
            backend: Backend::Http(Http { client, endpoint, auth: HttpAuth::Token { header } }),
            requests: AtomicU64::new(0),
        }
    }

    /// Unauthenticated (only `GET /version` fails with 401; used to probe reachability and TLS).
    pub fn anonymous(client: reqwest::Client, endpoint: Endpoint) -> Self {
        Self { backend: Backend::Http(Http { client, endpoint, auth: HttpAuth::None }), requests: AtomicU64::new(0) }
    }

    /// Runs `pvesh` (as root on the PVE host) for every call.
    pub fn local(pvesh: PathBuf, timeout: Duration) -> Self {
        Self { backend: Backend::Local(Local { pvesh, timeout, scrubbed: Vec::new() }), requests: AtomicU64::new(0) }
    }

    /// Removes `names` from the environment of every `pvesh` run (credentials pvesh does not need).
    #[must_use]
    pub fn without_env(mut self, names: &[&str]) -> Self {
        if let Backend::Local(local) = &mut self.backend {
            local.scrubbed = names.iter().map(|name| (*name).to_owned()).collect();
        }
        self
    }

    /// True for the `pvesh` backend.
    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local(_))
    }

    /// The server's base URL (`None` for `pvesh`).
    pub fn endpoint(&self) -> Option<&Endpoint> {
        match &self.backend {
            Backend::Http(http) => Some(&http.endpoint),
            Backend::Local(_) => None,
        }
    }

    /// Requests (or pvesh runs) started so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    // ----- generic calls -------------------------------------------------------------------------------------

    /// `GET path?params`, retried on transport failures and 502/503/504.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T, ClientError> {
        self.call(Method::GET, path, params).await
    }

    /// `POST path` with form parameters (never retried once it may have been sent).
    pub async fn post<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T, ClientError> {
        self.call(Method::POST, path, params).await
    }

    /// `PUT path` with form parameters (never retried once it may have been sent).
    pub async fn put<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T, ClientError> {
        self.call(Method::PUT, path, params).await
    }

    /// `DELETE path?params` (never retried once it may have been sent).
    pub async fn delete<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T, ClientError> {
        self.call(Method::DELETE, path, params).await
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, params: &Params) -> Result<T, ClientError> {
        match &self.backend {
            Backend::Local(local) => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                local.run(&method, path, params).await
            }
            Backend::Http(http) => {
                let idempotent = method == Method::GET;
                let mut attempt = 0_u32;
                loop {
                    let result = http
                        .send(&self.requests, method.clone(), path, |request| {
                            if method == Method::GET || method == Method::DELETE {
                                request.query(params)
                            } else {
                                request.form(params)
                            }
                        })
                        .await;
                    match result {
                        Err(error) if attempt < 2 && retryable(&error, idempotent) => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(150 * u64::from(attempt))).await;
                        }
                        other => return other,
                    }
                }
            }
        }
    }
}

impl Http {
    async fn send<T: DeserializeOwned>(
        &self,
        requests: &AtomicU64,
        method: Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let http = self;
        let url = http.endpoint.pve_api(path);
        let mut headers = HeaderMap::new();
        match &http.auth {
            HttpAuth::None => {}
            HttpAuth::Ticket { csrf, cookie } => {
                headers.insert(reqwest::header::COOKIE, sensitive(cookie)?);
                if method != Method::GET {
                    headers.insert("CSRFPreventionToken", sensitive(csrf)?);
                }
            }
            HttpAuth::Token { header } => {
                headers.insert(reqwest::header::AUTHORIZATION, sensitive(header)?);
            }
        }
        let request = build(http.client.request(method.clone(), &url).headers(headers));
        requests.fetch_add(1, Ordering::Relaxed);
        let host = http.endpoint.host_port();
        let response =
            request.send().await.map_err(|error| ClientError::from_reqwest(&error, method.as_str(), path, &host))?;
        let status = response.status();
        let reason = status.canonical_reason().unwrap_or("").to_owned();
        let bytes =
            response.bytes().await.map_err(|error| ClientError::from_reqwest(&error, method.as_str(), path, &host))?;
        if status.is_success() {
            return serde_json::from_slice::<Envelope<T>>(&bytes).map(|envelope| envelope.data).map_err(|error| {
                ClientError::Decode { method: method.to_string(), path: path.to_owned(), reason: error.to_string() }
            });
        }
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = body.flatten(&reason);
        if status.as_u16() == 401 {
            let who = match &http.auth {
                HttpAuth::None => "anonymous".to_owned(),
                HttpAuth::Ticket { .. } => "the logged-in user".to_owned(),
                HttpAuth::Token { .. } => "the API token".to_owned(),
            };
            return Err(ClientError::AuthFailed { who, message });
        }
        Err(ClientError::Api { method: method.to_string(), path: path.to_owned(), status: status.as_u16(), message })
    }
}

impl PveClient {
    // ----- typed calls ---------------------------------------------------------------------------------------

    /// `GET /version`.
    pub async fn version(&self) -> Result<Version, ClientError> {
        self.get("/version", &Params::new()).await
    }

    /// `GET /nodes/{node}/apt/versions`: the installed Proxmox packages (needs `Sys.Audit` on `/nodes/{node}`).
    pub async fn package_versions(&self, node: &str) -> Result<Vec<PackageVersion>, ClientError> {
        self.get(&format!("/nodes/{node}/apt/versions"), &Params::new()).await
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeListItem>, ClientError> {
        self.get("/nodes", &Params::new()).await
    }

    /// `GET /access/users?full=1` (tokens included).
    pub async fn users_full(&self) -> Result<Vec<UserListItem>, ClientError> {
        self.get("/access/users", &params(&[("full", "1")])).await
    }

    /// `POST /access/users` with only the user id and comment (no password: token-only users need none).
    pub async fn create_user(&self, userid: &str, comment: Option<&str>) -> Result<(), ClientError> {
        let mut list = params(&[("userid", userid)]);
        if let Some(comment) = comment {
            list.push(("comment".into(), comment.into()));
        }
        self.post::<serde_json::Value>("/access/users", &list).await.map(drop)
    }

    /// `POST /access/groups`.
    pub async fn create_group(&self, groupid: &str, comment: &str) -> Result<(), ClientError> {
        self.post::<serde_json::Value>("/access/groups", &params(&[("groupid", groupid), ("comment", comment)]))
            .await
            .map(drop)
    }

    /// `POST /access/users` of a user in `group`, without a password.
    pub async fn create_user_in_group(&self, userid: &str, group: &str, comment: &str) -> Result<(), ClientError> {
        let list = params(&[("userid", userid), ("groups", group), ("comment", comment)]);
        self.post::<serde_json::Value>("/access/users", &list).await.map(drop)
    }

    /// `PUT /access/users/{userid}` adding `group` to the user's groups (`append`: the others are kept).
    pub async fn add_to_group(&self, userid: &str, group: &str) -> Result<(), ClientError> {
        let path = format!("/access/users/{}", enc(userid));
        self.put::<serde_json::Value>(&path, &params(&[("groups", group), ("append", "1")])).await.map(drop)
    }

    /// `GET /access/users/{userid}/token`.
    pub async fn tokens(&self, userid: &str) -> Result<Vec<TokenInfo>, ClientError> {
        self.get(&format!("/access/users/{}/token", enc(userid)), &Params::new()).await
    }

    /// `GET /access/users/{userid}/token/{name}`; `Ok(None)` when it does not exist.
    pub async fn token(&self, userid: &str, name: &str) -> Result<Option<TokenInfo>, ClientError> {
        match self.get(&format!("/access/users/{}/token/{}", enc(userid), enc(name)), &Params::new()).await {
            Ok(info) => Ok(Some(info)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `POST /access/users/{userid}/token/{name}`: returns the secret (shown once).
    pub async fn create_token(&self, userid: &str, name: &str, new: &NewToken) -> Result<TokenSecret, ClientError> {
        let mut list = params(&[("privsep", if new.privsep { "1" } else { "0" })]);
        if new.expire > 0 {
            list.push(("expire".into(), new.expire.to_string()));
        }
        if let Some(comment) = &new.comment {
            list.push(("comment".into(), comment.clone()));
        }
        self.post(&format!("/access/users/{}/token/{}", enc(userid), enc(name)), &list).await
    }

    /// `PUT /access/users/{userid}/token/{name}` with `regenerate=1` (PVE 9.1+): a new secret, same token.
    pub async fn regenerate_token(&self, userid: &str, name: &str) -> Result<TokenSecret, ClientError> {
        self.put(&format!("/access/users/{}/token/{}", enc(userid), enc(name)), &params(&[("regenerate", "1")])).await
    }

    /// `PUT /access/users/{userid}/token/{tokenid}` with a new `expire` (epoch seconds, 0 = never).
    pub async fn set_token_expire(&self, userid: &str, name: &str, expire: i64) -> Result<(), ClientError> {
        let path = format!("/access/users/{}/token/{}", enc(userid), enc(name));
        self.put::<serde_json::Value>(&path, &params(&[("expire", &expire.to_string())])).await.map(drop)
    }

    /// `DELETE /access/users/{userid}/token/{name}`.
    pub async fn delete_token(&self, userid: &str, name: &str) -> Result<(), ClientError> {
        self.delete::<serde_json::Value>(&format!("/access/users/{}/token/{}", enc(userid), enc(name)), &Params::new())
            .await
            .map(drop)
    }

    /// `GET /access/roles`.
    pub async fn roles(&self) -> Result<Vec<RoleListItem>, ClientError> {
        self.get("/access/roles", &Params::new()).await
    }

    /// `GET /access/roles/{roleid}`; `Ok(None)` when it does not exist.
    pub async fn role(&self, roleid: &str) -> Result<Option<Vec<String>>, ClientError> {
        match self.get::<RolePrivileges>(&format!("/access/roles/{}", enc(roleid)), &Params::new()).await {
            Ok(map) => Ok(Some(map.into_keys().collect())),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `POST /access/roles`.
    pub async fn create_role(&self, roleid: &str, privs: &[String]) -> Result<(), ClientError> {
        self.post::<serde_json::Value>("/access/roles", &params(&[("roleid", roleid), ("privs", &privs.join(","))]))
            .await
            .map(drop)
    }

    /// `PUT /access/roles/{roleid}` replacing the privileges.
    pub async fn set_role(&self, roleid: &str, privs: &[String]) -> Result<(), ClientError> {
        self.put::<serde_json::Value>(
            &format!("/access/roles/{}", enc(roleid)),
            &params(&[("privs", &privs.join(","))]),
        )
        .await
        .map(drop)
    }

    /// `GET /access/acl`.
    pub async fn acl(&self) -> Result<Vec<AclEntry>, ClientError> {
        self.get("/access/acl", &Params::new()).await
    }

    /// `PUT /access/acl`.
    pub async fn change_acl(&self, change: &AclChange) -> Result<(), ClientError> {
        let mut list = params(&[
            ("path", &change.path),
            ("roles", &change.roles.join(",")),
            ("propagate", if change.propagate { "1" } else { "0" }),
        ]);
        if !change.users.is_empty() {
            list.push(("users".into(), change.users.join(",")));
        }
        if !change.tokens.is_empty() {
            list.push(("tokens".into(), change.tokens.join(",")));
        }
        if change.delete {
            list.push(("delete".into(), "1".into()));
        }
        self.put::<serde_json::Value>("/access/acl", &list).await.map(drop)
    }

    /// `GET /access/permissions[?path=..]` for the caller itself (no `userid`, which needs `Sys.Audit` before
    /// PVE 8.2).
    pub async fn own_permissions(&self, path: Option<&str>) -> Result<Permissions, ClientError> {
        let list = path.map(|path| params(&[("path", path)])).unwrap_or_default();
        self.get("/access/permissions", &list).await
    }

    /// `GET /access/permissions?userid=..[&path=..]` (admin view of another subject).
    pub async fn permissions_of(&self, userid: &str, path: Option<&str>) -> Result<Permissions, ClientError> {
        let mut list = params(&[("userid", userid)]);
        if let Some(path) = path {
            list.push(("path".into(), path.into()));
        }
        self.get("/access/permissions", &list).await
    }
}

impl Local {
    async fn run<T: DeserializeOwned>(&self, method: &Method, path: &str, params: &Params) -> Result<T, ClientError> {
        let verb = match *method {
            Method::GET => "get",
            Method::POST => "create",
            Method::PUT => "set",
            Method::DELETE => "delete",
            _ => "get",
        };
        let args_text = format!("{verb} {path}");
        let mut command = tokio::process::Command::new(&self.pvesh);
        command.arg(verb).arg(path).arg("--output-format").arg("json");
        for name in &self.scrubbed {
            command.env_remove(name);
        }
        for (key, value) in params {
            command.arg(format!("--{key}")).arg(value);
        }
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(self.timeout, command.output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => {
                let message = if error.kind() == std::io::ErrorKind::NotFound {
                    format!("`{}` not found: --local only works on a Proxmox VE host", self.pvesh.display())
                } else {
                    format!("cannot run {}: {error}", self.pvesh.display())
                };
                return Err(ClientError::Local { args: args_text, message, status: None });
            }
            Err(_) => {
                return Err(ClientError::Local {
                    args: args_text,
                    message: format!("no answer within {} s", self.timeout.as_secs()),
                    status: None,
                });
            }
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let text = stderr.trim();
            let (status, message) = split_status(text);
            return Err(ClientError::Local { args: args_text, message, status: Some(status) });
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let trimmed = stdout.trim();
        let json = if trimmed.is_empty() { "null" } else { trimmed };
        serde_json::from_str(json).map_err(|error| ClientError::Decode {
            method: method.to_string(),
            path: path.to_owned(),
            reason: format!("pvesh printed something that is not the expected JSON: {error}"),
        })
    }
}

/// pvesh prints `400 Parameter verification failed.` / `403 Permission check failed ...` or a plain message (a
/// handler's die, i.e. 500).
fn split_status(text: &str) -> (u16, String) {
    let flat = text.replace('\n', " ");
    let mut parts = flat.splitn(2, ' ');
    let first = parts.next().unwrap_or_default();
    if first.len() == 3
        && let Ok(code) = first.parse::<u16>()
        && (400..600).contains(&code)
    {
        return (code, parts.next().unwrap_or_default().trim().to_owned());
    }
    (500, flat.trim().to_owned())
}

fn retryable(error: &ClientError, idempotent: bool) -> bool {
    match error.sent() {
        Sent::No => matches!(error, ClientError::Unreachable { .. }),
        Sent::Maybe => idempotent,
        Sent::Yes => idempotent && matches!(error.status(), Some(502..=504)),
    }
}

fn sensitive(secret: &Secret) -> Result<HeaderValue, ClientError> {
    let mut value = HeaderValue::from_str(secret.expose_secret()).map_err(|_| ClientError::Tls {
        message: "a credential contains characters not allowed in HTTP headers".into(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
}

/// What a path segment keeps as it is: RFC 3986's unreserved characters, and `@` and `!` of user and token ids.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'@').remove(b'!');

/// Percent-encodes one path segment (user ids contain `@`, which is fine, but may contain other characters).
pub(crate) fn enc(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::{enc, split_status};

    #[test]
    fn pvesh_status_prefix_is_parsed_and_plain_messages_are_500() {
        assert_eq!(
            split_status("400 Parameter verification failed.\nroleid: bad"),
            (400, "Parameter verification failed. roleid: bad".into())
        );
        assert_eq!(split_status("create user failed: user 'a@pve' already exists").0, 500);
    }

    #[test]
    fn path_segments_keep_at_and_bang_but_escape_slashes() {
        assert_eq!(enc("automation@pve"), "automation@pve");
        assert_eq!(enc("a/b"), "a%2Fb");
    }
}
