//! Inventories (`api/projects/inventory.go`): a read-only listing of the rows the scenario seeds (and of the
//! workspaces Terraform/OpenTofu templates get), so that templates have something to point at.

use axum::extract::{Query, State};
use axum::http::StatusCode;

use super::ListQuery;
use crate::semaphore::SemaphoreSim;
use crate::semaphore::api::extract::{ManageResources, ProjectCall};
use crate::semaphore::api::{Answer, json};
use crate::semaphore::store::StoredInventory;

/// Sorted as `InventoryProps` allows: by `name` (default) or `type`.
pub(crate) async fn list_inventories(
    State(sim): State<SemaphoreSim>,
    Query(query): Query<ListQuery>,
    call: ProjectCall<ManageResources>,
) -> Answer {
    let state = sim.lock();
    let mut inventories: Vec<&StoredInventory> =
        state.inventories.iter().filter(|inv| inv.project_id == call.project_id).collect();
    if query.sort.as_deref() == Some("type") {
        inventories.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.id.cmp(&b.id)));
    } else {
        inventories.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    }
    if query.descending() {
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
