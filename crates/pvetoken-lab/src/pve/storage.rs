//! `/storage` (the storage configuration, pve-storage `API2/Storage/Config.pm`) and
//! `/nodes/{node}/storage` (status and content, `API2/Storage/Status.pm`, `Content.pm`).

use serde_json::{Map, Value, json};

use crate::context::{Caller, Lab, Perm};
use crate::http::{ApiError, Params};
use crate::pve::vm_path;
use crate::state::State;

pub(crate) fn storage_json(state: &State, s: &crate::state::Storage) -> Map<String, Value> {
    let used = used_bytes(state, &s.id);
    let mut out = Map::new();
    out.insert("storage".into(), json!(s.id));
    out.insert("type".into(), json!(s.kind));
    out.insert("content".into(), json!(s.content.join(",")));
    out.insert("active".into(), json!(1));
    out.insert("enabled".into(), json!(1));
    out.insert("shared".into(), json!(0));
    out.insert("total".into(), json!(s.total));
    out.insert("used".into(), json!(used));
    out.insert("avail".into(), json!(s.total.saturating_sub(used)));
    out.insert("used_fraction".into(), json!(used as f64 / s.total.max(1) as f64));
    out
}

/// Storage listings show a storage with Datastore.Audit or Datastore.AllocateSpace on `/storage/<id>`.
pub(crate) fn storage_visible(perm: &Perm<'_>, storage: &crate::state::Storage) -> bool {
    perm.has(&format!("/storage/{}", storage.id), &["Datastore.Audit", "Datastore.AllocateSpace"], true)
}

/// A storage's configuration as pve-storage's `$api_storage_config` returns it (`storage.cfg` keys, the storage id,
/// the config digest, `content` as a sorted list).
pub(crate) fn storage_config_json(s: &crate::state::Storage) -> Value {
    let mut content = s.content.clone();
    content.sort();
    let mut out = Map::new();
    out.insert("storage".into(), json!(s.id));
    out.insert("type".into(), json!(s.kind));
    out.insert("content".into(), json!(content.join(",")));
    out.insert("digest".into(), json!("5a1ab0de7e57ed42c0ffee0000000000000000aa"));
    match s.kind.as_str() {
        "dir" => {
            out.insert("path".into(), json!("/var/lib/vz"));
        }
        "lvmthin" => {
            out.insert("thinpool".into(), json!("data"));
            out.insert("vgname".into(), json!("pve"));
        }
        _ => {}
    }
    Value::Object(out)
}

/// `GET /storage` (pve-storage `PVE/API2/Storage/Config.pm` `index`): every user; lists the storages with
/// Datastore.Audit or Datastore.AllocateSpace on `/storage/<id>`; `type` filters.
pub(crate) fn storage_index(lab: &Lab, caller: &Caller, p: &Params) -> Result<Value, ApiError> {
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    let kind = p.get("type");
    let listed = visible_storages(&state, &perm).filter(|s| kind.is_none_or(|k| k == s.kind));
    Ok(Value::Array(listed.map(storage_config_json).collect()))
}

/// The storages the caller sees in a listing (Datastore.Audit or Datastore.AllocateSpace on `/storage/<id>`).
fn visible_storages<'s>(state: &'s State, perm: &Perm<'_>) -> impl Iterator<Item = &'s crate::state::Storage> {
    state.guests.storage.iter().filter(|s| storage_visible(perm, s))
}

/// `GET /storage/{storage}` (`read`): Datastore.Allocate on `/storage/{storage}`.
pub(crate) fn storage_read(lab: &Lab, sid: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    find_storage(&state, sid).map(storage_config_json)
}

pub(crate) fn storage_list(lab: &Lab, caller: &Caller, p: &Params) -> Result<Value, ApiError> {
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    let content = p.get("content");
    let listed = visible_storages(&state, &perm)
        .filter(|s| content.is_none_or(|c| s.content.iter().any(|x| x == c)))
        .filter(|s| p.get("storage").is_none_or(|want| want == s.id));
    Ok(Value::Array(listed.map(|s| Value::Object(storage_json(&state, s))).collect()))
}

pub(crate) fn find_storage<'s>(state: &'s State, sid: &str) -> Result<&'s crate::state::Storage, ApiError> {
    state
        .guests
        .storage
        .iter()
        .find(|s| s.id == sid)
        .ok_or_else(|| ApiError::internal(format!("storage '{sid}' does not exist")))
}

pub(crate) fn storage_status(lab: &Lab, sid: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let s = find_storage(&state, sid)?;
    let mut out = storage_json(&state, s);
    out.remove("storage");
    Ok(Value::Object(out))
}

pub(crate) fn storage_content(lab: &Lab, caller: &Caller, p: &Params, sid: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    find_storage(&state, sid)?;
    let content = p.get("content");
    let want_vmid = p.uint("vmid")?;
    let allocate = perm.has(&format!("/storage/{sid}"), &["Datastore.Allocate"], false);
    Ok(Value::Array(
        state
            .guests
            .volumes
            .iter()
            .filter(|v| v.volid.split(':').next() == Some(sid))
            .filter(|v| content.is_none_or(|c| c == v.content))
            .filter(|v| want_vmid.is_none_or(|id| v.vmid == Some(id)))
            .filter(|v| allocate || v.vmid.is_none_or(|id| perm.has(&vm_path(id), &["VM.Audit"], false)))
            .map(|v| {
                let format = if v.content == "iso" {
                    "iso"
                } else if v.content == "images" {
                    "raw"
                } else {
                    "tgz"
                };
                let mut item =
                    json!({"volid": v.volid, "size": v.size, "content": v.content, "ctime": v.ctime, "format": format});
                if let (Some(id), Some(map)) = (v.vmid, item.as_object_mut()) {
                    map.insert("vmid".into(), json!(id));
                }
                item
            })
            .collect(),
    ))
}

pub(crate) fn volume_get(lab: &Lab, caller: &Caller, sid: &str, volume: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    let volid = if volume.contains(':') { volume.to_owned() } else { format!("{sid}:{volume}") };
    let v = state
        .guests
        .volumes
        .iter()
        .find(|v| v.volid == volid)
        .ok_or_else(|| ApiError::internal(format!("can't find volume '{volid}'")))?;
    let allowed = perm.has(&format!("/storage/{sid}"), &["Datastore.Allocate"], false)
        || match v.vmid {
            Some(id) => {
                perm.has(&format!("/storage/{sid}"), &["Datastore.Audit"], false)
                    && perm.has(&vm_path(id), &["VM.Audit"], false)
            }
            None => perm.has(&format!("/storage/{sid}"), &["Datastore.Audit", "Datastore.AllocateSpace"], true),
        };
    if !allowed {
        return Err(ApiError::forbidden(""));
    }
    Ok(
        json!({"path": format!("/dev/lab/{}", volid.replace(':', "/")), "size": v.size, "used": v.size, "format": if v.content == "iso" { "iso" } else { "raw" }}),
    )
}

/// Bytes the volumes on `storage` take.
pub(crate) fn used_bytes(state: &State, storage: &str) -> u64 {
    state.guests.volumes.iter().filter(|v| v.volid.split(':').next() == Some(storage)).map(|v| v.size).sum()
}
