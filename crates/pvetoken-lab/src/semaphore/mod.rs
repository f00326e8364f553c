//! The Semaphore UI API simulator (second listener of the lab).
//!
//! Contract with the rest of the lab (the server code starts it next to the PVE simulator, on its own port, with
//! the same certificate):
//! - [`SemaphoreScenario`] is the `[semaphore]` table of the lab scenario;
//! - [`SemaphoreSim::open`] loads or creates its state (in `state_dir/semaphore/` when a state dir is given);
//! - [`SemaphoreSim::router`] is the axum router to serve under `/`;
//! - [`SemaphoreSim::admin_user`] / [`SemaphoreSim::admin_password`] go into the ready file as
//!   `semaphore_user` / `semaphore_password`.
//!
//! What it answers, as Semaphore 2.16 does (`api-docs.yml` 2.16.14 and the Go handlers in `api/`):
//! - `POST /api/auth/login` (`{auth, password}`, 204 + `semaphore` cookie, 401 on a bad login, 400 on a bad body),
//!   `POST /api/auth/logout`, `GET /api/auth/login` (login metadata), `GET /api/ping`;
//! - `GET /api/user`, `GET/POST /api/user/tokens`, `DELETE /api/user/tokens/{id}` (Bearer tokens);
//! - `GET/POST /api/users` (only an admin creates users);
//! - `GET/POST /api/projects`, `GET /api/project/{id}`, `GET /api/project/{id}/role`,
//!   `GET/POST /api/project/{id}/users`, `PUT/DELETE /api/project/{id}/users/{user_id}`;
//! - `GET/POST /api/project/{id}/environment`, `GET/PUT/DELETE /api/project/{id}/environment/{env_id}` with
//!   `secrets[]` operations; secret values are stored AES-256-GCM encrypted and never returned; deleting an
//!   environment a template uses answers 400 `{"error":"Environment is in use by one or more templates","inUse":true}`;
//! - `GET /api/project/{id}/templates` (`sort`, `order`, `app`), `POST` (201 with the template),
//!   `GET/PUT/DELETE /api/project/{id}/templates/{template_id}` (PUT answers 204), validated as `db.Template.Validate`
//!   and the SQL back-ends' foreign keys do: the inventory, repository and environment must exist in the project
//!   (bare 400 otherwise); the app must be one of a default install's (`Invalid app id: X`, checked after the row is
//!   stored, as `AddTemplate` does); a Terraform/OpenTofu template without an inventory gets a `default` workspace;
//! - `GET /api/project/{id}/inventory` and `GET /api/project/{id}/repositories`: read-only listings of the rows the
//!   scenario seeds (`[[semaphore.inventories]]`, `[[semaphore.repositories]]`) so that templates have something to
//!   point at. Keys, inventory/repository create/update/delete, tasks, schedules, views, vaults and survey variables
//!   are not modelled.
//!
//! Permissions are Semaphore's: every project member (any role) may read; creating, changing or deleting
//! environments needs the owner or manager role (or an admin); changing the project's users needs owner. A user who
//! is not a member gets 404 for the project, as Semaphore answers.
//!
//! Faults can be injected ([`SemaphoreSim::inject_fault`]) to test what clients do when Semaphore fails half-way.

mod handlers;
mod store;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

pub use pvetoken_api::semaphore::ProjectRole;

use store::{Cipher, Member, Persistence, State, StoredUser};

/// The `[semaphore]` table of a lab scenario.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct SemaphoreScenario {
    /// Login of the administrator (default `admin`).
    pub admin_user: String,
    /// Projects created at first start, ids 1, 2, ... in this order (default: one project, `PrivateBox`).
    pub projects: Vec<String>,
    /// Extra users created at first start.
    pub users: Vec<ScenarioUser>,
    /// Answer `POST .../environment` with 204 and no body, as Semaphore 2.10 did (2.16 answers 201 with the
    /// environment).
    pub create_answers_no_content: bool,
    /// Inventories created at first start (after the projects and users).
    pub inventories: Vec<ScenarioInventory>,
    /// Repositories created at first start.
    pub repositories: Vec<ScenarioRepository>,
    /// Templates created at first start (after inventories and repositories, which they name).
    pub templates: Vec<ScenarioTemplate>,
}

impl Default for SemaphoreScenario {
    fn default() -> Self {
        Self {
            admin_user: "admin".to_owned(),
            projects: vec!["PrivateBox".to_owned()],
            users: Vec::new(),
            create_answers_no_content: false,
            inventories: Vec::new(),
            repositories: Vec::new(),
            templates: Vec::new(),
        }
    }
}

/// An inventory of the scenario (`[[semaphore.inventories]]`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioInventory {
    /// Project id (default 1).
    #[serde(default = "first_project")]
    pub project: i64,
    /// Name, unique in the project (templates refer to it).
    pub name: String,
    /// Inventory text (default `localhost ansible_connection=local`).
    #[serde(default = "local_inventory")]
    pub inventory: String,
    /// `static` (default), `static-yaml`, `file`.
    #[serde(default = "static_inventory", rename = "type")]
    pub kind: String,
}

/// A repository of the scenario (`[[semaphore.repositories]]`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRepository {
    /// Project id (default 1).
    #[serde(default = "first_project")]
    pub project: i64,
    /// Name, unique in the project (templates refer to it).
    pub name: String,
    /// Git URL.
    pub git_url: String,
    /// Branch (default `main`).
    #[serde(default = "main_branch")]
    pub git_branch: String,
}

/// A template of the scenario (`[[semaphore.templates]]`); inventory, repository and environment by name.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioTemplate {
    /// Project id (default 1).
    #[serde(default = "first_project")]
    pub project: i64,
    /// Name.
    pub name: String,
    /// Playbook path.
    pub playbook: String,
    /// App (default `ansible`).
    #[serde(default = "ansible_app")]
    pub app: String,
    /// Inventory name (an `ansible` template needs one).
    #[serde(default)]
    pub inventory: Option<String>,
    /// Repository name.
    pub repository: String,
    /// Environment name: one that exists at first start (every project has `Empty`); none when absent.
    #[serde(default)]
    pub environment: Option<String>,
}

fn first_project() -> i64 {
    1
}

fn local_inventory() -> String {
    "localhost ansible_connection=local".to_owned()
}

fn static_inventory() -> String {
    "static".to_owned()
}

fn main_branch() -> String {
    "main".to_owned()
}

fn ansible_app() -> String {
    "ansible".to_owned()
}

/// A user of the scenario, optionally a member of one project.
#[derive(Clone, serde::Deserialize)]
pub struct ScenarioUser {
    /// Login.
    pub username: String,
    /// Password (a lab password).
    pub password: String,
    /// Whether the user is a Semaphore admin.
    #[serde(default)]
    pub admin: bool,
    /// Project id the user belongs to, with `role`.
    #[serde(default)]
    pub project: Option<i64>,
    /// The user's role in `project`.
    #[serde(default)]
    pub role: Option<ProjectRole>,
}

impl std::fmt::Debug for ScenarioUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScenarioUser")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("admin", &self.admin)
            .field("project", &self.project)
            .field("role", &self.role)
            .finish()
    }
}

/// Why the Semaphore simulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SemaphoreError {
    /// The state directory could not be read or written.
    #[error("semaphore state in {path}: {source}")]
    State {
        /// The file or directory concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The `[semaphore]` table names something it does not define (a template's repository, inventory, ...).
    #[error("lab scenario [semaphore]: {0}")]
    Scenario(String),
}

/// A failure the simulator produces once, on purpose, to test clients (answered as HTTP 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `POST .../environment` stores the environment row, then fails before storing any secret (Semaphore creates
    /// the row first, so a failure here leaves a half-made environment).
    AfterEnvironmentCreated,
    /// A create or update stops after its first secret operation.
    AfterFirstSecretOperation,
}

/// A running Semaphore simulator's state. Cloning shares the state.
#[derive(Clone)]
pub struct SemaphoreSim {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    cipher: Cipher,
    persistence: Persistence,
    faults: Mutex<Vec<Fault>>,
    admin_user: String,
    admin_password: String,
    create_answers_no_content: bool,
}

impl std::fmt::Debug for SemaphoreSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemaphoreSim")
            .field("admin_user", &self.inner.admin_user)
            .field("state_file", &self.inner.persistence.path)
            .finish_non_exhaustive()
    }
}

impl SemaphoreSim {
    /// Opens (or creates) the simulator state. The administrator's password is (re)set to `admin_password` on every
    /// start so that the ready file is always right.
    pub fn open(
        state_dir: Option<&Path>,
        scenario: &SemaphoreScenario,
        admin_password: String,
    ) -> Result<Self, SemaphoreError> {
        let dir = match state_dir {
            Some(state_dir) => {
                let dir = state_dir.join("semaphore");
                create_private_dir(&dir)?;
                Some(dir)
            }
            None => None,
        };
        let cipher = Cipher::load_or_create(dir.as_deref())?;
        let persistence = Persistence { path: dir.as_ref().map(|dir| dir.join("state.json")) };
        let mut state = match persistence.load()? {
            Some(state) => state,
            None => initial_state(scenario)?,
        };
        let admin_user = scenario.admin_user.clone();
        match state.users.iter_mut().find(|user| user.username == admin_user) {
            Some(admin) => admin.set_password(&admin_password),
            None => {
                let id = state.new_id();
                let mut admin = new_user(id, &admin_user, true);
                admin.set_password(&admin_password);
                state.users.push(admin);
            }
        }
        persistence.save(&state)?;
        Ok(Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                cipher,
                persistence,
                faults: Mutex::new(Vec::new()),
                admin_user,
                admin_password,
                create_answers_no_content: scenario.create_answers_no_content,
            }),
        })
    }

    /// The router that answers Semaphore's `/api/...`.
    pub fn router(&self) -> axum::Router {
        handlers::router(self.clone())
    }

    /// The simulator's administrator login.
    pub fn admin_user(&self) -> &str {
        &self.inner.admin_user
    }

    /// The simulator's administrator password (written only to the 0600 ready file).
    pub fn admin_password(&self) -> &str {
        &self.inner.admin_password
    }

    /// The state file (`state_dir/semaphore/state.json`), when the state is persisted.
    pub fn state_file(&self) -> Option<&Path> {
        self.inner.persistence.path.as_deref()
    }

    /// Adds a (non-admin) user, optionally as a member of `project_id` with `role`; returns the user id.
    pub fn add_user(&self, username: &str, password: &str, membership: Option<(i64, ProjectRole)>) -> i64 {
        let mut state = self.lock();
        let id = state.new_id();
        let mut user = new_user(id, username, false);
        user.set_password(password);
        state.users.push(user);
        if let Some((project_id, role)) = membership {
            state.members.push(Member { project_id, user_id: id, role });
        }
        self.save(&state);
        id
    }

    /// Creates an API token for `username`, as `POST /api/user/tokens` would (for tests and the lab's bootstrap).
    pub fn create_api_token(&self, username: &str) -> Option<String> {
        let mut state = self.lock();
        let user_id = state.user_by_login(username)?.id;
        let id = store::random_token();
        state.tokens.push(store::StoredToken {
            id: id.clone(),
            name: "pvetoken".to_owned(),
            user_id,
            created: store::now_rfc3339(),
            expired: false,
        });
        self.save(&state);
        Some(id)
    }

    /// Back to `scenario` (the one the simulator was opened with): users, sessions, API tokens, projects,
    /// environments, secrets, inventories, repositories and templates as on a first start; pending faults are dropped. The administrator keeps its login
    /// and password (the ready file stays right) and the encryption key is kept.
    pub fn reset(&self, scenario: &SemaphoreScenario) -> Result<(), SemaphoreError> {
        let mut fresh = initial_state(scenario)?;
        if let Some(admin) = fresh.users.iter_mut().find(|user| user.username == self.inner.admin_user) {
            admin.set_password(&self.inner.admin_password);
        }
        let mut state = self.lock();
        *state = fresh;
        self.faults().clear();
        self.inner.persistence.save(&state)
    }

    /// Makes the next request that reaches `fault`'s point fail with HTTP 500.
    pub fn inject_fault(&self, fault: Fault) {
        self.faults().push(fault);
    }

    /// The decrypted value of the secret `name` of environment `environment_id` (for tests that check what a
    /// client stored; the API itself never returns it). `None` when there is no such secret, several values for
    /// that name are not distinguished: the first is returned.
    pub fn secret_value(&self, environment_id: i64, name: &str) -> Option<String> {
        let state = self.lock();
        let secret =
            state.secrets.iter().find(|secret| secret.environment_id == environment_id && secret.name == name)?;
        self.inner.cipher.decrypt(&secret.ciphertext)
    }

    /// The ids of the environments named `name` in `project_id` (Semaphore does not keep names unique).
    pub fn environment_ids(&self, project_id: i64, name: &str) -> Vec<i64> {
        self.lock()
            .environments
            .iter()
            .filter(|env| env.project_id == project_id && env.name == name)
            .map(|env| env.id)
            .collect()
    }

    /// Adds a static inventory to `project_id` (what a user would create in the UI); returns its id.
    pub fn add_inventory(&self, project_id: i64, name: &str) -> i64 {
        let mut state = self.lock();
        let id = state.new_id();
        state.inventories.push(store::StoredInventory {
            id,
            project_id,
            name: name.to_owned(),
            inventory: local_inventory(),
            kind: static_inventory(),
            template_id: None,
        });
        self.save(&state);
        id
    }

    /// Adds a repository to `project_id`; returns its id.
    pub fn add_repository(&self, project_id: i64, name: &str, git_url: &str) -> i64 {
        let mut state = self.lock();
        let id = state.new_id();
        state.repositories.push(store::StoredRepository {
            id,
            project_id,
            name: name.to_owned(),
            git_url: git_url.to_owned(),
            git_branch: main_branch(),
        });
        self.save(&state);
        id
    }

    /// The templates of `project_id` as stored (for tests that check what a client changed).
    pub fn templates(&self, project_id: i64) -> Vec<pvetoken_api::semaphore::Template> {
        self.lock().templates.iter().filter(|tpl| tpl.project_id == project_id).cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every mutation is a push or a field write).
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn faults(&self) -> MutexGuard<'_, Vec<Fault>> {
        self.inner.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Consumes an injected fault at `point`, if one is pending.
    fn take_fault(&self, point: Fault) -> bool {
        let mut faults = self.faults();
        match faults.iter().position(|fault| *fault == point) {
            Some(index) => {
                faults.remove(index);
                true
            }
            None => false,
        }
    }

    /// Persists the state; a failure to write is reported on the next start, not to the API client.
    fn save(&self, state: &State) -> bool {
        self.inner.persistence.save(state).is_ok()
    }
}

fn create_private_dir(dir: &Path) -> Result<(), SemaphoreError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SemaphoreError::State { path: dir.to_path_buf(), source })
}

fn new_user(id: i64, username: &str, admin: bool) -> StoredUser {
    StoredUser {
        id,
        username: username.to_owned(),
        name: username.to_owned(),
        email: format!("{username}@lab.invalid"),
        created: store::now_rfc3339(),
        admin,
        external: false,
        alert: false,
        password_salt: String::new(),
        password_hash: String::new(),
    }
}

fn initial_state(scenario: &SemaphoreScenario) -> Result<State, SemaphoreError> {
    let mut state = State::default();
    // The admin is user 1, as after `semaphore user add --admin` on a fresh install.
    let admin_id = state.new_id();
    state.users.push(new_user(admin_id, &scenario.admin_user, true));
    for name in &scenario.projects {
        state.create_project(name, Some(admin_id));
    }
    for user in &scenario.users {
        let id = state.new_id();
        let mut stored = new_user(id, &user.username, user.admin);
        stored.set_password(&user.password);
        state.users.push(stored);
        if let (Some(project_id), Some(role)) = (user.project, user.role) {
            state.members.push(Member { project_id, user_id: id, role });
        }
    }
    for inventory in &scenario.inventories {
        let id = state.new_id();
        state.inventories.push(store::StoredInventory {
            id,
            project_id: inventory.project,
            name: inventory.name.clone(),
            inventory: inventory.inventory.clone(),
            kind: inventory.kind.clone(),
            template_id: None,
        });
    }
    for repository in &scenario.repositories {
        let id = state.new_id();
        state.repositories.push(store::StoredRepository {
            id,
            project_id: repository.project,
            name: repository.name.clone(),
            git_url: repository.git_url.clone(),
            git_branch: repository.git_branch.clone(),
        });
    }
    for template in &scenario.templates {
        let project_id = template.project;
        let undefined = |kind: &str, name: &str| {
            SemaphoreError::Scenario(format!(
                "template `{}` names the {kind} `{name}`, which project {project_id} does not have",
                template.name
            ))
        };
        let inventory_id = match &template.inventory {
            Some(name) => Some(
                state
                    .inventories
                    .iter()
                    .find(|inv| inv.project_id == project_id && inv.name == *name)
                    .map(|inv| inv.id)
                    .ok_or_else(|| undefined("inventory", name))?,
            ),
            None => None,
        };
        let repository_id = state
            .repositories
            .iter()
            .find(|repo| repo.project_id == project_id && repo.name == template.repository)
            .map(|repo| repo.id)
            .ok_or_else(|| undefined("repository", &template.repository))?;
        let environment_id = match &template.environment {
            Some(name) => Some(
                state
                    .environments
                    .iter()
                    .find(|env| env.project_id == project_id && env.name == *name)
                    .map(|env| env.id)
                    .ok_or_else(|| undefined("environment", name))?,
            ),
            None => None,
        };
        let id = state.new_id();
        state.templates.push(pvetoken_api::semaphore::Template {
            id,
            project_id,
            inventory_id,
            repository_id,
            environment_id,
            name: template.name.clone(),
            playbook: template.playbook.clone(),
            arguments: None,
            description: None,
            kind: String::new(),
            app: template.app.clone(),
            git_branch: None,
            view_id: None,
            autorun: false,
            allow_override_args_in_task: false,
            suppress_success_alerts: false,
            tasks: 0,
        });
    }
    Ok(state)
}
