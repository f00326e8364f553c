//! The QEMU guest agent of a running VM, as PVE (qemu-server `API2/Qemu/Agent.pm`) and qemu-guest-agent answer:
//! ping and the informational commands, `file-write` / `file-read` on the lab's per-file model (content, mode,
//! owner, group), and `exec` / `exec-status` running a few coreutils (`touch`, `chmod`, `chown`, `stat`, `cat`) on
//! that model.
//!
//! File rules of qemu-guest-agent (`qga/commands-posix.c`, see `docs/deliver.md`): `file-write` opens with mode
//! `wb`; a **new** file is created and then `fchmod(0666)` whatever the umask, owned by the agent's user (root); an
//! **existing** file is truncated and keeps its mode and owner. `exec` runs as root with the agent's umask 022.
//!
//! Checks, in PVE's order: the permission (PVE 9: `VM.GuestAgent.*`, PVE 8: `VM.Monitor`), the parameters, then
//! `assert_agent_available`: `No QEMU guest agent configured`, `VM N is not running`, `QEMU guest agent is not
//! running` (the lab's "agent does not answer" switch). Agent-side failures are `Agent error: ...`. All are 500.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::http::{ApiError, Params};
use crate::server::{Caller, Lab, Perm};
use crate::state::Vm;

/// Mode of a file qemu-guest-agent creates (`DEFAULT_NEW_FILE_MODE`, independent of the umask).
pub(crate) const AGENT_NEW_FILE_MODE: u32 = 0o666;
/// Mode of a file `touch` creates in a guest command (0666 minus the agent's umask 022).
const TOUCH_NEW_FILE_MODE: u32 = 0o644;
/// PVE's `input-data` limit for `exec`.
const MAX_INPUT_DATA: usize = 64 * 1024;

/// A file in a guest: content (base64 in the state file), permission bits, owner and group names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "GuestFileWire")]
pub(crate) struct GuestFile {
    /// Base64 of the bytes.
    pub(crate) content: String,
    /// Permission bits (`0o7777` at most).
    pub(crate) mode: u32,
    /// Owner (a guest account name, or a numeric uid).
    pub(crate) owner: String,
    /// Group (a guest group name, or a numeric gid).
    pub(crate) group: String,
}

/// State files written before modes existed hold only the base64 content.
#[derive(Deserialize)]
#[serde(untagged)]
enum GuestFileWire {
    Content(String),
    Full { content: String, mode: u32, owner: String, group: String },
}

impl From<GuestFileWire> for GuestFile {
    fn from(wire: GuestFileWire) -> GuestFile {
        match wire {
            GuestFileWire::Content(content) => GuestFile::created_by_agent(content),
            GuestFileWire::Full { content, mode, owner, group } => GuestFile { content, mode, owner, group },
        }
    }
}

impl GuestFile {
    fn created_by_agent(content: String) -> GuestFile {
        GuestFile { content, mode: AGENT_NEW_FILE_MODE, owner: "root".to_owned(), group: "root".to_owned() }
    }

    /// The bytes.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(&self.content).unwrap_or_default()
    }
}

/// A finished guest command, kept until `exec-status` reported it once (as qemu-guest-agent does).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExecResult {
    pub(crate) exitcode: i64,
    pub(crate) out: String,
    pub(crate) err: String,
}

/// Guest accounts of every lab guest (a Debian cloud image): name → uid, and groups name → gid.
const GUEST_USERS: &[(&str, u32, &str)] = &[
    ("root", 0, "root"),
    ("daemon", 1, "daemon"),
    ("bin", 2, "bin"),
    ("sys", 3, "sys"),
    ("www-data", 33, "www-data"),
    ("semaphore", 999, "semaphore"),
    ("debian", 1000, "debian"),
    ("nobody", 65534, "nogroup"),
];
const GUEST_GROUPS: &[(&str, u32)] = &[
    ("root", 0),
    ("daemon", 1),
    ("bin", 2),
    ("sys", 3),
    ("adm", 4),
    ("www-data", 33),
    ("semaphore", 999),
    ("debian", 1000),
    ("nogroup", 65534),
];

fn vm_path(vmid: u64) -> String {
    format!("/vms/{vmid}")
}

/// The privileges an agent call needs: (privileges, any-of).
fn privileges(nine: bool, name: &str) -> (&'static [&'static str], bool) {
    match (nine, name) {
        (false, _) => (&["VM.Monitor"], false),
        (true, "agent-file-write") => (&["VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted"], true),
        (true, "agent-file-read") => (&["VM.GuestAgent.FileRead", "VM.GuestAgent.Unrestricted"], true),
        (true, "agent-exec" | "agent-exec-status") => (&["VM.GuestAgent.Unrestricted"], false),
        (true, _) => (&["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"], true),
    }
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

/// Handles `agent-*` routes of VM `vmid`.
pub(crate) fn handle(lab: &Lab, name: &str, caller: &Caller, p: &Params, vmid: u64) -> Result<Value, ApiError> {
    let (privs, any) = privileges(lab.version.major >= 9, name);
    match name {
        "agent-file-write" => file_write(lab, caller, p, vmid, privs, any),
        "agent-exec" => exec(lab, caller, p, vmid, privs),
        "agent-exec-status" => exec_status(lab, caller, p, vmid, privs),
        _ => read_only(lab, name, caller, p, vmid, privs, any),
    }
}

fn file_write(lab: &Lab, caller: &Caller, p: &Params, vmid: u64, privs: &[&str], any: bool) -> Result<Value, ApiError> {
    let mut state = lab.write();
    Perm::new(lab, &state, caller).check(&vm_path(vmid), privs, any)?;
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
    match vm.files.get_mut(&file) {
        // An existing file is truncated and keeps its mode and owner.
        Some(existing) => existing.content = encoded,
        None => {
            vm.files.insert(file, GuestFile::created_by_agent(encoded));
        }
    }
    lab.save_guests(&state)?;
    Ok(Value::Null)
}

fn read_only(
    lab: &Lab,
    name: &str,
    caller: &Caller,
    p: &Params,
    vmid: u64,
    privs: &[&str],
    any: bool,
) -> Result<Value, ApiError> {
    let state = lab.read();
    Perm::new(lab, &state, caller).check(&vm_path(vmid), privs, any)?;
    let file = if name == "agent-file-read" { Some(p.required("file")?) } else { None };
    let vm = state.guests.vms.get(&vmid).ok_or_else(|| no_config(lab, vmid))?;
    agent_ready(vm)?;
    match name {
        "agent-ping" => Ok(json!({ "result": {} })),
        "agent-net" => {
            let mac = vm
                .config
                .get("net0")
                .and_then(|n| n.split(',').next()?.split_once('=').map(|(_, m)| m.to_ascii_lowercase()))
                .unwrap_or_else(|| crate::guests::mac_for(vmid, 0).to_ascii_lowercase());
            Ok(json!({ "result": [
                {"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [
                    {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                    {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}]},
                {"name": "eth0", "hardware-address": mac, "ip-addresses": [
                    {"ip-address": crate::guests::guest_ip(vmid), "ip-address-type": "ipv4", "prefix": 24}]},
            ]}))
        }
        "agent-osinfo" => Ok(json!({ "result": {
            "id": "debian", "name": "Debian GNU/Linux", "version-id": "12", "version": "12 (bookworm)",
            "pretty-name": "Debian GNU/Linux 12 (bookworm)", "kernel-release": "6.1.0-lab-amd64", "machine": "x86_64",
        }})),
        "agent-hostname" => Ok(json!({ "result": { "host-name": vm.name() } })),
        "agent-info" => Ok(json!({ "result": { "version": "7.2.0", "supported_commands": [] } })),
        "agent-file-read" => {
            let file = file.unwrap_or_default();
            let stored = vm.files.get(file).ok_or_else(|| {
                ApiError::internal(format!("Agent error: Failed to open file '{file}': No such file or directory"))
            })?;
            let mut bytes = stored.bytes();
            if lab.control.take_corrupt_read(vmid) {
                corrupt(&mut bytes);
            }
            Ok(json!({ "content": String::from_utf8_lossy(&bytes), "bytes-read": bytes.len() }))
        }
        _ => Err(ApiError::internal(format!("unknown agent command {name}"))),
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

fn exec(lab: &Lab, caller: &Caller, p: &Params, vmid: u64, privs: &[&str]) -> Result<Value, ApiError> {
    let mut state = lab.write();
    Perm::new(lab, &state, caller).check(&vm_path(vmid), privs, false)?;
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
    let Some(result) = run(&mut vm.files, program, args, input.as_deref()) else {
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

fn exec_status(lab: &Lab, caller: &Caller, p: &Params, vmid: u64, privs: &[&str]) -> Result<Value, ApiError> {
    let mut state = lab.write();
    Perm::new(lab, &state, caller).check(&vm_path(vmid), privs, false)?;
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

// ---- the guest's coreutils --------------------------------------------------------------------------------------

fn ok(out: impl Into<String>) -> ExecResult {
    ExecResult { exitcode: 0, out: out.into(), err: String::new() }
}

fn fail(err: impl Into<String>) -> ExecResult {
    ExecResult { exitcode: 1, out: String::new(), err: err.into() }
}

/// Options before the operands (`--` ends them), and the operands.
fn split_options(args: &[String]) -> (Vec<&str>, Vec<&str>) {
    let mut options = Vec::new();
    let mut operands = Vec::new();
    let mut rest = false;
    for arg in args {
        if rest || arg == "-" || !arg.starts_with('-') {
            operands.push(arg.as_str());
        } else if arg == "--" {
            rest = true;
        } else {
            options.push(arg.as_str());
        }
    }
    (options, operands)
}

fn missing(program: &str, path: &str) -> String {
    format!("{program}: cannot access '{path}': No such file or directory\n")
}

/// Runs `program args` on `files`; `None` when the guest has no such program.
fn run(
    files: &mut BTreeMap<String, GuestFile>,
    program: &str,
    args: &[String],
    input: Option<&str>,
) -> Option<ExecResult> {
    let name = program.rsplit('/').next().unwrap_or(program);
    if program.contains('/') && !["/bin/", "/usr/bin/"].iter().any(|dir| program.strip_prefix(dir) == Some(name)) {
        return None;
    }
    Some(match name {
        "true" => ok(""),
        "false" => ExecResult { exitcode: 1, ..ExecResult::default() },
        "touch" => touch(files, args),
        "chmod" => chmod(files, args),
        "chown" => chown(files, args),
        "stat" => stat(files, args),
        "cat" => cat(files, args, input),
        _ => return None,
    })
}

fn touch(files: &mut BTreeMap<String, GuestFile>, args: &[String]) -> ExecResult {
    let (options, operands) = split_options(args);
    if let Some(option) = options.first() {
        return fail(format!("touch: invalid option -- '{}'\n", option.trim_start_matches('-')));
    }
    if operands.is_empty() {
        return fail("touch: missing file operand\nTry 'touch --help' for more information.\n");
    }
    for path in operands {
        files.entry(path.to_owned()).or_insert_with(|| GuestFile {
            content: String::new(),
            mode: TOUCH_NEW_FILE_MODE,
            owner: "root".to_owned(),
            group: "root".to_owned(),
        });
    }
    ok("")
}

fn chmod(files: &mut BTreeMap<String, GuestFile>, args: &[String]) -> ExecResult {
    let (options, operands) = split_options(args);
    if let Some(option) = options.first() {
        return fail(format!("chmod: invalid option -- '{}'\n", option.trim_start_matches('-')));
    }
    let Some((mode_text, paths)) = operands.split_first() else {
        return fail("chmod: missing operand\nTry 'chmod --help' for more information.\n");
    };
    if paths.is_empty() {
        return fail(format!("chmod: missing operand after '{mode_text}'\nTry 'chmod --help' for more information.\n"));
    }
    let mode =
        (mode_text.len() <= 4 && !mode_text.is_empty()).then(|| u32::from_str_radix(mode_text, 8).ok()).flatten();
    let Some(mode) = mode else {
        return fail(format!("chmod: invalid mode: '{mode_text}'\nTry 'chmod --help' for more information.\n"));
    };
    let mut result = ok("");
    for path in paths {
        match files.get_mut(*path) {
            Some(file) => file.mode = mode,
            None => {
                result.exitcode = 1;
                result.err.push_str(&missing("chmod", path));
            }
        }
    }
    result
}

fn chown(files: &mut BTreeMap<String, GuestFile>, args: &[String]) -> ExecResult {
    let (options, operands) = split_options(args);
    if let Some(option) = options.first() {
        return fail(format!("chown: invalid option -- '{}'\n", option.trim_start_matches('-')));
    }
    let Some((spec, paths)) = operands.split_first() else {
        return fail("chown: missing operand\nTry 'chown --help' for more information.\n");
    };
    if paths.is_empty() {
        return fail(format!("chown: missing operand after '{spec}'\nTry 'chown --help' for more information.\n"));
    }
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (*spec, None),
    };
    let owner = if user.is_empty() {
        None
    } else {
        match GUEST_USERS.iter().find(|(name, uid, _)| *name == user || uid.to_string() == user) {
            Some((name, _, login_group)) => Some((*name, *login_group)),
            None => return fail(format!("chown: invalid user: '{spec}'\n")),
        }
    };
    let group = match group {
        None => None,
        // `user:` means the user's login group.
        Some("") => owner.map(|(_, login_group)| login_group),
        Some(group) => match GUEST_GROUPS.iter().find(|(name, gid)| *name == group || gid.to_string() == group) {
            Some((name, _)) => Some(*name),
            None => return fail(format!("chown: invalid group: '{spec}'\n")),
        },
    };
    let mut result = ok("");
    for path in paths {
        match files.get_mut(*path) {
            Some(file) => {
                if let Some((name, _)) = owner {
                    name.clone_into(&mut file.owner);
                }
                if let Some(group) = group {
                    group.clone_into(&mut file.group);
                }
            }
            None => {
                result.exitcode = 1;
                result.err.push_str(&missing("chown", path));
            }
        }
    }
    result
}

fn symbolic_mode(mode: u32) -> String {
    let mut out = String::from("-");
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    out
}

fn stat_format(format: &str, path: &str, file: &GuestFile) -> String {
    let uid = GUEST_USERS.iter().find(|(name, _, _)| *name == file.owner).map_or(0, |(_, uid, _)| *uid);
    let gid = GUEST_GROUPS.iter().find(|(name, _)| *name == file.group).map_or(0, |(_, gid)| *gid);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('a') => out.push_str(&format!("{:o}", file.mode)),
            Some('A') => out.push_str(&symbolic_mode(file.mode)),
            Some('U') => out.push_str(&file.owner),
            Some('G') => out.push_str(&file.group),
            Some('u') => out.push_str(&uid.to_string()),
            Some('g') => out.push_str(&gid.to_string()),
            Some('s') => out.push_str(&file.bytes().len().to_string()),
            Some('n') => out.push_str(path),
            Some('F') => out.push_str(if file.content.is_empty() { "regular empty file" } else { "regular file" }),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('?');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out.push('\n');
    out
}

fn stat(files: &BTreeMap<String, GuestFile>, args: &[String]) -> ExecResult {
    let mut format = None;
    let mut paths = Vec::new();
    let mut iter = args.iter();
    let mut rest = false;
    while let Some(arg) = iter.next() {
        if rest || !arg.starts_with('-') {
            paths.push(arg.as_str());
        } else if arg == "--" {
            rest = true;
        } else if arg == "-c" {
            let Some(value) = iter.next() else {
                return fail("stat: option requires an argument -- 'c'\nTry 'stat --help' for more information.\n");
            };
            format = Some(value.as_str());
        } else if let Some(value) = arg.strip_prefix("--format=").or_else(|| arg.strip_prefix("-c")) {
            format = Some(value);
        } else {
            return fail(format!("stat: invalid option -- '{}'\n", arg.trim_start_matches('-')));
        }
    }
    if paths.is_empty() {
        return fail("stat: missing operand\nTry 'stat --help' for more information.\n");
    }
    let mut result = ok("");
    for path in paths {
        match files.get(path) {
            Some(file) => match format {
                Some(format) => result.out.push_str(&stat_format(format, path, file)),
                None => result.out.push_str(&stat_format(
                    "  File: %n\n  Size: %s\t%F\nAccess: (0%a/%A)  Uid: (%u/%U)   Gid: (%g/%G)",
                    path,
                    file,
                )),
            },
            None => {
                result.exitcode = 1;
                result.err.push_str(&format!("stat: cannot statx '{path}': No such file or directory\n"));
            }
        }
    }
    result
}

fn cat(files: &BTreeMap<String, GuestFile>, args: &[String], input: Option<&str>) -> ExecResult {
    let (options, operands) = split_options(args);
    if let Some(option) = options.first() {
        return fail(format!("cat: invalid option -- '{}'\n", option.trim_start_matches('-')));
    }
    if operands.is_empty() {
        return ok(input.unwrap_or_default());
    }
    let mut result = ok("");
    for path in operands {
        match files.get(path) {
            Some(file) => result.out.push_str(&String::from_utf8_lossy(&file.bytes())),
            None => {
                result.exitcode = 1;
                result.err.push_str(&format!("cat: {path}: No such file or directory\n"));
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::{BTreeMap, GuestFile, run};

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn touch_chmod_chown_then_stat_reports_the_new_mode_and_owner() {
        let mut files = BTreeMap::new();
        let path = "/root/.token";
        assert_eq!(run(&mut files, "touch", &args(&["--", path]), None).map(|r| r.exitcode), Some(0));
        assert_eq!(files[path].mode, 0o644, "touch creates 0666 minus the umask 022");
        assert_eq!(run(&mut files, "chmod", &args(&["600", "--", path]), None).map(|r| r.exitcode), Some(0));
        assert_eq!(run(&mut files, "chown", &args(&["--", "debian:adm", path]), None).map(|r| r.exitcode), Some(0));
        let stat = run(&mut files, "stat", &args(&["-c", "%a %U:%G", "--", path]), None).expect("stat exists");
        assert_eq!(stat.out, "600 debian:adm\n");
    }

    #[test]
    fn unknown_user_missing_file_bad_mode_and_unknown_program_fail_like_coreutils() {
        let mut files = BTreeMap::new();
        files.insert("/f".to_owned(), GuestFile::created_by_agent(String::new()));
        let chown = run(&mut files, "chown", &args(&["nobody-here:root", "/f"]), None).expect("chown");
        assert_eq!((chown.exitcode, chown.err.as_str()), (1, "chown: invalid user: 'nobody-here:root'\n"));
        let chmod = run(&mut files, "chmod", &args(&["600", "/missing"]), None).expect("chmod");
        assert!(chmod.exitcode == 1 && chmod.err.contains("No such file or directory"), "{chmod:?}");
        let bad = run(&mut files, "chmod", &args(&["u+rw", "/f"]), None).expect("chmod");
        assert_eq!(bad.exitcode, 1);
        assert_eq!(files["/f"].mode, 0o666, "a failed chmod changes nothing");
        assert!(run(&mut files, "rm", &args(&["/f"]), None).is_none(), "the lab guest has no rm");
    }
}
