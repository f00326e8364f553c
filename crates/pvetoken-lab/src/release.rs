//! The simulated release as a host runs it: the pve-manager point release `GET /version` reports, the installed
//! packages `GET /nodes/{node}/apt/versions` lists, and the libpve-access-control whose behaviour the access API
//! follows. A scenario's `[packages]` table overrides single packages, as an admin's partial upgrade does.

use std::collections::BTreeMap;

use pvetoken_acl::release::{self, Release};
use pvetoken_acl::{AccessControlVersion, Catalog, PveVersion};

/// The release, as installed.
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    /// pve-manager's version (`GET /version`).
    pub(crate) manager: String,
    /// The libpve-access-control that decides the access API's behaviour.
    pub(crate) access_control: AccessControlVersion,
    /// Package → installed version, for `apt/versions`.
    pub(crate) packages: BTreeMap<String, String>,
}

impl Installed {
    /// `version` as it shipped, with `overrides` applied. Versions are validated by the scenario.
    pub(crate) fn new(version: PveVersion, overrides: &BTreeMap<String, String>) -> Installed {
        let shipped: &Release = release::release(version).unwrap_or_else(release::newest);
        let mut packages: BTreeMap<String, String> = [
            ("proxmox-ve", shipped.proxmox_ve.to_owned()),
            ("pve-manager", shipped.manager.to_owned()),
            ("libpve-access-control", shipped.access_control.to_string()),
            ("qemu-server", shipped.qemu_server.to_owned()),
            ("pve-qemu-kvm", shipped.pve_qemu_kvm.to_owned()),
        ]
        .into_iter()
        .map(|(name, version)| (name.to_owned(), version))
        .collect();
        let manager = overrides.get("pve-manager").cloned().unwrap_or_else(|| shipped.manager.to_owned());
        // A newer pve-manager point release pulls in the access-control it depends on, unless one is named.
        let access_control = match overrides.get("libpve-access-control") {
            Some(pac) => AccessControlVersion::parse_debian(pac).unwrap_or(shipped.access_control),
            None => release::access_control_at_least(&manager)
                .filter(|needed| *needed > shipped.access_control)
                .unwrap_or(shipped.access_control),
        };
        packages.insert("libpve-access-control".to_owned(), access_control.to_string());
        for (name, version) in overrides {
            packages.insert(name.clone(), version.clone());
        }
        Installed { manager, access_control, packages }
    }

    /// The catalog of this installation.
    pub(crate) fn catalog(&self, version: PveVersion) -> Catalog {
        Catalog::for_version(version).with_access_control(self.access_control)
    }

    /// `GET /nodes/{node}/apt/versions`: PVE lists proxmox-ve and pve-manager first, then the rest by name. Each
    /// item carries `Version` (the candidate) and `OldVersion` (what is installed); no upgrade is pending here.
    pub(crate) fn apt_versions(&self) -> serde_json::Value {
        let first = ["proxmox-ve", "pve-manager"];
        let order =
            first.iter().copied().chain(self.packages.keys().map(String::as_str).filter(|n| !first.contains(n)));
        let items: Vec<serde_json::Value> = order
            .filter_map(|name| {
                let version = self.packages.get(name)?;
                let mut item = serde_json::json!({
                    "Package": name,
                    "Title": title(name),
                    "Description": title(name),
                    "Version": version,
                    "OldVersion": version,
                    "CurrentState": "Installed",
                    "Arch": if name == "proxmox-ve" || name == "libpve-access-control" { "all" } else { "amd64" },
                    "Origin": "Proxmox",
                    "Priority": "optional",
                    "Section": "admin",
                });
                if name == "pve-manager" {
                    item["ManagerVersion"] = serde_json::json!(format!("{}/lab", self.manager));
                } else if name == "proxmox-ve" {
                    item["RunningKernel"] = serde_json::json!("6.8.12-lab");
                }
                Some(item)
            })
            .collect();
        serde_json::Value::Array(items)
    }
}

fn title(package: &str) -> &'static str {
    match package {
        "proxmox-ve" => "Proxmox Virtual Environment",
        "pve-manager" => "Proxmox Virtual Environment Management Tools",
        "libpve-access-control" => "Proxmox VE access control library",
        "qemu-server" => "Qemu Server Tools",
        "pve-qemu-kvm" => "Full virtualization on x86 hardware",
        _ => "package",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> PveVersion {
        s.parse().expect("version")
    }

    #[test]
    fn releases_install_the_access_control_they_shipped_and_overrides_win() {
        let none = BTreeMap::new();
        assert_eq!(Installed::new(v("9.1"), &none).access_control.to_string(), "9.0.4");
        assert!(!Installed::new(v("9.1"), &none).catalog(v("9.1")).token_can_regenerate());
        assert!(Installed::new(v("9.2"), &none).catalog(v("9.2")).token_can_regenerate());
        let late = BTreeMap::from([("pve-manager".to_owned(), "9.1.13".to_owned())]);
        let installed = Installed::new(v("9.1"), &late);
        assert_eq!((installed.manager.as_str(), installed.access_control.to_string().as_str()), ("9.1.13", "9.1.1"));
        let partial = BTreeMap::from([
            ("pve-manager".to_owned(), "9.1.11".to_owned()),
            ("libpve-access-control".to_owned(), "9.1.0".to_owned()),
        ]);
        let installed = Installed::new(v("9.1"), &partial);
        assert!(installed.catalog(v("9.1")).token_can_regenerate());
        let list = installed.apt_versions();
        let names: Vec<&str> = list.as_array().expect("list").iter().filter_map(|i| i["Package"].as_str()).collect();
        assert_eq!(&names[..2], ["proxmox-ve", "pve-manager"]);
        let pac = list.as_array().expect("list").iter().find(|i| i["Package"] == "libpve-access-control");
        assert_eq!(pac.expect("listed")["OldVersion"], "9.1.0");
    }
}
