//! Rotation as users run it, through the CLI: create → register semaphore → rotate, then every consumer checked;
//! a rotation killed half-way finished by the next run; a sink that cannot be updated reported, never silently
//! left with a dead secret.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pvetoken_lab::FaultSpec;

use crate::lifecycle::{Lab, Run};

/// `register semaphore` of the lab's token file into the lab's Semaphore project 1 (password auth).
fn register(lab: &Lab) -> Run {
    let ready = lab.lab().ready();
    let file = lab.token_file().display().to_string();
    let args = super::support::register_semaphore_args(ready, &file);
    let run = lab.pvetoken_env(&args, &[("SEMAPHORE_PASSWORD", ready.semaphore_password.as_str())]);
    assert_eq!(run.code, 0, "register: {}", run.both());
    run
}

/// `rotate` with the PVE and Semaphore credentials in the environment (as a timer would run it).
fn rotate(lab: &Lab, extra: &[&str]) -> Run {
    let ready = lab.lab().ready();
    let file = lab.token_file().display().to_string();
    let mut args = vec!["rotate", "--token-file", file.as_str()];
    args.extend_from_slice(extra);
    lab.pvetoken_env(
        &args,
        &[
            ("PVETOKEN_PASSWORD", ready.root_password.as_str()),
            ("SEMAPHORE_PASSWORD", ready.semaphore_password.as_str()),
        ],
    )
}

/// The secret the Semaphore environment `ProxmoxAPI` of project 1 holds.
fn semaphore_secret(lab: &Lab) -> Option<String> {
    let sim = lab.lab().semaphore();
    let ids = sim.environment_ids(1, "ProxmoxAPI");
    assert_eq!(ids.len(), 1, "one environment: {ids:?}");
    sim.secret_value(ids[0], "PROXMOX_TOKEN_SECRET")
}

/// The token id the Semaphore environment holds (the seed layout's `PROXMOX_TOKEN_ID`, the full id).
fn semaphore_token_name(lab: &Lab) -> Option<String> {
    let sim = lab.lab().semaphore();
    let ids = sim.environment_ids(1, "ProxmoxAPI");
    sim.secret_value(ids[0], "PROXMOX_TOKEN_ID")
}

#[test]
fn rotate_after_register_updates_semaphore_and_the_old_secret_stops_on_every_release() {
    for version in ["8.4", "9.1", "9.2"] {
        let lab = Lab::start(version);
        assert_eq!(lab.create("privatebox", &[]).code, 0);
        register(&lab);
        let (old_id, old_secret) = lab.saved().unwrap();
        assert_eq!(semaphore_secret(&lab).as_deref(), Some(old_secret.as_str()));

        let run = rotate(&lab, &["--output", "json"]);
        assert_eq!(run.code, 0, "{version}: {}", run.both());
        assert!(!run.stderr.contains("panicked"), "{version}: {}", run.both());
        let (new_id, new_secret) = lab.saved().unwrap();
        assert_ne!(new_secret, old_secret, "{version}");
        // Semaphore holds exactly what the token file holds, and it works; the old secret is refused.
        assert_eq!(semaphore_secret(&lab).as_deref(), Some(new_secret.as_str()), "{version}: {}", run.both());
        assert_eq!(semaphore_token_name(&lab).as_deref(), Some(new_id.as_str()), "{version}");
        assert!(lab.as_token(&new_id, &new_secret).get("/access/permissions", &[]).is_ok(), "{version}");
        assert!(lab.as_token(&old_id, &old_secret).get("/version", &[]).is_err(), "{version}: old secret retired");
        assert_eq!(lab.server_tokens("automation@pve").len(), 1, "{version}");
        assert_eq!(lab.with_token_file("verify", &["--profile", "privatebox"]).code, 0, "{version}");
        for secret in [&old_secret, &new_secret] {
            assert!(!run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()));
        }
        let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json report");
        // 9.1 as shipped (access-control 9.0.4) cannot regenerate: a new token with the same ACLs; 9.2 can.
        let expected = if version == "9.2" { "regenerate" } else { "new-token" };
        assert_eq!(report["method"], expected, "{version}: {}", run.stdout);
        assert_eq!(new_id == old_id, version == "9.2", "{version}: the token id stays only when regenerated");
        assert!(report["release"]["source"].as_str().is_some_and(|s| s.contains("apt/versions")), "{}", run.stdout);
    }
}

#[test]
fn a_semaphore_that_cannot_be_updated_is_named_the_old_token_is_kept_and_a_rerun_finishes() {
    let lab = Lab::start("8.4");
    assert_eq!(lab.create("privatebox", &[]).code, 0);
    register(&lab);
    let (old_id, old_secret) = lab.saved().unwrap();
    // Semaphore refuses the login of the sink update: the sink cannot be brought up to date.
    let ready = lab.lab().ready();
    let file = lab.token_file().display().to_string();
    let run = lab.pvetoken_env(
        &["rotate", "--token-file", &file],
        &[("PVETOKEN_PASSWORD", ready.root_password.as_str()), ("SEMAPHORE_PASSWORD", "wrong")],
    );
    assert_ne!(run.code, 0, "{}", run.both());
    assert!(run.stderr.contains("Semaphore environment `ProxmoxAPI`"), "{}", run.both());
    assert!(run.stderr.contains(&old_id), "names the token the sink still uses: {}", run.both());
    // The sink still works: it holds the old secret and the old token still exists.
    assert_eq!(semaphore_secret(&lab).as_deref(), Some(old_secret.as_str()));
    assert!(lab.as_token(&old_id, &old_secret).get("/access/permissions", &[]).is_ok(), "old token kept");

    let rerun = rotate(&lab, &[]);
    assert_eq!(rerun.code, 0, "{}", rerun.both());
    let (new_id, new_secret) = lab.saved().unwrap();
    assert_eq!(semaphore_secret(&lab).as_deref(), Some(new_secret.as_str()));
    assert!(lab.as_token(&old_id, &old_secret).get("/version", &[]).is_err(), "old token retired after the sink");
    assert_eq!(lab.server_tokens("automation@pve"), vec![new_id.rsplit('!').next().unwrap().to_owned()]);
    assert_eq!(lab.with_token_file("verify", &["--profile", "privatebox"]).code, 0);
}

/// Waits (bounded) until the lab has logged a request `method` whose path ends with `suffix`.
fn wait_for_request(lab: &Lab, method: &str, suffix: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if lab.requests().iter().any(|r| r.method == method && r.path.ends_with(suffix)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no {method} …{suffix} within 20 s");
}

#[test]
fn a_rotation_killed_while_copying_acls_is_finished_by_the_rerun_with_every_privilege() {
    let lab = Lab::start("8.4");
    assert_eq!(lab.create("privatebox", &[]).code, 0);
    let (old_id, _) = lab.saved().unwrap();
    let paths_before = lab.root().get("/access/acl", &[]).unwrap();
    let count_of = |acl: &serde_json::Value, ugid: &str| {
        acl.as_array().unwrap().iter().filter(|e| e["type"] == "token" && e["ugid"] == ugid).count()
    };
    let expected = count_of(&paths_before, &old_id);
    assert!(expected >= 2, "privatebox grants several paths: {paths_before}");
    // The first ACL put of the copy hangs: kill rotate there, with the new token holding no entry yet.
    lab.clear_log();
    lab.fault(FaultSpec::on("PUT", "/access/acl").delay_ms(30_000));
    let file = lab.token_file().display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", lab.dir().join("home"))
        .env("PVETOKEN_PASSWORD", &lab.lab().ready().root_password)
        .args(["rotate", "--token-file", &file])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The log records a request when it is answered: the ACL read before the first (held) put is the mark.
    wait_for_request(&lab, "GET", "/access/acl");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    lab.lab().clear_faults();
    let (switched_id, _) = lab.saved().unwrap();
    assert_eq!(switched_id, "automation@pve!privatebox-r1", "killed after the token file switched");
    let acl = lab.root().get("/access/acl", &[]).unwrap();
    assert!(count_of(&acl, &switched_id) < expected, "killed before every ACL entry was copied: {acl}");

    let rerun = lab.with_token_file("rotate", &[]);
    assert_eq!(rerun.code, 0, "{}", rerun.both());
    let (final_id, _) = lab.saved().unwrap();
    let acl = lab.root().get("/access/acl", &[]).unwrap();
    assert_eq!(count_of(&acl, &final_id), expected, "every ACL entry carried over: {acl}\n{}", rerun.both());
    let verify = lab.with_token_file("verify", &["--profile", "privatebox"]);
    assert_eq!(verify.code, 0, "{}", verify.both());
    lab.assert_no_token_without_its_secret("automation@pve", "after the rerun");
    assert_eq!(lab.server_tokens("automation@pve").len(), 1);
}

#[test]
fn rotation_policy_rotates_only_when_due_so_a_daily_timer_does_nothing_most_days() {
    let lab = Lab::start("9.1");
    assert_eq!(lab.create("packer", &["--expire", "30d"]).code, 0);
    let (_, first) = lab.saved().unwrap();

    lab.clear_log();
    let idle = rotate(&lab, &["--if-expiring-within", "14d", "--output", "json"]);
    assert_eq!(idle.code, 0, "{}", idle.both());
    let report: serde_json::Value = serde_json::from_str(&idle.stdout).expect("json");
    assert_eq!(report["status"], "not-due", "{report}");
    assert!(report["reasons"][0].as_str().is_some_and(|r| r.contains("not within 14 day")), "{report}");
    assert_eq!(lab.saved().unwrap().1, first, "nothing rotated");
    assert!(lab.requests().is_empty(), "a token that is not due costs no request: {:?}", lab.requests());

    let due = rotate(&lab, &["--if-expiring-within", "60d"]);
    assert_eq!(due.code, 0, "{}", due.both());
    let (_, second) = lab.saved().unwrap();
    assert_ne!(second, first, "due within 60 days: rotated");

    // Age: the token file was just written; 100 days later it is older than 90 days.
    let fresh = rotate(&lab, &["--if-older-than", "90d"]);
    assert_eq!((fresh.code, lab.saved().unwrap().1 == second), (0, true), "{}", fresh.both());
    let file = std::fs::File::options().write(true).open(lab.token_file()).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(100 * 86_400)).unwrap();
    drop(file);
    let old = rotate(&lab, &["--if-older-than", "90d"]);
    assert_eq!(old.code, 0, "{}", old.both());
    assert_ne!(lab.saved().unwrap().1, second, "older than 90 days: rotated");

    let bad = rotate(&lab, &["--if-older-than", "90x"]);
    assert_eq!(bad.code, 2, "{}", bad.both());
    assert!(bad.stderr.contains("not a span"), "{}", bad.both());

    std::fs::remove_file(lab.token_file()).unwrap();
    let missing = rotate(&lab, &["--if-exists", "--if-expiring-within", "14d"]);
    assert_eq!(missing.code, 0, "{}", missing.both());
    assert!(missing.stdout.contains("nothing to rotate"), "{}", missing.both());
    let strict = rotate(&lab, &[]);
    assert_eq!(strict.code, 2, "without --if-exists a missing token file is an error: {}", strict.both());
}

#[test]
fn a_plain_http_semaphore_on_loopback_is_registered_and_rotated_and_elsewhere_needs_allow_http() {
    let lab = Lab::start_with(pvetoken_lab::LabConfig {
        pve_version: "9.2".parse().unwrap(),
        semaphore_http: true,
        ..pvetoken_lab::LabConfig::default()
    });
    let ready = lab.lab().ready();
    assert!(ready.semaphore_url.starts_with("http://127.0.0.1:"), "{}", ready.semaphore_url);
    assert_eq!(lab.create("privatebox", &[]).code, 0);
    let file = lab.token_file().display().to_string();
    let env = [("SEMAPHORE_PASSWORD", ready.semaphore_password.as_str())];
    let args = ["register", "semaphore", "--url", &ready.semaphore_url, "--project", "1", "--token-file", &file];
    let run = lab.pvetoken_env(&args, &env);
    assert_eq!(run.code, 0, "{}", run.both());
    let rotated = rotate(&lab, &[]);
    assert_eq!(rotated.code, 0, "{}", rotated.both());
    let (_, secret) = lab.saved().unwrap();
    assert_eq!(semaphore_secret(&lab).as_deref(), Some(secret.as_str()));

    // The same plain-HTTP Semaphore under a non-loopback name: refused before any request, unless allowed.
    let remote = ready.semaphore_url.replace("127.0.0.1", "192.0.2.1");
    let args = ["register", "semaphore", "--url", &remote, "--project", "1", "--token-file", &file];
    let refused = lab.pvetoken_env(&args, &env);
    assert_eq!(refused.code, 2, "{}", refused.both());
    assert!(refused.stderr.contains("plain HTTP") && refused.stderr.contains("--allow-http"), "{}", refused.both());
}

#[test]
fn a_token_delivered_into_a_guest_is_delivered_again_by_rotate() {
    for version in ["8.4", "9.2"] {
        let lab = lab_with_delivered_token(version);
        let path = "/root/.proxmox-api-token";
        assert_eq!(lab.lab().guest_file(100, path), Some(std::fs::read(lab.token_file()).unwrap()), "{version}");
        let (old_id, old_secret) = lab.saved().unwrap();

        let run = rotate(&lab, &[]);
        assert_eq!(run.code, 0, "{version}: {}", run.both());
        let (new_id, new_secret) = lab.saved().unwrap();
        assert_ne!(new_secret, old_secret);
        // The guest holds exactly the rotated token file, and the old secret is refused.
        assert_eq!(lab.lab().guest_file(100, path), Some(std::fs::read(lab.token_file()).unwrap()), "{version}");
        assert!(lab.as_token(&new_id, &new_secret).get("/access/permissions", &[]).is_ok());
        assert!(lab.as_token(&old_id, &old_secret).get("/version", &[]).is_err(), "{version}");

        // A guest whose agent does not answer stops the next rotation before anything changes.
        lab.lab().set_agent_answers(100, false).unwrap();
        let stopped = rotate(&lab, &[]);
        assert_eq!(stopped.code, 3, "{version}: {}", stopped.both());
        assert!(
            stopped.stderr.contains("nothing was rotated") && stopped.stderr.contains("VM 100"),
            "{}",
            stopped.both()
        );
        assert_eq!(lab.saved().unwrap().1, new_secret, "{version}: unchanged");
    }
}

/// A lab on `version` with a running VM 100 (`privatebox`) whose agent answers; `guest_pvetoken` runs in it.
fn lab_with_guest(version: &str, guest_pvetoken: Option<std::path::PathBuf>) -> Lab {
    let mut scenario = pvetoken_lab::Scenario::default();
    scenario.vm.push(pvetoken_lab::ScenarioVm::running_with_agent(100, "privatebox"));
    let pve_version = version.parse().unwrap();
    Lab::start_with(pvetoken_lab::LabConfig { pve_version, scenario, guest_pvetoken, ..Default::default() })
}

/// A lab on `version` with a running VM 100 whose agent answers, a token created and delivered into it.
fn lab_with_delivered_token(version: &str) -> Lab {
    let lab = lab_with_guest(version, None);
    assert_eq!(lab.create("privatebox", &["--deliver-to", "100"]).code, 0, "{version}");
    lab
}

/// The guest's write of the rotated token file fails (500, a dropped connection, no answer in time) after the
/// secret changed: rotate fails naming the guest and what it still holds; on 8.4 (a new token, the old one kept
/// until every sink holds the new) the guest's token keeps working, on 9.2 (regenerate: the old secret is dead at
/// once) the report says the guest holds a secret that no longer works. Either way the rerun converges: the guest
/// holds the token file, and the token verifies.
#[test]
fn a_guest_write_failing_during_rotate_is_reported_with_what_the_guest_still_holds_and_the_rerun_converges() {
    let faults: [(&str, FaultSpec); 3] = [
        ("500", write_fault().answer(500, "agent write failed")),
        ("dropped connection", write_fault().dropping()),
        ("timeout", write_fault().delay_ms(20_000)),
    ];
    let path = "/root/.proxmox-api-token";
    for version in ["8.4", "9.2"] {
        for (what, fault) in &faults {
            let case = format!("{version}, {what}");
            let lab = lab_with_delivered_token(version);
            let (old_id, old_secret) = lab.saved().unwrap();
            let before = lab.lab().guest_file(100, path).unwrap();
            lab.fault(fault.clone());
            let run = rotate(&lab, &["--timeout", "3"]);
            lab.lab().clear_faults();
            assert_ne!(run.code, 0, "{case}: {}", run.both());
            assert!(run.stderr.contains("VM 100"), "{case}: the guest is named: {}", run.both());
            let still = lab.lab().guest_file(100, path).unwrap();
            assert_eq!(still, before, "{case}: the guest kept its file");
            let guest_works = lab.as_token(&old_id, &old_secret).get("/access/permissions", &[]).is_ok();
            if version == "8.4" {
                assert!(guest_works, "{case}: the old token is kept while a sink holds it");
            } else {
                assert!(!guest_works, "{case}: regenerate killed the old secret");
                assert!(
                    run.stderr.contains("no longer works") || run.stderr.contains("dead"),
                    "{case}: a guest holding a dead secret is said so: {}",
                    run.both()
                );
            }
            assert!(run.stderr.contains("pvetoken"), "{case}: the fix is a command: {}", run.both());

            let rerun = rotate(&lab, &[]);
            assert_eq!(rerun.code, 0, "{case}: the rerun converges: {}", rerun.both());
            assert_eq!(
                lab.lab().guest_file(100, path),
                Some(std::fs::read(lab.token_file()).unwrap()),
                "{case}: the guest holds the token file"
            );
            assert_eq!(lab.with_token_file("verify", &["--profile", "privatebox"]).code, 0, "{case}");
        }
    }
}

fn write_fault() -> FaultSpec {
    FaultSpec::on("POST", "/nodes/*/qemu/100/agent/file-write")
}

/// The Semaphore environment's update failing during rotate (500, a slow 503), after the preflight passed:
/// rotate fails naming the environment; on 8.4 Semaphore keeps a working token, on 9.2 the report says it holds a
/// secret that no longer works. The rerun converges: Semaphore holds the token file's secret.
#[test]
fn a_semaphore_update_failing_during_rotate_is_reported_and_the_rerun_converges() {
    // Every attempt fails (the client repeats a PUT that timed out: one slow answer alone is survived).
    let fault = |status: Option<u16>, latency_ms: u64| FaultSpec {
        status,
        message: status.map(|_| "database is locked".into()),
        ..FaultSpec::on("PUT", "/api/project/*/environment/*").times(10).delay_ms(latency_ms)
    };
    for version in ["8.4", "9.2"] {
        // A slow answer is waited for (the Semaphore client's own 30 s request timeout, not --timeout): the write
        // lands and the rotation succeeds; a 503 after a delay fails like a 500.
        for (what, spec) in [("500", fault(Some(500), 0)), ("slow 503", fault(Some(503), 1_500))] {
            let case = format!("{version}, {what}");
            let lab = Lab::start(version);
            assert_eq!(lab.create("privatebox", &[]).code, 0, "{case}");
            register(&lab);
            let (old_id, old_secret) = lab.saved().unwrap();
            lab.fault(spec);
            let run = rotate(&lab, &["--timeout", "3"]);
            lab.lab().clear_faults();
            assert_ne!(run.code, 0, "{case}: {}", run.both());
            assert!(run.stderr.contains("Semaphore environment `ProxmoxAPI`"), "{case}: {}", run.both());
            let held = semaphore_secret(&lab).unwrap();
            let works = lab.as_token(&old_id, &held).get("/access/permissions", &[]).is_ok();
            if version == "8.4" {
                assert_eq!(held, old_secret, "{case}");
                assert!(works, "{case}: the old token is kept while Semaphore holds it");
            } else if !works {
                assert!(
                    run.stderr.contains("no longer works") || run.stderr.contains("dead"),
                    "{case}: Semaphore holding a dead secret is said so: {}",
                    run.both()
                );
            }
            let rerun = rotate(&lab, &[]);
            assert_eq!(rerun.code, 0, "{case}: the rerun converges: {}", rerun.both());
            let (new_id, new_secret) = lab.saved().unwrap();
            assert_eq!(semaphore_secret(&lab).as_deref(), Some(new_secret.as_str()), "{case}");
            assert!(lab.as_token(&new_id, &new_secret).get("/access/permissions", &[]).is_ok(), "{case}");
        }
    }
}

/// `render --out FILE --keep-updated` files (a Packer env file and a bpg `.tfvars`): rotate renders them again with
/// the new token, 0600; the old secret is in none of them and is refused.
#[test]
fn files_rendered_with_keep_updated_hold_the_rotated_token() {
    use std::os::unix::fs::PermissionsExt as _;
    for version in ["8.4", "9.2"] {
        let lab = Lab::start(version);
        assert_eq!(lab.create("packer", &[]).code, 0, "{version}");
        let (old_id, old_secret) = lab.saved().unwrap();
        let packer = lab.dir().join("infra").join("packer.env");
        let tfvars = lab.dir().join("infra").join("bpg.auto.tfvars");
        std::fs::create_dir_all(packer.parent().unwrap()).unwrap();
        for (format, file) in [("packer", &packer), ("terraform-bpg-tfvars", &tfvars)] {
            let run =
                lab.with_token_file("render", &["--format", format, "--out", file.to_str().unwrap(), "--keep-updated"]);
            assert_eq!(run.code, 0, "{version}: {}", run.both());
            assert!(std::fs::read_to_string(file).unwrap().contains(&old_secret), "{version}: {format}");
        }
        let run = rotate(&lab, &[]);
        assert_eq!(run.code, 0, "{version}: {}", run.both());
        let (new_id, new_secret) = lab.saved().unwrap();
        for file in [&packer, &tfvars] {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(text.contains(&new_secret) && !text.contains(&old_secret), "{version}: {}", file.display());
            assert!(text.contains(new_id.as_str()), "{version}: the new token id in {}", file.display());
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{version}: {}", file.display());
        }
        assert!(lab.as_token(&old_id, &old_secret).get("/version", &[]).is_err(), "{version}");
    }
}

/// The PrivateBox loop where only the guest reaches Semaphore: the host delivers the token file and the guest's own
/// `pvetoken register semaphore ... --remove-token-file` runs through the agent (`deliver -- COMMAND`); `rotate` on
/// the host delivers again and runs it again, so Semaphore holds the new secret and the old one is refused.
#[test]
fn semaphore_registered_through_the_guest_gets_the_rotated_secret() {
    for version in ["8.4", "9.2"] {
        let lab = lab_with_guest(version, Some(env!("CARGO_BIN_EXE_pvetoken").into()));
        assert_eq!(lab.create("privatebox", &[]).code, 0, "{version}");
        let ready = lab.lab().ready();
        // The guest keeps its own Semaphore credentials.
        let password_file = "/root/.semaphore-password";
        lab.root()
            .post(
                "/nodes/pve/qemu/100/agent/file-write",
                &[("file", password_file), ("content", ready.semaphore_password.as_str())],
            )
            .unwrap();
        let guest_token = "/root/.proxmox-api-token";
        // The guest's pvetoken writes only the guest's files: an absolute path is the guest's, not the lab host's.
        let host_path = lab.dir().join("escaped.env");
        let token_text = std::fs::read_to_string(lab.token_file()).unwrap();
        let root = lab.root();
        root.post("/nodes/pve/qemu/100/agent/file-write", &[("file", "/root/probe.env"), ("content", &token_text)])
            .unwrap();
        let out = format!("--out={}", host_path.display());
        let form = [
            ("command", "pvetoken"),
            ("command", "render"),
            ("command", "--token-file"),
            ("command", "/root/probe.env"),
            ("command", out.as_str()),
        ];
        let started = root.post("/nodes/pve/qemu/100/agent/exec", &form).unwrap();
        let pid = started["pid"].as_u64().unwrap().to_string();
        let status = root.get("/nodes/pve/qemu/100/agent/exec-status", &[("pid", &pid)]).unwrap();
        assert_eq!(status["exitcode"], 0, "{version}: the guest's render ran: {status}");
        assert!(!host_path.exists(), "{version}: the guest's pvetoken wrote on the lab host");
        let mut args = vec!["--vmid", "100", "--", "pvetoken"];
        args.extend(super::support::register_semaphore_args(ready, guest_token));
        args.extend(["--password-file", password_file, "--if-token-file", "--remove-token-file"]);
        let run = lab.with_token_file("deliver", &args);
        assert_eq!(run.code, 0, "{version}: {}", run.both());
        let (old_id, old_secret) = lab.saved().unwrap();
        assert_eq!(semaphore_secret(&lab).as_deref(), Some(old_secret.as_str()), "{version}: registered by the guest");
        assert_eq!(lab.lab().guest_file(100, guest_token), None, "{version}: the guest removed its token file");

        let run = rotate(&lab, &[]);
        assert_eq!(run.code, 0, "{version}: {}", run.both());
        let (new_id, new_secret) = lab.saved().unwrap();
        assert_eq!(semaphore_secret(&lab).as_deref(), Some(new_secret.as_str()), "{version}: {}", run.both());
        assert_eq!(semaphore_token_name(&lab).as_deref(), Some(new_id.as_str()), "{version}");
        assert!(lab.as_token(&old_id, &old_secret).get("/version", &[]).is_err(), "{version}: the old secret is dead");
        assert!(!run.stdout.contains(&new_secret) && !run.stderr.contains(&new_secret), "{version}");

        // The guest's Semaphore login breaks: the next rotation names the guest command that failed, keeps (8.4) the
        // token Semaphore holds, and converges once the guest is fixed.
        let write = |content: &str| {
            lab.root()
                .post("/nodes/pve/qemu/100/agent/file-write", &[("file", password_file), ("content", content)])
                .unwrap();
        };
        write("not-the-password");
        let run = rotate(&lab, &[]);
        assert_ne!(run.code, 0, "{version}: {}", run.both());
        assert!(run.stderr.contains("VM 100") && run.stderr.contains("failed there"), "{version}: {}", run.both());
        let held = semaphore_secret(&lab).unwrap();
        assert_eq!(held, new_secret, "{version}: Semaphore kept what it had");
        if version == "8.4" {
            assert!(lab.as_token(&new_id, &held).get("/access/permissions", &[]).is_ok(), "{version}: still works");
        }
        write(ready.semaphore_password.as_str());
        let rerun = rotate(&lab, &[]);
        assert_eq!(rerun.code, 0, "{version}: {}", rerun.both());
        let (_, latest) = lab.saved().unwrap();
        assert_eq!(semaphore_secret(&lab).as_deref(), Some(latest.as_str()), "{version}: converged");
    }
}

/// Registered once with `--password-file`, then rotated by a timer with no terminal and no Semaphore variables: the
/// recorded sink names the password file (its path, never its content), so the unattended rotate reaches Semaphore.
#[test]
fn a_semaphore_registered_with_a_password_file_is_updated_by_an_unattended_rotate() {
    let lab = Lab::start("8.4");
    assert_eq!(lab.create("privatebox", &[]).code, 0);
    let ready = lab.lab().ready();
    let password_file = lab.dir().join("semaphore.pass");
    super::support::write_private(&password_file, &ready.semaphore_password);
    let run = lab.register_semaphore_with_password_file(&password_file);
    assert_eq!(run.code, 0, "register: {}", run.both());
    let (token_file, pass) = (lab.token_file().display().to_string(), password_file.display().to_string());
    let record = std::fs::read_to_string(format!("{token_file}.sinks.json")).unwrap();
    assert!(record.contains(&pass) && !record.contains(&ready.semaphore_password), "{record}");

    let run = lab
        .pvetoken_env(&["rotate", "--token-file", &token_file], &[("PVETOKEN_PASSWORD", ready.root_password.as_str())]);
    assert_eq!(run.code, 0, "{}", run.both());
    let (new_id, new_secret) = lab.saved().unwrap();
    assert_eq!(semaphore_secret(&lab).as_deref(), Some(new_secret.as_str()), "{}", run.both());
    assert_eq!(semaphore_token_name(&lab).as_deref(), Some(new_id.as_str()));
}
