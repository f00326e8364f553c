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
use crate::server::Lab;
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
    /// A directory made in the guest (`mkdir`, or a directory of the base tree whose mode or owner changed); its
    /// `content` is empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) directory: bool,
}

/// State files written before modes existed hold only the base64 content.
#[derive(Deserialize)]
#[serde(untagged)]
enum GuestFileWire {
    Content(String),
    Full {
        content: String,
        mode: u32,
        owner: String,
        group: String,
        #[serde(default)]
        directory: bool,
    },
}

impl From<GuestFileWire> for GuestFile {
    fn from(wire: GuestFileWire) -> GuestFile {
        match wire {
            GuestFileWire::Content(content) => GuestFile::created_by_agent(content),
            GuestFileWire::Full { content, mode, owner, group, directory } => {
                GuestFile { content, mode, owner, group, directory }
            }
        }
    }
}

impl GuestFile {
    fn created_by_agent(content: String) -> GuestFile {
        GuestFile {
            content,
            mode: AGENT_NEW_FILE_MODE,
            owner: "root".to_owned(),
            group: "root".to_owned(),
            directory: false,
        }
    }

    fn new_directory(mode: u32, owner: &str) -> GuestFile {
        GuestFile { content: String::new(), mode, owner: owner.to_owned(), group: owner.to_owned(), directory: true }
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

/// Mode of a directory `mkdir` creates without `-m`, and of the parents `mkdir -p` creates (0777 minus umask 022).
const MKDIR_DEFAULT_MODE: u32 = 0o755;

/// The directories of every fresh lab guest (a Debian cloud image): path, mode, owner (and group).
/// Parents of stored files are directories too (0755 root:root), so files seeded or saved by an older lab keep
/// their place in the tree.
const BASE_DIRECTORIES: &[(&str, u32, &str)] = &[
    ("/", 0o755, "root"),
    ("/bin", 0o755, "root"),
    ("/boot", 0o755, "root"),
    ("/dev", 0o755, "root"),
    ("/etc", 0o755, "root"),
    ("/etc/default", 0o755, "root"),
    ("/etc/ssh", 0o755, "root"),
    ("/etc/systemd", 0o755, "root"),
    ("/etc/systemd/system", 0o755, "root"),
    ("/home", 0o755, "root"),
    ("/home/debian", 0o755, "debian"),
    ("/mnt", 0o755, "root"),
    ("/opt", 0o755, "root"),
    ("/proc", 0o555, "root"),
    ("/root", 0o700, "root"),
    ("/run", 0o755, "root"),
    ("/sbin", 0o755, "root"),
    ("/srv", 0o755, "root"),
    ("/tmp", 0o1777, "root"),
    ("/usr", 0o755, "root"),
    ("/usr/bin", 0o755, "root"),
    ("/usr/lib", 0o755, "root"),
    ("/usr/local", 0o755, "root"),
    ("/usr/local/bin", 0o755, "root"),
    ("/usr/local/etc", 0o755, "root"),
    ("/usr/sbin", 0o755, "root"),
    ("/usr/share", 0o755, "root"),
    ("/var", 0o755, "root"),
    ("/var/lib", 0o755, "root"),
    ("/var/log", 0o755, "root"),
    ("/var/tmp", 0o1777, "root"),
];

/// The `errno` of a failed path operation, with glibc's `strerror` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Errno {
    NoEnt,
    NotDir,
    IsDir,
    Exist,
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Errno::NoEnt => "No such file or directory",
            Errno::NotDir => "Not a directory",
            Errno::IsDir => "Is a directory",
            Errno::Exist => "File exists",
        })
    }
}

/// `path` made absolute (qemu-ga and its children run in `/`) with `.`, `..` and repeated slashes resolved
/// lexically (the lab has no symlinks).
pub(crate) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parent_of(path: &str) -> Option<&str> {
    match path.rfind('/') {
        _ if path == "/" => None,
        Some(0) => Some("/"),
        Some(index) => Some(&path[..index]),
        None => None,
    }
}

/// The entry at the normalized `path` if it exists: stored, of the base tree, or the parent of a stored entry.
fn existing(files: &BTreeMap<String, GuestFile>, path: &str) -> Option<GuestFile> {
    if let Some(file) = files.get(path) {
        return Some(file.clone());
    }
    if let Some((_, mode, owner)) = BASE_DIRECTORIES.iter().find(|(dir, _, _)| *dir == path) {
        return Some(GuestFile::new_directory(*mode, owner));
    }
    let prefix = if path == "/" { "/".to_owned() } else { format!("{path}/") };
    files
        .range(prefix.clone()..)
        .next()
        .filter(|(key, _)| key.starts_with(&prefix))
        .map(|_| GuestFile::new_directory(MKDIR_DEFAULT_MODE, "root"))
}

/// Looks `path` up as the kernel does: `Err` when a parent is missing (`ENOENT`) or is a file (`ENOTDIR`), or when
/// a path with a trailing slash names a file; `Ok(None)` when only the last component is missing.
fn lookup(files: &BTreeMap<String, GuestFile>, path: &str) -> Result<Option<GuestFile>, Errno> {
    let key = normalize(path);
    let mut ancestors = Vec::new();
    let mut current = key.as_str();
    while let Some(parent) = parent_of(current) {
        ancestors.push(parent);
        current = parent;
    }
    for ancestor in ancestors.into_iter().rev() {
        match existing(files, ancestor) {
            Some(entry) if entry.directory => {}
            Some(_) => return Err(Errno::NotDir),
            None => return Err(Errno::NoEnt),
        }
    }
    let found = existing(files, &key);
    if path.ends_with('/') && found.as_ref().is_some_and(|entry| !entry.directory) {
        return Err(Errno::NotDir);
    }
    Ok(found)
}

/// The stored entry at the normalized `key`, storing a directory of the base tree (or an implied one) first so
/// that its mode or owner can change.
fn entry_mut<'f>(files: &'f mut BTreeMap<String, GuestFile>, key: &str) -> Option<&'f mut GuestFile> {
    if !files.contains_key(key) {
        let entry = existing(files, key)?;
        files.insert(key.to_owned(), entry);
    }
    files.get_mut(key)
}

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

/// Handles `agent-*` routes of VM `vmid`.
pub(crate) fn handle(lab: &Lab, name: &str, p: &Params, vmid: u64) -> Result<Value, ApiError> {
    // The privileges (VM.Monitor before 9, VM.GuestAgent.* from 9 on) are the endpoint catalog's, checked before.
    match name {
        "agent-file-write" => file_write(lab, p, vmid),
        "agent-exec" => exec(lab, p, vmid),
        "agent-exec-status" => exec_status(lab, p, vmid),
        _ => read_only(lab, name, p, vmid),
    }
}

fn file_write(lab: &Lab, p: &Params, vmid: u64) -> Result<Value, ApiError> {
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

fn read_only(lab: &Lab, name: &str, p: &Params, vmid: u64) -> Result<Value, ApiError> {
    let state = lab.read();
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

fn exec(lab: &Lab, p: &Params, vmid: u64) -> Result<Value, ApiError> {
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
        let staged = guest_exec::stage(lab, vmid, &vm.files, args)?;
        drop(state);
        let result = guest_exec::run(&binary, &staged, input.as_deref());
        let mut state = lab.write();
        let vm = state.guests.vms.get_mut(&vmid).ok_or_else(|| no_config(lab, vmid))?;
        guest_exec::unstage(&mut vm.files, staged);
        vm.next_exec_pid = vm.next_exec_pid.max(1000) + 1;
        let pid = vm.next_exec_pid;
        vm.exec.insert(pid, result);
        lab.save_guests(&state)?;
        return Ok(json!({ "pid": pid }));
    }
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

fn exec_status(lab: &Lab, p: &Params, vmid: u64) -> Result<Value, ApiError> {
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

fn cannot_access(program: &str, path: &str, errno: Errno) -> String {
    format!("{program}: cannot access '{path}': {errno}\n")
}

/// Marks `result` failed (exit 1) and adds `message` to its stderr.
fn failed(result: &mut ExecResult, message: String) {
    result.exitcode = 1;
    result.err.push_str(&message);
}

/// The normalized key of an existing `path`, or why it cannot be reached.
fn accessible(files: &BTreeMap<String, GuestFile>, path: &str) -> Result<String, Errno> {
    match lookup(files, path)? {
        Some(_) => Ok(normalize(path)),
        None => Err(Errno::NoEnt),
    }
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
        "mkdir" => mkdir(files, args),
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
    let mut result = ok("");
    for path in operands {
        match lookup(files, path) {
            // An existing file or directory only gets new times.
            Ok(Some(_)) => {}
            Ok(None) if !path.ends_with('/') => {
                let file = GuestFile { mode: TOUCH_NEW_FILE_MODE, ..GuestFile::created_by_agent(String::new()) };
                files.insert(normalize(path), file);
            }
            Ok(None) => failed(&mut result, format!("touch: cannot touch '{path}': {}\n", Errno::IsDir)),
            Err(errno) => failed(&mut result, format!("touch: cannot touch '{path}': {errno}\n")),
        }
    }
    result
}

/// `mkdir [-p] [-v] [-m MODE] DIR...` (GNU coreutils 9: `-m` sets the mode of each DIR operand exactly, the
/// parents `-p` creates get 0755; `-v` reports each directory created on stdout).
fn mkdir(files: &mut BTreeMap<String, GuestFile>, args: &[String]) -> ExecResult {
    const TRY: &str = "Try 'mkdir --help' for more information.\n";
    let mut parents = false;
    let mut verbose = false;
    let mut mode_text: Option<&str> = None;
    let mut operands = Vec::new();
    let mut rest = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if rest || arg == "-" || !arg.starts_with('-') {
            operands.push(arg.as_str());
            continue;
        }
        match arg.as_str() {
            "--" => rest = true,
            "--parents" => parents = true,
            "--verbose" => verbose = true,
            "--mode" => match iter.next() {
                Some(value) => mode_text = Some(value),
                None => return fail(format!("mkdir: option '--mode' requires an argument\n{TRY}")),
            },
            long if long.starts_with("--") => match long.strip_prefix("--mode=") {
                Some(value) => mode_text = Some(value),
                None => return fail(format!("mkdir: unrecognized option '{long}'\n{TRY}")),
            },
            short => {
                let flags = &short[1..];
                for (index, flag) in flags.char_indices() {
                    match flag {
                        'p' => parents = true,
                        'v' => verbose = true,
                        'm' => {
                            let attached = &flags[index + 1..];
                            if !attached.is_empty() {
                                mode_text = Some(attached);
                            } else if let Some(value) = iter.next() {
                                mode_text = Some(value);
                            } else {
                                return fail(format!("mkdir: option requires an argument -- 'm'\n{TRY}"));
                            }
                            break;
                        }
                        other => return fail(format!("mkdir: invalid option -- '{other}'\n{TRY}")),
                    }
                }
            }
        }
    }
    let mode = match mode_text {
        None => MKDIR_DEFAULT_MODE,
        Some(text) => match parse_octal_mode(text) {
            Some(mode) => mode,
            None => return fail(format!("mkdir: invalid mode \u{2018}{text}\u{2019}\n")),
        },
    };
    if operands.is_empty() {
        return fail(format!("mkdir: missing operand\n{TRY}"));
    }
    let mut result = ok("");
    for dir in operands {
        if let Err(message) = make_directory(files, dir, parents, mode, verbose.then_some(&mut result.out)) {
            failed(&mut result, message);
        }
    }
    result
}

/// One `mkdir` operand; `Err` is the line for stderr.
fn make_directory(
    files: &mut BTreeMap<String, GuestFile>,
    dir: &str,
    parents: bool,
    mode: u32,
    mut verbose: Option<&mut String>,
) -> Result<(), String> {
    let cannot =
        |shown: &str, errno: Errno| format!("mkdir: cannot create directory \u{2018}{shown}\u{2019}: {errno}\n");
    let mut create = |files: &mut BTreeMap<String, GuestFile>, shown: &str, mode: u32| {
        files.insert(normalize(shown), GuestFile::new_directory(mode, "root"));
        if let Some(out) = verbose.as_deref_mut() {
            out.push_str(&format!("mkdir: created directory '{shown}'\n"));
        }
    };
    if parents {
        // Each parent as written (`/etc`, then `/etc/privatebox`), without the operand itself.
        let trimmed = dir.trim_end_matches('/');
        let mut shown = String::new();
        let components: Vec<&str> = trimmed.split('/').collect();
        for (index, component) in components.iter().enumerate() {
            if index > 0 || component.is_empty() {
                shown.push_str(if index == 0 { "" } else { "/" });
            }
            shown.push_str(component);
            if index + 1 == components.len() || component.is_empty() || *component == "." || *component == ".." {
                continue;
            }
            match lookup(files, &shown) {
                Ok(Some(entry)) if entry.directory => {}
                Ok(Some(_)) => return Err(cannot(&shown, Errno::NotDir)),
                Ok(None) => create(files, &shown, MKDIR_DEFAULT_MODE),
                Err(errno) => return Err(cannot(&shown, errno)),
            }
        }
    }
    match lookup(files, dir) {
        Ok(Some(entry)) if entry.directory && parents => Ok(()),
        Ok(Some(_)) => Err(cannot(dir, Errno::Exist)),
        Ok(None) => {
            create(files, dir, mode);
            Ok(())
        }
        Err(errno) => Err(cannot(dir, errno)),
    }
}

/// An octal mode of at most four digits (coreutils also takes symbolic modes; guest commands here use octal).
fn parse_octal_mode(text: &str) -> Option<u32> {
    (text.len() <= 4 && !text.is_empty()).then(|| u32::from_str_radix(text, 8).ok()).flatten()
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
    let Some(mode) = parse_octal_mode(mode_text) else {
        return fail(format!("chmod: invalid mode: '{mode_text}'\nTry 'chmod --help' for more information.\n"));
    };
    let mut result = ok("");
    for path in paths {
        match accessible(files, path) {
            Ok(key) => {
                if let Some(entry) = entry_mut(files, &key) {
                    entry.mode = mode;
                }
            }
            Err(errno) => failed(&mut result, cannot_access("chmod", path, errno)),
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
        match accessible(files, path) {
            Ok(key) => {
                if let Some(entry) = entry_mut(files, &key) {
                    if let Some((name, _)) = owner {
                        name.clone_into(&mut entry.owner);
                    }
                    if let Some(group) = group {
                        group.clone_into(&mut entry.group);
                    }
                }
            }
            Err(errno) => failed(&mut result, cannot_access("chown", path, errno)),
        }
    }
    result
}

fn symbolic_mode(file: &GuestFile) -> String {
    let mode = file.mode;
    let mut out = String::from(if file.directory { "d" } else { "-" });
    // setuid, setgid, sticky: shown in the x column of user, group, others.
    for (shift, special, letter) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
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
            Some('A') => out.push_str(&symbolic_mode(file)),
            Some('U') => out.push_str(&file.owner),
            Some('G') => out.push_str(&file.group),
            Some('u') => out.push_str(&uid.to_string()),
            Some('g') => out.push_str(&gid.to_string()),
            Some('s') => out.push_str(&if file.directory { 4096 } else { file.bytes().len() }.to_string()),
            Some('n') => out.push_str(path),
            Some('F') => out.push_str(match (file.directory, file.content.is_empty()) {
                (true, _) => "directory",
                (false, true) => "regular empty file",
                (false, false) => "regular file",
            }),
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
        match lookup(files, path) {
            Ok(Some(file)) => match format {
                Some(format) => result.out.push_str(&stat_format(format, path, &file)),
                None => result.out.push_str(&stat_format(
                    "  File: %n\n  Size: %s\t%F\nAccess: (0%a/%A)  Uid: (%u/%U)   Gid: (%g/%G)",
                    path,
                    &file,
                )),
            },
            Ok(None) => failed(&mut result, format!("stat: cannot statx '{path}': {}\n", Errno::NoEnt)),
            Err(errno) => failed(&mut result, format!("stat: cannot statx '{path}': {errno}\n")),
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
        match lookup(files, path) {
            Ok(Some(file)) if file.directory => failed(&mut result, format!("cat: {path}: {}\n", Errno::IsDir)),
            Ok(Some(file)) => result.out.push_str(&String::from_utf8_lossy(&file.bytes())),
            Ok(None) => failed(&mut result, format!("cat: {path}: {}\n", Errno::NoEnt)),
            Err(errno) => failed(&mut result, format!("cat: {path}: {errno}\n")),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::{BTreeMap, ExecResult, GuestFile, lookup, run};

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

    fn sh(files: &mut BTreeMap<String, GuestFile>, command: &[&str]) -> ExecResult {
        let (program, rest) = command.split_first().expect("a program");
        run(files, program, &args(rest), None).expect("the guest has the program")
    }

    #[test]
    fn a_fresh_guest_has_the_debian_tree_and_the_parents_of_stored_files() {
        let mut files = BTreeMap::new();
        for dir in
            ["/", "/root", "/home", "/etc", "/tmp", "/var", "/var/lib", "/opt", "/usr", "/usr/local", "/srv", "/run"]
        {
            let entry = lookup(&files, dir).expect("reachable").expect("exists");
            assert!(entry.directory, "{dir} is a directory");
        }
        assert_eq!(sh(&mut files, &["stat", "-c", "%a %A %F", "/root"]).out, "700 drwx------ directory\n");
        assert_eq!(sh(&mut files, &["stat", "-c", "%a %A", "/tmp"]).out, "1777 drwxrwxrwt\n");
        assert_eq!(lookup(&files, "/etc/privatebox"), Ok(None), "no application directory in a fresh guest");
        // A file stored by an older lab (or seeded) implies its directories.
        files.insert("/srv/app/conf/token".to_owned(), GuestFile::created_by_agent(String::new()));
        assert!(lookup(&files, "/srv/app/conf").expect("reachable").is_some_and(|entry| entry.directory));
    }

    #[test]
    fn touch_into_a_missing_directory_or_below_a_file_fails_like_coreutils_and_creates_nothing() {
        let mut files = BTreeMap::new();
        let missing = sh(&mut files, &["touch", "--", "/etc/privatebox/token"]);
        assert_eq!(
            (missing.exitcode, missing.err.as_str()),
            (1, "touch: cannot touch '/etc/privatebox/token': No such file or directory\n")
        );
        assert!(files.is_empty(), "{files:?}");
        sh(&mut files, &["touch", "/root/f"]);
        let below_file = sh(&mut files, &["touch", "/root/f/x"]);
        assert_eq!(below_file.err, "touch: cannot touch '/root/f/x': Not a directory\n");
        assert_eq!(sh(&mut files, &["touch", "/root"]).exitcode, 0, "touching a directory only sets its times");
        assert!(!files.contains_key("/root"), "and does not turn it into a file");
        let cat = sh(&mut files, &["cat", "/etc"]);
        assert_eq!((cat.exitcode, cat.err.as_str()), (1, "cat: /etc: Is a directory\n"));
        let stat = sh(&mut files, &["stat", "/etc/privatebox/token"]);
        assert_eq!(stat.err, "stat: cannot statx '/etc/privatebox/token': No such file or directory\n");
        let chmod = sh(&mut files, &["chmod", "600", "--", "/root/f/x"]);
        assert_eq!(chmod.err, "chmod: cannot access '/root/f/x': Not a directory\n");
    }

    #[test]
    fn mkdir_p_m_creates_missing_parents_0755_and_the_directory_with_the_mode_given() {
        let mut files = BTreeMap::new();
        let made = sh(&mut files, &["mkdir", "-p", "-v", "-m", "700", "--", "/opt/pb/etc/privatebox"]);
        assert_eq!(made.exitcode, 0, "{made:?}");
        assert_eq!(
            made.out,
            "mkdir: created directory '/opt/pb'\nmkdir: created directory '/opt/pb/etc'\n\
             mkdir: created directory '/opt/pb/etc/privatebox'\n"
        );
        let stat = sh(&mut files, &["stat", "-c", "%a %U:%G %F", "/opt/pb", "/opt/pb/etc", "/opt/pb/etc/privatebox"]);
        assert_eq!(stat.out, "755 root:root directory\n755 root:root directory\n700 root:root directory\n");
        // Again: -p accepts an existing directory and leaves its mode alone.
        let again = sh(&mut files, &["mkdir", "-pv", "-m", "750", "/opt/pb/etc/privatebox"]);
        assert_eq!((again.exitcode, again.out.as_str()), (0, ""));
        assert_eq!(sh(&mut files, &["stat", "-c", "%a", "/opt/pb/etc/privatebox"]).out, "700\n");
        // Then a file fits in it.
        assert_eq!(sh(&mut files, &["touch", "/opt/pb/etc/privatebox/token"]).exitcode, 0);
        // Attached and long forms.
        assert_eq!(sh(&mut files, &["mkdir", "-m700", "/srv/a"]).exitcode, 0);
        assert_eq!(sh(&mut files, &["mkdir", "--mode=750", "--parents", "/srv/b/c"]).exitcode, 0);
        assert_eq!(sh(&mut files, &["stat", "-c", "%a", "/srv/a", "/srv/b", "/srv/b/c"]).out, "700\n755\n750\n");
    }

    #[test]
    fn mkdir_failures_use_coreutils_texts_and_exit_1() {
        let mut files = BTreeMap::new();
        sh(&mut files, &["touch", "/root/f"]);
        let cases: [(&[&str], &str); 8] = [
            (
                &["mkdir", "/etc/privatebox/x"],
                "mkdir: cannot create directory \u{2018}/etc/privatebox/x\u{2019}: No such file or directory\n",
            ),
            (&["mkdir", "/etc"], "mkdir: cannot create directory \u{2018}/etc\u{2019}: File exists\n"),
            (&["mkdir", "-p", "/root/f"], "mkdir: cannot create directory \u{2018}/root/f\u{2019}: File exists\n"),
            (
                &["mkdir", "-p", "/root/f/x"],
                "mkdir: cannot create directory \u{2018}/root/f\u{2019}: Not a directory\n",
            ),
            (&["mkdir"], "mkdir: missing operand\nTry 'mkdir --help' for more information.\n"),
            (&["mkdir", "-m", "7x9", "/q"], "mkdir: invalid mode \u{2018}7x9\u{2019}\n"),
            (&["mkdir", "-z", "/q"], "mkdir: invalid option -- 'z'\nTry 'mkdir --help' for more information.\n"),
            (
                &["mkdir", "/q", "-m"],
                "mkdir: option requires an argument -- 'm'\nTry 'mkdir --help' for more information.\n",
            ),
        ];
        for (command, err) in cases {
            let result = sh(&mut files, command);
            assert_eq!((result.exitcode, result.err.as_str()), (1, err), "{command:?}");
        }
        assert_eq!(files.keys().collect::<Vec<_>>(), ["/root/f"], "no failed mkdir created anything");
    }

    #[test]
    fn chmod_and_chown_of_a_directory_change_it_and_stat_shows_it() {
        let mut files = BTreeMap::new();
        sh(&mut files, &["mkdir", "/srv/app"]);
        assert_eq!(sh(&mut files, &["chmod", "700", "/srv/app"]).exitcode, 0);
        assert_eq!(sh(&mut files, &["chown", "debian:debian", "/srv/app"]).exitcode, 0);
        assert_eq!(sh(&mut files, &["chmod", "750", "/home"]).exitcode, 0, "a directory of the base tree");
        let stat = sh(&mut files, &["stat", "-c", "%a %U:%G %A", "/srv/app", "/home"]);
        assert_eq!(stat.out, "700 debian:debian drwx------\n750 root:root drwxr-x---\n");
    }
}

/// `pvetoken` inside a guest (`LabConfig::guest_pvetoken`): every absolute path among the arguments is the
/// guest's, pointed at a private copy (a 0700 directory in the lab's state dir, files 0600; a missing guest file
/// stays missing), so the binary never touches the lab host's files; it runs with a clean environment in that
/// directory, and afterwards a copy it removed is removed from the guest too (`--remove-token-file`). Files it
/// writes are not copied back.
mod guest_exec {
    use std::collections::BTreeMap;
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    use std::path::{Path, PathBuf};

    use super::{ExecResult, GuestFile, normalize};
    use crate::http::ApiError;
    use crate::server::Lab;

    /// The run: its directory, the arguments as the binary gets them, and guest path → private copy.
    pub(super) struct Staged {
        dir: PathBuf,
        args: Vec<String>,
        files: Vec<(String, PathBuf)>,
    }

    pub(super) fn stage(
        lab: &Lab,
        vmid: u64,
        files: &BTreeMap<String, GuestFile>,
        args: &[String],
    ) -> Result<Staged, ApiError> {
        let internal = |error: std::io::Error| ApiError::internal(format!("guest exec: {error}"));
        let root = lab.dir.join("guest-exec");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&root).map_err(internal)?;
        let dir = (0..)
            .map(|n| root.join(format!("{vmid}-{}-{n}", std::process::id())))
            .find(|dir| std::fs::DirBuilder::new().mode(0o700).create(dir).is_ok())
            .unwrap_or_default();
        let mut staged = Staged { dir: dir.clone(), args: Vec::new(), files: Vec::new() };
        for arg in args {
            // `--flag=/path` as well as `/path`: every absolute path is the guest's, never the lab host's.
            let (prefix, value) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (format!("{flag}="), value),
                _ => (String::new(), arg.as_str()),
            };
            if !value.starts_with('/') {
                staged.args.push(arg.clone());
                continue;
            }
            let path = normalize(value);
            let copy = dir.join(format!("file-{}", staged.files.len()));
            if let Some(file) = files.get(&path).filter(|file| !file.directory) {
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&copy)
                    .map_err(internal)?;
                out.write_all(&file.bytes()).map_err(internal)?;
            }
            // A guest path that does not exist stays missing (a private name nothing is written to before).
            staged.args.push(format!("{prefix}{}", copy.display()));
            staged.files.push((path, copy));
        }
        Ok(staged)
    }

    pub(super) fn run(binary: &Path, staged: &Staged, input: Option<&str>) -> ExecResult {
        let mut command = std::process::Command::new(binary);
        command
            .args(&staged.args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &staged.dir)
            .current_dir(&staged.dir)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut wait = || -> std::io::Result<std::process::Output> {
            let mut child = command.spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(input.unwrap_or_default().as_bytes())?;
            }
            child.wait_with_output()
        };
        // The binary may call back into this lab (its Semaphore): never block a runtime worker outright.
        let output = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        };
        match output {
            Ok(output) => ExecResult {
                exitcode: i64::from(output.status.code().unwrap_or(1)),
                out: String::from_utf8_lossy(&output.stdout).into_owned(),
                err: String::from_utf8_lossy(&output.stderr).into_owned(),
            },
            Err(error) => ExecResult { exitcode: 127, out: String::new(), err: format!("pvetoken: {error}\n") },
        }
    }

    /// Copies the binary removed are removed from the guest; the private directory goes.
    pub(super) fn unstage(files: &mut BTreeMap<String, GuestFile>, staged: Staged) {
        for (guest_path, copy) in &staged.files {
            if std::fs::symlink_metadata(copy).is_err() && files.get(guest_path).is_some_and(|file| !file.directory) {
                files.remove(guest_path);
            }
        }
        let _ = std::fs::remove_dir_all(&staged.dir);
    }
}
