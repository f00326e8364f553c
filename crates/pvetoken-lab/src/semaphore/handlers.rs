//! The HTTP side of the Semaphore simulator: routes, authentication, permission checks and Semaphore's answers
//! (status codes and `{"error": ...}` bodies as its Go handlers write them).
#![expect(
    clippy::result_large_err,
    reason = "handlers return a ready HTTP answer as their error, once per request; boxing buys nothing"
)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use pvetoken_api::ExposeSecret;
use pvetoken_api::semaphore::{
    EnvironmentRequest, EnvironmentSecretRequest, LoginRequest, ProjectRole, SecretOperation,
};
use serde::Deserialize;

use pvetoken_api::semaphore::Template;

use super::store::{
    self, Member, Session, State as Data, StoredEnvironment, StoredInventory, StoredSecret, StoredToken, StoredUser,
};
use super::{Fault, SemaphoreSim};

pub(super) fn router(sim: SemaphoreSim) -> Router {
    Router::new()
        .route("/api/ping", get(ping))
        .route("/api/auth/login", get(login_metadata).post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/user", get(current_user))
        .route("/api/user/", get(current_user))
        .route("/api/user/tokens", get(list_tokens).post(create_token))
        .route("/api/user/tokens/{token_id}", delete(expire_token))
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/projects", get(list_projects).post(create_project))
        .route("/api/project/{project_id}", get(get_project))
        .route("/api/project/{project_id}/", get(get_project))
        .route("/api/project/{project_id}/role", get(get_role))
        .route("/api/project/{project_id}/users", get(list_members).post(add_member))
        .route("/api/project/{project_id}/users/{user_id}", put(update_member).delete(remove_member))
        .route("/api/project/{project_id}/environment", get(list_environments).post(create_environment))
        .route(
            "/api/project/{project_id}/environment/{environment_id}",
            get(get_environment).put(update_environment).delete(delete_environment),
        )
        .route("/api/project/{project_id}/inventory", get(list_inventories))
        .route("/api/project/{project_id}/repositories", get(list_repositories))
        .route("/api/project/{project_id}/templates", get(list_templates).post(create_template))
        .route(
            "/api/project/{project_id}/templates/{template_id}",
            get(get_template).put(update_template).delete(delete_template),
        )
        .fallback(not_found)
        .with_state(sim)
}

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

/// Semaphore answers 400 `{"error":"Invalid project ID"}` for a project id that is not a number.
fn project_id(raw: &str) -> Result<i64, Response> {
    raw.parse().map_err(|_| error(StatusCode::BAD_REQUEST, "Invalid project ID"))
}

fn int_param(raw: &str) -> Result<i64, Response> {
    raw.parse().map_err(|_| status(StatusCode::BAD_REQUEST))
}

async fn not_found() -> Response {
    status(StatusCode::NOT_FOUND)
}

async fn ping() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "pong").into_response()
}

async fn login_metadata() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "oidc_providers": [], "login_with_password": true }))
}

impl SemaphoreSim {
    /// Semaphore's `authentication` middleware: a Bearer API token (header lower-cased, `bearer ` stripped) or the
    /// `semaphore` session cookie; anything else is a bare 401.
    fn authenticate(&self, headers: &HeaderMap) -> Result<StoredUser, Response> {
        let unauthorized = || status(StatusCode::UNAUTHORIZED);
        let state = self.lock();
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
            state
                .sessions
                .iter()
                .find(|session| session.cookie == cookie)
                .map(|s| s.user_id)
                .ok_or_else(unauthorized)?
        };
        state.user(user_id).cloned().ok_or_else(unauthorized)
    }

    /// Semaphore's `ProjectMiddleware` + `GetMustCanMiddleware`: members (and admins) pass for GET; other methods
    /// need `allowed(role)` unless the user is an admin. Returns the caller's role (`None` for a non-member admin).
    fn project_access(
        &self,
        user: &StoredUser,
        project_id: i64,
        writes: bool,
        allowed: fn(ProjectRole) -> bool,
    ) -> Result<Option<ProjectRole>, Response> {
        let state = self.lock();
        let role = state.role(project_id, user.id);
        if role.is_none() && !user.admin {
            return Err(status(StatusCode::NOT_FOUND));
        }
        if state.project(project_id).is_none() {
            return Err(status(StatusCode::NOT_FOUND));
        }
        if writes && !user.admin && !role.is_some_and(allowed) {
            return Err(status(StatusCode::FORBIDDEN));
        }
        Ok(role)
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == "semaphore" && !value.is_empty()).then(|| value.to_owned())
        })
    })
}

async fn login(State(sim): State<SemaphoreSim>, body: Bytes) -> Answer {
    let request: LoginRequest = bind(&body)?;
    let mut state = sim.lock();
    let user_id = match state.user_by_login(&request.auth) {
        Some(user) if user.password_matches(request.password.expose_secret()) => user.id,
        _ => return Err(status(StatusCode::UNAUTHORIZED)),
    };
    let cookie = store::random_token();
    state.sessions.push(Session { cookie: cookie.clone(), user_id });
    sim.save(&state);
    let set_cookie = HeaderValue::from_str(&format!("semaphore={cookie}; Path=/; HttpOnly"))
        .map_err(|_| status(StatusCode::INTERNAL_SERVER_ERROR))?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, set_cookie)]).into_response())
}

async fn logout(State(sim): State<SemaphoreSim>, headers: HeaderMap) -> Response {
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

async fn current_user(State(sim): State<SemaphoreSim>, headers: HeaderMap) -> Answer {
    let user = sim.authenticate(&headers)?;
    let mut value = serde_json::to_value(user.to_api()).map_err(|_| status(StatusCode::INTERNAL_SERVER_ERROR))?;
    value["can_create_project"] = serde_json::Value::Bool(user.admin);
    Ok(json(StatusCode::OK, &value))
}

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

async fn list_tokens(State(sim): State<SemaphoreSim>, headers: HeaderMap) -> Answer {
    let user = sim.authenticate(&headers)?;
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

async fn create_token(State(sim): State<SemaphoreSim>, headers: HeaderMap, body: Bytes) -> Answer {
    let user = sim.authenticate(&headers)?;
    // The body is optional (api-docs 2.16: `{name}`).
    let request: TokenRequest =
        if body.iter().all(u8::is_ascii_whitespace) { TokenRequest::default() } else { bind(&body)? };
    let token = StoredToken {
        id: store::random_token(),
        name: request.name,
        user_id: user.id,
        created: store::now_rfc3339(),
        expired: false,
    };
    let mut state = sim.lock();
    state.tokens.push(token.clone());
    sim.save(&state);
    Ok(json(StatusCode::CREATED, &TokenView::from(&token)))
}

async fn expire_token(State(sim): State<SemaphoreSim>, headers: HeaderMap, Path(token_id): Path<String>) -> Answer {
    let user = sim.authenticate(&headers)?;
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

async fn list_users(State(sim): State<SemaphoreSim>, headers: HeaderMap) -> Answer {
    let user = sim.authenticate(&headers)?;
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

async fn create_user(State(sim): State<SemaphoreSim>, headers: HeaderMap, body: Bytes) -> Answer {
    let editor = sim.authenticate(&headers)?;
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
        user.set_password(password.expose_secret());
    }
    let view = user.to_api();
    state.users.push(user);
    sim.save(&state);
    Ok(json(StatusCode::CREATED, &view))
}

async fn list_projects(State(sim): State<SemaphoreSim>, headers: HeaderMap) -> Answer {
    let user = sim.authenticate(&headers)?;
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

async fn create_project(State(sim): State<SemaphoreSim>, headers: HeaderMap, body: Bytes) -> Answer {
    let user = sim.authenticate(&headers)?;
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

async fn get_project(State(sim): State<SemaphoreSim>, headers: HeaderMap, Path(raw): Path<String>) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    sim.project_access(&user, project_id, false, |_| true)?;
    let state = sim.lock();
    let project = state.project(project_id).ok_or_else(|| status(StatusCode::NOT_FOUND))?;
    Ok(json(StatusCode::OK, project))
}

async fn get_role(State(sim): State<SemaphoreSim>, headers: HeaderMap, Path(raw): Path<String>) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    let role = sim.project_access(&user, project_id, false, |_| true)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "role": role.map_or(serde_json::json!(""), |role| serde_json::json!(role)),
            "permissions": role.map_or(0, ProjectRole::permissions),
        }),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    sort: Option<String>,
    order: Option<String>,
}

async fn list_members(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(query): Query<ListQuery>,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    sim.project_access(&user, project_id, false, |_| true)?;
    let state = sim.lock();
    let mut members: Vec<serde_json::Value> = state
        .members
        .iter()
        .filter(|member| member.project_id == project_id)
        .filter_map(|member| {
            let user = state.user(member.user_id)?;
            Some(serde_json::json!({
                "id": user.id, "name": user.name, "username": user.username, "email": user.email, "role": member.role,
            }))
        })
        .collect();
    let key = match query.sort.as_deref() {
        Some(field @ ("name" | "username" | "email" | "role")) => field.to_owned(),
        _ => "name".to_owned(),
    };
    members.sort_by(|a, b| a[&key].to_string().cmp(&b[&key].to_string()));
    if query.order.as_deref() == Some("desc") {
        members.reverse();
    }
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

async fn add_member(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    sim.project_access(&user, project_id, true, ProjectRole::can_manage_users)?;
    let request: MemberRequest = bind(&body)?;
    let role = parse_role(request.role.as_deref())?;
    let mut state = sim.lock();
    if state.user(request.user_id).is_none() || state.role(project_id, request.user_id).is_some() {
        return Err(status(StatusCode::CONFLICT));
    }
    state.members.push(Member { project_id, user_id: request.user_id, role });
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}

async fn update_member(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path((raw, user_raw)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    let member_id = int_param(&user_raw)?;
    sim.project_access(&user, project_id, true, ProjectRole::can_manage_users)?;
    let request: MemberRequest = bind(&body)?;
    let role = parse_role(request.role.as_deref())?;
    let mut state = sim.lock();
    let member = state
        .members
        .iter_mut()
        .find(|member| member.project_id == project_id && member.user_id == member_id)
        .ok_or_else(|| status(StatusCode::NOT_FOUND))?;
    member.role = role;
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}

async fn remove_member(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path((raw, user_raw)): Path<(String, String)>,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    let member_id = int_param(&user_raw)?;
    sim.project_access(&user, project_id, true, ProjectRole::can_manage_users)?;
    let mut state = sim.lock();
    let before = state.members.len();
    state.members.retain(|member| !(member.project_id == project_id && member.user_id == member_id));
    if state.members.len() == before {
        return Err(status(StatusCode::NOT_FOUND));
    }
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}

async fn list_environments(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(query): Query<ListQuery>,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    sim.project_access(&user, project_id, false, ProjectRole::can_manage_resources)?;
    let state = sim.lock();
    let mut environments: Vec<_> = state
        .environments
        .iter()
        .filter(|env| env.project_id == project_id)
        .map(|env| state.environment_view(env))
        .collect();
    // Semaphore sorts by name by default (and accepts only `name` here).
    environments.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));
    if query.sort.as_deref().is_some_and(|sort| sort == "name") && query.order.as_deref() == Some("desc") {
        environments.reverse();
    }
    Ok(json(StatusCode::OK, &environments))
}

/// `db.Environment.Validate()`.
fn validate_environment(request: &EnvironmentRequest) -> Result<(), Response> {
    if request.name.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "Environment name can not be empty"));
    }
    if serde_json::from_str::<serde_json::Value>(&request.json).is_err() {
        return Err(error(StatusCode::BAD_REQUEST, "Extra variables must be valid JSON"));
    }
    if let Some(env) = &request.env
        && serde_json::from_str::<serde_json::Value>(env).is_err()
    {
        return Err(error(StatusCode::BAD_REQUEST, "Environment variables must be valid JSON"));
    }
    Ok(())
}

/// Why one `secrets[]` operation failed (Semaphore collects these and answers with the first).
enum SecretFailure {
    NotFound,
    Invalid,
}

impl SemaphoreSim {
    /// `updateEnvironmentSecrets`: applies each operation in order, collecting failures; stops early only for an
    /// injected fault.
    fn apply_secret_operations(
        &self,
        state: &mut Data,
        env: &StoredEnvironment,
        operations: &[EnvironmentSecretRequest],
    ) -> Result<(), Response> {
        let mut failures = Vec::new();
        for (index, operation) in operations.iter().enumerate() {
            if index == 1 && self.take_fault(Fault::AfterFirstSecretOperation) {
                return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "simulated fault after the first secret"));
            }
            if let Err(failure) = self.apply_secret_operation(state, env, operation) {
                failures.push(failure);
            }
        }
        match failures.first() {
            None => Ok(()),
            Some(SecretFailure::NotFound) => Err(status(StatusCode::NOT_FOUND)),
            Some(SecretFailure::Invalid) => Err(status(StatusCode::BAD_REQUEST)),
        }
    }

    fn apply_secret_operation(
        &self,
        state: &mut Data,
        env: &StoredEnvironment,
        operation: &EnvironmentSecretRequest,
    ) -> Result<(), SecretFailure> {
        let kind = operation.kind.ok_or(SecretFailure::Invalid)?;
        match operation.operation.ok_or(SecretFailure::Invalid)? {
            SecretOperation::Create => {
                let value = operation.secret.as_ref().map_or("", |secret| secret.expose_secret());
                let id = state.new_id();
                state.secrets.push(StoredSecret {
                    id,
                    project_id: env.project_id,
                    environment_id: env.id,
                    name: operation.name.clone(),
                    kind,
                    ciphertext: self.inner.cipher.encrypt(value),
                });
            }
            SecretOperation::Delete => {
                let index = self.owned_secret(state, env, operation.id)?;
                state.secrets.remove(index);
            }
            SecretOperation::Update => {
                let index = self.owned_secret(state, env, operation.id)?;
                let stored = &mut state.secrets[index];
                stored.name.clone_from(&operation.name);
                // As in 2.16: an empty `secret` keeps the stored value (only a non-empty one overrides it).
                if let Some(value) = &operation.secret
                    && !value.expose_secret().is_empty()
                {
                    stored.ciphertext = self.inner.cipher.encrypt(value.expose_secret());
                }
            }
        }
        Ok(())
    }

    fn owned_secret(&self, state: &Data, env: &StoredEnvironment, id: Option<i64>) -> Result<usize, SecretFailure> {
        let id = id.ok_or(SecretFailure::NotFound)?;
        let index = state
            .secrets
            .iter()
            .position(|secret| secret.id == id && secret.project_id == env.project_id)
            .ok_or(SecretFailure::NotFound)?;
        // "secret does not belong to this environment"
        if state.secrets[index].environment_id != env.id {
            return Err(SecretFailure::Invalid);
        }
        Ok(index)
    }
}

async fn create_environment(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    sim.project_access(&user, project_id, true, ProjectRole::can_manage_resources)?;
    let request: EnvironmentRequest = bind(&body)?;
    if request.project_id != project_id {
        return Err(error(StatusCode::BAD_REQUEST, "Project ID in body and URL must be the same"));
    }
    validate_environment(&request)?;
    let mut state = sim.lock();
    let env = StoredEnvironment {
        id: state.new_id(),
        project_id,
        name: request.name.clone(),
        password: request.password.clone(),
        json: request.json.clone(),
        env: request.env.clone(),
    };
    // Semaphore stores the row first, then the secrets: a failure after this point leaves the row behind.
    state.environments.push(env.clone());
    if sim.take_fault(Fault::AfterEnvironmentCreated) {
        sim.save(&state);
        return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "simulated fault after creating the environment"));
    }
    let outcome = sim.apply_secret_operations(&mut state, &env, &request.secrets);
    sim.save(&state);
    outcome?;
    if sim.inner.create_answers_no_content {
        return Ok(status(StatusCode::NO_CONTENT));
    }
    let mut view = state.environment_view(&env);
    // 2.16 answers with `secrets: []` whatever was created.
    view.secrets.clear();
    Ok(json(StatusCode::CREATED, &view))
}

/// `(project id, resource id)` of `/api/project/{project_id}/<resources>/{id}` (environments, templates).
fn resource_ids(raw: &str, id_raw: &str) -> Result<(i64, i64), Response> {
    Ok((project_id(raw)?, int_param(id_raw)?))
}

async fn get_environment(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path((raw, env_raw)): Path<(String, String)>,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let (project_id, env_id) = resource_ids(&raw, &env_raw)?;
    sim.project_access(&user, project_id, false, ProjectRole::can_manage_resources)?;
    let state = sim.lock();
    let env = state.environment(project_id, env_id).ok_or_else(|| status(StatusCode::NOT_FOUND))?;
    Ok(json(StatusCode::OK, &state.environment_view(env)))
}

async fn update_environment(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path((raw, env_raw)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let (project_id, env_id) = resource_ids(&raw, &env_raw)?;
    sim.project_access(&user, project_id, true, ProjectRole::can_manage_resources)?;
    if sim.lock().environment(project_id, env_id).is_none() {
        return Err(status(StatusCode::NOT_FOUND));
    }
    let request: EnvironmentRequest = bind(&body)?;
    if request.id != Some(env_id) {
        return Err(error(StatusCode::BAD_REQUEST, "Environment ID in body and URL must be the same"));
    }
    if request.project_id != project_id {
        return Err(error(StatusCode::BAD_REQUEST, "Project ID in body and URL must be the same"));
    }
    validate_environment(&request)?;
    let mut state = sim.lock();
    let Some(stored) = state.environments.iter_mut().find(|env| env.id == env_id && env.project_id == project_id)
    else {
        return Err(status(StatusCode::NOT_FOUND));
    };
    stored.name.clone_from(&request.name);
    stored.password.clone_from(&request.password);
    stored.json.clone_from(&request.json);
    stored.env.clone_from(&request.env);
    let env = stored.clone();
    let outcome = sim.apply_secret_operations(&mut state, &env, &request.secrets);
    sim.save(&state);
    outcome?;
    Ok(status(StatusCode::NO_CONTENT))
}

async fn delete_environment(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path((raw, env_raw)): Path<(String, String)>,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let (project_id, env_id) = resource_ids(&raw, &env_raw)?;
    sim.project_access(&user, project_id, true, ProjectRole::can_manage_resources)?;
    let mut state = sim.lock();
    if state.environment(project_id, env_id).is_none() {
        return Err(status(StatusCode::NOT_FOUND));
    }
    // `RemoveEnvironment` (api/projects/environment.go): a template still pointing at it makes the store refuse
    // (ErrInvalidOperation) and the handler answers 400 with `inUse`.
    if state.templates.iter().any(|tpl| tpl.project_id == project_id && tpl.environment_id == Some(env_id)) {
        return Err(json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": "Environment is in use by one or more templates", "inUse": true }),
        ));
    }
    state.environments.retain(|env| !(env.id == env_id && env.project_id == project_id));
    state.secrets.retain(|secret| secret.environment_id != env_id);
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}

async fn list_inventories(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(query): Query<ListQuery>,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    sim.project_access(&user, project_id, false, ProjectRole::can_manage_resources)?;
    let state = sim.lock();
    let mut inventories: Vec<&StoredInventory> =
        state.inventories.iter().filter(|inv| inv.project_id == project_id).collect();
    // InventoryProps: sortable by name and type, name by default.
    if query.sort.as_deref() == Some("type") {
        inventories.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.id.cmp(&b.id)));
    } else {
        inventories.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    }
    if query.order.as_deref() == Some("desc") {
        inventories.reverse();
    }
    let view: Vec<serde_json::Value> = inventories
        .iter()
        .map(|inv| {
            serde_json::json!({
                "id": inv.id, "name": inv.name, "project_id": inv.project_id, "inventory": inv.inventory,
                "type": inv.kind, "template_id": inv.template_id,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &view))
}

async fn list_repositories(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(query): Query<ListQuery>,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    sim.project_access(&user, project_id, false, ProjectRole::can_manage_resources)?;
    let state = sim.lock();
    let mut repositories: Vec<_> = state.repositories.iter().filter(|repo| repo.project_id == project_id).collect();
    if query.sort.as_deref() == Some("git_url") {
        repositories.sort_by(|a, b| a.git_url.cmp(&b.git_url).then(a.id.cmp(&b.id)));
    } else {
        repositories.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    }
    if query.order.as_deref() == Some("desc") {
        repositories.reverse();
    }
    let view: Vec<serde_json::Value> = repositories
        .iter()
        .map(|repo| {
            serde_json::json!({
                "id": repo.id, "name": repo.name, "project_id": repo.project_id, "git_url": repo.git_url,
                "git_branch": repo.git_branch,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &view))
}

/// The apps a default Semaphore accepts (`util.Config.Apps`, filled from `appPriorities` in util/config.go).
const APPS: [&str; 6] = ["ansible", "terraform", "tofu", "bash", "powershell", "python"];

fn is_terraform(app: &str) -> bool {
    matches!(app, "terraform" | "tofu")
}

/// `db.Template.Validate()`: a 400 with Semaphore's message.
fn validate_template(template: &Template) -> Result<(), Response> {
    let invalid = |message: &str| Err(error(StatusCode::BAD_REQUEST, message));
    if template.app == "ansible" && template.inventory_id.is_none() {
        return invalid("template inventory can not be empty");
    }
    if template.name.is_empty() {
        return invalid("template name can not be empty");
    }
    if !is_terraform(&template.app) && template.playbook.is_empty() {
        return invalid("template playbook can not be empty");
    }
    if let Some(arguments) = &template.arguments
        && serde_json::from_str::<serde_json::Value>(arguments).is_err()
    {
        return invalid("template arguments must be valid JSON");
    }
    Ok(())
}

/// The foreign keys of `project__template` (SQL back-ends, db/sql/migrations/v0.0.0.sql): an inventory, repository,
/// environment or view that is not in the project makes the insert/update fail, which `helpers.WriteError` answers with a bare 400.
fn check_template_references(state: &Data, project_id: i64, template: &Template) -> Result<(), Response> {
    let inventory_ok = template.inventory_id.is_none_or(|id| state.inventory(project_id, id).is_some());
    let repository_ok = state.repository(project_id, template.repository_id).is_some();
    let environment_ok = template.environment_id.is_none_or(|id| state.environment(project_id, id).is_some());
    // `view_id` references project__view (migration v2.8.8); the lab has no views, so any view id fails.
    let view_ok = template.view_id.is_none();
    if inventory_ok && repository_ok && environment_ok && view_ok {
        Ok(())
    } else {
        Err(status(StatusCode::BAD_REQUEST))
    }
}

fn named<T>(items: &[T], matches: impl Fn(&T) -> bool, name: impl Fn(&T) -> &str) -> String {
    items.iter().find(|item| matches(item)).map(|item| name(item).to_lowercase()).unwrap_or_default()
}

async fn list_templates(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(query): Query<TemplateListQuery>,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    sim.project_access(&user, project_id, false, ProjectRole::can_manage_resources)?;
    let state = sim.lock();
    let mut templates: Vec<&Template> = state
        .templates
        .iter()
        .filter(|tpl| tpl.project_id == project_id)
        .filter(|tpl| query.app.as_deref().is_none_or(|app| app.is_empty() || tpl.app == app))
        .collect();
    // db/sql/template.go GetTemplates: `name` by default; `playbook` by column; inventory, environment and
    // repository by the joined row's name.
    let key = |tpl: &Template| -> String {
        match query.sort.as_deref() {
            Some("playbook") => tpl.playbook.clone(),
            Some("inventory") => {
                named(&state.inventories, |inv| Some(inv.id) == tpl.inventory_id, |inv| inv.name.as_str())
            }
            Some("environment") => {
                named(&state.environments, |env| Some(env.id) == tpl.environment_id, |env| env.name.as_str())
            }
            Some("repository") => {
                named(&state.repositories, |repo| repo.id == tpl.repository_id, |repo| repo.name.as_str())
            }
            _ => tpl.name.clone(),
        }
    };
    templates.sort_by(|a, b| key(a).cmp(&key(b)).then(a.id.cmp(&b.id)));
    if query.order.as_deref() == Some("desc") {
        templates.reverse();
    }
    Ok(json(StatusCode::OK, &templates))
}

#[derive(Deserialize)]
struct TemplateListQuery {
    sort: Option<String>,
    order: Option<String>,
    /// 2.16: only the templates of this app.
    app: Option<String>,
}

async fn create_template(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let project_id = project_id(&raw)?;
    sim.project_access(&user, project_id, true, ProjectRole::can_manage_resources)?;
    let mut template: Template = bind(&body)?;
    // `AddTemplate`: the project comes from the URL, whatever the body says; the id is the store's.
    template.project_id = project_id;
    template.tasks = 0;
    validate_template(&template)?;
    let mut state = sim.lock();
    check_template_references(&state, project_id, &template)?;
    template.id = state.new_id();
    state.templates.push(template.clone());
    sim.save(&state);
    // Semaphore checks the app only after the row is stored: an unknown app answers 400 and leaves the template.
    if !APPS.contains(&template.app.as_str()) {
        return Err(error(StatusCode::BAD_REQUEST, &format!("Invalid app id: {}", template.app)));
    }
    if is_terraform(&template.app) {
        let workspace = match template.inventory_id {
            Some(id) => id,
            None => {
                let id = state.new_id();
                state.inventories.push(StoredInventory {
                    id,
                    project_id,
                    name: "default".to_owned(),
                    inventory: "default".to_owned(),
                    kind: format!("{}-workspace", template.app),
                    template_id: None,
                });
                id
            }
        };
        template.inventory_id = Some(workspace);
        if let Some(inventory) = state.inventories.iter_mut().find(|inv| inv.id == workspace) {
            inventory.template_id = Some(template.id);
        }
        if let Some(stored) = state.templates.iter_mut().find(|tpl| tpl.id == template.id) {
            stored.inventory_id = Some(workspace);
        }
        sim.save(&state);
    }
    Ok(json(StatusCode::CREATED, &template))
}

async fn get_template(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path((raw, template_raw)): Path<(String, String)>,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let (project_id, template_id) = resource_ids(&raw, &template_raw)?;
    sim.project_access(&user, project_id, false, ProjectRole::can_manage_resources)?;
    let state = sim.lock();
    let template = state.template(project_id, template_id).ok_or_else(|| status(StatusCode::NOT_FOUND))?;
    Ok(json(StatusCode::OK, template))
}

async fn update_template(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path((raw, template_raw)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let (project_id, template_id) = resource_ids(&raw, &template_raw)?;
    sim.project_access(&user, project_id, true, ProjectRole::can_manage_resources)?;
    // `TemplatesMiddleware` loads the template before the handler reads the body.
    let tasks = sim.lock().template(project_id, template_id).map(|tpl| tpl.tasks);
    let Some(tasks) = tasks else { return Err(status(StatusCode::NOT_FOUND)) };
    let mut template: Template = bind(&body)?;
    if !APPS.contains(&template.app.as_str()) {
        return Err(error(StatusCode::BAD_REQUEST, &format!("Invalid app id: {}", template.app)));
    }
    if template.id != template_id {
        return Err(error(StatusCode::BAD_REQUEST, "template id in URL and in body must be the same"));
    }
    if template.project_id != project_id {
        return Err(error(StatusCode::BAD_REQUEST, "You can not move template to other project"));
    }
    if template.arguments.as_deref() == Some("") {
        template.arguments = None;
    }
    template.tasks = tasks;
    validate_template(&template)?;
    let mut state = sim.lock();
    check_template_references(&state, project_id, &template)?;
    let Some(stored) = state.templates.iter_mut().find(|tpl| tpl.project_id == project_id && tpl.id == template_id)
    else {
        return Err(status(StatusCode::NOT_FOUND));
    };
    *stored = template;
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}

async fn delete_template(
    State(sim): State<SemaphoreSim>,
    headers: HeaderMap,
    Path((raw, template_raw)): Path<(String, String)>,
) -> Answer {
    let user = sim.authenticate(&headers)?;
    let (project_id, template_id) = resource_ids(&raw, &template_raw)?;
    sim.project_access(&user, project_id, true, ProjectRole::can_manage_resources)?;
    let mut state = sim.lock();
    if state.template(project_id, template_id).is_none() {
        return Err(status(StatusCode::NOT_FOUND));
    }
    state.templates.retain(|tpl| !(tpl.project_id == project_id && tpl.id == template_id));
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}
