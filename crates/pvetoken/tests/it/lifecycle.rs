//! The token lifecycle (`create`, `verify`, `list`, `revoke`, `rotate`) against an in-process lab on PVE 8.4 and
//! 9.1, through the built binary. Credentials only by environment (`PVETOKEN_PASSWORD`), never argv.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pvetoken_api::ExposeSecret;
use pvetoken_lab::{FaultSpec, LabConfig, RunningLab};

use crate::support::TempDir;

/// An in-process lab plus a private working directory.
pub struct Lab {
    lab: Option<RunningLab>,
    runtime: tokio::runtime::Runtime,
    dir: TempDir,
}

/// The token (id, secret) saved in the token file `path`, or `None` when there is none.
pub fn saved_in(path: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = pvetoken_render::TokenFile::parse(&text).expect("token file parses");
    Some((token.token_id.to_string(), token.secret.expose_secret().to_owned()))
}

/// One run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn both(&self) -> String {
        format!("exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }

    /// The `error:` lines.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr.lines().filter(|line| line.starts_with("error:")).collect()
    }
}

impl Lab {
    pub fn start(version: &str) -> Lab {
        Lab::start_with(LabConfig { pve_version: version.parse().expect("lab version"), ..LabConfig::default() })
    }

    pub fn start_with(config: LabConfig) -> Lab {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let lab = runtime.block_on(pvetoken_lab::start(config)).expect("lab starts");
        let dir = TempDir::new("pvetoken-lifecycle");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Lab { lab: Some(lab), runtime, dir }
    }

    pub fn lab(&self) -> &RunningLab {
        self.lab.as_ref().expect("running")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir().join("tokens").join("token.env")
    }

    /// `pvetoken ARGS` with a clean environment holding only the admin password.
    pub fn pvetoken(&self, args: &[&str]) -> Run {
        self.pvetoken_env(args, &[("PVETOKEN_PASSWORD", self.lab().ready().root_password.as_str())])
    }

    pub fn pvetoken_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pvetoken"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir().join("home"))
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        Run::from(command.output().expect("run pvetoken"))
    }

    /// `--url URL --fingerprint FP` of the lab.
    pub fn connection(&self) -> Vec<String> {
        let ready = self.lab().ready();
        vec!["--url".into(), ready.pve_url.clone(), "--fingerprint".into(), ready.fingerprint_sha256.clone()]
    }

    /// `create --profile P --token-file F --url .. --fingerprint .. EXTRA`.
    pub fn create(&self, profile: &str, extra: &[&str]) -> Run {
        self.create_in(&self.token_file(), profile, extra)
    }

    /// `create` with another token file.
    pub fn create_in(&self, file: &Path, profile: &str, extra: &[&str]) -> Run {
        let args = self.create_args(file, profile, extra);
        self.pvetoken(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `create` with exactly the environment `env` (no admin password unless `env` holds one).
    pub fn create_env(&self, profile: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let args = self.create_args(&self.token_file(), profile, extra);
        self.pvetoken_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), env)
    }

    fn create_args(&self, file: &Path, profile: &str, extra: &[&str]) -> Vec<String> {
        let file = file.display().to_string();
        let mut args: Vec<String> =
            vec!["create".into(), "--profile".into(), profile.into(), "--token-file".into(), file];
        args.extend(self.connection());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// A command that reads the token file (`verify`, `rotate`).
    pub fn with_token_file(&self, command: &str, extra: &[&str]) -> Run {
        let file = self.token_file().display().to_string();
        let mut args = vec![command, "--token-file", file.as_str()];
        args.extend_from_slice(extra);
        self.pvetoken(&args)
    }

    pub fn root(&self) -> crate::support::Api {
        let ready = self.lab().ready();
        let ready = self.support_ready(ready);
        crate::support::Api::login(&ready, "root@pam", &ready.root_password)
    }

    fn support_ready(&self, ready: &pvetoken_lab::ReadyInfo) -> crate::support::Ready {
        crate::support::Ready {
            pve_url: ready.pve_url.clone(),
            ca_file: ready.ca_file.clone(),
            fingerprint_sha256: ready.fingerprint_sha256.clone(),
            root_user: ready.root_user.clone(),
            root_password: pvetoken_api::Secret::from(ready.root_password.clone()),
            node: ready.node.clone(),
            semaphore_url: ready.semaphore_url.clone(),
            semaphore_user: ready.semaphore_user.clone(),
            semaphore_password: pvetoken_api::Secret::from(ready.semaphore_password.clone()),
        }
    }

    /// An API client authenticated as a token.
    pub fn as_token(&self, full_id: &str, secret: &str) -> crate::support::Api {
        let ready = self.support_ready(self.lab().ready());
        crate::support::Api::with_token(&ready, full_id, &pvetoken_api::Secret::from(secret.to_owned()))
    }

    /// Requests in the lab log since the last clear.
    pub fn requests(&self) -> Vec<pvetoken_lab::RequestRecord> {
        self.lab().request_log()
    }

    pub fn clear_log(&self) {
        self.lab().clear_request_log();
    }

    /// Waits (bounded, ~10 s) until the lab's request log stops growing for 0.4 s: a client held at a delayed
    /// request, or busy elsewhere.
    pub fn wait_until_quiet(&self) {
        let (mut seen, mut quiet_for) = (0, 0);
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = self.requests().len();
            quiet_for = if now == seen && now > 0 { quiet_for + 1 } else { 0 };
            seen = now;
            if quiet_for >= 4 {
                return;
            }
        }
    }

    /// Starts `command` (no terminal, output discarded), waits until it is held (the lab's log stops growing: at a
    /// delayed request, or in a child command), asserts it is still running, kills it (`kill -9`) and clears the
    /// faults, as a power cut at that point would.
    pub fn kill_when_held(&self, command: &mut std::process::Command, what: &str) {
        use std::process::Stdio;
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        self.wait_until_quiet();
        assert!(child.try_wait().unwrap().is_none(), "{what}: it ended before it was killed");
        child.kill().unwrap();
        child.wait().unwrap();
        self.lab().clear_faults();
    }

    /// The `[clusters.NAME]` section of an apply file for this lab: its URL, its CA and a 0600 file with root's
    /// password (written once, in the lab's directory).
    pub fn cluster_section(&self, name: &str) -> String {
        let ready = self.lab().ready();
        let password = self.dir().join(format!("{name}.pass"));
        if !password.exists() {
            crate::support::write_private(&password, &ready.root_password);
        }
        format!(
            "[clusters.{name}]\nurl = \"{}\"\nca_file = \"{}\"\nauth_user = \"root@pam\"\npassword_file = \"{}\"\n\n",
            ready.pve_url,
            ready.ca_file.display(),
            password.display()
        )
    }

    pub fn fault(&self, fault: FaultSpec) {
        self.lab().inject_fault(fault);
    }

    /// The saved token (id, secret) or `None` when there is no token file.
    pub fn saved(&self) -> Option<(String, String)> {
        saved_in(&self.token_file())
    }

    /// `register semaphore` of the token file into the lab's Semaphore, the password from `password_file` and no
    /// credential in the environment.
    pub fn register_semaphore_with_password_file(&self, password_file: &Path) -> Run {
        let (token_file, pass) = (self.token_file().display().to_string(), password_file.display().to_string());
        let mut args = crate::support::register_semaphore_args(self.lab().ready(), &token_file);
        args.extend(["--password-file", pass.as_str()]);
        self.pvetoken_env(&args, &[])
    }

    /// `plan -f FILE --detailed-exitcode` (0 nothing to do, 2 changes), with no password in the environment.
    pub fn plan(&self, file: &Path) -> Run {
        self.pvetoken_env(&["plan", "-f", &file.display().to_string(), "--detailed-exitcode"], &[])
    }

    /// `apply -f FILE --auto-approve`, with no password in the environment.
    pub fn apply(&self, file: &Path) -> Run {
        self.pvetoken_env(&["apply", "-f", &file.display().to_string(), "--auto-approve"], &[])
    }

    /// Tokens of `user` on the server (names).
    pub fn server_tokens(&self, user: &str) -> Vec<String> {
        let list = self.root().get(&format!("/access/users/{user}/token"), &[]).unwrap_or_default();
        let mut names: Vec<String> =
            list.as_array().into_iter().flatten().filter_map(|t| t["tokenid"].as_str().map(str::to_owned)).collect();
        names.sort();
        names
    }

    /// The invariant of the lifecycle: every token of `user` on the server is the one in the token file, and the
    /// saved secret works.
    pub fn assert_no_token_without_its_secret(&self, user: &str, context: &str) {
        let tokens = self.server_tokens(user);
        let saved = self.saved();
        for name in &tokens {
            let full = format!("{user}!{name}");
            let Some((id, secret)) = &saved else {
                panic!("{context}: {full} is on the server but there is no token file");
            };
            assert_eq!(id, &full, "{context}: {full} is on the server but the token file holds {id}");
            let answer = self.as_token(id, secret).get("/access/permissions", &[]);
            assert!(answer.is_ok(), "{context}: the saved secret of {full} is refused: {answer:?}");
        }
    }

    /// Waits (bounded) until the lab logged `count` requests matching `method path`; a delayed request may also
    /// be abandoned by the server when the client hangs up, so a timeout is not an error.
    pub fn settle(&self, method: &str, path_suffix: &str, count: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
        while std::time::Instant::now() < deadline {
            let seen = self
                .requests()
                .iter()
                .filter(|r| r.method == method && r.path.ends_with(path_suffix) && r.status != 0)
                .count();
            if seen >= count {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(lab) = self.lab.take() {
            self.runtime.block_on(lab.shutdown());
        }
    }
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("file exists").permissions().mode() & 0o777
}

const VERSIONS: [&str; 3] = ["8.4", "9.1", "9.2"];

/// Paths of each built-in profile without narrowing (the ACL puts a fresh create makes).
const PROFILE_PATHS: [(&str, u64); 6] =
    [("privatebox", 4), ("packer", 3), ("terraform", 3), ("terraform-telmate", 5), ("ansible", 3), ("readonly", 3)];

#[test]
fn a_fresh_create_saves_a_0600_token_that_verifies_and_a_rerun_changes_nothing() {
    for version in VERSIONS {
        let lab = Lab::start(version);
        let run = lab.create("privatebox", &[]);
        assert_eq!(run.code, 0, "{version}: {}", run.both());
        assert!(run.stderr.contains("created"), "{}", run.both());
        assert_eq!(mode(&lab.token_file()), 0o600);
        assert_eq!(mode(lab.token_file().parent().unwrap()), 0o700);
        let (id, secret) = lab.saved().expect("token file written");
        assert_eq!(id, "automation@pve!privatebox");
        // privsep token with ACLs on both sides: its own permissions hold what the profile needs.
        let perms =
            lab.as_token(&id, &secret).get("/access/permissions", &[("path", "/storage")]).expect("token works");
        assert!(perms["/storage"]["Datastore.AllocateTemplate"].is_number(), "{version}: {perms}");
        let token = lab.root().get("/access/users/automation@pve/token/privatebox", &[]).expect("token on server");
        assert_eq!(token["privsep"], 1, "{token}");

        lab.clear_log();
        let rerun = lab.create("privatebox", &[]);
        assert_eq!(rerun.code, 0, "{}", rerun.both());
        assert!(rerun.stderr.contains("unchanged"), "{}", rerun.both());
        assert_eq!(lab.saved().expect("still there").1, secret, "a rerun must not rotate the secret");
        let writes: Vec<_> =
            lab.requests().into_iter().filter(|r| r.method != "GET" && !r.path.ends_with("/access/ticket")).collect();
        assert!(writes.is_empty(), "an unchanged rerun writes nothing: {writes:?}");
        // login, version, GET role, GET permissions as the token
        assert_eq!(lab.requests().len(), 4, "{version}: {:?}", lab.requests());

        let verify = lab.with_token_file("verify", &["--profile", "privatebox"]);
        assert_eq!(verify.code, 0, "{}", verify.both());
    }
}

#[test]
fn a_fresh_create_costs_six_requests_plus_one_acl_put_per_profile_path() {
    for version in VERSIONS {
        let lab = Lab::start(version);
        for (profile, paths) in PROFILE_PATHS {
            let file = lab.dir().join(format!("{profile}.env"));
            lab.clear_log();
            let run = lab.create_in(&file, profile, &["--node", "pve"]);
            assert_eq!(run.code, 0, "{version} {profile}: {}", run.both());
            let log = lab.requests();
            let puts = log.iter().filter(|r| r.method == "PUT" && r.path.ends_with("/access/acl")).count() as u64;
            assert_eq!(puts, paths, "{version} {profile}: one PUT per path, users and tokens together: {log:?}");
            // ticket, version, role, user, token, ACL puts, permissions as the token
            assert_eq!(log.len() as u64, 5 + paths + 1, "{version} {profile}: {log:?}");
        }
        // Without --node, one GET /nodes more (on a fresh server).
        let lab = Lab::start(version);
        let file = lab.dir().join("nodes.env");
        lab.clear_log();
        let run = lab.create_in(&file, "packer", &[]);
        assert_eq!(run.code, 0, "{}", run.both());
        assert_eq!(lab.requests().len(), 10, "{version}: {:?}", lab.requests());
        assert!(lab.requests().iter().any(|r| r.path.ends_with("/nodes")));
    }
}

#[test]
fn a_token_on_the_server_without_its_secret_is_an_error_with_a_hint_and_rotate_if_exists_fixes_it() {
    for version in VERSIONS {
        let lab = Lab::start(version);
        assert_eq!(lab.create("packer", &[]).code, 0);
        let (_, old_secret) = lab.saved().unwrap();
        std::fs::remove_file(lab.token_file()).unwrap();
        let run = lab.create("packer", &[]);
        assert_eq!(run.code, 2, "{version}: {}", run.both());
        assert_eq!(run.errors().len(), 1, "{}", run.both());
        assert!(
            run.stderr.contains("does not hold its secret") && run.stderr.contains("--rotate-if-exists"),
            "{}",
            run.both()
        );
        assert!(!lab.token_file().exists(), "nothing saved on failure");

        let fixed = lab.create("packer", &["--rotate-if-exists"]);
        assert_eq!(fixed.code, 0, "{version}: {}", fixed.both());
        assert!(fixed.stderr.contains("rotated"), "{}", fixed.both());
        let (id, secret) = lab.saved().unwrap();
        assert_eq!(id, "automation@pve!packer");
        assert_ne!(secret, old_secret);
        assert!(lab.as_token(&id, &old_secret).get("/version", &[]).is_err(), "the old secret is dead");
        assert_eq!(lab.with_token_file("verify", &["--profile", "packer"]).code, 0);
        lab.assert_no_token_without_its_secret("automation@pve", version);
    }
}

#[test]
fn a_token_file_holding_another_token_is_not_overwritten() {
    let lab = Lab::start("9.1");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let before = std::fs::read_to_string(lab.token_file()).unwrap();
    let run = lab.create("terraform", &[]);
    assert_eq!(run.code, 2, "{}", run.both());
    assert!(run.stderr.contains("--token-file"), "{}", run.both());
    assert_eq!(std::fs::read_to_string(lab.token_file()).unwrap(), before);
    assert!(lab.server_tokens("automation@pve") == ["packer"], "nothing created on the server");
}

#[test]
fn verify_short_names_the_missing_privilege_its_path_and_the_side_with_the_fix() {
    for version in VERSIONS {
        let lab = Lab::start(version);
        assert_eq!(lab.create("packer", &[]).code, 0);
        let root = lab.root();
        // Take the token's own grant on /storage away: the token side lacks the storage privileges.
        root.put(
            "/access/acl",
            &[("path", "/storage"), ("roles", "Token-packer"), ("tokens", "automation@pve!packer"), ("delete", "1")],
        )
        .expect("remove token ACL");
        let run = lab.with_token_file("verify", &["--profile", "packer"]);
        assert_eq!(run.code, 1, "{version}: {}", run.both());
        assert!(run.stderr.contains("missing Datastore.AllocateSpace on /storage (token side)"), "{}", run.both());
        assert!(
            run.stderr.contains("pveum acl modify /storage --tokens 'automation@pve!packer' --roles Token-packer"),
            "{}",
            run.both()
        );

        // Offline: the same answer from a user.cfg through the permission engine, no admin credentials needed.
        let cfg = lab.dir().join("user.cfg");
        std::fs::write(&cfg, lab.lab().user_cfg()).unwrap();
        let file = lab.token_file().display().to_string();
        let cfg_arg = cfg.display().to_string();
        let offline =
            lab.pvetoken_env(&["verify", "--token-file", &file, "--profile", "packer", "--user-cfg", &cfg_arg], &[]);
        assert_eq!(offline.code, 1, "{}", offline.both());
        assert!(
            offline.stderr.contains("missing Datastore.AllocateSpace on /storage (token side)"),
            "{}",
            offline.both()
        );

        // Now the user side: the owner loses its grant on /vms.
        root.put(
            "/access/acl",
            &[("path", "/vms"), ("roles", "Token-packer"), ("users", "automation@pve"), ("delete", "1")],
        )
        .expect("remove user ACL");
        let run = lab.with_token_file("verify", &["--profile", "packer"]);
        assert_eq!(run.code, 1);
        assert!(run.stderr.contains("missing VM.Clone on /vms (user side)"), "{}", run.both());
        assert!(
            run.stderr.contains("pveum acl modify /vms --users automation@pve --roles Token-packer"),
            "{}",
            run.both()
        );

        // create converges it back.
        let fix = lab.create("packer", &[]);
        assert_eq!(fix.code, 0, "{}", fix.both());
        assert!(fix.stderr.contains("updated"), "{}", fix.both());
        assert_eq!(lab.with_token_file("verify", &["--profile", "packer"]).code, 0);
    }
}

#[test]
fn list_shows_the_token_and_revoke_removes_it_with_its_acl_entries_and_its_token_file() {
    for version in VERSIONS {
        let lab = Lab::start(version);
        assert_eq!(lab.create("ansible", &["--expire", "30d"]).code, 0);
        let mut args = vec!["--output".to_owned(), "json".to_owned(), "list".to_owned()];
        args.extend(lab.connection());
        let list = lab.pvetoken(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(list.code, 0, "{}", list.both());
        let rows: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
        let row = rows.as_array().unwrap().iter().find(|r| r["token_id"] == "automation@pve!ansible").expect("listed");
        assert_eq!(row["privsep"], true);
        assert!(row["expire"].as_i64().unwrap() > 0);

        let packer_file = lab.dir().join("tokens").join("packer.env");
        assert_eq!(lab.create_in(&packer_file, "packer", &[]).code, 0);
        let ansible_file = lab.token_file().display().to_string();
        let revoke_with_file = |id: &str| {
            let mut args = vec!["--output".to_owned(), "json".to_owned(), "revoke".to_owned(), id.to_owned()];
            args.extend(["--token-file".to_owned(), ansible_file.clone()]);
            args.extend(lab.connection());
            lab.pvetoken(&args.iter().map(String::as_str).collect::<Vec<_>>())
        };

        // A token file holding another token is not touched by a revoke.
        let other = revoke_with_file("automation@pve!packer");
        assert_eq!(other.code, 0, "{}", other.both());
        let report: serde_json::Value = serde_json::from_str(&other.stdout).expect("json");
        assert!(report["token_file_removed"].is_null(), "{report}");
        assert_eq!(lab.saved().expect("ansible's token file stays").0, "automation@pve!ansible");

        // The token file holding the revoked token goes with it: its secret no longer works.
        let revoke = revoke_with_file("automation@pve!ansible");
        assert_eq!(revoke.code, 0, "{}", revoke.both());
        let report: serde_json::Value = serde_json::from_str(&revoke.stdout).expect("json");
        assert_eq!(report["revoked"], "automation@pve!ansible");
        assert_eq!(report["token_file_removed"], ansible_file.as_str());
        assert!(!lab.token_file().exists());
        assert!(packer_file.exists(), "packer's token file was never named");
        assert!(lab.server_tokens("automation@pve").is_empty());
        let acl = lab.root().get("/access/acl", &[]).unwrap();
        assert!(!acl.to_string().contains("automation@pve!ansible"), "{acl}");
        let mut args = vec!["revoke".to_owned(), "automation@pve!ansible".to_owned()];
        args.extend(lab.connection());
        let again = lab.pvetoken(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(again.code, 2, "{}", again.both());
        assert!(again.stderr.contains("does not exist"));
    }
}

#[test]
fn rotate_issues_a_working_secret_the_old_one_stops_and_create_stays_unchanged() {
    for version in VERSIONS {
        let lab = Lab::start(version);
        assert_eq!(lab.create("terraform", &[]).code, 0);
        let (old_id, old_secret) = lab.saved().unwrap();
        let run = lab.with_token_file("rotate", &[]);
        assert_eq!(run.code, 0, "{version}: {}", run.both());
        let (id, secret) = lab.saved().unwrap();
        assert_ne!(secret, old_secret);
        if regenerates(version) {
            assert_eq!(id, old_id, "{version} regenerates in place");
        } else {
            assert_eq!(id, "automation@pve!terraform-r1", "{version} makes a new token");
        }
        assert_eq!(mode(&lab.token_file()), 0o600);
        assert!(lab.as_token(&old_id, &old_secret).get("/version", &[]).is_err(), "old secret retired");
        assert_eq!(lab.server_tokens("automation@pve").len(), 1);
        assert_eq!(lab.with_token_file("verify", &["--profile", "terraform"]).code, 0);
        let rerun = lab.create("terraform", &[]);
        assert_eq!(rerun.code, 0, "{}", rerun.both());
        assert!(rerun.stderr.contains("unchanged"), "{}", rerun.both());
        lab.assert_no_token_without_its_secret("automation@pve", version);
        // A second rotation on 8.4 goes on to -r2.
        assert_eq!(lab.with_token_file("rotate", &[]).code, 0);
        lab.assert_no_token_without_its_secret("automation@pve", version);
    }
}

#[test]
fn bad_input_gets_one_clear_message_with_the_fix_and_the_right_exit_code() {
    let lab = Lab::start("9.1");
    let ready = lab.lab().ready();
    let port = ready.pve_url.rsplit(':').next().unwrap().to_owned();
    let file = lab.token_file().display().to_string();
    let base = |extra: &[&str]| {
        let mut args = vec!["create", "--profile", "packer", "--token-file", file.as_str()];
        args.extend_from_slice(extra);
        lab.pvetoken(&args)
    };
    let http = format!("http://127.0.0.1:{port}");
    let unreachable = "https://127.0.0.1:1".to_owned();
    let zeros = vec!["00"; 32].join(":");
    let cases: Vec<(&str, Run, i32, &str)> = vec![
        ("wrong URL", base(&["--url", &http]), 2, "HTTPS"),
        ("unreachable host", base(&["--url", &unreachable]), 3, "reachable"),
        ("certificate mismatch", base(&["--url", &ready.pve_url, "--fingerprint", &zeros]), 3, "--fingerprint"),
        (
            "wrong password",
            lab.create_env("packer", &[], &[("PVETOKEN_PASSWORD", "not-the-password")]),
            3,
            "PVETOKEN_PASSWORD",
        ),
        (
            "token id without !",
            lab.pvetoken(&["revoke", "automation@pve", "--url", &ready.pve_url]),
            2,
            "automation@pve!",
        ),
        (
            "unknown profile",
            lab.pvetoken(&["create", "--profile", "nope", "--url", &ready.pve_url, "--token-file", &file]),
            2,
            "built-in profiles",
        ),
        (
            "role starting with PVE",
            base(&["--url", &ready.pve_url, "--fingerprint", &ready.fingerprint_sha256, "--role", "PVEMine"]),
            2,
            "PVE",
        ),
    ];
    for (what, run, code, fix) in cases {
        assert_eq!(run.code, code, "{what}: {}", run.both());
        assert_eq!(run.errors().len(), 1, "{what}: one message: {}", run.both());
        let hint = run
            .stderr
            .lines()
            .find(|l| l.starts_with("hint:"))
            .unwrap_or_else(|| panic!("{what}: no hint: {}", run.both()));
        assert!(run.stderr.contains(fix), "{what}: {fix:?} not in {}", run.both());
        assert!(!hint.is_empty());
        assert!(!run.stderr.contains("not-the-password") && !run.stderr.contains(&ready.root_password), "{what}");
    }
    assert!(lab.server_tokens("automation@pve").is_empty(), "nothing half-done on the server");
    assert!(!lab.token_file().exists());
    let roles = lab.root().get("/access/roles", &[]).unwrap();
    assert!(!roles.to_string().contains("PVEMine"));
}

/// How a step fails.
#[derive(Clone, Copy, Debug)]
enum Failure {
    Status500,
    BeyondTimeout,
    Dropped,
}

fn fault(method: &str, path: &str, failure: Failure) -> FaultSpec {
    let fault = FaultSpec::on(method, path);
    match failure {
        Failure::Status500 => FaultSpec { status: Some(500), ..fault },
        Failure::BeyondTimeout => fault.delay_ms(1_600),
        Failure::Dropped => fault.dropping(),
    }
}

/// Every request a fresh create makes (without --node), in order.
const CREATE_STEPS: [(&str, &str); 8] = [
    ("POST", "/access/ticket"),
    ("GET", "/version"),
    ("GET", "/nodes"),
    ("POST", "/access/roles"),
    ("POST", "/access/users"),
    ("POST", "/access/users/*/token/*"),
    ("PUT", "/access/acl"),
    ("GET", "/access/permissions"),
];

fn create_survives(version: &str, failure: Failure) {
    for (method, path) in CREATE_STEPS {
        let lab = Lab::start(version);
        lab.fault(fault(method, path, failure));
        let run = lab.create("packer", &["--timeout", "1"]);
        let context = format!("{version} {failure:?} at {method} {path}");
        let matched = |r: &pvetoken_lab::RequestRecord| {
            r.method == method && r.path.ends_with(path.rsplit('*').next().unwrap_or(path))
        };
        if !matches!(failure, Failure::BeyondTimeout) || !matches!(method, "GET") {
            // A write the server performs after the client gave up: wait (bounded) for it to settle.
            lab.settle(
                method,
                path.rsplit('*').next().unwrap_or(path),
                lab.requests().iter().filter(|r| matched(r)).count() + 1,
            );
        }
        if run.code == 0 {
            // GETs are retried: the run may have succeeded.
            assert_eq!(method, "GET", "{context}: only a retried GET may absorb the fault: {}", run.both());
        } else {
            assert!(matches!(run.code, 2 | 3), "{context}: {}", run.both());
            assert_eq!(run.errors().len(), 1, "{context}: {}", run.both());
            assert!(!run.stderr.contains(&lab.lab().ready().root_password));
        }
        if let Some((id, _)) = lab.saved() {
            assert_eq!(id, "automation@pve!packer", "{context}");
        }
        // A rerun converges, and no token is ever left without its secret afterwards.
        let rerun = lab.create("packer", &[]);
        assert_eq!(rerun.code, 0, "{context}: rerun: {}\nfirst run: {}", rerun.both(), run.both());
        lab.assert_no_token_without_its_secret("automation@pve", &context);
        assert_eq!(lab.with_token_file("verify", &["--profile", "packer"]).code, 0, "{context}");
        assert_eq!(mode(&lab.token_file()), 0o600);
    }
}

fn rotate_steps(version: &str) -> Vec<(&'static str, &'static str)> {
    if regenerates(version) {
        vec![
            ("POST", "/access/ticket"),
            ("GET", "/apt/versions"),
            ("PUT", "/access/users/*/token/*"),
            ("GET", "/access/permissions"),
        ]
    } else {
        vec![
            ("POST", "/access/ticket"),
            ("GET", "/apt/versions"),
            ("GET", "/access/users/*/token/*"),
            ("GET", "/access/permissions"),
            ("POST", "/access/users/*/token/*"),
            ("GET", "/access/acl"),
            ("PUT", "/access/acl"),
            ("DELETE", "/access/users/*/token/*"),
        ]
    }
}

/// Whether the lab's release ships a libpve-access-control that regenerates token secrets (9.1.0+); the others
/// rotate by a new token with the same ACLs.
pub fn regenerates(version: &str) -> bool {
    version == "9.2"
}

fn rotate_survives(version: &str, failure: Failure) {
    for (method, path) in rotate_steps(version) {
        let lab = Lab::start(version);
        assert_eq!(lab.create("packer", &[]).code, 0);
        let (_, before) = lab.saved().unwrap();
        lab.fault(fault(method, path, failure));
        let run = lab.with_token_file("rotate", &["--timeout", "1"]);
        let context = format!("{version} rotate {failure:?} at {method} {path}");
        lab.settle(method, path.rsplit('*').next().unwrap_or(path), 1);
        if run.code != 0 {
            assert_eq!(run.errors().len(), 1, "{context}: {}", run.both());
        }
        // A rerun of rotate converges to exactly one token whose secret is saved and new.
        let rerun = lab.with_token_file("rotate", &[]);
        assert_eq!(rerun.code, 0, "{context}: rerun: {}\nfirst run: {}", rerun.both(), run.both());
        lab.assert_no_token_without_its_secret("automation@pve", &context);
        assert_eq!(
            lab.server_tokens("automation@pve").len(),
            1,
            "{context}: {:?}",
            lab.server_tokens("automation@pve")
        );
        assert_ne!(lab.saved().unwrap().1, before, "{context}");
        assert_eq!(lab.with_token_file("verify", &["--profile", "packer"]).code, 0, "{context}");
    }
}

#[test]
fn create_on_8_4_converges_after_a_500_at_every_step() {
    create_survives("8.4", Failure::Status500);
}

#[test]
fn create_on_9_1_converges_after_a_500_at_every_step() {
    create_survives("9.1", Failure::Status500);
}

#[test]
fn create_on_8_4_converges_after_a_dropped_connection_at_every_step() {
    create_survives("8.4", Failure::Dropped);
}

#[test]
fn create_on_9_1_converges_after_a_dropped_connection_at_every_step() {
    create_survives("9.1", Failure::Dropped);
}

#[test]
fn create_on_8_4_converges_after_an_answer_slower_than_timeout_at_every_step() {
    create_survives("8.4", Failure::BeyondTimeout);
}

#[test]
fn create_on_9_1_converges_after_an_answer_slower_than_timeout_at_every_step() {
    create_survives("9.1", Failure::BeyondTimeout);
}

#[test]
fn rotate_converges_after_a_500_at_every_step() {
    for version in VERSIONS {
        rotate_survives(version, Failure::Status500);
    }
}

#[test]
fn rotate_converges_after_a_dropped_connection_at_every_step() {
    for version in VERSIONS {
        rotate_survives(version, Failure::Dropped);
    }
}

#[test]
fn rotate_converges_after_an_answer_slower_than_timeout_at_every_step() {
    for version in VERSIONS {
        rotate_survives(version, Failure::BeyondTimeout);
    }
}

/// Writes the stand-in pvesh's configuration (0600) and returns the environment that points pvetoken at it.
fn pvesh_env(lab: &Lab) -> (Vec<(String, String)>, PathBuf) {
    let ready = lab.lab().ready();
    let config = lab.dir().join("pvesh.json");
    let argv_log = lab.dir().join("pvesh-argv.jsonl");
    let text = serde_json::json!({
        "url": ready.pve_url, "ca_file": ready.ca_file, "user": ready.root_user,
        "password": ready.root_password, "argv_log": argv_log,
    });
    crate::support::write_private(&config, text.to_string());
    let pvesh = crate::support::repo_root().join("tests/support/pvesh");
    let env = vec![
        ("PVETOKEN_PVESH".to_owned(), pvesh.display().to_string()),
        ("PVESH_STANDIN_CONFIG".to_owned(), config.display().to_string()),
    ];
    (env, argv_log)
}

#[test]
fn a_whole_cycle_never_shows_the_secret_and_keeps_every_file_holding_it_0600() {
    for (version, local) in [("9.1", false), ("8.4", false), ("9.1", true), ("8.4", true)] {
        let lab = Lab::start(version);
        let context = format!("{version} local={local}");
        let (pvesh, argv_log) = pvesh_env(&lab);
        let file = lab.token_file().display().to_string();
        let connection: Vec<String> = if local { vec!["--local".into()] } else { lab.connection() };
        let password = lab.lab().ready().root_password.clone();
        let run = |args: &[&str]| {
            let mut all: Vec<&str> = args.to_vec();
            all.extend(connection.iter().map(String::as_str));
            let mut env: Vec<(&str, &str)> = pvesh.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if !local {
                env.push(("PVETOKEN_PASSWORD", password.as_str()));
            }
            lab.pvetoken_env(&all, &env)
        };
        let mut runs = Vec::new();
        let mut secrets = Vec::new();
        let create = run(&["create", "--profile", "packer", "--node", "pve", "--token-file", &file]);
        assert_eq!(create.code, 0, "{context}: {}", create.both());
        secrets.push(lab.saved().unwrap().1);
        runs.push(create);
        runs.push(run(&["create", "--profile", "packer", "--node", "pve", "--token-file", &file]));
        runs.push(run(&["-v", "verify", "--profile", "packer", "--token-file", &file]));
        runs.push(run(&["--output", "json", "verify", "--profile", "packer", "--token-file", &file]));
        runs.push(run(&["--output", "json", "list"]));
        let rotate = run(&["-v", "rotate", "--token-file", &file]);
        assert_eq!(rotate.code, 0, "{context}: {}", rotate.both());
        let (id, secret) = lab.saved().unwrap();
        secrets.push(secret);
        runs.push(rotate);
        runs.push(run(&["verify", "--profile", "packer", "--token-file", &file]));
        for run in &runs {
            assert_eq!(run.code, 0, "{context}: {}", run.both());
        }
        // Every file in the token directory is private, and only the token file holds the secret.
        for entry in std::fs::read_dir(lab.token_file().parent().unwrap()).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{context}: {}", path.display());
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if path != lab.token_file() {
                assert!(!secrets.iter().any(|s| text.contains(s)), "{context}: {} holds a secret", path.display());
            }
        }
        let revoke = run(&["revoke", &id]);
        assert_eq!(revoke.code, 0, "{context}: {}", revoke.both());
        runs.push(revoke);
        assert!(lab.server_tokens("automation@pve").is_empty(), "{context}");

        let log = format!("{:?}", lab.requests());
        let argv = std::fs::read_to_string(&argv_log).unwrap_or_default();
        if local {
            assert!(argv.lines().count() >= 10, "{context}: pvesh was used: {argv}");
        }
        for secret in secrets.iter().chain(std::iter::once(&password)) {
            for run in &runs {
                assert!(
                    !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
                    "{context}: {}",
                    run.both()
                );
            }
            assert!(!log.contains(secret.as_str()), "{context}: secret in the lab request log");
            assert!(!argv.contains(secret.as_str()), "{context}: secret in pvesh's argv");
        }
    }
}
