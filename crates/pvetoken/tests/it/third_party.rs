//! Proof of the lab against clients nobody on this team wrote, run unchanged against a real `pvetoken lab serve`:
//! proxmoxer (PyPI), Ansible's community.proxmox (PyPI ansible), Debian's packer 1.6.6 and npm `proxmox-api`.
//! The tools come from `scripts/install-test-deps.sh`; the scripts they run live in `tests/clients/`.
//! Every test checks the lab's resulting state through the API, not only the client's exit code, and every
//! client verifies TLS against the lab's CA (no "insecure" switches).

use std::time::Duration;

use pvetoken_api::{ExposeSecret, Secret};
use serde_json::Value;

use crate::support::{Api, LabProcess, RunOutput, client_command, clients_dir, create_token, run_bounded, tool};

/// Upper bound for one client run (they take 1-10 s).
const CLIENT_LIMIT: Duration = Duration::from_secs(180);

/// The role the probes grant their new token on `/vms`: it holds `VM.PowerMgmt` but not `VM.Allocate`.
const PROBE_ROLE: &str = "PVEVMUser";

/// Creates `userid` (realm pve) holding `Administrator` on `/` and a privilege-sharing token (privsep=0) for it:
/// the kind of automation identity the clients log in with.
fn admin_user_with_token(root: &Api, userid: &str, token: &str) -> (String, Secret) {
    root.post("/access/users", &[("userid", userid)]).unwrap_or_else(|e| panic!("create {userid}: {e:?}"));
    root.put("/access/acl", &[("path", "/"), ("roles", "Administrator"), ("users", userid)])
        .unwrap_or_else(|e| panic!("grant Administrator to {userid}: {e:?}"));
    create_token(root, userid, token, false)
}

fn parse_json_output(output: &RunOutput) -> Value {
    assert!(output.status.success(), "client failed:\n{}", output.both());
    let last = output.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("client printed no JSON ({e}):\n{}", output.both()))
}

fn privileges(map: &Value, path: &str) -> Vec<String> {
    let mut privs: Vec<String> =
        map[path].as_object().unwrap_or_else(|| panic!("no entry for {path} in {map}")).keys().cloned().collect();
    privs.sort();
    privs
}

/// Checks what every token probe reports and what the lab holds afterwards: the new privsep token exists with the
/// probe's comment, its ACL entry is stored, and its effective privileges on /vms are the intersection of its
/// owner's (Administrator) and its own (PVEVMUser): power management yes, allocation no.
fn assert_probe_result(lab: &LabProcess, report: &Value, owner: &str, name: &str, comment: &str) {
    let full = format!("{owner}!{name}");
    assert_eq!(report["nodes"], serde_json::json!([lab.ready.node]), "{report}");
    assert_eq!(report["version"]["release"], "9.1", "{report}");
    assert!(report["version"]["version"].as_str().is_some_and(|v| v.starts_with("9.1")), "{report}");
    assert_eq!(report["created"]["full-tokenid"], full.as_str(), "{report}");
    assert_eq!(report["created"]["value_is_lowercase_uuid"], true, "{report}");
    for key in ["permissions_read_by_caller", "permissions_read_by_new_token"] {
        let privs = privileges(&report[key], "/vms");
        assert!(privs.iter().any(|p| p == "VM.PowerMgmt"), "{key}: {privs:?}");
        assert!(privs.iter().any(|p| p == "VM.Audit"), "{key}: {privs:?}");
        assert!(!privs.iter().any(|p| p == "VM.Allocate"), "{key} is not an intersection: {privs:?}");
    }

    // PVE refuses a token reading its owner's permissions without Sys.Audit on /access; both clients show the
    // status and PVE's message (proxmoxer from the body, proxmox-api from the reason phrase).
    let denied = report["owner_permissions_denied_to_new_token"]
        .as_str()
        .unwrap_or_else(|| panic!("the new token could read its owner's permissions: {report}"));
    assert!(denied.contains("403") && denied.contains("Permission check failed (/access, Sys.Audit)"), "{denied}");

    let root = lab.root_api();
    let token = root.get(&format!("/access/users/{owner}/token/{name}"), &[]).expect("the new token is stored");
    assert_eq!(token["comment"], comment, "{token}");
    assert_eq!(token["privsep"].as_u64().or_else(|| token["privsep"].as_str()?.parse().ok()), Some(1));
    let acl = root.get("/access/acl", &[]).expect("read the ACL");
    let entries = acl.as_array().expect("ACL list");
    assert!(
        entries.iter().any(|e| e["path"] == "/vms"
            && e["type"] == "token"
            && e["ugid"] == full.as_str()
            && e["roleid"] == PROBE_ROLE),
        "ACL entry for {full} missing: {acl}"
    );
}

#[test]
fn proxmoxer_with_a_token_creates_a_privsep_token_grants_it_a_role_and_reads_its_intersected_permissions() {
    let Some(python) = tool("python") else { return };
    let lab = LabProcess::start(&["--pve-version", "9.1"]);
    let root = lab.root_api();
    let (caller, secret) = admin_user_with_token(&root, "automation@pve", "proxmoxer");
    let token_name = caller.rsplit_once('!').expect("full token id").1;

    let output = run_bounded(
        client_command(&python, &lab)
            .arg(clients_dir().join("proxmoxer_probe.py"))
            .env("PVE_HOST", lab.ready.pve_host())
            .env("PVE_PORT", lab.ready.pve_port().to_string())
            .env("PVE_USER", "automation@pve")
            .env("PVE_TOKEN_NAME", token_name)
            .env("PVE_TOKEN_SECRET", secret.expose_secret())
            .env("PROBE_TOKEN_OWNER", "automation@pve")
            .env("PROBE_TOKEN_NAME", "made-by-proxmoxer")
            .env("PROBE_ROLE", PROBE_ROLE),
        CLIENT_LIMIT,
    );
    let report = parse_json_output(&output);
    assert_eq!(report["mode"], "token");
    assert_probe_result(&lab, &report, "automation@pve", "made-by-proxmoxer", "made by proxmoxer");
}

#[test]
fn proxmoxer_with_a_password_logs_in_with_a_ticket_and_manages_its_own_tokens_with_csrf() {
    let Some(python) = tool("python") else { return };
    let lab = LabProcess::start(&["--pve-version", "9.1"]);
    let root_user = lab.ready.root_user.clone();

    let output = run_bounded(
        client_command(&python, &lab)
            .arg(clients_dir().join("proxmoxer_probe.py"))
            .env("PVE_HOST", lab.ready.pve_host())
            .env("PVE_PORT", lab.ready.pve_port().to_string())
            .env("PVE_USER", &root_user)
            .env("PVE_PASSWORD", lab.ready.root_password.expose_secret())
            .env("PROBE_TOKEN_OWNER", &root_user)
            .env("PROBE_TOKEN_NAME", "made-by-proxmoxer")
            .env("PROBE_ROLE", PROBE_ROLE),
        CLIENT_LIMIT,
    );
    let report = parse_json_output(&output);
    assert_eq!(report["mode"], "password");
    assert_probe_result(&lab, &report, &root_user, "made-by-proxmoxer", "made by proxmoxer");
}

#[test]
fn npm_proxmox_api_with_a_token_parses_the_labs_answers_and_manages_tokens() {
    let Some(node) = tool("node") else { return };
    let Some(_module) = tool("node-module:proxmox-api") else { return };
    let lab = LabProcess::start(&["--pve-version", "9.1"]);
    let root = lab.root_api();
    let (caller, secret) = admin_user_with_token(&root, "automation@pve", "node");

    let output = run_bounded(
        client_command(&node, &lab)
            .current_dir(clients_dir())
            .arg("proxmox_api_probe.mjs")
            .env("PVE_HOST", lab.ready.pve_host())
            .env("PVE_PORT", lab.ready.pve_port().to_string())
            .env("PVE_TOKEN_ID", &caller)
            .env("PVE_TOKEN_SECRET", secret.expose_secret())
            .env("PROBE_TOKEN_OWNER", "automation@pve")
            .env("PROBE_TOKEN_NAME", "made-by-node")
            .env("PROBE_ROLE", PROBE_ROLE),
        CLIENT_LIMIT,
    );
    let report = parse_json_output(&output);
    assert_eq!(report["mode"], "token");
    assert_probe_result(&lab, &report, "automation@pve", "made-by-node", "made by proxmox-api");
}

#[test]
fn ansible_community_proxmox_with_only_proxmox_env_lists_users_grants_an_acl_clones_and_starts_the_template() {
    let Some(playbook) = tool("ansible-playbook") else { return };
    let lab = LabProcess::start(&["--pve-version", "9.1"]);
    let root = lab.root_api();
    let node = lab.ready.node.clone();
    let (_caller, secret) = admin_user_with_token(&root, "ansible@pve", "ci");
    let (audit_token, _) = create_token(&root, "ansible@pve", "audit", true);
    let template = root.get(&format!("/nodes/{node}/qemu/9000/config"), &[]).expect("the scenario's template 9000");
    let source_name = template["name"].as_str().expect("template 9000 has a name").to_owned();
    let new_vmid = root.get("/cluster/nextid", &[]).expect("next free VMID");
    let new_vmid = new_vmid
        .as_str()
        .map(str::to_owned)
        .or_else(|| new_vmid.as_u64().map(|n| n.to_string()))
        .expect("nextid is a number");

    let output = run_bounded(
        client_command(&playbook, &lab)
            .current_dir(clients_dir())
            .args(["-i", "localhost,", "ansible-lab.yml"])
            .args(["-e", &format!("node={node}")])
            .args(["-e", "source_vmid=9000"])
            .args(["-e", &format!("source_name={source_name}")])
            .args(["-e", &format!("new_vmid={new_vmid}")])
            .args(["-e", "new_name=ansible-clone"])
            .args(["-e", &format!("acl_token={audit_token}")])
            .args(["-e", "acl_role=PVEAuditor"])
            .env("ANSIBLE_HOME", lab.dir().join("ansible"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_LOCALHOST_WARNING", "0")
            .env("PROXMOX_HOST", lab.ready.pve_host())
            .env("PROXMOX_PORT", lab.ready.pve_port().to_string())
            .env("PROXMOX_USER", "ansible@pve")
            .env("PROXMOX_TOKEN_ID", "ci")
            .env("PROXMOX_TOKEN_SECRET", secret.expose_secret())
            .env("PROXMOX_VALIDATE_CERTS", "true"),
        CLIENT_LIMIT,
    );
    assert!(output.status.success(), "ansible-playbook failed:\n{}", output.both());

    let acl = root.get("/access/acl", &[]).expect("read the ACL");
    assert!(
        acl.as_array().expect("ACL list").iter().any(|e| e["path"] == "/vms"
            && e["type"] == "token"
            && e["ugid"] == audit_token.as_str()
            && e["roleid"] == "PVEAuditor"),
        "proxmox_access_acl left no entry: {acl}"
    );
    let status = root.get(&format!("/nodes/{node}/qemu/{new_vmid}/status/current"), &[]).expect("the clone exists");
    assert_eq!(status["status"], "running", "{status}");
    let config = root.get(&format!("/nodes/{node}/qemu/{new_vmid}/config"), &[]).expect("the clone's config");
    assert_eq!(config["name"], "ansible-clone", "{config}");
    assert_ne!(config["template"], 1, "a clone of a template is not a template: {config}");
}

/// Runs Debian's packer on `template` in a private directory with password auth from `PROXMOX_*` and TLS
/// verified against the lab CA.
fn packer_command(
    lab: &LabProcess,
    template: &str,
    password: &str,
    vars: &[(&str, &str)],
) -> Option<std::process::Command> {
    let packer = tool("packer")?;
    let work = lab.dir().join(format!("packer-{template}"));
    std::fs::create_dir_all(&work).expect("packer work dir");
    let mut command = client_command(&packer, lab);
    command
        .current_dir(&work)
        .args(["build", "-machine-readable"])
        .env("PACKER_LOG", "1")
        .env("PACKER_LOG_PATH", work.join("packer.log"))
        .env("PROXMOX_URL", format!("{}/api2/json", lab.ready.pve_url))
        .env("PROXMOX_USERNAME", &lab.ready.root_user)
        .env("PROXMOX_PASSWORD", password);
    for (key, value) in vars {
        command.args(["-var", &format!("{key}={value}")]);
    }
    command.arg(clients_dir().join(template));
    Some(command)
}

/// Runs [`packer_command`] with the root password and returns the VMID of the template packer reports.
fn packer_build(lab: &LabProcess, template: &str, vars: &[(&str, &str)]) -> Option<u64> {
    let mut command = packer_command(lab, template, lab.ready.root_password.expose_secret(), vars)?;
    let work = lab.dir().join(format!("packer-{template}"));
    let output = run_bounded(&mut command, CLIENT_LIMIT);
    let log = std::fs::read_to_string(work.join("packer.log")).unwrap_or_default();
    assert!(output.status.success(), "packer failed:\n{}\n--- packer.log\n{log}", output.both());
    // machine-readable: `TIME,BUILDER,artifact,0,id,VMID`
    let vmid = output
        .stdout
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields.get(2) == Some(&"artifact") && fields.get(4) == Some(&"id")).then(|| fields.get(5)?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("packer reported no artifact id:\n{}", output.both()));
    Some(vmid)
}

#[test]
fn debian_packer_1_6_6_builds_a_proxmox_clone_template_with_password_auth_and_verified_tls() {
    let lab = LabProcess::start(&["--pve-version", "9.1"]);
    let root = lab.root_api();
    let node = lab.ready.node.clone();
    let source = root.get(&format!("/nodes/{node}/qemu/9000/config"), &[]).expect("the scenario's template 9000");
    let source_name = source["name"].as_str().expect("template 9000 has a name").to_owned();

    let Some(vmid) = packer_build(
        &lab,
        "packer-clone.json",
        &[("node", &node), ("clone_vm", &source_name), ("template_name", "packer-built")],
    ) else {
        return;
    };

    assert_ne!(vmid, 9000, "packer must build a new VM, not touch the source");
    let config = root.get(&format!("/nodes/{node}/qemu/{vmid}/config"), &[]).expect("the built VM exists");
    assert_eq!(config["template"], 1, "packer's result is not a template: {config}");
    assert_eq!(config["name"], "packer-built", "{config}");
    let resources = root.get("/cluster/resources", &[("type", "vm")]).expect("cluster resources");
    let listed = resources
        .as_array()
        .expect("resource list")
        .iter()
        .find(|r| r["vmid"] == vmid)
        .unwrap_or_else(|| panic!("VM {vmid} missing from /cluster/resources: {resources}"));
    assert_eq!(listed["template"], 1, "{listed}");
    assert_eq!(listed["status"], "stopped", "packer shuts the VM down before templating: {listed}");
}

#[test]
fn debian_packer_shows_the_labs_401_reason_phrase_for_a_wrong_password_and_builds_nothing() {
    let lab = LabProcess::start(&["--pve-version", "9.1"]);
    let root = lab.root_api();
    let before = root.get("/cluster/resources", &[("type", "vm")]).expect("cluster resources");
    let Some(mut command) = packer_command(
        &lab,
        "packer-clone.json",
        "not-the-password",
        &[("node", &lab.ready.node), ("clone_vm", "anything")],
    ) else {
        return;
    };

    let output = run_bounded(&mut command, CLIENT_LIMIT);

    assert!(!output.status.success(), "packer accepted a wrong password:\n{}", output.both());
    // Packer prints the HTTP status line; PVE puts its message there: `401 authentication failure`.
    assert!(
        output.stdout.contains("401 authentication failure") || output.stderr.contains("401 authentication failure"),
        "packer did not show PVE's reason phrase:\n{}",
        output.both()
    );
    let after = root.get("/cluster/resources", &[("type", "vm")]).expect("cluster resources");
    assert_eq!(before, after, "a failed login must not change the lab");
}

// ---- Replay of results computed by Proxmox's own code -------------------------------------------------------------
// `shared/reference/pve-perm-vectors.json` (beside the repository) holds API answers computed by running
// pve-access-control itself. Each check runs against a fresh lab whose state dir is seeded with the case's user.cfg
// and priv/token.cfg; users log in with a password root sets through `PUT /access/password`, tokens use the secrets
// of the seeded token.cfg. All mismatches are collected and reported together.

/// Where the vectors live (next to the repository, as CI lays it out).
fn vectors_path() -> std::path::PathBuf {
    crate::support::repo_root().join("../shared/reference/pve-perm-vectors.json")
}

/// The vectors, or `None` (with a printed reason) when the file is absent: the issue runs the replay only then.
fn load_vectors() -> Option<Vec<Value>> {
    let path = vectors_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        #[expect(clippy::print_stderr, reason = "a skipped replay says why in the test output")]
        {
            eprintln!("SKIPPED: {} not present", path.display());
        }
        return None;
    };
    Some(serde_json::from_str::<Value>(&text).expect("vectors are JSON").as_array().expect("array of cases").clone())
}

/// Lab versions a check applies to: untagged checks hold on every version; "7" has no lab.
fn lab_versions(check: &Value) -> Vec<&'static str> {
    match check["pve_version"].as_str() {
        None => vec!["8.4", "9.1"],
        Some("8") => vec!["8.4"],
        Some("9" | "9.0" | "9.1") => vec!["9.1"],
        Some(_) => vec![],
    }
}

/// The case's token.cfg, or one generated for every `token:` line of its user.cfg.
fn token_cfg(case: &Value) -> String {
    if let Some(given) = case["token_cfg"].as_str() {
        return given.to_owned();
    }
    let user_cfg = case["user_cfg"].as_str().unwrap_or_default();
    user_cfg
        .lines()
        .filter_map(|line| line.strip_prefix("token:")?.split(':').next())
        .enumerate()
        .map(|(i, id)| format!("{id} 5eed0000-0000-4000-8000-{i:012x}\n"))
        .collect()
}

fn token_secret(token_cfg: &str, full_id: &str) -> Option<String> {
    token_cfg.lines().find_map(|line| {
        let (id, secret) = line.split_once(' ')?;
        (id == full_id).then(|| secret.trim().to_owned())
    })
}

const VECTOR_PASSWORD: &str = "vector-replay-password";

/// A lab seeded with `case`, and an API client authenticated as `caller`.
fn seeded_lab_as(case: &Value, version: &str, caller: &str) -> Result<(LabProcess, Api), String> {
    let tokens = token_cfg(case);
    let lab = LabProcess::start_seeded(
        &["--pve-version", version],
        &[("user.cfg", case["user_cfg"].as_str().unwrap_or_default()), ("priv/token.cfg", &tokens)],
    );
    let api = if caller == lab.ready.root_user {
        lab.root_api()
    } else if caller.contains('!') {
        let secret = token_secret(&tokens, caller).ok_or_else(|| format!("no secret for {caller}"))?;
        Api::with_token(&lab.ready, caller, &Secret::from(secret))
    } else {
        lab.root_api()
            .put("/access/password", &[("userid", caller), ("password", VECTOR_PASSWORD)])
            .map_err(|e| format!("root could not set the password of seeded user {caller}: {e:?}"))?;
        Api::login(&lab.ready, caller, &Secret::from(VECTOR_PASSWORD.to_owned()))
    };
    Ok((lab, api))
}

fn params_of(check: &Value) -> Vec<(String, String)> {
    check["params"]
        .as_object()
        .map(|map| {
            map.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
        })
        .unwrap_or_default()
}

fn send_check(api: &Api, check: &Value) -> Result<(u16, Value), String> {
    let params = params_of(check);
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let method = check["method"].as_str().unwrap_or("GET");
    let endpoint = check["endpoint"].as_str().unwrap_or("/");
    let (status, body) = api.raw(method, endpoint, &pairs)?;
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// Arrays compared as multisets (PVE's list order is not part of the contract), recursively.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort_by_key(Value::to_string);
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), normalized(v))).collect()),
        other => other.clone(),
    }
}

fn message_of(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().trim_end().to_owned()
}

/// Compares one `api_checks` entry with the lab's answer; `None` when they agree.
fn api_check_mismatch(check: &Value, status: u16, body: &Value) -> Option<String> {
    let want_status = check["expect_status"].as_u64().unwrap_or(200);
    if u64::from(status) != want_status {
        return Some(format!("status {status}, want {want_status}; body {body}"));
    }
    if let Some(want) = check.get("expect_data")
        && normalized(&body["data"]) != normalized(want)
    {
        return Some(format!("data {}, want {want}", body["data"]));
    }
    if let Some(want) = check["expect_message"].as_str()
        && message_of(body) != want.trim_end()
    {
        return Some(format!("message {:?}, want {want:?}", message_of(body)));
    }
    if let Some(want) = check["expect_errors"].as_object() {
        for (key, text) in want {
            let got = body["errors"][key].as_str().unwrap_or_default().trim_end();
            if got != text.as_str().unwrap_or_default().trim_end() {
                return Some(format!("errors.{key} {got:?}, want {text}; body {body}"));
            }
        }
    }
    None
}

/// Compares one `api_permission_checks` entry (only the permission stage's outcome is specified).
fn permission_check_mismatch(check: &Value, status: u16, body: &Value) -> Option<String> {
    if check["expect_permitted"].as_bool() == Some(true) {
        return matches!(status, 401 | 403).then(|| format!("refused with {status}: {body}"));
    }
    let want_status = check["expect_status"].as_u64().unwrap_or(403);
    let want_message = check["expect_message"].as_str().unwrap_or_default().trim_end();
    if u64::from(status) != want_status || !message_of(body).starts_with(want_message) {
        return Some(format!("{status} {:?}, want {want_status} {want_message:?}", message_of(body)));
    }
    None
}

fn describe(case: &Value, check: &Value, version: &str) -> String {
    format!(
        "[{} | {version}] {} {} {} as {}",
        case["name"].as_str().unwrap_or("?"),
        check["method"].as_str().unwrap_or("GET"),
        check["endpoint"].as_str().unwrap_or("?"),
        check["params"],
        check["caller"].as_str().unwrap_or("?")
    )
}

fn replay(kind: &str, compare: fn(&Value, u16, &Value) -> Option<String>) {
    let Some(cases) = load_vectors() else { return };
    let mut ran = 0;
    let mut mismatches = Vec::new();
    for case in &cases {
        for check in case[kind].as_array().into_iter().flatten() {
            for version in lab_versions(check) {
                ran += 1;
                let caller = check["caller"].as_str().unwrap_or("root@pam");
                let outcome = seeded_lab_as(case, version, caller)
                    .and_then(|(_lab, api)| send_check(&api, check))
                    .map(|(status, body)| compare(check, status, &body));
                match outcome {
                    Ok(None) => {}
                    Ok(Some(why)) => mismatches.push(format!("{}: {why}", describe(case, check, version))),
                    Err(why) => mismatches.push(format!("{}: {why}", describe(case, check, version))),
                }
            }
        }
    }
    assert!(ran > 0, "no {kind} in the vectors");
    assert!(
        mismatches.is_empty(),
        "{} of {ran} {kind} differ from Proxmox's own results:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn lab_answers_every_api_check_of_the_reference_vectors_as_pve_access_control_computed() {
    replay("api_checks", api_check_mismatch);
}

#[test]
fn lab_passes_or_refuses_every_permission_check_of_the_reference_vectors_like_pve() {
    replay("api_permission_checks", permission_check_mismatch);
}

#[test]
fn lab_accepts_exactly_the_token_headers_the_reference_vectors_accept() {
    let Some(cases) = load_vectors() else { return };
    let mut ran = 0;
    let mut mismatches = Vec::new();
    for case in &cases {
        for check in case["token_auth_checks"].as_array().into_iter().flatten() {
            for version in ["8.4", "9.1"] {
                ran += 1;
                let lab = LabProcess::start_seeded(
                    &["--pve-version", version],
                    &[
                        ("user.cfg", case["user_cfg"].as_str().unwrap_or_default()),
                        ("priv/token.cfg", &token_cfg(case)),
                    ],
                );
                let header = check["authorization_header"].as_str().unwrap_or_default();
                let api = Api::with_authorization(&lab.ready, header);
                let want_ok = check["expect_ok"].as_bool().unwrap_or(false);
                match api.raw("GET", "/version", &[]) {
                    Ok((status, _)) if (status == 200) == want_ok && (want_ok || status == 401) => {}
                    Ok((status, body)) => mismatches.push(format!(
                        "[{version}] {header}: {status} {body}, want {} ({})",
                        if want_ok { "200" } else { "401" },
                        check["internal_reason"].as_str().unwrap_or("accepted")
                    )),
                    Err(e) => mismatches.push(format!("[{version}] {header}: {e}")),
                }
            }
        }
    }
    assert!(ran > 0, "no token_auth_checks in the vectors");
    assert!(
        mismatches.is_empty(),
        "{} of {ran} token headers judged unlike PVE:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
