//! Lab control: request log without secrets, faults, reset, persistence across restarts.

use pvetoken_lab::{FaultSpec, LabConfig};

use crate::support::{Api, start};

#[tokio::test]
async fn the_request_log_names_callers_but_never_holds_secrets() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let created = root.ok("POST", "/access/users/root@pam/token/ci", &[("privsep", "0")]).await;
    let secret = created["value"].as_str().expect("secret").to_owned();
    let token = Api::token(&lab, "root@pam!ci", &secret);
    token.ok("GET", "/access/permissions", &[("path", "/vms")]).await;
    let log = lab.request_log();
    let last = log.last().expect("logged");
    assert_eq!(last.authid.as_deref(), Some("root@pam!ci"));
    assert_eq!(last.path, "/api2/json/access/permissions");
    assert_eq!(last.query_keys, ["path"]);
    let text = serde_json::to_string(&log).expect("json");
    assert!(!text.contains(&secret), "token secret in the request log");
    assert!(!text.contains(&lab.ready().root_password), "root password in the request log");
    // Over HTTP too, for the lab's root only.
    let over_http = root.call("GET", "/_lab/requests", &[]).await;
    assert_eq!(over_http.status, 200);
    assert!(!over_http.raw.contains(&secret));
    assert_eq!(token.call("GET", "/_lab/requests", &[]).await.status, 401);
}

#[tokio::test]
async fn faults_fail_the_next_matching_requests_then_stop() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    lab.inject_fault(
        FaultSpec::on("POST", "/nodes/*/qemu/*/clone").times(2).answer(500, "clone failed: storage is gone"),
    );
    for _ in 0..2 {
        let a = root.api("POST", "/nodes/pve/qemu/9000/clone", &[("newid", "500")]).await;
        assert_eq!((a.status, a.body["message"].as_str()), (500, Some("clone failed: storage is gone\n")));
    }
    assert_eq!(root.api("POST", "/nodes/pve/qemu/9000/clone", &[("newid", "500")]).await.status, 200);
    assert_eq!(root.api("GET", "/version", &[]).await.status, 200, "other paths are not affected");
}

#[tokio::test]
async fn a_fault_after_n_lets_the_first_n_matching_requests_through() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    lab.inject_fault(FaultSpec::on("POST", "/nodes/*/qemu/*/clone").after(2).answer(500, "third clone fails"));
    for newid in ["500", "501"] {
        assert_eq!(root.api("POST", "/nodes/pve/qemu/9000/clone", &[("newid", newid)]).await.status, 200, "{newid}");
    }
    assert_eq!(root.api("GET", "/version", &[]).await.status, 200, "other paths do not count");
    let third = root.api("POST", "/nodes/pve/qemu/9000/clone", &[("newid", "502")]).await;
    assert_eq!((third.status, third.body["message"].as_str()), (500, Some("third clone fails\n")));
    assert_eq!(root.api("POST", "/nodes/pve/qemu/9000/clone", &[("newid", "503")]).await.status, 200);
}

#[tokio::test]
async fn a_drop_fault_closes_the_connection_without_an_answer() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let body = serde_json::json!({"method": "GET", "path": "/version", "drop_connection": true});
    let mut headers = root.auth_headers("POST");
    headers.push(("content-type".into(), "application/json".into()));
    let set = root.http.send("POST", "/_lab/faults", &headers, body.to_string().into_bytes()).await.expect("send");
    assert_eq!(set.status, 200, "{set:?}");
    let dropped = root.http.send("GET", "/api2/json/version", &root.auth_headers("GET"), Vec::new()).await;
    assert!(dropped.is_err(), "the connection should have been dropped: {dropped:?}");
    assert_eq!(root.api("GET", "/version", &[]).await.status, 200);
}

#[tokio::test]
async fn state_survives_a_restart_in_pve_file_formats_and_reset_restores_the_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LabConfig { state_dir: Some(dir.path().join("state")), ..LabConfig::default() };
    let secret;
    {
        let lab = start(config.clone()).await;
        let root = Api::root(&lab).await;
        root.ok("POST", "/access/users", &[("userid", "keep@pve"), ("password", "keep-password")]).await;
        let t = root.ok("POST", "/access/users/keep@pve/token/ci", &[("privsep", "0")]).await;
        secret = t["value"].as_str().expect("secret").to_owned();
        root.ok("POST", "/nodes/pve/qemu/9000/clone", &[("newid", "123")]).await;
        lab.shutdown().await;
    }
    let state = dir.path().join("state");
    let user_cfg = std::fs::read_to_string(state.join("user.cfg")).expect("user.cfg");
    assert!(user_cfg.contains("user:keep@pve:1:0:") && user_cfg.contains("token:keep@pve!ci:0:0::"), "{user_cfg}");
    let token_cfg = std::fs::read_to_string(state.join("priv/token.cfg")).expect("token.cfg");
    assert_eq!(token_cfg, format!("keep@pve!ci {secret}\n"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(state.join("priv/token.cfg")).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let lab = start(config).await;
    let token = Api::token(&lab, "keep@pve!ci", &secret);
    assert_eq!(token.api("GET", "/version", &[]).await.status, 200, "the token works after a restart");
    Api::login(&lab, "keep@pve", "keep-password").await;
    let root = Api::root(&lab).await;
    assert_eq!(root.api("GET", "/nodes/pve/qemu/123/config", &[]).await.status, 200, "guests survive too");

    assert_eq!(root.call("POST", "/_lab/reset", &[]).await.status, 200);
    assert_eq!(token.api("GET", "/version", &[]).await.status, 401, "reset forgets the token");
    assert_eq!(root.api("GET", "/nodes/pve/qemu/123/config", &[]).await.status, 500);
}
