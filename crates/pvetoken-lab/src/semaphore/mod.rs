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
//! Layout: `sim.rs` is the simulator's handle (this file adds its router); `scenario.rs` the `[semaphore]` table
//! and the state it seeds; `store.rs` the data, its persistence and encryption; `api/` the HTTP side, one module
//! per resource as in Semaphore's `api/` and `api/projects/`. Inside the lab, randomness is the lab's generator (`--seed` reaches the
//! simulator); [`SemaphoreSim::open`] alone uses OS randomness.

mod api;
mod error;
pub(crate) mod scenario;
mod sim;
mod store;

pub use error::SemaphoreError;
pub use pvetoken_api::semaphore::ProjectRole;
pub use scenario::{ScenarioInventory, ScenarioRepository, ScenarioTemplate, ScenarioUser, SemaphoreScenario};
pub use sim::{Fault, SemaphoreSim};

impl SemaphoreSim {
    /// The router that answers Semaphore's `/api/...`.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }
}
