//! Releases as they shipped: GET /version, GET /nodes/{node}/apt/versions, and the access-control behaviour that
//! follows the installed libpve-access-control (token regenerate arrived in 9.1.0, after PVE 9.1.0 - 9.1.9).

use pvetoken_acl::PveVersion;
use pvetoken_lab::{LabConfig, Scenario};

use crate::support::{Api, start};

async fn lab_of(version: &str, packages: &[(&str, &str)]) -> pvetoken_lab::RunningLab {
    let scenario = Scenario {
        packages: packages.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..Scenario::default()
    };
    start(LabConfig { pve_version: version.parse::<PveVersion>().expect("release"), scenario, ..LabConfig::default() })
        .await
}

fn package<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array().expect("list").iter().find(|p| p["Package"] == name).unwrap_or_else(|| panic!("{name} listed"))
}

/// (release, pve-manager point release, libpve-access-control, regenerate accepted)
const SHIPPED: &[(&str, &str, &str, bool)] = &[
    ("7.4", "7.4-4", "7.4-3", false),
    ("8.4", "8.4.1", "8.2.2", false),
    ("9.0", "9.0.3", "9.0.3", false),
    ("9.1", "9.1.1", "9.0.4", false),
    ("9.2", "9.2.0", "9.1.1", true),
];

#[tokio::test]
async fn each_release_reports_its_point_release_its_packages_and_regenerates_only_with_access_control_9_1() {
    for &(release, manager, access_control, regenerates) in SHIPPED {
        let lab = lab_of(release, &[]).await;
        let root = Api::root(&lab).await;
        let version = root.ok("GET", "/version", &[]).await;
        assert_eq!((version["release"].as_str(), version["version"].as_str()), (Some(release), Some(manager)));
        let list = root.ok("GET", "/nodes/pve/apt/versions", &[]).await;
        let names: Vec<&str> = list.as_array().expect("list").iter().filter_map(|p| p["Package"].as_str()).collect();
        assert_eq!(&names[..2], ["proxmox-ve", "pve-manager"], "{release}: PVE lists these first");
        for name in ["qemu-server", "pve-qemu-kvm", "libpve-access-control"] {
            assert!(names.contains(&name), "{release}: {name} listed");
        }
        assert_eq!(package(&list, "libpve-access-control")["OldVersion"], access_control, "{release}");
        assert_eq!(package(&list, "pve-manager")["Version"], manager, "{release}");

        root.ok("POST", "/access/users", &[("userid", "ci@pve")]).await;
        root.ok("POST", "/access/users/ci@pve/token/rot", &[]).await;
        let answer = root.api("PUT", "/access/users/ci@pve/token/rot", &[("regenerate", "1")]).await;
        if regenerates {
            assert_eq!(answer.status, 200, "{release}: {answer:?}");
            assert_eq!(answer.body["data"]["full-tokenid"], "ci@pve!rot");
            assert!(answer.body["data"]["value"].as_str().is_some_and(|v| v.len() == 36));
        } else {
            // What libpve-access-control before 9.1.0 answers: the parameter is not in its schema.
            assert_eq!(answer.status, 400, "{release}: {answer:?}");
            assert_eq!(answer.reason, "Parameter verification failed.");
            assert_eq!(
                answer.body["errors"]["regenerate"],
                "property is not defined in schema and the schema does not allow additional properties"
            );
        }
    }
}

#[tokio::test]
async fn a_9_1_host_with_an_upgraded_access_control_regenerates_and_a_late_9_1_pulls_it_in() {
    let partial = lab_of("9.1", &[("pve-manager", "9.1.11"), ("libpve-access-control", "9.1.0")]).await;
    let root = Api::root(&partial).await;
    assert_eq!(root.ok("GET", "/version", &[]).await["version"], "9.1.11");
    let list = root.ok("GET", "/nodes/pve/apt/versions", &[]).await;
    assert_eq!(package(&list, "libpve-access-control")["OldVersion"], "9.1.0");
    root.ok("POST", "/access/users", &[("userid", "ci@pve")]).await;
    root.ok("POST", "/access/users/ci@pve/token/rot", &[]).await;
    root.ok("PUT", "/access/users/ci@pve/token/rot", &[("regenerate", "1")]).await;

    // pve-manager 9.1.13 depends on libpve-access-control >= 9.1.1 (debian/control).
    let late = lab_of("9.1", &[("pve-manager", "9.1.13")]).await;
    let list = Api::root(&late).await.ok("GET", "/nodes/pve/apt/versions", &[]).await;
    assert_eq!(package(&list, "libpve-access-control")["OldVersion"], "9.1.1");
}

#[tokio::test]
async fn apt_versions_needs_sys_audit_on_the_node() {
    let lab = lab_of("9.2", &[]).await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/users", &[("userid", "ci@pve")]).await;
    let token = root.ok("POST", "/access/users/ci@pve/token/t1", &[("privsep", "0")]).await;
    let secret = token["value"].as_str().expect("secret").to_owned();
    let api = Api::token(&lab, "ci@pve!t1", &secret);
    let denied = api.api("GET", "/nodes/pve/apt/versions", &[]).await;
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(denied.reason, "Permission check failed (/nodes/pve, Sys.Audit)");
    root.ok("PUT", "/access/acl", &[("path", "/nodes/pve"), ("users", "ci@pve"), ("roles", "PVEAuditor")]).await;
    assert!(api.ok("GET", "/nodes/pve/apt/versions", &[]).await.as_array().is_some_and(|l| l.len() >= 5));
}
