//! The prologue of Semaphore's handlers as axum extractors: [`Caller`] is the `authentication` middleware,
//! [`ProjectCall`] and [`ProjectItemCall`] add `ProjectMiddleware` (the project id, membership) and
//! `GetMustCanMiddleware` (a permission for anything but GET/HEAD), in that order, before the handler runs.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use pvetoken_api::semaphore::ProjectRole;

use super::{auth, error, status};
use crate::semaphore::sim::SemaphoreSim;
use crate::semaphore::store::StoredUser;

/// The authenticated user (a Bearer API token or the `semaphore` session cookie); a bare 401 otherwise.
pub(crate) struct Caller(pub StoredUser);

impl FromRequestParts<SemaphoreSim> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, sim: &SemaphoreSim) -> Result<Self, Response> {
        auth::authenticate(sim, &parts.headers).map(Caller)
    }
}

/// What a project role must allow for a request that changes something (`db.ProjectUserPermission`).
pub(crate) trait Permission {
    fn allows(role: ProjectRole) -> bool;
}

/// Routes that only read (the project, the caller's role): any member may; a write would need an admin.
pub(crate) struct ReadOnly;

impl Permission for ReadOnly {
    fn allows(_: ProjectRole) -> bool {
        false
    }
}

/// Keys, inventories, repositories, environments, templates (`db.CanManageProjectResources`).
pub(crate) struct ManageResources;

impl Permission for ManageResources {
    fn allows(role: ProjectRole) -> bool {
        role.can_manage_resources()
    }
}

/// The project's users (`db.CanManageProjectUsers`).
pub(crate) struct ManageUsers;

impl Permission for ManageUsers {
    fn allows(role: ProjectRole) -> bool {
        role.can_manage_users()
    }
}

/// A request on `/api/project/{project_id}/...` by a user allowed to make it under permission `P` (once the
/// handler runs, who the user is no longer matters: Semaphore's project handlers do not look).
pub(crate) struct ProjectCall<P> {
    pub project_id: i64,
    /// The caller's role; `None` for an admin who is not a member.
    pub role: Option<ProjectRole>,
    permission: PhantomData<P>,
}

impl<P: Permission> FromRequestParts<SemaphoreSim> for ProjectCall<P> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, sim: &SemaphoreSim) -> Result<Self, Response> {
        let (call, _) = admit::<P>(parts, sim).await?;
        Ok(call)
    }
}

/// A request on `/api/project/{project_id}/<resources>/{id}`: [`ProjectCall`] and the resource's id.
pub(crate) struct ProjectItemCall<P> {
    pub project_id: i64,
    pub item_id: i64,
    permission: PhantomData<P>,
}

impl<P: Permission> FromRequestParts<SemaphoreSim> for ProjectItemCall<P> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, sim: &SemaphoreSim) -> Result<Self, Response> {
        let (call, item_id) = admit::<P>(parts, sim).await?;
        // The routes of this extractor all have a second parameter; a bare 400 as for any id that is not a number.
        let item_id = item_id.ok_or_else(|| status(StatusCode::BAD_REQUEST))?;
        Ok(Self { project_id: call.project_id, item_id, permission: PhantomData })
    }
}

/// Authenticates, parses the project id (and the resource id after it, if the route has one) and checks access.
/// Both ids are parsed before access is checked, so a malformed id is a 400 whoever asks.
async fn admit<P: Permission>(
    parts: &mut Parts,
    sim: &SemaphoreSim,
) -> Result<(ProjectCall<P>, Option<i64>), Response> {
    let Path(params) =
        Path::<Vec<(String, String)>>::from_request_parts(parts, sim).await.map_err(IntoResponse::into_response)?;
    let user = auth::authenticate(sim, &parts.headers)?;
    let mut values = params.into_iter().map(|(_, value)| value);
    let project_id: i64 = values
        .next()
        .and_then(|raw| raw.parse().ok())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "Invalid project ID"))?;
    let item_id = match values.next() {
        Some(raw) => Some(raw.parse::<i64>().map_err(|_| status(StatusCode::BAD_REQUEST))?),
        None => None,
    };
    let writes = !matches!(parts.method, Method::GET | Method::HEAD);
    let role = project_access(sim, &user, project_id, writes, P::allows)?;
    Ok((ProjectCall { project_id, role, permission: PhantomData }, item_id))
}

/// `ProjectMiddleware` + `GetMustCanMiddleware`: members (and admins) may read; a write needs `allows(role)` unless
/// the user is an admin. A user who is not a member, or a project that does not exist, is a 404.
fn project_access(
    sim: &SemaphoreSim,
    user: &StoredUser,
    project_id: i64,
    writes: bool,
    allows: fn(ProjectRole) -> bool,
) -> Result<Option<ProjectRole>, Response> {
    let state = sim.lock();
    let role = state.role(project_id, user.id);
    if role.is_none() && !user.admin {
        return Err(status(StatusCode::NOT_FOUND));
    }
    if state.project(project_id).is_none() {
        return Err(status(StatusCode::NOT_FOUND));
    }
    if writes && !user.admin && !role.is_some_and(allows) {
        return Err(status(StatusCode::FORBIDDEN));
    }
    Ok(role)
}
