//! Repositories (`api/projects/repository.go`): a read-only listing of the rows the scenario seeds.

use axum::extract::{Query, State};
use axum::http::StatusCode;

use super::ListQuery;
use crate::semaphore::SemaphoreSim;
use crate::semaphore::api::extract::{ManageResources, ProjectCall};
use crate::semaphore::api::{Answer, json};

/// Sorted by `name` (default) or `git_url`.
pub(crate) async fn list_repositories(
    State(sim): State<SemaphoreSim>,
    Query(query): Query<ListQuery>,
    call: ProjectCall<ManageResources>,
) -> Answer {
    let state = sim.lock();
    let mut repositories: Vec<_> =
        state.repositories.iter().filter(|repo| repo.project_id == call.project_id).collect();
    if query.sort.as_deref() == Some("git_url") {
        repositories.sort_by(|a, b| a.git_url.cmp(&b.git_url).then(a.id.cmp(&b.id)));
    } else {
        repositories.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    }
    if query.descending() {
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
