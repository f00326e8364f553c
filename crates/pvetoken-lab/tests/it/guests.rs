//! Guest endpoints: the packer/ansible flow, tasks, the guest agent and per-release permission checks.

use pvetoken_lab::LabConfig;
use serde_json::Value;

use crate::support::{Api, start};

async fn wait_ok(api: &Api, upid: &Value) {
    let upid = upid.as_str().expect("a UPID");
    let parts: Vec<&str> = upid.split(':').collect();
    assert_eq!(parts.len(), 9, "UPID:node:pid:pstart:starttime:type:id:user: — {upid}");
    let status = api.ok("GET", &format!("/nodes/pve/tasks/{upid}/status"), &[]).await;
    assert_eq!(status["status"], "stopped");
    assert_eq!(status["exitstatus"], "OK", "{status}");
}

/// A user with `roles` on `/` (propagating) and a privilege-sharing token.
async fn user_token(lab: &pvetoken_lab::RunningLab, root: &Api, user: &str, roles: &str) -> Api {
    root.ok("POST", "/access/users", &[("userid", user)]).await;
    root.ok("PUT", "/access/acl", &[("path", "/"), ("roles", roles), ("users", user)]).await;
    let t = root.ok("POST", &format!("/access/users/{user}/token/tk"), &[("privsep", "0")]).await;
    Api::token(lab, &format!("{user}!tk"), t["value"].as_str().expect("secret"))
}

#[tokio::test]
async fn clone_configure_start_shutdown_and_template_like_packer() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let vms = root.ok("GET", "/cluster/resources", &[("type", "vm")]).await;
    let template = vms.as_array().expect("list").iter().find(|v| v["vmid"] == 9000).expect("template 9000").clone();
    assert_eq!(template["template"], 1);
    assert_eq!(root.ok("GET", "/cluster/nextid", &[]).await, "100");

    let upid = root
        .ok(
            "POST",
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "9001"), ("name", "packer-x"), ("full", "1"), ("target", "pve")],
        )
        .await;
    wait_ok(&root, &upid).await;
    let upid = root
        .ok(
            "POST",
            "/nodes/pve/qemu/9001/config",
            &[("cores", "1"), ("memory", "512"), ("delete", "balloon, vcpus, vga")],
        )
        .await;
    wait_ok(&root, &upid).await;
    wait_ok(&root, &root.ok("POST", "/nodes/pve/qemu/9001/status/start", &[]).await).await;
    let ifaces = root.ok("GET", "/nodes/pve/qemu/9001/agent/network-get-interfaces", &[]).await;
    let eth0 = &ifaces["result"][1];
    assert_eq!(eth0["ip-addresses"][0]["ip-address"], "10.0.35.41", "deterministic address of VM 9001: {ifaces}");
    wait_ok(&root, &root.ok("POST", "/nodes/pve/qemu/9001/status/shutdown", &[]).await).await;
    assert_eq!(root.ok("POST", "/nodes/pve/qemu/9001/template", &[]).await, Value::Null);
    let config = root.ok("GET", "/nodes/pve/qemu/9001/config", &[]).await;
    assert_eq!(config["template"], 1);
    assert_eq!(config["name"], "packer-x");
    assert_eq!(config["cores"], 1);
    assert_ne!(config["net0"], template["net0"], "a clone gets its own MAC");
    let again = root.api("POST", "/nodes/pve/qemu/9001/status/start", &[]).await;
    assert_eq!(again.status, 500, "a template cannot start: {again:?}");
}

#[tokio::test]
async fn file_write_needs_guest_agent_file_write_on_9_and_vm_monitor_on_8() {
    for (version, role_ok, role_no) in [("9.1", "PVEVMUser", "PVEAuditor"), ("8.4", "PVEVMAdmin", "PVEVMUser")] {
        let lab = start(LabConfig { pve_version: version.parse().expect("version"), ..LabConfig::default() }).await;
        let root = Api::root(&lab).await;
        wait_ok(&root, &root.ok("POST", "/nodes/pve/qemu/9000/clone", &[("newid", "200"), ("name", "g")]).await).await;
        wait_ok(&root, &root.ok("POST", "/nodes/pve/qemu/200/status/start", &[]).await).await;
        let allowed = user_token(&lab, &root, "writer@pve", role_ok).await;
        let denied = user_token(&lab, &root, "reader@pve", role_no).await;
        let params = [("file", "/etc/pvetoken.env"), ("content", "PVE_TOKEN=abc\n")];
        let refused = denied.api("POST", "/nodes/pve/qemu/200/agent/file-write", &params).await;
        assert_eq!(refused.status, 403, "{version}: {refused:?}");
        let wanted = if version == "9.1" {
            "Permission check failed (/vms/200, VM.GuestAgent.FileWrite|VM.GuestAgent.Unrestricted)\n"
        } else {
            "Permission check failed (/vms/200, VM.Monitor)\n"
        };
        assert_eq!(refused.body["message"], wanted);
        assert_eq!(allowed.api("POST", "/nodes/pve/qemu/200/agent/file-write", &params).await.status, 200);
        assert_eq!(lab.guest_file(200, "/etc/pvetoken.env").as_deref(), Some(&b"PVE_TOKEN=abc\n"[..]));
        let read = allowed.ok("GET", "/nodes/pve/qemu/200/agent/file-read", &[("file", "/etc/pvetoken.env")]).await;
        assert_eq!(read["content"], "PVE_TOKEN=abc\n");
    }
}

#[tokio::test]
async fn file_write_with_encode_0_takes_base64_content() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    wait_ok(&root, &root.ok("POST", "/nodes/pve/qemu/9000/clone", &[("newid", "201")]).await).await;
    wait_ok(&root, &root.ok("POST", "/nodes/pve/qemu/201/status/start", &[]).await).await;
    root.ok(
        "POST",
        "/nodes/pve/qemu/201/agent/file-write",
        &[("file", "/f"), ("content", "aGVsbG8="), ("encode", "0")],
    )
    .await;
    assert_eq!(lab.guest_file(201, "/f").as_deref(), Some(&b"hello"[..]));
}

#[tokio::test]
async fn agent_of_a_stopped_vm_fails_like_pve() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let a = root.api("POST", "/nodes/pve/qemu/9000/agent/ping", &[]).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.body["message"], "VM 9000 is not running\n");
}

#[tokio::test]
async fn listings_filter_instead_of_refusing_and_config_keys_need_their_privileges() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/users", &[("userid", "nobody@pve")]).await;
    let t = root.ok("POST", "/access/users/nobody@pve/token/tk", &[("privsep", "0")]).await;
    let nobody = Api::token(&lab, "nobody@pve!tk", t["value"].as_str().expect("secret"));
    assert_eq!(nobody.ok("GET", "/cluster/resources", &[("type", "vm")]).await, serde_json::json!([]));
    assert_eq!(nobody.ok("GET", "/nodes/pve/qemu", &[]).await, serde_json::json!([]));
    assert_eq!(nobody.api("GET", "/nodes/pve/qemu/9000/config", &[]).await.status, 403);

    root.ok("PUT", "/access/acl", &[("path", "/vms"), ("roles", "PVEVMUser"), ("users", "nobody@pve")]).await;
    let memory = nobody.api("PUT", "/nodes/pve/qemu/9000/config", &[("memory", "4096")]).await;
    assert_eq!(memory.status, 403);
    assert_eq!(memory.body["message"], "Permission check failed (/vms/9000, VM.Config.Memory)\n");
    let clone = nobody.api("POST", "/nodes/pve/qemu/9000/clone", &[("newid", "300")]).await;
    assert_eq!(clone.body["message"], "Permission check failed (/vms/9000, VM.Clone)\n");
}

#[tokio::test]
async fn cloning_needs_sdn_use_on_the_bridge_from_pve_8() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let admin = user_token(&lab, &root, "vmadmin@pve", "PVEVMAdmin").await;
    root.ok("PUT", "/access/acl", &[("path", "/storage"), ("roles", "PVEDatastoreUser"), ("users", "vmadmin@pve")])
        .await;
    let refused = admin.api("POST", "/nodes/pve/qemu/9000/clone", &[("newid", "301")]).await;
    assert_eq!(refused.body["message"], "Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)\n");
    root.ok(
        "PUT",
        "/access/acl",
        &[("path", "/sdn/zones/localnetwork"), ("roles", "PVESDNUser"), ("users", "vmadmin@pve")],
    )
    .await;
    let upid = admin.ok("POST", "/nodes/pve/qemu/9000/clone", &[("newid", "301")]).await;
    // The token owns the task and may poll it without any privilege on the node.
    wait_ok(&admin, &upid).await;
}

#[tokio::test]
async fn storage_index_lists_what_the_caller_may_see_and_read_needs_datastore_allocate() {
    let lab = crate::support::start(pvetoken_lab::LabConfig::default()).await;
    let root = crate::support::Api::root(&lab).await;
    let all = root.ok("GET", "/storage", &[]).await;
    let ids: Vec<&str> = all.as_array().expect("list").iter().filter_map(|s| s["storage"].as_str()).collect();
    assert_eq!(ids, ["local", "local-lvm"]);
    let lvm = root.ok("GET", "/storage/local-lvm", &[]).await;
    assert_eq!(
        (lvm["type"].as_str(), lvm["content"].as_str(), lvm["thinpool"].as_str()),
        (Some("lvmthin"), Some("images,rootdir"), Some("data"))
    );
    let dirs = root.ok("GET", "/storage", &[("type", "dir")]).await;
    assert_eq!(dirs.as_array().expect("list").len(), 1);
    let missing = root.api("GET", "/storage/nope", &[]).await;
    assert_eq!(missing.status, 500, "{missing:?}");

    root.ok("POST", "/access/users", &[("userid", "st@pve")]).await;
    let token = root.ok("POST", "/access/users/st@pve/token/ro", &[("privsep", "0")]).await;
    root.ok("PUT", "/access/acl", &[("path", "/storage/local"), ("users", "st@pve"), ("roles", "PVEDatastoreUser")])
        .await;
    let api = crate::support::Api::token(&lab, "st@pve!ro", token["value"].as_str().expect("secret"));
    let seen = api.ok("GET", "/storage", &[]).await;
    let ids: Vec<&str> = seen.as_array().expect("list").iter().filter_map(|s| s["storage"].as_str()).collect();
    assert_eq!(ids, ["local"], "only storages with Datastore.Audit or AllocateSpace");
    let denied = api.api("GET", "/storage/local", &[]).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.reason, "Permission check failed (/storage/local, Datastore.Allocate)");
}
