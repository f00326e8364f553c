//! `pvetoken register semaphore` against the Semaphore simulator: idempotent, verified, unattended, and never
//! printing a secret.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pvetoken_lab::semaphore::{Fault, ProjectRole, SemaphoreScenario, SemaphoreSim};

const SECRET_1: &str = "0b1c2d3e-1111-4222-8333-944455556666";
const SECRET_2: &str = "7f8e9d0c-aaaa-4bbb-8ccc-dddd0000eeee";
const ADMIN_PASSWORD: &str = "adm'in \"pa\\ss\" {x}";

/// The simulator on plain HTTP, on its own runtime, for the duration of a test.
struct Semaphore {
    sim: SemaphoreSim,
    url: String,
    _runtime: tokio::runtime::Runtime,
}

impl Semaphore {
    fn start(scenario: &SemaphoreScenario) -> Self {
        let sim = SemaphoreSim::open(None, scenario, ADMIN_PASSWORD.to_owned()).expect("open simulator");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = sim.router();
        runtime.spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { sim, url, _runtime: runtime }
    }

    fn default() -> Self {
        Self::start(&SemaphoreScenario::default())
    }

    fn env_ids(&self) -> Vec<i64> {
        self.sim.environment_ids(1, "ProxmoxAPI")
    }
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("tempdir") }
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("proxmox-api-token")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("setup.log")
    }

    fn write_token(&self, secret: &str) {
        let text = format!(
            "# written by the test\nPROXMOX_HOST='192.168.1.10'\nPROXMOX_NODE='pve'\n\
             PROXMOX_TOKEN_ID='automation@pve!ansible'\nPROXMOX_TOKEN_SECRET='{secret}'\n\
             PROXMOX_URL='https://192.168.1.10:8006'\n"
        );
        let _ = std::fs::remove_file(self.token_file());
        super::support::write_private(&self.token_file(), text);
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `pvetoken register semaphore --url URL [--project 1] --token-file F <extra>` with `env`, stdin closed.
fn register(semaphore_url: &str, work: &Workspace, env: &[(&str, &str)], extra: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pvetoken"));
    command.args(["register", "semaphore", "--url", semaphore_url]);
    if !extra.contains(&"--project") {
        command.args(["--project", "1"]);
    }
    command
        .arg("--token-file")
        .arg(work.token_file())
        .args(extra)
        .env_remove("SEMAPHORE_PASSWORD")
        .env_remove("SEMAPHORE_API_TOKEN")
        .env_remove("SEMAPHORE_URL")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let Output { status, stdout, stderr } = command.output().expect("run pvetoken");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The default simulator and a workspace whose token file holds `SECRET_1`.
fn with_token() -> (Semaphore, Workspace) {
    let work = Workspace::new();
    work.write_token(SECRET_1);
    (Semaphore::default(), work)
}

/// [`with_token`], registered once as the admin.
fn registered() -> (Semaphore, Workspace) {
    let (semaphore, work) = with_token();
    let run = as_admin(&semaphore, &work, &[]);
    assert_eq!(run.code, 0, "the first registration: {}", run.all());
    (semaphore, work)
}

fn as_admin(semaphore: &Semaphore, work: &Workspace, extra: &[&str]) -> Run {
    register(&semaphore.url, work, &[("SEMAPHORE_PASSWORD", ADMIN_PASSWORD)], extra)
}

fn assert_no_secret(run: &Run) {
    for secret in [SECRET_1, SECRET_2, ADMIN_PASSWORD, "adm'in"] {
        assert!(!run.all().contains(secret), "output shows a secret:\n{}", run.all());
    }
}

fn assert_file_has_no_secret(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for secret in [SECRET_1, SECRET_2, ADMIN_PASSWORD] {
        assert!(!text.contains(secret), "{} contains a secret", path.display());
    }
}

#[test]
fn first_registration_creates_proxmoxapi_with_the_four_seed_variables_as_env_secrets() {
    let (semaphore, work) = with_token();
    let run = as_admin(&semaphore, &work, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.starts_with("created: "), "{}", run.stdout);
    assert_no_secret(&run);
    let ids = semaphore.env_ids();
    assert_eq!(ids.len(), 1);
    let value = |name: &str| semaphore.sim.secret_value(ids[0], name);
    assert_eq!(value("PROXMOX_HOST").as_deref(), Some("192.168.1.10"));
    assert_eq!(value("PROXMOX_NODE").as_deref(), Some("pve"));
    assert_eq!(value("PROXMOX_TOKEN_ID").as_deref(), Some("automation@pve!ansible"));
    assert_eq!(value("PROXMOX_TOKEN_SECRET").as_deref(), Some(SECRET_1));
    assert!(work.token_file().exists(), "the token file is kept without --remove-token-file");
}

#[test]
fn rerun_with_nothing_to_change_reports_unchanged() {
    let (semaphore, work) = registered();
    let rerun = as_admin(&semaphore, &work, &["--output", "json"]);
    assert_eq!(rerun.code, 0, "{}", rerun.all());
    let report: serde_json::Value = serde_json::from_str(rerun.stdout.trim()).expect("json output");
    assert_eq!(report["status"], "unchanged");
    assert_eq!(report["verified"], true);
    assert_eq!(semaphore.env_ids().len(), 1);
}

#[test]
fn rotation_replaces_the_secret_in_place() {
    let (semaphore, work) = registered();
    let id = semaphore.env_ids()[0];
    work.write_token(SECRET_2);
    let run = as_admin(&semaphore, &work, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.starts_with("updated: "), "{}", run.stdout);
    assert_no_secret(&run);
    assert_eq!(semaphore.env_ids(), [id], "the same environment is updated");
    assert_eq!(semaphore.sim.secret_value(id, "PROXMOX_TOKEN_SECRET").as_deref(), Some(SECRET_2));
}

#[test]
fn community_proxmox_layout_replaces_the_seed_variables() {
    let (semaphore, work) = registered();
    let run = as_admin(&semaphore, &work, &["--layout", "community-proxmox"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let id = semaphore.env_ids()[0];
    assert_eq!(semaphore.sim.secret_value(id, "PROXMOX_TOKEN_ID").as_deref(), Some("ansible"));
    assert_eq!(semaphore.sim.secret_value(id, "PROXMOX_USER").as_deref(), Some("automation@pve"));
    assert_eq!(semaphore.sim.secret_value(id, "PROXMOX_PORT").as_deref(), Some("8006"));
    assert_eq!(semaphore.sim.secret_value(id, "PROXMOX_NODE"), None, "seed-only variable removed");
}

#[test]
fn manager_may_register_but_guest_is_refused_with_the_role_to_ask_for() {
    let semaphore = Semaphore::default();
    semaphore.sim.add_user("mgr", "mgr-pw", Some((1, ProjectRole::Manager)));
    semaphore.sim.add_user("visitor", "guest-pw", Some((1, ProjectRole::Guest)));
    let work = Workspace::new();
    work.write_token(SECRET_1);
    let guest = register(&semaphore.url, &work, &[("SEMAPHORE_PASSWORD", "guest-pw")], &["--user", "visitor"]);
    assert_eq!(guest.code, 3, "{}", guest.all());
    assert!(guest.stderr.contains("owner or manager"), "{}", guest.stderr);
    assert!(semaphore.env_ids().is_empty());
    let manager = register(&semaphore.url, &work, &[("SEMAPHORE_PASSWORD", "mgr-pw")], &["--user", "mgr"]);
    assert_eq!(manager.code, 0, "{}", manager.all());
    assert_eq!(semaphore.env_ids().len(), 1);
}

#[test]
fn api_token_from_the_environment_is_used_without_a_password() {
    let semaphore = Semaphore::default();
    let token = semaphore.sim.create_api_token("admin").expect("token");
    let work = Workspace::new();
    work.write_token(SECRET_1);
    let run = register(&semaphore.url, &work, &[("SEMAPHORE_API_TOKEN", &token)], &["--user", "nobody"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.all().contains(&token));
}

#[test]
fn wrong_password_exits_3_with_a_hint_and_keeps_the_token_file() {
    let (semaphore, work) = with_token();
    let run = register(&semaphore.url, &work, &[("SEMAPHORE_PASSWORD", "wrong")], &["--remove-token-file"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("wrong login or password"), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(work.token_file().exists());
    assert!(semaphore.env_ids().is_empty());
}

#[test]
fn unknown_project_exits_3_and_names_the_visible_projects() {
    let (semaphore, work) = with_token();
    let run = as_admin(&semaphore, &work, &["--project", "Nope"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("PrivateBox (id 1)"), "{}", run.stderr);
    let by_id = as_admin(&semaphore, &work, &["--project", "42"]);
    assert_eq!(by_id.code, 3, "{}", by_id.all());
    let by_name = as_admin(&semaphore, &work, &["--project", "PrivateBox"]);
    assert_eq!(by_name.code, 0, "{}", by_name.all());
}

#[test]
fn a_500_after_semaphore_stored_the_row_is_rolled_back_and_a_rerun_succeeds() {
    let (semaphore, work) = with_token();
    semaphore.sim.inject_fault(Fault::AfterEnvironmentCreated);
    let failed = as_admin(&semaphore, &work, &["--remove-token-file"]);
    assert_eq!(failed.code, 3, "{}", failed.all());
    assert!(failed.stderr.contains("half-made environment was removed"), "{}", failed.stderr);
    assert!(semaphore.env_ids().is_empty(), "no half-made environment is left");
    assert!(work.token_file().exists(), "the token file is kept after a failure");
    let rerun = as_admin(&semaphore, &work, &[]);
    assert_eq!(rerun.code, 0, "{}", rerun.all());
    assert_eq!(semaphore.env_ids().len(), 1);
}

#[test]
fn a_500_in_the_middle_of_a_rotation_is_finished_by_a_rerun() {
    let (semaphore, work) = registered();
    work.write_token(SECRET_2);
    semaphore.sim.inject_fault(Fault::AfterFirstSecretOperation);
    let failed = as_admin(&semaphore, &work, &[]);
    assert_eq!(failed.code, 3, "{}", failed.all());
    assert!(failed.stderr.contains("rerun"), "{}", failed.stderr);
    let rerun = as_admin(&semaphore, &work, &[]);
    assert_eq!(rerun.code, 0, "{}", rerun.all());
    let id = semaphore.env_ids()[0];
    assert_eq!(semaphore.sim.secret_value(id, "PROXMOX_TOKEN_SECRET").as_deref(), Some(SECRET_2));
    let again = as_admin(&semaphore, &work, &[]);
    assert!(again.stdout.starts_with("unchanged: "), "{}", again.all());
}

#[test]
fn guest_side_step_skips_without_a_token_file_and_removes_it_after_verified_registration() {
    let semaphore = Semaphore::default();
    let work = Workspace::new();
    let log = work.log_file();
    let log_arg = log.to_str().expect("utf-8 path");
    let flags = ["--if-token-file", "--remove-token-file", "--log-file", log_arg];
    let skipped = as_admin(&semaphore, &work, &flags);
    assert_eq!(skipped.code, 0, "{}", skipped.all());
    assert_eq!(skipped.stdout.lines().count(), 1, "{}", skipped.stdout);
    assert!(semaphore.env_ids().is_empty());

    work.write_token(SECRET_1);
    let run = as_admin(&semaphore, &work, &flags);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!work.token_file().exists(), "removed after the verified registration");
    assert_eq!(semaphore.env_ids().len(), 1);
    let text = std::fs::read_to_string(&log).expect("log written");
    assert!(text.contains("removed"), "{text}");
    assert_file_has_no_secret(&log);
    assert_file_has_no_secret(&work.dir.path().join("proxmox-api-token.semaphore.json"));
}

#[test]
fn no_credentials_and_no_terminal_is_a_usage_error_not_a_prompt() {
    let (semaphore, work) = with_token();
    let run = register(&semaphore.url, &work, &[], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("SEMAPHORE_API_TOKEN"), "{}", run.stderr);
}

#[test]
fn https_url_to_a_plain_http_semaphore_says_to_use_http() {
    let (semaphore, work) = with_token();
    let https = semaphore.url.replacen("http://", "https://", 1);
    let run = register(&https, &work, &[("SEMAPHORE_PASSWORD", ADMIN_PASSWORD)], &[]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("plain HTTP"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("--url {}", semaphore.url)), "{}", run.stderr);
}

#[test]
fn unreachable_semaphore_exits_3_with_a_hint() {
    let work = Workspace::new();
    work.write_token(SECRET_1);
    // A port that was just free: bind, learn it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let run = register(&format!("http://127.0.0.1:{port}"), &work, &[("SEMAPHORE_PASSWORD", "x")], &[]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("is Semaphore running"), "{}", run.stderr);
}

#[test]
fn an_environment_name_used_twice_is_refused_and_nothing_changes() {
    let (semaphore, work) = registered();
    // A second environment of the same name, as a rerun of PrivateBox's old script would have made.
    let other = Workspace::new();
    other.write_token(SECRET_2);
    let temp_project = semaphore.sim.add_user("tmp", "tmp-pw", Some((1, ProjectRole::Manager)));
    assert!(temp_project > 0);
    let duplicate = register(
        &semaphore.url,
        &other,
        &[("SEMAPHORE_PASSWORD", "tmp-pw")],
        &["--user", "tmp", "--environment", "ProxmoxAPI-dup"],
    );
    assert_eq!(duplicate.code, 0, "{}", duplicate.all());
    // Rename it to ProxmoxAPI through the API: Semaphore does not keep names unique.
    let dup_id = semaphore.sim.environment_ids(1, "ProxmoxAPI-dup")[0];
    rename_environment(&semaphore, dup_id, "ProxmoxAPI");
    let first_id = semaphore.env_ids()[0];
    work.write_token(SECRET_2);
    let run = as_admin(&semaphore, &work, &[]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("are named `ProxmoxAPI`"), "{}", run.stderr);
    assert_eq!(semaphore.sim.secret_value(first_id, "PROXMOX_TOKEN_SECRET").as_deref(), Some(SECRET_1));
}

fn rename_environment(semaphore: &Semaphore, id: i64, name: &str) {
    use pvetoken_client::semaphore::{SemaphoreAuth, SemaphoreClient};
    let token = semaphore.sim.create_api_token("admin").expect("token");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let http = pvetoken_client::http_client(&pvetoken_client::TlsSettings::default()).expect("http client");
        let auth = SemaphoreAuth::ApiToken(pvetoken_api::Secret::from(token));
        let (client, _) = SemaphoreClient::connect(http, &semaphore.url, auth).await.expect("connect");
        let request = pvetoken_api::semaphore::EnvironmentRequest {
            id: Some(id),
            name: name.to_owned(),
            project_id: 1,
            password: None,
            json: "{}".to_owned(),
            env: Some("{}".to_owned()),
            secrets: Vec::new(),
        };
        client.update_environment(1, id, &request).await.expect("rename");
    });
}

#[test]
fn semaphore_2_10_answering_204_without_an_id_still_registers_and_verifies() {
    let scenario = SemaphoreScenario { create_answers_no_content: true, ..SemaphoreScenario::default() };
    let semaphore = Semaphore::start(&scenario);
    let work = Workspace::new();
    work.write_token(SECRET_1);
    let run = as_admin(&semaphore, &work, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(semaphore.env_ids().len(), 1);
    assert!(as_admin(&semaphore, &work, &[]).stdout.starts_with("unchanged: "));
}

#[test]
fn a_token_file_readable_by_others_is_refused_before_any_request() {
    let (semaphore, work) = with_token();
    std::fs::set_permissions(work.token_file(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    let run = as_admin(&semaphore, &work, &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    assert!(semaphore.env_ids().is_empty());
}
