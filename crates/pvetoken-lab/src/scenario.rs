//! The lab's seed: one node, its storages, bridges, guests and ISO images, optionally a starting `user.cfg` /
//! `priv/token.cfg`, and the `[semaphore]` table. Written as TOML (see `docs/lab-scenario.md`); the default is
//! [`Scenario::default`].

use std::path::Path;

use serde::Deserialize;

use crate::LabError;
use crate::semaphore::scenario::SemaphoreScenario;

/// A lab scenario. State already present in the state dir wins over the scenario (it only seeds a fresh lab).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// The node name (default `pve`).
    pub node: String,
    /// Storages of the node.
    pub storage: Vec<ScenarioStorage>,
    /// Linux bridges of the node (default `vmbr0`).
    pub bridges: Vec<String>,
    /// Guests (QEMU VMs) at first start.
    pub vm: Vec<ScenarioVm>,
    /// Volumes that exist on storages, e.g. `local:iso/debian-12.iso`.
    pub volumes: Vec<ScenarioVolume>,
    /// A starting `user.cfg` (PVE's format); `root@pam` always exists.
    pub user_cfg: Option<String>,
    /// A starting `priv/token.cfg` (`user@realm!name <secret>` lines).
    pub token_cfg: Option<String>,
    /// Lab passwords of users of `user_cfg` (user id → password), so they can log in with a ticket.
    pub passwords: std::collections::BTreeMap<String, String>,
    /// The Semaphore simulator's table.
    pub semaphore: SemaphoreScenario,
    /// VMIDs whose guest agent does not answer (agent calls fail with `QEMU guest agent is not running`).
    pub agents_not_answering: Vec<u64>,
    /// Installed package versions that differ from the simulated release's (package → Debian version), e.g. a
    /// PVE 9.1 host on `pve-manager = "9.1.11"` with `libpve-access-control = "9.1.0"`. libpve-access-control
    /// decides the access API's behaviour; pve-manager what `GET /version` reports (and, without an
    /// access-control entry, the access-control version that pve-manager point release requires).
    pub packages: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("node", &self.node)
            .field("storage", &self.storage)
            .field("bridges", &self.bridges)
            .field("vm", &self.vm)
            .field("volumes", &self.volumes)
            .field("user_cfg", &self.user_cfg)
            .field("token_cfg", &self.token_cfg.as_ref().map(|_| "[REDACTED]"))
            .field("passwords", &self.passwords.keys().collect::<Vec<_>>())
            .field("semaphore", &self.semaphore)
            .field("agents_not_answering", &self.agents_not_answering)
            .field("packages", &self.packages)
            .finish()
    }
}

/// A storage of the scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioStorage {
    /// Storage id (`local`).
    pub id: String,
    /// PVE storage type (`dir`, `lvmthin`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Content types (`iso`, `vztmpl`, `backup`, `snippets`, `images`, `rootdir`).
    pub content: Vec<String>,
    /// Size in GiB reported as `total`.
    #[serde(default = "default_storage_gib")]
    pub total_gib: u64,
}

fn default_storage_gib() -> u64 {
    100
}

/// A QEMU guest of the scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioVm {
    /// VMID.
    pub vmid: u64,
    /// Name.
    pub name: String,
    /// A template (cannot be started; clone source).
    #[serde(default)]
    pub template: bool,
    /// `running` or `stopped` (default).
    #[serde(default = "default_status")]
    pub status: String,
    /// Extra config keys (PVE's names and value syntax), merged over the generated defaults.
    #[serde(default)]
    pub config: std::collections::BTreeMap<String, String>,
}

impl ScenarioVm {
    /// A running VM `vmid` named `name` whose guest agent is enabled (`agent: 1`) and answers.
    pub fn running_with_agent(vmid: u64, name: &str) -> ScenarioVm {
        ScenarioVm {
            vmid,
            name: name.to_owned(),
            template: false,
            status: "running".to_owned(),
            config: [("agent".to_owned(), "1".to_owned())].into_iter().collect(),
        }
    }
}

fn default_status() -> String {
    "stopped".to_owned()
}

/// A volume that exists on a storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioVolume {
    /// `storage:content/name`, e.g. `local:iso/debian-12.iso`.
    pub volid: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        let config = [
            ("agent", "1"),
            ("cores", "2"),
            ("memory", "2048"),
            ("ostype", "l26"),
            ("scsihw", "virtio-scsi-pci"),
            ("scsi0", "local-lvm:base-9000-disk-0,size=8G"),
            ("ide2", "local-lvm:vm-9000-cloudinit,media=cdrom"),
            ("net0", "virtio=BC:24:11:00:90:00,bridge=vmbr0"),
            ("boot", "order=scsi0"),
            ("description", "Debian 12 cloud-init template (lab)"),
        ];
        Scenario {
            node: "pve".to_owned(),
            storage: vec![
                ScenarioStorage {
                    id: "local".to_owned(),
                    kind: "dir".to_owned(),
                    content: ["iso", "vztmpl", "backup", "snippets"].map(str::to_owned).to_vec(),
                    total_gib: 100,
                },
                ScenarioStorage {
                    id: "local-lvm".to_owned(),
                    kind: "lvmthin".to_owned(),
                    content: ["images", "rootdir"].map(str::to_owned).to_vec(),
                    total_gib: 400,
                },
            ],
            bridges: vec!["vmbr0".to_owned()],
            vm: vec![ScenarioVm {
                vmid: 9000,
                name: "debian-12-template".to_owned(),
                template: true,
                status: "stopped".to_owned(),
                config: config.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            }],
            volumes: vec![ScenarioVolume { volid: "local:iso/debian-12-netinst.iso".to_owned(), size: 658_505_728 }],
            user_cfg: None,
            token_cfg: None,
            passwords: Default::default(),
            semaphore: SemaphoreScenario::default(),
            agents_not_answering: Vec::new(),
            packages: Default::default(),
        }
    }
}

impl Scenario {
    /// Reads a TOML scenario file; missing keys take the default scenario's values.
    pub fn from_file(path: &Path) -> Result<Scenario, LabError> {
        let text = std::fs::read_to_string(path).map_err(|e| LabError::state(path, e))?;
        Scenario::from_toml(&text).map_err(|e| LabError::Scenario(format!("{}: {e}", path.display())))
    }

    /// Parses a TOML scenario.
    pub fn from_toml(text: &str) -> Result<Scenario, LabError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| LabError::Scenario(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The default scenario with `user_cfg` and `token_cfg` as the starting access state (for replaying
    /// reference cases).
    pub fn with_access(user_cfg: impl Into<String>, token_cfg: impl Into<String>) -> Scenario {
        Scenario { user_cfg: Some(user_cfg.into()), token_cfg: Some(token_cfg.into()), ..Scenario::default() }
    }

    fn validate(&self) -> Result<(), LabError> {
        let node_ok = !self.node.is_empty()
            && self.node.len() <= 63
            && self.node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !node_ok {
            return Err(LabError::Scenario(format!("node name '{}' is not a valid host name", self.node)));
        }
        let mut seen = std::collections::BTreeSet::new();
        for vm in &self.vm {
            if !(100..=999_999_999).contains(&vm.vmid) {
                return Err(LabError::Scenario(format!("vmid {} is outside 100..999999999", vm.vmid)));
            }
            if !seen.insert(vm.vmid) {
                return Err(LabError::Scenario(format!("vmid {} appears twice", vm.vmid)));
            }
            if vm.status != "running" && vm.status != "stopped" {
                return Err(LabError::Scenario(format!("vm {}: status must be running or stopped", vm.vmid)));
            }
        }
        for (package, version) in &self.packages {
            let plausible = !package.is_empty()
                && package.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
            if !plausible {
                return Err(LabError::Scenario(format!("packages: '{package}' is not a Debian package name")));
            }
            if pvetoken_acl::AccessControlVersion::parse_debian(version).is_none() {
                return Err(LabError::Scenario(format!(
                    "packages: {package} = '{version}' is not a Debian version (e.g. \"9.1.0\")"
                )));
            }
        }
        if let Some(vmid) = self.agents_not_answering.iter().find(|id| !seen.contains(*id)) {
            return Err(LabError::Scenario(format!("agents_not_answering: no vm {vmid} in the scenario")));
        }
        for v in &self.volumes {
            let storage = v.volid.split_once(':').map(|(s, _)| s).unwrap_or_default();
            if !self.storage.iter().any(|s| s.id == storage) {
                return Err(LabError::Scenario(format!("volume {}: no storage '{storage}' in the scenario", v.volid)));
            }
        }
        Ok(())
    }
}
