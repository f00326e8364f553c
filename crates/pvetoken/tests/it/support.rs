//! Helpers shared by the integration tests (other areas may use them; keep this file small).
//!
//! - [`LabProcess::start`] runs the real `pvetoken lab serve` binary in a private temp dir, waits (bounded) for its
//!   ready file and kills it on drop.
//! - [`Api`] calls the lab's PVE API as root (ticket + CSRF) or with a token, trusting only the lab's CA;
//!   [`create_token`] makes a token for clients that need one.
//! - [`tool`] finds a third-party program installed by `scripts/install-test-deps.sh` (see `scripts/test-env.sh`);
//!   [`client_command`] prepares a child process for it with a clean environment pointing every TLS stack at the lab CA;
//!   [`run_bounded`] runs it with a time limit.
#![allow(dead_code, reason = "each test area uses a different subset of these helpers")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pvetoken_api::{ExposeSecret, Secret};
use serde_json::Value;

/// How long a lab may take to write its ready file.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between two looks at the ready file / a child's exit.
const POLL: Duration = Duration::from_millis(20);

/// Environment variable that turns a missing third-party tool into a skipped test instead of a failure.
pub const SKIP_THIRD_PARTY: &str = "PVETOKEN_SKIP_THIRD_PARTY";

/// A directory under the system temp dir, mode 0700, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh private directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> TempDir {
        use std::os::unix::fs::DirBuilderExt;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let name = format!("{prefix}-{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&path).expect("create a private temp dir");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The lab's ready file (`--ready-file`), as the lab contract defines it.
pub struct Ready {
    /// `https://127.0.0.1:PORT`, without `/api2/json`.
    pub pve_url: String,
    /// PEM file of the CA that signed the lab's certificate.
    pub ca_file: PathBuf,
    /// SHA-256 fingerprint of the lab's certificate.
    pub fingerprint_sha256: String,
    /// Bootstrap administrator, `root@pam`.
    pub root_user: String,
    /// Its password.
    pub root_password: Secret,
    /// The node name of the scenario (`pve`).
    pub node: String,
    /// Base URL of the Semaphore simulator.
    pub semaphore_url: String,
    /// Semaphore admin user.
    pub semaphore_user: String,
    /// Its password.
    pub semaphore_password: Secret,
}

impl Ready {
    fn parse(text: &str) -> Result<Ready, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("ready file is not JSON: {e}"))?;
        let s = |key: &str| -> Result<String, String> {
            v.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("ready file lacks the string `{key}`"))
        };
        Ok(Ready {
            pve_url: s("pve_url")?.trim_end_matches('/').to_owned(),
            ca_file: PathBuf::from(s("ca_file")?),
            fingerprint_sha256: s("fingerprint_sha256")?,
            root_user: s("root_user")?,
            root_password: Secret::from(s("root_password")?),
            node: s("node")?,
            semaphore_url: s("semaphore_url")?,
            semaphore_user: s("semaphore_user")?,
            semaphore_password: Secret::from(s("semaphore_password")?),
        })
    }

    /// The port of the PVE API.
    pub fn pve_port(&self) -> u16 {
        self.pve_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("pve_url {} has no port", self.pve_url))
    }

    /// The host of the PVE API (`127.0.0.1`).
    pub fn pve_host(&self) -> &str {
        let rest = self.pve_url.trim_start_matches("https://");
        rest.rsplit_once(':').map_or(rest, |(host, _)| host)
    }
}

/// A running `pvetoken lab serve`, killed on drop.
pub struct LabProcess {
    child: KillOnDrop,
    /// The parsed ready file.
    pub ready: Ready,
    dir: TempDir,
}

impl LabProcess {
    /// Starts `pvetoken lab serve --ready-file DIR/ready.json --state-dir DIR/state ARGS...` and waits for the ready
    /// file. Panics with the lab's stderr if it exits or stays silent for [`READY_TIMEOUT`].
    pub fn start(args: &[&str]) -> LabProcess {
        LabProcess::start_seeded(args, &[])
    }

    /// Like [`LabProcess::start`], after writing `files` (path relative to the state dir, content) into the state
    /// dir, e.g. `("user.cfg", ...)` and `("priv/token.cfg", ...)` in PVE's formats.
    pub fn start_seeded(args: &[&str], files: &[(&str, &str)]) -> LabProcess {
        let dir = TempDir::new("pvetoken-lab");
        for (relative, content) in files {
            let path = dir.path().join("state").join(relative);
            std::fs::create_dir_all(path.parent().expect("a file in the state dir")).expect("create state dirs");
            write_private(&path, content);
        }
        let ready_file = dir.path().join("ready.json");
        let log = dir.path().join("lab.log");
        let log_file = std::fs::File::create(&log).expect("create lab log");
        let child = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
            .args(["lab", "serve", "--ready-file"])
            .arg(&ready_file)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn()
            .expect("spawn pvetoken lab serve");
        let mut child = KillOnDrop(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_error = String::from("ready file not written yet");
        loop {
            if let Ok(Some(status)) = child.0.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("`pvetoken lab serve` exited with {status} before it was ready:\n{log}");
            }
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                match Ready::parse(&text) {
                    Ok(ready) => return LabProcess { child, ready, dir },
                    Err(e) => last_error = e,
                }
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("`pvetoken lab serve` not ready after {READY_TIMEOUT:?} ({last_error}):\n{log}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// The lab's private directory (ready file, state dir, log); tests may put their own files here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the lab printed so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("lab.log")).unwrap_or_default()
    }

    /// An API client logged in as the lab's root user.
    pub fn root_api(&self) -> Api {
        Api::login(&self.ready, &self.ready.root_user, &self.ready.root_password)
    }
}

/// Kills and reaps the child process on drop (also when a test panics).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An error answer of the PVE API.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The standard reason for the status (reqwest does not expose the server's own reason phrase), or what went
    /// wrong in transport.
    pub reason: String,
    /// Response body.
    pub body: String,
}

enum Auth {
    Ticket { cookie: Secret, csrf: String },
    Token { header: Secret },
}

/// pvetoken's own HTTP client for the in-process lab: the lab's certificate pinned.
pub fn lab_http(ready: &pvetoken_lab::ReadyInfo) -> reqwest::Client {
    let tls = pvetoken_client::TlsSettings {
        ca_file: None,
        fingerprint: Some(ready.fingerprint_sha256.parse().expect("the lab's fingerprint")),
        insecure: false,
    };
    pvetoken_client::tls::http_client(&tls).expect("HTTP client")
}

/// pvetoken's own PVE client, logged in as the in-process lab's root@pam.
pub async fn lab_root(ready: &pvetoken_lab::ReadyInfo) -> pvetoken_client::pve::PveClient {
    let endpoint = pvetoken_client::endpoint::Endpoint::parse_pve(&ready.pve_url).expect("the lab's URL");
    let password = Secret::from(ready.root_password.clone());
    pvetoken_client::pve::PveClient::login(lab_http(ready), endpoint, "root@pam", &password)
        .await
        .expect("root logs in")
}

/// pvetoken's own Semaphore client, logged in as the in-process lab Semaphore's admin.
pub async fn lab_semaphore_admin(ready: &pvetoken_lab::ReadyInfo) -> pvetoken_client::semaphore::SemaphoreClient {
    let auth = pvetoken_client::semaphore::SemaphoreAuth::Password {
        user: ready.semaphore_user.clone(),
        password: Secret::from(ready.semaphore_password.clone()),
    };
    let connected = pvetoken_client::semaphore::SemaphoreClient::connect(lab_http(ready), &ready.semaphore_url, auth);
    connected.await.expect("Semaphore login").0
}

/// `register semaphore` of `token_file` into the in-process lab's Semaphore: project 1, its admin, its pinned
/// certificate; the caller adds how the password arrives (`SEMAPHORE_PASSWORD`, or `--password-file`).
pub fn register_semaphore_args<'a>(ready: &'a pvetoken_lab::ReadyInfo, token_file: &'a str) -> Vec<&'a str> {
    vec![
        "register",
        "semaphore",
        "--url",
        &ready.semaphore_url,
        "--project",
        "1",
        "--user",
        &ready.semaphore_user,
        "--fingerprint",
        &ready.fingerprint_sha256,
        "--token-file",
        token_file,
    ]
}

/// Writes `text` to a new file `path`, 0600 from its creation, as pvetoken writes secrets (the file must not exist).
pub fn write_private(path: &Path, text: impl AsRef<[u8]>) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_ref()))
        .unwrap_or_else(|error| panic!("write {} (0600): {error}", path.display()));
}

/// A minimal PVE API client for test setup and for checking the lab's state; trusts only the lab's CA.
pub struct Api {
    http: reqwest::blocking::Client,
    base: String,
    auth: Auth,
}

/// A blocking HTTPS client trusting exactly the lab's CA file (through pvetoken-client's TLS settings, which also
/// accept a self-signed server certificate given as its own CA, as Go, Python and node do).
pub fn blocking_https(ca_file: &Path) -> reqwest::blocking::Client {
    let settings =
        pvetoken_client::TlsSettings { ca_file: Some(ca_file.to_owned()), ..pvetoken_client::TlsSettings::default() };
    let config = pvetoken_client::tls::rustls_config(&settings).expect("TLS configuration for the lab CA");
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the HTTPS client")
}

impl Api {
    /// Logs in with `POST /access/ticket`.
    pub fn login(ready: &Ready, user: &str, password: &Secret) -> Api {
        let http = blocking_https(&ready.ca_file);
        let base = format!("{}/api2/json", ready.pve_url);
        let response = http
            .post(format!("{base}/access/ticket"))
            .form(&[("username", user), ("password", password.expose_secret())])
            .send()
            .expect("POST /access/ticket");
        let status = response.status();
        let body: Value = response.json().expect("ticket answer is JSON");
        assert!(status.is_success(), "login of {user} failed: {status}");
        let data = &body["data"];
        let ticket = data["ticket"].as_str().expect("ticket in the answer");
        let csrf = data["CSRFPreventionToken"].as_str().expect("CSRF token in the answer");
        Api {
            http,
            base,
            auth: Auth::Ticket { cookie: Secret::from(format!("PVEAuthCookie={ticket}")), csrf: csrf.to_owned() },
        }
    }

    /// Sends `value` as the `Authorization` header of every request, as it is (for malformed-header tests).
    pub fn with_authorization(ready: &Ready, value: &str) -> Api {
        Api {
            http: blocking_https(&ready.ca_file),
            base: format!("{}/api2/json", ready.pve_url),
            auth: Auth::Token { header: Secret::from(value.to_owned()) },
        }
    }

    /// Authenticates with an API token (`user@realm!name` and its secret).
    pub fn with_token(ready: &Ready, full_id: &str, secret: &Secret) -> Api {
        Api {
            http: blocking_https(&ready.ca_file),
            base: format!("{}/api2/json", ready.pve_url),
            auth: Auth::Token { header: Secret::from(format!("PVEAPIToken={full_id}={}", secret.expose_secret())) },
        }
    }

    /// Sends one request and returns the status and body as they came, whatever the status (`method` is
    /// `GET`, `POST`, `PUT` or `DELETE`; params go to the query for GET, to a form body otherwise).
    pub fn raw(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<(u16, String), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let url = format!("{}{path}", self.base);
        let is_get = method == reqwest::Method::GET;
        let mut request = self.http.request(method, url);
        request = if is_get { request.query(params) } else { request.form(params) };
        request = match &self.auth {
            Auth::Ticket { cookie, csrf } => {
                let r = request.header("Cookie", cookie.expose_secret());
                if is_get { r } else { r.header("CSRFPreventionToken", csrf) }
            }
            Auth::Token { header } => request.header("Authorization", header.expose_secret()),
        };
        let response = request.send().map_err(|e| format!("transport error: {e}"))?;
        let status = response.status().as_u16();
        Ok((status, response.text().unwrap_or_default()))
    }

    fn send(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        let (status, body) =
            self.raw(method, path, params).map_err(|reason| ApiError { status: 0, reason, body: String::new() })?;
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or_default()
            .to_owned();
        if !(200..300).contains(&status) {
            return Err(ApiError { status, reason, body });
        }
        let value: Value = serde_json::from_str(&body).map_err(|e| ApiError {
            status,
            reason: format!("answer is not JSON: {e}"),
            body: body.clone(),
        })?;
        Ok(value.get("data").cloned().unwrap_or(Value::Null))
    }

    /// `GET path?query` (path after `/api2/json`), returning `data`.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, ApiError> {
        self.send("GET", path, query)
    }

    /// `POST path` with a form body, returning `data`.
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Value, ApiError> {
        self.send("POST", path, form)
    }

    /// `PUT path` with a form body, returning `data`.
    pub fn put(&self, path: &str, form: &[(&str, &str)]) -> Result<Value, ApiError> {
        self.send("PUT", path, form)
    }

    /// `DELETE path`, returning `data`.
    pub fn delete(&self, path: &str) -> Result<Value, ApiError> {
        self.send("DELETE", path, &[])
    }
}

/// Creates the API token `userid!name` through `api` and returns its full id and secret.
pub fn create_token(api: &Api, userid: &str, name: &str, privsep: bool) -> (String, Secret) {
    let data = api
        .post(&format!("/access/users/{userid}/token/{name}"), &[("privsep", if privsep { "1" } else { "0" })])
        .unwrap_or_else(|e| panic!("create token {userid}!{name}: {e:?}"));
    let full = data["full-tokenid"].as_str().expect("full-tokenid in the answer").to_owned();
    let secret = data["value"].as_str().expect("value in the answer").to_owned();
    (full, Secret::from(secret))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/clients` (probe scripts, playbooks, packer templates, node_modules).
pub fn clients_dir() -> PathBuf {
    std::env::var_os("PVETOKEN_TEST_CLIENTS").map_or_else(|| repo_root().join("tests/clients"), PathBuf::from)
}

/// The venv of the PyPI clients (`PVETOKEN_TEST_VENV`, else `.venv-tests` at the repo root).
pub fn venv_dir() -> PathBuf {
    std::env::var_os("PVETOKEN_TEST_VENV").map_or_else(|| repo_root().join(".venv-tests"), PathBuf::from)
}

/// Programs that must come from the test venv (a system `python` lacks proxmoxer, a system `ansible-playbook` the
/// pinned collections).
const VENV_ONLY: &[&str] = &["python", "ansible-playbook", "sops", "schemathesis"];

/// Finds the third-party program `name`: first in the test venv's `bin/`, then on `PATH`; `node-module:X` finds the
/// npm package X under `tests/clients/node_modules`. Missing: the test fails telling to run
/// `scripts/install-test-deps.sh`, unless `PVETOKEN_SKIP_THIRD_PARTY=1`, where it returns `None` after printing
/// why the test is skipped (callers then return early).
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = if let Some(module) = name.strip_prefix("node-module:") {
        Some(clients_dir().join("node_modules").join(module)).filter(|p| p.is_dir())
    } else {
        let in_venv = venv_dir().join("bin").join(name);
        if in_venv.is_file() {
            Some(in_venv)
        } else if VENV_ONLY.contains(&name) {
            None
        } else {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
            })
        }
    };
    if found.is_some() {
        return found;
    }
    if std::env::var(SKIP_THIRD_PARTY).is_ok_and(|v| v == "1") {
        #[expect(clippy::print_stderr, reason = "a skipped test says why, in the test's own output")]
        {
            eprintln!("SKIPPED: third-party tool `{name}` is not installed and {SKIP_THIRD_PARTY}=1");
        }
        return None;
    }
    panic!(
        "third-party tool `{name}` not found (venv {}, PATH): run scripts/install-test-deps.sh \
         (then `. scripts/test-env.sh`), or set {SKIP_THIRD_PARTY}=1 to skip these tests",
        venv_dir().display()
    );
}

/// A command for a third-party client against `lab`: a clean environment (PATH, a private HOME, UTF-8 locale,
/// `CHECKPOINT_DISABLE=1`) where every TLS stack trusts exactly the lab's CA: `SSL_CERT_FILE` (Go, OpenSSL),
/// `REQUESTS_CA_BUNDLE` and `CURL_CA_BUNDLE` (Python requests), `NODE_EXTRA_CA_CERTS` (node). Add the client's own
/// variables (credentials included: environment, never argv) with `.env(..)`.
pub fn client_command(program: &Path, lab: &LabProcess) -> Command {
    let home = lab.dir().join("home");
    std::fs::create_dir_all(&home).expect("create the clients' HOME");
    let ca = &lab.ready.ca_file;
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("CHECKPOINT_DISABLE", "1")
        .env("SSL_CERT_FILE", ca)
        .env("REQUESTS_CA_BUNDLE", ca)
        .env("CURL_CA_BUNDLE", ca)
        .env("NODE_EXTRA_CA_CERTS", ca)
        .stdin(Stdio::null());
    command
}

/// What a bounded run produced.
pub struct RunOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl RunOutput {
    /// Both streams, for failure messages.
    pub fn both(&self) -> String {
        format!("status: {}\n--- stdout\n{}\n--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs `command` to completion, killing it and failing the test if it takes longer than `limit`.
pub fn run_bounded(command: &mut Command, limit: Duration) -> RunOutput {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", command.get_program()));
    let drain = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{:?} did not finish within {limit:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                command.get_program()
            );
        }
        std::thread::sleep(POLL);
    };
    RunOutput { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}
