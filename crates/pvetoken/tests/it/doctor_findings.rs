//! `pvetoken doctor`: each finding id provoked on its own against the lab (or a crafted token file), one test per
//! fault, asserting the id, its severity, its check group, a fragment of its fix, the exit code (0 when nothing is
//! an error or blocking, 1 otherwise), that every later check is `skipped` after a blocking finding, and that no
//! secret (the token's, root's password, Semaphore's password) reaches stdout or stderr.
//!
//! Ids provoked elsewhere (tests/it/doctor.rs): token-file-missing, token-file-mode, token-secret-format (blocking),
//! env-pveapitoken-prefix, tcp-refused, tls-pin-mismatch, token-auth-failed, privilege-missing, admin-unavailable,
//! token-expiring, semaphore-login-refused, semaphore-environment-missing, semaphore-environment-unused.
//!
//! Two faults the lab cannot produce are provoked with a small server in this process instead (see the last
//! section): `pve-version-unknown` (the lab always reports its release, and its fault injection can only replace
//! an answer by an error) and `semaphore-request-failed` (the Semaphore simulator lets every member list
//! environments and templates; its injectable faults only break creation).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use pvetoken_api::semaphore::{EnvironmentRequest, EnvironmentSecretRequest, SecretOperation, SecretType};
use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_client::pve::{NewToken, PveClient};
use pvetoken_client::semaphore::SemaphoreClient;
use pvetoken_lab::{FaultSpec, LabConfig};
use pvetoken_render::TokenFile;
use serde_json::Value;

use super::doctor::{Lab, Run, read_token};

/// The check groups in run order (docs/doctor.md, JSON schema).
const CHECKS: [&str; 10] =
    ["token-file", "environment", "dns", "tcp", "tls", "auth", "version", "privileges", "expiry", "semaphore"];

/// A UUID that is no token's secret.
const OTHER_SECRET: &str = "0b3c9f1e-1111-2222-3333-444455556666";

fn findings(run: &Run) -> Vec<Value> {
    run.json.get("findings").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn status(run: &Run, check: &str) -> String {
    run.status_of(check)
}

/// The finding `id` exists with this severity and check group, and one of its fixes contains `fix`; returns it.
fn expect_finding(run: &Run, id: &str, severity: &str, check: &str, fix: &str) -> Value {
    let finding = findings(run)
        .into_iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} (found {:?}) in {}", run.ids(), run.all));
    assert_eq!(finding["severity"], severity, "{id}: {finding}");
    assert_eq!(finding["check"], check, "{id}: {finding}");
    let fixes: Vec<&str> =
        finding["fix"].as_array().map(|all| all.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(fixes.iter().any(|line| line.contains(fix)), "{id}: no fix contains `{fix}`: {fixes:?}");
    assert!(!finding["why"].as_str().unwrap_or_default().is_empty(), "{id} says why: {finding}");
    finding
}

fn what(finding: &Value) -> &str {
    finding["what"].as_str().unwrap_or_default()
}

/// The next `count` `GET path` requests answered with `status` and `message` (`None`: handled normally, uses one).
fn get_fault(path: &str, count: u32, status: Option<u16>, message: &str) -> FaultSpec {
    FaultSpec { status, message: Some(message.to_owned()), ..FaultSpec::on("GET", path).times(count) }
}

/// `id` (found by `check`) blocked the chain: exit 1, `blocked_by`, the group failed, and every later group skipped
/// naming the id.
fn assert_blocked_at(run: &Run, id: &str, check: &str) {
    assert_eq!(run.code, 1, "a blocking finding exits 1: {}", run.all);
    assert_eq!(run.json["ok"], false, "{}", run.all);
    assert_eq!(run.json["blocked_by"], id, "{}", run.all);
    assert_eq!(status(run, check), "failed", "{check}: {}", run.all);
    let at = CHECKS.iter().position(|c| *c == check).expect("a known check");
    for later in &CHECKS[at + 1..] {
        assert_eq!(status(run, later), "skipped", "{later} after {id}: {}", run.all);
    }
    let checks = run.json["checks"].as_array().cloned().unwrap_or_default();
    let skipped = checks.iter().filter(|c| c["status"] == "skipped");
    for skipped in skipped.filter(|c| CHECKS[at + 1..].contains(&c["check"].as_str().unwrap_or_default())) {
        assert!(skipped["detail"].as_str().unwrap_or_default().contains(id), "skip names {id}: {skipped}");
    }
}

/// Nothing blocked: exit 0 and `ok` (warnings and information only).
fn assert_passes(run: &Run) {
    assert_eq!(run.code, 0, "warnings alone exit 0: {}", run.all);
    assert_eq!(run.json["ok"], true, "{}", run.all);
    assert_eq!(run.json["blocked_by"], Value::Null, "{}", run.all);
}

fn assert_no_secret(run: &Run, secrets: &[&str]) {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!run.all.contains(secret), "a secret leaked into the output: {}", run.all);
    }
}

/// The lab's secrets plus the token's.
fn secrets<'a>(lab: &'a Lab, token: &'a Secret) -> [&'a str; 3] {
    let ready = lab.lab.ready();
    [token.expose_secret(), ready.root_password.as_str(), ready.semaphore_password.as_str()]
}

/// Writes `bytes` to a new file, mode 0600 from its first byte.
/// [`super::support::write_private`] over whatever is at `path`.
fn write_private(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    super::support::write_private(path, bytes);
}

fn write_token(path: &Path, token: &TokenFile) {
    write_private(path, token.render().as_bytes());
}

/// A working token of profile `packer` in `token.env` (the path and its secret).
/// The token file at `file` pointed at `host:port` (PROXMOX_HOST, PROXMOX_PORT and PROXMOX_URL agree).
fn point_at(file: &Path, host: &str, port: u16) {
    let mut token = read_token(file);
    token.host = host.to_owned();
    token.port = port;
    token.url = format!("https://{host}:{port}");
    write_token(file, &token);
}

/// A port on 127.0.0.1 nobody listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Runs `work` with a root@pam session on the lab, in a runtime of its own.
fn as_root<T, F: std::future::Future<Output = T>>(lab: &Lab, work: impl FnOnce(PveClient) -> F) -> T {
    let ready = lab.lab.ready();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async { work(super::support::lab_root(ready).await).await })
}

/// Runs `work` with an admin session on the lab's Semaphore, in a runtime of its own.
fn as_semaphore_admin<T, F: std::future::Future<Output = T>>(lab: &Lab, work: impl FnOnce(SemaphoreClient) -> F) -> T {
    let ready = lab.lab.ready();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async { work(super::support::lab_semaphore_admin(ready).await).await })
}

// ---------------------------------------------------------------------------------------------------------------
// token-file

/// One crafted token file: what is done to a working file, the id doctor must name, and a fragment of its `what`.
struct Crafted {
    fault: &'static str,
    edit: fn(&str, &str) -> String,
    id: &'static str,
    what: &'static str,
}

fn replace_line(text: &str, key: &str, line: &str) -> String {
    text.lines()
        .map(|l| if l.starts_with(&format!("{key}=")) { line.to_owned() } else { l.to_owned() } + "\n")
        .collect()
}

#[test]
fn each_broken_token_file_line_blocks_with_its_own_id_and_never_echoes_the_secret() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let good = std::fs::read_to_string(&file).expect("token file");
    let table = [
        Crafted {
            fault: "the node line deleted",
            edit: |text, _| {
                text.lines().filter(|l| !l.starts_with("PROXMOX_NODE=")).map(|l| format!("{l}\n")).collect()
            },
            id: "token-file-missing-key",
            what: "PROXMOX_NODE is missing",
        },
        Crafted {
            fault: "an empty secret",
            edit: |text, _| replace_line(text, "PROXMOX_TOKEN_SECRET", "PROXMOX_TOKEN_SECRET=''"),
            id: "token-file-missing-key",
            what: "PROXMOX_TOKEN_SECRET is missing",
        },
        Crafted {
            fault: "the token name alone as the token id",
            edit: |text, _| replace_line(text, "PROXMOX_TOKEN_ID", "PROXMOX_TOKEN_ID='packer'"),
            id: "token-file-bad-value",
            what: "PROXMOX_TOKEN_ID is not valid",
        },
        Crafted {
            fault: "a plain-HTTP URL",
            edit: |text, _| replace_line(text, "PROXMOX_URL", "PROXMOX_URL='http://127.0.0.1:8006'"),
            id: "token-file-bad-value",
            what: "PROXMOX_URL is not valid",
        },
        Crafted {
            fault: "a truncated fingerprint",
            edit: |text, _| replace_line(text, "PROXMOX_FINGERPRINT", "PROXMOX_FINGERPRINT='AB:CD:EF'"),
            id: "token-file-bad-value",
            what: "PROXMOX_FINGERPRINT is not valid",
        },
        Crafted {
            fault: "the secret in double quotes (a shell file written by hand)",
            edit: |text, secret| {
                replace_line(text, "PROXMOX_TOKEN_SECRET", &format!("PROXMOX_TOKEN_SECRET=\"{secret}\""))
            },
            id: "token-file-syntax",
            what: "PROXMOX_TOKEN_SECRET would need a shell",
        },
        Crafted {
            fault: "the secret as a shell variable",
            edit: |text, _| replace_line(text, "PROXMOX_TOKEN_SECRET", "PROXMOX_TOKEN_SECRET=$PVE_SECRET"),
            id: "token-file-syntax",
            what: "PROXMOX_TOKEN_SECRET would need a shell",
        },
        Crafted {
            fault: "a line without `=`",
            edit: |text, _| format!("{text}PROXMOX_STORAGE local-lvm\n"),
            id: "token-file-syntax",
            what: "not a KEY='value' line",
        },
        Crafted {
            fault: "a key set twice",
            edit: |text, _| format!("{text}PROXMOX_NODE='pve2'\n"),
            id: "token-file-syntax",
            what: "PROXMOX_NODE is set twice",
        },
        Crafted {
            fault: "an unclosed quote on the last line",
            edit: |text, _| format!("{text}PROXMOX_STORAGE='local-lvm\n"),
            id: "token-file-syntax",
            what: "unclosed single quote",
        },
    ];
    for crafted in &table {
        let broken = lab.path("broken.env");
        let text = (crafted.edit)(&good, secret.expose_secret());
        assert_ne!(text, good, "{}: the edit changes the file", crafted.fault);
        write_private(&broken, text.as_bytes());
        let run = lab.doctor(&broken, &[], &lab.root_env());
        assert_eq!(run.ids(), [crafted.id], "{}: {}", crafted.fault, run.all);
        let finding = expect_finding(&run, crafted.id, "blocking", "token-file", "pvetoken create --profile packer");
        assert!(what(&finding).contains(crafted.what), "{}: {finding}", crafted.fault);
        assert_blocked_at(&run, crafted.id, "token-file");
        assert_eq!(status(&run, "environment"), "skipped", "{}", crafted.fault);
        assert_no_secret(&run, &secrets(&lab, &secret));
    }
}

#[test]
fn a_directory_at_the_token_path_blocks_as_not_a_file() {
    let lab = Lab::start();
    let dir = lab.path("token.env");
    std::fs::create_dir(&dir).expect("mkdir");
    let run = lab.doctor(&dir, &[], &[]);
    assert_eq!(run.ids(), ["token-file-not-a-file"], "{}", run.all);
    expect_finding(&run, "token-file-not-a-file", "blocking", "token-file", "remove it, then: pvetoken create");
    assert_blocked_at(&run, "token-file-not-a-file", "token-file");
}

#[test]
fn a_token_file_that_cannot_be_read_blocks_as_unreadable() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    // A UTF-16 copy (as PowerShell's `>` writes it): mode 0600, but not text pvetoken can read.
    let text = std::fs::read_to_string(&file).expect("token file");
    let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    let converted = lab.path("utf16.env");
    write_private(&converted, &utf16);
    let run = lab.doctor(&converted, &[], &[]);
    assert_eq!(run.ids(), ["token-file-unreadable"], "{}", run.all);
    let finding = expect_finding(&run, "token-file-unreadable", "blocking", "token-file", "ls -l");
    assert!(what(&finding).contains("UTF-8"), "{finding}");
    assert_blocked_at(&run, "token-file-unreadable", "token-file");
    assert_no_secret(&run, &secrets(&lab, &secret));

    // A path through a regular file (`token.env/inner`): the file system refuses it before any read.
    let through = file.join("inner");
    let run = lab.doctor(&through, &[], &[]);
    assert_eq!(run.ids(), ["token-file-unreadable"], "{}", run.all);
    let finding = expect_finding(&run, "token-file-unreadable", "blocking", "token-file", "run as the file's owner");
    assert!(what(&finding).contains("ot a directory"), "{finding}");
    assert_blocked_at(&run, "token-file-unreadable", "token-file");
}

/// `pvetoken doctor --output json --token-file FILE` as `uid` (gid the same), with an empty environment.
fn doctor_as(uid: u32, file: &Path, home: &Path) -> Run {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_pvetoken"));
    command.args(["doctor", "--profile", "packer", "--output", "json", "--token-file"]).arg(file).env_clear();
    command.env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("HOME", home);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if current_uid() != uid {
        command.uid(uid).gid(uid);
    }
    let output = command.output().expect("pvetoken runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = stdout.lines().rev().find_map(|line| serde_json::from_str(line).ok()).unwrap_or(Value::Null);
    Run { code: output.status.code().unwrap_or(-1), json, all: format!("{stdout}\n{stderr}") }
}

fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").expect("/proc/self").uid()
}

#[test]
fn a_token_file_of_another_user_is_a_warning_and_then_unreadable() {
    use std::os::unix::fs::MetadataExt;
    let lab = Lab::start();
    // Root is exempt (it reads every file), so the consumer is `nobody` reading a file root wrote 0600; a non-root
    // run uses a root-owned 0400 file that exists everywhere.
    let (uid, file, secret) = if current_uid() == 0 {
        let (file, secret) = lab.packer_token();
        std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod dir");
        (65_534, file, Some(secret))
    } else {
        (current_uid(), std::path::PathBuf::from("/proc/1/environ"), None)
    };
    let owner = std::fs::metadata(&file).expect("the file exists").uid();
    assert_ne!(owner, uid, "the fixture file belongs to another user");
    let run = doctor_as(uid, &file, Path::new("/nonexistent"));
    assert_eq!(run.ids(), ["token-file-owner", "token-file-unreadable"], "{}", run.all);
    let finding = expect_finding(&run, "token-file-owner", "warning", "token-file", "chown $(id -un)");
    assert!(what(&finding).contains(&format!("uid {owner}")) && what(&finding).contains(&format!("uid {uid}")));
    let finding = expect_finding(&run, "token-file-unreadable", "blocking", "token-file", "ls -l");
    assert!(what(&finding).contains("ermission denied"), "{finding}");
    assert_blocked_at(&run, "token-file-unreadable", "token-file");
    if let Some(secret) = secret {
        assert_no_secret(&run, &secrets(&lab, &secret));
    }
}

#[test]
fn a_node_name_that_is_a_url_is_an_error_but_the_server_checks_still_run() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let mut token = read_token(&file);
    token.node = "https://pve.lan:8006".to_owned();
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.code, 1, "an error exits 1: {}", run.all);
    assert_eq!(run.ids(), ["token-node-format"], "{}", run.all);
    let finding = expect_finding(&run, "token-node-format", "error", "token-file", "pvesh get /nodes");
    assert!(what(&finding).contains("https://pve.lan:8006"), "{finding}");
    assert_eq!(run.json["blocked_by"], Value::Null);
    assert_eq!(status(&run, "token-file"), "failed");
    assert_eq!(status(&run, "privileges"), "ok", "not blocking: {}", run.all);
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_secret_that_is_not_a_uuid_is_a_warning_and_pve_then_refuses_it() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let mut token = read_token(&file);
    let truncated = secret.expose_secret()[..20].to_owned();
    token.secret = Secret::from(truncated.clone());
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.ids(), ["token-secret-format", "token-auth-failed"], "{}", run.all);
    let finding = expect_finding(&run, "token-secret-format", "warning", "token-file", "pvetoken rotate");
    assert!(what(&finding).contains("not a UUID"), "{finding}");
    assert_eq!(status(&run, "token-file"), "warning");
    assert_blocked_at(&run, "token-auth-failed", "auth");
    assert_no_secret(&run, &[truncated.as_str(), secret.expose_secret()]);
}

#[test]
fn a_token_of_root_is_a_warning_and_everything_else_passes() {
    let lab = Lab::start();
    let created = as_root(&lab, |admin| async move {
        let new = NewToken { privsep: false, expire: 0, comment: None };
        admin.create_token("root@pam", "ci", &new).await.expect("root token")
    });
    let ready = lab.lab.ready();
    let mut token = TokenFile::new(
        &ready.pve_url,
        &ready.node,
        created.full_tokenid.parse().expect("token id"),
        created.value.clone(),
    )
    .expect("token file");
    token.fingerprint = Some(ready.fingerprint_sha256.clone());
    let file = lab.path("root.env");
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_passes(&run);
    assert_eq!(run.ids(), ["token-of-root"], "{}", run.all);
    let finding = expect_finding(&run, "token-of-root", "warning", "token-file", "--user automation@pve");
    assert!(what(&finding).contains("root@pam!ci"), "{finding}");
    assert!(finding["fix"].to_string().contains("pvetoken revoke root@pam!ci"), "{finding}");
    assert_eq!(status(&run, "privileges"), "ok", "{}", run.all);
    assert_no_secret(&run, &secrets(&lab, &created.value));
}

#[test]
fn an_insecure_token_file_warns_twice_and_passes() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let mut token = read_token(&file);
    token.fingerprint = None;
    token.tls_insecure = true;
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_passes(&run);
    assert_eq!(run.ids(), ["token-file-insecure", "tls-insecure"], "{}", run.all);
    expect_finding(&run, "token-file-insecure", "warning", "token-file", "--fingerprint SHA256");
    expect_finding(&run, "tls-insecure", "warning", "tls", "pvenode cert info");
    assert_eq!(status(&run, "token-file"), "warning");
    assert_eq!(status(&run, "tls"), "warning");
    assert_eq!(status(&run, "privileges"), "ok");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

// ---------------------------------------------------------------------------------------------------------------
// environment

/// One consumer-variable mistake: the variables (built from the token id, owner, URL and secret) and the ids.
struct Mistake {
    fault: &'static str,
    vars: fn(&Tok) -> Vec<(&'static str, String)>,
    ids: &'static [&'static str],
    severity: &'static str,
}

/// What a mistake is built from.
struct Tok {
    id: String,
    user: String,
    name: String,
    url: String,
    secret: String,
}

#[test]
fn each_consumer_variable_mistake_is_named_and_the_server_checks_still_run() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let token = read_token(&file);
    let tok = Tok {
        id: token.token_id.to_string(),
        user: token.token_id.user_str().to_owned(),
        name: token.token_id.name_str().to_owned(),
        url: token.url.clone(),
        secret: secret.expose_secret().to_owned(),
    };
    let table = [
        Mistake {
            fault: "Packer's token id with `!` escaped",
            vars: |t| vec![("PROXMOX_USERNAME", t.id.replace('!', "\\u0021")), ("PROXMOX_TOKEN", t.secret.clone())],
            ids: &["env-token-id-escaped-bang"],
            severity: "error",
        },
        Mistake {
            fault: "Telmate's token id without the token name",
            vars: |t| vec![("PM_API_TOKEN_ID", t.user.clone()), ("PM_API_TOKEN_SECRET", t.secret.clone())],
            ids: &["env-token-id-not-full"],
            severity: "error",
        },
        Mistake {
            fault: "community.proxmox given the full id next to PROXMOX_USER",
            vars: |t| vec![("PROXMOX_USER", t.user.clone()), ("PROXMOX_TOKEN_ID", t.id.clone())],
            ids: &["env-community-proxmox-token-id-full"],
            severity: "error",
        },
        Mistake {
            fault: "a bare token name without PROXMOX_USER",
            vars: |t| vec![("PROXMOX_TOKEN_ID", t.name.clone())],
            ids: &["env-token-id-ambiguous"],
            severity: "warning",
        },
        Mistake {
            fault: "the token id in PROXMOX_USER",
            vars: |t| vec![("PROXMOX_USER", t.id.clone())],
            ids: &["env-user-has-token-name"],
            severity: "error",
        },
        Mistake {
            fault: "a root@pam token in Telmate's variable",
            vars: |_| vec![("PM_API_TOKEN_ID", "root@pam!terraform".to_owned())],
            ids: &["env-pam-token-user"],
            severity: "warning",
        },
        Mistake {
            fault: "Telmate's URL without /api2/json",
            vars: |t| vec![("PM_API_URL", t.url.clone())],
            ids: &["env-api-path-missing"],
            severity: "error",
        },
        Mistake {
            fault: "bpg's endpoint with /api2/json",
            vars: |t| vec![("PROXMOX_VE_ENDPOINT", format!("{}/api2/json", t.url))],
            ids: &["env-api-path-present"],
            severity: "error",
        },
        Mistake {
            fault: "a PVE 8 privilege pasted into a variable",
            vars: |t| vec![("PROXMOX_TOKEN_ID", format!("{} VM.Monitor", t.id))],
            ids: &["env-privilege-removed-in-pve9"],
            severity: "error",
        },
        Mistake {
            fault: "the owner in the wrong realm",
            vars: |t| vec![("PROXMOX_USER", t.user.replace("@pve", "@pam")), ("PROXMOX_TOKEN_ID", t.name.clone())],
            ids: &["env-pam-token-user", "env-user-not-token-owner"],
            severity: "error",
        },
        Mistake {
            fault: "the secret from before a rotation",
            vars: |t| vec![("PROXMOX_TOKEN_ID", t.id.clone()), ("PROXMOX_TOKEN_SECRET", OTHER_SECRET.to_owned())],
            ids: &["env-stale-secret"],
            severity: "error",
        },
    ];
    for mistake in &table {
        let vars = (mistake.vars)(&tok);
        let env: Vec<(&str, &str)> = vars.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let run = lab.doctor(&file, &[], &env);
        assert_eq!(run.ids(), mistake.ids, "{}: {}", mistake.fault, run.all);
        let id = mistake.ids.last().expect("an id");
        // Every lint-relayed finding ends with the render command; doctor's own two name it too.
        expect_finding(&run, id, mistake.severity, "environment", "pvetoken render --format");
        if mistake.severity == "warning" {
            assert_passes(&run);
            assert_eq!(status(&run, "environment"), "warning", "{}", mistake.fault);
        } else {
            assert_eq!(run.code, 1, "{}: {}", mistake.fault, run.all);
            assert_eq!(run.json["blocked_by"], Value::Null, "{}: not blocking", mistake.fault);
            assert_eq!(status(&run, "environment"), "failed", "{}", mistake.fault);
        }
        assert_eq!(status(&run, "privileges"), "ok", "{}: the server checks ran: {}", mistake.fault, run.all);
        assert_eq!(status(&run, "expiry"), "ok", "{}", mistake.fault);
        assert_no_secret(&run, &secrets(&lab, &secret));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// dns, tcp, tls

#[test]
fn a_ca_file_that_is_gone_blocks_as_connection_settings() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let mut token = read_token(&file);
    token.fingerprint = None;
    token.ca_file = Some(lab.path("moved-away/pve-root-ca.pem"));
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.ids(), ["connection-settings"], "{}", run.all);
    let finding = expect_finding(&run, "connection-settings", "blocking", "dns", "/etc/pve/pve-root-ca.pem");
    assert!(what(&finding).contains("moved-away/pve-root-ca.pem"), "{finding}");
    assert_blocked_at(&run, "connection-settings", "dns");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_host_name_that_does_not_resolve_blocks_at_dns() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    point_at(&file, "pve.doctor-test.invalid", 8006);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.ids(), ["dns-unresolvable"], "{}", run.all);
    let finding = expect_finding(&run, "dns-unresolvable", "blocking", "dns", "getent hosts pve.doctor-test.invalid");
    assert!(what(&finding).contains("pve.doctor-test.invalid does not resolve"), "{finding}");
    assert_blocked_at(&run, "dns-unresolvable", "dns");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_closed_port_blocks_at_tcp_as_refused_with_the_pveproxy_fix() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let port = closed_port();
    point_at(&file, "127.0.0.1", port);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.ids(), ["tcp-refused"], "{}", run.all);
    expect_finding(&run, "tcp-refused", "blocking", "tcp", "systemctl status pveproxy");
    expect_finding(&run, "tcp-refused", "blocking", "tcp", &format!("nc -vz 127.0.0.1 {port}"));
    assert_eq!(status(&run, "dns"), "ok");
    assert_blocked_at(&run, "tcp-refused", "tcp");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

/// A listener on 127.0.0.1 that never accepts, its backlog of 1 filled by `held` connections: the kernel drops
/// further SYNs, so a new connection gets no answer at all (as behind a firewall that drops packets).
struct SilentPort {
    _runtime: tokio::runtime::Runtime,
    _listener: tokio::net::TcpListener,
    _held: Vec<std::net::TcpStream>,
    port: u16,
}

fn silent_port() -> SilentPort {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("address")).expect("bind");
    let listener = socket.listen(1).expect("listen");
    let address = listener.local_addr().expect("address");
    let mut held = Vec::new();
    let wait = std::time::Duration::from_millis(300);
    loop {
        match std::net::TcpStream::connect_timeout(&address, wait) {
            Ok(stream) if held.len() < 64 => held.push(stream),
            Ok(_) => panic!("the kernel keeps accepting connections on a backlog of 1"),
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => break,
            Err(error) => panic!("connect to the silent listener: {error}"),
        }
    }
    SilentPort { _runtime: runtime, _listener: listener, _held: held, port: address.port() }
}

#[test]
fn a_port_that_never_answers_blocks_at_tcp_as_unreachable() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let silent = silent_port();
    point_at(&file, "127.0.0.1", silent.port);
    let run = lab.doctor(&file, &["--timeout", "1"], &[]);
    assert_eq!(run.ids(), ["tcp-unreachable"], "{}", run.all);
    let finding =
        expect_finding(&run, "tcp-unreachable", "blocking", "tcp", &format!("nc -vz 127.0.0.1 {}", silent.port));
    assert!(what(&finding).contains("no answer within 1 s"), "{finding}");
    assert!(finding["why"].as_str().unwrap_or_default().contains("firewall"), "{finding}");
    assert_blocked_at(&run, "tcp-unreachable", "tcp");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn an_unpinned_self_signed_certificate_blocks_at_tls_and_offers_the_presented_fingerprint() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let mut token = read_token(&file);
    token.fingerprint = None;
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.ids(), ["tls-untrusted"], "{}", run.all);
    let fingerprint = &lab.lab.ready().fingerprint_sha256;
    expect_finding(&run, "tls-untrusted", "blocking", "tls", &format!("--fingerprint {fingerprint}"));
    expect_finding(&run, "tls-untrusted", "blocking", "tls", "--ca-file");
    assert_blocked_at(&run, "tls-untrusted", "tls");
    assert_no_secret(&run, &secrets(&lab, &secret));
    // The fix works: trusting the lab's CA clears it.
    let ca = lab.lab.ready().ca_file.display().to_string();
    let run = lab.doctor(&file, &["--ca-file", ca.as_str()], &[]);
    assert_passes(&run);
    assert!(run.ids().is_empty(), "{}", run.all);
}

#[test]
fn an_https_service_that_is_not_pve_blocks_at_tls() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    // The Semaphore simulator: same certificate (so the pin matches), another API.
    let semaphore = url::Url::parse(&lab.lab.ready().semaphore_url).expect("url");
    point_at(&file, "127.0.0.1", semaphore.port().expect("port"));
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.ids(), ["tls-not-pve"], "{}", run.all);
    let finding = expect_finding(&run, "tls-not-pve", "blocking", "tls", "https://HOST:8006");
    assert!(what(&finding).contains("not like the Proxmox VE API"), "{finding}");
    assert_eq!(status(&run, "tcp"), "ok");
    assert_blocked_at(&run, "tls-not-pve", "tls");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_proxy_answering_502_blocks_at_tls_as_handshake_failed() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    // Every attempt: the client retries a GET answered 502 before giving up.
    lab.lab.inject_fault(get_fault("/version", 10, Some(502), "Bad Gateway"));
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.ids(), ["tls-handshake-failed"], "{}", run.all);
    expect_finding(&run, "tls-handshake-failed", "blocking", "tls", "openssl s_client -connect 127.0.0.1:");
    assert_blocked_at(&run, "tls-handshake-failed", "tls");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

// ---------------------------------------------------------------------------------------------------------------
// auth, version, privileges, expiry

/// As root: the token's expiry on the server set to `expire` (epoch seconds).
fn set_server_expiry(lab: &Lab, token: &TokenFile, expire: i64) {
    let (user, name) = (token.token_id.user_str().to_owned(), token.token_id.name_str().to_owned());
    as_root(lab, |admin| async move {
        let path = format!("/access/users/{user}/token/{name}");
        let params = vec![("expire".to_owned(), expire.to_string())];
        admin.put::<Value>(&path, &params).await.expect("token modify");
    });
}

fn now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    i64::try_from(since.as_secs()).expect("epoch")
}

#[test]
fn an_expired_token_blocks_at_auth_as_expired_not_as_a_wrong_secret() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let expired = now() - 2 * 86_400;
    let mut token = read_token(&file);
    set_server_expiry(&lab, &token, expired);
    token.expire = u64::try_from(expired).expect("epoch");
    write_token(&file, &token);
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.ids(), ["token-expired"], "{}", run.all);
    let finding = expect_finding(&run, "token-expired", "blocking", "auth", "--expire 0");
    assert!(what(&finding).contains("expired 2 days ago"), "{finding}");
    assert_blocked_at(&run, "token-expired", "auth");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn an_expiry_date_in_the_past_that_pve_still_accepts_blocks_at_expiry() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    // The server's token never expires, but the file says it expired yesterday (clock or file out of step).
    let mut token = read_token(&file);
    token.expire = u64::try_from(now() - 86_400).expect("epoch");
    write_token(&file, &token);
    let ready = lab.lab.ready();
    let semaphore = ["--semaphore-url", ready.semaphore_url.as_str()];
    let run = lab.doctor(&file, &semaphore, &[]);
    assert_eq!(run.ids(), ["token-expired"], "{}", run.all);
    let finding = expect_finding(&run, "token-expired", "blocking", "expiry", "--expire $(date -d '+90 days' +%s)");
    assert!(what(&finding).contains("expired 1 day ago"), "{finding}");
    assert_eq!(status(&run, "auth"), "ok");
    assert_eq!(status(&run, "privileges"), "ok");
    assert_blocked_at(&run, "token-expired", "expiry");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_failing_version_call_as_the_token_blocks_at_auth_as_request_failed() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let fault = |status| get_fault("/version", 1, status, "proxy error: upstream timed out");
    // The TLS probe's `GET /version` goes through; the token's fails with a 500.
    lab.lab.inject_fault(fault(None));
    lab.lab.inject_fault(fault(Some(500)));
    let run = lab.doctor(&file, &[], &[]);
    assert_eq!(run.ids(), ["auth-request-failed"], "{}", run.all);
    let finding = expect_finding(&run, "auth-request-failed", "blocking", "auth", "pvetoken doctor -v");
    assert!(what(&finding).contains("500"), "{finding}");
    assert_eq!(status(&run, "tls"), "ok");
    assert_blocked_at(&run, "auth-request-failed", "auth");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn pve_7_is_a_warning_and_passes() {
    let lab = Lab::start_with(LabConfig { pve_version: pvetoken_acl::PveVersion::V7_4, ..LabConfig::default() });
    let (file, secret) = lab.packer_token();
    let run = lab.doctor(&file, &[], &[]);
    assert_passes(&run);
    assert_eq!(run.ids(), ["pve-version-old"], "{}", run.all);
    let finding = expect_finding(&run, "pve-version-old", "warning", "version", "pve7to8");
    assert!(what(&finding).contains("PVE 7.4"), "{finding}");
    assert_eq!(status(&run, "privileges"), "ok", "{}", run.all);
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn an_unknown_profile_is_a_warning_naming_the_built_in_ones() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let file_text = file.display().to_string();
    let run = lab.pvetoken(&["doctor", "--profile", "pakcer", "--token-file", file_text.as_str()], &[], None);
    assert_passes(&run);
    assert_eq!(run.ids(), ["profile-unknown"], "{}", run.all);
    let finding = expect_finding(&run, "profile-unknown", "warning", "privileges", "pvetoken doctor --profile ");
    assert!(what(&finding).contains("pakcer"), "{finding}");
    assert!(finding["fix"].to_string().contains("packer"), "the fix names the built-in profiles: {finding}");
    assert_eq!(status(&run, "expiry"), "ok");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_failing_permissions_call_blocks_at_privileges() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    lab.lab.inject_fault(get_fault("/access/permissions", 1, Some(500), "unable to read user.cfg"));
    let ready = lab.lab.ready();
    let run = lab.doctor(&file, &["--semaphore-url", ready.semaphore_url.as_str()], &[]);
    assert_eq!(run.ids(), ["permissions-unreadable"], "{}", run.all);
    let finding = expect_finding(&run, "permissions-unreadable", "blocking", "privileges", "pvetoken verify");
    assert!(what(&finding).contains("unable to read user.cfg"), "{finding}");
    assert_eq!(run.code, 1, "{}", run.all);
    assert_blocked_at(&run, "permissions-unreadable", "privileges");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_token_whose_role_was_emptied_has_no_permissions_at_all() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    as_root(&lab, |admin| async move { admin.set_role("Token-packer", &[]).await.expect("empty the role") });
    let run = lab.doctor(&file, &[], &lab.root_env());
    assert_eq!(run.code, 1, "{}", run.all);
    assert_eq!(run.json["blocked_by"], Value::Null, "an error, not blocking");
    let token = read_token(&file);
    let finding = expect_finding(
        &run,
        "token-no-permissions",
        "error",
        "privileges",
        &format!("pveum acl modify / --users {} --tokens '{}'", token.token_id.user_str(), token.token_id),
    );
    assert!(what(&finding).contains("no permission at all"), "{finding}");
    let ids = run.ids();
    assert_eq!(ids[0], "token-no-permissions", "{}", run.all);
    assert!(ids[1..].iter().all(|id| id == "privilege-missing") && ids.len() > 1, "{ids:?}");
    assert_eq!(status(&run, "privileges"), "failed");
    assert_eq!(status(&run, "expiry"), "ok", "not blocking: {}", run.all);
    assert_no_secret(&run, &secrets(&lab, &secret));
}

// ---------------------------------------------------------------------------------------------------------------
// semaphore

fn semaphore_password(lab: &Lab) -> [(&str, &str); 1] {
    [("SEMAPHORE_PASSWORD", lab.lab.ready().semaphore_password.as_str())]
}

/// Everything before `semaphore` ran and passed.
fn assert_pve_side_ok(run: &Run) {
    for check in &CHECKS[..9] {
        assert_eq!(status(run, check), "ok", "{check}: {}", run.all);
    }
}

#[test]
fn semaphore_without_credentials_is_a_warning_and_passes() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let run = lab.doctor(&file, &lab.semaphore_args(), &[]);
    assert_passes(&run);
    assert_eq!(run.ids(), ["semaphore-no-credentials"], "{}", run.all);
    expect_finding(&run, "semaphore-no-credentials", "warning", "semaphore", "SEMAPHORE_PASSWORD=...");
    assert_eq!(status(&run, "semaphore"), "warning");
    assert_pve_side_ok(&run);
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn an_untrusted_or_wrongly_pinned_semaphore_certificate_blocks_as_semaphore_tls() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let ready = lab.lab.ready();
    let unpinned = ["--semaphore-url", ready.semaphore_url.as_str()];
    let run = lab.doctor(&file, &unpinned, &semaphore_password(&lab));
    assert_eq!(run.ids(), ["semaphore-tls"], "{}", run.all);
    expect_finding(&run, "semaphore-tls", "blocking", "semaphore", "--semaphore-ca-file PEM");
    assert_blocked_at(&run, "semaphore-tls", "semaphore");
    assert_pve_side_ok(&run);
    assert_no_secret(&run, &secrets(&lab, &secret));

    let wrong = vec!["AB"; 32].join(":");
    let pinned = ["--semaphore-url", ready.semaphore_url.as_str(), "--semaphore-fingerprint", wrong.as_str()];
    let run = lab.doctor(&file, &pinned, &semaphore_password(&lab));
    assert_eq!(run.ids(), ["semaphore-tls"], "{}", run.all);
    let presented = format!("--semaphore-fingerprint {}", ready.fingerprint_sha256);
    expect_finding(&run, "semaphore-tls", "blocking", "semaphore", &presented);
    assert_blocked_at(&run, "semaphore-tls", "semaphore");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_plain_http_url_to_semaphores_https_port_blocks_as_not_semaphore() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let ready = lab.lab.ready();
    // The right port but plain HTTP: the server speaks HTTPS.
    let http = ready.semaphore_url.replacen("https://", "http://", 1);
    let run = lab.doctor(&file, &["--semaphore-url", http.as_str()], &semaphore_password(&lab));
    assert_eq!(run.ids(), ["semaphore-not-semaphore"], "{}", run.all);
    let finding = expect_finding(&run, "semaphore-not-semaphore", "blocking", "semaphore", "http(s)://HOST:PORT");
    assert!(what(&finding).contains("speaks HTTPS"), "{finding}");
    assert_blocked_at(&run, "semaphore-not-semaphore", "semaphore");
    assert_pve_side_ok(&run);
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_semaphore_url_that_reaches_another_https_service_blocks_as_not_semaphore() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let ready = lab.lab.ready();
    // PVE's own port (same CA): it answers the login path with an HTTP error, so it is reachable but not Semaphore.
    let ca = ready.ca_file.display().to_string();
    let args = ["--semaphore-url", ready.pve_url.as_str(), "--semaphore-ca-file", ca.as_str()];
    let run = lab.doctor(&file, &args, &semaphore_password(&lab));
    assert_eq!(run.ids(), ["semaphore-not-semaphore"], "{}", run.all);
    expect_finding(&run, "semaphore-not-semaphore", "blocking", "semaphore", "http(s)://HOST:PORT");
    assert_blocked_at(&run, "semaphore-not-semaphore", "semaphore");
    assert_pve_side_ok(&run);
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_semaphore_that_is_not_running_blocks_as_unreachable() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let url = format!("https://127.0.0.1:{}", closed_port());
    let run = lab.doctor(&file, &["--semaphore-url", url.as_str()], &semaphore_password(&lab));
    assert_eq!(run.ids(), ["semaphore-unreachable"], "{}", run.all);
    expect_finding(&run, "semaphore-unreachable", "blocking", "semaphore", "systemctl status semaphore");
    assert_blocked_at(&run, "semaphore-unreachable", "semaphore");
    assert_pve_side_ok(&run);
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_semaphore_project_that_does_not_exist_blocks_and_lists_the_visible_ones() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let mut args = lab.semaphore_args();
    args.extend(["--semaphore-project", "42"]);
    let run = lab.doctor(&file, &args, &semaphore_password(&lab));
    assert_eq!(run.ids(), ["semaphore-project-missing"], "{}", run.all);
    let finding = expect_finding(&run, "semaphore-project-missing", "blocking", "semaphore", "--semaphore-project ID");
    assert!(what(&finding).contains("`42`") && what(&finding).contains("(id 1)"), "{finding}");
    assert_blocked_at(&run, "semaphore-project-missing", "semaphore");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn an_environment_in_the_community_proxmox_layout_lacks_the_seed_layouts_node() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    lab.register_semaphore(&file, &["--layout", "community-proxmox"]);
    let run = lab.doctor(&file, &lab.semaphore_args(), &semaphore_password(&lab));
    assert_eq!(run.code, 1, "{}", run.all);
    assert!(run.ids().contains(&"semaphore-variables-missing".to_owned()), "{}", run.all);
    let finding = expect_finding(&run, "semaphore-variables-missing", "error", "semaphore", "--layout seed");
    assert!(what(&finding).contains("lacks the secrets PROXMOX_NODE"), "{finding}");
    assert_eq!(status(&run, "semaphore"), "failed");
    assert_no_secret(&run, &secrets(&lab, &secret));
    // Checked against the layout it was registered with, the variables are all there.
    let mut args = lab.semaphore_args();
    args.extend(["--semaphore-layout", "community-proxmox"]);
    let run = lab.doctor(&file, &args, &semaphore_password(&lab));
    assert!(!run.ids().contains(&"semaphore-variables-missing".to_owned()), "{}", run.all);
}

/// As Semaphore's admin: creates environment `ProxmoxAPI` in project 1 with the seed names as secrets of `kind`,
/// and `env` as its plain variables.
fn create_environment(lab: &Lab, token: &TokenFile, kind: SecretType, env: String) {
    let values = [
        ("PROXMOX_HOST", token.host.clone()),
        ("PROXMOX_NODE", token.node.clone()),
        ("PROXMOX_TOKEN_ID", token.token_id.to_string()),
        ("PROXMOX_TOKEN_SECRET", token.secret.expose_secret().to_owned()),
    ];
    let secrets = values
        .into_iter()
        .map(|(name, value)| EnvironmentSecretRequest {
            id: None,
            name: name.to_owned(),
            secret: Some(Secret::from(value)),
            kind: Some(kind),
            operation: Some(SecretOperation::Create),
        })
        .collect();
    let request = EnvironmentRequest {
        id: None,
        name: "ProxmoxAPI".to_owned(),
        project_id: 1,
        password: None,
        json: "{}".to_owned(),
        env: Some(env),
        secrets,
    };
    as_semaphore_admin(lab, |client| async move {
        client.create_environment(1, &request, &[]).await.expect("create environment");
    });
}

#[test]
fn secrets_stored_as_ansible_extra_vars_are_named_as_var_not_env() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    create_environment(&lab, &read_token(&file), SecretType::Var, "{}".to_owned());
    let run = lab.doctor(&file, &lab.semaphore_args(), &semaphore_password(&lab));
    assert_eq!(run.code, 1, "{}", run.all);
    let finding =
        expect_finding(&run, "semaphore-secret-type-var", "error", "semaphore", "pvetoken register semaphore");
    for name in ["PROXMOX_HOST", "PROXMOX_NODE", "PROXMOX_TOKEN_ID", "PROXMOX_TOKEN_SECRET"] {
        assert!(what(&finding).contains(name), "{name}: {finding}");
    }
    assert!(!run.ids().contains(&"semaphore-variables-missing".to_owned()), "the names are there: {}", run.all);
    assert_eq!(status(&run, "semaphore"), "failed");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn the_token_secret_in_the_plain_environment_json_is_a_warning() {
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    let token = read_token(&file);
    let plain = serde_json::json!({ "PROXMOX_TOKEN_SECRET": secret.expose_secret() }).to_string();
    create_environment(&lab, &token, SecretType::Env, plain);
    let run = lab.doctor(&file, &lab.semaphore_args(), &semaphore_password(&lab));
    // The lab's project has no template, so the environment is also unused (a warning too).
    assert_passes(&run);
    assert_eq!(run.ids(), ["semaphore-secret-in-plain-env", "semaphore-environment-unused"], "{}", run.all);
    expect_finding(&run, "semaphore-secret-in-plain-env", "warning", "semaphore", "pvetoken register semaphore");
    assert_eq!(status(&run, "semaphore"), "warning");
    assert_no_secret(&run, &secrets(&lab, &secret));
}

// ---------------------------------------------------------------------------------------------------------------
// Faults the lab cannot produce: small plain-HTTP servers in this process stand in for the broken server.

/// Serves `router` over plain HTTP on 127.0.0.1 (any free port); the server lives as long as the runtime.
fn serve_http(router: axum::Router) -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let address = listener.local_addr().expect("address");
    runtime.spawn(async move { axum::serve(listener, router).await });
    (runtime, format!("http://{address}"))
}

/// An HTTPS listener with a fresh self-signed certificate, for `axum::serve`.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, address)) = self.tcp.accept().await else { continue };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, address);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves `router` over HTTPS on 127.0.0.1 (any free port); returns the URL and the certificate's SHA-256
/// fingerprint (PVE style) to pin.
fn serve_https(router: axum::Router) -> (tokio::runtime::Runtime, String, String) {
    use sha2::Digest;
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let der = certified.cert.der().clone();
    let fingerprint: Vec<String> = sha2::Sha256::digest(&der).iter().map(|byte| format!("{byte:02X}")).collect();
    let key = rustls::pki_types::PrivateKeyDer::try_from(certified.key_pair.serialize_der()).expect("key");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let tcp = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let address = tcp.local_addr().expect("address");
    runtime.spawn(async move { axum::serve(TlsListener { tcp, acceptor }, router).await });
    (runtime, format!("https://{address}"), fingerprint.join(":"))
}

#[test]
fn a_version_string_without_a_release_number_is_a_warning_and_the_privileges_check_is_skipped() {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    // An API that authenticates the token but reports a version doctor cannot read (a development build).
    let version = |headers: HeaderMap| async move {
        if headers.contains_key(header::AUTHORIZATION) {
            let data = serde_json::json!({ "data": { "version": "dev", "release": "master", "repoid": "0" } });
            axum::Json(data).into_response()
        } else {
            (StatusCode::UNAUTHORIZED, "No ticket").into_response()
        }
    };
    let router = axum::Router::new().route("/api2/json/version", axum::routing::get(version));
    let (_server, url, fingerprint) = serve_https(router);
    let run = lab.doctor(&file, &["--url", url.as_str(), "--fingerprint", fingerprint.as_str()], &[]);
    assert_passes(&run);
    assert_eq!(run.ids(), ["pve-version-unknown"], "{}", run.all);
    let finding = expect_finding(&run, "pve-version-unknown", "warning", "version", "pveversion -v");
    assert!(what(&finding).contains("`dev`"), "{finding}");
    assert_eq!(status(&run, "auth"), "ok");
    assert_eq!(status(&run, "privileges"), "skipped", "no release, no privilege names: {}", run.all);
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_semaphore_that_fails_to_list_environments_is_a_request_failure() {
    use axum::http::{StatusCode, header};
    use axum::routing::{get, post};
    let lab = Lab::start();
    let (file, secret) = lab.packer_token();
    // A Semaphore that logs in and shows the project, then answers 500 (its database is locked) on the listing.
    let router = axum::Router::new()
        .route(
            "/api/auth/login",
            post(|| async { (StatusCode::NO_CONTENT, [(header::SET_COOKIE, "semaphore=session; Path=/")]) }),
        )
        .route("/api/auth/logout", post(|| async { StatusCode::NO_CONTENT }))
        .route("/api/user", get(|| async { axum::Json(serde_json::json!({ "id": 1, "username": "admin" })) }))
        .route("/api/project/1", get(|| async { axum::Json(serde_json::json!({ "id": 1, "name": "PrivateBox" })) }))
        .route(
            "/api/project/1/environment",
            get(|| async {
                let body = axum::Json(serde_json::json!({ "error": "database is locked" }));
                (StatusCode::INTERNAL_SERVER_ERROR, body)
            }),
        );
    let (_server, url) = serve_http(router);
    let run = lab.doctor(&file, &["--semaphore-url", url.as_str()], &semaphore_password(&lab));
    assert_eq!(run.code, 1, "an error exits 1: {}", run.all);
    assert_eq!(run.ids(), ["semaphore-request-failed"], "{}", run.all);
    let finding =
        expect_finding(&run, "semaphore-request-failed", "error", "semaphore", "pvetoken register semaphore --url");
    assert!(what(&finding).contains("database is locked"), "{finding}");
    assert_eq!(run.json["blocked_by"], Value::Null, "an error, not blocking");
    assert_eq!(status(&run, "semaphore"), "failed");
    assert_pve_side_ok(&run);
    assert_no_secret(&run, &secrets(&lab, &secret));
}

#[test]
fn a_release_newer_than_any_known_is_a_warning_naming_the_assumption() {
    let mut scenario = pvetoken_lab::Scenario::default();
    scenario.packages.insert("pve-manager".to_owned(), "9.7.1".to_owned());
    let lab = Lab::start_with(LabConfig { scenario, ..LabConfig::default() });
    let (file, secret) = lab.packer_token();
    let run = lab.doctor(&file, &[], &[]);
    assert_passes(&run);
    assert_eq!(run.ids(), ["pve-version-newer"], "{}", run.all);
    let finding = expect_finding(&run, "pve-version-newer", "warning", "version", "upgrade pvetoken");
    assert!(what(&finding).contains("9.7.1") && what(&finding).contains("assuming it behaves as 9.2"), "{finding}");
    assert_no_secret(&run, &secrets(&lab, &secret));
}
