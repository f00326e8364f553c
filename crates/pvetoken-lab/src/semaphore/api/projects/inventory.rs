//! Inventories (`api/projects/inventory.go`): a read-only listing of the rows the scenario seeds (and of the
//! workspaces Terraform/OpenTofu templates get), so that templates have something to point at.

use axum::http::StatusCode;

use super::Listing;
use crate::semaphore::api::extract::ManageResources;
use crate::semaphore::api::{Answer, json};
use crate::semaphore::store::StoredInventory;

/// Sorted as `InventoryProps` allows: by `name` (default) or `type`.
pub(crate) async fn list_inventories(list: Listing<ManageResources>) -> Answer {
    let state = list.sim.lock();
    let mut inventories: Vec<&StoredInventory> =
        state.inventories.iter().filter(|inv| inv.project_id == list.project_id).collect();
    let by_type = list.query.sorts_by("type");
    list.query.order(&mut inventories, |inv| (if by_type { inv.kind.clone() } else { inv.name.clone() }, inv.id));
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
