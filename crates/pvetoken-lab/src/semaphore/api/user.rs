//! The caller's own account and API tokens (`api/user.go`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::extract::Caller;
use super::{Answer, bind, json, status};
use crate::semaphore::sim::SemaphoreSim;
use crate::semaphore::store::StoredToken;

pub(super) async fn current_user(Caller(user): Caller) -> Answer {
    let mut value = serde_json::to_value(user.to_api()).map_err(|_| status(StatusCode::INTERNAL_SERVER_ERROR))?;
    value["can_create_project"] = serde_json::Value::Bool(user.admin);
    Ok(json(StatusCode::OK, &value))
}

/// An API token as Semaphore lists it.
#[derive(serde::Serialize)]
struct TokenView<'a> {
    id: &'a str,
    name: &'a str,
    created: &'a str,
    expired: bool,
    user_id: i64,
}

impl<'a> From<&'a StoredToken> for TokenView<'a> {
    fn from(token: &'a StoredToken) -> Self {
        Self {
            id: &token.id,
            name: &token.name,
            created: &token.created,
            expired: token.expired,
            user_id: token.user_id,
        }
    }
}

pub(super) async fn list_tokens(State(sim): State<SemaphoreSim>, Caller(user): Caller) -> Answer {
    let state = sim.lock();
    let tokens: Vec<TokenView<'_>> =
        state.tokens.iter().filter(|token| token.user_id == user.id).map(TokenView::from).collect();
    Ok(json(StatusCode::OK, &tokens))
}

#[derive(Deserialize, Default)]
struct TokenRequest {
    #[serde(default)]
    name: String,
}

pub(super) async fn create_token(State(sim): State<SemaphoreSim>, Caller(user): Caller, body: Bytes) -> Answer {
    // The body is optional (api-docs 2.16: `{name}`).
    let request: TokenRequest =
        if body.iter().all(u8::is_ascii_whitespace) { TokenRequest::default() } else { bind(&body)? };
    let mut state = sim.lock();
    let token = state.issue_token(user.id, request.name, sim.rng());
    sim.save(&state);
    Ok(json(StatusCode::CREATED, &TokenView::from(&token)))
}

pub(super) async fn expire_token(
    State(sim): State<SemaphoreSim>,
    Path(token_id): Path<String>,
    Caller(user): Caller,
) -> Answer {
    let mut state = sim.lock();
    let token = state
        .tokens
        .iter_mut()
        .find(|token| token.id == token_id && token.user_id == user.id)
        .ok_or_else(|| status(StatusCode::NOT_FOUND))?;
    token.expired = true;
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}
