//! `/nodes` and one node: status, network, apt versions (pve-manager `PVE/API2/Nodes.pm`, `APT.pm`); its guests
//! (`qemu`, the guest agent `agent`) and tasks below.

pub(crate) mod agent;
pub(crate) mod qemu;
pub(crate) mod tasks;

use serde_json::{Map, Value, json};

use crate::context::{Caller, Lab, Perm};
use crate::http::ApiError;

pub(crate) fn nodes(lab: &Lab, caller: &Caller) -> Result<Value, ApiError> {
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    Ok(json!([node_item(&state.guests.node, &perm)]))
}

/// The node as `GET /nodes` and `GET /cluster/resources` list it: its figures only with `Sys.Audit` on it.
pub(crate) fn node_item(node: &str, perm: &Perm<'_>) -> Value {
    let mut item = Map::new();
    item.insert("node".into(), json!(node));
    item.insert("status".into(), json!("online"));
    item.insert("type".into(), json!("node"));
    item.insert("id".into(), json!(format!("node/{node}")));
    item.insert("level".into(), json!(""));
    if perm.has(&format!("/nodes/{node}"), &["Sys.Audit"], false) {
        item.insert("maxcpu".into(), json!(8));
        item.insert("maxmem".into(), json!(32u64 << 30));
        item.insert("mem".into(), json!(4u64 << 30));
        item.insert("cpu".into(), json!(0.02));
        item.insert("uptime".into(), json!(86_400));
        item.insert("maxdisk".into(), json!(100u64 << 30));
        item.insert("disk".into(), json!(10u64 << 30));
    }
    Value::Object(item)
}

pub(crate) fn node_status(lab: &Lab) -> Result<Value, ApiError> {
    Ok(json!({
        "cpu": 0.02, "uptime": 86_400, "pveversion": format!("pve-manager/{}/lab", lab.manager_version()),
        "kversion": "Linux 6.8.12-lab #1 SMP PREEMPT_DYNAMIC (pvetoken lab simulator)",
        "memory": {"total": 32u64 << 30, "used": 4u64 << 30, "free": 28u64 << 30},
        "cpuinfo": {"cpus": 8, "sockets": 1, "cores": 8, "model": "pvetoken lab virtual CPU"},
    }))
}

/// `GET /nodes/{node}/apt/versions`: `Sys.Audit` on `/nodes/{node}` (pve-manager `PVE/API2/APT.pm`).
pub(crate) fn apt_versions(lab: &Lab) -> Result<Value, ApiError> {
    Ok(lab.installed.apt_versions())
}

pub(crate) fn node_network(lab: &Lab, caller: &Caller) -> Result<Value, ApiError> {
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    Ok(Value::Array(
        state
            .guests
            .bridges
            .iter()
            .filter(|b| lab.version.major < 8 || perm.has(&format!("/sdn/zones/localnetwork/{b}"), &["SDN.Audit", "SDN.Use"], true))
            .map(|b| json!({"iface": b, "type": "bridge", "active": 1, "autostart": 1, "bridge_ports": "eno1", "method": "manual", "families": ["inet"]}))
            .collect(),
    ))
}
