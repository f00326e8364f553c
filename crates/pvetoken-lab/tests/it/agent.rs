//! The guest agent's exec and files: `agent/exec` + `exec-status` run touch/chmod/chown/stat/mkdir on the lab's
//! file and directory model with qemu-guest-agent's rules (a new file-write file is 0666 root:root, an existing one
//! keeps its mode, a missing directory fails the open), PVE's privileges per release, a silent agent, corrupted
//! read-backs, and `/_lab/reset` of Semaphore.

use pvetoken_lab::{LabConfig, Scenario, ScenarioVm};
use serde_json::{Value, json};

use crate::support::{Api, semaphore_client, start};

const VM: u64 = 100;

fn running_vm(vmid: u64) -> ScenarioVm {
    ScenarioVm::running_with_agent(vmid, &format!("guest-{vmid}"))
}

fn config(version: &str) -> LabConfig {
    let mut scenario = Scenario::default();
    scenario.vm.push(running_vm(VM));
    LabConfig { pve_version: version.parse().expect("version"), scenario, ..LabConfig::default() }
}

fn path(tail: &str) -> String {
    format!("/nodes/pve/qemu/{VM}/agent/{tail}")
}

/// Runs `command` through `agent/exec` (one `command` key per part) and returns its `exec-status`.
async fn run(api: &Api, command: &[&str]) -> Value {
    let form: Vec<(&str, &str)> = command.iter().map(|part| ("command", *part)).collect();
    let started = api.ok("POST", &path("exec"), &form).await;
    let pid = started["pid"].as_u64().expect("exec answers a pid").to_string();
    api.ok("GET", &path("exec-status"), &[("pid", &pid)]).await
}

#[tokio::test]
async fn chmod_before_file_write_keeps_the_secret_file_0600_while_a_new_file_write_file_is_0666() {
    let lab = start(config("9.1")).await;
    let root = Api::root(&lab).await;
    let file = "/root/.proxmox-api-token";
    for command in [&["touch", "--", file][..], &["chmod", "600", "--", file], &["chown", "--", "root:root", file]] {
        let status = run(&root, command).await;
        assert_eq!((status["exited"].as_u64(), status["exitcode"].as_i64()), (Some(1), Some(0)), "{command:?}");
    }
    root.ok("POST", &path("file-write"), &[("file", file), ("content", "PVE_TOKEN=x\n")]).await;
    let info = lab.guest_file_info(VM, file).expect("the file exists");
    assert_eq!((info.mode, info.owner.as_str(), info.content.as_slice()), (0o600, "root", &b"PVE_TOKEN=x\n"[..]));
    let stat = run(&root, &["stat", "-c", "%a %U:%G", "--", file]).await;
    assert_eq!(stat["out-data"], "600 root:root\n", "{stat}");

    root.ok("POST", &path("file-write"), &[("file", "/tmp/new"), ("content", "x")]).await;
    let new = lab.guest_file_info(VM, "/tmp/new").expect("file-write creates the file");
    assert_eq!((new.mode, new.owner.as_str(), new.group.as_str()), (0o666, "root", "root"), "qemu-ga's new-file mode");

    // The same model over HTTP.
    let listed = root.call("GET", "/_lab/guest-files", &[("vmid", "100")]).await.body["data"].clone();
    assert_eq!(listed[file]["mode"], "0600", "{listed}");
    assert_eq!(listed["/tmp/new"]["mode"], "0666", "{listed}");
    assert_eq!(listed["/tmp/new"]["owner"], "root", "{listed}");
}

#[tokio::test]
async fn failing_guest_commands_report_exit_codes_and_stderr_and_unknown_programs_are_agent_errors() {
    let lab = start(config("9.1")).await;
    let root = Api::root(&lab).await;
    let missing = run(&root, &["chmod", "600", "--", "/no/such"]).await;
    assert_eq!(missing["exitcode"], 1);
    assert!(missing["err-data"].as_str().is_some_and(|e| e.contains("No such file or directory")), "{missing}");
    run(&root, &["touch", "/f"]).await;
    let user = run(&root, &["chown", "--", "nosuchuser:root", "/f"]).await;
    assert_eq!(
        (user["exitcode"].as_i64(), user["err-data"].as_str()),
        (Some(1), Some("chown: invalid user: 'nosuchuser:root'\n"))
    );
    assert_eq!(lab.guest_file_info(VM, "/f").expect("touched").owner, "root", "a failed chown changes nothing");

    let unknown = root.api("POST", &path("exec"), &[("command", "frobnicate")]).await;
    assert_eq!(unknown.status, 500);
    assert!(
        unknown.body["message"].as_str().is_some_and(|m| m.starts_with("Agent error: Failed to execute child process")),
        "{unknown:?}"
    );

    // qemu-guest-agent forgets a process once exec-status reported its exit.
    let started = root.ok("POST", &path("exec"), &[("command", "true")]).await;
    let pid = started["pid"].to_string();
    assert_eq!(root.ok("GET", &path("exec-status"), &[("pid", &pid)]).await["exitcode"], 0);
    let again = root.api("GET", &path("exec-status"), &[("pid", &pid)]).await;
    assert_eq!((again.status, again.body["message"].as_str()), (500, Some("Agent error: Invalid parameter 'pid'\n")));
    let no_command = root.api("POST", &path("exec"), &[]).await;
    assert_eq!(no_command.status, 400);
    assert_eq!(no_command.body["errors"]["command"], "property is missing and it is not optional");
}

#[tokio::test]
async fn exec_needs_guest_agent_unrestricted_on_9_and_vm_monitor_on_8() {
    for (version, allowed_privs, denied_privs, missing) in [
        (
            "9.1",
            "VM.GuestAgent.Unrestricted",
            "VM.GuestAgent.FileWrite,VM.GuestAgent.FileRead,VM.GuestAgent.Audit",
            "VM.GuestAgent.Unrestricted",
        ),
        ("8.4", "VM.Monitor", "VM.Audit,VM.PowerMgmt", "VM.Monitor"),
    ] {
        let lab = start(config(version)).await;
        let root = Api::root(&lab).await;
        root.ok("POST", "/access/roles", &[("roleid", "Exec"), ("privs", allowed_privs)]).await;
        root.ok("POST", "/access/roles", &[("roleid", "NoExec"), ("privs", denied_privs)]).await;
        let mut apis = Vec::new();
        for (user, role) in [("exec@pve", "Exec"), ("noexec@pve", "NoExec")] {
            root.ok("POST", "/access/users", &[("userid", user)]).await;
            root.ok("PUT", "/access/acl", &[("path", "/vms/100"), ("roles", role), ("users", user)]).await;
            let t = root.ok("POST", &format!("/access/users/{user}/token/tk"), &[("privsep", "0")]).await;
            apis.push(Api::token(&lab, &format!("{user}!tk"), t["value"].as_str().expect("secret")));
        }
        let status = run(&apis[0], &["touch", "/ok"]).await;
        assert_eq!(status["exitcode"], 0, "{version}");
        let refused = apis[1].api("POST", &path("exec"), &[("command", "touch"), ("command", "/no")]).await;
        assert_eq!(refused.status, 403, "{version}: {refused:?}");
        assert_eq!(refused.body["message"], format!("Permission check failed (/vms/100, {missing})\n"), "{version}");
        let refused = apis[1].api("GET", &path("exec-status"), &[("pid", "1")]).await;
        assert_eq!(refused.status, 403, "{version}: exec-status too");
        assert!(lab.guest_file(VM, "/no").is_none());
    }
}

#[tokio::test]
async fn exec_takes_a_json_array_command_and_blocked_exec_is_an_agent_error() {
    let lab = start(config("9.1")).await;
    let root = Api::root(&lab).await;
    let answer = root
        .call_json("POST", &format!("/api2/json{}", path("exec")), &json!({ "command": ["touch", "/from-json"] }))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(lab.guest_file(VM, "/from-json").is_some(), "the array is program + arguments");

    lab.set_agent_exec_disabled(VM, true).expect("switch");
    let blocked = root.api("POST", &path("exec"), &[("command", "true")]).await;
    assert_eq!(blocked.body["message"], "Agent error: The command guest-exec has been disabled for this instance\n");
}

#[tokio::test]
async fn a_silent_agent_fails_every_agent_call_like_pve_until_it_answers_again() {
    let mut lab_config = config("9.1");
    lab_config.scenario.agents_not_answering = vec![VM];
    let lab = start(lab_config).await;
    let root = Api::root(&lab).await;
    for (method, tail) in [("POST", "ping"), ("GET", "network-get-interfaces")] {
        let answer = root.api(method, &path(tail), &[]).await;
        assert_eq!((answer.status, answer.reason.as_str()), (500, "QEMU guest agent is not running"), "{tail}");
    }
    let write = root.api("POST", &path("file-write"), &[("file", "/x"), ("content", "x")]).await;
    assert_eq!(write.body["message"], "QEMU guest agent is not running\n");
    assert!(lab.guest_file(VM, "/x").is_none());

    let switch = root.call_json("POST", "/_lab/agent", &json!({ "vmid": VM, "answers": true })).await;
    assert_eq!(switch.status, 200, "{switch:?}");
    assert_eq!(root.api("POST", &path("ping"), &[]).await.status, 200);
    lab.set_agent_answers(VM, false).expect("switch");
    assert_eq!(root.api("POST", &path("ping"), &[]).await.status, 500);
}

#[tokio::test]
async fn a_corrupted_read_back_differs_once_from_what_was_written() {
    let lab = start(config("8.4")).await;
    let root = Api::root(&lab).await;
    root.ok("POST", &path("file-write"), &[("file", "/f"), ("content", "PVE_TOKEN=abc\n")]).await;
    let corrupt = root.call_json("POST", "/_lab/corrupt-file-read", &json!({ "vmid": VM })).await;
    assert_eq!(corrupt.status, 200, "{corrupt:?}");
    // A failed read does not use the fault up.
    assert_eq!(root.api("GET", &path("file-read"), &[("file", "/missing")]).await.status, 500);
    let read = root.ok("GET", &path("file-read"), &[("file", "/f")]).await;
    let content = read["content"].as_str().expect("content");
    assert_ne!(content, "PVE_TOKEN=abc\n");
    assert_eq!(content.len(), "PVE_TOKEN=abc\n".len());
    assert_eq!(root.ok("GET", &path("file-read"), &[("file", "/f")]).await["content"], "PVE_TOKEN=abc\n");
    assert_eq!(lab.guest_file(VM, "/f").as_deref(), Some(&b"PVE_TOKEN=abc\n"[..]), "the stored file is intact");
}

#[tokio::test]
async fn file_write_into_a_missing_directory_fails_like_qemu_ga_until_mkdir_creates_it() {
    for version in ["8.4", "9.1"] {
        let lab = start(config(version)).await;
        let root = Api::root(&lab).await;
        let file = "/etc/privatebox/proxmox-api-token";
        let write = root.api("POST", &path("file-write"), &[("file", file), ("content", "PVE_TOKEN=x\n")]).await;
        assert_eq!(write.status, 500, "{version}: {write:?}");
        assert_eq!(
            write.body["message"],
            format!("Agent error: failed to open file '{file}' (mode: 'wb'): No such file or directory\n"),
            "{version}: qemu-ga's guest-file-open error through PVE's check_agent_error"
        );
        let read = root.api("GET", &path("file-read"), &[("file", file)]).await;
        assert_eq!(
            read.body["message"],
            format!("Agent error: failed to open file '{file}' (mode: 'r'): No such file or directory\n")
        );
        assert!(lab.guest_file(VM, file).is_none(), "{version}: nothing was created");

        let made = run(&root, &["mkdir", "-p", "-v", "-m", "700", "--", "/etc/privatebox"]).await;
        assert_eq!(made["exitcode"], 0, "{version}: {made}");
        assert_eq!(made["out-data"], "mkdir: created directory '/etc/privatebox'\n");
        assert_eq!(lab.guest_file_info(VM, "/etc/privatebox").expect("the directory").mode, 0o700);
        root.ok("POST", &path("file-write"), &[("file", file), ("content", "PVE_TOKEN=x\n")]).await;
        assert_eq!(lab.guest_file(VM, file).as_deref(), Some(&b"PVE_TOKEN=x\n"[..]), "{version}");

        // A directory is not a file: qemu-ga's open for writing fails, a read fails on the first read.
        let on_dir = root.api("POST", &path("file-write"), &[("file", "/etc/privatebox"), ("content", "x")]).await;
        assert_eq!(
            on_dir.body["message"],
            "Agent error: failed to open file '/etc/privatebox' (mode: 'wb'): Is a directory\n"
        );
        let read_dir = root.api("GET", &path("file-read"), &[("file", "/etc")]).await;
        assert_eq!(read_dir.body["message"], "Agent error: failed to read file: Is a directory\n");
        let below_file =
            root.api("POST", &path("file-write"), &[("file", &format!("{file}/x")), ("content", "x")]).await;
        assert!(
            below_file.body["message"].as_str().is_some_and(|m| m.ends_with("(mode: 'wb'): Not a directory\n")),
            "{below_file:?}"
        );
    }
}

/// Logs in to the lab's Semaphore as its admin; the session cookie, or `None` when refused.
async fn semaphore_login(lab: &pvetoken_lab::RunningLab) -> Option<String> {
    let ready = lab.ready();
    let body = serde_json::to_vec(&json!({ "auth": ready.semaphore_user, "password": ready.semaphore_password }))
        .expect("json");
    let headers = [("content-type".to_owned(), "application/json".to_owned())];
    let answer = semaphore_client(lab).send("POST", "/api/auth/login", &headers, body).await.expect("login");
    answer.set_cookie.filter(|_| answer.status == 204)
}

#[tokio::test]
async fn lab_reset_also_resets_the_semaphore_simulator() {
    let lab = start(LabConfig::default()).await;
    let semaphore = semaphore_client(&lab);
    let cookie = semaphore_login(&lab).await.expect("admin logs in");
    let headers = [("cookie".to_owned(), cookie), ("content-type".to_owned(), "application/json".to_owned())];
    let body = serde_json::to_vec(&json!({ "name": "Extra" })).expect("json");
    let created = semaphore.send("POST", "/api/projects", &headers, body).await.expect("create a project");
    assert_eq!(created.status, 201, "{created:?}");
    let projects = semaphore.send("GET", "/api/projects", &headers, Vec::new()).await.expect("projects");
    assert_eq!(projects.body.as_array().map(Vec::len), Some(2), "{projects:?}");

    let root = Api::root(&lab).await;
    assert_eq!(root.call("POST", "/_lab/reset", &[]).await.status, 200);

    let stale = semaphore.send("GET", "/api/projects", &headers, Vec::new()).await.expect("projects");
    assert_eq!(stale.status, 401, "sessions are gone after a reset");
    let cookie = semaphore_login(&lab).await.expect("the admin password still works");
    let projects =
        semaphore.send("GET", "/api/projects", &[("cookie".to_owned(), cookie)], Vec::new()).await.expect("projects");
    let names: Vec<&str> = projects.body.as_array().expect("list").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["PrivateBox"], "back to the scenario's projects");
}
