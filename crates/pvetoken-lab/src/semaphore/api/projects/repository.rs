//! Repositories (`api/projects/repository.go`): a read-only listing of the rows the scenario seeds.

use axum::http::StatusCode;

use super::Listing;
use crate::semaphore::api::extract::ManageResources;
use crate::semaphore::api::{Answer, json};

/// Sorted by `name` (default) or `git_url`.
pub(crate) async fn list_repositories(list: Listing<ManageResources>) -> Answer {
    let state = list.sim.lock();
    let mut repositories: Vec<_> =
        state.repositories.iter().filter(|repo| repo.project_id == list.project_id).collect();
    let by_url = list.query.sorts_by("git_url");
    list.query
        .order(&mut repositories, |repo| (if by_url { repo.git_url.clone() } else { repo.name.clone() }, repo.id));
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
