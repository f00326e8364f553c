//! The user list and user creation (`api/users.go`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use pvetoken_api::ExposeSecret;
use serde::Deserialize;

use super::extract::Caller;
use super::{Answer, bind, json, status};
use crate::semaphore::sim::SemaphoreSim;
use crate::semaphore::store::{self, StoredUser};

/// An admin sees every field; anyone else only id, name and login.
pub(super) async fn list_users(State(sim): State<SemaphoreSim>, Caller(user): Caller) -> Answer {
    let state = sim.lock();
    if user.admin {
        let users: Vec<_> = state.users.iter().map(StoredUser::to_api).collect();
        Ok(json(StatusCode::OK, &users))
    } else {
        let users: Vec<_> = state
            .users
            .iter()
            .map(|u| serde_json::json!({ "id": u.id, "name": u.name, "username": u.username }))
            .collect();
        Ok(json(StatusCode::OK, &users))
    }
}

#[derive(Deserialize)]
struct UserRequest {
    #[serde(default)]
    name: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: Option<pvetoken_api::Secret>,
    #[serde(default)]
    alert: bool,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    external: bool,
}

pub(super) async fn create_user(State(sim): State<SemaphoreSim>, Caller(editor): Caller, body: Bytes) -> Answer {
    let request: UserRequest = bind(&body)?;
    // Semaphore's addUser answers 401 (not 403) to a non-admin.
    if !editor.admin {
        return Err(status(StatusCode::UNAUTHORIZED));
    }
    let mut state = sim.lock();
    let taken = state.users.iter().any(|user| {
        user.username.eq_ignore_ascii_case(&request.username) || user.email.eq_ignore_ascii_case(&request.email)
    });
    if request.username.is_empty() || request.email.is_empty() || request.name.is_empty() || taken {
        return Err(status(StatusCode::BAD_REQUEST));
    }
    let id = state.new_id();
    let mut user = StoredUser {
        id,
        username: request.username,
        name: request.name,
        email: request.email,
        created: store::now_rfc3339(),
        admin: request.admin,
        external: request.external,
        alert: request.alert,
        password_salt: String::new(),
        password_hash: String::new(),
    };
    if let Some(password) = &request.password {
        user.set_password(password.expose_secret(), sim.rng());
    }
    let view = user.to_api();
    state.users.push(user);
    sim.save(&state);
    Ok(json(StatusCode::CREATED, &view))
}
