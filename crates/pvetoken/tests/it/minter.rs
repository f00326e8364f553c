//! A minter (`create --minter`) and `exec --minter` against the lab: the minter's token runs a job we did not write
//! (proxmoxer) with a token of its own, and cannot give itself, its tokens or anyone else more than its profiles:
//! each attempt is refused by the lab with PVE's message.
#![allow(clippy::unwrap_used, reason = "tests")]

use crate::lifecycle::{Lab, Run};
use crate::support::tool;

const MINTER: &str = "pvetoken-minter@pve";

/// `create --minter --profiles PROFILES` into `minter.env`; it must succeed.
fn create_minter(lab: &Lab, profiles: &str) -> std::path::PathBuf {
    let (run, file) = create_minter_into(lab, "minter.env", profiles, &[]);
    assert_eq!(run.code, 0, "create --minter --profiles {profiles}: {}", run.both());
    file
}

/// `create --minter --profiles PROFILES EXTRA` into the token file `name` in the lab's directory.
fn create_minter_into(lab: &Lab, name: &str, profiles: &str, extra: &[&str]) -> (Run, std::path::PathBuf) {
    let file = lab.dir().join(name);
    let ready = lab.lab().ready();
    let ca = ready.ca_file.display().to_string();
    let mut args = vec!["create", "--minter", "--profiles", profiles, "--token-file", file.to_str().unwrap()];
    args.extend_from_slice(&["--url", ready.pve_url.as_str(), "--ca-file", ca.as_str()]);
    args.extend_from_slice(extra);
    (lab.pvetoken(&args), file)
}

/// `exec --minter ARGS -- COMMAND` with only the minter's token file (no password anywhere).
fn exec_as_minter(lab: &Lab, minter: &std::path::Path, args: &[&str], command: &[&str]) -> Run {
    let ready = lab.lab().ready();
    let ca = ready.ca_file.display().to_string();
    let mut all = vec!["exec", "--minter", "--url", ready.pve_url.as_str(), "--ca-file", ca.as_str()];
    all.extend_from_slice(args);
    all.push("--");
    all.extend_from_slice(command);
    lab.pvetoken_env(&all, &[("PVETOKEN_ADMIN_TOKEN_FILE", minter.to_str().unwrap())])
}

/// The id and secret of a token file.
fn token_of(file: &std::path::Path) -> (String, String) {
    let text = std::fs::read_to_string(file).unwrap();
    let get = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .map(|value| value.trim_matches('\'').to_owned())
            .unwrap()
    };
    (get("PROXMOX_TOKEN_ID"), get("PROXMOX_TOKEN_SECRET"))
}

const JOB: &str = r#"
import os, proxmoxer
e = os.environ
api = proxmoxer.ProxmoxAPI(e["PROXMOX_HOST"], port=int(e["PROXMOX_PORT"]), user=e["PROXMOX_USER"],
                           token_name=e["PROXMOX_TOKEN_ID"], token_value=e["PROXMOX_TOKEN_SECRET"],
                           verify_ssl=e["PROXMOX_CA_PATH"])
print("JOB-OK", len(api.cluster.resources.get(type="vm")), e["PROXMOX_USER"] + "!" + e["PROXMOX_TOKEN_ID"])
"#;

#[test]
fn a_minters_token_mints_a_job_token_and_can_grant_nothing_beyond_its_profiles() {
    let Some(python) = tool("python") else { return };
    let lab = Lab::start("9.2");
    let minter_file = create_minter(&lab, "ansible");
    let (minter_id, minter_secret) = token_of(&minter_file);
    assert_eq!(minter_id, format!("{MINTER}!mint"));

    // A job as users run it in CI: only the minter's token file, no password.
    let python = python.display().to_string();
    let run = exec_as_minter(&lab, &minter_file, &["--profile", "ansible", "--ttl", "5m"], &[&python, "-c", JOB]);
    assert_eq!(run.code, 0, "{}", run.both());
    let line = run.stdout.lines().find(|l| l.starts_with("JOB-OK")).unwrap_or_else(|| panic!("{}", run.both()));
    assert!(line.contains(&format!("{MINTER}!ansible-x")), "the job's token is the minter's: {line}");
    assert!(line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() >= 1, "{line}");
    assert!(!run.stdout.contains(&minter_secret) && !run.stderr.contains(&minter_secret));
    assert_eq!(lab.server_tokens(MINTER), ["mint"], "the job's token is gone, the minter's own stays");

    // A profile the minter does not hold: refused before any token is created, naming what it lacks.
    let before = lab.requests().len();
    let run = exec_as_minter(&lab, &minter_file, &["--profile", "terraform"], &["true"]);
    assert_eq!(run.code, 1, "{}", run.both());
    assert!(
        run.stderr.contains("no token was created and COMMAND was not run")
            && run.stderr.contains("does not hold")
            && run.stderr.contains("profile terraform"),
        "{}",
        run.both()
    );
    assert!(run.stderr.contains("VM.Config.Cloudinit") || run.stderr.contains("Datastore"), "{}", run.stderr);
    let posts: Vec<String> =
        lab.requests()[before..].iter().filter(|r| r.method == "POST").map(|r| r.path.clone()).collect();
    assert!(posts.is_empty(), "no token may be created for a profile the minter lacks: {posts:?}");
    assert_eq!(lab.server_tokens(MINTER), ["mint"]);

    // Escalation, with the minter's own credential: every attempt refused with PVE's message.
    let api = lab.as_token(&minter_id, &minter_secret);
    let refused = |what: &str, result: Result<serde_json::Value, crate::support::ApiError>| {
        let error = result.expect_err(what);
        assert_eq!(error.status, 403, "{what}: {error:?}");
        assert!(error.body.contains("Permission check failed"), "{what}: {error:?}");
    };
    refused(
        "itself Administrator on /",
        api.put("/access/acl", &[("path", "/"), ("roles", "Administrator"), ("users", MINTER)]),
    );
    refused(
        "its token Permissions.Modify on /vms",
        api.put("/access/acl", &[("path", "/vms"), ("roles", "PVEAdmin"), ("tokens", &minter_id)]),
    );
    refused(
        "its profile's role on a path outside its profiles",
        api.put("/access/acl", &[("path", "/storage"), ("roles", "Token-minter-ansible"), ("users", "someone@pve")]),
    );
    refused("a role of its own", api.post("/access/roles", &[("roleid", "Mine"), ("privs", "Sys.Modify")]));
    refused("more privileges in its role", api.put("/access/roles/Token-minter-ansible", &[("privs", "Sys.Modify")]));
    refused("a token of root", api.post("/access/users/root@pam/token/x", &[]));
    refused("another user", api.post("/access/users", &[("userid", "other@pve")]));
    root_group(&lab);
    refused(
        "itself in another group",
        api.put(&format!("/access/users/{MINTER}"), &[("groups", "admins"), ("append", "1")]),
    );

    // What it may do, it does: mint (and delete) a token of its own user.
    let minted = api.post(&format!("/access/users/{MINTER}/token/probe"), &[("privsep", "0"), ("expire", "0")]);
    assert!(minted.is_ok(), "{minted:?}");
    assert!(api.delete(&format!("/access/users/{MINTER}/token/probe")).is_ok());
}

/// A group `admins` holding Administrator on `/` (what a minter must not be able to join).
fn root_group(lab: &Lab) {
    let root = lab.root();
    root.post("/access/groups", &[("groupid", "admins")]).unwrap();
    root.put("/access/acl", &[("path", "/"), ("roles", "Administrator"), ("groups", "admins")]).unwrap();
}

#[test]
fn exec_minter_needs_the_minters_token_file() {
    let lab = Lab::start("9.2");
    let ready = lab.lab().ready();
    let run =
        lab.pvetoken(&["exec", "--minter", "--url", ready.pve_url.as_str(), "--profile", "ansible", "--", "true"]);
    assert_eq!(run.code, 2, "{}", run.both());
    assert!(run.stderr.contains("--minter acts with the minter's token file"), "{}", run.stderr);
    assert!(run.stderr.contains("create --minter"), "{}", run.stderr);
}

#[test]
fn audit_labels_the_minter_and_its_job_tokens_instead_of_calling_the_minter_an_escalation() {
    let Some(_) = tool("python") else { return };
    let lab = Lab::start("9.2");
    let minter_file = create_minter(&lab, "ansible");
    let kept = exec_as_minter(&lab, &minter_file, &["--profile", "ansible", "--keep"], &["true"]);
    assert_eq!(kept.code, 0, "{}", kept.both());
    let ready = lab.lab().ready();
    let ca = ready.ca_file.display().to_string();
    let run =
        lab.pvetoken(&["audit", "--url", &ready.pve_url, "--ca-file", &ca, "--output", "json", "--fail-on", "none"]);
    assert_eq!(run.code, 0, "{}", run.both());
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let of = |subject: &str| -> Vec<&str> {
        findings.iter().filter(|f| f["subject"] == subject).map(|f| f["id"].as_str().unwrap()).collect()
    };
    let mint = of(&format!("{MINTER}!mint"));
    assert!(mint.contains(&"token-of-minter"), "{mint:?}");
    let escalation =
        findings.iter().find(|f| f["subject"] == format!("{MINTER}!mint") && f["id"] == "token-can-escalate");
    assert!(escalation.is_none(), "User.Modify on its own group is not an escalation: {escalation:?}");
    let job = lab.server_tokens(MINTER).into_iter().find(|t| t.starts_with("ansible-x")).unwrap();
    let job = of(&format!("{MINTER}!{job}"));
    assert!(job.contains(&"token-ephemeral") && job.contains(&"token-of-minter"), "{job:?}");
    assert!(job.contains(&"token-privsep-off"), "a minted token is its user, and audit still says so: {job:?}");

    // The minter collects its own leftovers (its job is gone: pvetoken exited).
    let gc = lab.pvetoken_env(
        &["gc", "--user", MINTER, "--url", &ready.pve_url, "--ca-file", &ca],
        &[("PVETOKEN_ADMIN_TOKEN_FILE", minter_file.to_str().unwrap())],
    );
    assert_eq!(gc.code, 0, "{}", gc.both());
    assert_eq!(lab.server_tokens(MINTER), ["mint"], "{}", gc.both());
}

#[test]
fn a_job_token_may_not_outlive_the_minter() {
    let lab = Lab::start("9.2");
    let (run, file) = create_minter_into(&lab, "short-minter.env", "readonly", &["--expire", "1h"]);
    assert_eq!(run.code, 0, "{}", run.both());
    let before = lab.server_tokens(MINTER);
    let run = exec_as_minter(&lab, &file, &["--profile", "readonly", "--ttl", "2h"], &["true"]);
    assert_eq!(run.code, 2, "{}", run.both());
    assert!(run.stderr.contains("would outlive the minter's own token"), "{}", run.stderr);
    assert_eq!(lab.server_tokens(MINTER), before, "no token was created");
    let run = exec_as_minter(&lab, &file, &["--profile", "readonly", "--ttl", "30m"], &["true"]);
    assert_eq!(run.code, 0, "within the minter's life: {}", run.both());
}

/// A minter declared in an apply file, as `create --minter` sets it up: apply converges it (its group grant kept,
/// not revoked as drift), its token mints; `apply --prune` deletes the job tokens that outlived their job and keeps
/// a running job's.
#[test]
fn a_minter_declared_in_apply_converges_and_prune_keeps_a_running_jobs_token() {
    let lab = Lab::start("9.2");
    let dir = lab.dir();
    let minter_file = dir.join("minter.env");
    let declaration = dir.join("pvetoken.toml");
    let minter = format!(
        "[[tokens]]\ncluster = \"lab\"\nid = \"{MINTER}!mint\"\nminter = true\nprofiles = [\"ansible\"]\n\
         token_file = \"{}\"\n",
        minter_file.display()
    );
    std::fs::write(&declaration, format!("{}{minter}", lab.cluster_section("lab"))).unwrap();
    let apply = lab.apply(&declaration);
    assert_eq!(apply.code, 0, "{}", apply.both());
    let plan = lab.plan(&declaration);
    assert_eq!(plan.code, 0, "the group grant is the minter's, not drift: {}", plan.both());
    let job = exec_as_minter(&lab, &minter_file, &["--profile", "ansible"], &["true"]);
    assert_eq!(job.code, 0, "the declared minter mints: {}", job.both());

    // Taken out of its own group by hand, it could not mint: the plan says so and apply puts it back.
    let root = lab.root();
    root.post("/access/groups", &[("groupid", "other")]).unwrap();
    root.put(&format!("/access/users/{MINTER}"), &[("groups", "other")]).unwrap();
    let plan = lab.plan(&declaration);
    assert_eq!(plan.code, 2, "{}", plan.both());
    assert!(plan.stdout.contains(&format!("+ user {MINTER}: joins group pvetoken-minter-pve")), "{}", plan.stdout);
    let apply = lab.apply(&declaration);
    assert_eq!(apply.code, 0, "{}", apply.both());
    let plan = lab.plan(&declaration);
    assert_eq!(plan.code, 0, "{}", plan.both());

    // Three job tokens as `exec` names them: one whose job runs (this process), one whose process is gone, one
    // of another host that expired.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let later = (now + 600).to_string();
    let earlier = (now - 60).to_string();
    let comment = |host: &str, pid: &str, expire: &str| {
        format!("pvetoken exec ephemeral; host={host}; pid={pid}; expires={expire}")
    };
    for (name, comment, expire) in [
        ("ansible-xlive", comment(&host, &std::process::id().to_string(), &later), &later),
        ("ansible-xgone", comment(&host, "4194305", &later), &later),
        ("ansible-xold", comment("elsewhere", "1", &earlier), &earlier),
    ] {
        root.post(
            &format!("/access/users/{MINTER}/token/{name}"),
            &[("privsep", "0"), ("expire", expire), ("comment", &comment)],
        )
        .unwrap();
    }
    let plan = lab.plan(&declaration);
    assert!(plan.stdout.contains("* pvetoken-minter@pve!ansible-xlive: a job token of pvetoken exec, live (kept)"));
    assert!(plan.stdout.contains("ansible-xgone: a job token of pvetoken exec, its job is gone (--prune deletes it)"));
    assert!(plan.stdout.contains("ansible-xold: a job token of pvetoken exec, expired (--prune deletes it)"));
    let prune = lab.pvetoken(&["apply", "--auto-approve", "--prune", "-f", &declaration.display().to_string()]);
    assert_eq!(prune.code, 0, "{}", prune.both());
    let mut left = lab.server_tokens(MINTER);
    left.sort();
    assert_eq!(left, ["ansible-xlive", "mint"], "{}", prune.both());
}
