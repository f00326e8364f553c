//! QEMU guest agent calls through the PVE API (`/nodes/{node}/qemu/{vmid}/agent/...`) and the VM status they
//! depend on.
//!
//! What PVE and qemu-guest-agent do with a written file (from qemu-server `src/PVE/API2/Qemu/Agent.pm` and QEMU
//! `qga/commands-posix.c`; details and pointers in `docs/deliver.md`):
//!
//! - `file-write` opens the guest file with `guest-file-open` mode `wb`, writes it in one `guest-file-write` and
//!   closes it. Its `content` is limited to 60 KiB; with `encode=1` (the default) PVE base64-encodes it for QEMU.
//! - qemu-guest-agent creates a **new** file with `O_EXCL` and then `fchmod(0666)`, independent of the umask: a new
//!   file is readable and writable by every guest user. An **existing** file is truncated and keeps its mode and
//!   owner. The owner of a new file is the agent's user (root on the usual packages).
//! - `exec` starts a program with arguments (no shell) and returns a pid; `exec-status` reports its exit.
//!
//! The file content is a secret: it only ever travels in a POST body ([`PveClient::agent_file_write`] refuses the
//! `pvesh` backend, which would put it in the host's process list) and comes back as a [`Secret`].

use std::time::Duration;

use pvetoken_api::pve::pve_bool;
use pvetoken_api::{ExposeSecret, Secret};
use serde::Deserialize;

use crate::error::ClientError;
use crate::pve::{Params, PveClient};

/// PVE's limit on `file-write`'s `content` (60 KiB).
pub const FILE_WRITE_MAX: usize = 60 * 1024;

/// `GET /nodes/{node}/qemu/{vmid}/status/current` (the fields used here).
#[derive(Debug, Clone, Deserialize)]
pub struct VmStatus {
    /// `running` or `stopped`.
    pub status: String,
    /// QEMU's own state (`running`, `paused`, `prelaunch`, ...), when running.
    #[serde(default)]
    pub qmpstatus: Option<String>,
    /// The VM name.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the guest agent is enabled in the VM config (PVE reports `agent: 1`).
    #[serde(default, deserialize_with = "pve_bool")]
    pub agent: bool,
    /// True for templates.
    #[serde(default, deserialize_with = "pve_bool")]
    pub template: bool,
}

impl VmStatus {
    /// True when the VM runs (not stopped, not paused).
    pub fn is_running(&self) -> bool {
        self.status == "running" && self.qmpstatus.as_deref().is_none_or(|state| state == "running")
    }
}

/// What `file-read` returned.
#[derive(Debug)]
pub struct GuestFile {
    /// The content (PVE decodes the agent's base64; a token file is plain text).
    pub content: Secret,
    /// PVE stopped reading at its size limit (16 MiB).
    pub truncated: bool,
}

#[derive(Deserialize)]
struct FileReadWire {
    #[serde(default)]
    content: String,
    #[serde(default, deserialize_with = "pve_bool")]
    truncated: bool,
}

#[derive(Deserialize)]
struct ExecWire {
    pid: u64,
}

/// `exec-status` of a process started with `agent/exec`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExecStatus {
    /// The process has ended.
    #[serde(default, deserialize_with = "pve_bool")]
    pub exited: bool,
    /// Its exit code, when it ended normally.
    #[serde(default)]
    pub exitcode: Option<i64>,
    /// The signal that ended it, if any.
    #[serde(default)]
    pub signal: Option<i64>,
    /// Its standard output (decoded by PVE).
    #[serde(default, rename = "out-data")]
    pub out_data: Option<String>,
    /// Its standard error (decoded by PVE).
    #[serde(default, rename = "err-data")]
    pub err_data: Option<String>,
}

impl ExecStatus {
    /// True when the process ended with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.exited && self.exitcode == Some(0) && self.signal.is_none()
    }
}

fn vm_path(node: &str, vmid: u64, tail: &str) -> String {
    format!("/nodes/{}/qemu/{vmid}/{tail}", crate::pve::enc(node))
}

impl PveClient {
    /// `GET /nodes/{node}/qemu/{vmid}/status/current` (needs `VM.Audit`).
    pub async fn vm_status(&self, node: &str, vmid: u64) -> Result<VmStatus, ClientError> {
        self.get(&vm_path(node, vmid, "status/current"), &Params::new()).await
    }

    /// `POST .../agent/ping`: `Ok` when the guest agent answers (PVE waits at most 3 s for it).
    pub async fn agent_ping(&self, node: &str, vmid: u64) -> Result<(), ClientError> {
        self.post::<serde_json::Value>(&vm_path(node, vmid, "agent/ping"), &Params::new()).await.map(drop)
    }

    /// `POST .../agent/file-write` with `file` and `content` in the form body.
    ///
    /// With `encode` true PVE base64-encodes `content` for the agent; with `encode` false `content` must already be
    /// base64. Refused for the `pvesh` backend: pvesh takes parameters only as arguments, which every local user
    /// can read in the process list.
    pub async fn agent_file_write(
        &self,
        node: &str,
        vmid: u64,
        file: &str,
        content: &Secret,
        encode: bool,
    ) -> Result<(), ClientError> {
        let path = vm_path(node, vmid, "agent/file-write");
        if self.is_local() {
            return Err(ClientError::Local {
                args: format!("create {path}"),
                message: "refusing to pass file content to pvesh: its arguments are visible in the host's process \
                          list; use the HTTPS API (--url) for this step"
                    .to_owned(),
                status: None,
            });
        }
        if content.expose_secret().len() > FILE_WRITE_MAX {
            return Err(ClientError::Api {
                method: "POST".to_owned(),
                path,
                status: 400,
                message: format!("content is larger than PVE's file-write limit of {FILE_WRITE_MAX} bytes"),
            });
        }
        // The secret lives in this form body only for the duration of the request.
        let mut form: Params = vec![
            ("file".to_owned(), file.to_owned()),
            ("content".to_owned(), content.expose_secret().to_owned()),
            ("encode".to_owned(), if encode { "1" } else { "0" }.to_owned()),
        ];
        let result = self.post::<serde_json::Value>(&path, &form).await.map(drop);
        for (_, value) in &mut form {
            zeroize::Zeroize::zeroize(value);
        }
        result
    }

    /// `GET .../agent/file-read?file=...`.
    pub async fn agent_file_read(&self, node: &str, vmid: u64, file: &str) -> Result<GuestFile, ClientError> {
        let wire: FileReadWire =
            self.get(&vm_path(node, vmid, "agent/file-read"), &vec![("file".to_owned(), file.to_owned())]).await?;
        Ok(GuestFile { content: Secret::from(wire.content), truncated: wire.truncated })
    }

    /// `POST .../agent/exec` with `command` (program and arguments, no shell; never a secret): the guest pid.
    pub async fn agent_exec(&self, node: &str, vmid: u64, command: &[&str]) -> Result<u64, ClientError> {
        let form: Params = command.iter().map(|part| ("command".to_owned(), (*part).to_owned())).collect();
        let wire: ExecWire = self.post(&vm_path(node, vmid, "agent/exec"), &form).await?;
        Ok(wire.pid)
    }

    /// `GET .../agent/exec-status?pid=...`.
    pub async fn agent_exec_status(&self, node: &str, vmid: u64, pid: u64) -> Result<ExecStatus, ClientError> {
        self.get(&vm_path(node, vmid, "agent/exec-status"), &vec![("pid".to_owned(), pid.to_string())]).await
    }

    /// Runs `command` in the guest and waits (polling `exec-status`) until it ends or `timeout` passes.
    pub async fn agent_run(
        &self,
        node: &str,
        vmid: u64,
        command: &[&str],
        timeout: Duration,
    ) -> Result<ExecStatus, ClientError> {
        let pid = self.agent_exec(node, vmid, command).await?;
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let status = self.agent_exec_status(node, vmid, pid).await?;
            if status.exited {
                return Ok(status);
            }
            if started.elapsed() >= timeout {
                return Err(ClientError::Timeout {
                    method: "GET".to_owned(),
                    path: vm_path(node, vmid, "agent/exec-status"),
                    host: "the guest".to_owned(),
                    reason: format!("`{}` still running after {} s", command.join(" "), timeout.as_secs()),
                    sent: crate::error::Sent::Yes,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ExecStatus, VmStatus, vm_path};

    #[test]
    fn status_reads_pve_booleans_and_paused_vms_are_not_running() {
        let status: VmStatus =
            serde_json::from_str(r#"{"status":"running","qmpstatus":"paused","agent":1}"#).expect("parses");
        assert!(status.agent);
        assert!(!status.is_running());
        let status: VmStatus = serde_json::from_str(r#"{"status":"running"}"#).expect("parses");
        assert!(status.is_running() && !status.agent);
    }

    #[test]
    fn exec_status_success_needs_exit_code_zero() {
        let status: ExecStatus = serde_json::from_str(r#"{"exited":1,"exitcode":0}"#).expect("parses");
        assert!(status.succeeded());
        let status: ExecStatus = serde_json::from_str(r#"{"exited":1,"exitcode":1}"#).expect("parses");
        assert!(!status.succeeded());
        let status: ExecStatus = serde_json::from_str(r#"{"exited":0}"#).expect("parses");
        assert!(!status.succeeded());
    }

    #[test]
    fn node_names_are_path_escaped() {
        assert_eq!(vm_path("pve", 100, "agent/ping"), "/nodes/pve/qemu/100/agent/ping");
        assert_eq!(vm_path("a/b", 100, "agent/ping"), "/nodes/a%2Fb/qemu/100/agent/ping");
    }
}
