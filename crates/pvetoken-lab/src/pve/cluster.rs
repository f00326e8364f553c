//! `/cluster`: resources, the next free VM id, status, tasks, HA resources (pve-manager `PVE/API2/Cluster.pm`).

use serde_json::{Value, json};

use crate::context::{Caller, Lab, Perm};
use crate::http::{ApiError, Params};
use crate::pve::nodes::qemu::parse_vmid;
use crate::pve::nodes::qemu::vm_stats;
use crate::pve::nodes::tasks::task_json;
use crate::pve::nodes::tasks::task_owner;
use crate::pve::storage::used_bytes;
use crate::pve::vm_path;

pub(crate) fn resources(lab: &Lab, caller: &Caller, p: &Params) -> Result<Value, ApiError> {
    let kind = p.get("type");
    if let Some(k) = kind
        && !["vm", "storage", "node", "sdn", "pool"].contains(&k)
    {
        return Err(ApiError::param(
            "type",
            format!("value '{k}' does not have a value in the enumeration 'vm, storage, node, sdn, pool'"),
        ));
    }
    let want = |k: &str| kind.is_none_or(|w| w == k);
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    let node = &state.guests.node;
    let mut out = Vec::new();
    if want("node") {
        out.push(crate::pve::nodes::node_item(node, &perm));
    }
    if want("vm") {
        for vm in state.guests.vms.values() {
            if !perm.has(&vm_path(vm.vmid), &["VM.Audit"], false) {
                continue;
            }
            let mut item = vm_stats(vm);
            item.insert("id".into(), json!(format!("qemu/{}", vm.vmid)));
            item.insert("type".into(), json!("qemu"));
            item.insert("node".into(), json!(vm.node));
            item.insert("maxcpu".into(), json!(vm.cpus()));
            item.insert("template".into(), json!(u8::from(vm.is_template())));
            if let Some(pool) = state.cfg.pool_of_vm(vm.vmid)
                && perm.has(&format!("/pool/{pool}"), &["Pool.Audit"], false)
            {
                item.insert("pool".into(), json!(pool.as_str()));
            }
            out.push(Value::Object(item));
        }
    }
    if want("storage") {
        for s in &state.guests.storage {
            if !perm.has(&format!("/storage/{}", s.id), &["Datastore.Audit"], false) {
                continue;
            }
            out.push(json!({
                "id": format!("storage/{node}/{}", s.id), "type": "storage", "storage": s.id, "node": node,
                "status": "available", "content": s.content.join(","), "plugintype": s.kind, "shared": 0,
                "maxdisk": s.total, "disk": used_bytes(&state, &s.id),
            }));
        }
    }
    if want("pool") {
        for id in state.cfg.pools().keys() {
            if perm.has(&format!("/pool/{id}"), &["Pool.Audit"], false) {
                out.push(json!({ "id": format!("/pool/{id}"), "type": "pool", "pool": id.as_str() }));
            }
        }
    }
    if want("sdn") && perm.has("/sdn/zones/localnetwork", &["SDN.Audit"], false) {
        out.push(json!({ "id": format!("sdn/{node}/localnetwork"), "type": "sdn", "sdn": "localnetwork", "node": node, "status": "ok" }));
    }
    Ok(Value::Array(out))
}

pub(crate) fn nextid(lab: &Lab, p: &Params) -> Result<Value, ApiError> {
    let state = lab.read();
    if let Some(raw) = p.get("vmid") {
        let vmid = parse_vmid("vmid", raw)?;
        if state.guests.vms.contains_key(&vmid) {
            return Err(ApiError::param("vmid", format!("VM {vmid} already exists")));
        }
        return Ok(json!(vmid.to_string()));
    }
    let free = (100u64..).find(|id| !state.guests.vms.contains_key(id)).unwrap_or(100);
    Ok(json!(free.to_string()))
}

pub(crate) fn cluster_status(lab: &Lab) -> Result<Value, ApiError> {
    let state = lab.read();
    Ok(json!([{
        "type": "node", "name": state.guests.node, "id": format!("node/{}", state.guests.node), "nodeid": 0,
        "ip": "127.0.0.1", "local": 1, "online": 1, "level": "",
    }]))
}

pub(crate) fn cluster_tasks(lab: &Lab, caller: &Caller) -> Result<Value, ApiError> {
    let state = lab.read();
    let all = Perm::new(lab, &state, caller).has("/", &["Sys.Audit"], false);
    Ok(Value::Array(
        state.guests.tasks.values().filter(|t| all || task_owner(&t.user) == caller.authid).map(task_json).collect(),
    ))
}

pub(crate) fn ha_resource(sid: &str) -> Result<Value, ApiError> {
    let sid = if sid.contains(':') { sid.to_owned() } else { format!("vm:{sid}") };
    Err(ApiError::internal(format!("no such resource '{sid}'")))
}
