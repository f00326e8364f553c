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
//!
//! Layout: this file is the simulator's handle; `scenario.rs` the `[semaphore]` table and the state it seeds;
//! `store.rs` the data, its persistence and encryption; `api/` the HTTP side, one module per resource as in
//! Semaphore's `api/` and `api/projects/`. Inside the lab, randomness is the lab's generator (`--seed` reaches the
//! simulator); [`SemaphoreSim::open`] alone uses OS randomness.

mod api;
mod scenario;
mod store;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

pub use pvetoken_api::semaphore::ProjectRole;
pub use scenario::{ScenarioInventory, ScenarioRepository, ScenarioTemplate, ScenarioUser, SemaphoreScenario};

use crate::rng::LabRng;
use scenario::{initial_state, local_inventory, main_branch, new_user, static_inventory};
use store::{Cipher, Member, Persistence, State};

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
    /// The lab's generator (`--seed` reaches salts, cookies, API tokens, the key and nonces through it).
    rng: Arc<LabRng>,
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
    /// Opens (or creates) the simulator state, with OS randomness. The administrator's password is (re)set to
    /// `admin_password` on every start so that the ready file is always right.
    pub fn open(
        state_dir: Option<&Path>,
        scenario: &SemaphoreScenario,
        admin_password: String,
    ) -> Result<Self, SemaphoreError> {
        Self::open_with_rng(state_dir, scenario, admin_password, Arc::new(LabRng::new(None)))
    }

    /// [`SemaphoreSim::open`] drawing every random byte from `rng` (the lab's, seeded by `--seed`).
    pub(crate) fn open_with_rng(
        state_dir: Option<&Path>,
        scenario: &SemaphoreScenario,
        admin_password: String,
        rng: Arc<LabRng>,
    ) -> Result<Self, SemaphoreError> {
        // The lab's atomic writer creates `semaphore/` (0700) with the first file it writes there.
        let dir = state_dir.map(|state_dir| state_dir.join("semaphore"));
        let cipher = Cipher::load_or_create(dir.as_deref(), &rng)?;
        let persistence = Persistence { path: dir.as_ref().map(|dir| dir.join("state.json")) };
        let mut state = match persistence.load()? {
            Some(state) => state,
            None => initial_state(scenario, &rng)?,
        };
        let admin_user = scenario.admin_user.clone();
        match state.users.iter_mut().find(|user| user.username == admin_user) {
            Some(admin) => admin.set_password(&admin_password, &rng),
            None => {
                let id = state.new_id();
                let mut admin = new_user(id, &admin_user, true);
                admin.set_password(&admin_password, &rng);
                state.users.push(admin);
            }
        }
        persistence.save(&state)?;
        Ok(Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                rng,
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
        api::router(self.clone())
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
        user.set_password(password, &self.inner.rng);
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
        let token = state.issue_token(user_id, "pvetoken".to_owned(), &self.inner.rng);
        self.save(&state);
        Some(token.id)
    }

    /// Back to `scenario` (the one the simulator was opened with): users, sessions, API tokens, projects,
    /// environments, secrets, inventories, repositories and templates as on a first start; pending faults are dropped. The administrator keeps its login
    /// and password (the ready file stays right) and the encryption key is kept.
    pub fn reset(&self, scenario: &SemaphoreScenario) -> Result<(), SemaphoreError> {
        let mut fresh = initial_state(scenario, &self.inner.rng)?;
        if let Some(admin) = fresh.users.iter_mut().find(|user| user.username == self.inner.admin_user) {
            admin.set_password(&self.inner.admin_password, &self.inner.rng);
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
        let id = state.add_inventory(project_id, name, &local_inventory(), &static_inventory());
        self.save(&state);
        id
    }

    /// Adds a repository to `project_id`; returns its id.
    pub fn add_repository(&self, project_id: i64, name: &str, git_url: &str) -> i64 {
        let mut state = self.lock();
        let id = state.add_repository(project_id, name, git_url, &main_branch());
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
