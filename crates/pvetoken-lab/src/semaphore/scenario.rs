//! The `[semaphore]` table of a lab scenario and the state it seeds: a fresh install's administrator (user 1),
//! projects 1, 2, ... each with its `Empty` environment, then the scenario's users, inventories, repositories and
//! templates in that order.

use pvetoken_api::semaphore::ProjectRole;

use super::error::SemaphoreError;
use super::store::{Member, State, StoredUser};
use crate::rng::LabRng;

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

pub(super) fn local_inventory() -> String {
    "localhost ansible_connection=local".to_owned()
}

pub(super) fn static_inventory() -> String {
    "static".to_owned()
}

pub(super) fn main_branch() -> String {
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

pub(super) fn new_user(id: i64, username: &str, admin: bool) -> StoredUser {
    StoredUser {
        id,
        username: username.to_owned(),
        name: username.to_owned(),
        email: format!("{username}@lab.invalid"),
        created: super::store::now_rfc3339(),
        admin,
        external: false,
        alert: false,
        password_salt: String::new(),
        password_hash: String::new(),
    }
}

/// The state of a first start from `scenario` (the administrator has no password yet).
pub(super) fn initial_state(scenario: &SemaphoreScenario, rng: &LabRng) -> Result<State, SemaphoreError> {
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
        stored.set_password(&user.password, rng);
        state.users.push(stored);
        if let (Some(project_id), Some(role)) = (user.project, user.role) {
            state.members.push(Member { project_id, user_id: id, role });
        }
    }
    for inventory in &scenario.inventories {
        state.add_inventory(inventory.project, &inventory.name, &inventory.inventory, &inventory.kind);
    }
    for repository in &scenario.repositories {
        state.add_repository(repository.project, &repository.name, &repository.git_url, &repository.git_branch);
    }
    for template in &scenario.templates {
        let project_id = template.project;
        let undefined = |kind: &str, name: &str| {
            SemaphoreError::Scenario(format!(
                "template `{}` names the {kind} `{name}`, which project {project_id} does not have",
                template.name
            ))
        };
        // Every name the template gives must exist in its project.
        let found = |kind: &str, name: &str, id: Option<i64>| id.ok_or_else(|| undefined(kind, name));
        let inventory_of =
            |name: &str| id_named(&state.inventories, project_id, name, |i| (i.project_id, i.id, &i.name));
        let repository_of =
            |name: &str| id_named(&state.repositories, project_id, name, |r| (r.project_id, r.id, &r.name));
        let environment_of =
            |name: &str| id_named(&state.environments, project_id, name, |e| (e.project_id, e.id, &e.name));
        let inventory_id = template.inventory.as_deref().map(|name| found("inventory", name, inventory_of(name)));
        let environment_id =
            template.environment.as_deref().map(|name| found("environment", name, environment_of(name)));
        let repository_id = found("repository", &template.repository, repository_of(&template.repository))?;
        let (inventory_id, environment_id) = (inventory_id.transpose()?, environment_id.transpose()?);
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

/// The id of the row of project `project_id` named `name`; `fields` gives a row's project id, id and name.
fn id_named<T>(rows: &[T], project_id: i64, name: &str, fields: impl Fn(&T) -> (i64, i64, &String)) -> Option<i64> {
    rows.iter()
        .map(fields)
        .find(|(project, _, named)| *project == project_id && named.as_str() == name)
        .map(|row| row.1)
}
