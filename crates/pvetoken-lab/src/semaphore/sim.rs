//! The simulator's handle ([`SemaphoreSim`]): its state behind one lock, the lab's generator, persistence and
//! encryption, injected faults; and what tests and the lab ask of it directly (users, tokens, secrets as stored).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use super::ProjectRole;
use super::error::SemaphoreError;
use super::scenario::{SemaphoreScenario, initial_state, local_inventory, main_branch, new_user, static_inventory};
use super::store::{Cipher, Member, Persistence, State};
use crate::rng::LabRng;

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

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every mutation is a push or a field write).
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn faults(&self) -> MutexGuard<'_, Vec<Fault>> {
        self.inner.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Consumes an injected fault at `point`, if one is pending.
    pub(super) fn take_fault(&self, point: Fault) -> bool {
        let mut faults = self.faults();
        match faults.iter().position(|fault| *fault == point) {
            Some(index) => {
                faults.remove(index);
                true
            }
            None => false,
        }
    }

    /// The lab's generator (salts, cookies, API tokens, nonces).
    pub(super) fn rng(&self) -> &LabRng {
        &self.inner.rng
    }

    /// A secret value encrypted for storage (AES-256-GCM under the simulator's key, a fresh nonce).
    pub(super) fn encrypt(&self, plaintext: &str) -> String {
        self.inner.cipher.encrypt(plaintext, &self.inner.rng)
    }

    /// Semaphore 2.10's create answers 204 without a body (the scenario's `create_answers_no_content`).
    pub(super) fn create_answers_no_content(&self) -> bool {
        self.inner.create_answers_no_content
    }

    /// Persists the state; a failure to write is reported on the next start, not to the API client.
    pub(super) fn save(&self, state: &State) -> bool {
        self.inner.persistence.save(state).is_ok()
    }
}
