//! `pvetoken learn` round trip against the lab: a consumer we did not write (proxmoxer) runs with a broad token,
//! the lab's access log (pveproxy's format) records its calls, `learn` derives a profile, `create` makes a token
//! from it, and the same consumer runs green with it, holding far less than the broad profile.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::Command;
use std::time::Duration;

use crate::lifecycle::Lab;
use crate::support::{run_bounded, tool};

const CONSUMER: &str = r#"
import os, sys, proxmoxer
api = proxmoxer.ProxmoxAPI(os.environ["HOST"], port=int(os.environ["PORT"]), user="automation@pve",
                           token_name=sys.argv[1], token_value=os.environ["SECRET"], verify_ssl=os.environ["CA"])
api.version.get()
api.nodes("pve").qemu(9000).config.get()
api.nodes("pve").qemu(9000).status.current.get()
print("CONSUMER-OK", len(api.cluster.resources.get(type="vm")))
"#;

fn consumer(lab: &Lab, python: &std::path::Path, name: &str, secret: &str) -> crate::support::RunOutput {
    let ready = lab.lab().ready();
    let url = url::Url::parse(&ready.pve_url).unwrap();
    run_bounded(
        Command::new(python)
            .env_clear()
            .env("HOST", url.host_str().unwrap())
            .env("PORT", url.port().unwrap().to_string())
            .env("SECRET", secret)
            .env("CA", &ready.ca_file)
            .args(["-c", CONSUMER, name]),
        Duration::from_secs(60),
    )
}

#[test]
fn a_profile_learned_from_the_access_log_runs_the_same_consumer_with_far_less() {
    let Some(python) = tool("python") else { return };
    let lab = Lab::start("9.2");
    assert_eq!(lab.create("ansible", &[]).code, 0);
    let (_, secret) = lab.saved().unwrap();
    let broad = consumer(&lab, &python, "ansible", &secret);
    assert!(broad.status.success(), "{}", broad.both());

    let log = lab.lab().access_log();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("127.0.0.1 - automation@pve!ansible [")
            && l.contains("\"GET /api2/json/nodes/pve/qemu/9000/config HTTP/1.1\" 200 ")),
        "pveproxy's format: {text}"
    );
    let learned = lab.dir().join("learned.toml");
    let run = lab.pvetoken(&[
        "learn",
        "--access-log",
        &log.display().to_string(),
        "--token",
        "automation@pve!ansible",
        "--name",
        "learned",
        "--out",
        &learned.display().to_string(),
    ]);
    assert_eq!(run.code, 0, "{}", run.both());
    let profile = std::fs::read_to_string(&learned).unwrap();
    assert!(profile.contains("path = \"/vms/9000\"") && profile.contains("\"VM.Audit\""), "{profile}");
    assert!(profile.contains("GET /nodes/{node}/qemu/{vmid}/config ×1"), "each privilege names its calls: {profile}");
    for unused in ["VM.Allocate", "VM.PowerMgmt", "Datastore.AllocateSpace"] {
        assert!(!profile.contains(unused), "{unused} was never needed: {profile}");
    }

    // The learned profile makes a token the same consumer runs green with.
    let file = lab.dir().join("learned.env");
    let made = lab.create_in(&file, &learned.display().to_string(), &["--token-name", "learned"]);
    assert_eq!(made.code, 0, "{}", made.both());
    let saved = pvetoken_render::TokenFile::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    use pvetoken_api::ExposeSecret as _;
    let narrow = consumer(&lab, &python, "learned", saved.secret.expose_secret());
    assert!(narrow.status.success(), "{}", narrow.both());
    assert!(narrow.stdout.contains("CONSUMER-OK 1"), "{}", narrow.stdout);

    // verify --against-log: the learned token's rights cover every call it made; without VM.Audit they do not.
    let log_text = log.display().to_string();
    let file_text = file.display().to_string();
    let covered = lab.pvetoken(&["verify", "--token-file", &file_text, "--against-log", &log_text]);
    assert_eq!(covered.code, 0, "{}", covered.both());
    let role = lab.root().get("/access/roles/Token-learned", &[]).unwrap();
    let kept: Vec<String> = role.as_object().unwrap().keys().filter(|p| *p != "VM.Audit").cloned().collect();
    lab.root().put("/access/roles/Token-learned", &[("privs", &kept.join(","))]).unwrap();
    let short = lab.pvetoken(&["verify", "--token-file", &file_text, "--against-log", &log_text]);
    assert_eq!(short.code, 1, "{}", short.both());
    assert!(
        short.stderr.contains("GET /nodes/{node}/qemu/{vmid}/config ×1 needs VM.Audit on /vms/9000"),
        "{}",
        short.both()
    );
}

#[test]
fn rotated_gzip_logs_are_read_a_malformed_line_is_named_and_several_identities_need_token() {
    let lab = Lab::start("9.2");
    let dir = lab.dir();
    let plain = dir.join("access.log");
    std::fs::write(
        &plain,
        "10.0.0.9 - ci@pve!tf [03/12/2026:06:00:01 +0100] \"GET /api2/json/nodes/pve/storage/local/status HTTP/1.1\" 200 80\n\
         this is not a log line\n\
         ::1 - root@pam [03/12/2026:06:00:02 +0100] \"GET /api2/json/version HTTP/1.1\" 200 80\n",
    )
    .unwrap();
    let rotated = dir.join("access.log.1");
    std::fs::write(
        &rotated,
        "10.0.0.9 - ci@pve!tf [02/12/2026:06:00:01 +0100] \"POST /api2/json/nodes/pve/qemu/100/status/start HTTP/1.1\" 403 80\n\
         10.0.0.9 - ci@pve!tf [02/12/2026:06:00:02 +0100] \"GET /api2/json/nodes/pve/frobnicate HTTP/1.1\" 200 80\n",
    )
    .unwrap();
    assert!(Command::new("gzip").arg(&rotated).status().unwrap().success());
    let gz = dir.join("access.log.1.gz").display().to_string();
    let plain = plain.display().to_string();
    let both = lab.pvetoken(&["learn", "--access-log", &plain, "--access-log", &gz]);
    assert_eq!(both.code, 2, "two identities: {}", both.both());
    assert!(both.stderr.contains("ci@pve!tf") && both.stderr.contains("root@pam"), "{}", both.both());
    let run = lab.pvetoken(&["learn", "--access-log", &plain, "--access-log", &gz, "--token", "ci@pve!tf"]);
    assert_eq!(run.code, 0, "{}", run.both());
    assert!(run.stderr.contains("access.log:2: not an access-log line"), "{}", run.both());
    assert!(run.stderr.contains("POST /nodes/{node}/qemu/{vmid}/status/start: refused with 403"), "{}", run.both());
    assert!(run.stderr.contains("GET /nodes/pve/frobnicate ×1: not in the endpoint catalog"), "{}", run.both());
    assert!(
        run.stdout.contains("path = \"/storage/local\"") && run.stdout.contains("Datastore.Audit"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("path = \"/vms/100\"") && run.stdout.contains("VM.PowerMgmt"),
        "a 403 is what to add: {}",
        run.stdout
    );
}

#[test]
fn learn_lab_runs_a_consumer_with_a_recording_token_and_prints_what_it_needed() {
    let Some(python) = tool("python") else { return };
    let script = r#"
import os, proxmoxer
e = os.environ
api = proxmoxer.ProxmoxAPI(e["PROXMOX_HOST"], port=int(e["PROXMOX_PORT"]), user=e["PROXMOX_USER"],
                           token_name=e["PROXMOX_TOKEN_ID"], token_value=e["PROXMOX_TOKEN_SECRET"],
                           verify_ssl=e["PROXMOX_CA_PATH"])
api.nodes("pve").qemu(9000).status.current.get()
api.nodes("pve").storage("local").status.get()
"#;
    let lab = Lab::start("9.2"); // only for the helper's environment and temp dir
    let python = python.display().to_string();
    let run = lab.pvetoken(&["learn", "--lab", "--format", "ansible-env", "--", &python, "-c", script]);
    assert_eq!(run.code, 0, "{}", run.both());
    assert!(run.stdout.contains("path = \"/vms/9000\"") && run.stdout.contains("VM.Audit"), "{}", run.stdout);
    assert!(
        run.stdout.contains("path = \"/storage/local\"") && run.stdout.contains("Datastore.Audit"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("Administrator") && !run.stdout.contains("VM.Allocate"), "{}", run.stdout);
}

#[test]
fn audit_flags_a_vm_admin_token_that_only_ever_read_version_and_cluster_resources() {
    let lab = Lab::start("9.2");
    let root = lab.root();
    root.post("/access/users", &[("userid", "mon@pve")]).unwrap();
    let made = root.post("/access/users/mon@pve/token/dash", &[("privsep", "1")]).unwrap();
    let secret = made["value"].as_str().unwrap().to_owned();
    for (subject, kind) in [("mon@pve", "users"), ("mon@pve!dash", "tokens")] {
        root.put("/access/acl", &[("path", "/vms"), ("roles", "PVEVMAdmin"), (kind, subject)]).unwrap();
    }
    let token = lab.as_token("mon@pve!dash", &secret);
    token.get("/version", &[]).unwrap();
    token.get("/cluster/resources", &[]).unwrap();

    let ready = lab.lab().ready();
    let log = lab.lab().access_log().display().to_string();
    let ca = ready.ca_file.display().to_string();
    let run = lab.pvetoken(&[
        "audit",
        "--url",
        &ready.pve_url,
        "--ca-file",
        &ca,
        "--access-log",
        &log,
        "--output",
        "json",
        "--fail-on",
        "none",
    ]);
    assert_eq!(run.code, 0, "{}", run.both());
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "token-unused-privileges" && f["subject"] == "mon@pve!dash")
        .unwrap_or_else(|| panic!("{report}"));
    let detail = finding["detail"].as_str().unwrap();
    let (unused, used) = detail.split_once(". Used: ").unwrap();
    assert!(unused.contains("VM.Allocate") && unused.contains("VM.PowerMgmt"), "{detail}");
    assert!(used.contains("VM.Audit") && !used.contains("VM.Allocate"), "{detail}");
    assert!(finding["fix"]["pvetoken"][0].as_str().unwrap().starts_with("pvetoken learn --access-log"), "{finding}");
}

#[test]
fn the_same_log_learns_each_releases_privileges() {
    let dir = crate::support::TempDir::new("pvetoken-learn-release");
    let log = dir.path().join("access.log");
    let line = |uri: &str| {
        format!("10.0.0.9 - automation@pve!ci [03/12/2026:10:00:00 +0000] \"GET /api2/json{uri} HTTP/1.1\" 200 99\n")
    };
    let text = [line("/nodes/pve/qemu/100/agent/network-get-interfaces"), line("/nodes/pve/qemu/100/config")].concat();
    std::fs::write(&log, text).unwrap();
    let learn = |release: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
            .args(["learn", "--access-log", log.to_str().unwrap(), "--pve-version", release])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let pve9 = learn("9.2");
    assert!(pve9.contains("VM.GuestAgent.Audit") && !pve9.contains("VM.Monitor"), "{pve9}");
    let pve8 = learn("8.4");
    assert!(pve8.contains("VM.Monitor") && !pve8.contains("VM.GuestAgent"), "{pve8}");
    assert!(pve8.contains("VM.Audit") && pve9.contains("VM.Audit"), "the config read needs VM.Audit on both");
}
