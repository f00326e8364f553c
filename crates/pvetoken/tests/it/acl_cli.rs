//! `pvetoken acl eval|explain|normalize` run as a real binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::support::TempDir;

const USER_CFG: &str = "user:ci@pve:1:0::::::\n\
token:ci@pve!tf:0:1::\n\
token:ci@pve!full:0:0::\n\
role:bad:VM.Audit,VM.Nope:\n\
acl:1:/vms:ci@pve:PVEVMAdmin:\n\
acl:1:/vms:ci@pve!tf:PVEAuditor:\n";

fn write_cfg(dir: &TempDir) -> String {
    let path = dir.path().join("user.cfg");
    std::fs::write(&path, USER_CFG).expect("write user.cfg");
    path.display().to_string()
}

fn pvetoken(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pvetoken");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or("").as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for pvetoken")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn eval_json_prints_privileges_of_a_privsep_token_as_the_intersection_with_propagate_flags() {
    let dir = TempDir::new("acl-cli");
    let cfg = write_cfg(&dir);
    let out = pvetoken(
        &["acl", "eval", "--user-cfg", &cfg, "--subject", "ci@pve!tf", "--path", "/vms/100", "--output", "json"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(value, serde_json::json!({"/vms/100": {"VM.Audit": 1, "VM.GuestAgent.Audit": 1}}));
}

#[test]
fn eval_honours_the_pve_version_catalog() {
    let dir = TempDir::new("acl-cli");
    let cfg = write_cfg(&dir);
    let out = pvetoken(
        &[
            "acl",
            "eval",
            "--user-cfg",
            &cfg,
            "--pve-version",
            "8",
            "--subject",
            "ci@pve!tf",
            "--path",
            "/vms",
            "--output",
            "json",
        ],
        None,
    );
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    // PVE 8 has no VM.GuestAgent.* privileges
    assert_eq!(value, serde_json::json!({"/vms": {"VM.Audit": 1}}));
}

#[test]
fn batch_answers_one_json_line_per_query_in_order() {
    let dir = TempDir::new("acl-cli");
    let cfg = write_cfg(&dir);
    let input = "{\"subject\":\"ci@pve!full\",\"path\":\"/vms/7\"}\n{\"subject\":\"nobody@pve\",\"path\":\"/\"}\n{\"subject\":\"ci@pve!tf\",\"path\":\"/storage\"}\n";
    let out = pvetoken(&["acl", "eval", "--user-cfg", &cfg, "--batch", "-"], Some(input));
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["subject"], "ci@pve!full");
    assert_eq!(lines[0]["privs"]["VM.Allocate"], 1, "a non-privsep token has its owner's privileges");
    assert_eq!(lines[1], serde_json::json!({"subject": "nobody@pve", "path": "/", "privs": {}}));
    assert_eq!(lines[2]["privs"], serde_json::json!({}));
}

#[test]
fn explain_names_the_side_that_lacks_the_privilege() {
    let dir = TempDir::new("acl-cli");
    let cfg = write_cfg(&dir);
    let explain = ["acl", "explain", "--user-cfg", &cfg, "--subject", "ci@pve!tf", "--path", "/vms/100"];
    let out = pvetoken(&[&explain[..], &["--priv", "VM.PowerMgmt", "--output", "json"]].concat(), None);
    assert_eq!(out.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(value["granted"], false);
    assert_eq!(value["verdict"], "missing_on_token_side");
    let text = stdout(&pvetoken(&[&explain[..], &["--priv", "VM.PowerMgmt"]].concat(), None));
    assert!(text.contains("acl:1:/vms:ci@pve:PVEVMAdmin"), "{text}");
}

#[test]
fn normalize_prints_the_canonical_rewrite_and_warns_with_line_numbers() {
    let dir = TempDir::new("acl-cli");
    let cfg = write_cfg(&dir);
    let out = pvetoken(&["acl", "normalize", "--user-cfg", &cfg], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with(
        "user:ci@pve:1:0::::::\ntoken:ci@pve!full:0:0::\ntoken:ci@pve!tf:0:1::\nuser:root@pam:1:0::::::\n"
    ));
    assert!(stdout(&out).contains("role:bad:VM.Audit:\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 4: user config - ignore invalid privilege 'VM.Nope'"), "{stderr}");
}

#[test]
fn unreadable_file_bad_subject_and_bad_path_are_usage_errors() {
    let dir = TempDir::new("acl-cli");
    let cfg = write_cfg(&dir);
    let missing = dir.path().join("missing.cfg").display().to_string();
    for args in [
        vec!["acl", "eval", "--user-cfg", &missing, "--subject", "a@pve", "--path", "/"],
        vec!["acl", "eval", "--user-cfg", &cfg, "--subject", "not-an-id", "--path", "/"],
        vec!["acl", "eval", "--user-cfg", &cfg, "--subject", "a@pve", "--path", "/a b"],
        vec!["acl", "eval", "--user-cfg", &cfg, "--subject", "a@pve", "--path", "/", "--pve-version", "6"],
    ] {
        let out = pvetoken(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error:"), "{args:?}");
    }
    let out =
        pvetoken(&["acl", "eval", "--user-cfg", &cfg, "--batch", "-"], Some("{\"subject\":\"x\",\"path\":\"/\"}\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("batch line 1"));
}
