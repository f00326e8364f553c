//! Projects (`api/projects/projects.go`, `project.go`) and, one module each, the project resources of
//! `api/projects/*.go` the simulator models.

pub(super) mod environment;
pub(super) mod inventory;
pub(super) mod members;
pub(super) mod repository;
pub(super) mod templates;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use pvetoken_api::semaphore::ProjectRole;
use serde::Deserialize;

use super::extract::{Caller, ProjectCall, ReadOnly};
use super::{Answer, bind, json, status};
use crate::semaphore::sim::SemaphoreSim;

/// `?sort=&order=` of the project listings.
#[derive(Deserialize)]
pub(crate) struct ListQuery {
    sort: Option<String>,
    order: Option<String>,
}

impl ListQuery {
    fn descending(&self) -> bool {
        self.order.as_deref() == Some("desc")
    }

    /// Whether `?sort=` names `field`.
    fn sorts_by(&self, field: &str) -> bool {
        self.sort.as_deref() == Some(field)
    }

    /// Sorts `rows` by `key`, then reverses them for `order=desc`.
    fn order<T, K: Ord>(&self, rows: &mut [T], key: impl Fn(&T) -> K) {
        rows.sort_by_cached_key(key);
        if self.descending() {
            rows.reverse();
        }
    }
}

/// A project listing: the simulator, the project (authenticated and admitted as [`ProjectCall`], before the query
/// string is looked at) and `?sort=&order=`.
pub(crate) struct Listing<P> {
    pub(crate) sim: SemaphoreSim,
    pub(crate) project_id: i64,
    pub(crate) query: ListQuery,
    permission: std::marker::PhantomData<fn() -> P>,
}

impl<P: super::extract::Permission> axum::extract::FromRequestParts<SemaphoreSim> for Listing<P> {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        sim: &SemaphoreSim,
    ) -> Result<Self, axum::response::Response> {
        use axum::response::IntoResponse as _;
        let project_id = ProjectCall::<P>::from_request_parts(parts, sim).await?.project_id;
        let axum::extract::Query(query) =
            axum::extract::Query::<ListQuery>::from_request_parts(parts, sim).await.map_err(|e| e.into_response())?;
        Ok(Listing { sim: sim.clone(), project_id, query, permission: std::marker::PhantomData })
    }
}

/// An admin sees every project, anyone else the projects they are a member of.
pub(super) async fn list_projects(State(sim): State<SemaphoreSim>, Caller(user): Caller) -> Answer {
    let state = sim.lock();
    let projects: Vec<_> = state
        .projects
        .iter()
        .filter(|project| user.admin || state.role(project.id, user.id).is_some())
        .cloned()
        .collect();
    Ok(json(StatusCode::OK, &projects))
}

#[derive(Deserialize)]
struct ProjectRequest {
    #[serde(default)]
    name: String,
    #[serde(default)]
    alert: bool,
    #[serde(default)]
    alert_chat: Option<String>,
    #[serde(default)]
    max_parallel_tasks: i64,
    #[serde(default, rename = "type")]
    kind: String,
}

pub(super) async fn create_project(State(sim): State<SemaphoreSim>, Caller(user): Caller, body: Bytes) -> Answer {
    // Non-admins may create projects only when `non_admin_can_create_project` is set, which the lab does not set.
    if !user.admin {
        return Err(status(StatusCode::UNAUTHORIZED));
    }
    let request: ProjectRequest = bind(&body)?;
    let mut state = sim.lock();
    let mut project = state.create_project(&request.name, Some(user.id));
    project.alert = request.alert;
    project.alert_chat = request.alert_chat;
    project.max_parallel_tasks = request.max_parallel_tasks.max(0);
    project.kind = request.kind;
    if let Some(stored) = state.projects.iter_mut().find(|stored| stored.id == project.id) {
        *stored = project.clone();
    }
    sim.save(&state);
    Ok(json(StatusCode::CREATED, &project))
}

pub(super) async fn get_project(State(sim): State<SemaphoreSim>, call: ProjectCall<ReadOnly>) -> Answer {
    let state = sim.lock();
    let project = state.project(call.project_id).ok_or_else(|| status(StatusCode::NOT_FOUND))?;
    Ok(json(StatusCode::OK, project))
}

/// The caller's role and its permission bits; an admin who is not a member has role `""` and no bits.
pub(super) async fn get_role(call: ProjectCall<ReadOnly>) -> Answer {
    let role = call.role;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "role": role.map_or(serde_json::json!(""), |role| serde_json::json!(role)),
            "permissions": role.map_or(0, ProjectRole::permissions),
        }),
    ))
}
