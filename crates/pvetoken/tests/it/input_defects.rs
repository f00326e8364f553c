//! Defects of the adversarial review around input and connections: `--expire` overflow and impossible dates,
//! `--insecure` warned by every command, the token file's CA file honoured, credentials kept from child processes.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::os::unix::fs::PermissionsExt;

use crate::lifecycle::Lab;

#[test]
fn expire_overflow_and_impossible_dates_are_refused_before_any_token_exists() {
    let lab = Lab::start("8.4");
    let cases = [
        ("9223372036854775807s", "too far in the future"),
        ("106751991167300d", "too far in the future"),
        ("292471208678y", "too far in the future"),
        ("99999999999999999999999d", "too far in the future"),
        ("10000-01-01", "too far in the future"),
        ("2027-02-30", "invalid date"),
        ("2026-02-30", "invalid date"),
        ("2027-13-01", "invalid date"),
    ];
    for (expire, message) in cases {
        let run = lab.create("packer", &["--expire", expire]);
        assert_eq!(run.code, 2, "{expire}: {}", run.both());
        assert!(run.stderr.contains(message), "{expire}: {}", run.both());
        assert!(lab.server_tokens("automation@pve").is_empty(), "{expire}: nothing created");
    }
    // A real date in range still works, and lands on that day.
    let run = lab.create("packer", &["--expire", "2099-02-28", "--output", "json"]);
    assert_eq!(run.code, 0, "{}", run.both());
    let text = std::fs::read_to_string(lab.token_file()).unwrap();
    assert!(text.contains("PROXMOX_TOKEN_EXPIRE='4075920000'"), "2099-02-28T00:00:00Z: {text}");
}

#[test]
fn every_command_that_sends_credentials_warns_about_insecure() {
    let lab = Lab::start("9.1");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let url = lab.lab().ready().pve_url.clone();
    let file = lab.token_file().display().to_string();
    let commands: [Vec<&str>; 6] = [
        vec!["list", "--url", &url, "--insecure"],
        vec!["audit", "--url", &url, "--insecure"],
        vec!["verify", "--token-file", &file, "--insecure"],
        vec!["doctor", "--token-file", &file, "--insecure"],
        vec!["deliver", "--vmid", "100", "--token-file", &file, "--url", &url, "--insecure"],
        vec!["revoke", "automation@pve!packer", "--token-file", &file, "--url", &url, "--insecure"],
    ];
    for args in commands {
        let run = lab.pvetoken(&args);
        assert!(run.stderr.contains("--insecure: the server certificate is not checked"), "{args:?}: {}", run.both());
    }
}

#[test]
fn the_token_files_ca_file_verifies_the_server_for_verify_and_rotate() {
    let lab = Lab::start("9.1");
    let ready = lab.lab().ready();
    let ca = ready.ca_file.display().to_string();
    let file = lab.token_file().display().to_string();
    let args = ["create", "--profile", "packer", "--token-file", &file, "--url", &ready.pve_url, "--ca-file", &ca];
    let run = lab.pvetoken(&args);
    assert_eq!(run.code, 0, "{}", run.both());
    let text = std::fs::read_to_string(lab.token_file()).unwrap();
    assert!(text.contains("PROXMOX_CA_FILE="), "{text}");
    assert!(!text.contains("PROXMOX_FINGERPRINT="), "no pin, so only the CA file can verify: {text}");
    let verify = lab.with_token_file("verify", &["--profile", "packer"]);
    assert_eq!(verify.code, 0, "{}", verify.both());
    let rotate = lab.with_token_file("rotate", &[]);
    assert_eq!(rotate.code, 0, "{}", rotate.both());
}

#[test]
fn a_child_process_never_sees_the_credentials_of_pvetoken() {
    let lab = Lab::start("9.1");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let bin = lab.dir().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let dump = lab.dir().join("child-env.txt");
    let sops = bin.join("sops");
    std::fs::write(&sops, format!("#!/bin/sh\nenv > '{}'\ncat >/dev/null\necho 'encrypted: yes'\n", dump.display()))
        .unwrap();
    std::fs::set_permissions(&sops, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = lab.token_file().display().to_string();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let recipient = "age1um008hxqt8842e8w3hc6hm2eksvc90r26hdyl6dzkgdfnqauq3qsnh693l";
    let run = lab.pvetoken_env(
        &["render", "--format", "sops", "--token-file", &file, "--age-recipient", recipient],
        &[
            ("PATH", path.as_str()),
            ("PVETOKEN_PASSWORD", "root-password-value"),
            ("SEMAPHORE_PASSWORD", "semaphore-password-value"),
            ("SEMAPHORE_API_TOKEN", "semaphore-token-value"),
            ("VAULT_TOKEN", "vault-token-value"),
        ],
    );
    let seen = std::fs::read_to_string(&dump).unwrap_or_else(|_| panic!("the fake sops ran: {}", run.both()));
    for value in ["root-password-value", "semaphore-password-value", "semaphore-token-value", "vault-token-value"] {
        assert!(!seen.contains(value), "the child saw {value}");
    }
    assert!(seen.contains("PATH="), "the child still gets an ordinary environment");
}

#[test]
fn local_text_cannot_forge_lines_or_reorder_the_terminal() {
    let lab = Lab::start("9.1");
    let forged = lab.dir().join("x\nok: rotated everything");
    let run = lab.pvetoken(&["verify", "--token-file", &forged.display().to_string()]);
    assert_eq!(run.code, 2, "{}", run.both());
    assert!(!run.stderr.lines().any(|line| line.starts_with("ok:")), "a forged line: {}", run.both());
    let bidi = lab.dir().join("token\u{202E}vne.txt");
    let run = lab.pvetoken(&["verify", "--token-file", &bidi.display().to_string()]);
    assert!(!run.stderr.contains('\u{202E}'), "{}", run.both());
    assert!(run.stderr.contains("<U+202E>"), "{}", run.both());
}
