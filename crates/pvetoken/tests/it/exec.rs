//! `pvetoken exec`: a token for one job, through the CLI against the lab. A real consumer we did not write
//! (proxmoxer) runs with the variables `exec` hands it; afterwards the token and its ACL entries are gone, and the
//! secret was never in argv, a file of pvetoken's, stdout or stderr. Exit status, signals, a missing command, the
//! TTL bounds and `gc` as users meet them.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lifecycle::{Lab, Run};
use crate::support::tool;

/// `exec ARGS -- COMMAND` against the lab (root password in the environment, the lab's CA trusted).
fn exec(lab: &Lab, args: &[&str], command: &[&str]) -> Run {
    let ready = lab.lab().ready();
    let ca = ready.ca_file.display().to_string();
    let mut all = vec!["exec", "--url", ready.pve_url.as_str(), "--ca-file", ca.as_str()];
    all.extend_from_slice(args);
    all.push("--");
    all.extend_from_slice(command);
    lab.pvetoken(&all)
}

/// The ACL entries naming a token of `automation@pve` whose name starts with `prefix`.
fn token_acl_entries(lab: &Lab, prefix: &str) -> usize {
    let acl = lab.root().get("/access/acl", &[]).unwrap();
    acl.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "token" && e["ugid"].as_str().is_some_and(|u| u.starts_with(prefix)))
        .count()
}

const PROBE: &str = r#"
import glob, os, sys, proxmoxer
e = os.environ
api = proxmoxer.ProxmoxAPI(e["PROXMOX_HOST"], port=int(e["PROXMOX_PORT"]), user=e["PROXMOX_USER"],
                           token_name=e["PROXMOX_TOKEN_ID"], token_value=e["PROXMOX_TOKEN_SECRET"],
                           verify_ssl=e["PROXMOX_CA_PATH"])
vms = api.cluster.resources.get(type="vm")
secret = e["PROXMOX_TOKEN_SECRET"].encode()
in_argv = []
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        if secret in open(path, "rb").read():
            in_argv.append(path)
    except OSError:
        pass
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, secret)
os.close(fd)
print("JOB-OK", len(vms), "token", e["PROXMOX_USER"] + "!" + e["PROXMOX_TOKEN_ID"], "argv-leaks", len(in_argv))
print("ADMIN-PASSWORD-VISIBLE", "PVETOKEN_PASSWORD" in e)
"#;

#[test]
fn a_job_runs_with_its_own_token_which_is_gone_afterwards_and_never_in_argv_or_output() {
    let Some(python) = tool("python") else { return };
    let lab = Lab::start("9.2");
    let python = python.display().to_string();
    let seen = lab.dir().join("secret-the-job-saw");
    let seen_text = seen.display().to_string();
    let run = exec(&lab, &["--profile", "ansible", "--ttl", "10m"], &[&python, "-c", PROBE, &seen_text]);
    assert_eq!(run.code, 0, "{}", run.both());
    let line = run.stdout.lines().find(|l| l.starts_with("JOB-OK")).unwrap_or_else(|| panic!("{}", run.both()));
    assert!(line.contains("token automation@pve!ansible-x") && line.ends_with("argv-leaks 0"), "{line}");
    assert!(run.stdout.contains("ADMIN-PASSWORD-VISIBLE False"), "the job must not see the admin password");
    let secret = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(secret.len(), 36, "a PVE secret reached the job");
    let guests: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(guests >= 1, "the job listed the lab's guests with its token: {line}");
    assert!(!run.stderr.contains(&secret), "{}", run.stderr);
    assert_eq!(run.stdout.matches(&secret).count(), 0, "pvetoken printed the secret");
    // After the job: no ansible-x token, no ACL entry of one, and the secret is refused.
    assert!(lab.server_tokens("automation@pve").iter().all(|t| !t.starts_with("ansible-x")));
    assert_eq!(token_acl_entries(&lab, "automation@pve!ansible-x"), 0);
    let id = line.split_whitespace().nth(3).unwrap();
    assert!(lab.as_token(id, &secret).get("/version", &[]).is_err(), "the job's secret died with the job");
}

#[test]
fn the_commands_exit_status_is_pvetokens_and_a_missing_command_is_127_with_no_token_made() {
    let lab = Lab::start("9.1");
    let run = exec(&lab, &["--profile", "packer"], &["sh", "-c", "test -n \"$PROXMOX_TOKEN\" && exit 7"]);
    assert_eq!(run.code, 7, "{}", run.both());
    assert!(lab.server_tokens("automation@pve").is_empty(), "{:?}", lab.server_tokens("automation@pve"));

    lab.clear_log();
    let missing = exec(&lab, &["--profile", "packer"], &["no-such-program-here"]);
    assert_eq!(missing.code, 127, "{}", missing.both());
    assert!(missing.stderr.contains("command not found"), "{}", missing.both());
    assert!(lab.requests().is_empty(), "nothing is asked of the server for a job that cannot run");

    let file_format = exec(&lab, &["--profile", "packer", "--format", "sops"], &["true"]);
    assert_eq!(file_format.code, 2, "{}", file_format.both());
    assert!(file_format.stderr.contains("writes a file"), "{}", file_format.both());
    assert!(lab.requests().is_empty(), "a format exec cannot hand over is refused before any request");

    for ttl in ["30s", "32d", "soon"] {
        let bad = exec(&lab, &["--profile", "packer", "--ttl", ttl], &["true"]);
        assert_eq!(bad.code, 2, "--ttl {ttl}: {}", bad.both());
    }
}

#[test]
fn sigint_is_forwarded_the_token_deleted_and_the_status_is_130() {
    let lab = Lab::start("9.2");
    let ready = lab.lab().ready();
    let ca = ready.ca_file.display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", lab.dir().join("home"))
        .env("PVETOKEN_PASSWORD", &ready.root_password)
        .args(["exec", "--url", &ready.pve_url, "--ca-file", &ca, "--profile", "packer", "--"])
        .args(["sh", "-c", "trap 'kill $! 2>/dev/null; exit 130' INT; sleep 30 >/dev/null 2>&1 & wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab.server_tokens("automation@pve").iter().any(|t| t.starts_with("packer-x")) {
        assert!(Instant::now() < deadline, "the job's token never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(lab.server_tokens("automation@pve").is_empty(), "the token went with the job");
}

#[test]
fn a_kept_token_whose_job_is_gone_is_collected_by_gc() {
    let lab = Lab::start("9.2");
    let kept = exec(&lab, &["--profile", "packer", "--keep"], &["true"]);
    assert_eq!(kept.code, 0, "{}", kept.both());
    assert!(kept.stderr.contains("--keep"), "{}", kept.both());
    let tokens = lab.server_tokens("automation@pve");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let info = lab.root().get(&format!("/access/users/automation@pve/token/{}", tokens[0]), &[]).unwrap();
    let expire = info["expire"].as_i64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((1700..=1900).contains(&(expire - i64::try_from(now).unwrap())), "PVE expiry = now + 30m: {info}");
    assert!(info["comment"].as_str().is_some_and(|c| c.starts_with("pvetoken exec ephemeral")), "{info}");

    let ready = lab.lab().ready();
    let ca = ready.ca_file.display().to_string();
    let gc = lab.pvetoken(&["gc", "--url", &ready.pve_url, "--ca-file", &ca, "--output", "json"]);
    assert_eq!(gc.code, 0, "{}", gc.both());
    let report: serde_json::Value = serde_json::from_str(gc.stdout.trim()).unwrap();
    assert_eq!(report["deleted"].as_array().map(Vec::len), Some(1), "{report}");
    assert!(lab.server_tokens("automation@pve").is_empty());
}

/// `exec` killed (SIGKILL) at each step of a job: while its ACL entry is being written, while it verifies as the
/// token, and while COMMAND runs. Each time at most one token of the job is left, it carries a PVE expiry within its
/// TTL (so PVE refuses it by itself), and `gc` removes it with its ACL entries.
#[test]
fn exec_killed_at_each_step_leaves_at_most_one_expiring_token_which_gc_removes() {
    use std::process::Command;
    let points: [(&str, &str); 3] = [("PUT", "/access/acl"), ("GET", "/access/permissions"), ("", "COMMAND")];
    for (method, path) in points {
        let lab = Lab::start("9.2");
        let ready = lab.lab().ready();
        let ca = ready.ca_file.display().to_string();
        if !method.is_empty() {
            lab.fault(pvetoken_lab::FaultSpec::on(method, path).delay_ms(30_000));
        }
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let mut exec = Command::new(env!("CARGO_BIN_EXE_pvetoken"));
        exec.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", lab.dir().join("home"))
            .env("PVETOKEN_PASSWORD", ready.root_password.as_str())
            .args(["exec", "--url", &ready.pve_url, "--ca-file", &ca, "--profile", "ansible", "--ttl", "10m"])
            .args(["--", "sleep", "30"]);
        lab.kill_when_held(&mut exec, &format!("exec at {method} {path}"));

        let left: Vec<String> =
            lab.server_tokens("automation@pve").into_iter().filter(|t| t.starts_with("ansible-x")).collect();
        assert_eq!(left.len(), 1, "{method} {path}: the job's one token: {left:?}");
        let info = lab.root().get(&format!("/access/users/automation@pve/token/{}", left[0]), &[]).unwrap();
        let expire = info["expire"].as_u64().unwrap();
        assert!((started + 590..=started + 700).contains(&expire), "{method} {path}: expires within its TTL: {info}");

        let gc = lab.pvetoken(&["gc", "--url", &ready.pve_url, "--ca-file", &ca]);
        assert_eq!(gc.code, 0, "{method} {path}: {}", gc.both());
        assert!(lab.server_tokens("automation@pve").iter().all(|t| !t.starts_with("ansible-x")), "{method} {path}");
        assert_eq!(token_acl_entries(&lab, "automation@pve!ansible-x"), 0, "{method} {path}: no ACL entry left");
    }
}

/// The CI-job use with a consumer we did not write: `exec --profile ansible -- ansible-playbook ...` clones the
/// template with community.proxmox's `proxmox_kvm`, with nothing but the variables `exec` put in its environment
/// (community.proxmox 1.4 verifies the lab's CA through `REQUESTS_CA_BUNDLE`); the job's token is gone afterwards.
#[test]
fn an_ansible_playbook_runs_under_exec_with_the_job_tokens_variables_only() {
    let Some(playbook) = tool("ansible-playbook") else { return };
    let lab = Lab::start("9.2");
    let ready = lab.lab().ready();
    let ca = ready.ca_file.display().to_string();
    let root = lab.root();
    let node = ready.node.clone();
    let source = root.get(&format!("/nodes/{node}/qemu/9000/config"), &[]).unwrap();
    let source_name = source["name"].as_str().unwrap().to_owned();
    let book = super::support::clients_dir().join("exec-clone.yml");

    let ansible_home = lab.dir().join("ansible");
    let (node_var, source_var) = (format!("node={node}"), format!("source_name={source_name}"));
    let run = lab.pvetoken_env(
        &[
            "exec",
            "--url",
            ready.pve_url.as_str(),
            "--ca-file",
            ca.as_str(),
            "--profile",
            "ansible",
            "--ttl",
            "10m",
            "--",
            playbook.to_str().unwrap(),
            "-i",
            "localhost,",
            book.to_str().unwrap(),
            "-e",
            node_var.as_str(),
            "-e",
            source_var.as_str(),
        ],
        &[
            ("PVETOKEN_PASSWORD", ready.root_password.as_str()),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
            ("ANSIBLE_HOME", ansible_home.to_str().unwrap()),
            ("ANSIBLE_NOCOLOR", "1"),
            ("ANSIBLE_LOCALHOST_WARNING", "0"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.both());
    assert!(run.stdout.contains("failed=0"), "{}", run.stdout);
    let config = root.get(&format!("/nodes/{node}/qemu/9123/config"), &[]).unwrap();
    assert_eq!(config["name"], "exec-clone", "{config}");
    assert!(lab.server_tokens("automation@pve").iter().all(|t| !t.starts_with("ansible-x")));
    assert_eq!(token_acl_entries(&lab, "automation@pve!ansible-x"), 0);
}
