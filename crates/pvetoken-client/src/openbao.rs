//! OpenBao / HashiCorp Vault KV version 2, through the documented HTTP API (`/v1/{mount}/data/{path}`,
//! `/v1/{mount}/metadata/{path}`, `/v1/auth/approle/login`).
//!
//! reqwest rather than a client crate: `vaultrs` brings its own HTTP stack and TLS configuration, and this client
//! must use the same certificate checks (CA file, pinned fingerprint) as every other connection pvetoken makes.
//! Five calls are needed; each is a few lines here.
//!
//! Several addresses (the nodes of a raft cluster) are tried in order: a connection failure, a 503 (a sealed node)
//! or a standby's 500 "active cluster node not found" (an election; the request was not applied) moves to the next;
//! any other HTTP answer (even an error) is final. When every address failed that way, the round is tried again after a pause
//! ([`ROUND_PAUSES`]), so that a request sent during a leader election lands once the new leader is up; a write
//! carries check-and-set, so it cannot land twice. A standby forwards what it cannot serve, or redirects (307) to
//! the active node, which reqwest follows. The OpenBao token travels only in the `X-Vault-Token` header and never
//! appears in an error.

use std::sync::atomic::{AtomicUsize, Ordering};

use pvetoken_api::{ExposeSecret, Secret};
use serde_json::{Map, Value, json};

/// How to authenticate to OpenBao.
pub enum BaoAuth {
    /// A token (`BAO_TOKEN`, `VAULT_TOKEN` or a token file).
    Token(Secret),
    /// AppRole: `POST /v1/auth/{mount}/login` with a role id and a secret id.
    AppRole {
        /// The auth mount, `approle` by default.
        mount: String,
        /// Role id.
        role_id: Secret,
        /// Secret id.
        secret_id: Secret,
    },
}

/// Why an OpenBao call failed. Never holds a token or a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaoError {
    /// No address could be reached.
    #[error("cannot reach OpenBao at {addresses}: {message}")]
    Unreachable {
        /// The addresses tried.
        addresses: String,
        /// The last transport error.
        message: String,
    },
    /// OpenBao answered with an error status.
    #[error("OpenBao {method} {path}: {status} {message}")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// API path (no secret in it).
        path: String,
        /// Status code.
        status: u16,
        /// OpenBao's `errors`, joined.
        message: String,
    },
    /// The check-and-set version did not match: another writer changed the secret since it was read.
    #[error("OpenBao {mount}/{path} was changed by another writer while pvetoken wrote it (check-and-set failed)")]
    CasMismatch {
        /// KV mount.
        mount: String,
        /// Secret path.
        path: String,
    },
    /// An answer that is not what the API documents.
    #[error("OpenBao {path}: unexpected answer: {message}")]
    Unexpected {
        /// API path.
        path: String,
        /// What was wrong.
        message: String,
    },
}

impl BaoError {
    /// The HTTP status, when OpenBao answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            BaoError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One version of a KV v2 secret.
#[derive(Debug, Clone)]
pub struct KvSecret {
    /// The fields.
    pub data: Map<String, Value>,
    /// Its version number.
    pub version: u64,
}

/// A logged-in OpenBao client.
pub struct BaoClient {
    http: reqwest::Client,
    addresses: Vec<String>,
    /// Index of the address that answered last.
    current: AtomicUsize,
    token: Secret,
}

impl std::fmt::Debug for BaoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaoClient").field("addresses", &self.addresses).field("token", &"[REDACTED]").finish()
    }
}

impl BaoClient {
    /// Logs in (AppRole) or takes the token. `addresses` are base URLs (`https://bao1:8200`), tried in order.
    pub async fn connect(http: reqwest::Client, addresses: Vec<String>, auth: BaoAuth) -> Result<BaoClient, BaoError> {
        let addresses: Vec<String> = addresses.into_iter().map(|a| a.trim_end_matches('/').to_owned()).collect();
        let mut client =
            BaoClient { http, addresses, current: AtomicUsize::new(0), token: Secret::from(String::new()) };
        match auth {
            BaoAuth::Token(token) => client.token = token,
            BaoAuth::AppRole { mount, role_id, secret_id } => {
                let path = format!("auth/{mount}/login");
                let body = json!({ "role_id": role_id.expose_secret(), "secret_id": secret_id.expose_secret() });
                let answer = client.send("POST", &path, Some(body), false).await?;
                let token = answer
                    .as_ref()
                    .and_then(|a| a["auth"]["client_token"].as_str())
                    .ok_or_else(|| BaoError::Unexpected { path, message: "no auth.client_token".to_owned() })?;
                client.token = Secret::from(token.to_owned());
            }
        }
        Ok(client)
    }

    /// The address that answered last.
    pub fn address(&self) -> &str {
        &self.addresses[self.current.load(Ordering::Relaxed).min(self.addresses.len().saturating_sub(1))]
    }

    /// The current version of `mount/path` (0 when it does not exist), from its metadata.
    pub async fn current_version(&self, mount: &str, path: &str) -> Result<u64, BaoError> {
        let api = format!("{mount}/metadata/{path}");
        match self.send("GET", &api, None, true).await {
            Ok(Some(answer)) => Ok(answer["data"]["current_version"].as_u64().unwrap_or(0)),
            Ok(None) => Ok(0),
            Err(error) if error.status() == Some(404) => Ok(0),
            Err(error) => Err(error),
        }
    }

    /// Reads the newest version of `mount/path` (`None` when absent or deleted).
    pub async fn read(&self, mount: &str, path: &str) -> Result<Option<KvSecret>, BaoError> {
        let api = format!("{mount}/data/{path}");
        let answer = match self.send("GET", &api, None, true).await {
            Ok(Some(answer)) => answer,
            Ok(None) => return Ok(None),
            Err(error) if error.status() == Some(404) => return Ok(None),
            Err(error) => return Err(error),
        };
        let Some(data) = answer["data"]["data"].as_object() else { return Ok(None) };
        let version = answer["data"]["metadata"]["version"].as_u64().unwrap_or(0);
        Ok(Some(KvSecret { data: data.clone(), version }))
    }

    /// Writes `data` as a new version with check-and-set `cas` (0 = only if absent); returns the new version.
    pub async fn write(&self, mount: &str, path: &str, data: &Map<String, Value>, cas: u64) -> Result<u64, BaoError> {
        let api = format!("{mount}/data/{path}");
        let body = json!({ "options": { "cas": cas }, "data": data });
        match self.send("POST", &api, Some(body), true).await {
            Ok(answer) => Ok(answer.and_then(|a| a["data"]["version"].as_u64()).unwrap_or(cas + 1)),
            Err(BaoError::Status { status: 400, message, .. }) if message.contains("check-and-set") => {
                Err(BaoError::CasMismatch { mount: mount.to_owned(), path: path.to_owned() })
            }
            Err(error) => Err(error),
        }
    }

    /// Sets the secret's custom metadata (who wrote it, for what).
    pub async fn set_custom_metadata(
        &self,
        mount: &str,
        path: &str,
        metadata: &Map<String, Value>,
    ) -> Result<(), BaoError> {
        let api = format!("{mount}/metadata/{path}");
        self.send("POST", &api, Some(json!({ "custom_metadata": metadata })), true).await.map(|_| ())
    }

    /// Sends the next requests to the next address first (after an answer that another node may give better: a
    /// standby serving reads can lag the active node).
    pub fn prefer_next_address(&self) {
        let next = (self.current.load(Ordering::Relaxed) + 1) % self.addresses.len().max(1);
        self.current.store(next, Ordering::Relaxed);
    }

    /// Sends one request, failing over to the next address on a transport error or a 503, in rounds separated by
    /// [`ROUND_PAUSES`]. `Ok(None)` = 204.
    async fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Value>,
        with_token: bool,
    ) -> Result<Option<Value>, BaoError> {
        let mut last_error = String::new();
        for pause in std::iter::once(None).chain(ROUND_PAUSES.iter().map(Some)) {
            if let Some(pause) = pause {
                tokio::time::sleep(*pause).await;
            }
            match self.send_round(method, path, body.as_ref(), with_token, &mut last_error).await {
                Round::Answered(result) => return result,
                Round::NoNodeAnswered => {}
            }
        }
        Err(BaoError::Unreachable { addresses: self.addresses.join(", "), message: last_error })
    }

    /// One pass over the addresses.
    async fn send_round(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
        with_token: bool,
        last_error: &mut String,
    ) -> Round {
        let start = self.current.load(Ordering::Relaxed);
        for offset in 0..self.addresses.len() {
            let index = (start + offset) % self.addresses.len();
            let url = format!("{}/v1/{path}", self.addresses[index]);
            let mut request = match method {
                "GET" => self.http.get(&url),
                "DELETE" => self.http.delete(&url),
                _ => self.http.post(&url),
            };
            if with_token {
                request = request.header("X-Vault-Token", self.token.expose_secret());
            }
            if let Some(body) = body {
                request = request.header("content-type", "application/json").body(body.to_string());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) if error.is_connect() || error.is_timeout() => {
                    *last_error = without_url(&error);
                    continue;
                }
                Err(error) => {
                    return Round::Answered(Err(BaoError::Unreachable {
                        addresses: self.addresses[index].clone(),
                        message: without_url(&error),
                    }));
                }
            };
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            // Not applied by this node: sealed (503), or a standby that knows no active node during an election
            // (500 "local node not active but active cluster node not found").
            if status == 503 || (status == 500 && text.contains("active cluster node not found")) {
                *last_error = format!("{} answered {status}: no active node", self.addresses[index]);
                continue;
            }
            self.current.store(index, Ordering::Relaxed);
            if status == 204 {
                return Round::Answered(Ok(None));
            }
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if !(200..300).contains(&status) {
                let message = value["errors"]
                    .as_array()
                    .map(|errors| errors.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "(no error text)".to_owned());
                return Round::Answered(Err(BaoError::Status { method, path: path.to_owned(), status, message }));
            }
            return Round::Answered(Ok(Some(value)));
        }
        Round::NoNodeAnswered
    }
}

/// Pauses between rounds over every address, about 15 s in all: after a leader dies, its standbys keep
/// redirecting to it until a new one is elected, which takes several seconds with OpenBao's default raft timing
/// (measured by `tests/it/openbao_raft.rs`).
pub const ROUND_PAUSES: [std::time::Duration; 5] = [
    std::time::Duration::from_millis(500),
    std::time::Duration::from_millis(1_000),
    std::time::Duration::from_millis(2_000),
    std::time::Duration::from_millis(4_000),
    std::time::Duration::from_millis(8_000),
];

/// What one round over the addresses came to.
enum Round {
    /// A node answered (or failed in a way another node would not fix).
    Answered(Result<Option<Value>, BaoError>),
    /// No node could take the request.
    NoNodeAnswered,
}

/// A transport error in a few words plus its causes (the chain names the refused connection or the TLS problem).
fn without_url(error: &reqwest::Error) -> String {
    let mut message = if error.is_connect() {
        "connection failed".to_owned()
    } else if error.is_timeout() {
        "timed out".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    message
}
