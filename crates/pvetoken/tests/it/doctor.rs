//! `pvetoken doctor` against the in-process lab: a healthy token passes, then each fault is provoked one by one
//! (missing file, mode 0644, a bad value, a bad consumer variable, a closed port, a wrong pin, a wrong secret, a
//! role without VM.GuestAgent.Audit, an expiring token, a Semaphore without the environment or with an environment
//! no template uses) and doctor names it
//! with its id, stops at the first blocking one, and never prints a secret.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_lab::semaphore::{ScenarioInventory, ScenarioRepository, ScenarioTemplate};
use pvetoken_lab::{LabConfig, RunningLab};
use pvetoken_render::TokenFile;
use serde_json::Value;

pub(crate) struct Lab {
    pub(crate) lab: RunningLab,
    _runtime: tokio::runtime::Runtime,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) json: Value,
    pub(crate) all: String,
}

impl Run {
    pub(crate) fn ids(&self) -> Vec<String> {
        self.json
            .get("findings")
            .and_then(Value::as_array)
            .map(|all| all.iter().filter_map(|f| f.get("id").and_then(Value::as_str).map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    fn finding(&self, id: &str) -> Value {
        self.json
            .get("findings")
            .and_then(Value::as_array)
            .and_then(|all| all.iter().find(|f| f.get("id").and_then(Value::as_str) == Some(id)).cloned())
            .unwrap_or_else(|| panic!("no finding {id} in {}", self.all))
    }

    pub(crate) fn status_of(&self, check: &str) -> String {
        self.json
            .get("checks")
            .and_then(Value::as_array)
            .and_then(|all| all.iter().find(|c| c.get("check").and_then(Value::as_str) == Some(check)))
            .and_then(|c| c.get("status").and_then(Value::as_str))
            .unwrap_or("absent")
            .to_owned()
    }
}

impl Lab {
    pub(crate) fn start() -> Lab {
        Lab::start_with(LabConfig::default())
    }

    pub(crate) fn start_with(config: LabConfig) -> Lab {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let lab = runtime.block_on(pvetoken_lab::start(config)).expect("lab starts");
        Lab { lab, _runtime: runtime, dir: tempfile::tempdir().expect("temp dir") }
    }

    /// A `packer` token created into `token.env` in the lab's directory: the file and the secret.
    pub(crate) fn packer_token(&self) -> (PathBuf, Secret) {
        let file = self.path("token.env");
        let secret = self.create("packer", &file, &[]);
        (file, secret)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `pvetoken ARGS --output json` with only the lab's credentials in the environment.
    pub(crate) fn pvetoken(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pvetoken"));
        command.args(args).args(["--output", "json"]).env_clear();
        command.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        command.env("HOME", self.dir.path());
        command.envs(env.iter().copied());
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = command.spawn().expect("pvetoken runs");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes()).expect("stdin");
        }
        let output = child.wait_with_output().expect("pvetoken finishes");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let json = stdout.lines().rev().find_map(|line| serde_json::from_str(line).ok()).unwrap_or(Value::Null);
        Run { code: output.status.code().unwrap_or(-1), json, all: format!("{stdout}\n{stderr}") }
    }

    pub(crate) fn root_env(&self) -> Vec<(&str, &str)> {
        vec![("PVETOKEN_PASSWORD", self.lab.ready().root_password.as_str())]
    }

    /// `pvetoken create --profile PROFILE` into `file` (extra args appended); returns the token file's secret.
    pub(crate) fn create(&self, profile: &str, file: &Path, extra: &[&str]) -> Secret {
        let ready = self.lab.ready();
        let file_text = file.display().to_string();
        let mut args = vec![
            "create",
            "--profile",
            profile,
            "--token-file",
            file_text.as_str(),
            "--url",
            ready.pve_url.as_str(),
            "--fingerprint",
            ready.fingerprint_sha256.as_str(),
        ];
        args.extend(extra);
        let run = self.pvetoken(&args, &self.root_env(), None);
        assert_eq!(run.code, 0, "create: {}", run.all);
        read_token(file).secret
    }

    pub(crate) fn doctor(&self, file: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let file_text = file.display().to_string();
        let mut args = vec!["doctor", "--profile", "packer", "--token-file", file_text.as_str()];
        args.extend(extra);
        self.pvetoken(&args, env, None)
    }

    /// As root through the API: the role's privileges without `privilege`.
    pub(crate) fn remove_from_role(&self, role: &str, privilege: &str) {
        let ready = self.lab.ready();
        self._runtime.block_on(async {
            let admin = super::support::lab_root(ready).await;
            let privs: Vec<String> =
                admin.role(role).await.expect("role").expect("exists").into_iter().filter(|p| p != privilege).collect();
            admin.set_role(role, &privs).await.expect("set role");
        });
    }
}

pub(crate) fn read_token(path: &Path) -> TokenFile {
    TokenFile::parse(&std::fs::read_to_string(path).expect("token file")).expect("parses")
}

fn write_token(path: &Path, token: &TokenFile) {
    let _ = std::fs::remove_file(path);
    super::support::write_private(path, token.render());
}

fn assert_no_secret(run: &Run, secret: &Secret) {
    assert!(!run.all.contains(secret.expose_secret()), "the secret leaked: {}", run.all);
}

#[test]
fn a_healthy_token_passes_every_check_and_exits_0_on_8_4_9_1_and_9_2() {
    for version in [pvetoken_acl::PveVersion::V8_4, pvetoken_acl::PveVersion::V9_1, pvetoken_acl::PveVersion::V9_2] {
        let lab = Lab::start_with(LabConfig { pve_version: version, ..LabConfig::default() });
        let (file, secret) = lab.packer_token();
        let run = lab.doctor(&file, &[], &[]);
        assert_eq!(run.code, 0, "{version}: {}", run.all);
        assert!(run.ids().is_empty(), "{version}: {:?}", run.ids());
        for check in ["token-file", "environment", "dns", "tcp", "tls", "auth", "version", "privileges", "expiry"] {
            assert_eq!(run.status_of(check), "ok", "{version} {check}: {}", run.all);
        }
        assert_eq!(run.status_of("semaphore"), "skipped");
        assert_no_secret(&run, &secret);
    }
}

#[test]
fn a_missing_token_file_blocks_and_every_later_check_is_skipped() {
    let lab = Lab::start();
    let run = lab.doctor(&lab.path("nothing.env"), &[], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.ids(), ["token-file-missing"]);
    assert_eq!(run.json["blocked_by"], "token-file-missing");
    assert_eq!(run.status_of("auth"), "skipped");
    let fixes = run.finding("token-file-missing")["fix"].to_string();
    assert!(fixes.contains("pveum user token add") && fixes.contains("pvetoken create --profile packer"), "{fixes}");
}

#[test]
fn a_token_file_readable_by_others_blocks_with_chmod_and_rotate() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.ids(), ["token-file-mode"]);
    let finding = run.finding("token-file-mode");
    assert!(finding["what"].as_str().unwrap_or_default().contains("0644"));
    assert!(finding["fix"][0].as_str().unwrap_or_default().starts_with("chmod 600"));
    assert_no_secret(&run, &secret);
}

#[test]
fn a_whole_token_string_in_the_secret_field_blocks_without_echoing_it() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let mut token = read_token(&file);
    let whole = format!("PVEAPIToken={}={}", token.token_id, secret.expose_secret());
    token.secret = Secret::from(whole);
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.ids(), ["token-secret-format"]);
    assert_eq!(run.finding("token-secret-format")["severity"], "blocking");
    assert_no_secret(&run, &secret);
}

#[test]
fn a_prefixed_packer_token_in_the_shell_is_an_error_but_the_server_checks_still_run() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let token = read_token(&file);
    let prefixed = format!("PVEAPIToken={}={}", token.token_id, secret.expose_secret());
    let env = [("PROXMOX_USERNAME", token.token_id.as_str()), ("PROXMOX_TOKEN", prefixed.as_str())];
    let run = lab.doctor(&file, &[], &env);
    assert_eq!(run.code, 1);
    assert_eq!(run.ids(), ["env-pveapitoken-prefix"]);
    assert_eq!(run.status_of("environment"), "failed");
    assert_eq!(run.status_of("privileges"), "ok", "not blocking: {}", run.all);
    assert_no_secret(&run, &secret);
}

#[test]
fn a_closed_port_blocks_at_tcp() {
    let lab = Lab::start();
    let (file, _) = lab.packer_token();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut token = read_token(&file);
    token.url = format!("https://127.0.0.1:{port}");
    token.port = port;
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.ids(), ["tcp-refused"]);
    assert_eq!(run.status_of("dns"), "ok");
    assert_eq!(run.status_of("tls"), "skipped");
}

#[test]
fn a_wrong_pin_blocks_at_tls_and_names_the_presented_fingerprint() {
    let lab = Lab::start();
    let (file, _) = lab.packer_token();
    let mut token = read_token(&file);
    token.fingerprint = Some(vec!["AB"; 32].join(":"));
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.ids(), ["tls-pin-mismatch"]);
    let what = run.finding("tls-pin-mismatch")["what"].as_str().unwrap_or_default().to_owned();
    assert!(what.contains(&lab.lab.ready().fingerprint_sha256), "{what}");
}

#[test]
fn a_wrong_secret_blocks_at_auth_with_rotate_as_the_fix() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let mut token = read_token(&file);
    token.secret = Secret::from("00000000-1111-2222-3333-444444444444".to_owned());
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.ids(), ["token-auth-failed"]);
    assert!(run.finding("token-auth-failed")["fix"].to_string().contains("pvetoken rotate"));
    assert_eq!(run.status_of("privileges"), "skipped");
    assert_no_secret(&run, &secret);
}

#[test]
fn a_role_without_guest_agent_audit_predicts_the_403_and_says_the_role_lacks_it() {
    let lab = Lab::start();
    let (file, _) = lab.packer_token();
    lab.remove_from_role("Token-packer", "VM.GuestAgent.Audit");
    let run = lab.doctor(&file, &[], &lab.root_env());
    assert_eq!(run.code, 1, "{}", run.all);
    assert_eq!(run.ids(), ["privilege-missing"]);
    let finding = run.finding("privilege-missing");
    assert!(finding["what"].as_str().unwrap_or_default().contains("VM.GuestAgent.Audit on /vms"), "{finding}");
    assert!(finding["what"].as_str().unwrap_or_default().contains("role Token-packer lacks it"), "{finding}");
    assert!(finding["why"].as_str().unwrap_or_default().contains("403 Permission check failed"), "{finding}");
    assert_eq!(finding["fix"][0], "pveum role modify Token-packer --append 1 --privs VM.GuestAgent.Audit");
    // Without admin credentials doctor still finds it, and says why it cannot tell the side.
    let run = lab.doctor(&file, &[], &[]);
    assert!(run.ids().contains(&"privilege-missing".to_owned()) && run.ids().contains(&"admin-unavailable".to_owned()));
}

#[test]
fn a_token_expiring_within_14_days_is_a_warning_and_exits_0() {
    let lab = Lab::start();
    let file = lab.path("token.env");
    lab.create("packer", &file, &["--expire", "3d"]);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.code, 0, "{}", run.all);
    assert_eq!(run.ids(), ["token-expiring"]);
    assert_eq!(run.finding("token-expiring")["severity"], "warning");
}

#[test]
fn semaphore_without_the_environment_is_named_and_a_registration_clears_it() {
    let lab = Lab::start();
    let (file, _) = lab.packer_token();
    let ready = lab.lab.ready();
    let semaphore = lab.semaphore_args();
    let env = [("SEMAPHORE_PASSWORD", ready.semaphore_password.as_str())];
    let run = lab.doctor(&file, &semaphore, &env);
    assert_eq!(run.code, 1, "{}", run.all);
    assert_eq!(run.ids(), ["semaphore-environment-missing"]);
    assert!(run.finding("semaphore-environment-missing")["fix"].to_string().contains("pvetoken register semaphore"));
    lab.register_semaphore(&file, &[]);
    let run = lab.doctor(&file, &semaphore, &env);
    assert_eq!(run.code, 0, "{}", run.all);
    // The default lab project has no template: the registered environment is there but nothing uses it.
    assert_eq!(run.ids(), ["semaphore-environment-unused"], "{}", run.all);
    let wrong = [("SEMAPHORE_PASSWORD", "not-the-password")];
    assert_eq!(lab.doctor(&file, &semaphore, &wrong).ids(), ["semaphore-login-refused"]);
}

impl Lab {
    /// A lab whose Semaphore project 1 has an inventory, a repository and the template `Proxmox Discovery`, which
    /// uses the project's `Empty` environment (as a template does when nobody picked the right variable group).
    fn start_with_a_template() -> Lab {
        let mut config = LabConfig::default();
        let semaphore = &mut config.scenario.semaphore;
        semaphore.inventories = vec![ScenarioInventory {
            project: 1,
            name: "localhost".to_owned(),
            inventory: "localhost ansible_connection=local".to_owned(),
            kind: "static".to_owned(),
        }];
        semaphore.repositories = vec![ScenarioRepository {
            project: 1,
            name: "privatebox".to_owned(),
            git_url: "https://github.com/Cyber-Pixie/privatebox.git".to_owned(),
            git_branch: "main".to_owned(),
        }];
        semaphore.templates = vec![ScenarioTemplate {
            project: 1,
            name: "Proxmox Discovery".to_owned(),
            playbook: "ansible/playbooks/services/proxmox-discovery.yml".to_owned(),
            app: "ansible".to_owned(),
            inventory: Some("localhost".to_owned()),
            repository: "privatebox".to_owned(),
            environment: Some("Empty".to_owned()),
        }];
        Lab::start_with(config)
    }

    /// `pvetoken register semaphore` of `file` into project 1 (environment `ProxmoxAPI`), `extra` arguments
    /// appended; it must succeed.
    pub(crate) fn register_semaphore(&self, file: &Path, extra: &[&str]) {
        let ready = self.lab.ready();
        let file_text = file.display().to_string();
        let mut args = super::support::register_semaphore_args(ready, &file_text);
        args.extend_from_slice(extra);
        let run = self.pvetoken(&args, &[("SEMAPHORE_PASSWORD", ready.semaphore_password.as_str())], None);
        assert_eq!(run.code, 0, "register: {}", run.all);
    }

    /// As a Semaphore user would in the UI: sets the environment of template `name` of project 1 to the
    /// environment `environment` (read with pvetoken's client, written with the API's PUT of the whole template).
    fn attach_environment(&self, name: &str, environment: &str) {
        let ready = self.lab.ready();
        self._runtime.block_on(async {
            let http = super::support::lab_http(ready);
            let client = super::support::lab_semaphore_admin(ready).await;
            let env = client.environments_named(1, environment).await.expect("environments");
            let mut template = client
                .templates(1)
                .await
                .expect("templates")
                .into_iter()
                .find(|template| template.name == name)
                .expect("the template exists");
            client.logout().await;
            template.environment_id = Some(env.first().expect("the environment exists").id);
            let login = serde_json::json!({ "auth": ready.semaphore_user, "password": ready.semaphore_password });
            let response = http
                .post(format!("{}/api/auth/login", ready.semaphore_url))
                .header("content-type", "application/json")
                .body(login.to_string())
                .send()
                .await
                .expect("login");
            let cookie =
                response.headers()["set-cookie"].to_str().expect("cookie").split(';').next().map(str::to_owned);
            let response = http
                .put(format!("{}/api/project/1/templates/{}", ready.semaphore_url, template.id))
                .header("cookie", cookie.expect("session cookie"))
                .header("content-type", "application/json")
                .body(serde_json::to_string(&template).expect("template JSON"))
                .send()
                .await
                .expect("PUT template");
            assert_eq!(response.status().as_u16(), 204, "PUT template");
        });
    }

    /// doctor's flags for the lab's Semaphore (its URL, pin and admin; the password comes from the environment).
    pub(crate) fn semaphore_args(&self) -> Vec<&str> {
        let ready = self.lab.ready();
        vec![
            "--semaphore-url",
            ready.semaphore_url.as_str(),
            "--semaphore-fingerprint",
            ready.fingerprint_sha256.as_str(),
            "--semaphore-user",
            ready.semaphore_user.as_str(),
        ]
    }
}

#[test]
fn an_environment_no_template_uses_is_a_warning_naming_the_templates_and_attaching_it_clears_it() {
    let lab = Lab::start_with_a_template();
    let (file, secret) = lab.packer_token();
    lab.register_semaphore(&file, &[]);
    let env = [("SEMAPHORE_PASSWORD", lab.lab.ready().semaphore_password.as_str())];
    let run = lab.doctor(&file, &lab.semaphore_args(), &env);
    assert_eq!(run.code, 0, "a warning does not fail doctor: {}", run.all);
    assert_eq!(run.ids(), ["semaphore-environment-unused"], "{}", run.all);
    let finding = run.finding("semaphore-environment-unused");
    assert_eq!(finding["severity"], "warning");
    let what = finding["what"].as_str().unwrap_or_default();
    assert!(what.contains("ProxmoxAPI") && what.contains("Proxmox Discovery"), "{finding}");
    let fix = finding["fix"].to_string();
    assert!(fix.contains("Task Templates") && fix.contains("/api/project/1/templates/"), "{finding}");
    assert_no_secret(&run, &secret);

    lab.attach_environment("Proxmox Discovery", "ProxmoxAPI");
    let run = lab.doctor(&file, &lab.semaphore_args(), &env);
    assert_eq!(run.code, 0, "{}", run.all);
    assert!(run.ids().is_empty(), "{}", run.all);
    assert_eq!(run.status_of("semaphore"), "ok");
}
