//! What doctor knows about privileges: what each notable one allows, on which PVE releases it exists (from the
//! permission engine's catalogs), which consumer needs it and why (from the built-in profiles), and the fix
//! commands for a missing one.

use pvetoken_acl::{Catalog, PveVersion};

use pvetoken_lifecycle::profiles;

/// The releases whose catalogs doctor consults to say where a privilege exists.
const RELEASES: [PveVersion; 5] =
    [PveVersion::V7_4, PveVersion::V8_4, PveVersion::V9_0, PveVersion::V9_1, PveVersion::V9_2];

/// What a notable privilege allows, and the version story behind it. Privileges not listed get the catalogs'
/// answer only.
const NOTES: &[(&str, &str)] = &[
    (
        "VM.GuestAgent.Audit",
        "read-only QEMU guest-agent calls (network-get-interfaces, get-osinfo, get-fsinfo, ...): this is how Packer \
         and Terraform learn a VM's IP address. PVE 9's privilege: on PVE 8 the same calls needed VM.Monitor",
    ),
    (
        "VM.GuestAgent.Unrestricted",
        "every guest-agent command, including exec, file-read and file-write (PVE 9's privilege; on PVE 8: \
         VM.Monitor). Any check asking for a narrower VM.GuestAgent.* privilege also accepts this one",
    ),
    (
        "VM.GuestAgent.FileWrite",
        "guest-agent file-write (PVE 9's privilege; on PVE 8: VM.Monitor); `pvetoken deliver` uses it",
    ),
    ("VM.GuestAgent.FileRead", "guest-agent file-read (PVE 9's privilege; on PVE 8: VM.Monitor)"),
    (
        "VM.GuestAgent.FileSystemMgmt",
        "guest-agent fsfreeze/thaw/fstrim, e.g. for consistent snapshots (PVE 9's privilege; on PVE 8: VM.Monitor)",
    ),
    (
        "VM.Monitor",
        "the QEMU monitor and every guest-agent call on PVE 8 and earlier. PVE 9.0 removed it: a role naming it is \
         refused there (`invalid privilege 'VM.Monitor'`); use VM.GuestAgent.* for agent calls and Sys.Audit / \
         Sys.Modify for the monitor",
    ),
    (
        "SDN.Use",
        "attach a network device to a bridge or VNet: needed on /sdn/zones/<zone>/<bridge> (localnetwork for plain \
         Linux bridges) to create or clone a VM with a NIC",
    ),
    ("Sys.Audit", "read node and cluster status; on PVE 9 also the read-only QEMU monitor"),
    ("Sys.Modify", "change node settings; on PVE 9 also the read-write QEMU monitor"),
    ("Datastore.AllocateSpace", "allocate disk space on a storage (create or clone a VM's disks)"),
    ("Datastore.AllocateTemplate", "upload ISO images and templates (Packer's iso_file upload, cd_files)"),
    ("Datastore.Audit", "see storages and their content"),
    ("VM.Allocate", "create and remove VMs"),
    ("VM.Clone", "clone a VM or template (on the source VM)"),
    ("VM.Audit", "see VMs and their configuration"),
    ("VM.PowerMgmt", "start, stop, shut down VMs (also guest-agent shutdown/suspend)"),
    ("VM.Config.Cloudinit", "change a VM's cloud-init settings"),
    ("VM.Config.Disk", "add, resize and move a VM's disks"),
    ("VM.Config.Network", "add or change a VM's network devices"),
    ("VM.Config.Options", "change a VM's general options (name, onboot, agent, ...)"),
    ("Pool.Allocate", "create resource pools"),
    ("Pool.Audit", "see resource pools"),
    ("User.Modify", "create and change users, tokens and ACLs"),
];

/// What `privilege` allows, where it exists, and which consumers need it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PrivilegeFacts {
    /// The privilege as named.
    pub name: String,
    /// What it allows (empty when doctor has no note).
    pub allows: String,
    /// The releases that know it, e.g. `["9.0", "9.1"]`.
    pub known_on: Vec<String>,
    /// The releases that refuse it as unknown.
    pub unknown_on: Vec<String>,
    /// `profile: reason` for each built-in profile that needs it.
    pub needed_by: Vec<String>,
}

impl PrivilegeFacts {
    /// One sentence for people.
    pub fn sentence(&self) -> String {
        let mut text = self.name.clone();
        if !self.allows.is_empty() {
            text.push_str(&format!(": {}", self.allows));
        }
        if self.known_on.is_empty() {
            text.push_str(" (not a privilege of any PVE release from 7.4 to 9.1: check the spelling)");
        } else if !self.unknown_on.is_empty() {
            text.push_str(&format!(
                " (exists on PVE {}; unknown on PVE {})",
                self.known_on.join(", "),
                self.unknown_on.join(", ")
            ));
        }
        text
    }
}

/// Looks a privilege up.
pub fn facts(privilege: &str) -> PrivilegeFacts {
    let allows = NOTES.iter().find(|(name, _)| *name == privilege).map(|(_, note)| (*note).to_owned());
    let mut known_on = Vec::new();
    let mut unknown_on = Vec::new();
    for release in RELEASES {
        if Catalog::for_version(release).privilege(privilege).is_ok() {
            known_on.push(release.to_string());
        } else {
            unknown_on.push(release.to_string());
        }
    }
    PrivilegeFacts {
        name: privilege.to_owned(),
        allows: allows.unwrap_or_default(),
        known_on,
        unknown_on,
        needed_by: needed_by(privilege),
    }
}

/// `profile: reason` for each built-in profile that needs `privilege` on some release.
pub fn needed_by(privilege: &str) -> Vec<String> {
    let mut out = Vec::new();
    for name in profiles::builtin_names() {
        let Ok(profile) = profiles::load(name) else { continue };
        let reason = profile
            .grants
            .iter()
            .flat_map(|grant| grant.privileges.iter())
            .find(|need| need.name == privilege)
            .map(|need| need.reason.clone());
        if let Some(reason) = reason {
            out.push(format!("{name}: {reason}"));
        }
    }
    out
}

/// What the consumer will see when `privilege` is missing, when doctor knows it (the 403 it predicts).
pub fn predicted_failure(privilege: &str, path: &str) -> Option<String> {
    let vm_path = if path == "/vms" || path == "/" { "/vms/VMID".to_owned() } else { path.to_owned() };
    match privilege {
        "VM.GuestAgent.Audit" => Some(format!(
            "`403 Permission check failed ({vm_path}, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)` on every \
             guest-agent read; Packer shows it as an SSH timeout (it never learns the VM's IP) and Terraform bpg \
             waits for agent IPs until its timeout"
        )),
        "VM.Monitor" => Some(format!(
            "`403 Permission check failed ({vm_path}, VM.Monitor)` on guest-agent calls (PVE 8): Packer times out \
             waiting for SSH"
        )),
        "SDN.Use" => Some(format!("`403 Permission check failed ({path}, SDN.Use)` when a VM gets a network device")),
        "Datastore.AllocateTemplate" => Some(format!(
            "`403 Permission check failed ({path}, Datastore.AllocateTemplate)` on ISO upload (Packer iso_file / \
             cd_files)"
        )),
        _ => None,
    }
}

/// The fix commands for a privilege missing on a path: extend the role, grant it on the path to the user and the
/// token, then the pvetoken command that converges everything.
pub fn privilege_fix(privilege: &str, path: &str, role: &str, token_id: Option<&str>, profile: &str) -> Vec<String> {
    let (user, token) = match token_id.and_then(|id| id.rsplit_once('!')) {
        Some((user, name)) => (user.to_owned(), format!("{user}!{name}")),
        None => ("USER@REALM".to_owned(), "USER@REALM!TOKEN".to_owned()),
    };
    let token_flags = match token_id.and_then(|id| id.rsplit_once('!')) {
        Some((_, name)) => format!(" --user {user} --token-name {name}"),
        None => String::new(),
    };
    vec![
        format!("pveum role modify {role} --append 1 --privs {privilege}"),
        format!("pveum acl modify {path} --users {user} --tokens '{token}' --roles {role}"),
        format!("pvetoken create --profile {profile}{token_flags}   (converges role and ACLs for this PVE release)"),
        format!("pvetoken verify --profile {profile}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::facts;

    #[test]
    fn guest_agent_audit_is_pve_9s_and_vm_monitor_is_pve_8s() {
        let audit = facts("VM.GuestAgent.Audit");
        assert_eq!(audit.known_on, ["9.0", "9.1", "9.2"]);
        assert!(audit.unknown_on.contains(&"8.4".to_owned()));
        let monitor = facts("VM.Monitor");
        assert!(monitor.known_on.contains(&"8.4".to_owned()));
        assert!(monitor.unknown_on.contains(&"9.0".to_owned()));
        assert!(audit.needed_by.iter().any(|need| need.starts_with("packer:")));
    }

    #[test]
    fn a_misspelt_privilege_is_known_nowhere() {
        assert!(facts("VM.GuestAgent.Audt").sentence().contains("check the spelling"));
    }
}
