//! Delivering a token file into a guest through the QEMU guest agent: the core shared by `pvetoken deliver` and
//! `pvetoken create --deliver-to VMID`.
//!
//! Order of operations (nothing is written before every check passed):
//!
//! 1. `GET /version` and `GET /access/permissions?path=/vms/N`: the caller must hold, on `/vms/N`, `VM.Audit` and
//!    per release the agent privileges for ping, file-write and file-read (PVE 9: `VM.GuestAgent.Audit`,
//!    `VM.GuestAgent.FileWrite`, `VM.GuestAgent.FileRead`, each or `VM.GuestAgent.Unrestricted`; PVE 7/8:
//!    `VM.Monitor`). `exec` (for chmod/chown) needs `VM.GuestAgent.Unrestricted` on 9, `VM.Monitor` on 8.
//! 2. `status/current` (running?) and `agent/ping` (does the agent answer?).
//! 3. With exec: `mkdir -p -v -m 700` of the parent directory (qemu-guest-agent's file-write cannot create
//!    directories; a directory it creates is reported), then `touch`, `chmod 600`, `chown OWNER` on the guest path
//!    **before** the secret is written: qemu-guest-agent keeps the mode and owner of an existing file, and would
//!    create a new one with mode 0666. Without exec: a missing parent directory is refused with the fix; an existing
//!    file keeps its mode; a new file is refused unless the caller accepts mode 0666.
//! 4. `agent/file-write` (content in the POST body only), `agent/file-read` and a byte comparison, then (with
//!    exec) `stat` to report the mode the guest really has.
//!
//! See `docs/deliver.md` for the upstream behaviour this relies on.

use std::time::Duration;

use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_client::ClientError;
use pvetoken_client::pve::PveClient;
use pvetoken_render::TokenFile;
use serde::Serialize;

use crate::connection::{Target, remote_error};
use crate::exit::CliError;
use crate::printer::Printer;

/// The guest path used unless told otherwise (the design note's path, read by `register semaphore`).
pub const DEFAULT_GUEST_PATH: &str = "/root/.proxmox-api-token";

/// How long one guest command (`chmod`, `chown`, `stat`) may take.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// What to deliver where.
#[derive(Debug, Clone)]
pub struct DeliveryRequest {
    /// The node the VM runs on.
    pub node: String,
    /// The VM.
    pub vmid: u64,
    /// Absolute path of the file in the guest.
    pub guest_path: String,
    /// `user:group` the file is given with `chown` (when exec is used).
    pub owner: String,
    /// Use `agent/exec` for chmod/chown/stat when the privileges allow it.
    pub use_exec: bool,
    /// Without exec, accept that qemu-guest-agent creates a new file with mode 0666.
    pub allow_agent_mode: bool,
    /// Who acts (for messages), e.g. `root@pam`.
    pub actor: String,
    /// A command the guest runs once the file is there (`deliver -- COMMAND`), e.g. the guest's
    /// `pvetoken register semaphore ... --if-token-file --remove-token-file`; empty: none.
    pub then: Vec<String>,
}

impl DeliveryRequest {
    /// A request with the defaults: `/root/.proxmox-api-token`, `root:root`, exec when allowed, no 0666 file.
    pub fn new(node: impl Into<String>, vmid: u64, actor: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            vmid,
            guest_path: DEFAULT_GUEST_PATH.to_owned(),
            owner: "root:root".to_owned(),
            use_exec: true,
            allow_agent_mode: false,
            actor: actor.into(),
            then: Vec::new(),
        }
    }
}

/// How the file's mode and owner were handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "kebab-case")]
pub enum ModeOutcome {
    /// `chmod 600` and `chown` ran before the secret was written; `observed` is what `stat` reported afterwards.
    SetBeforeWrite {
        /// The owner set.
        owner: String,
        /// `stat -c '%a %U:%G'` after the write, e.g. `600 root:root`.
        observed: Option<String>,
    },
    /// No exec: the file existed, and qemu-guest-agent keeps an existing file's mode and owner (not checked).
    KeptExisting,
    /// No exec, a new file: qemu-guest-agent created it with mode 0666 (accepted with `--allow-agent-mode`).
    AgentDefault0666,
}

/// A directory `deliver` created in the guest (with exec) for the file's path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedDirectory {
    /// Its path, e.g. `/etc/privatebox`.
    pub path: String,
    /// Its mode in octal, e.g. `0700` (the file's own directory) or `0755` (a parent `mkdir -p` made on the way).
    pub mode: String,
    /// Its `user:group`.
    pub owner: String,
}

/// What a delivery did.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    /// The VM.
    pub vmid: u64,
    /// Its node.
    pub node: String,
    /// The file in the guest.
    pub guest_path: String,
    /// The token delivered (its id; never the secret).
    pub token_id: String,
    /// Bytes written.
    pub bytes: usize,
    /// The server's release, e.g. `9.1`.
    pub pve_release: String,
    /// The file was read back through the agent and matched byte for byte.
    pub verified: bool,
    /// Mode and owner handling.
    pub mode: ModeOutcome,
    /// Directories created in the guest for the path (with exec; empty when the directory existed).
    pub created_directories: Vec<CreatedDirectory>,
    /// Non-fatal remarks (e.g. a mode other than 0600 observed).
    pub warnings: Vec<String>,
    /// The guest command run after the file was written (`deliver -- COMMAND`), and what it printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub then: Option<ThenReport>,
}

/// The guest command of a delivery and its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThenReport {
    /// The command, as the guest ran it.
    pub command: Vec<String>,
    /// Its standard output.
    pub stdout: String,
}

/// Privileges needed on `/vms/N`, per release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The API call that needs it.
    pub call: &'static str,
    /// Any one of these is enough.
    pub any_of: Vec<&'static str>,
}

/// The privileges `deliver` needs on `/vms/N` for PVE `major` (exec excluded: it is optional).
pub fn required_privileges(major: u32) -> Vec<Need> {
    let need = |call, any_of: &[&'static str]| Need { call, any_of: any_of.to_vec() };
    if major >= 9 {
        vec![
            need("status/current", &["VM.Audit"]),
            need("agent/ping", &["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"]),
            need("agent/file-write", &["VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted"]),
            need("agent/file-read", &["VM.GuestAgent.FileRead", "VM.GuestAgent.Unrestricted"]),
        ]
    } else {
        vec![
            need("status/current", &["VM.Audit"]),
            need("agent/ping", &["VM.Monitor"]),
            need("agent/file-write", &["VM.Monitor"]),
            need("agent/file-read", &["VM.Monitor"]),
        ]
    }
}

/// The privilege `agent/exec` needs for PVE `major`.
pub fn exec_privilege(major: u32) -> &'static str {
    if major >= 9 { "VM.GuestAgent.Unrestricted" } else { "VM.Monitor" }
}

/// Privileges to put in a role that allows a full delivery (chmod/chown included) on PVE `major`.
fn role_privileges(major: u32) -> &'static str {
    if major >= 9 {
        "VM.Audit,VM.GuestAgent.Audit,VM.GuestAgent.FileRead,VM.GuestAgent.FileWrite,VM.GuestAgent.Unrestricted"
    } else {
        "VM.Audit,VM.Monitor"
    }
}

/// Writes `token` into the guest, verifies it and reports. Nothing is written unless every check passed: the
/// caller's privileges on the VM ([`check_access`]), the VM and its agent ([`check_vm`]), the file's mode and owner
/// before the secret lands ([`prepare_mode`]); then [`write_and_verify`].
pub async fn deliver(
    client: &PveClient,
    target: &Target,
    request: &DeliveryRequest,
    token: &TokenFile,
    printer: &Printer,
) -> Result<DeliveryReport, CliError> {
    let (vmid, node, path) = (request.vmid, request.node.as_str(), request.guest_path.as_str());
    validate_guest_path(path)?;
    let content = Secret::from(token.render());
    if content.expose_secret().len() > pvetoken_client::agent::FILE_WRITE_MAX {
        return Err(CliError::usage("the token file is larger than PVE's 60 KiB file-write limit"));
    }
    let access = check_access(client, target, request, printer).await?;
    if !request.then.is_empty() && !access.exec_allowed {
        return Err(CliError::check_failed(format!(
            "{} lacks {} on /vms/{vmid}, which running `{}` in the guest needs; nothing was written",
            request.actor,
            exec_privilege(access.major),
            request.then.join(" ")
        ))
        .with_hint(grant_hint(access.major, vmid, &request.actor)));
    }
    check_vm(client, target, request, printer).await?;
    let Prepared { mode, exec_ok, created_directories, mut warnings } =
        prepare_mode(client, target, request, &access, printer).await?;
    let bytes = write_and_verify(client, target, request, &content, printer).await?;
    let mode = match mode {
        ModeOutcome::SetBeforeWrite { owner, .. } if exec_ok => {
            let observed = observe_mode(client, request).await;
            match &observed {
                Some(text) if text != &format!("600 {owner}") => {
                    warnings.push(format!("the guest reports `{text}` for {path}, expected `600 {owner}`"));
                }
                None => warnings.push(format!("could not read the mode of {path} back with stat")),
                _ => {}
            }
            ModeOutcome::SetBeforeWrite { owner, observed }
        }
        other => other,
    };
    for warning in &warnings {
        printer.warn(warning);
    }
    // Last: the command may remove the file (`--remove-token-file`) once it has used it.
    let then = if request.then.is_empty() { None } else { Some(run_then(client, target, request, printer).await?) };
    Ok(DeliveryReport {
        vmid,
        node: node.to_owned(),
        guest_path: path.to_owned(),
        token_id: token.token_id.to_string(),
        bytes,
        pve_release: access.release,
        verified: true,
        mode,
        created_directories,
        warnings,
        then,
    })
}

/// Runs the guest command of a delivery through agent/exec once the file is there; an exit other than 0 fails.
async fn run_then(
    client: &PveClient,
    target: &Target,
    request: &DeliveryRequest,
    printer: &Printer,
) -> Result<ThenReport, CliError> {
    let command: Vec<&str> = request.then.iter().map(String::as_str).collect();
    let shown = request.then.join(" ");
    let status = match exec(client, request, &command).await {
        Ok(status) => status,
        Err(Prepare::ExecUnavailable(reason)) => {
            return Err(CliError::check_failed(format!(
                "the token file is in VM {}, but `{shown}` could not run there: {reason}",
                request.vmid
            ))
            .with_hint("allow guest-exec in the guest agent (its --block-rpcs list), then rerun"));
        }
        Err(Prepare::Failed(error)) => return Err(error),
        Err(Prepare::Client(error)) => return Err(agent_error(&error, request, target)),
    };
    if !status.succeeded() {
        let stderr = status.err_data.as_deref().unwrap_or_default().trim().to_owned();
        return Err(CliError::check_failed(format!(
            "the token file is in VM {}, but `{shown}` failed there (exit {}){}",
            request.vmid,
            status.exitcode.map_or_else(|| "?".to_owned(), |code| code.to_string()),
            if stderr.is_empty() { String::new() } else { format!(": {stderr}") }
        ))
        .with_hint("fix what it reports in the guest, then rerun (the file is written again, then the command)"));
    }
    printer.info(&format!("ran `{shown}` in VM {}", request.vmid));
    Ok(ThenReport { command: request.then.clone(), stdout: status.out_data.unwrap_or_default() })
}

/// The release and what the caller may do on the VM.
struct Access {
    major: u32,
    release: String,
    /// The exec privilege of the release is held (chmod/chown through the agent).
    exec_allowed: bool,
}

/// The file's mode as it will be, and what preparing it found.
struct Prepared {
    mode: ModeOutcome,
    exec_ok: bool,
    created_directories: Vec<CreatedDirectory>,
    warnings: Vec<String>,
}

/// The release, and the caller's privileges on the VM: every one delivery needs, or an error naming the missing.
async fn check_access(
    client: &PveClient,
    target: &Target,
    request: &DeliveryRequest,
    printer: &Printer,
) -> Result<Access, CliError> {
    let vmid = request.vmid;
    let remote = |error: &ClientError| remote_error(error, target);
    let version = client.version().await.map_err(|e| remote(&e))?;
    let (major, minor) = version.major_minor().unwrap_or((9, 0));
    let release = format!("{major}.{minor}");
    let acl_path = format!("/vms/{vmid}");
    printer.verbose(&format!("checking the privileges of {} on {acl_path} (PVE {release})", request.actor));
    let permissions = client.own_permissions(Some(&acl_path)).await.map_err(|e| remote(&e))?;
    let held: Vec<&str> = permissions
        .get(&acl_path)
        .map(|privs| privs.iter().filter(|(_, on)| **on != 0).map(|(name, _)| name.as_str()).collect())
        .unwrap_or_default();
    let missing: Vec<Need> = required_privileges(major)
        .into_iter()
        .filter(|need| !need.any_of.iter().any(|privilege| held.contains(privilege)))
        .collect();
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|need| format!("{} (for {})", need.any_of.join(" or "), need.call))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CliError::check_failed(format!(
            "{} lacks {list} on {acl_path} (PVE {release}); nothing was written",
            request.actor
        ))
        .with_hint(grant_hint(major, vmid, &request.actor)));
    }
    Ok(Access { major, release, exec_allowed: held.contains(&exec_privilege(major)) })
}

/// The VM runs (not a template), its agent is configured and answers.
async fn check_vm(
    client: &PveClient,
    target: &Target,
    request: &DeliveryRequest,
    printer: &Printer,
) -> Result<(), CliError> {
    let (vmid, node) = (request.vmid, request.node.as_str());
    let status = client.vm_status(node, vmid).await.map_err(|error| vm_error(&error, request, target))?;
    if status.template {
        return Err(CliError::check_failed(format!("VM {vmid} is a template: it never runs, so it has no agent"))
            .with_hint("deliver to a clone of the template once it runs"));
    }
    if !status.is_running() {
        let state = status.qmpstatus.clone().unwrap_or_else(|| status.status.clone());
        return Err(CliError::check_failed(format!(
            "VM {vmid} on {node} is not running ({state}); nothing was written"
        ))
        .with_hint(format!("start it (`qm start {vmid}` on the host) and wait for the guest agent, then rerun")));
    }
    // PVE's status/current reports `agent: 1` only when the VM config enables the agent; a ping to a VM without it
    // answers "QEMU guest agent is not running", which would send the user to the guest instead of the config.
    if !status.agent {
        return Err(CliError::check_failed(format!("VM {vmid} has no guest agent configured; nothing was written"))
            .with_hint(format!(
                "enable it (`qm set {vmid} --agent enabled=1`), restart the VM, and install qemu-guest-agent in the \
                 guest"
            )));
    }
    client.agent_ping(node, vmid).await.map_err(|error| agent_error(&error, request, target))?;
    printer.verbose(&format!("VM {vmid} runs and its guest agent answers"));

    Ok(())
}

/// Mode and owner before the secret lands: set through exec when allowed (directories created 0700), else the
/// existing file's mode is kept, or the agent's 0666 default only with `--allow-agent-mode`.
async fn prepare_mode(
    client: &PveClient,
    target: &Target,
    request: &DeliveryRequest,
    access: &Access,
    printer: &Printer,
) -> Result<Prepared, CliError> {
    let Access { major, exec_allowed, .. } = *access;
    let vmid = request.vmid;
    let acl_path = format!("/vms/{vmid}");
    let mut warnings = Vec::new();
    let mut exec_ok = request.use_exec && exec_allowed;
    let mut prepared = false;
    let mut exec_refused: Option<String> = None;
    let mut created_directories = Vec::new();
    if exec_ok {
        match prepare_with_exec(client, request).await {
            Ok(created) => {
                prepared = true;
                for directory in &created {
                    printer.info(&format!(
                        "created {} ({}, {}) in VM {vmid}",
                        directory.path, directory.mode, directory.owner
                    ));
                }
                created_directories = created;
            }
            Err(Prepare::ExecUnavailable(reason)) => {
                printer.verbose(&format!("exec is not available ({reason}): mode and owner cannot be set"));
                exec_refused = Some(reason);
                exec_ok = false;
            }
            Err(Prepare::Failed(error)) => return Err(error),
            Err(Prepare::Client(error)) => return Err(agent_error(&error, request, target)),
        }
    } else if request.use_exec {
        printer.verbose(&format!(
            "{} lacks {} on {acl_path}: chmod/chown through the agent is not possible",
            request.actor,
            exec_privilege(major)
        ));
    }
    let mode = if prepared {
        ModeOutcome::SetBeforeWrite { owner: request.owner.clone(), observed: None }
    } else {
        mode_without_exec(client, target, request, access, exec_refused.as_deref(), &mut warnings).await?
    };

    Ok(Prepared { mode, exec_ok, created_directories, warnings })
}

/// Without exec: an existing file keeps its mode; a new one would get the agent's 0666, accepted only with
/// `--allow-agent-mode` (and warned about); a missing directory cannot be created. `exec_refused` is why the agent
/// refused exec, when it did.
async fn mode_without_exec(
    client: &PveClient,
    target: &Target,
    request: &DeliveryRequest,
    access: &Access,
    exec_refused: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<ModeOutcome, CliError> {
    let Access { major, exec_allowed, .. } = *access;
    let (vmid, path) = (request.vmid, request.guest_path.as_str());
    let acl_path = format!("/vms/{vmid}");
    let why_no_exec = || {
        if !request.use_exec {
            "--no-exec was given".to_owned()
        } else if !exec_allowed {
            format!("{} lacks {} on {acl_path}", request.actor, exec_privilege(major))
        } else {
            exec_refused.unwrap_or("exec is not available").to_owned()
        }
    };
    let found = guest_path_kind(client, request, path).await.map_err(|error| agent_error(&error, request, target))?;
    if found == PathKind::Directory {
        return Err(is_a_directory(request));
    }
    if found == PathKind::Missing
        && let Some(parent) = parent_directory(path)
    {
        let parent_kind =
            guest_path_kind(client, request, parent).await.map_err(|error| agent_error(&error, request, target))?;
        if parent_kind != PathKind::Directory {
            let state = if parent_kind == PathKind::File { "is a file, not a directory" } else { "does not exist" };
            let fix = match (request.use_exec, exec_allowed) {
                (false, _) => "rerun without --no-exec so pvetoken creates it (`mkdir -p -m 700`)".to_owned(),
                (true, false) => format!(
                    "grant {} on {acl_path} so pvetoken creates it (`mkdir -p -m 700` through agent/exec)",
                    exec_privilege(major)
                ),
                (true, true) => "allow guest-exec in the guest agent (its --block-rpcs list) so pvetoken \
                                 creates it"
                    .to_owned(),
            };
            return Err(CliError::check_failed(format!(
                "the directory {parent} {state} in VM {vmid}, and qemu-guest-agent's file-write cannot create \
                 directories while exec is not available ({}); nothing was written",
                why_no_exec()
            ))
            .with_hint(format!(
                "create it in the guest first (`install -d -m 700 {parent}`), or {fix}; or choose another \
                 --guest-path"
            )));
        }
    }
    if let Some(reason) = exec_refused {
        warnings.push(format!("exec is not available ({reason}): mode and owner were not set"));
    }
    if found == PathKind::File {
        Ok(ModeOutcome::KeptExisting)
    } else if request.allow_agent_mode {
        warnings.push(format!(
            "{path} is new and qemu-guest-agent creates new files with mode 0666 (readable by every guest user); \
             run `chmod 600 {path}` in the guest"
        ));
        Ok(ModeOutcome::AgentDefault0666)
    } else {
        let why = why_no_exec();
        Err(CliError::check_failed(format!(
            "{path} does not exist in VM {vmid}, and qemu-guest-agent would create it with mode 0666 (readable by \
             every guest user) while chmod through the agent is not possible ({why}); nothing was written"
        ))
        .with_hint(format!(
            "grant {} on {acl_path} so pvetoken can chmod before writing; or create the file 0600 in the guest \
             first (`install -m 600 /dev/null {path}`), since the agent keeps an existing file's mode; or accept \
             mode 0666 with --allow-agent-mode",
            exec_privilege(major)
        )))
    }
}

/// Writes the file through the agent, reads it back and compares; returns the bytes written.
async fn write_and_verify(
    client: &PveClient,
    target: &Target,
    request: &DeliveryRequest,
    content: &Secret,
    printer: &Printer,
) -> Result<usize, CliError> {
    let (vmid, node, path) = (request.vmid, request.node.as_str(), request.guest_path.as_str());
    printer.verbose(&format!(
        "writing {} bytes to {path} in VM {vmid} through agent/file-write",
        content.expose_secret().len()
    ));
    client
        .agent_file_write(node, vmid, path, content, true)
        .await
        .map_err(|error| agent_error(&error, request, target))?;
    let read = client.agent_file_read(node, vmid, path).await.map_err(|error| agent_error(&error, request, target))?;
    let written = content.expose_secret().as_bytes();
    let back = read.content.expose_secret().as_bytes();
    if read.truncated || written != back {
        return Err(CliError::remote(format!(
            "read-back mismatch: {path} in VM {vmid} holds {} bytes that differ from the {} bytes written{}",
            back.len(),
            written.len(),
            if read.truncated { " (PVE truncated the read)" } else { "" }
        ))
        .with_hint(
            "something in the guest changed the file, or the agent failed silently; check the guest, then rerun \
             `pvetoken deliver` (it overwrites the file)",
        ));
    }

    Ok(written.len())
}

fn validate_guest_path(path: &str) -> Result<(), CliError> {
    if !path.starts_with('/') || path.ends_with('/') || path.contains('\0') || path.contains('\n') {
        return Err(CliError::usage(format!("--guest-path {path:?} must be an absolute file path"))
            .with_hint(format!("e.g. --guest-path {DEFAULT_GUEST_PATH}")));
    }
    Ok(())
}

fn grant_hint(major: u32, vmid: u64, actor: &str) -> String {
    let subject = if actor.contains('!') { format!("--tokens '{actor}'") } else { format!("--users '{actor}'") };
    format!(
        "as an administrator: `pveum role add PVETokenDeliver --privs \"{}\"` then `pveum acl modify /vms/{vmid} \
         {subject} --roles PVETokenDeliver` (a privilege-separated token also needs it on its user); or run deliver \
         as root@pam",
        role_privileges(major)
    )
}

enum Prepare {
    ExecUnavailable(String),
    Failed(CliError),
    Client(ClientError),
}

/// `mkdir -p -v -m 700 PARENT` (and `chown OWNER PARENT` when it was created), then `touch`, `chmod 600`,
/// `chown OWNER`: the directory exists and the empty file has its final mode before the secret is written. Returns
/// the directories created.
async fn prepare_with_exec(client: &PveClient, request: &DeliveryRequest) -> Result<Vec<CreatedDirectory>, Prepare> {
    let path = request.guest_path.as_str();
    let owner = request.owner.as_str();
    let mut created = Vec::new();
    if let Some(parent) = parent_directory(path) {
        let out = run_step(client, request, &["mkdir", "-p", "-v", "-m", "700", "--", parent]).await?;
        // GNU mkdir -v: "mkdir: created directory 'X'" per directory, parents first.
        for line in out.lines() {
            if let Some(quoted) = line.strip_prefix("mkdir: created directory ") {
                let dir = quoted.trim_matches(|c| matches!(c, '\'' | '\u{2018}' | '\u{2019}')).to_owned();
                let mode = if dir == parent { "0700" } else { "0755" };
                created.push(CreatedDirectory { path: dir, mode: mode.to_owned(), owner: "root:root".to_owned() });
            }
        }
        if let Some(last) = created.last_mut().filter(|dir| dir.path == parent) {
            // A 0700 directory of root would hide the file from a non-root owner.
            run_step(client, request, &["chown", "--", owner, parent]).await?;
            owner.clone_into(&mut last.owner);
        }
    }
    refuse_non_regular(client, request).await?;
    for command in [&["touch", "--", path][..], &["chmod", "600", "--", path], &["chown", "--", owner, path]] {
        run_step(client, request, command).await?;
    }
    Ok(created)
}

/// chmod and chown follow symbolic links and work on directories: a guest path that exists and is not a regular
/// file (`/etc`, a link planted by a guest user) is refused before any of them runs.
async fn refuse_non_regular(client: &PveClient, request: &DeliveryRequest) -> Result<(), Prepare> {
    let path = request.guest_path.as_str();
    let command = ["stat", "-c", "%F", "--", path];
    let status = exec(client, request, &command).await?;
    let kind = status.out_data.as_deref().unwrap_or_default().trim().to_owned();
    if !status.succeeded() || kind.starts_with("regular") {
        // Missing (touch creates it) or a regular file: both fine. Other stat failures surface at touch.
        return Ok(());
    }
    Err(Prepare::Failed(
        CliError::check_failed(format!(
            "{path} in VM {} is a {kind}, not a regular file; nothing was changed or written",
            request.vmid
        ))
        .with_hint(format!(
            "--guest-path names the file itself, e.g. {}/proxmox-api-token; a symbolic link is refused because \
             chmod/chown would follow it",
            path.trim_end_matches('/')
        )),
    ))
}

/// One guest command through `agent/exec`; an agent or server without exec is [`Prepare::ExecUnavailable`].
async fn exec(
    client: &PveClient,
    request: &DeliveryRequest,
    command: &[&str],
) -> Result<pvetoken_client::agent::ExecStatus, Prepare> {
    match client.agent_run(&request.node, request.vmid, command, EXEC_TIMEOUT).await {
        Ok(status) => Ok(status),
        Err(error) if exec_disabled(&error) => {
            Err(Prepare::ExecUnavailable(error.server_message().unwrap_or_default().to_owned()))
        }
        // A server (or proxy) without the endpoint: the same as an agent that blocks exec.
        Err(error) if error.status() == Some(501) => {
            Err(Prepare::ExecUnavailable("the server does not implement agent/exec".to_owned()))
        }
        Err(error) => Err(Prepare::Client(error)),
    }
}

/// Runs one guest command; its stdout when it succeeded.
async fn run_step(client: &PveClient, request: &DeliveryRequest, command: &[&str]) -> Result<String, Prepare> {
    let path = request.guest_path.as_str();
    let status = exec(client, request, command).await.map_err(|failure| match failure {
        Prepare::Client(error) if agent_failed_midway(&error) => Prepare::Failed(
            CliError::remote(format!(
                "the guest agent in VM {} failed during `{}`: {}; nothing of the token was written",
                request.vmid,
                command.join(" "),
                error.server_message().unwrap_or_default()
            ))
            .with_hint(format!(
                "the guest may hold an empty {path} now; rerun `pvetoken deliver` once the agent answers again: it \
                 sets the mode and owner before it writes"
            )),
        ),
        other => other,
    })?;
    if !status.succeeded() {
        let stderr = status.err_data.as_deref().unwrap_or_default().trim().to_owned();
        return Err(Prepare::Failed(
            CliError::check_failed(format!(
                "`{}` failed in VM {} (exit {}{}); nothing was written",
                command.join(" "),
                request.vmid,
                status.exitcode.map_or_else(|| "?".to_owned(), |code| code.to_string()),
                if stderr.is_empty() { String::new() } else { format!(": {stderr}") }
            ))
            .with_hint(format!(
                "check that {path} and its directory can be created in the guest (no file in the way) and that \
                     {} exists there; pvetoken needs a Linux guest with coreutils for mkdir/chmod/chown (--no-exec \
                     skips them)",
                request.owner
            )),
        ));
    }
    Ok(status.out_data.unwrap_or_default())
}

/// An agent error while preparing the file (not a refusal, a missing agent or an agent that does not answer,
/// which [`agent_error`] explains).
fn agent_failed_midway(error: &ClientError) -> bool {
    let message = error.server_message().unwrap_or_default();
    !error.is_forbidden() && message.contains("Agent error") && !message.contains("timeout")
}

async fn observe_mode(client: &PveClient, request: &DeliveryRequest) -> Option<String> {
    let command = ["stat", "-c", "%a %U:%G", "--", request.guest_path.as_str()];
    let status = client.agent_run(&request.node, request.vmid, &command, EXEC_TIMEOUT).await.ok()?;
    if !status.succeeded() {
        return None;
    }
    status.out_data.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty())
}

/// What a guest path is, as far as `file-read` tells without exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    /// The read succeeded (its content is dropped unseen).
    File,
    /// qemu-guest-agent opened it and the read failed with `Is a directory`.
    Directory,
    /// The open failed with `No such file or directory`, or `Not a directory` (a parent is a file).
    Missing,
}

/// Asks the agent what `path` is, with `file-read`.
async fn guest_path_kind(client: &PveClient, request: &DeliveryRequest, path: &str) -> Result<PathKind, ClientError> {
    match client.agent_file_read(&request.node, request.vmid, path).await {
        Ok(_) => Ok(PathKind::File),
        Err(error) => match error.server_message() {
            Some(message) if message.contains("Is a directory") => Ok(PathKind::Directory),
            Some(message) if message.contains("No such file") || message.contains("Not a directory") => {
                Ok(PathKind::Missing)
            }
            _ => Err(error),
        },
    }
}

/// The directory holding `path` (`None` for a file in `/`).
fn parent_directory(path: &str) -> Option<&str> {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => None,
        Some((parent, _)) => Some(parent),
    }
}

fn is_a_directory(request: &DeliveryRequest) -> CliError {
    CliError::check_failed(format!("{} is a directory in VM {}; nothing was written", request.guest_path, request.vmid))
        .with_hint(format!("give the file's path, e.g. --guest-path {}/proxmox-api-token", request.guest_path))
}

/// qemu-guest-agent answers a blocked command with "The command guest-exec has been disabled for this instance".
fn exec_disabled(error: &ClientError) -> bool {
    error.server_message().is_some_and(|message| {
        let lower = message.to_ascii_lowercase();
        lower.contains("disabled") || lower.contains("not allowed") || lower.contains("blocked")
    })
}

fn vm_error(error: &ClientError, request: &DeliveryRequest, target: &Target) -> CliError {
    if error.is_not_found() || error.server_message().is_some_and(|m| m.contains("does not exist")) {
        return CliError::check_failed(format!(
            "VM {} does not exist on node {}; nothing was written",
            request.vmid, request.node
        ))
        .with_hint("check the VMID (`qm list` on the host) and pass --node with the node the VM runs on");
    }
    agent_error(error, request, target)
}

/// Turns PVE's agent errors into messages with the fix.
fn agent_error(error: &ClientError, request: &DeliveryRequest, target: &Target) -> CliError {
    let vmid = request.vmid;
    let message = error.server_message().unwrap_or_default();
    if error.is_forbidden() {
        return CliError::check_failed(format!(
            "the server refused {}: {message} (privileges changed since the check?)",
            request.actor
        ))
        .with_hint("rerun `pvetoken deliver`: it checks the privileges first and names the missing ones");
    }
    if message.contains("No QEMU guest agent configured") {
        return CliError::check_failed(format!("VM {vmid} has no guest agent configured; nothing was written"))
            .with_hint(format!(
                "enable it (`qm set {vmid} --agent enabled=1`), restart the VM, and install qemu-guest-agent in the \
                 guest"
            ));
    }
    if message.contains("is not running") && message.contains("VM ") {
        return CliError::check_failed(format!("VM {vmid} is not running; nothing was written"))
            .with_hint(format!("start it (`qm start {vmid}`) and wait for the guest agent, then rerun"));
    }
    if message.contains("guest agent is not running") || message.contains("Agent error") && message.contains("timeout")
    {
        return CliError::check_failed(format!("the QEMU guest agent in VM {vmid} does not answer: {message}"))
            .with_hint(
                "in the guest: install and start it (`apt install qemu-guest-agent && systemctl enable --now \
                 qemu-guest-agent`); the VM option agent=1 must be set before the VM started",
            );
    }
    if message.contains("failed to open file") && message.contains("No such file or directory") {
        let parent = parent_directory(&request.guest_path).unwrap_or("/");
        return CliError::check_failed(format!(
            "the directory {parent} does not exist in VM {vmid} (the agent answered: {message}); nothing of the \
             token was written"
        ))
        .with_hint(format!(
            "create it in the guest (`install -d -m 700 {parent}`) or rerun with exec allowed, so pvetoken creates it"
        ));
    }
    if message.contains("Agent error") && message.contains("Is a directory") {
        return is_a_directory(request);
    }
    if message.contains("Agent error") {
        return CliError::remote(format!("the guest agent in VM {vmid} failed: {message}")).with_hint(format!(
            "check that the directory of {} exists in the guest and is writable by the agent",
            request.guest_path
        ));
    }
    remote_error(error, target)
}

#[cfg(test)]
mod tests {
    use super::{exec_privilege, required_privileges, validate_guest_path};

    #[test]
    fn pve8_needs_vm_monitor_for_every_agent_call_and_pve9_the_specific_guest_agent_privileges() {
        let eight = required_privileges(8);
        assert!(eight.iter().filter(|need| need.call.starts_with("agent/")).all(|need| need.any_of == ["VM.Monitor"]));
        let nine = required_privileges(9);
        let write = nine.iter().find(|need| need.call == "agent/file-write").expect("file-write listed");
        assert_eq!(write.any_of, ["VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted"]);
        assert!(nine.iter().all(|need| !need.any_of.contains(&"VM.Monitor")));
        assert_eq!(exec_privilege(9), "VM.GuestAgent.Unrestricted");
        assert_eq!(exec_privilege(8), "VM.Monitor");
    }

    #[test]
    fn parent_directory_of_a_guest_path_is_none_only_in_the_root() {
        assert_eq!(super::parent_directory("/etc/privatebox/token"), Some("/etc/privatebox"));
        assert_eq!(super::parent_directory("/root/.proxmox-api-token"), Some("/root"));
        assert_eq!(super::parent_directory("/token"), None);
    }

    #[test]
    fn guest_path_must_be_an_absolute_file_path() {
        assert!(validate_guest_path("/root/.proxmox-api-token").is_ok());
        assert!(validate_guest_path("root/x").is_err());
        assert!(validate_guest_path("/root/").is_err());
        assert!(validate_guest_path("/root/a\nb").is_err());
    }
}
