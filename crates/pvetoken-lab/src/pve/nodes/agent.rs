//! The QEMU guest agent of a running VM, as PVE (qemu-server `API2/Qemu/Agent.pm`) and qemu-guest-agent answer:
//! ping and the informational commands, `file-write` / `file-read` on the lab's per-file model (content, mode,
//! owner, group), and `exec` / `exec-status` running a few coreutils (`touch`, `chmod`, `chown`, `stat`, `cat`) on
//! that model.
//!
//! File rules of qemu-guest-agent (`qga/commands-posix.c`, see `docs/deliver.md`): `file-write` opens with mode
//! `wb`; a **new** file is created and then `fchmod(0666)` whatever the umask, owned by the agent's user (root); an
//! **existing** file is truncated and keeps its mode and owner. `exec` runs as root with the agent's umask 022.
//!
//! The guest's files, users and coreutils are the guest model (`crate::guest`); this module is the API over it.
//! Checks, in PVE's order: the permission (the endpoint catalog's declaration, run before any handler: PVE 9
//! `VM.GuestAgent.*`, PVE 8 `VM.Monitor`), the parameters, then
//! `assert_agent_available`: `No QEMU guest agent configured`, `VM N is not running`, `QEMU guest agent is not
//! running` (the lab's "agent does not answer" switch). Agent-side failures are `Agent error: ...`. All are 500.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::context::Lab;
use crate::guest::{self, Errno, GuestFile, lookup, normalize};
use crate::http::{ApiError, Params};
use crate::state::Vm;

/// PVE's `input-data` limit for `exec`.
const MAX_INPUT_DATA: usize = 64 * 1024;

fn open_error(file: &str, mode: &str, errno: Errno) -> ApiError {
    ApiError::internal(format!("Agent error: failed to open file '{file}' (mode: '{mode}'): {errno}"))
}

/// PVE's `assert_agent_available`.
/// `No QEMU guest agent configured` only when the config has no `agent` key at all; with `agent: 0` QEMU has no
/// agent channel, so the `guest-ping` fails like that of a silent agent.
pub(crate) fn agent_ready(vm: &Vm) -> Result<(), ApiError> {
    if !vm.config.contains_key("agent") {
        return Err(ApiError::internal("No QEMU guest agent configured"));
    }
    if vm.status != "running" {
        return Err(ApiError::internal(format!("VM {} is not running", vm.vmid)));
    }
    if !vm.agent_enabled() || vm.agent_silent {
        return Err(ApiError::internal("QEMU guest agent is not running"));
    }
    Ok(())
}

fn no_config(lab: &Lab, vmid: u64) -> ApiError {
    ApiError::internal(format!("Configuration file 'nodes/{}/qemu-server/{vmid}.conf' does not exist", lab.node))
}

/// The agent's informational commands and `file-read`: what a route asks of [`query`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Query {
    /// `POST .../agent/ping`
    Ping,
    /// `GET .../agent/network-get-interfaces`
    Interfaces,
    /// `GET .../agent/get-osinfo`
    OsInfo,
    /// `GET .../agent/get-host-name`
    HostName,
    /// `GET .../agent/info`
    Info,
    /// `GET .../agent/file-read?file=`
    FileRead,
}

pub(crate) fn file_write(lab: &Lab, p: &Params, vmid: u64) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let file = p.required("file")?.to_owned();
    let content = p.required("content")?;
    if content.chars().count() > 61_440 {
        return Err(ApiError::param("content", "value may only be 61440 characters long"));
    }
    let bytes = if p.bool("encode")?.unwrap_or(true) {
        content.as_bytes().to_vec()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|_| ApiError::internal("Agent error: Invalid parameter 'buf-b64': invalid base64"))?
    };
    let vm = state.guests.vms.get_mut(&vmid).ok_or_else(|| no_config(lab, vmid))?;
    agent_ready(vm)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    // guest-file-open with mode `wb`: open(O_WRONLY|O_CREAT|O_TRUNC) fails on a missing parent, a parent that is a
    // file, or a directory; nothing is created then.
    let key = normalize(&file);
    match lookup(&vm.files, &file) {
        Err(errno) => return Err(open_error(&file, "wb", errno)),
        Ok(Some(entry)) if entry.directory => return Err(open_error(&file, "wb", Errno::IsDir)),
        Ok(None) if file.ends_with('/') => return Err(open_error(&file, "wb", Errno::IsDir)),
        // An existing file is truncated and keeps its mode and owner.
        Ok(Some(_)) => {
            if let Some(existing) = vm.files.get_mut(&key) {
                existing.content = encoded;
            }
        }
        Ok(None) => {
            vm.files.insert(key, GuestFile::created_by_agent(encoded));
        }
    }
    lab.save_guests(&state)?;
    Ok(Value::Null)
}

/// Answers an informational command or `file-read` once the agent is available.
pub(crate) fn query(lab: &Lab, p: &Params, vmid: u64, what: Query) -> Result<Value, ApiError> {
    let state = lab.read();
    let file = if what == Query::FileRead { Some(p.required("file")?) } else { None };
    let vm = state.guests.vms.get(&vmid).ok_or_else(|| no_config(lab, vmid))?;
    agent_ready(vm)?;
    match what {
        Query::Ping => Ok(json!({ "result": {} })),
        Query::Interfaces => {
            let mac = vm
                .config
                .get("net0")
                .and_then(|n| n.split(',').next()?.split_once('=').map(|(_, m)| m.to_ascii_lowercase()))
                .unwrap_or_else(|| crate::pve::nodes::qemu::mac_for(vmid, 0).to_ascii_lowercase());
            Ok(json!({ "result": [
                {"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [
                    {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                    {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}]},
                {"name": "eth0", "hardware-address": mac, "ip-addresses": [
                    {"ip-address": crate::pve::nodes::qemu::guest_ip(vmid), "ip-address-type": "ipv4", "prefix": 24}]},
            ]}))
        }
        Query::OsInfo => Ok(json!({ "result": {
            "id": "debian", "name": "Debian GNU/Linux", "version-id": "12", "version": "12 (bookworm)",
            "pretty-name": "Debian GNU/Linux 12 (bookworm)", "kernel-release": "6.1.0-lab-amd64", "machine": "x86_64",
        }})),
        Query::HostName => Ok(json!({ "result": { "host-name": vm.name() } })),
        Query::Info => Ok(json!({ "result": { "version": "7.2.0", "supported_commands": [] } })),
        Query::FileRead => {
            let file = file.unwrap_or_default();
            // guest-file-open with mode `r`: a directory opens, and the first guest-file-read fails.
            let stored = match lookup(&vm.files, file) {
                Err(errno) => return Err(open_error(file, "r", errno)),
                Ok(None) => return Err(open_error(file, "r", Errno::NoEnt)),
                Ok(Some(entry)) if entry.directory => {
                    return Err(ApiError::internal(format!("Agent error: failed to read file: {}", Errno::IsDir)));
                }
                Ok(Some(entry)) => entry,
            };
            let mut bytes = stored.bytes();
            if lab.control.take_corrupt_read(vmid) {
                corrupt(&mut bytes);
            }
            Ok(json!({ "content": String::from_utf8_lossy(&bytes), "bytes-read": bytes.len() }))
        }
    }
}

/// Changes the answer of a `file-read` so that it differs from what is stored (same length when not empty).
fn corrupt(bytes: &mut Vec<u8>) {
    match bytes.first_mut() {
        // Flipping the lowest bit keeps ASCII ASCII.
        Some(first) => *first ^= 0x01,
        None => bytes.push(b'?'),
    }
}

pub(crate) fn exec(lab: &Lab, p: &Params, vmid: u64) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let command: Vec<String> = p.required("command")?.split('\0').map(str::to_owned).collect();
    let input = p.get("input-data").map(str::to_owned);
    if input.as_ref().is_some_and(|i| i.chars().count() > MAX_INPUT_DATA) {
        return Err(ApiError::param("input-data", format!("value may only be {MAX_INPUT_DATA} characters long")));
    }
    let vm = state.guests.vms.get_mut(&vmid).ok_or_else(|| no_config(lab, vmid))?;
    agent_ready(vm)?;
    if vm.exec_disabled {
        return Err(ApiError::internal("Agent error: The command guest-exec has been disabled for this instance"));
    }
    let (program, args) = command.split_first().map(|(p, a)| (p.as_str(), a)).unwrap_or(("", &[]));
    if ["pvetoken", "/usr/bin/pvetoken"].contains(&program)
        && let Some(binary) = lab.guest_pvetoken.clone()
    {
        // A guest with pvetoken installed: the real binary runs on the guest's files (copied out and back).
        let staged = guest::exec::stage(lab, vmid, &vm.files, args)?;
        drop(state);
        let result = guest::exec::run(&binary, &staged, input.as_deref());
        let mut state = lab.write();
        let vm = state.guests.vms.get_mut(&vmid).ok_or_else(|| no_config(lab, vmid))?;
        guest::exec::unstage(&mut vm.files, staged);
        vm.next_exec_pid = vm.next_exec_pid.max(1000) + 1;
        let pid = vm.next_exec_pid;
        vm.exec.insert(pid, result);
        lab.save_guests(&state)?;
        return Ok(json!({ "pid": pid }));
    }
    let Some(result) = guest::run(&mut vm.files, program, args, input.as_deref()) else {
        return Err(ApiError::internal(format!(
            "Agent error: Failed to execute child process \u{201c}{program}\u{201d} (No such file or directory)"
        )));
    };
    vm.next_exec_pid = vm.next_exec_pid.max(1000) + 1;
    let pid = vm.next_exec_pid;
    vm.exec.insert(pid, result);
    lab.save_guests(&state)?;
    Ok(json!({ "pid": pid }))
}

pub(crate) fn exec_status(lab: &Lab, p: &Params, vmid: u64) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let pid = p.uint("pid")?.ok_or_else(|| ApiError::param("pid", "property is missing and it is not optional"))?;
    let vm = state.guests.vms.get_mut(&vmid).ok_or_else(|| no_config(lab, vmid))?;
    agent_ready(vm)?;
    if vm.exec_disabled {
        return Err(ApiError::internal(
            "Agent error: The command guest-exec-status has been disabled for this instance",
        ));
    }
    // qemu-guest-agent forgets a process once it reported its exit.
    let result = vm.exec.remove(&pid).ok_or_else(|| ApiError::internal("Agent error: Invalid parameter 'pid'"))?;
    lab.save_guests(&state)?;
    let mut out = serde_json::Map::new();
    out.insert("exited".into(), json!(1));
    out.insert("exitcode".into(), json!(result.exitcode));
    if !result.out.is_empty() {
        out.insert("out-data".into(), json!(result.out));
    }
    if !result.err.is_empty() {
        out.insert("err-data".into(), json!(result.err));
    }
    Ok(Value::Object(out))
}
