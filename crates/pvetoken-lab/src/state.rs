//! The lab's state: access control (user.cfg, priv/token.cfg, lab passwords) and guests, tasks, storage and guest
//! files; loaded from and saved to the state dir with atomic writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pvetoken_acl::{Catalog, TokenCfg, UserCfg};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;

use crate::LabError;
use crate::auth::constant_time_eq;
use crate::clock::now;
use crate::rng::LabRng;
use crate::scenario::Scenario;
use crate::store::write_atomic;

pub(crate) const USER_CFG: &str = "user.cfg";
pub(crate) const TOKEN_CFG: &str = "priv/token.cfg";
pub(crate) const SHADOW: &str = "priv/shadow.cfg";
pub(crate) const GUESTS: &str = "lab/guests.json";

/// Everything the API changes.
pub(crate) struct State {
    pub(crate) cfg: UserCfg,
    pub(crate) tokens: TokenCfg,
    /// user id → `salt$sha256hex` (lab passwords; root@pam's comes from the lab configuration).
    pub(crate) shadow: BTreeMap<String, String>,
    pub(crate) guests: Guests,
}

/// A QEMU guest record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Vm {
    pub(crate) vmid: u64,
    pub(crate) node: String,
    /// `running` or `stopped`.
    pub(crate) status: String,
    /// Config keys → values (strings, as in the VM's config file).
    pub(crate) config: BTreeMap<String, String>,
    /// Epoch seconds of the last start (uptime).
    #[serde(default)]
    pub(crate) started_at: u64,
    /// Files in the guest (written through the agent or made by guest commands): path → content, mode, owner.
    #[serde(default)]
    pub(crate) files: BTreeMap<String, crate::guest::GuestFile>,
    /// The guest agent does not answer (PVE: `QEMU guest agent is not running`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) agent_silent: bool,
    /// The guest agent blocks `guest-exec` (qemu-ga `--block-rpcs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) exec_disabled: bool,
    /// Finished guest commands not yet reported by `exec-status`: pid → result.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) exec: BTreeMap<u64, crate::guest::ExecResult>,
    /// The last pid handed out by `exec`.
    #[serde(default)]
    pub(crate) next_exec_pid: u64,
}

impl Vm {
    pub(crate) fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|v| v == "1")
    }

    pub(crate) fn name(&self) -> String {
        self.config.get("name").cloned().unwrap_or_else(|| format!("VM {}", self.vmid))
    }

    pub(crate) fn agent_enabled(&self) -> bool {
        self.config.get("agent").is_some_and(|v| {
            let first = v.split(',').next().unwrap_or_default();
            let value = first.strip_prefix("enabled=").unwrap_or(first);
            value == "1"
        })
    }

    pub(crate) fn memory_mib(&self) -> u64 {
        self.config
            .get("memory")
            .and_then(|m| m.split(',').next().map(|x| x.trim_start_matches("current=")).and_then(|x| x.parse().ok()))
            .unwrap_or(512)
    }

    pub(crate) fn cpus(&self) -> u64 {
        let cores: u64 = self.config.get("cores").and_then(|c| c.parse().ok()).unwrap_or(1);
        let sockets: u64 = self.config.get("sockets").and_then(|c| c.parse().ok()).unwrap_or(1);
        cores * sockets
    }
}

/// A finished task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Task {
    pub(crate) upid: String,
    pub(crate) node: String,
    pub(crate) pid: u64,
    pub(crate) pstart: u64,
    pub(crate) starttime: u64,
    pub(crate) endtime: u64,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) exitstatus: String,
}

/// A storage of the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Storage {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) content: Vec<String>,
    pub(crate) total: u64,
}

/// A volume on a storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Volume {
    pub(crate) volid: String,
    pub(crate) size: u64,
    pub(crate) content: String,
    pub(crate) vmid: Option<u64>,
    pub(crate) ctime: u64,
}

/// Guests, tasks and storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Guests {
    pub(crate) node: String,
    pub(crate) bridges: Vec<String>,
    pub(crate) storage: Vec<Storage>,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) vms: BTreeMap<u64, Vm>,
    pub(crate) tasks: BTreeMap<String, Task>,
    pub(crate) next_pid: u64,
}

/// Volume content type from a volume id (`local:iso/x.iso` → `iso`, `local-lvm:vm-100-disk-0` → `images`).
pub(crate) fn content_of(volid: &str) -> String {
    let name = volid.split_once(':').map(|(_, n)| n).unwrap_or(volid);
    match name.split_once('/') {
        Some((kind, _)) if ["iso", "vztmpl", "snippets", "images"].contains(&kind) => kind.to_owned(),
        Some(("dump", _)) => "backup".to_owned(),
        _ => "images".to_owned(),
    }
}

impl Guests {
    fn from_scenario(scenario: &Scenario) -> Guests {
        let now = now();
        let mut vms = BTreeMap::new();
        let mut volumes: Vec<Volume> = scenario
            .volumes
            .iter()
            .map(|v| Volume {
                volid: v.volid.clone(),
                size: v.size,
                content: content_of(&v.volid),
                vmid: None,
                ctime: now,
            })
            .collect();
        for vm in &scenario.vm {
            let mut config: BTreeMap<String, String> = BTreeMap::new();
            config.insert("name".into(), vm.name.clone());
            config.insert("memory".into(), "512".into());
            config.insert("cores".into(), "1".into());
            config.insert("sockets".into(), "1".into());
            config.insert("ostype".into(), "l26".into());
            for (k, v) in &vm.config {
                config.insert(k.clone(), v.clone());
            }
            if vm.template {
                config.insert("template".into(), "1".into());
            }
            config.entry("smbios1".into()).or_insert_with(|| format!("uuid={}", fake_uuid(vm.vmid)));
            config.entry("vmgenid".into()).or_insert_with(|| fake_uuid(vm.vmid + 7));
            for value in config.values() {
                if let Some(volid) = disk_volid(value) {
                    volumes.push(Volume {
                        volid: volid.clone(),
                        size: 8 << 30,
                        content: "images".into(),
                        vmid: Some(vm.vmid),
                        ctime: now,
                    });
                }
            }
            let running = vm.status == "running";
            vms.insert(
                vm.vmid,
                Vm {
                    vmid: vm.vmid,
                    node: scenario.node.clone(),
                    status: vm.status.clone(),
                    config,
                    started_at: if running { now } else { 0 },
                    agent_silent: scenario.agents_not_answering.contains(&vm.vmid),
                    ..Vm::default()
                },
            );
        }
        Guests {
            node: scenario.node.clone(),
            bridges: scenario.bridges.clone(),
            storage: scenario
                .storage
                .iter()
                .map(|s| Storage {
                    id: s.id.clone(),
                    kind: s.kind.clone(),
                    content: s.content.clone(),
                    total: s.total_gib << 30,
                })
                .collect(),
            volumes,
            vms,
            tasks: BTreeMap::new(),
            next_pid: 4000,
        }
    }
}

/// A deterministic UUID-looking string for generated config values.
pub(crate) fn fake_uuid(n: u64) -> String {
    let h = sha2::Sha256::digest(n.to_le_bytes());
    let hex = hex::encode(&h[..16]);
    format!("{}-{}-4{}-8{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

/// The volume id of a disk config value (`local-lvm:vm-100-disk-0,size=8G` → `local-lvm:vm-100-disk-0`), if it is
/// a volume on a storage (not `none`, `cdrom` or a new-disk size).
pub(crate) fn disk_volid(value: &str) -> Option<String> {
    let first = value.split(',').next()?;
    let first = first.strip_prefix("file=").unwrap_or(first);
    let (storage, name) = first.split_once(':')?;
    if storage.is_empty() || name.is_empty() || name.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if name.starts_with("iso/") || value.contains("media=cdrom") {
        return None;
    }
    Some(first.to_owned())
}

fn hash_password(salt: &str, password: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{salt}${password}").as_bytes());
    format!("{salt}${}", hex::encode(digest))
}

impl State {
    /// Loads the state dir, seeding what is missing from `scenario`.
    pub(crate) fn load(dir: &Path, scenario: &Scenario, catalog: &Catalog, rng: &LabRng) -> Result<State, LabError> {
        let read = |rel: &str| -> Result<Option<String>, LabError> {
            let path = dir.join(rel);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(LabError::state(&path, e)),
            }
        };
        let user_text = read(USER_CFG)?.or_else(|| scenario.user_cfg.clone()).unwrap_or_default();
        let (cfg, _warnings) = UserCfg::parse(&user_text, catalog);
        let token_text = read(TOKEN_CFG)?.or_else(|| scenario.token_cfg.clone()).unwrap_or_default();
        let (tokens, _warnings) = TokenCfg::parse(&token_text);
        let mut shadow = BTreeMap::new();
        match read(SHADOW)? {
            Some(text) => {
                for line in text.lines() {
                    if let Some((user, hash)) = line.split_once(' ') {
                        shadow.insert(user.to_owned(), hash.to_owned());
                    }
                }
            }
            None => {
                for (user, password) in &scenario.passwords {
                    let mut salt = [0u8; 8];
                    rng.fill(&mut salt);
                    let salt = hex::encode(salt);
                    shadow.insert(user.clone(), hash_password(&salt, password));
                }
            }
        }
        let guests_path = dir.join(GUESTS);
        let guests = match crate::store::read_json(&guests_path) {
            Ok(Some(guests)) => guests,
            Ok(None) => Guests::from_scenario(scenario),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(LabError::Scenario(format!("{}: unreadable guest state: {e}", guests_path.display())));
            }
            Err(e) => return Err(LabError::state(&guests_path, e)),
        };
        let state = State { cfg, tokens, shadow, guests };
        state.save_access(dir).map_err(|e| LabError::state(dir, e))?;
        state.save_guests(dir).map_err(|e| LabError::state(dir, e))?;
        Ok(state)
    }

    /// A fresh state from the scenario only (for `/_lab/reset`).
    pub(crate) fn fresh(scenario: &Scenario, catalog: &Catalog, rng: &LabRng, dir: &Path) -> Result<State, LabError> {
        for rel in [USER_CFG, TOKEN_CFG, SHADOW, GUESTS] {
            let _ = std::fs::remove_file(dir.join(rel));
        }
        State::load(dir, scenario, catalog, rng)
    }

    /// Writes user.cfg, priv/token.cfg (0600) and the lab passwords (0600).
    pub(crate) fn save_access(&self, dir: &Path) -> std::io::Result<()> {
        write_atomic(&dir.join(USER_CFG), self.cfg.write().as_bytes(), false)?;
        write_atomic(&dir.join(TOKEN_CFG), self.tokens.write().as_bytes(), true)?;
        let shadow: String = self.shadow.iter().map(|(u, h)| format!("{u} {h}\n")).collect();
        write_atomic(&dir.join(SHADOW), shadow.as_bytes(), true)
    }

    /// Writes the guest state (0600: guest files may hold secrets).
    pub(crate) fn save_guests(&self, dir: &Path) -> std::io::Result<()> {
        crate::store::write_json(&dir.join(GUESTS), &self.guests, true)
    }

    /// Sets a lab password.
    pub(crate) fn set_password(&mut self, user: &str, password: &str, rng: &LabRng) {
        let mut salt = [0u8; 8];
        rng.fill(&mut salt);
        let salt = hex::encode(salt);
        self.shadow.insert(user.to_owned(), hash_password(&salt, password));
    }

    /// Checks a lab password.
    pub(crate) fn password_matches(&self, user: &str, password: &str) -> bool {
        self.shadow.get(user).is_some_and(|stored| {
            let salt = stored.split_once('$').map(|(s, _)| s).unwrap_or_default();
            constant_time_eq(hash_password(salt, password).as_bytes(), stored.as_bytes())
        })
    }
}

/// The state dir: a given path, or a temp dir owned by the running lab.
pub(crate) enum StateDir {
    Given(PathBuf),
    Temp(tempfile::TempDir),
}

impl StateDir {
    pub(crate) fn path(&self) -> &Path {
        match self {
            StateDir::Given(p) => p,
            StateDir::Temp(t) => t.path(),
        }
    }
}

/// JSON helper: a config value as PVE returns it (integers for integer-typed keys).
pub(crate) fn config_value(key: &str, value: &str) -> Value {
    const INTEGER_KEYS: &[&str] = &[
        "cores",
        "sockets",
        "template",
        "onboot",
        "numa",
        "kvm",
        "acpi",
        "tablet",
        "protection",
        "balloon",
        "shares",
        "vcpus",
        "localtime",
        "reboot",
        "cpuunits",
    ];
    if INTEGER_KEYS.contains(&key)
        && let Ok(n) = value.parse::<i64>()
    {
        return Value::from(n);
    }
    Value::String(value.to_owned())
}
