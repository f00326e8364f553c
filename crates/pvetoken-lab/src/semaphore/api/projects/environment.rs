//! Environments and their secrets (`api/projects/environment.go`): any member reads, owners and managers change;
//! secret values are stored encrypted and never answered.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use pvetoken_api::ExposeSecret;
use pvetoken_api::semaphore::{EnvironmentRequest, EnvironmentSecretRequest, SecretOperation};

use super::Listing;
use crate::semaphore::api::extract::{ManageResources, ProjectCall, ProjectItemCall};
use crate::semaphore::api::{Answer, bind, error, json, status};
use crate::semaphore::sim::{Fault, SemaphoreSim};
use crate::semaphore::store::{State as Data, StoredEnvironment, StoredSecret};

/// Sorted by name, case-insensitively (Semaphore accepts only `sort=name` here).
pub(crate) async fn list_environments(list: Listing<ManageResources>) -> Answer {
    let state = list.sim.lock();
    let mut environments: Vec<_> = state
        .environments
        .iter()
        .filter(|env| env.project_id == list.project_id)
        .map(|env| state.environment_view(env))
        .collect();
    environments.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));
    if list.query.sorts_by("name") && list.query.descending() {
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

/// `updateEnvironmentSecrets`: applies each operation in order, collecting failures; stops early only for an
/// injected fault.
fn apply_secret_operations(
    sim: &SemaphoreSim,
    state: &mut Data,
    env: &StoredEnvironment,
    operations: &[EnvironmentSecretRequest],
) -> Result<(), Response> {
    let mut failures = Vec::new();
    for (index, operation) in operations.iter().enumerate() {
        if index == 1 && sim.take_fault(Fault::AfterFirstSecretOperation) {
            return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "simulated fault after the first secret"));
        }
        if let Err(failure) = apply_secret_operation(sim, state, env, operation) {
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
    sim: &SemaphoreSim,
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
                ciphertext: sim.encrypt(value),
            });
        }
        SecretOperation::Delete => {
            let index = owned_secret(state, env, operation.id)?;
            state.secrets.remove(index);
        }
        SecretOperation::Update => {
            let index = owned_secret(state, env, operation.id)?;
            let stored = &mut state.secrets[index];
            stored.name.clone_from(&operation.name);
            // As in 2.16: an empty `secret` keeps the stored value (only a non-empty one overrides it).
            if let Some(value) = &operation.secret
                && !value.expose_secret().is_empty()
            {
                stored.ciphertext = sim.encrypt(value.expose_secret());
            }
        }
    }
    Ok(())
}

/// The index of secret `id` of the project; a secret of another environment of the project is invalid.
fn owned_secret(state: &Data, env: &StoredEnvironment, id: Option<i64>) -> Result<usize, SecretFailure> {
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

pub(crate) async fn create_environment(
    State(sim): State<SemaphoreSim>,
    call: ProjectCall<ManageResources>,
    body: Bytes,
) -> Answer {
    let project_id = call.project_id;
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
    let outcome = apply_secret_operations(&sim, &mut state, &env, &request.secrets);
    sim.save(&state);
    outcome?;
    if sim.create_answers_no_content() {
        return Ok(status(StatusCode::NO_CONTENT));
    }
    let mut view = state.environment_view(&env);
    // 2.16 answers with `secrets: []` whatever was created.
    view.secrets.clear();
    Ok(json(StatusCode::CREATED, &view))
}

pub(crate) async fn get_environment(State(sim): State<SemaphoreSim>, call: ProjectItemCall<ManageResources>) -> Answer {
    let state = sim.lock();
    let env = state.environment(call.project_id, call.item_id).ok_or_else(|| status(StatusCode::NOT_FOUND))?;
    Ok(json(StatusCode::OK, &state.environment_view(env)))
}

/// Answers 204; the body must name the environment and project of the URL.
pub(crate) async fn update_environment(
    State(sim): State<SemaphoreSim>,
    call: ProjectItemCall<ManageResources>,
    body: Bytes,
) -> Answer {
    let (project_id, env_id) = (call.project_id, call.item_id);
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
    let outcome = apply_secret_operations(&sim, &mut state, &env, &request.secrets);
    sim.save(&state);
    outcome?;
    Ok(status(StatusCode::NO_CONTENT))
}

pub(crate) async fn delete_environment(
    State(sim): State<SemaphoreSim>,
    call: ProjectItemCall<ManageResources>,
) -> Answer {
    let (project_id, env_id) = (call.project_id, call.item_id);
    let mut state = sim.lock();
    if state.environment(project_id, env_id).is_none() {
        return Err(status(StatusCode::NOT_FOUND));
    }
    // `RemoveEnvironment`: a template still pointing at it makes the store refuse (ErrInvalidOperation) and the
    // handler answers 400 with `inUse`.
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
