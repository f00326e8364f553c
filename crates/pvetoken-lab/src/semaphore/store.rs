//! The simulator's data: users, sessions, API tokens, projects, members, environments and their secrets,
//! inventories, repositories and templates, kept in one JSON document (`state.json`, 0600, replaced atomically by
//! the lab's [`crate::store::write_atomic`]) and the secrets encrypted with AES-256-GCM under a random key
//! (`access_key_encryption`, 0600), as Semaphore's `access_key_encryption` setting does. Every random byte (salts,
//! session cookies, API tokens, the key, nonces) comes from the lab's [`LabRng`], so `lab serve --seed` makes them
//! reproducible.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use pvetoken_api::semaphore::{ProjectRole, SecretType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::SemaphoreError;
use crate::rng::LabRng;

/// A user with a salted password hash (the simulator's stand-in for Semaphore's bcrypt).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredUser {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub created: String,
    pub admin: bool,
    pub external: bool,
    pub alert: bool,
    pub password_salt: String,
    pub password_hash: String,
}

impl StoredUser {
    pub fn set_password(&mut self, password: &str, rng: &LabRng) {
        let mut salt = [0_u8; 16];
        rng.fill(&mut salt);
        self.password_salt = hex::encode(salt);
        self.password_hash = password_digest(&self.password_salt, password);
    }

    pub fn password_matches(&self, password: &str) -> bool {
        !self.password_hash.is_empty()
            && crate::auth::constant_time_eq(
                password_digest(&self.password_salt, password).as_bytes(),
                self.password_hash.as_bytes(),
            )
    }

    pub fn to_api(&self) -> pvetoken_api::semaphore::User {
        pvetoken_api::semaphore::User {
            id: self.id,
            name: self.name.clone(),
            username: self.username.clone(),
            email: self.email.clone(),
            created: self.created.clone(),
            admin: self.admin,
            external: self.external,
            alert: self.alert,
        }
    }
}

fn password_digest(salt: &str, password: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update([0]);
    hasher.update(password.as_bytes());
    hex::encode(hasher.finalize())
}

/// A cookie session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub cookie: String,
    pub user_id: i64,
}

/// An API token; as in Semaphore, its id is the bearer secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredToken {
    pub id: String,
    pub name: String,
    pub user_id: i64,
    pub created: String,
    pub expired: bool,
}

/// A project member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Member {
    pub project_id: i64,
    pub user_id: i64,
    pub role: ProjectRole,
}

/// An environment row (its secrets are [`StoredSecret`]s pointing at it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredEnvironment {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub password: Option<String>,
    pub json: String,
    pub env: Option<String>,
}

/// An environment secret: an access key of type `string` owned by an environment, its value encrypted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSecret {
    pub id: i64,
    pub project_id: i64,
    pub environment_id: i64,
    pub name: String,
    pub kind: SecretType,
    /// Hex of nonce (12 bytes) followed by the AES-256-GCM ciphertext and tag.
    pub ciphertext: String,
}

/// An inventory row (what `GET /api/project/{pid}/inventory` lists; keys are not modelled).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredInventory {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    /// The inventory text (static), path (file) or workspace name (terraform-workspace).
    pub inventory: String,
    /// `static`, `static-yaml`, `file`, `terraform-workspace`, ...
    pub kind: String,
    /// The template owning a Terraform/OpenTofu workspace inventory (2.16 `template_id`).
    pub template_id: Option<i64>,
}

/// A repository row (what `GET /api/project/{pid}/repositories` lists; keys are not modelled).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredRepository {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub git_url: String,
    pub git_branch: String,
}

/// The whole persisted state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub next_id: i64,
    pub users: Vec<StoredUser>,
    pub sessions: Vec<Session>,
    pub tokens: Vec<StoredToken>,
    pub projects: Vec<pvetoken_api::semaphore::Project>,
    pub members: Vec<Member>,
    pub environments: Vec<StoredEnvironment>,
    pub secrets: Vec<StoredSecret>,
    /// Absent from state files written before templates existed.
    #[serde(default)]
    pub inventories: Vec<StoredInventory>,
    #[serde(default)]
    pub repositories: Vec<StoredRepository>,
    #[serde(default)]
    pub templates: Vec<pvetoken_api::semaphore::Template>,
}

impl State {
    /// A fresh id (one sequence for every kind of row keeps ids unique and easy to reason about in tests).
    pub fn new_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// A new inventory of `project_id`; its id.
    pub fn add_inventory(&mut self, project_id: i64, name: &str, inventory: &str, kind: &str) -> i64 {
        let id = self.new_id();
        let (name, inventory, kind) = (name.to_owned(), inventory.to_owned(), kind.to_owned());
        self.inventories.push(StoredInventory { id, project_id, name, inventory, kind, template_id: None });
        id
    }

    /// A new repository of `project_id`; its id.
    pub fn add_repository(&mut self, project_id: i64, name: &str, git_url: &str, git_branch: &str) -> i64 {
        let id = self.new_id();
        let (name, git_url, git_branch) = (name.to_owned(), git_url.to_owned(), git_branch.to_owned());
        self.repositories.push(StoredRepository { id, project_id, name, git_url, git_branch });
        id
    }

    pub fn user(&self, id: i64) -> Option<&StoredUser> {
        self.users.iter().find(|user| user.id == id)
    }

    pub fn user_by_login(&self, login: &str) -> Option<&StoredUser> {
        let login = login.to_lowercase();
        self.users.iter().find(|user| user.username.to_lowercase() == login || user.email.to_lowercase() == login)
    }

    pub fn role(&self, project_id: i64, user_id: i64) -> Option<ProjectRole> {
        self.members
            .iter()
            .find(|member| member.project_id == project_id && member.user_id == user_id)
            .map(|member| member.role)
    }

    pub fn project(&self, id: i64) -> Option<&pvetoken_api::semaphore::Project> {
        self.projects.iter().find(|project| project.id == id)
    }

    pub fn environment(&self, project_id: i64, id: i64) -> Option<&StoredEnvironment> {
        self.environments.iter().find(|env| env.project_id == project_id && env.id == id)
    }

    pub fn inventory(&self, project_id: i64, id: i64) -> Option<&StoredInventory> {
        self.inventories.iter().find(|inv| inv.project_id == project_id && inv.id == id)
    }

    pub fn repository(&self, project_id: i64, id: i64) -> Option<&StoredRepository> {
        self.repositories.iter().find(|repo| repo.project_id == project_id && repo.id == id)
    }

    pub fn template(&self, project_id: i64, id: i64) -> Option<&pvetoken_api::semaphore::Template> {
        self.templates.iter().find(|tpl| tpl.project_id == project_id && tpl.id == id)
    }

    /// The environment as GET shows it: secrets by id, name and type, never their values.
    pub fn environment_view(&self, env: &StoredEnvironment) -> pvetoken_api::semaphore::Environment {
        pvetoken_api::semaphore::Environment {
            id: env.id,
            name: env.name.clone(),
            project_id: env.project_id,
            password: env.password.clone(),
            json: env.json.clone(),
            env: env.env.clone(),
            secrets: self
                .secrets
                .iter()
                .filter(|secret| secret.environment_id == env.id)
                .map(|secret| pvetoken_api::semaphore::EnvironmentSecret {
                    id: secret.id,
                    name: secret.name.clone(),
                    kind: secret.kind,
                })
                .collect(),
        }
    }

    /// Issues an API token for `user_id` (its id is the bearer secret) and returns it.
    pub fn issue_token(&mut self, user_id: i64, name: String, rng: &LabRng) -> StoredToken {
        let token = StoredToken { id: random_token(rng), name, user_id, created: now_rfc3339(), expired: false };
        self.tokens.push(token.clone());
        token
    }

    /// Creates a project with Semaphore's defaults: the creator as owner and an `Empty` environment.
    pub fn create_project(&mut self, name: &str, owner: Option<i64>) -> pvetoken_api::semaphore::Project {
        let project = pvetoken_api::semaphore::Project {
            id: self.new_project_id(),
            name: name.to_owned(),
            created: now_rfc3339(),
            alert: false,
            alert_chat: None,
            max_parallel_tasks: 0,
            kind: String::new(),
        };
        self.projects.push(project.clone());
        if let Some(user_id) = owner {
            self.members.push(Member { project_id: project.id, user_id, role: ProjectRole::Owner });
        }
        let env_id = self.new_id();
        self.environments.push(StoredEnvironment {
            id: env_id,
            project_id: project.id,
            name: "Empty".to_owned(),
            password: None,
            json: "{}".to_owned(),
            env: None,
        });
        project
    }

    /// Projects get their own small ids (1, 2, ...) so that the default project is id 1, as on a fresh Semaphore.
    fn new_project_id(&self) -> i64 {
        self.projects.iter().map(|project| project.id).max().unwrap_or(0) + 1
    }
}

/// Encrypts and decrypts secret values with the simulator's key.
#[derive(Clone)]
pub(crate) struct Cipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher([REDACTED])")
    }
}

impl Cipher {
    /// Loads the key from `dir/access_key_encryption`, creating a random one (0600) when absent.
    pub fn load_or_create(dir: Option<&Path>, rng: &LabRng) -> Result<Self, SemaphoreError> {
        let Some(dir) = dir else {
            return Ok(Self::new(&random_key(rng)));
        };
        let path = dir.join("access_key_encryption");
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => {
                hex::decode(text.trim()).ok().and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()).ok_or_else(|| {
                    SemaphoreError::State {
                        path: path.clone(),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a 32-byte hex key"),
                    }
                })?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = random_key(rng);
                write_private(&path, format!("{}\n", hex::encode(key)).as_bytes())?;
                key
            }
            Err(source) => return Err(SemaphoreError::State { path, source }),
        };
        Ok(Self::new(&key))
    }

    fn new(key: &[u8; 32]) -> Self {
        Self { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)) }
    }

    /// Hex of a fresh 12-byte nonce followed by the ciphertext and tag. With `--seed` a restarted lab on the same
    /// state dir draws the same nonces again under the kept key: acceptable for a demo lab, which is all a seed is
    /// for.
    pub fn encrypt(&self, plaintext: &str, rng: &LabRng) -> String {
        let mut nonce = [0_u8; 12];
        rng.fill(&mut nonce);
        // Encryption with a valid key cannot fail for inputs of this size.
        let ciphertext = self.cipher.encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes()).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        hex::encode(out)
    }

    /// Decrypts a stored value (used by tests through [`super::SemaphoreSim::secret_value`]).
    pub fn decrypt(&self, stored: &str) -> Option<String> {
        let bytes = hex::decode(stored).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok()?;
        String::from_utf8(plain).ok()
    }
}

fn random_key(rng: &LabRng) -> [u8; 32] {
    let mut key = [0_u8; 32];
    rng.fill(&mut key);
    key
}

/// Where the state lives (`None`: in memory only).
#[derive(Debug, Clone)]
pub(crate) struct Persistence {
    pub path: Option<PathBuf>,
}

impl Persistence {
    pub fn load(&self) -> Result<Option<State>, SemaphoreError> {
        let Some(path) = &self.path else { return Ok(None) };
        crate::store::read_json(path).map_err(|source| SemaphoreError::State { path: path.clone(), source })
    }

    pub fn save(&self, state: &State) -> Result<(), SemaphoreError> {
        let Some(path) = &self.path else { return Ok(()) };
        crate::store::write_json(path, state, true)
            .map_err(|source| SemaphoreError::State { path: path.clone(), source })
    }
}

/// Writes `bytes` to `path` atomically: a 0600 temporary file in the same directory, fsync, rename.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SemaphoreError> {
    crate::store::write_atomic(path, bytes, true)
        .map_err(|source| SemaphoreError::State { path: path.to_path_buf(), source })
}

/// A random URL-safe token (Semaphore's API tokens: 32 random bytes, base64url, lower-cased; ours are hex).
pub(crate) fn random_token(rng: &LabRng) -> String {
    let mut bytes = [0_u8; 32];
    rng.fill(&mut bytes);
    hex::encode(bytes)
}

/// The lab's clock as RFC 3339 UTC to the second (`2025-01-31T12:00:00Z`), as Semaphore's JSON shows `created`.
pub(crate) fn now_rfc3339() -> String {
    let seconds = i64::try_from(crate::clock::now()).unwrap_or(0);
    jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
