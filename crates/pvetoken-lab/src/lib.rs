//! Proxmox VE and Semaphore API simulators built on pvetoken-acl: **a lab, not a Proxmox VE**.
//!
//! The PVE simulator answers as PVE does, errors included: `/api2/json` with the `{"data": ...}` envelope and
//! `Content-Type: application/json;charset=UTF-8`, the error message as HTTP reason phrase, ticket + CSRF and
//! API-token authentication, the `/access/*` endpoints with PVE's permission checks per release (8.4 or 9.1), and
//! the guest, cluster, node, task, storage and guest-agent endpoints that Packer, Terraform, Ansible and pvetoken
//! call. Guests are records: tasks finish at once. State lives in `user.cfg` / `priv/token.cfg` format in the state
//! dir (written with the permission engine's canonical writer) and survives a restart.
//!
//! # Contract
//!
//! ```no_run
//! # async fn demo() -> Result<(), pvetoken_lab::LabError> {
//! use pvetoken_lab::{LabConfig, Scenario};
//!
//! let lab = pvetoken_lab::start(LabConfig {
//!     scenario: Scenario::with_access("user:ci@pve:1:0::::::\n", ""),
//!     ..LabConfig::default()
//! })
//! .await?;
//! let ready = lab.ready(); // pve_url, ca_file, fingerprint_sha256, root_user, root_password, node, ...
//! assert!(ready.pve_url.starts_with("https://127.0.0.1:"));
//! let log = lab.request_log(); // what was asked, never secrets
//! # drop(log);
//! lab.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! - [`start`] binds 127.0.0.1 (port 0 = any), returns once both listeners accept connections.
//! - [`RunningLab::ready`] is the [`ReadyInfo`] (the ready file's JSON, see `pvetoken lab serve --ready-file`).
//! - Without [`LabConfig::state_dir`] the lab uses a temp dir that lives as long as the [`RunningLab`].
//! - Lab control over HTTP (root@pam ticket, or Basic `root@pam:<password>`): `POST /_lab/reset`,
//!   `GET|DELETE /_lab/requests`, `GET|POST|DELETE /_lab/faults` (JSON [`FaultSpec`]),
//!   `GET /_lab/guest-files?vmid=N[&path=P]` (content, mode, owner, group), `POST /_lab/agent`
//!   (`{"vmid":N,"answers":false,"exec_disabled":true}`), `POST /_lab/corrupt-file-read` (`{"vmid":N,"count":1}`);
//!   in-process: [`RunningLab::request_log`], [`RunningLab::inject_fault`], [`RunningLab::clear_faults`],
//!   [`RunningLab::reset`] (the Semaphore simulator too), [`RunningLab::guest_file`],
//!   [`RunningLab::guest_file_info`], [`RunningLab::set_agent_answers`], [`RunningLab::set_agent_exec_disabled`],
//!   [`RunningLab::corrupt_next_file_reads`].
//! - The guest agent answers `exec`/`exec-status` with a few coreutils on a per-file mode/owner model that follows
//!   qemu-guest-agent (a new `file-write` file is 0666 root:root, an existing one keeps its mode): see
//!   `docs/lab-scenario.md`.
//! - The scenario (node, storages, bridges, guests, optional starting user.cfg/token.cfg) is documented in
//!   `docs/lab-scenario.md`; [`Scenario::default`] is one node `pve`, storages `local` and `local-lvm`, bridge
//!   `vmbr0` and the template VM 9000 with the guest agent enabled.

mod access_log;
mod auth;
mod clock;
mod context;
mod control;
mod declared;
mod guest;
mod http;
mod lab_control;
mod pve;
mod release;
mod rng;
mod scenario;
pub mod semaphore;
mod server;
mod state;
mod store;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use control::{FaultSpec, RequestRecord};
use pvetoken_acl::PveVersion;
pub use scenario::{Scenario, ScenarioStorage, ScenarioVm, ScenarioVolume};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::context::Lab;
use crate::rng::LabRng;
use crate::state::{State, StateDir};

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// The simulated PVE release (7.0 - 9.2, default 9.2), as its point release shipped (see
    /// `pvetoken_acl::release::RELEASES`); the scenario's `[packages]` override single packages.
    pub pve_version: PveVersion,
    /// Where state lives; `None` = a temp dir removed with the [`RunningLab`].
    pub state_dir: Option<PathBuf>,
    /// PVE API port (0 = any free port).
    pub pve_port: u16,
    /// Semaphore API port (0 = any free port).
    pub semaphore_port: u16,
    /// The root@pam password; generated when `None`.
    pub root_password: Option<String>,
    /// The seed of a fresh lab.
    pub scenario: Scenario,
    /// Delay of every 401 answer (PVE waits about 3 s); zero by default.
    pub auth_failure_delay: Duration,
    /// Deterministic secrets and passwords (demos only).
    pub seed: Option<u64>,
    /// Serve the Semaphore simulator over plain HTTP, as a default Semaphore install does (`:3000`).
    pub semaphore_http: bool,
    /// The `pvetoken` binary the guests run when the agent executes `pvetoken` (a guest with pvetoken installed,
    /// as in the PrivateBox flow); `None`: guests have no pvetoken.
    pub guest_pvetoken: Option<PathBuf>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            pve_version: PveVersion::NEWEST,
            state_dir: None,
            pve_port: 0,
            semaphore_port: 0,
            root_password: None,
            scenario: Scenario::default(),
            auth_failure_delay: Duration::ZERO,
            seed: None,
            semaphore_http: false,
            guest_pvetoken: None,
        }
    }
}

impl LabConfig {
    /// This configuration with `user_cfg` / `token_cfg` as the starting access state.
    pub fn with_user_cfg(mut self, user_cfg: impl Into<String>, token_cfg: impl Into<String>) -> LabConfig {
        self.scenario.user_cfg = Some(user_cfg.into());
        self.scenario.token_cfg = Some(token_cfg.into());
        self
    }
}

/// What a started lab tells its clients (the ready file's JSON). Holds passwords: write it 0600, never print it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyInfo {
    /// `https://127.0.0.1:PORT` (without `/api2/json`).
    pub pve_url: String,
    /// PEM file of the lab CA that signed the server certificate (trust this, not the leaf).
    pub ca_file: PathBuf,
    /// SHA-256 fingerprint of the certificate, PVE style (`AB:CD:...`).
    pub fingerprint_sha256: String,
    /// `root@pam`.
    pub root_user: String,
    /// root@pam's password.
    pub root_password: String,
    /// The node name (`pve`).
    pub node: String,
    /// The simulated release, e.g. `9.1`.
    pub pve_version: String,
    /// `https://127.0.0.1:PORT` of the Semaphore simulator (`http://` with `semaphore_http`).
    pub semaphore_url: String,
    /// Semaphore administrator.
    pub semaphore_user: String,
    /// Its password.
    pub semaphore_password: String,
    /// The state dir.
    pub state_dir: PathBuf,
}

impl std::fmt::Debug for ReadyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyInfo")
            .field("pve_url", &self.pve_url)
            .field("ca_file", &self.ca_file)
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .field("root_user", &self.root_user)
            .field("root_password", &"[REDACTED]")
            .field("node", &self.node)
            .field("pve_version", &self.pve_version)
            .field("semaphore_url", &self.semaphore_url)
            .field("semaphore_user", &self.semaphore_user)
            .field("semaphore_password", &"[REDACTED]")
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// Why the lab could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// A state file could not be read or written.
    #[error("lab state {path}: {source} (check that the state dir is writable and not shared with another lab)")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source} (choose another port or 0 for any)")]
    Bind {
        /// The port asked for.
        port: u16,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Certificate generation or TLS setup failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The scenario is invalid.
    #[error("invalid lab scenario: {0}")]
    Scenario(String),
    /// The Semaphore simulator could not start.
    #[error("Semaphore simulator: {0}")]
    Semaphore(#[from] semaphore::SemaphoreError),
}

impl LabError {
    pub(crate) fn state(path: &Path, source: std::io::Error) -> LabError {
        LabError::State { path: path.to_owned(), source }
    }
}

/// A running lab. Dropping it stops the listeners (and removes a temp state dir).
pub struct RunningLab {
    ready: ReadyInfo,
    lab: Arc<Lab>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: StateDir,
}

impl std::fmt::Debug for RunningLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningLab").field("ready", &self.ready).finish_non_exhaustive()
    }
}

impl RunningLab {
    /// The ready information.
    pub fn ready(&self) -> &ReadyInfo {
        &self.ready
    }

    /// The Semaphore simulator (for tests that check what a client stored in it).
    pub fn semaphore(&self) -> &semaphore::SemaphoreSim {
        &self.lab.semaphore
    }

    /// The PVE side's `access.log` (pveproxy's format) in the state dir.
    pub fn access_log(&self) -> PathBuf {
        self.lab.dir.join(access_log::FILE)
    }

    /// Every PVE request so far (method, path, status, authenticated id; never secrets).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.lab.control.requests()
    }

    /// Empties the request log.
    pub fn clear_request_log(&self) {
        self.lab.control.clear_requests();
    }

    /// Adds a fault for the next matching requests.
    pub fn inject_fault(&self, fault: FaultSpec) {
        self.lab.control.add_fault(fault);
    }

    /// Removes all pending faults.
    pub fn clear_faults(&self) {
        self.lab.control.clear_faults();
    }

    /// Back to the scenario: users, tokens, ACLs, guests and tasks as at first start, no pending faults, and the
    /// Semaphore simulator as at first start (its admin keeps the password of the ready file).
    pub fn reset(&self) -> Result<(), LabError> {
        self.lab.reset().map_err(|e| LabError::Scenario(e.message))
    }

    /// The bytes of the file `path` in guest `vmid` (written by the agent's `file-write` or made by a guest command).
    pub fn guest_file(&self, vmid: u64, path: &str) -> Option<Vec<u8>> {
        self.guest_file_info(vmid, path).map(|file| file.content)
    }

    /// The file `path` in guest `vmid` with its mode and owner: a new `file-write` makes it 0666 root:root, an
    /// existing file keeps its mode and owner, `agent/exec` of `chmod`/`chown` changes them.
    pub fn guest_file_info(&self, vmid: u64, path: &str) -> Option<GuestFileInfo> {
        let state = self.lab.read();
        let file = state.guests.vms.get(&vmid)?.files.get(path)?;
        Some(GuestFileInfo {
            content: file.bytes(),
            mode: file.mode,
            owner: file.owner.clone(),
            group: file.group.clone(),
        })
    }

    /// Makes the guest agent of VM `vmid` stop answering (`false`: agent calls fail with `QEMU guest agent is not
    /// running`, as when PVE's `guest-ping` times out) or answer again (`true`).
    pub fn set_agent_answers(&self, vmid: u64, answers: bool) -> Result<(), LabError> {
        self.lab.set_agent(vmid, Some(answers), None).map_err(|e| LabError::Scenario(e.message))
    }

    /// Makes the guest agent of VM `vmid` block `guest-exec` (as `qemu-ga --block-rpcs guest-exec,...`), or not.
    pub fn set_agent_exec_disabled(&self, vmid: u64, disabled: bool) -> Result<(), LabError> {
        self.lab.set_agent(vmid, None, Some(disabled)).map_err(|e| LabError::Scenario(e.message))
    }

    /// Makes the next `count` successful `agent/file-read` answers of VM `vmid` differ from the stored file (one
    /// byte changed, or one byte for an empty file): a guest that changed the file between write and read-back.
    pub fn corrupt_next_file_reads(&self, vmid: u64, count: u32) {
        self.lab.control.corrupt_file_reads(vmid, count);
    }

    /// The current `user.cfg` text (as the lab would write it).
    pub fn user_cfg(&self) -> String {
        self.lab.read().cfg.write()
    }

    /// Stops the listeners and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningLab {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A file in a guest, as [`RunningLab::guest_file_info`] reports it. Its `Debug` shows the size, not the content.
#[derive(Clone, PartialEq, Eq)]
pub struct GuestFileInfo {
    /// The bytes.
    pub content: Vec<u8>,
    /// Permission bits, e.g. `0o600`.
    pub mode: u32,
    /// Owner name in the guest (`root`).
    pub owner: String,
    /// Group name in the guest (`root`).
    pub group: String,
}

impl std::fmt::Debug for GuestFileInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestFileInfo")
            .field("bytes", &self.content.len())
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("owner", &self.owner)
            .field("group", &self.group)
            .finish()
    }
}

impl Lab {
    /// Back to the scenario: PVE state, pending faults and the Semaphore simulator.
    pub(crate) fn reset(&self) -> Result<(), http::ApiError> {
        let fresh = State::fresh(&self.scenario, &self.catalog, &self.rng, &self.dir)
            .map_err(|e| http::ApiError::internal(format!("reset failed: {e}")))?;
        *self.write() = fresh;
        self.control.clear_faults();
        self.semaphore
            .reset(&self.scenario.semaphore)
            .map_err(|e| http::ApiError::internal(format!("reset of the Semaphore simulator failed: {e}")))?;
        Ok(())
    }

    /// Switches VM `vmid`'s guest agent: `answers` (false = silent), `exec_disabled` (blocks guest-exec).
    pub(crate) fn set_agent(
        &self,
        vmid: u64,
        answers: Option<bool>,
        exec_disabled: Option<bool>,
    ) -> Result<(), http::ApiError> {
        let mut state = self.write();
        let vm = state
            .guests
            .vms
            .get_mut(&vmid)
            .ok_or_else(|| http::ApiError::internal(format!("VM {vmid} does not exist in the lab")))?;
        if let Some(answers) = answers {
            vm.agent_silent = !answers;
        }
        if let Some(disabled) = exec_disabled {
            vm.exec_disabled = disabled;
        }
        self.save_guests(&state)
    }
}

fn load_key(dir: &Path, rng: &LabRng) -> Result<Vec<u8>, LabError> {
    let path = dir.join("priv/authkey.key");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(bytes) = hex::decode(text.trim())
        && bytes.len() >= 32
    {
        return Ok(bytes);
    }
    let mut key = vec![0u8; 32];
    rng.fill(&mut key);
    store::write_atomic(&path, hex::encode(&key).as_bytes(), true).map_err(|e| LabError::state(&path, e))?;
    Ok(key)
}

async fn bind(port: u16) -> Result<(TcpListener, SocketAddr), LabError> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|source| LabError::Bind { port, source })?;
    let addr = listener.local_addr().map_err(|source| LabError::Bind { port, source })?;
    Ok((listener, addr))
}

/// Starts the lab: PVE simulator and Semaphore simulator on 127.0.0.1, both HTTPS with the same certificate.
pub async fn start(config: LabConfig) -> Result<RunningLab, LabError> {
    let dir = match &config.state_dir {
        Some(path) => {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|e| LabError::state(path, e))?;
            StateDir::Given(path.clone())
        }
        None => StateDir::Temp(
            tempfile::Builder::new()
                .prefix("pvetoken-lab-")
                .tempdir()
                .map_err(|e| LabError::state(Path::new("/tmp"), e))?,
        ),
    };
    let dir_path = dir.path().to_owned();
    let rng = Arc::new(LabRng::new(config.seed));
    let installed = release::Installed::new(config.pve_version, &config.scenario.packages);
    let catalog = installed.catalog(config.pve_version);
    let cert = tls::load_or_create(&dir_path)?;
    let state = State::load(&dir_path, &config.scenario, &catalog, &rng)?;
    let ticket_key = load_key(&dir_path, &rng)?;
    let root_password = config.root_password.clone().unwrap_or_else(|| rng.password(24));
    let semaphore_password = rng.password(24);
    let semaphore = semaphore::SemaphoreSim::open_with_rng(
        Some(&dir_path),
        &config.scenario.semaphore,
        semaphore_password,
        rng.clone(),
    )?;

    let (pve_listener, pve_addr) = bind(config.pve_port).await?;
    let (sem_listener, sem_addr) = bind(config.semaphore_port).await?;
    let lab = Arc::new(Lab {
        version: config.pve_version,
        installed,
        catalog,
        node: config.scenario.node.clone(),
        state: RwLock::new(state),
        dir: dir_path.clone(),
        rng,
        ticket_key,
        root_password: RwLock::new(root_password.clone()),
        control: control::Control::default(),
        auth_failure_delay: config.auth_failure_delay,
        scenario: config.scenario.clone(),
        generation: std::sync::atomic::AtomicU64::new(0),
        perm_cache: std::sync::Mutex::new(std::collections::HashMap::new()),
        semaphore: semaphore.clone(),
        access_log_lock: std::sync::Mutex::new(()),
        guest_pvetoken: config.guest_pvetoken.clone(),
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config.clone());
    let (shutdown, rx) = watch::channel(false);
    let pve_lab = lab.clone();
    let pve_task = tokio::spawn(listen::accept_loop(pve_listener, acceptor.clone(), rx.clone(), move |req| {
        let lab = pve_lab.clone();
        async move { server::serve_request(lab, req).await }
    }));
    let fault_lab = lab.clone();
    let router = semaphore.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let lab = fault_lab.clone();
            async move { semaphore_fault(&lab, request, next).await }
        },
    ));
    let sem_acceptor = (!config.semaphore_http).then_some(acceptor);
    let sem_task = tokio::spawn(listen::accept_loop_tower(sem_listener, sem_acceptor, rx, router));

    let ready = ReadyInfo {
        pve_url: format!("https://{pve_addr}"),
        ca_file: tls::ca_path(&dir_path),
        fingerprint_sha256: cert.fingerprint.clone(),
        root_user: "root@pam".to_owned(),
        root_password,
        node: config.scenario.node.clone(),
        pve_version: config.pve_version.to_string(),
        semaphore_url: format!("{}://{sem_addr}", if config.semaphore_http { "http" } else { "https" }),
        semaphore_user: semaphore.admin_user().to_owned(),
        semaphore_password: semaphore.admin_password().to_owned(),
        state_dir: dir_path,
    };
    Ok(RunningLab { ready, lab, shutdown, tasks: vec![pve_task, sem_task], _dir: dir })
}

/// The Semaphore side's injected faults (`/api/...` patterns): a delay, then an error status instead of the
/// handler's answer.
async fn semaphore_fault(
    lab: &Lab,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if let Some(fault) = lab.control.take(request.method().as_str(), request.uri().path()) {
        if !fault.latency.is_zero() {
            tokio::time::sleep(fault.latency).await;
        }
        if let Some((status, message)) = fault.status {
            let status =
                axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            return (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
        }
    }
    next.run(request).await
}

mod listen;
