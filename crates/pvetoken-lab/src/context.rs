//! What every PVE handler works with: the running lab's shared state ([`Lab`]), the authenticated caller
//! ([`Caller`]) and permission checks with PVE's 403 messages ([`Perm`]). The request path (`server.rs`) builds
//! them; the handlers (`pve/`), the declared checks (`declared.rs`), lab control and the guest model read them.

use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use pvetoken_acl::{Catalog, Evaluator, PveVersion, Subject};

use crate::control::Control;
use crate::http::ApiError;
use crate::rng::LabRng;
use crate::scenario::Scenario;
use crate::state::State;

/// The running simulator's shared state.
pub(crate) struct Lab {
    pub(crate) version: PveVersion,
    /// pve-manager and the packages as installed (decides `catalog`'s access-control version).
    pub(crate) installed: crate::release::Installed,
    pub(crate) catalog: Catalog,
    pub(crate) node: String,
    pub(crate) state: RwLock<State>,
    pub(crate) dir: PathBuf,
    /// Shared with the Semaphore simulator, so that `--seed` reaches both.
    pub(crate) rng: std::sync::Arc<LabRng>,
    pub(crate) ticket_key: Vec<u8>,
    pub(crate) root_password: RwLock<String>,
    pub(crate) control: Control,
    pub(crate) auth_failure_delay: Duration,
    pub(crate) scenario: Scenario,
    /// Bumped on every write lock: invalidates [`Lab::perm_cache`].
    pub(crate) generation: std::sync::atomic::AtomicU64,
    /// GET /access/permissions answers by (caller, userid, path), valid for one generation.
    pub(crate) perm_cache: std::sync::Mutex<std::collections::HashMap<String, (u64, Bytes)>>,
    /// The Semaphore simulator (reset together with the PVE state).
    pub(crate) semaphore: crate::semaphore::SemaphoreSim,
    /// Serialises lines of `access.log`.
    pub(crate) access_log_lock: std::sync::Mutex<()>,
    /// The `pvetoken` the guests run (`LabConfig::guest_pvetoken`).
    pub(crate) guest_pvetoken: Option<PathBuf>,
}

impl Lab {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        let guard = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        guard
    }

    /// The full pve-manager version string of the simulated release.
    pub(crate) fn manager_version(&self) -> String {
        self.installed.manager.clone()
    }

    /// Saves the access files, mapping I/O errors to a 500.
    pub(crate) fn save_access(&self, state: &State) -> Result<(), ApiError> {
        state.save_access(&self.dir).map_err(|e| ApiError::internal(format!("unable to write user.cfg - {e}")))
    }

    /// Saves the guest state.
    pub(crate) fn save_guests(&self, state: &State) -> Result<(), ApiError> {
        state.save_guests(&self.dir).map_err(|e| ApiError::internal(format!("unable to write guest state - {e}")))
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// `user@realm` or `user@realm!token`.
    pub(crate) authid: String,
    pub(crate) subject: Subject,
}

impl Caller {
    pub(crate) fn is_root(&self) -> bool {
        self.authid == "root@pam"
    }

    pub(crate) fn is_token(&self) -> bool {
        matches!(self.subject, Subject::Token(_))
    }

    /// The user (the owner for a token).
    pub(crate) fn user(&self) -> String {
        self.subject.owner().to_string()
    }
}

/// Permission checks with PVE's 403 messages.
pub(crate) struct Perm<'a> {
    pub(crate) caller: &'a Caller,
    pub(crate) eval: Evaluator<'a>,
}

impl<'a> Perm<'a> {
    pub(crate) fn new(lab: &'a Lab, state: &'a State, caller: &'a Caller) -> Perm<'a> {
        Perm { caller, eval: Evaluator::new(&state.cfg, &lab.catalog) }
    }

    /// True when the caller holds all of `privs` (any one with `any`) on `path`; privileges the release does not
    /// know are never held.
    pub(crate) fn has(&self, path: &str, privs: &[&str], any: bool) -> bool {
        if self.caller.is_root() {
            return true;
        }
        let perms = self.eval.permissions_raw(&self.caller.subject, path);
        let held = |p: &&str| self.eval.catalog().privilege(p).is_ok_and(|p| perms.has(p));
        if any { privs.iter().any(held) } else { privs.iter().all(held) }
    }

    /// Like PVE's `check`/`check_any`: 403 naming the first missing privilege, or all of them joined by `|`.
    pub(crate) fn check(&self, path: &str, privs: &[&str], any: bool) -> Result<(), ApiError> {
        if self.caller.is_root() {
            return Ok(());
        }
        let perms = self.eval.permissions_raw(&self.caller.subject, path);
        let held = |p: &str| self.eval.catalog().privilege(p).is_ok_and(|p| perms.has(p));
        if any {
            if privs.iter().any(|p| held(p)) {
                return Ok(());
            }
            return Err(ApiError::forbidden(&format!("{path}, {}", privs.join("|"))));
        }
        match privs.iter().find(|p| !held(p)) {
            None => Ok(()),
            Some(missing) => Err(ApiError::forbidden(&format!("{path}, {missing}"))),
        }
    }
}
