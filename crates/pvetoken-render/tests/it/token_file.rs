//! The token file as a shell sees it: what `render` writes, `bash` sources to the same values, and what only a
//! shell could read is refused.

use std::process::Command;

use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_render::{TokenFile, TokenFileError};

fn token_with(secret: &str, storage: &str) -> TokenFile {
    let mut token = TokenFile::new(
        "https://pve.lan:8006",
        "pve",
        "automation@pve!privatebox".parse().expect("valid id"),
        Secret::from(secret.to_owned()),
    )
    .expect("valid url");
    token.storage = Some(storage.to_owned());
    token
}

/// Sources `text` with bash and returns the value of `key` (without running anything from the file).
fn bash_value(text: &str, key: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("token.env");
    std::fs::write(&path, text).expect("write");
    let output = Command::new("bash")
        .args(["-c", "set -a; . \"$1\"; printf '%s' \"${!2}\"", "_"])
        .arg(&path)
        .arg(key)
        .env_clear()
        .output()
        .expect("bash runs");
    assert!(output.status.success(), "bash failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn bash_sources_hostile_values_exactly_as_pvetoken_parses_them() {
    let secret = "a'b\"c$HOME`id`\\d${x}";
    let storage = "pool 'one'\n$(touch /tmp/pvetoken-pwned)\nend\\";
    let token = token_with(secret, storage);
    let text = token.render();
    assert_eq!(bash_value(&text, "PROXMOX_TOKEN_SECRET"), secret);
    assert_eq!(bash_value(&text, "PROXMOX_STORAGE"), storage);
    let parsed = TokenFile::parse(&text).expect("own output parses");
    assert_eq!(parsed.secret.expose_secret(), secret);
    assert_eq!(parsed.storage.as_deref(), Some(storage));
    assert!(!std::path::Path::new("/tmp/pvetoken-pwned").exists());
}

#[test]
fn double_quotes_backticks_and_unbalanced_quotes_are_refused_with_the_line_number() {
    let base = "PROXMOX_HOST='h'\nPROXMOX_NODE='pve'\nPROXMOX_TOKEN_ID='a@pve!tok'\n";
    for (line, expected_key) in [
        ("PROXMOX_TOKEN_SECRET=\"$SECRET\"", "PROXMOX_TOKEN_SECRET"),
        ("PROXMOX_TOKEN_SECRET=`cat /secret`", "PROXMOX_TOKEN_SECRET"),
        ("PROXMOX_TOKEN_SECRET='abc'def", "PROXMOX_TOKEN_SECRET"),
    ] {
        let error = TokenFile::parse(&format!("{base}{line}\n")).expect_err(line);
        assert_eq!(error, TokenFileError::NeedsShell { line: 4, key: expected_key.to_owned() }, "{line}");
        assert!(!error.to_string().contains("SECRET\""), "{error}");
        assert!(!error.to_string().contains("cat /secret"), "{error}");
    }
    let error = TokenFile::parse(&format!("{base}PROXMOX_TOKEN_SECRET='unclosed\n")).expect_err("unclosed");
    assert_eq!(error, TokenFileError::Unclosed { line: 4, key: "PROXMOX_TOKEN_SECRET".to_owned() });
    assert!(!error.to_string().contains("unclosed'"), "{error}");
}

#[test]
fn comments_blank_lines_and_export_prefixes_are_accepted() {
    let text = "# comment with 'quotes' and $dollar\n\n  export PROXMOX_HOST='h'\nexport PROXMOX_NODE=pve\n\
                PROXMOX_TOKEN_ID='a@pve!tok'   \nPROXMOX_TOKEN_SECRET='s3cr3t'\nPROXMOX_TLS_INSECURE='true'\n";
    let token = TokenFile::parse(text).expect("valid file");
    assert_eq!(token.host, "h");
    assert_eq!(token.node, "pve");
    assert!(token.tls_insecure);
    assert_eq!(token.secret.expose_secret(), "s3cr3t");
}

#[test]
fn host_that_disagrees_with_the_url_is_refused() {
    let text = "PROXMOX_HOST='a'\nPROXMOX_URL='https://b:8006'\nPROXMOX_NODE='pve'\n\
                PROXMOX_TOKEN_ID='a@pve!tok'\nPROXMOX_TOKEN_SECRET='s'\n";
    assert!(matches!(TokenFile::parse(text), Err(TokenFileError::Invalid { key: "PROXMOX_HOST", .. })));
}

proptest::proptest! {
    /// Any value (quotes, `$`, backslashes, newlines, any character) written by `render` is read back unchanged,
    /// by pvetoken and by bash alike (bash checked for the secret in a sample of cases above).
    #[test]
    fn any_value_round_trips(secret in "\\PC{1,40}|[\n'\"$`\\\\ ]{1,20}", storage in "(\\PC|\n){0,40}") {
        let token = token_with(&secret, &storage);
        let again = TokenFile::parse(&token.render()).expect("own output parses");
        proptest::prop_assert_eq!(again.secret.expose_secret(), secret.as_str());
        proptest::prop_assert_eq!(again.storage.as_deref().unwrap_or(""), storage.as_str());
    }

    /// Parsing never panics, whatever the file holds.
    #[test]
    fn parse_never_panics(text in "(\\PC|[\n'\"=#$ ]|PROXMOX_[A-Z_]{2,12}=|export ){0,200}") {
        let _ = TokenFile::parse(&text);
    }
}
