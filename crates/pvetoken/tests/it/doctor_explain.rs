//! `pvetoken doctor --explain-error`: each known error text (PVE, consumers, Semaphore) is recognised with its id and
//! the fix it needs; unknown text exits 1; with a token file the named privilege is checked live on the lab.

use super::doctor::Lab;

/// (input, expected explanation id, a fragment the explanation must contain).
const CASES: &[(&str, &str, &str)] = &[
    (
        "Error: 403 Permission check failed (/vms/105, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)",
        "pve-permission-check-failed",
        "pveum role modify Token-packer --append 1 --privs VM.GuestAgent.Audit",
    ),
    ("403 Permission check failed (/vms/100, VM.Monitor)", "pve-permission-check-failed", "PVE 7.4, 8.4"),
    ("401 Unauthorized: authentication failure", "pve-401-authentication-failure", "pvetoken rotate"),
    ("HTTP 401: invalid token value!", "pve-401-invalid-token-value", "pvetoken rotate"),
    ("401 no such token 'ci' for user 'automation@pve'", "pve-401-no-such-token", "pveum user token list"),
    ("401 No ticket", "pve-401-no-ticket", "pvetoken render"),
    (
        "400 Parameter verification failed. privs: invalid format - invalid privilege 'VM.Monitor'",
        "pve-invalid-privilege",
        "VM.GuestAgent.Audit",
    ),
    ("fatal: no such user (root@pam!automation@pve)", "ansible-token-id-mixup", "pvetoken render --format ansible-env"),
    ("value 'root@pam!ci' does not look like a valid user name", "pve-token-id-as-user-name", "pvetoken render"),
    ("Authorization: PVEAPIToken=PVEAPIToken=a@pve!b=c", "token-double-prefix", "terraform-bpg"),
    (
        "Post \"https://pve:8006/api2/json/access/ticket\": x509: certificate signed by unknown authority",
        "tls-unknown-authority",
        "--fingerprint",
    ),
    ("596 ssl3_get_server_certificate: certificate verify failed", "tls-unknown-authority", "pvenode cert info"),
    (
        "Gave up waiting for root file system device. PARTUUID does not exist. Dropping to a shell!",
        "packer-linked-clone-partuuid",
        "full_clone = true",
    ),
    ("==> proxmox-clone.debian: Timeout waiting for SSH.", "packer-ssh-timeout", "VM.GuestAgent.Audit"),
    (
        "Script exited with non-zero exit status: 2. Allowed exit codes are: [0]",
        "cloud-init-exit-2",
        "valid_exit_codes = [0, 2]",
    ),
    ("400 invalid environment secret type", "semaphore-secret-type", "pvetoken register semaphore"),
    ("Environment ID in body and URL must be the same", "semaphore-environment-id", "pvetoken register semaphore"),
];

#[test]
fn every_known_error_text_is_recognised_with_its_fix() {
    let lab = Lab::start();
    let nothing = lab.path("no-token.env").display().to_string();
    for (input, id, fragment) in CASES {
        let run = lab.pvetoken(
            &["doctor", "--explain-error", input, "--profile", "packer", "--token-file", nothing.as_str()],
            &[],
            None,
        );
        assert_eq!(run.code, 0, "{input}: {}", run.all);
        let explanations = run.json["explanations"].as_array().cloned().unwrap_or_default();
        let found = explanations.iter().find(|e| e["id"] == *id);
        let found = found.unwrap_or_else(|| panic!("{input}: expected {id}, got {}", run.json));
        assert!(found.to_string().contains(fragment), "{input}: `{fragment}` not in {found}");
    }
}

#[test]
fn the_permission_check_is_parsed_into_path_and_alternatives_with_version_facts() {
    let lab = Lab::start();
    let run = lab.pvetoken(
        &[
            "doctor",
            "--explain-error",
            "Permission check failed (/vms/7, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)",
        ],
        &[],
        None,
    );
    let check = &run.json["explanations"][0]["permission_check"];
    assert_eq!(check["path"], "/vms/7");
    assert_eq!(check["any_of"], true);
    assert_eq!(check["privileges"][1], "VM.GuestAgent.Unrestricted");
    let facts = &run.json["explanations"][0]["privileges"][0];
    assert_eq!(facts["known_on"], serde_json::json!(["9.0", "9.1", "9.2"]));
}

#[test]
fn error_text_from_stdin_works_and_unknown_text_exits_1() {
    let lab = Lab::start();
    let run = lab.pvetoken(&["doctor", "--explain-error"], &[], Some("TASK ERROR: authentication failure\n"));
    assert_eq!(run.code, 0, "{}", run.all);
    assert_eq!(run.json["explanations"][0]["id"], "pve-401-authentication-failure");
    let run = lab.pvetoken(&["doctor", "--explain-error", "the weather is fine"], &[], None);
    assert_eq!(run.code, 1);
    assert_eq!(run.json["recognised"], false);
}

#[test]
fn with_a_token_file_the_named_privilege_is_checked_live() {
    let lab = Lab::start();
    let file = lab.path("token.env");
    lab.create("packer", &file, &[]);
    let file_text = file.display().to_string();
    let text = "403 Permission check failed (/vms/9000, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)";
    let args = ["doctor", "--explain-error", text, "--token-file", file_text.as_str()];
    let run = lab.pvetoken(&args, &[], None);
    assert!(run.json["live"][0].as_str().unwrap_or_default().contains("now HAS VM.GuestAgent.Audit"), "{}", run.all);
    // The fix names the token from the file.
    assert!(run.json["explanations"][0]["fix"].to_string().contains("automation@pve!packer"));
    lab.remove_from_role("Token-packer", "VM.GuestAgent.Audit");
    let run = lab.pvetoken(&args, &[], None);
    assert!(run.json["live"][0].as_str().unwrap_or_default().starts_with("confirmed"), "{}", run.all);
}

#[test]
fn a_secret_inside_the_error_text_is_never_echoed_in_text_or_json() {
    let lab = Lab::start();
    let secret = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let log = format!(
        "curl -H 'Authorization: PVEAPIToken=PVEAPIToken=automation@pve!ci={secret}' https://pve:8006/api2/json\n\
         401 Unauthorized: authentication failure (PROXMOX_TOKEN={secret})\n"
    );
    let run = lab.pvetoken(&["doctor", "--explain-error"], &[], Some(&log));
    assert_eq!(run.code, 0, "{}", run.all);
    let ids: Vec<&str> =
        run.json["explanations"].as_array().expect("explanations").iter().filter_map(|e| e["id"].as_str()).collect();
    assert!(ids.contains(&"token-double-prefix") && ids.contains(&"pve-401-authentication-failure"), "{ids:?}");
    assert!(!run.all.contains(secret), "the secret was echoed: {}", run.all);
    // The id stays visible: it is what the user needs to fix the header.
    assert!(run.all.contains("automation@pve!ci="), "{}", run.all);

    let mut text = std::process::Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .args(["doctor", "--explain-error", "-", "--token-file"])
        .arg(lab.path("no-token.env"))
        .env_clear()
        .env("HOME", lab.path("home"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("pvetoken runs");
    std::io::Write::write_all(&mut text.stdin.take().expect("stdin"), log.as_bytes()).expect("stdin");
    let output = text.wait_with_output().expect("pvetoken finishes");
    let all = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("[token-double-prefix]"), "{all}");
    assert!(!all.contains(secret), "the secret was echoed: {all}");
}
