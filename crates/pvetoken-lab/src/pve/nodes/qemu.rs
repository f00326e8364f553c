//! `/nodes/{node}/qemu`: VMs as records (create, clone, config with qemu-server's per-key checks, disks: resize,
//! unlink, move, status, template, snapshots) (qemu-server `PVE/API2/Qemu.pm`).

use std::collections::BTreeMap;

use pvetoken_acl::PoolId;
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use pvetoken_acl::endpoints::{self, ConfigKey, NOT_CONFIG_KEYS, is_drive_key};

use crate::clock::now;
use crate::context::{Caller, Lab, Perm};
use crate::http::{ApiError, Params};
use crate::pve::access::split_list;
use crate::pve::nodes::tasks::task;
use crate::pve::storage::find_storage;
use crate::pve::vm_path;
use crate::state::{State, Vm, Volume, config_value, content_of, disk_volid};

/// `GET /nodes/{node}/qemu/{vmid}` (qemu-server's vmdiridx, `user => 'all'`) answers its index only for a VM that
/// exists.
pub(crate) fn vm_exists(lab: &Lab, vmid: u64) -> Result<(), ApiError> {
    vm(&lab.read(), vmid).map(drop)
}

pub(crate) fn parse_vmid(key: &str, raw: &str) -> Result<u64, ApiError> {
    let n: u64 =
        raw.trim().parse().map_err(|_| ApiError::param(key, format!("type check ('integer') failed - got '{raw}'")))?;
    if n < 100 {
        return Err(ApiError::param(key, "value must have a minimum value of 100"));
    }
    if n > 999_999_999 {
        return Err(ApiError::param(key, "value must have a maximum value of 999999999"));
    }
    Ok(n)
}

pub(crate) fn vm(state: &State, vmid: u64) -> Result<&Vm, ApiError> {
    state.guests.vms.get(&vmid).ok_or_else(|| no_config(state, vmid))
}

pub(crate) fn no_config(state: &State, vmid: u64) -> ApiError {
    ApiError::internal(format!(
        "Configuration file 'nodes/{}/qemu-server/{vmid}.conf' does not exist",
        state.guests.node
    ))
}

pub(crate) fn mac_for(vmid: u64, index: u32) -> String {
    let h = sha2::Sha256::digest(format!("{vmid}/{index}").as_bytes());
    format!("BC:24:11:{:02X}:{:02X}:{:02X}", h[0], h[1], h[2])
}

/// The deterministic guest-agent address of a guest: `10.0.<vmid / 256 % 256>.<vmid % 256>` on `eth0`.
pub(crate) fn guest_ip(vmid: u64) -> String {
    format!("10.0.{}.{}", (vmid / 256) % 256, vmid % 256)
}

pub(crate) fn numbered(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// The per-key permission check of PUT/POST config and create (`check_vm_modify_config_perm` and drive checks).
pub(crate) fn check_config_key(
    lab: &Lab,
    perm: &Perm<'_>,
    vmid: u64,
    key: &str,
    value: Option<&str>,
) -> Result<(), ApiError> {
    if perm.caller.is_root() {
        return Ok(());
    }
    let path = vm_path(vmid);
    // The privilege class of each key is the endpoint catalog's (`pvetoken_acl::endpoints::config_key`).
    let class: &[&str] = match endpoints::config_key(key, lab.version) {
        ConfigKey::Privileges { privs, any: true } => return perm.check(&path, privs, true),
        ConfigKey::Privileges { privs, any: false } if key == "vmstate" => return perm.check(&path, privs, false),
        ConfigKey::Privileges { privs, any: false } => privs,
        ConfigKey::Drive => return check_drive(perm, vmid, value),
        ConfigKey::Nic => &["VM.Config.Network"],
        ConfigKey::Serial => {
            if value.is_some_and(|v| v != "socket") {
                return Err(ApiError::internal(format!("only root can set '{key}' config")));
            }
            &["VM.Config.HWType"]
        }
        ConfigKey::RootOnly => return Err(ApiError::internal(format!("only root can set '{key}' config"))),
    };
    perm.check(&path, class, false)?;
    if key == "startup" {
        perm.check("/", &["Sys.Modify"], false)?;
    }
    if numbered(key, "net")
        && lab.version.major >= 8
        && let Some(v) = value
    {
        check_bridge(perm, v)?;
    }
    Ok(())
}

/// A drive value: CD-ROM (`media=cdrom`, ISO, cloud-init) needs `VM.Config.CDROM` (cloud-init also
/// `VM.Config.Cloudinit`), a disk `VM.Config.Disk`, a new disk `Datastore.AllocateSpace` on its storage.
pub(crate) fn check_drive(perm: &Perm<'_>, vmid: u64, value: Option<&str>) -> Result<(), ApiError> {
    let path = vm_path(vmid);
    let v = value.unwrap_or_default();
    let volume = v.split(',').next().unwrap_or_default();
    if volume.contains("cloudinit") {
        return perm.check(&path, &["VM.Config.Cloudinit", "VM.Config.CDROM"], false);
    }
    if v.contains("media=cdrom") || volume == "none" || volume == "cdrom" || volume.contains(":iso/") {
        perm.check(&path, &["VM.Config.CDROM"], false)?;
        if volume == "cdrom" {
            perm.check("/", &["Sys.Console"], false)?;
        }
        if let Some((sid, _)) = volume.split_once(':') {
            perm.check(&format!("/storage/{sid}"), &["Datastore.AllocateSpace", "Datastore.Audit"], true)?;
        }
        return Ok(());
    }
    perm.check(&path, &["VM.Config.Disk"], false)?;
    if let Some((sid, size)) = volume.split_once(':')
        && size.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        perm.check(&format!("/storage/{sid}"), &["Datastore.AllocateSpace"], false)?;
    }
    Ok(())
}

/// PVE 8+: `SDN.Use` on `/sdn/zones/localnetwork/<bridge>[/<tag>]` for a NIC (not for root@pam).
pub(crate) fn check_bridge(perm: &Perm<'_>, net: &str) -> Result<(), ApiError> {
    if perm.caller.is_root() {
        return Ok(());
    }
    let mut bridge = None;
    let mut tag = None;
    for part in net.split(',') {
        if let Some(b) = part.strip_prefix("bridge=") {
            bridge = Some(b);
        } else if let Some(t) = part.strip_prefix("tag=") {
            tag = Some(t);
        }
    }
    let Some(bridge) = bridge else { return Ok(()) };
    let path = match tag {
        Some(t) => format!("/sdn/zones/localnetwork/{bridge}/{t}"),
        None => format!("/sdn/zones/localnetwork/{bridge}"),
    };
    perm.check(&path, &["SDN.Use"], false)
}

/// Turns request values into stored config values: NICs get a MAC, new disks (`sid:size`) become volumes.
pub(crate) fn materialize(state: &mut State, vmid: u64, key: &str, value: &str) -> String {
    if numbered(key, "net") {
        let mut parts: Vec<String> = value.split(',').map(str::to_owned).collect();
        if let Some(first) = parts.first_mut()
            && !first.contains('=')
        {
            let index: u32 = key[3..].parse().unwrap_or(0);
            *first = format!("{first}={}", mac_for(vmid, index));
        }
        return parts.join(",");
    }
    if is_drive_key(key) {
        let mut parts: Vec<&str> = value.split(',').collect();
        let first = parts.first().copied().unwrap_or_default();
        if let Some((sid, rest)) = first.split_once(':') {
            if rest == "cloudinit" {
                let volid = format!("{sid}:vm-{vmid}-cloudinit");
                add_volume(state, &volid, 4 << 20, Some(vmid));
                let owned = format!("{volid},media=cdrom");
                return owned;
            }
            if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.') {
                let gib: f64 = rest.parse().unwrap_or(1.0);
                let n = state.guests.volumes.iter().filter(|v| v.vmid == Some(vmid)).count();
                let volid = format!("{sid}:vm-{vmid}-disk-{n}");
                add_volume(state, &volid, (gib * (1u64 << 30) as f64) as u64, Some(vmid));
                let size = format!("size={rest}G");
                parts[0] = "";
                let tail: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
                let mut out = format!("{volid},{size}");
                for t in tail {
                    out.push(',');
                    out.push_str(t);
                }
                return out;
            }
            // An existing volume set again (an option changed): PVE keeps its size in the drive string.
            if !value.split(',').any(|part| part.starts_with("size="))
                && let Some(volume) = state.guests.volumes.iter().find(|v| v.volid == first)
            {
                return with_size(value, volume.size);
            }
        }
    }
    value.to_owned()
}

pub(crate) fn add_volume(state: &mut State, volid: &str, size: u64, vmid: Option<u64>) {
    if !state.guests.volumes.iter().any(|v| v.volid == volid) {
        state.guests.volumes.push(Volume {
            volid: volid.to_owned(),
            size,
            content: content_of(volid),
            vmid,
            ctime: now(),
        });
    }
}

pub(crate) fn digest(config: &BTreeMap<String, String>) -> String {
    let mut h = sha2::Sha256::new();
    for (k, v) in config {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    hex::encode(&h.finalize()[..20])
}

pub(crate) fn config_json(vm: &Vm) -> Value {
    let mut out: Map<String, Value> = vm
        .config
        .iter()
        .map(|(k, v)| (k.clone(), if k == "cipassword" { json!("**********") } else { config_value(k, v) }))
        .collect();
    out.insert("digest".into(), json!(digest(&vm.config)));
    Value::Object(out)
}

pub(crate) fn vm_stats(vm: &Vm) -> Map<String, Value> {
    let running = vm.status == "running";
    let mut out = Map::new();
    out.insert("vmid".into(), json!(vm.vmid));
    out.insert("name".into(), json!(vm.name()));
    out.insert("status".into(), json!(vm.status));
    out.insert("cpus".into(), json!(vm.cpus()));
    out.insert("maxmem".into(), json!(vm.memory_mib() << 20));
    out.insert("mem".into(), json!(if running { (vm.memory_mib() << 20) / 4 } else { 0 }));
    out.insert("maxdisk".into(), json!(8u64 << 30));
    out.insert("disk".into(), json!(0));
    out.insert("cpu".into(), json!(if running { 0.01 } else { 0.0 }));
    out.insert("uptime".into(), json!(if running { now().saturating_sub(vm.started_at) } else { 0 }));
    for k in ["netin", "netout", "diskread", "diskwrite"] {
        out.insert(k.into(), json!(0));
    }
    if running {
        out.insert("pid".into(), json!(10_000 + vm.vmid));
    }
    if vm.is_template() {
        out.insert("template".into(), json!(1));
    }
    out
}

pub(crate) fn qemu_list(lab: &Lab, caller: &Caller) -> Result<Value, ApiError> {
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    Ok(Value::Array(
        state
            .guests
            .vms
            .values()
            .filter(|vm| perm.has(&vm_path(vm.vmid), &["VM.Audit"], false))
            .map(|vm| Value::Object(vm_stats(vm)))
            .collect(),
    ))
}

pub(crate) fn config_params(p: &Params) -> Vec<(String, String)> {
    p.iter().filter(|(k, _)| !NOT_CONFIG_KEYS.contains(k)).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

pub(crate) fn qemu_create(lab: &Lab, caller: &Caller, p: &Params) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let vmid = parse_vmid("vmid", p.required("vmid")?)?;
    let pool = p.get("pool").map(str::to_owned);
    let keys = config_params(p);
    {
        let perm = Perm::new(lab, &state, caller);
        if let Some(pool) = &pool
            && !state.cfg.pools().keys().any(|k| k.as_str() == pool)
        {
            return Err(ApiError::internal(format!("pool '{pool}' does not exist")));
        }
        if let Some(sid) = p.get("storage") {
            perm.check(&format!("/storage/{sid}"), &["Datastore.AllocateSpace"], false)?;
        }
        let allowed = perm.has(&vm_path(vmid), &["VM.Allocate"], false)
            || pool.as_ref().is_some_and(|pl| perm.has(&format!("/pool/{pl}"), &["VM.Allocate"], false));
        if !allowed {
            return Err(ApiError::forbidden(""));
        }
        for (k, v) in &keys {
            check_config_key(lab, &perm, vmid, k, Some(v))?;
        }
    }
    if state.guests.vms.contains_key(&vmid) {
        return Err(ApiError::internal(format!(
            "unable to create VM {vmid} - VM {vmid} already exists on node '{}'",
            state.guests.node
        )));
    }
    for (k, v) in &keys {
        if is_drive_key(k) {
            let volume = v.split(',').next().unwrap_or_default();
            if volume.contains(":iso/") && !state.guests.volumes.iter().any(|x| x.volid == volume) {
                return Err(ApiError::internal(format!(
                    "unable to create VM {vmid} - volume '{volume}' does not exist"
                )));
            }
        }
    }
    let mut config = BTreeMap::new();
    for (k, v) in &keys {
        let value = materialize(&mut state, vmid, k, v);
        config.insert(k.clone(), value);
    }
    config.entry("smbios1".into()).or_insert_with(|| format!("uuid={}", crate::state::fake_uuid(vmid)));
    config.entry("vmgenid".into()).or_insert_with(|| crate::state::fake_uuid(vmid + 7));
    let start = p.bool("start")?.unwrap_or(false);
    let node = state.guests.node.clone();
    state.guests.vms.insert(
        vmid,
        Vm {
            vmid,
            node,
            status: if start { "running".into() } else { "stopped".into() },
            config,
            started_at: if start { now() } else { 0 },
            ..Vm::default()
        },
    );
    join_pool(lab, &mut state, pool.as_deref(), vmid)?;
    finish_task(lab, &mut state, "qmcreate", vmid, caller)
}

/// A new VM joins the pool its creator named (`pool=`), when that pool exists.
fn join_pool(lab: &Lab, state: &mut State, pool: Option<&str>, vmid: u64) -> Result<(), ApiError> {
    if let Some(pool) = pool.and_then(|p| p.parse::<PoolId>().ok()) {
        let _ = state.cfg.add_pool_members(&pool, &[vmid], &[]);
        lab.save_access(state)?;
    }
    Ok(())
}

/// The finished task of a guest change (its UPID answers the call), saved with the guests.
fn finish_task(lab: &Lab, state: &mut State, kind: &str, vmid: u64, caller: &Caller) -> Result<Value, ApiError> {
    let upid = task(state, kind, &vmid.to_string(), &caller.authid, "OK");
    lab.save_guests(state)?;
    Ok(json!(upid))
}

pub(crate) fn vm_delete(lab: &Lab, caller: &Caller, vmid: u64) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let running = vm(&state, vmid)?.status == "running";
    if running {
        return Err(ApiError::internal(format!("VM {vmid} is running - destroy failed")));
    }
    state.guests.vms.remove(&vmid);
    state.guests.volumes.retain(|v| v.vmid != Some(vmid));
    if let Some(pool) = state.cfg.pool_of_vm(vmid).cloned() {
        let _ = state.cfg.remove_pool_members(&pool, &[vmid], &[]);
        lab.save_access(&state)?;
    }
    finish_task(lab, &mut state, "qmdestroy", vmid, caller)
}

pub(crate) fn config_get(lab: &Lab, vmid: u64) -> Result<Value, ApiError> {
    let state = lab.read();
    Ok(config_json(vm(&state, vmid)?))
}

pub(crate) fn pending(lab: &Lab, vmid: u64) -> Result<Value, ApiError> {
    let state = lab.read();
    let vm = vm(&state, vmid)?;
    Ok(Value::Array(vm.config.iter().map(|(k, v)| json!({"key": k, "value": config_value(k, v)})).collect()))
}

pub(crate) fn config_set(lab: &Lab, caller: &Caller, p: &Params, vmid: u64, is_post: bool) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let keys = config_params(p);
    let deletes: Vec<String> = split_list(p.get("delete").unwrap_or_default())
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    {
        // The declaration ("any VM.Config.*") was checked before; each changed or deleted key needs its class.
        let perm = Perm::new(lab, &state, caller);
        let current = state.guests.vms.get(&vmid);
        for (k, v) in &keys {
            check_config_key(lab, &perm, vmid, k, Some(v))?;
        }
        for k in &deletes {
            let old = current.and_then(|vm| vm.config.get(k)).map(String::as_str);
            check_config_key(lab, &perm, vmid, k, old)?;
        }
    }
    vm(&state, vmid)?;
    if let Some(d) = p.get("digest")
        && let Some(vm) = state.guests.vms.get(&vmid)
        && d != digest(&vm.config)
    {
        return Err(ApiError::internal("detected modified configuration - file changed by other user? Try again."));
    }
    let values: Vec<(String, String)> =
        keys.iter().map(|(k, v)| (k.clone(), materialize(&mut state, vmid, k, v))).collect();
    if let Some(vm) = state.guests.vms.get_mut(&vmid) {
        for k in &deletes {
            vm.config.remove(k);
        }
        for (k, v) in values {
            vm.config.insert(k, v);
        }
    }
    let result = if is_post {
        json!(task(&mut state, "qmconfig", &vmid.to_string(), &caller.authid, "OK"))
    } else {
        Value::Null
    };
    lab.save_guests(&state)?;
    Ok(result)
}

pub(crate) fn status_current(lab: &Lab, vmid: u64) -> Result<Value, ApiError> {
    let state = lab.read();
    let vm = vm(&state, vmid)?;
    let mut out = vm_stats(vm);
    out.insert("qmpstatus".into(), json!(vm.status));
    out.insert("ha".into(), json!({"managed": 0}));
    if vm.agent_enabled() {
        out.insert("agent".into(), json!(1));
    }
    Ok(Value::Object(out))
}

pub(crate) fn status_action(lab: &Lab, caller: &Caller, vmid: u64, action: &str) -> Result<Value, ApiError> {
    let kind = match action {
        "start" => "qmstart",
        "stop" => "qmstop",
        "shutdown" => "qmshutdown",
        "reboot" => "qmreboot",
        "reset" => "qmreset",
        "suspend" => "qmsuspend",
        "resume" => "qmresume",
        _ => {
            return Err(ApiError::not_implemented(
                "POST",
                &format!("/api2/json/nodes/{}/qemu/{vmid}/status/{action}", lab.node),
            ));
        }
    };
    let mut state = lab.write();
    let (template, running) = {
        let vm = vm(&state, vmid)?;
        (vm.is_template(), vm.status == "running")
    };
    match action {
        "start" if template => return Err(ApiError::internal("you can't start a vm if it's a template")),
        "reboot" | "reset" | "suspend" if !running => return Err(ApiError::internal(format!("VM {vmid} not running"))),
        _ => {}
    }
    let exitstatus = if action == "start" && running { format!("VM {vmid} already running") } else { "OK".to_owned() };
    if let Some(vm) = state.guests.vms.get_mut(&vmid) {
        match action {
            "start" | "resume" if !running => {
                vm.status = "running".into();
                vm.started_at = now();
            }
            "stop" | "shutdown" => vm.status = "stopped".into(),
            _ => {}
        }
    }
    let upid = task(&mut state, kind, &vmid.to_string(), &caller.authid, &exitstatus);
    lab.save_guests(&state)?;
    Ok(json!(upid))
}

pub(crate) fn clone(lab: &Lab, caller: &Caller, p: &Params, vmid: u64) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let newid = parse_vmid("newid", p.required("newid")?)?;
    let pool = p.get("pool").map(str::to_owned);
    let target_storage = p.get("storage").map(str::to_owned);
    {
        // VM.Clone on the source and VM.Allocate on the new id (or its pool) are the declaration, checked before.
        let perm = Perm::new(lab, &state, caller);
        if let Some(pool) = &pool
            && !state.cfg.pools().keys().any(|k| k.as_str() == pool)
        {
            return Err(ApiError::internal(format!("pool '{pool}' does not exist")));
        }
        let source = vm(&state, vmid)?;
        if !caller.is_root() {
            for (k, v) in &source.config {
                if is_drive_key(k)
                    && !v.contains("media=cdrom")
                    && let Some(volid) = disk_volid(v)
                {
                    let sid = target_storage
                        .clone()
                        .unwrap_or_else(|| volid.split(':').next().unwrap_or_default().to_owned());
                    perm.check(&format!("/storage/{sid}"), &["Datastore.AllocateSpace"], false)?;
                }
                if numbered(k, "net") && lab.version.major >= 8 {
                    check_bridge(&perm, v)?;
                }
            }
        }
    }
    if state.guests.vms.contains_key(&newid) {
        return Err(ApiError::internal(format!("unable to create VM {newid}: config file already exists")));
    }
    let source = vm(&state, vmid)?.clone();
    let mut config = BTreeMap::new();
    let mut disk_index = 0;
    let mut new_volumes = Vec::new();
    for (k, v) in &source.config {
        if k == "template" || k == "vmgenid" || k == "smbios1" {
            continue;
        }
        let mut value = v.clone();
        if numbered(k, "net") {
            let index: u32 = k[3..].parse().unwrap_or(0);
            let mut parts: Vec<String> = v.split(',').map(str::to_owned).collect();
            if let Some(first) = parts.first_mut() {
                let model = first.split('=').next().unwrap_or("virtio").to_owned();
                *first = format!("{model}={}", mac_for(newid, index));
            }
            value = parts.join(",");
        } else if is_drive_key(k) {
            if let Some(volid) = disk_volid(v) {
                let sid =
                    target_storage.clone().unwrap_or_else(|| volid.split(':').next().unwrap_or_default().to_owned());
                let new = format!("{sid}:vm-{newid}-disk-{disk_index}");
                disk_index += 1;
                value = v.replacen(&volid, &new, 1);
                new_volumes.push(new);
            } else if v.contains("cloudinit") {
                let sid = v.split(':').next().unwrap_or("local-lvm");
                let new = format!("{sid}:vm-{newid}-cloudinit");
                value = format!("{new},media=cdrom");
                new_volumes.push(new);
            }
        }
        config.insert(k.clone(), value);
    }
    config.insert("name".into(), p.get("name").map_or_else(|| format!("Copy-of-VM-{}", source.name()), str::to_owned));
    if let Some(d) = p.get("description") {
        config.insert("description".into(), d.to_owned());
    }
    config.insert("smbios1".into(), format!("uuid={}", crate::state::fake_uuid(newid)));
    config.insert("vmgenid".into(), crate::state::fake_uuid(newid + 7));
    for v in new_volumes {
        add_volume(&mut state, &v, 8 << 30, Some(newid));
    }
    let node = state.guests.node.clone();
    state
        .guests
        .vms
        .insert(newid, Vm { vmid: newid, node, status: "stopped".into(), config, started_at: 0, ..Vm::default() });
    join_pool(lab, &mut state, pool.as_deref(), newid)?;
    finish_task(lab, &mut state, "qmclone", vmid, caller)
}

pub(crate) fn template(lab: &Lab, caller: &Caller, vmid: u64) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let (template, running) = {
        let vm = vm(&state, vmid)?;
        (vm.is_template(), vm.status == "running")
    };
    if template {
        return Err(ApiError::internal("you can't convert a template to a template"));
    }
    if running {
        return Err(ApiError::internal("you can't convert a VM to template if VM is running"));
    }
    if let Some(vm) = state.guests.vms.get_mut(&vmid) {
        vm.config.insert("template".into(), "1".into());
    }
    task(&mut state, "qmtemplate", &vmid.to_string(), &caller.authid, "OK");
    lab.save_guests(&state)?;
    Ok(Value::Null)
}

/// A disk's volume and its `size=` (bytes) from a drive value; `None` for a CD-ROM or a drive without a volume.
pub(crate) fn disk_of(value: &str) -> Option<(String, u64)> {
    if value.contains("media=cdrom") {
        return None;
    }
    let volid = value.split(',').next().filter(|v| v.contains(':'))?.to_owned();
    let size = value.split(',').find_map(|part| part.strip_prefix("size=")).and_then(parse_size).unwrap_or(0);
    Some((volid, size))
}

/// `10G`, `512M`, `1.5T`, `4096` (bytes) → bytes.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let factor: u64 = match unit {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        'T' => 1 << 40,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value >= 0.0).then_some((value * factor as f64) as u64)
}

/// PVE's `format_size`: the largest unit that divides the size exactly (`10G`, `10752M`, `4096`).
pub(crate) fn format_size(bytes: u64) -> String {
    for (unit, factor) in [('T', 1u64 << 40), ('G', 1 << 30), ('M', 1 << 20), ('K', 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    bytes.to_string()
}

/// The drive value with `size=` replaced (or added).
pub(crate) fn with_size(value: &str, bytes: u64) -> String {
    let mut parts: Vec<String> = value.split(',').filter(|p| !p.starts_with("size=")).map(str::to_owned).collect();
    parts.push(format!("size={}", format_size(bytes)));
    parts.join(",")
}

/// `PUT /nodes/{node}/qemu/{vmid}/resize`: VM.Config.Disk on the VM, Datastore.AllocateSpace on the disk's storage;
/// `size` absolute or `+N`; never smaller. PVE 8+ answers with a task (the module waits for it), 7 with null.
pub(crate) fn resize(lab: &Lab, caller: &Caller, p: &Params, vmid: u64) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let disk = p.required("disk")?.to_owned();
    let size = p.required("size")?.to_owned();
    let (grow, amount) = match size.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, size.as_str()),
    };
    let Some(amount) = parse_size(amount).filter(|_| !amount.is_empty()) else {
        return Err(ApiError::param("size", format!("value '{size}' does not match the regex pattern")));
    };
    let perm = Perm::new(lab, &state, caller);
    let value = vm(&state, vmid)?.config.get(&disk).cloned();
    let Some(value) = value.filter(|_| is_drive_key(&disk) && !disk.starts_with("unused")) else {
        return Err(ApiError::internal(format!("disk '{disk}' does not exist")));
    };
    let Some((volid, current)) = disk_of(&value) else {
        return Err(ApiError::internal("you can't resize a cdrom"));
    };
    let sid = volid.split(':').next().unwrap_or_default().to_owned();
    perm.check(&format!("/storage/{sid}"), &["Datastore.AllocateSpace"], false)?;
    let new = if grow { current + amount } else { amount };
    if new < current {
        return Err(ApiError::internal("shrinking disks is not supported"));
    }
    if let Some(vm) = state.guests.vms.get_mut(&vmid) {
        vm.config.insert(disk.clone(), with_size(&value, new));
    }
    if let Some(volume) = state.guests.volumes.iter_mut().find(|v| v.volid == volid) {
        volume.size = new;
    }
    let upid = task(&mut state, "resize", &vmid.to_string(), &caller.authid, "OK");
    lab.save_guests(&state)?;
    Ok(if lab.version.major >= 8 { json!(upid) } else { Value::Null })
}

/// The next free `unusedN` key of a config.
pub(crate) fn next_unused(config: &BTreeMap<String, String>) -> String {
    (0..).map(|n| format!("unused{n}")).find(|key| !config.contains_key(key)).unwrap_or_default()
}

/// `PUT /nodes/{node}/qemu/{vmid}/unlink`: VM.Config.Disk; each disk of `idlist` leaves the config: with `force`
/// its volume is deleted, else it stays as `unusedN`.
pub(crate) fn unlink(lab: &Lab, p: &Params, vmid: u64) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let idlist = p.required("idlist")?.to_owned();
    let force = p.bool("force")?.unwrap_or(false);
    vm(&state, vmid)?;
    let mut deleted = Vec::new();
    if let Some(vm) = state.guests.vms.get_mut(&vmid) {
        for key in idlist.split([',', ';', ' ', '\0']).filter(|key| !key.is_empty()) {
            let Some(value) = vm.config.remove(key) else { continue };
            let Some((volid, _)) = disk_of(&value) else { continue };
            if force || key.starts_with("unused") {
                deleted.push(volid);
            } else {
                let unused = next_unused(&vm.config);
                vm.config.insert(unused, volid);
            }
        }
    }
    state.guests.volumes.retain(|volume| !deleted.contains(&volume.volid));
    lab.save_guests(&state)?;
    Ok(Value::Null)
}

/// `POST /nodes/{node}/qemu/{vmid}/move_disk`: VM.Config.Disk on the VM (and on `target-vmid`), Datastore.AllocateSpace
/// on the target storage. To a storage: a new volume there (the old one deleted with `delete`, else `unusedN`); to
/// another VM: the volume renamed to it under `target-disk`. Answers with a task.
pub(crate) fn move_disk(lab: &Lab, caller: &Caller, p: &Params, vmid: u64) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let disk = p.required("disk")?.to_owned();
    let storage = p.get("storage").map(str::to_owned);
    let target_vmid = p.get("target-vmid").map(|v| parse_vmid("target-vmid", v)).transpose()?;
    let target_disk = p.get("target-disk").map(str::to_owned);
    let delete = p.bool("delete")?.unwrap_or(false);
    if storage.is_none() && target_vmid.is_none() {
        return Err(ApiError::internal("either set 'storage' or 'target-vmid'"));
    }
    {
        let perm = Perm::new(lab, &state, caller);
        if let Some(target) = target_vmid {
            perm.check(&vm_path(target), &["VM.Config.Disk"], false)?;
        }
        if let Some(sid) = &storage {
            perm.check(&format!("/storage/{sid}"), &["Datastore.AllocateSpace"], false)?;
            if !find_storage(&state, sid)?.content.iter().any(|c| c == "images") {
                return Err(ApiError::internal(format!("storage '{sid}' does not support content-type 'images'")));
            }
        }
    }
    let value = vm(&state, vmid)?.config.get(&disk).cloned();
    let Some(value) = value.filter(|_| is_drive_key(&disk)) else {
        return Err(ApiError::internal(format!("disk '{disk}' does not exist")));
    };
    let Some((volid, size)) = disk_of(&value) else {
        return Err(ApiError::internal("you can't move a cdrom"));
    };
    let owner = target_vmid.unwrap_or(vmid);
    let sid = storage.clone().unwrap_or_else(|| volid.split(':').next().unwrap_or_default().to_owned());
    if target_vmid.is_none() && volid.starts_with(&format!("{sid}:")) {
        return Err(ApiError::internal(format!(
            "unable to move disk '{disk}' to the same storage '{sid}' (you can't move to the same storage with same \
             format)"
        )));
    }
    if let Some(target) = target_vmid {
        let key = target_disk.clone().unwrap_or_else(|| disk.clone());
        if vm(&state, target)?.config.contains_key(&key) {
            return Err(ApiError::internal(format!("target disk '{key}' of VM {target} is in use")));
        }
    }
    let n = state.guests.volumes.iter().filter(|v| v.vmid == Some(owner)).count();
    let new_volid = format!("{sid}:vm-{owner}-disk-{n}");
    add_volume(&mut state, &new_volid, size, Some(owner));
    let moved = value.replacen(&volid, &new_volid, 1);
    let keep_old = target_vmid.is_none() && !delete;
    if let Some(vm) = state.guests.vms.get_mut(&vmid) {
        vm.config.remove(&disk);
        if keep_old {
            let unused = next_unused(&vm.config);
            vm.config.insert(unused, volid.clone());
        }
        if target_vmid.is_none() {
            vm.config.insert(disk.clone(), moved.clone());
        }
    }
    if let Some(target) = target_vmid
        && let Some(vm) = state.guests.vms.get_mut(&target)
    {
        vm.config.insert(target_disk.unwrap_or_else(|| disk.clone()), moved);
    }
    if !keep_old {
        state.guests.volumes.retain(|volume| volume.volid != volid);
    }
    finish_task(lab, &mut state, "qmmove", vmid, caller)
}

pub(crate) fn snapshots(lab: &Lab, vmid: u64) -> Result<Value, ApiError> {
    let state = lab.read();
    let vm = vm(&state, vmid)?;
    Ok(
        json!([{"name": "current", "description": "You are here!", "running": u8::from(vm.status == "running"), "digest": digest(&vm.config)}]),
    )
}
