//! The project's users (`api/projects/users.go`): members read, owners change.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use pvetoken_api::semaphore::ProjectRole;
use serde::Deserialize;

use super::Listing;
use crate::semaphore::api::extract::{ManageUsers, ProjectCall, ProjectItemCall};
use crate::semaphore::api::{Answer, bind, json, status};
use crate::semaphore::sim::SemaphoreSim;
use crate::semaphore::store::Member;

/// Sorted by `name` (default), `username`, `email` or `role`; the email is used for sorting but not shown.
pub(crate) async fn list_members(list: Listing<ManageUsers>) -> Answer {
    let state = list.sim.lock();
    let mut members: Vec<serde_json::Value> = state
        .members
        .iter()
        .filter(|member| member.project_id == list.project_id)
        .filter_map(|member| {
            let user = state.user(member.user_id)?;
            Some(serde_json::json!({
                "id": user.id, "name": user.name, "username": user.username, "email": user.email, "role": member.role,
            }))
        })
        .collect();
    let sortable = |field: &&str| matches!(*field, "name" | "username" | "email" | "role");
    let key = list.query.sort.as_deref().filter(sortable).unwrap_or("name");
    list.query.order(&mut members, |member| member[key].to_string());
    for member in &mut members {
        if let Some(object) = member.as_object_mut() {
            object.remove("email");
        }
    }
    Ok(json(StatusCode::OK, &members))
}

#[derive(Deserialize)]
struct MemberRequest {
    #[serde(default)]
    user_id: i64,
    #[serde(default)]
    role: Option<String>,
}

fn parse_role(raw: Option<&str>) -> Result<ProjectRole, Response> {
    serde_json::from_value(serde_json::Value::String(raw.unwrap_or_default().to_owned()))
        .map_err(|_| status(StatusCode::BAD_REQUEST))
}

/// A user who does not exist or is already a member is a 409.
pub(crate) async fn add_member(State(sim): State<SemaphoreSim>, call: ProjectCall<ManageUsers>, body: Bytes) -> Answer {
    let request: MemberRequest = bind(&body)?;
    let role = parse_role(request.role.as_deref())?;
    let mut state = sim.lock();
    if state.user(request.user_id).is_none() || state.role(call.project_id, request.user_id).is_some() {
        return Err(status(StatusCode::CONFLICT));
    }
    state.members.push(Member { project_id: call.project_id, user_id: request.user_id, role });
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}

pub(crate) async fn update_member(
    State(sim): State<SemaphoreSim>,
    call: ProjectItemCall<ManageUsers>,
    body: Bytes,
) -> Answer {
    let request: MemberRequest = bind(&body)?;
    let role = parse_role(request.role.as_deref())?;
    let mut state = sim.lock();
    let member = state
        .members
        .iter_mut()
        .find(|member| member.project_id == call.project_id && member.user_id == call.item_id)
        .ok_or_else(|| status(StatusCode::NOT_FOUND))?;
    member.role = role;
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}

pub(crate) async fn remove_member(State(sim): State<SemaphoreSim>, call: ProjectItemCall<ManageUsers>) -> Answer {
    let mut state = sim.lock();
    let before = state.members.len();
    state.members.retain(|member| !(member.project_id == call.project_id && member.user_id == call.item_id));
    if state.members.len() == before {
        return Err(status(StatusCode::NOT_FOUND));
    }
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}
