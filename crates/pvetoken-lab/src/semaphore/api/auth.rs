//! Sessions (`api/login.go`) and the `authentication` middleware (`api/auth.go`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pvetoken_api::ExposeSecret;
use pvetoken_api::semaphore::LoginRequest;

use super::{Answer, bind, json, status};
use crate::semaphore::sim::SemaphoreSim;
use crate::semaphore::store::{self, Session, StoredUser};

/// A Bearer API token (header lower-cased, `bearer ` stripped) or the `semaphore` session cookie; anything else is
/// a bare 401.
pub(super) fn authenticate(sim: &SemaphoreSim, headers: &HeaderMap) -> Result<StoredUser, Response> {
    let unauthorized = || status(StatusCode::UNAUTHORIZED);
    let state = sim.lock();
    let authorization =
        headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).unwrap_or("").to_lowercase();
    let user_id = if !authorization.is_empty() && authorization.contains("bearer") {
        let token = authorization.replacen("bearer ", "", 1);
        state
            .tokens
            .iter()
            .find(|stored| stored.id == token && !stored.expired)
            .map(|stored| stored.user_id)
            .ok_or_else(unauthorized)?
    } else {
        let cookie = session_cookie(headers).ok_or_else(unauthorized)?;
        state.sessions.iter().find(|session| session.cookie == cookie).map(|s| s.user_id).ok_or_else(unauthorized)?
    };
    state.user(user_id).cloned().ok_or_else(unauthorized)
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == "semaphore" && !value.is_empty()).then(|| value.to_owned())
        })
    })
}

pub(super) async fn login_metadata() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "oidc_providers": [], "login_with_password": true }))
}

pub(super) async fn login(State(sim): State<SemaphoreSim>, body: Bytes) -> Answer {
    let request: LoginRequest = bind(&body)?;
    let mut state = sim.lock();
    let user_id = match state.user_by_login(&request.auth) {
        Some(user) if user.password_matches(request.password.expose_secret()) => user.id,
        _ => return Err(status(StatusCode::UNAUTHORIZED)),
    };
    let cookie = store::random_token(sim.rng());
    state.sessions.push(Session { cookie: cookie.clone(), user_id });
    sim.save(&state);
    let set_cookie = HeaderValue::from_str(&format!("semaphore={cookie}; Path=/; HttpOnly"))
        .map_err(|_| status(StatusCode::INTERNAL_SERVER_ERROR))?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, set_cookie)]).into_response())
}

pub(super) async fn logout(State(sim): State<SemaphoreSim>, headers: HeaderMap) -> Response {
    if let Some(cookie) = session_cookie(&headers) {
        let mut state = sim.lock();
        state.sessions.retain(|session| session.cookie != cookie);
        sim.save(&state);
    }
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, HeaderValue::from_static("semaphore=; Path=/; Max-Age=0; HttpOnly"))],
    )
        .into_response()
}
