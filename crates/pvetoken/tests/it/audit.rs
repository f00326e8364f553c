//! `pvetoken audit --user-cfg`: every finding provoked by a crafted user.cfg, the summaries, the exit code, the
//! text/JSON/HTML reports. Helpers here are shared with `audit_live` and `audit_html`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::TempDir;

/// Epoch seconds now (expiry fixtures are relative to the clock the binary reads).
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// A `pvetoken` command with a clean environment (no server, no colours).
pub fn pvetoken() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pvetoken"));
    for var in ["PVETOKEN_URL", "PVETOKEN_PASSWORD", "PVETOKEN_ADMIN_TOKEN_FILE", "NO_COLOR"] {
        cmd.env_remove(var);
    }
    cmd
}

/// The outcome of one run.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl Run {
    /// Stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `pvetoken <args>`.
pub fn run(args: &[&str]) -> Run {
    let out = pvetoken().args(args).output().expect("run pvetoken");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `text` as `user.cfg` in `dir`.
pub fn write_cfg(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("user.cfg");
    std::fs::write(&path, text).expect("write user.cfg");
    path
}

/// `pvetoken audit --user-cfg <text> --output json --fail-on none <extra>`: the report.
pub fn offline_report(text: &str, extra: &[&str]) -> Value {
    let dir = TempDir::new("audit");
    let path = write_cfg(dir.path(), text);
    let path = path.to_str().expect("utf-8 path");
    let mut args = vec!["audit", "--user-cfg", path, "--output", "json", "--fail-on", "none"];
    args.extend_from_slice(extra);
    let run = run(&args);
    assert_eq!(run.code, 0, "audit failed: {}", run.stderr);
    run.json()
}

/// The findings with rule `id` about `subject`.
pub fn findings<'a>(report: &'a Value, id: &str, subject: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .filter(|f| f["id"] == id && f["subject"] == subject)
        .collect()
}

/// The one finding `id` about `subject` (fails the test when absent).
pub fn finding<'a>(report: &'a Value, id: &str, subject: &str) -> &'a Value {
    let found = findings(report, id, subject);
    assert_eq!(found.len(), 1, "expected one {id} finding about {subject}; findings: {:#}", report["findings"]);
    found[0]
}

/// Evidence lines of a finding.
pub fn evidence(finding: &Value) -> Vec<String> {
    finding["evidence"].as_array().expect("evidence").iter().map(|l| l.as_str().expect("line").to_owned()).collect()
}

/// The token entry of the report.
pub fn token<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("token {id} missing from {:#}", report["tokens"]))
}

/// A configuration that provokes every rule (expiry relative to `now`). Used offline here and seeded into the
/// lab by `audit_live`.
pub fn every_finding_cfg(now: u64) -> String {
    let soon = now + 3 * 86_400;
    let past = now - 10 * 86_400;
    format!(
        "user:root@pam:1:0::::::
token:root@pam!fullroot:0:0::
user:admin@pve:1:0::::::
token:admin@pve!godmode:0:1::
token:admin@pve!usermgr:0:1::
user:ci@pve:1:0::::::
token:ci@pve!shared:0:0:legacy token:
token:ci@pve!packer:0:1:pvetoken profile packer:
token:ci@pve!sideonly:0:1::
token:ci@pve!bare:0:1::
token:ci@pve!stale:{past}:1::
token:ci@pve!soon:{soon}:1::
user:retired@pve:1:{past}::::::
token:retired@pve!old:0:1::
user:leaving@pve:1:{soon}::::::
token:leaving@pve!job:0:1::
user:off@pve:0:0::::::
token:off@pve!job:0:1::

group:ops:admin@pve::

pool:lab::100,101:local:

role:Monitoring:VM.Audit:

acl:1:/:@ops:Administrator:
acl:1:/:admin@pve!godmode:Administrator:
acl:1:/access:admin@pve!usermgr:PVEUserAdmin:
acl:1:/vms:ci@pve:PVEVMAdmin:
acl:1:/vms:ci@pve!packer:PVEVMAdmin:
acl:1:/vms:ci@pve!soon:PVEAuditor:
acl:1:/vms:ci@pve!stale:PVEAuditor:
acl:1:/vms:ci@pve!sideonly:PVEVMUser:
acl:1:/storage:ci@pve!sideonly:PVEDatastoreUser:
acl:1:/nodes:ci@pve:Monitoring:
acl:1:/vms:ghost@pve:PVEAuditor:
acl:1:/storage:@phantom:PVEDatastoreUser:
acl:1:/vms:retired@pve:PVEAuditor:
acl:1:/vms:retired@pve!old:PVEAuditor:
acl:1:/vms:leaving@pve:PVEAuditor:
acl:1:/vms:leaving@pve!job:PVEAuditor:
acl:1:/vms:off@pve:PVEAuditor:
acl:1:/vms:off@pve!job:PVEAuditor:
"
    )
}

/// Lines only a file can hold: Proxmox drops them while parsing (a token that does not exist, a privilege the
/// release does not know), so a live server never shows them.
const FILE_ONLY_LINES: &str =
    "role:Legacy:VM.Audit,VM.Monitor:\nacl:1:/vms:ci@pve!deleted:PVEAuditor:\nacl:1:/nodes:ci@pve:Legacy:\n";

#[test]
fn root_token_without_privsep_is_critical_full_root() {
    let report = offline_report(&every_finding_cfg(now()), &[]);
    let f = finding(&report, "root-token-full", "root@pam!fullroot");
    assert_eq!(f["severity"], "critical");
    assert_eq!(evidence(f), vec!["token:root@pam!fullroot:0:0::"]);
    assert!(f["fix"]["pveum"][0].as_str().expect("cmd").starts_with("pveum user token remove root@pam fullroot"));
    assert_eq!(token(&report, "root@pam!fullroot")["access_summary"], "full root (every privilege on every path)");
}

#[test]
fn token_with_administrator_on_both_sides_is_critical_with_both_acl_lines() {
    let report = offline_report(&every_finding_cfg(now()), &[]);
    let f = finding(&report, "token-administrator", "admin@pve!godmode");
    assert_eq!(f["severity"], "critical");
    let lines = evidence(f);
    assert!(lines.contains(&"acl:1:/:admin@pve!godmode:Administrator:".to_owned()), "{lines:?}");
    assert!(
        lines.contains(&"acl:1:/:@ops:Administrator:".to_owned()),
        "the user side comes through its group: {lines:?}"
    );
    // The fix removes the token's grant, not the user's.
    let pveum: Vec<&str> = f["fix"]["pveum"].as_array().expect("cmds").iter().filter_map(Value::as_str).collect();
    assert_eq!(pveum, vec!["pveum acl delete / --tokens admin@pve!godmode --roles Administrator"]);
    assert_eq!(token(&report, "admin@pve!godmode")["access_summary"], "full administrator on /");
}

#[test]
fn privsep_off_token_has_its_users_rights_and_is_high() {
    let report = offline_report(&every_finding_cfg(now()), &[]);
    let f = finding(&report, "token-privsep-off", "ci@pve!shared");
    assert_eq!(f["severity"], "high");
    let lines = evidence(f);
    assert!(lines.contains(&"acl:1:/vms:ci@pve:PVEVMAdmin:".to_owned()), "{lines:?}");
    assert!(f["fix"]["pveum"][0].as_str().expect("cmd").contains("--privsep 1"));
    assert_eq!(token(&report, "ci@pve!shared")["access_summary"], "VM.Audit on /nodes, VM admin on /vms");
}

#[test]
fn token_holding_user_modify_can_grant_itself_more() {
    let report = offline_report(&every_finding_cfg(now()), &[]);
    let f = finding(&report, "token-can-escalate", "admin@pve!usermgr");
    assert_eq!(f["severity"], "high");
    assert!(f["detail"].as_str().expect("detail").contains("User.Modify on /access"), "{f:#}");
    assert!(evidence(f).contains(&"acl:1:/access:admin@pve!usermgr:PVEUserAdmin:".to_owned()));
    assert!(findings(&report, "token-administrator", "admin@pve!usermgr").is_empty());
}

#[test]
fn privsep_token_with_rights_only_on_its_own_side_has_no_effective_rights() {
    let cfg = "user:pb@pve:1:0::::::\ntoken:pb@pve!box:0:1::\n\nacl:1:/vms:pb@pve!box:PVEVMAdmin:\n";
    let report = offline_report(cfg, &[]);
    let f = finding(&report, "token-no-effective-rights", "pb@pve!box");
    assert!(f["detail"].as_str().expect("detail").contains("token side only"), "{f:#}");
    assert_eq!(f["fix"]["pveum"][0], "pveum acl modify /vms --users pb@pve --roles PVEVMAdmin");
    assert_eq!(token(&report, "pb@pve!box")["access_summary"], "no effective privileges");
    // Granting the user the same role cures it.
    let fixed = offline_report(&format!("{cfg}acl:1:/vms:pb@pve:PVEVMAdmin:\n"), &[]);
    assert!(findings(&fixed, "token-no-effective-rights", "pb@pve!box").is_empty());
    assert_eq!(token(&fixed, "pb@pve!box")["access_summary"], "VM admin on /vms");
}

#[test]
fn privsep_token_without_any_acl_has_no_effective_rights() {
    let report = offline_report(&every_finding_cfg(now()), &[]);
    let f = finding(&report, "token-no-effective-rights", "ci@pve!bare");
    assert!(f["detail"].as_str().expect("detail").contains("No ACL entry names the token"));
}

#[test]
fn token_acls_beyond_the_user_are_reported_as_narrowed() {
    let report = offline_report(&every_finding_cfg(now()), &[]);
    let f = finding(&report, "token-rights-narrowed-by-user", "ci@pve!sideonly");
    let detail = f["detail"].as_str().expect("detail");
    assert!(detail.contains("on /storage: Datastore.AllocateSpace,Datastore.Audit"), "{detail}");
    assert_eq!(evidence(f), vec!["acl:1:/storage:ci@pve!sideonly:PVEDatastoreUser:"]);
    // Its /vms rights are fine (the user has PVEVMAdmin there), so it does have some rights.
    assert!(findings(&report, "token-no-effective-rights", "ci@pve!sideonly").is_empty());
    assert_eq!(token(&report, "ci@pve!sideonly")["access_summary"], "VM user on /vms");
}

#[test]
fn expired_expiring_and_never_expiring_tokens_and_users_are_reported() {
    let report = offline_report(&every_finding_cfg(now()), &[]);
    assert_eq!(finding(&report, "token-expired", "ci@pve!stale")["severity"], "medium");
    assert_eq!(token(&report, "ci@pve!stale")["status"], "expired");
    assert_eq!(finding(&report, "token-expiring", "ci@pve!soon")["severity"], "low");
    assert_eq!(finding(&report, "token-no-expiry", "ci@pve!bare")["severity"], "info");
    assert!(findings(&report, "token-no-expiry", "ci@pve!soon").is_empty());
    let user = finding(&report, "user-expired", "retired@pve");
    assert!(user["detail"].as_str().expect("detail").contains("retired@pve!old"), "{user:#}");
    assert_eq!(token(&report, "retired@pve!old")["status"], "owner-expired");
    finding(&report, "user-expiring", "leaving@pve");
    finding(&report, "token-owner-disabled", "off@pve!job");
    assert_eq!(token(&report, "off@pve!job")["status"], "owner-disabled");
}

#[test]
fn expiring_within_widens_and_narrows_the_window() {
    let now = now();
    let cfg = format!("user:a@pve:1:0::::::\ntoken:a@pve!in20:{}:1::\n", now + 20 * 86_400);
    assert!(findings(&offline_report(&cfg, &[]), "token-expiring", "a@pve!in20").is_empty(), "default is 14 days");
    finding(&offline_report(&cfg, &["--expiring-within", "30d"]), "token-expiring", "a@pve!in20");
    assert_eq!(offline_report(&cfg, &["--expiring-within", "30d"])["options"]["expiring_within_seconds"], 30 * 86_400);
}

#[test]
fn acl_entries_naming_missing_users_groups_and_tokens_are_reported() {
    let cfg = format!("{}{FILE_ONLY_LINES}", every_finding_cfg(now()));
    let report = offline_report(&cfg, &[]);
    assert_eq!(evidence(finding(&report, "acl-missing-user", "ghost@pve")), vec!["acl:1:/vms:ghost@pve:PVEAuditor:"]);
    assert_eq!(
        evidence(finding(&report, "acl-missing-group", "@phantom")),
        vec!["acl:1:/storage:@phantom:PVEDatastoreUser:"]
    );
    let token = finding(&report, "acl-missing-token", "ci@pve!deleted");
    let lines = evidence(token);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].ends_with(": acl:1:/vms:ci@pve!deleted:PVEAuditor:") && lines[0].starts_with("line "),
        "{lines:?}"
    );
}

#[test]
fn role_with_vm_monitor_is_unknown_on_pve9_and_an_upgrade_trap_on_pve8() {
    let cfg = format!("{}{FILE_ONLY_LINES}", every_finding_cfg(now()));
    let on9 = offline_report(&cfg, &[]);
    let f = finding(&on9, "role-unknown-privilege", "Legacy");
    assert!(f["detail"].as_str().expect("detail").contains("VM.Monitor"));
    assert!(evidence(f).iter().any(|l| l.ends_with("role:Legacy:VM.Audit,VM.Monitor:")));
    assert!(evidence(f).contains(&"acl:1:/nodes:ci@pve:Legacy:".to_owned()), "the ACLs relying on it");
    assert_eq!(f["fix"]["pveum"][0], "pveum role modify Legacy --privs VM.Audit,VM.GuestAgent.Audit");
    assert!(findings(&on9, "role-privilege-dropped-on-upgrade", "Legacy").is_empty());

    let on8 = offline_report(&cfg, &["--pve-version", "8.4"]);
    assert!(findings(&on8, "role-unknown-privilege", "Legacy").is_empty(), "8.4 knows VM.Monitor");
    let trap = finding(&on8, "role-privilege-dropped-on-upgrade", "Legacy");
    assert_eq!(trap["severity"], "low");
    assert_eq!(on8["source"]["pve_version"], "8.4");
}

#[test]
fn profile_check_reports_rights_beyond_the_profile_only_when_asked() {
    let report = offline_report(&every_finding_cfg(now()), &["--profile-check"]);
    let f = finding(&report, "token-exceeds-profile", "ci@pve!packer");
    let detail = f["detail"].as_str().expect("detail");
    assert!(detail.contains("on /vms:") && detail.contains("VM.Snapshot.Rollback"), "{detail}");
    assert!(!detail.contains("VM.Clone"), "packer needs VM.Clone: {detail}");
    assert_eq!(token(&report, "ci@pve!packer")["profile"], "packer");
    let plain = offline_report(&every_finding_cfg(now()), &[]);
    assert!(findings(&plain, "token-exceeds-profile", "ci@pve!packer").is_empty());
}

#[test]
fn profile_check_accepts_a_token_holding_exactly_its_profile() {
    // The readonly profile on 9.x: Sys.Audit on / (this path only), VM.Audit + VM.GuestAgent.Audit on /vms,
    // Pool.Audit on /pool.
    let cfg = "user:inv@pve:1:0::::::\ntoken:inv@pve!readonly:0:1::\n\nrole:Token-readonly:Sys.Audit,VM.Audit,VM.GuestAgent.Audit,Pool.Audit:\nrole:R-root:Sys.Audit:\nrole:R-vms:VM.Audit,VM.GuestAgent.Audit:\nrole:R-pool:Pool.Audit:\n\nacl:1:/:inv@pve:Token-readonly:\nacl:0:/:inv@pve!readonly:R-root:\nacl:1:/vms:inv@pve!readonly:R-vms:\nacl:1:/pool:inv@pve!readonly:R-pool:\n";
    let report = offline_report(cfg, &["--profile-check"]);
    assert_eq!(token(&report, "inv@pve!readonly")["profile"], "readonly");
    assert!(findings(&report, "token-exceeds-profile", "inv@pve!readonly").is_empty(), "{:#}", report["findings"]);
    // One privilege more on /vms is reported.
    let wider = cfg.replace("role:R-vms:VM.Audit,", "role:R-vms:VM.Audit,VM.PowerMgmt,");
    let report =
        offline_report(&wider.replace("Token-readonly:Sys", "Token-readonly:VM.PowerMgmt,Sys"), &["--profile-check"]);
    let f = finding(&report, "token-exceeds-profile", "inv@pve!readonly");
    assert!(f["detail"].as_str().expect("detail").contains("on /vms: VM.PowerMgmt"), "{f:#}");
}

#[test]
fn audit_exits_1_at_or_above_fail_on_and_0_below() {
    let dir = TempDir::new("audit-exit");
    let cfg = "user:ci@pve:1:0::::::\ntoken:ci@pve!shared:0:0::\n\nacl:1:/vms:ci@pve:PVEVMUser:\n";
    let path = write_cfg(dir.path(), cfg);
    let path = path.to_str().expect("utf-8");
    let high = run(&["audit", "--user-cfg", path]);
    assert_eq!(high.code, 1, "privsep 0 is high, the default threshold: {}", high.stderr);
    assert!(high.stderr.contains("at or above high"), "{}", high.stderr);
    assert_eq!(run(&["audit", "--user-cfg", path, "--fail-on", "critical"]).code, 0);
    assert_eq!(run(&["audit", "--user-cfg", path, "--fail-on", "none"]).code, 0);
    let clean = write_cfg(
        dir.path(),
        "user:ci@pve:1:0::::::\ntoken:ci@pve!ok:0:1::\n\nacl:1:/vms:ci@pve:PVEVMUser:\nacl:1:/vms:ci@pve!ok:PVEVMUser:\n",
    );
    let clean = run(&["audit", "--user-cfg", clean.to_str().expect("utf-8")]);
    assert_eq!(clean.code, 0, "only an info finding (no expiry): {}", clean.stdout);
    let bad = run(&["audit", "--user-cfg", path, "--fail-on", "urgent"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let missing = run(&["audit", "--user-cfg", "/nonexistent/user.cfg"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("/nonexistent/user.cfg"));
}

#[test]
fn text_report_lists_tokens_then_findings_grouped_by_severity() {
    let dir = TempDir::new("audit-text");
    let path = write_cfg(dir.path(), &every_finding_cfg(now()));
    let out = run(&["audit", "--user-cfg", path.to_str().expect("utf-8"), "--fail-on", "none"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout;
    let pos = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} missing from:\n{text}"));
    assert!(pos("TOKENS") < pos("CRITICAL ("));
    assert!(pos("CRITICAL (") < pos("HIGH (") && pos("HIGH (") < pos("MEDIUM (") && pos("MEDIUM (") < pos("LOW ("));
    assert!(pos("LOW (") < pos("INFO ("));
    assert!(pos("[root-token-full] root@pam!fullroot") < pos("HIGH ("));
    assert!(text.contains("$ pveum user token modify ci@pve shared --privsep 1"));
}

#[test]
fn reports_never_pass_configuration_markup_or_control_characters_through() {
    let cfg = "user:ci@pve:1:0::::::\ntoken:ci@pve!x1:0:0:<script>alert(1)</script>%1B[31m:\n";
    let dir = TempDir::new("audit-escape");
    let path = write_cfg(dir.path(), cfg);
    let path = path.to_str().expect("utf-8");
    let html = run(&["audit", "--user-cfg", path, "--output", "html", "--fail-on", "none"]);
    assert_eq!(html.code, 0, "{}", html.stderr);
    assert!(!html.stdout.contains("<script>alert"), "comment must be escaped");
    assert!(html.stdout.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.stdout.contains("src=\"http") && !html.stdout.contains("href=\"http"), "no external assets");
    let text = run(&["audit", "--user-cfg", path, "--fail-on", "none"]);
    assert!(!text.stdout.contains('\x1b'), "escape sequences from the comment reach the terminal");
}

#[test]
fn json_report_carries_the_schema_and_counts() {
    let report = offline_report(&every_finding_cfg(now()), &[]);
    assert_eq!(report["schema"], "pvetoken.audit/1");
    assert_eq!(report["source"]["mode"], "offline");
    let list = report["findings"].as_array().expect("findings");
    for severity in ["critical", "high", "medium", "low", "info"] {
        let n = list.iter().filter(|f| f["severity"] == severity).count();
        assert_eq!(report["counts"][severity], n, "{severity}");
    }
    let order = ["critical", "high", "medium", "low", "info"];
    let ranks: Vec<usize> =
        list.iter().map(|f| order.iter().position(|s| f["severity"] == *s).expect("known severity")).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "findings sorted by severity");
}
