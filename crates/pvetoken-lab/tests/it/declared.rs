//! The permission check PVE makes before every handler, run from the endpoint catalog's declaration
//! (`PVE::RPCEnvironment::check_api2_permissions`): what only that order and those declarations explain.

use pvetoken_lab::{LabConfig, RunningLab};

use crate::support::{Api, start};

/// A user without any privilege, logged in.
async fn nobody(lab: &RunningLab) -> Api {
    let root = Api::root(lab).await;
    root.ok("POST", "/access/users", &[("userid", "nobody@pve"), ("password", "lab-password-1")]).await;
    Api::login(lab, "nobody@pve", "lab-password-1").await
}

#[tokio::test]
async fn the_declared_check_comes_before_the_handler_looks_at_the_vm_or_the_parameters() {
    let lab = start(LabConfig::default()).await;
    let node = lab.ready().node.clone();
    let api = nobody(&lab).await;
    // A VM that does not exist: PVE refuses for want of VM.Audit before it reads any configuration.
    let missing = api.api("GET", &format!("/nodes/{node}/qemu/4242/config"), &[]).await;
    assert_eq!((missing.status, missing.reason.as_str()), (403, "Permission check failed (/vms/4242, VM.Audit)"));
    // A bad parameter of a refused call: the 403 first (PVE verifies the parameters inside the handler).
    let bad = api.api("POST", &format!("/nodes/{node}/qemu/9000/status/start"), &[("timeout", "soon")]).await;
    assert_eq!((bad.status, bad.reason.as_str()), (403, "Permission check failed (/vms/9000, VM.PowerMgmt)"));
    // An `or` fails bare: a token list of someone else.
    let other = api.api("GET", "/access/users/root@pam/token", &[]).await;
    assert_eq!((other.status, other.reason.as_str()), (403, "Permission check failed"));
}

#[tokio::test]
async fn user_all_endpoints_answer_anyone_and_perm_modify_without_a_path_leaves_it_to_the_parameters() {
    let lab = start(LabConfig::default()).await;
    let node = lab.ready().node.clone();
    let api = nobody(&lab).await;
    // qemu-server's VM directory index is `user => 'all'`: no VM.Audit needed.
    let index = api.api("GET", &format!("/nodes/{node}/qemu/9000"), &[]).await;
    assert_eq!(index.status, 200, "{index:?}");
    assert!(index.body["data"].as_array().is_some_and(|subdirs| subdirs.iter().any(|s| s["subdir"] == "config")));
    // `perm-modify {path}` without a path: normalize_path gives undef and the check returns 0 without raising;
    // the parameter check answers.
    let no_path = api.api("PUT", "/access/acl", &[("roles", "PVEAuditor"), ("users", "nobody@pve")]).await;
    assert_eq!(no_path.status, 400, "{no_path:?}");
    let with_path =
        api.api("PUT", "/access/acl", &[("path", "/"), ("roles", "PVEAuditor"), ("users", "nobody@pve")]).await;
    assert_eq!((with_path.status, with_path.reason.as_str()), (403, "Permission check failed (/, Permissions.Modify)"));
}

#[tokio::test]
async fn directory_indexes_list_what_the_lab_answers() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let subdirs = |value: &serde_json::Value, key: &str| -> Vec<String> {
        value.as_array().expect("index").iter().filter_map(|e| e[key].as_str().map(str::to_owned)).collect()
    };
    let top = subdirs(&root.ok("GET", "/", &[]).await, "subdir");
    for dir in ["version", "access", "cluster", "storage", "pools", "nodes"] {
        assert!(top.contains(&dir.to_owned()), "{top:?}");
    }
    let node = lab.ready().node.clone();
    let agent = subdirs(&root.ok("GET", &format!("/nodes/{node}/qemu/9000/agent"), &[]).await, "name");
    for command in ["ping", "exec", "exec-status", "file-read", "file-write", "network-get-interfaces"] {
        assert!(agent.contains(&command.to_owned()), "{agent:?}");
    }
    // pve-access-control's index, every entry of which the lab answers (password by PUT only).
    let access = subdirs(&root.ok("GET", "/access", &[]).await, "subdir");
    for dir in ["users", "groups", "roles", "acl", "domains", "ticket", "password", "permissions"] {
        assert!(access.contains(&dir.to_owned()), "{access:?}");
    }
}
