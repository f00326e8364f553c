//! `pvetoken audit` live against the lab: findings provoked through the API, and the live audit (rebuilt from
//! the API) agreeing with the offline audit of the same state.

use serde_json::Value;

use super::audit::{every_finding_cfg, evidence, finding, findings, now, pvetoken, token, write_cfg};
use crate::support::{Api, LabProcess, TempDir};

/// `pvetoken audit` against `lab` as root@pam, JSON report.
fn live_report(lab: &LabProcess, extra: &[&str]) -> Value {
    use pvetoken_api::ExposeSecret;
    let ca = lab.ready.ca_file.to_str().expect("utf-8 path");
    let out = pvetoken()
        .args(["audit", "--url", &lab.ready.pve_url, "--ca-file", ca, "--auth-user", "root@pam"])
        .args(["--output", "json", "--fail-on", "none"])
        .args(extra)
        .env("PVETOKEN_PASSWORD", lab.ready.root_password.expose_secret())
        .output()
        .expect("run pvetoken audit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "live audit failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.log()
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn post(api: &Api, path: &str, form: &[(&str, &str)]) {
    api.post(path, form).unwrap_or_else(|e| panic!("POST {path} {form:?}: {e:?}"));
}

fn put(api: &Api, path: &str, form: &[(&str, &str)]) {
    api.put(path, form).unwrap_or_else(|e| panic!("PUT {path} {form:?}: {e:?}"));
}

fn token_cfg_for(cfg: &str) -> String {
    cfg.lines()
        .filter_map(|l| l.strip_prefix("token:"))
        .filter_map(|rest| rest.split(':').next())
        .enumerate()
        .map(|(i, id)| format!("{id} 00000000-0000-4000-8000-{i:012}\n"))
        .collect()
}

#[test]
fn live_audit_agrees_with_the_offline_audit_of_the_same_state() {
    let cfg = every_finding_cfg(now());
    let lab = LabProcess::start_seeded(
        &["--pve-version", "9.1"],
        &[("user.cfg", &cfg), ("priv/token.cfg", &token_cfg_for(&cfg))],
    );
    let live = live_report(&lab, &["--profile-check"]);
    let dir = TempDir::new("audit-agree");
    let path = write_cfg(dir.path(), &cfg);
    let out = pvetoken()
        .args(["audit", "--user-cfg", path.to_str().expect("utf-8"), "--output", "json", "--fail-on", "none"])
        .args(["--profile-check", "--pve-version", "9.1"])
        .output()
        .expect("run offline audit");
    let offline: Value = serde_json::from_slice(&out.stdout).expect("offline JSON");
    assert_eq!(live["source"]["mode"], "live");
    assert_eq!(live["source"]["pve_version"], "9.1");
    assert_eq!(live["tokens"], offline["tokens"], "per-token summaries differ between live and offline");
    assert_eq!(live["findings"], offline["findings"], "findings differ between live and offline");
    // The state provokes the rules a live server can show.
    for (id, subject) in [
        ("root-token-full", "root@pam!fullroot"),
        ("token-administrator", "admin@pve!godmode"),
        ("token-privsep-off", "ci@pve!shared"),
        ("token-can-escalate", "admin@pve!usermgr"),
        ("token-no-effective-rights", "ci@pve!bare"),
        ("token-rights-narrowed-by-user", "ci@pve!sideonly"),
        ("token-exceeds-profile", "ci@pve!packer"),
        ("token-expired", "ci@pve!stale"),
        ("token-expiring", "ci@pve!soon"),
        ("token-no-expiry", "ci@pve!bare"),
        ("token-owner-disabled", "off@pve!job"),
        ("user-expired", "retired@pve"),
        ("user-expiring", "leaving@pve"),
        ("acl-missing-user", "ghost@pve"),
        ("acl-missing-group", "@phantom"),
    ] {
        finding(&live, id, subject);
    }
}

#[test]
fn findings_provoked_through_the_api_show_up_in_a_live_audit() {
    let lab = LabProcess::start(&["--pve-version", "9.1"]);
    let api = lab.root_api();
    let past = (now() - 86_400).to_string();
    let soon = (now() + 2 * 86_400).to_string();
    post(&api, "/access/users", &[("userid", "ci@pve")]);
    post(&api, "/access/users", &[("userid", "old@pve"), ("expire", &past)]);
    post(&api, "/access/users/root@pam/token/fullroot", &[("privsep", "0")]);
    post(&api, "/access/users/ci@pve/token/shared", &[("privsep", "0")]);
    post(&api, "/access/users/ci@pve/token/bare", &[("privsep", "1"), ("expire", &soon)]);
    post(&api, "/access/users/ci@pve/token/box", &[("privsep", "1")]);
    post(&api, "/access/users/ci@pve/token/god", &[("privsep", "1")]);
    post(&api, "/access/users/ci@pve/token/usermgr", &[("privsep", "1")]);
    post(&api, "/access/users/ci@pve/token/packer", &[("privsep", "1"), ("comment", "pvetoken profile packer")]);
    put(&api, "/access/acl", &[("path", "/vms"), ("roles", "PVEVMAdmin"), ("users", "ci@pve")]);
    put(&api, "/access/acl", &[("path", "/access"), ("roles", "PVEUserAdmin"), ("users", "ci@pve")]);
    put(&api, "/access/acl", &[("path", "/storage"), ("roles", "PVEDatastoreAdmin"), ("tokens", "ci@pve!box")]);
    put(&api, "/access/acl", &[("path", "/access"), ("roles", "PVEUserAdmin"), ("tokens", "ci@pve!usermgr")]);
    put(&api, "/access/acl", &[("path", "/vms"), ("roles", "PVEVMAdmin"), ("tokens", "ci@pve!packer")]);
    put(&api, "/access/acl", &[("path", "/"), ("roles", "Administrator"), ("users", "old@pve")]);
    post(&api, "/access/users/old@pve/token/god", &[("privsep", "0")]);

    let report = live_report(&lab, &["--profile-check"]);
    assert_eq!(report["source"]["mode"], "live");
    assert_eq!(finding(&report, "root-token-full", "root@pam!fullroot")["severity"], "critical");
    let shared = finding(&report, "token-privsep-off", "ci@pve!shared");
    assert!(evidence(shared).contains(&"acl:1:/vms:ci@pve:PVEVMAdmin:".to_owned()), "{shared:#}");
    assert!(
        evidence(finding(&report, "token-administrator", "old@pve!god"))
            .contains(&"acl:1:/:old@pve:Administrator:".to_owned())
    );
    finding(&report, "token-can-escalate", "ci@pve!usermgr");
    finding(&report, "token-can-escalate", "ci@pve!shared");
    let bare = finding(&report, "token-no-effective-rights", "ci@pve!bare");
    assert!(bare["detail"].as_str().expect("detail").contains("No ACL entry names the token"));
    let boxed = finding(&report, "token-no-effective-rights", "ci@pve!box");
    assert!(boxed["detail"].as_str().expect("detail").contains("token side only"), "{boxed:#}");
    finding(&report, "token-exceeds-profile", "ci@pve!packer");
    finding(&report, "token-expiring", "ci@pve!bare");
    finding(&report, "user-expired", "old@pve");
    assert_eq!(token(&report, "old@pve!god")["status"], "owner-expired");
    assert_eq!(token(&report, "ci@pve!packer")["access_summary"], "VM admin on /vms");

    // Deleting the token removes its findings.
    api.delete("/access/users/ci@pve/token/shared").expect("delete token");
    let after = live_report(&lab, &[]);
    assert!(findings(&after, "token-privsep-off", "ci@pve!shared").is_empty());
}

#[test]
fn role_with_vm_monitor_on_a_pve8_lab_is_an_upgrade_trap() {
    let lab = LabProcess::start(&["--pve-version", "8.4"]);
    let api = lab.root_api();
    post(&api, "/access/roles", &[("roleid", "Monitoring"), ("privs", "VM.Audit,VM.Monitor")]);
    let report = live_report(&lab, &[]);
    assert_eq!(report["source"]["pve_version"], "8.4");
    let f = finding(&report, "role-privilege-dropped-on-upgrade", "Monitoring");
    assert!(f["detail"].as_str().expect("detail").contains("VM.Monitor"));
    assert_eq!(f["fix"]["pveum"][0], "pveum role modify Monitoring --privs VM.Audit");
}
