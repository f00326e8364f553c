//! `pvetoken deliver` against the in-process lab on PVE 8.4 and 9.1: the file lands byte for byte, mode handling is
//! reported, every failed check stops before anything is written, a read-back mismatch is exit 3, and the secret
//! never shows in stdout, stderr or the lab's request log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use pvetoken_acl::PveVersion;
use pvetoken_api::Secret;
use pvetoken_lab::{FaultSpec, LabConfig, RunningLab, Scenario, ScenarioVm};
use pvetoken_render::TokenFile;
use serde_json::Value;

const SECRET: &str = "5e1c7a2b-4d3f-4a8e-9b6c-0f1e2d3c4b5a";
const GUEST_PATH: &str = "/root/.proxmox-api-token";
const RUNNING: u64 = 100;
const STOPPED: u64 = 101;
const NO_AGENT: u64 = 102;
const DELIVERER: &str = "deliverer@pve";
const DELIVERER_PASSWORD: &str = "deliver-pw-1";

fn versions() -> [PveVersion; 3] {
    ["8.4".parse().expect("8.4"), "9.1".parse().expect("9.1"), "9.2".parse().expect("9.2")]
}

fn vm(vmid: u64, status: &str, agent: &str) -> ScenarioVm {
    ScenarioVm {
        vmid,
        name: format!("guest-{vmid}"),
        template: false,
        status: status.to_owned(),
        config: [("agent", agent), ("memory", "2048"), ("ostype", "l26")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// A lab with a running VM with agent (100), a stopped one (101), a running one without agent (102), and
/// `deliverer@pve` holding `deliverer_privs` on `/vms/100`.
struct Lab {
    lab: RunningLab,
    _runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    version: PveVersion,
}

impl Lab {
    fn start(version: PveVersion, deliverer_privs: &str) -> Lab {
        let mut scenario = Scenario::default();
        scenario.vm.extend([vm(RUNNING, "running", "1"), vm(STOPPED, "stopped", "1"), vm(NO_AGENT, "running", "0")]);
        scenario.user_cfg = Some(format!(
            "user:{DELIVERER}:1:0::::::\nrole:Deliver:{deliverer_privs}:\nacl:1:/vms/{RUNNING}:{DELIVERER}:Deliver:\n"
        ));
        scenario.token_cfg = Some(String::new());
        scenario.passwords = BTreeMap::from([(DELIVERER.to_owned(), DELIVERER_PASSWORD.to_owned())]);
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let lab = runtime
            .block_on(pvetoken_lab::start(LabConfig { pve_version: version, scenario, ..LabConfig::default() }))
            .expect("lab starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let lab = Lab { lab, _runtime: runtime, dir, version };
        lab.write_token_file();
        lab
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("token.env")
    }

    /// The token file as pvetoken writes it (0600).
    fn write_token_file(&self) {
        let token = TokenFile::new(
            &self.lab.ready().pve_url,
            "pve",
            "automation@pve!privatebox".parse().expect("token id"),
            Secret::from(SECRET.to_owned()),
        )
        .expect("token file");
        super::support::write_private(&self.token_file(), token.render());
    }

    fn token_bytes(&self) -> Vec<u8> {
        std::fs::read(self.token_file()).expect("token file")
    }

    /// Runs `pvetoken --output json deliver --vmid VMID ARGS` as `user` (password from PVETOKEN_PASSWORD).
    fn deliver_as(&self, user: &str, password: &str, vmid: u64, args: &[&str]) -> Run {
        let ready = self.lab.ready();
        let vmid = vmid.to_string();
        let mut command = Command::new(env!("CARGO_BIN_EXE_pvetoken"));
        command
            .args(["--output", "json", "deliver", "--vmid", &vmid, "--token-file"])
            .arg(self.token_file())
            .args(["--url", &ready.pve_url, "--ca-file"])
            .arg(&ready.ca_file)
            .args(["--auth-user", user])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("PVETOKEN_PASSWORD", password)
            .stdin(Stdio::null());
        let output = command.output().expect("run pvetoken");
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        run.assert_no_secret(self.version);
        self.assert_request_log_has_no_secret();
        run
    }

    fn deliver(&self, vmid: u64, args: &[&str]) -> Run {
        let ready = self.lab.ready();
        self.deliver_as(&ready.root_user.clone(), &ready.root_password.clone(), vmid, args)
    }

    fn guest_file(&self, vmid: u64) -> Option<Vec<u8>> {
        self.lab.guest_file(vmid, GUEST_PATH)
    }

    fn file_writes(&self) -> usize {
        self.lab.request_log().iter().filter(|record| record.path.ends_with("/agent/file-write")).count()
    }

    fn assert_request_log_has_no_secret(&self) {
        let log = serde_json::to_string(&self.lab.request_log()).expect("log serializes");
        assert!(!log.contains(SECRET), "the secret is in the lab's request log");
        // The same log over HTTP (/_lab/requests), as an outside observer sees it.
        let ready = self.lab.ready();
        let response = super::support::blocking_https(&ready.ca_file)
            .get(format!("{}/_lab/requests", ready.pve_url))
            .basic_auth(&ready.root_user, Some(&ready.root_password))
            .send()
            .expect("GET /_lab/requests");
        assert_eq!(response.status().as_u16(), 200, "GET /_lab/requests");
        let body = response.text().expect("body");
        assert!(body.contains("file-write") || self.file_writes() == 0, "the HTTP log is the same log: {body}");
        assert!(!body.contains(SECRET), "the secret is in /_lab/requests");
    }

    /// The support client (ticket + CSRF) logged in as root.
    fn root_api(&self) -> super::support::Api {
        let ready = self.lab.ready();
        let support_ready = super::support::Ready {
            pve_url: ready.pve_url.clone(),
            ca_file: ready.ca_file.clone(),
            fingerprint_sha256: ready.fingerprint_sha256.clone(),
            root_user: ready.root_user.clone(),
            root_password: Secret::from(ready.root_password.clone()),
            node: ready.node.clone(),
            semaphore_url: ready.semaphore_url.clone(),
            semaphore_user: ready.semaphore_user.clone(),
            semaphore_password: Secret::from(ready.semaphore_password.clone()),
        };
        super::support::Api::login(&support_ready, &ready.root_user, &Secret::from(ready.root_password.clone()))
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_no_secret(&self, version: PveVersion) {
        assert!(!self.stdout.contains(SECRET), "{version}: the secret is on stdout");
        assert!(!self.stderr.contains(SECRET), "{version}: the secret is on stderr");
    }

    fn report(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|error| {
            panic!("stdout is not one JSON report ({error}): {}\nstderr: {}", self.stdout, self.stderr)
        })
    }

    fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code, code,
            "{what}: exit {} instead of {code}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// All privileges deliver needs on `/vms/100` except `missing`, per release.
fn privileges_without(version: PveVersion, missing: &str) -> String {
    let all: &[&str] = if version.major >= 9 {
        &["VM.Audit", "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileWrite"]
    } else {
        &["VM.Audit", "VM.Monitor"]
    };
    all.iter().filter(|p| **p != missing).copied().collect::<Vec<_>>().join(",")
}

#[test]
fn delivered_file_in_the_guest_is_the_token_file_byte_for_byte_and_is_0600_before_the_secret_arrives() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        // root may use agent/exec: deliver creates the file and sets 0600 root:root before writing the secret.
        let run = lab.deliver(RUNNING, &[]);
        run.expect_code(0, &format!("{version}: delivery"));
        assert_eq!(lab.guest_file(RUNNING).as_deref(), Some(lab.token_bytes().as_slice()), "{version}: content");
        let report = run.report();
        assert_eq!(report["verified"], true, "{version}: {report}");
        assert_eq!(report["vmid"], RUNNING);
        assert_eq!(report["guest_path"], GUEST_PATH);
        assert_eq!(report["token_id"], "automation@pve!privatebox");
        assert_eq!(report["bytes"].as_u64(), Some(lab.token_bytes().len() as u64));
        assert_eq!(report["mode"]["how"], "set-before-write", "{version}: {report}");
        let info = lab.lab.guest_file_info(RUNNING, GUEST_PATH).expect("the file exists in the guest");
        assert_eq!((info.mode, info.owner.as_str(), info.group.as_str()), (0o600, "root", "root"), "{version}");

        // Delivering again without exec: the file exists, and the agent keeps an existing file's mode.
        let again = lab.deliver(RUNNING, &["--no-exec"]);
        again.expect_code(0, &format!("{version}: second delivery"));
        assert_eq!(again.report()["mode"]["how"], "kept-existing", "{version}");
        assert_eq!(lab.lab.guest_file_info(RUNNING, GUEST_PATH).expect("still there").mode, 0o600, "{version}");
        assert_eq!(lab.guest_file(RUNNING).as_deref(), Some(lab.token_bytes().as_slice()));
    }
}

#[test]
fn without_exec_the_agent_default_0666_is_accepted_only_when_asked_and_warned_about() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        let run = lab.deliver(RUNNING, &["--no-exec", "--allow-agent-mode"]);
        run.expect_code(0, &format!("{version}: delivery with the agent's mode"));
        assert_eq!(run.report()["mode"]["how"], "agent-default0666", "{version}");
        assert!(run.stderr.contains("0666"), "{version}: the 0666 mode is warned about: {}", run.stderr);
        assert_eq!(lab.lab.guest_file_info(RUNNING, GUEST_PATH).expect("written").mode, 0o666, "{version}");
    }
}

#[test]
fn text_report_names_the_path_the_mode_and_created_directories_without_the_secret() {
    let lab = Lab::start("9.1".parse().expect("9.1"), "VM.Audit");
    let ready = lab.lab.ready();
    let output = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .args(["deliver", "--vmid", "100", "--guest-path", "/opt/app/token.env", "--token-file"])
        .arg(lab.token_file())
        .args(["--ca-file"])
        .arg(&ready.ca_file)
        .env_clear()
        .env("HOME", lab.dir.path())
        .env("PVETOKEN_PASSWORD", &ready.root_password)
        .stdin(Stdio::null())
        .output()
        .expect("run pvetoken");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "the URL comes from the token file\n{stdout}\n{stderr}");
    assert!(stdout.contains("/opt/app/token.env") && stdout.contains("read back and identical"), "{stdout}");
    assert!(stdout.contains("created directory: /opt/app (0700, root:root)"), "{stdout}");
    assert!(stdout.contains("600"), "the mode set in the guest is reported: {stdout}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
}

#[test]
fn a_new_file_that_the_agent_would_create_0666_is_refused_without_chmod_and_nothing_is_written() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        let run = lab.deliver(RUNNING, &["--no-exec"]);
        run.expect_code(1, &format!("{version}: new file without exec"));
        assert!(run.stderr.contains("0666") && run.stderr.contains("--allow-agent-mode"), "{}", run.stderr);
        assert!(run.stderr.contains("install -m 600 /dev/null"), "the pre-create fix is offered: {}", run.stderr);
        assert_eq!(lab.guest_file(RUNNING), None, "{version}: nothing written");
        assert_eq!(lab.file_writes(), 0);
    }
}

#[test]
fn stopped_vm_and_vm_without_agent_are_explained_and_nothing_is_written() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        // On PVE 9 root holds everything everywhere; the privilege check passes for any VM.
        let stopped = lab.deliver(STOPPED, &["--allow-agent-mode"]);
        stopped.expect_code(1, &format!("{version}: stopped VM"));
        assert!(
            stopped.stderr.contains("not running") && stopped.stderr.contains("qm start 101"),
            "{}",
            stopped.stderr
        );

        let no_agent = lab.deliver(NO_AGENT, &["--allow-agent-mode"]);
        no_agent.expect_code(1, &format!("{version}: no agent configured"));
        assert!(
            no_agent.stderr.contains("no guest agent configured") && no_agent.stderr.contains("--agent enabled=1"),
            "{}",
            no_agent.stderr
        );
        assert_eq!(lab.file_writes(), 0, "{version}: nothing written");
    }
}

#[test]
fn agent_that_does_not_answer_is_explained_with_the_guest_side_fix() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        lab.lab.inject_fault(
            FaultSpec::on("POST", "/nodes/*/qemu/100/agent/ping").answer(500, "QEMU guest agent is not running"),
        );
        let run = lab.deliver(RUNNING, &["--allow-agent-mode"]);
        run.expect_code(1, &format!("{version}: agent not answering"));
        assert!(run.stderr.contains("does not answer") && run.stderr.contains("qemu-guest-agent"), "{}", run.stderr);
        assert_eq!(lab.guest_file(RUNNING), None);
        assert_eq!(lab.file_writes(), 0);
    }
}

#[test]
fn missing_file_write_privilege_is_named_with_the_path_and_the_fix_before_anything_is_written() {
    for version in versions() {
        let missing = if version.major >= 9 { "VM.GuestAgent.FileWrite" } else { "VM.Monitor" };
        let lab = Lab::start(version, &privileges_without(version, missing));
        let run = lab.deliver_as(DELIVERER, DELIVERER_PASSWORD, RUNNING, &["--allow-agent-mode"]);
        run.expect_code(1, &format!("{version}: missing {missing}"));
        assert!(run.stderr.contains(missing), "{version}: names {missing}: {}", run.stderr);
        assert!(run.stderr.contains("/vms/100") && run.stderr.contains("agent/file-write"), "{}", run.stderr);
        assert!(run.stderr.contains("pveum acl modify /vms/100") && run.stderr.contains(DELIVERER), "{}", run.stderr);
        assert_eq!(lab.file_writes(), 0, "{version}: no file-write was even attempted");
        assert_eq!(lab.guest_file(RUNNING), None);
    }
}

#[test]
fn deliverer_with_exactly_the_documented_privileges_succeeds() {
    for version in versions() {
        let lab = Lab::start(version, &privileges_without(version, ""));
        let run = lab.deliver_as(DELIVERER, DELIVERER_PASSWORD, RUNNING, &["--allow-agent-mode"]);
        run.expect_code(0, &format!("{version}: least-privilege deliverer"));
        assert_eq!(lab.guest_file(RUNNING).as_deref(), Some(lab.token_bytes().as_slice()));
    }
}

#[test]
fn forbidden_answer_during_the_write_is_explained_and_not_reported_as_success() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        lab.lab.inject_fault(
            FaultSpec::on("POST", "/nodes/*/qemu/100/agent/file-write")
                .answer(403, "Permission check failed (/vms/100, VM.GuestAgent.FileWrite)"),
        );
        let run = lab.deliver(RUNNING, &["--allow-agent-mode"]);
        run.expect_code(1, &format!("{version}: 403 on file-write"));
        assert!(run.stderr.contains("Permission check failed") && run.stderr.contains("privileges"), "{}", run.stderr);
        // The file may exist (created empty and 0600 before the write), but no secret reached it.
        let content = lab.guest_file(RUNNING).unwrap_or_default();
        assert!(content.is_empty(), "{version}: nothing of the token was written");
    }
}

/// What the guest holds at the instant of the write: the file-write is failed by the lab, so the guest file is left
/// as deliver prepared it. It is already 0600 root:root and empty, and every guest command ran before the write.
#[test]
fn the_file_is_already_0600_and_empty_when_the_secret_would_arrive() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        lab.lab.inject_fault(
            FaultSpec::on("POST", "/nodes/*/qemu/100/agent/file-write").answer(500, "Agent error: interrupted"),
        );
        let run = lab.deliver(RUNNING, &[]);
        run.expect_code(3, &format!("{version}: the agent failed the write (a remote failure)"));
        assert!(run.stderr.contains("Agent error: interrupted"), "{}", run.stderr);
        let info = lab.lab.guest_file_info(RUNNING, GUEST_PATH).expect("deliver created the file before the write");
        assert_eq!((info.mode, info.owner.as_str(), info.group.as_str()), (0o600, "root", "root"), "{version}");
        assert!(info.content.is_empty(), "{version}: nothing but the failed write could have filled it");
        let calls: Vec<String> = lab
            .lab
            .request_log()
            .iter()
            .filter(|record| record.path.contains("/agent/"))
            .map(|record| record.path.rsplit('/').next().unwrap_or_default().to_owned())
            .collect();
        let write = calls.iter().position(|call| call == "file-write").expect("the write was attempted");
        assert!(calls[..write].iter().filter(|call| *call == "exec").count() >= 4, "{version}: {calls:?}");
        assert!(!calls[write..].iter().any(|call| call == "exec"), "{version}: no guest command after the write");
    }
}

/// A guest command that fails (here `chown` to an owner the guest does not have) stops the delivery with the
/// guest's own error before the secret is written.
#[test]
fn a_failing_guest_command_stops_the_delivery_with_its_error_before_the_write() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        let run = lab.deliver(RUNNING, &["--owner", "app:app"]);
        run.expect_code(1, &format!("{version}: chown to a missing user"));
        assert!(run.stderr.contains("`chown -- app:app /root/.proxmox-api-token` failed"), "{}", run.stderr);
        assert!(run.stderr.contains("invalid user: 'app:app'"), "the guest's stderr is relayed: {}", run.stderr);
        assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
        assert_eq!(lab.file_writes(), 0, "{version}: no file-write");
        let info = lab.lab.guest_file_info(RUNNING, GUEST_PATH).expect("touch ran");
        assert!(info.content.is_empty() && info.mode == 0o600, "{version}: chmod ran, the secret never arrived");
    }
}

/// The agent fails between `touch` and `chmod` (the exec of chmod is answered with an agent error): the file the
/// guest now holds is empty with touch's 0644, deliver stops there, writes nothing and says so.
#[test]
fn an_agent_failure_after_touch_and_before_chmod_writes_nothing() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        // mkdir -p of /root, stat and touch go through; the fourth guest command, chmod, never runs.
        lab.lab.inject_fault(
            FaultSpec::on("POST", "/nodes/*/qemu/100/agent/exec").after(3).answer(500, "Agent error: broken pipe"),
        );
        let run = lab.deliver(RUNNING, &[]);
        run.expect_code(3, &format!("{version}: the agent failed mid-way (a remote failure)"));
        assert!(run.stderr.contains("Agent error: broken pipe"), "{}", run.stderr);
        assert!(run.stderr.contains("nothing of the token was written"), "{}", run.stderr);
        assert_eq!(lab.file_writes(), 0, "{version}: no file-write after a failed chmod");
        let info = lab.lab.guest_file_info(RUNNING, GUEST_PATH).expect("touch ran");
        assert_eq!((info.mode, info.content.len()), (0o644, 0), "{version}: touch's file, untouched since");
        lab.assert_request_log_has_no_secret();
    }
}

/// An agent that blocks guest-exec (`qemu-ga --block-rpcs guest-exec`) although the caller may use it: deliver
/// falls back to file-write alone, which would create a new file 0666, and refuses.
#[test]
fn an_agent_blocking_exec_falls_back_and_refuses_a_new_world_readable_file() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        lab.lab.set_agent_exec_disabled(RUNNING, true).expect("switch the agent");
        let run = lab.deliver(RUNNING, &[]);
        run.expect_code(1, &format!("{version}: exec blocked, new file"));
        assert!(run.stderr.contains("0666") && run.stderr.contains("disabled"), "{}", run.stderr);
        assert_eq!(lab.file_writes(), 0, "{version}: nothing written");
        assert_eq!(lab.guest_file(RUNNING), None);
    }
}

#[test]
fn file_changed_between_write_and_read_back_is_a_mismatch_exit_3_without_printing_either_content() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        // The next successful file-read of VM 100 (the read-back: a missing file's existence check fails and does
        // not use the fault up) answers the written bytes with one byte changed, as if the guest had changed it.
        lab.lab.corrupt_next_file_reads(RUNNING, 1);
        let run = lab.deliver(RUNNING, &["--allow-agent-mode"]);
        run.expect_code(3, &format!("{version}: read-back mismatch"));
        assert!(run.stderr.contains("read-back mismatch") && run.stderr.contains(GUEST_PATH), "{}", run.stderr);
        let token = String::from_utf8(lab.token_bytes()).expect("the token file is text");
        let first_line = token.lines().next().expect("a first line");
        let changed = format!("{}{}", char::from(first_line.as_bytes()[0] ^ 0x01), &first_line[1..]);
        assert!(!run.stderr.contains(&changed), "the guest's content is not printed either: {}", run.stderr);
        assert!(run.stdout.trim().is_empty(), "no report on failure: {}", run.stdout);
        assert_eq!(lab.guest_file(RUNNING).as_deref(), Some(lab.token_bytes().as_slice()), "the write itself landed");
        let read = lab
            .root_api()
            .get("/nodes/pve/qemu/100/agent/file-read", &[("file", GUEST_PATH)])
            .expect("read the guest file");
        assert_eq!(read["content"].as_str(), Some(token.as_str()), "only one read-back was corrupted");
    }
}

#[test]
fn local_pvesh_backend_is_refused_because_pvesh_would_put_the_secret_in_argv() {
    let lab = Lab::start("9.1".parse().expect("9.1"), "VM.Audit");
    let fake_pvesh = lab.dir.path().join("pvesh");
    // A pvesh that records its arguments; deliver must refuse before running it for file-write.
    std::fs::write(
        &fake_pvesh,
        "#!/bin/sh\necho \"$@\" >> \"$0.args\"\necho '{\"version\":\"9.1.1\",\"release\":\"9.1\"}'\n",
    )
    .expect("fake pvesh");
    std::fs::set_permissions(&fake_pvesh, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
    let output = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .args(["deliver", "--vmid", "100", "--local", "--token-file"])
        .arg(lab.token_file())
        .env_clear()
        .env("HOME", lab.dir.path())
        .env("PVETOKEN_PVESH", &fake_pvesh)
        .stdin(Stdio::null())
        .output()
        .expect("run pvetoken");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("process list") && stderr.contains("--url"), "{stderr}");
    let args = std::fs::read_to_string(lab.dir.path().join("pvesh.args")).unwrap_or_default();
    assert!(!args.contains(SECRET), "pvesh never saw the secret: {args}");
}

#[test]
fn create_with_deliver_to_saves_the_new_token_and_puts_the_same_file_0600_into_the_guest() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        let ready = lab.lab.ready();
        let token_file = lab.dir.path().join("created").join("token.env");
        // /etc/privatebox does not exist in a fresh guest: deliver creates it (0700) before the file.
        let guest_path = "/etc/privatebox/proxmox-api-token";
        let output = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
            .args(["--output", "json", "create", "--profile", "privatebox", "--token-file"])
            .arg(&token_file)
            .args(["--url", &ready.pve_url, "--ca-file"])
            .arg(&ready.ca_file)
            .args(["--node", &ready.node, "--deliver-to", &RUNNING.to_string(), "--guest-path", guest_path])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", lab.dir.path())
            .env("PVETOKEN_PASSWORD", &ready.root_password)
            .stdin(Stdio::null())
            .output()
            .expect("run pvetoken");
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        run.expect_code(0, &format!("{version}: create --deliver-to"));

        // The host copy is the new token; the guest holds the same bytes, private to root.
        let host = std::fs::read(&token_file).expect("the host token file");
        let saved = TokenFile::parse(&String::from_utf8_lossy(&host)).expect("the host token file parses");
        assert_eq!(saved.token_id.as_str(), "automation@pve!privatebox", "{version}");
        assert_eq!(lab.lab.guest_file(RUNNING, guest_path).as_deref(), Some(host.as_slice()), "{version}: content");
        let info = lab.lab.guest_file_info(RUNNING, guest_path).expect("the file exists in the guest");
        assert_eq!((info.mode, info.owner.as_str()), (0o600, "root"), "{version}: guest file mode");
        let dir = lab.lab.guest_file_info(RUNNING, "/etc/privatebox").expect("the directory was created");
        assert_eq!(dir.mode, 0o700, "{version}: guest directory mode");
        let report = run.report();
        assert_eq!(report["delivered"]["vmid"], RUNNING, "{version}: {report}");
        assert_eq!(report["delivered"]["guest_path"], guest_path, "{version}: {report}");
        assert_eq!(report["delivered"]["verified"], true, "{version}: {report}");
        assert_eq!(report["delivered"]["token_id"], "automation@pve!privatebox", "{version}: {report}");

        // The new secret is nowhere but in the two files.
        let secret = pvetoken_api::ExposeSecret::expose_secret(&saved.secret).to_owned();
        assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret), "{version}: secret printed");
        let log = serde_json::to_string(&lab.lab.request_log()).expect("log serializes");
        assert!(!log.contains(&secret), "{version}: the new secret is in the lab's request log");
    }
}

/// A path under a directory a fresh guest does not have.
const NEW_DIR: &str = "/etc/privatebox";
const NEW_DIR_PATH: &str = "/etc/privatebox/proxmox-api-token";

#[test]
fn with_exec_a_missing_directory_is_created_0700_and_reported_before_the_file_lands_0600() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        let run = lab.deliver(RUNNING, &["--guest-path", NEW_DIR_PATH]);
        run.expect_code(0, &format!("{version}: delivery into a new directory"));
        let dir = lab.lab.guest_file_info(RUNNING, NEW_DIR).expect("the directory exists in the guest");
        assert_eq!((dir.mode, dir.owner.as_str(), dir.group.as_str()), (0o700, "root", "root"), "{version}");
        let file = lab.lab.guest_file_info(RUNNING, NEW_DIR_PATH).expect("the file exists in the guest");
        assert_eq!(file.content, lab.token_bytes(), "{version}: bytes identical");
        assert_eq!((file.mode, file.owner.as_str()), (0o600, "root"), "{version}");
        let report = run.report();
        assert_eq!(
            report["created_directories"],
            serde_json::json!([{ "path": NEW_DIR, "mode": "0700", "owner": "root:root" }]),
            "{version}: {report}"
        );
        assert!(run.stderr.contains("created /etc/privatebox (0700"), "{version}: the user is told: {}", run.stderr);

        // Again: the directory exists, nothing is created or reported.
        let again = lab.deliver(RUNNING, &["--guest-path", NEW_DIR_PATH]);
        again.expect_code(0, &format!("{version}: second delivery"));
        assert_eq!(again.report()["created_directories"], serde_json::json!([]), "{version}");
    }
}

#[test]
fn without_exec_a_missing_directory_is_explained_with_the_fixes_and_nothing_is_written() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        for extra in [&["--no-exec"][..], &["--no-exec", "--allow-agent-mode"]] {
            let mut args = vec!["--guest-path", NEW_DIR_PATH];
            args.extend_from_slice(extra);
            let run = lab.deliver(RUNNING, &args);
            run.expect_code(1, &format!("{version}: {extra:?} into a missing directory"));
            assert!(
                run.stderr.contains("/etc/privatebox does not exist in VM 100")
                    && run.stderr.contains("install -d -m 700 /etc/privatebox")
                    && run.stderr.contains("without --no-exec"),
                "{version}: {}",
                run.stderr
            );
            assert!(run.stdout.trim().is_empty(), "no report on failure: {}", run.stdout);
        }
        assert_eq!(lab.file_writes(), 0, "{version}: no file-write was sent");
        assert!(lab.lab.guest_file_info(RUNNING, NEW_DIR).is_none(), "{version}: no directory either");
        assert!(lab.lab.guest_file(RUNNING, NEW_DIR_PATH).is_none());
    }
}

#[test]
fn without_the_exec_privilege_a_missing_directory_names_the_privilege_to_grant() {
    // PVE 9 only: on 8, VM.Monitor allows file-write and exec alike, so a deliverer cannot lack exec alone.
    let version: PveVersion = "9.1".parse().expect("9.1");
    let lab = Lab::start(version, &privileges_without(version, ""));
    let run = lab.deliver_as(DELIVERER, DELIVERER_PASSWORD, RUNNING, &["--guest-path", NEW_DIR_PATH]);
    run.expect_code(1, "a deliverer without VM.GuestAgent.Unrestricted");
    assert!(
        run.stderr.contains("/etc/privatebox does not exist")
            && run.stderr.contains("grant VM.GuestAgent.Unrestricted"),
        "{}",
        run.stderr
    );
    assert_eq!(lab.file_writes(), 0);
}

#[test]
fn a_guest_command_without_the_exec_privilege_is_refused_before_anything_is_written() {
    // PVE 9 only: on 8, VM.Monitor allows file-write and exec alike.
    let version: PveVersion = "9.2".parse().expect("9.2");
    let lab = Lab::start(version, &privileges_without(version, ""));
    let run = lab.deliver_as(DELIVERER, DELIVERER_PASSWORD, RUNNING, &["--allow-agent-mode", "--", "true"]);
    run.expect_code(1, "a guest command without VM.GuestAgent.Unrestricted");
    assert!(
        run.stderr.contains("lacks VM.GuestAgent.Unrestricted on /vms/100")
            && run.stderr.contains("running `true` in the guest")
            && run.stderr.contains("nothing was written"),
        "{}",
        run.stderr
    );
    assert_eq!(lab.file_writes(), 0, "no file-write was even attempted");
    assert_eq!(lab.guest_file(RUNNING), None);
}

#[test]
fn a_guest_path_that_is_a_directory_is_refused_before_chmod_could_touch_it() {
    for version in versions() {
        let lab = Lab::start(version, "VM.Audit");
        // A first delivery creates /srv/app (0700); naming that directory as the file must not chmod it to 0600.
        lab.deliver(RUNNING, &["--guest-path", "/srv/app/token.env"]).expect_code(0, "the first delivery");
        let writes = lab.file_writes();
        let before = lab.lab.guest_file_info(RUNNING, "/srv/app").expect("the directory was created");
        let run = lab.deliver(RUNNING, &["--guest-path", "/srv/app"]);
        run.expect_code(1, &format!("{version}: a directory as --guest-path"));
        assert!(run.stderr.contains("/srv/app") && run.stderr.contains("directory"), "{version}: {}", run.stderr);
        let after = lab.lab.guest_file_info(RUNNING, "/srv/app").expect("the directory is still there");
        assert_eq!(before.mode, 0o700, "{version}");
        assert_eq!((after.mode, after.owner.as_str()), (before.mode, before.owner.as_str()), "{version}: changed");
        assert_eq!(lab.file_writes(), writes, "{version}: nothing written");
    }
}
