//! The HTTP side of the Semaphore simulator, laid out as Semaphore's own `api/` package: the route table here,
//! authentication (`auth.rs`), the caller's own account and API tokens (`user.rs`), the user list (`users.rs`), and
//! one module per project resource under `projects/`. Answers are Semaphore's: status codes and `{"error": ...}`
//! bodies as its Go handlers write them. The prologue most handlers share (authenticate, parse the project id,
//! check the caller's access to the project) is one extractor, [`extract::ProjectCall`].
#![expect(
    clippy::result_large_err,
    reason = "handlers return a ready HTTP answer as their error, once per request; boxing buys nothing"
)]

mod auth;
mod extract;
mod projects;
mod user;
mod users;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

use super::sim::SemaphoreSim;
use projects::{environment, inventory, members, repository, templates};

/// The routes, as `api/router.go` declares them (only those the simulator models).
pub(super) fn router(sim: SemaphoreSim) -> Router {
    Router::new()
        .route("/api/ping", get(ping))
        .route("/api/auth/login", get(auth::login_metadata).post(auth::login))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/user", get(user::current_user))
        .route("/api/user/", get(user::current_user))
        .route("/api/user/tokens", get(user::list_tokens).post(user::create_token))
        .route("/api/user/tokens/{token_id}", delete(user::expire_token))
        .route("/api/users", get(users::list_users).post(users::create_user))
        .route("/api/projects", get(projects::list_projects).post(projects::create_project))
        .route("/api/project/{project_id}", get(projects::get_project))
        .route("/api/project/{project_id}/", get(projects::get_project))
        .route("/api/project/{project_id}/role", get(projects::get_role))
        .route("/api/project/{project_id}/users", get(members::list_members).post(members::add_member))
        .route("/api/project/{project_id}/users/{user_id}", put(members::update_member).delete(members::remove_member))
        .route(
            "/api/project/{project_id}/environment",
            get(environment::list_environments).post(environment::create_environment),
        )
        .route(
            "/api/project/{project_id}/environment/{environment_id}",
            get(environment::get_environment)
                .put(environment::update_environment)
                .delete(environment::delete_environment),
        )
        .route("/api/project/{project_id}/inventory", get(inventory::list_inventories))
        .route("/api/project/{project_id}/repositories", get(repository::list_repositories))
        .route("/api/project/{project_id}/templates", get(templates::list_templates).post(templates::create_template))
        .route(
            "/api/project/{project_id}/templates/{template_id}",
            get(templates::get_template).put(templates::update_template).delete(templates::delete_template),
        )
        .fallback(not_found)
        .with_state(sim)
}

/// A handler's outcome: both sides are complete HTTP answers.
type Answer = Result<Response, Response>;

fn status(code: StatusCode) -> Response {
    code.into_response()
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

fn json<T: serde::Serialize>(code: StatusCode, value: &T) -> Response {
    (code, axum::Json(value)).into_response()
}

/// Semaphore's `helpers.Bind`: a body that does not decode is a bare 400.
fn bind<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|_| status(StatusCode::BAD_REQUEST))
}

async fn not_found() -> Response {
    status(StatusCode::NOT_FOUND)
}

async fn ping() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "pong").into_response()
}
