//! `/pools`: resource pools and their members, nested ids from 8.1 on (pve-manager `PVE/API2/Pool.pm`).

use pvetoken_acl::PoolId;
use serde_json::{Map, Value, json};

use crate::context::{Caller, Lab, Perm};
use crate::http::{ApiError, Params};
use crate::pve::access::split_list;
use crate::pve::nodes::qemu::parse_vmid;
use crate::pve::nodes::qemu::vm_stats;
use crate::pve::vm_path;
use crate::state::State;

/// `PUT /pools?poolid=` (8.1+): the pool in a parameter, so that nested ids (`team/ci`), which no path segment can
/// hold, work; not there before 8.1.
pub(crate) fn pool_update_v8(lab: &Lab, caller: &Caller, p: &Params) -> Result<Value, ApiError> {
    if lab.version < (pvetoken_acl::PveVersion { major: 8, minor: 1 }) {
        return Err(ApiError::not_implemented("PUT", "/api2/json/pools"));
    }
    pool_update(lab, caller, p, p.required("poolid")?)
}

/// `DELETE /pools?poolid=` (8.1+).
pub(crate) fn pool_delete_v8(lab: &Lab, p: &Params) -> Result<Value, ApiError> {
    if lab.version < (pvetoken_acl::PveVersion { major: 8, minor: 1 }) {
        return Err(ApiError::not_implemented("DELETE", "/api2/json/pools"));
    }
    pool_delete(lab, p.required("poolid")?)
}

pub(crate) fn pool_members(state: &State, pool: &pvetoken_acl::Pool) -> Vec<Value> {
    let node = &state.guests.node;
    let mut members: Vec<Value> = pool
        .vms
        .iter()
        .filter_map(|id| state.guests.vms.get(id))
        .map(|vm| {
            let mut item = vm_stats(vm);
            item.insert("id".into(), json!(format!("qemu/{}", vm.vmid)));
            item.insert("type".into(), json!("qemu"));
            item.insert("node".into(), json!(node));
            Value::Object(item)
        })
        .collect();
    members.extend(
        pool.storage
            .iter()
            .map(|s| json!({ "id": format!("storage/{node}/{s}"), "type": "storage", "storage": s, "node": node })),
    );
    members
}

pub(crate) fn pool_id(raw: &str) -> Result<PoolId, ApiError> {
    raw.parse::<PoolId>().map_err(|_| {
        ApiError::param("poolid", format!("invalid format - pool name '{raw}' contains invalid characters\n"))
    })
}

pub(crate) fn pools(lab: &Lab, caller: &Caller, p: &Params) -> Result<Value, ApiError> {
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    let filter = p.get("poolid");
    if filter.is_some() && lab.version.major < 8 {
        return Err(ApiError::param(
            "poolid",
            "property is not defined in schema and the schema does not allow additional properties",
        ));
    }
    let mut out = Vec::new();
    for (id, pool) in state.cfg.pools() {
        if filter.is_some_and(|f| f != id.as_str()) {
            continue;
        }
        if filter.is_none() && !perm.has(&format!("/pool/{id}"), &["Pool.Audit"], false) {
            continue;
        }
        let mut item = Map::new();
        item.insert("poolid".into(), json!(id.as_str()));
        if let Some(c) = &pool.comment {
            item.insert("comment".into(), json!(c));
        }
        if filter.is_some() {
            item.insert("members".into(), Value::Array(pool_members(&state, pool)));
        }
        out.push(Value::Object(item));
    }
    Ok(Value::Array(out))
}

pub(crate) fn pool_get(lab: &Lab, raw: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let id = pool_id(raw)?;
    let pool = state.cfg.pools().get(&id).ok_or_else(|| ApiError::internal(format!("pool '{raw}' does not exist")))?;
    let mut out = Map::new();
    out.insert("members".into(), Value::Array(pool_members(&state, pool)));
    if let Some(c) = &pool.comment {
        out.insert("comment".into(), json!(c));
    }
    Ok(Value::Object(out))
}

pub(crate) fn pool_create(lab: &Lab, p: &Params) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let raw = p.required("poolid")?.to_owned();
    let id = pool_id(&raw)?;
    state.cfg.add_pool(id, p.get("comment").map(str::to_owned), &lab.catalog).map_err(|e| match e.param() {
        Some(param) => ApiError::param(param, e.to_string()),
        None => ApiError::internal(e.to_string()),
    })?;
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn pool_update(lab: &Lab, caller: &Caller, p: &Params, raw: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let id = pool_id(raw)?;
    let vms: Vec<u64> = split_list(p.get("vms").unwrap_or_default())
        .into_iter()
        .map(|v| parse_vmid("vms", v))
        .collect::<Result<_, _>>()?;
    let storage: Vec<String> =
        split_list(p.get("storage").unwrap_or_default()).into_iter().map(str::to_owned).collect();
    {
        let perm = Perm::new(lab, &state, caller);
        for vmid in &vms {
            perm.check(&vm_path(*vmid), &["VM.Allocate"], false)?;
        }
        for s in &storage {
            perm.check(&format!("/storage/{s}"), &["Datastore.Allocate"], false)?;
        }
    }
    if p.bool("delete")?.unwrap_or(false) {
        state.cfg.remove_pool_members(&id, &vms, &storage).map_err(|e| ApiError::internal(e.to_string()))?;
    } else {
        if let Some(missing) = vms.iter().find(|v| !state.guests.vms.contains_key(v)) {
            return Err(ApiError::internal(format!("no such VMID '{missing}'")));
        }
        state.cfg.add_pool_members(&id, &vms, &storage).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn pool_delete(lab: &Lab, raw: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let id = pool_id(raw)?;
    let pool = state.cfg.pools().get(&id).ok_or_else(|| ApiError::internal(format!("pool '{raw}' does not exist")))?;
    if !pool.vms.is_empty() || !pool.storage.is_empty() {
        return Err(ApiError::internal(format!("delete pool failed: pool '{raw}' is not empty")));
    }
    state.cfg.delete_pool(&id).map_err(|e| ApiError::internal(e.to_string()))?;
    lab.save_access(&state)?;
    Ok(Value::Null)
}
