//! Every consumer format: its exact output (snapshots, reviewed against each consumer's documentation), and a
//! parser of the consumer's language reading back exactly the values we meant, even hostile ones.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_render::{Format, RenderOptions, TokenFile};

const SECRET: &str = "0b3c9f1e-1111-2222-3333-444455556666";
/// Everything that breaks naive quoting in one of our output languages.
const HOSTILE: &str = "q'uo\"te $HOME ${x} %{y} {{ z }} `id` \\back\\ \nnew\tline é";

fn sample() -> TokenFile {
    let mut token = TokenFile::new(
        "https://pve.lan:8006",
        "pve",
        "automation@pve!privatebox".parse().expect("valid id"),
        Secret::from(SECRET.to_owned()),
    )
    .expect("valid url");
    token.storage = Some("tank".to_owned());
    token
}

/// A token whose every free-text field (and the secret) is hostile; the token id is validated so it cannot be.
fn hostile() -> TokenFile {
    let mut token = sample();
    token.secret = Secret::from(HOSTILE.to_owned());
    token.node = format!("node {HOSTILE}");
    token.storage = Some(format!("storage {HOSTILE}"));
    token.ca_file = Some(PathBuf::from(format!("/etc/ca {HOSTILE}.pem")));
    token
}

fn render(format: Format, token: &TokenFile) -> String {
    format.render_to_string(token, &RenderOptions::default()).expect("renders")
}

/// Sources the output with bash (`set -a; . FILE`) in an empty environment and returns the variables it set.
fn bash_source(text: &str) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("out.sh");
    std::fs::write(&path, text).expect("write");
    let output = Command::new("bash")
        .args(["-c", "set -a; . \"$1\"; set +a; env -0", "_"])
        .arg(&path)
        .env_clear()
        .output()
        .expect("bash runs");
    assert!(output.status.success(), "bash failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .split('\0')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| !["PWD", "SHLVL", "_", "OLDPWD"].contains(key))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn hcl_values(text: &str) -> serde_json::Value {
    let value: hcl::Value = hcl::eval::from_str(text, &hcl::eval::Context::new()).expect("valid HCL");
    serde_json::to_value(value).expect("HCL values are JSON values")
}

/// Parses YAML and strips `!unsafe` tags (Ansible's marker for "do not template"), keeping the value.
fn yaml_values(text: &str) -> serde_json::Value {
    fn untag(value: serde_norway::Value) -> serde_norway::Value {
        match value {
            serde_norway::Value::Tagged(tagged) => {
                assert_eq!(tagged.tag, "!unsafe", "only Ansible's !unsafe tag is expected");
                tagged.value
            }
            serde_norway::Value::Mapping(map) => {
                serde_norway::Value::Mapping(map.into_iter().map(|(k, v)| (k, untag(v))).collect())
            }
            other => other,
        }
    }
    let value: serde_norway::Value = serde_norway::from_str(text).expect("valid YAML");
    serde_json::to_value(untag(value)).expect("YAML values are JSON values")
}

// ---- snapshots: the exact text each consumer gets --------------------------------------------------------------

#[test]
fn every_format_has_a_reviewed_snapshot() {
    let mut token = sample();
    token.ca_file = Some(PathBuf::from("/etc/pvetoken/pve-ca.pem"));
    for format in Format::ALL {
        let text = render(*format, &token);
        insta::assert_snapshot!(format.name(), text);
    }
}

// ---- shell formats ---------------------------------------------------------------------------------------------

#[test]
fn env_output_sources_to_the_token_file_variables() {
    let token = hostile();
    let got = bash_source(&render(Format::Env, &token));
    assert_eq!(got["PROXMOX_TOKEN_SECRET"], HOSTILE);
    assert_eq!(got["PROXMOX_NODE"], token.node);
    assert_eq!(got["PROXMOX_STORAGE"], token.storage.clone().unwrap());
    assert_eq!(got["PROXMOX_TOKEN_ID"], "automation@pve!privatebox");
    assert_eq!(got["PROXMOX_URL"], "https://pve.lan:8006");
}

#[test]
fn packer_output_sources_to_full_id_and_bare_secret() {
    let got = bash_source(&render(Format::Packer, &hostile()));
    assert_eq!(
        got,
        vars(&[
            ("PROXMOX_URL", "https://pve.lan:8006/api2/json"),
            ("PROXMOX_USERNAME", "automation@pve!privatebox"),
            ("PROXMOX_TOKEN", HOSTILE),
            ("PROXMOX_NODE", &format!("node {HOSTILE}")),
        ])
    );
}

#[test]
fn telmate_output_sources_to_its_documented_variables() {
    let got = bash_source(&render(Format::TerraformTelmate, &hostile()));
    assert_eq!(
        got,
        vars(&[
            ("PM_API_URL", "https://pve.lan:8006/api2/json"),
            ("PM_API_TOKEN_ID", "automation@pve!privatebox"),
            ("PM_API_TOKEN_SECRET", HOSTILE),
            ("PM_TLS_INSECURE", "false"),
        ])
    );
}

#[test]
fn ansible_env_output_splits_the_id_into_owner_and_name() {
    let token = hostile();
    let got = bash_source(&render(Format::AnsibleEnv, &token));
    assert_eq!(
        got,
        vars(&[
            ("PROXMOX_HOST", "pve.lan"),
            ("PROXMOX_PORT", "8006"),
            ("PROXMOX_USER", "automation@pve"),
            ("PROXMOX_TOKEN_ID", "privatebox"),
            ("PROXMOX_TOKEN_SECRET", HOSTILE),
            ("PROXMOX_VALIDATE_CERTS", "true"),
            ("PROXMOX_CA_PATH", &token.ca_file.as_ref().unwrap().to_string_lossy()),
            ("REQUESTS_CA_BUNDLE", &token.ca_file.as_ref().unwrap().to_string_lossy()),
        ])
    );
}

#[test]
fn bpg_output_sources_to_the_combined_token_without_prefix() {
    let mut token = sample();
    token.tls_insecure = true;
    let got = bash_source(&render(Format::TerraformBpg, &token));
    assert_eq!(
        got,
        vars(&[
            ("PROXMOX_VE_ENDPOINT", "https://pve.lan:8006/"),
            ("PROXMOX_VE_API_TOKEN", &format!("automation@pve!privatebox={SECRET}")),
            ("PROXMOX_VE_INSECURE", "true"),
        ])
    );
}

#[test]
fn bpg_formats_refuse_a_secret_its_pattern_rejects_without_echoing_it() {
    for format in [Format::TerraformBpg, Format::TerraformBpgTfvars] {
        let error = format.render_to_string(&hostile(), &RenderOptions::default()).expect_err("refused");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("letters, digits and '-'"), "{error}");
        assert!(!error.to_string().contains("HOME"), "{error}");
    }
}

// ---- HCL -------------------------------------------------------------------------------------------------------

#[test]
fn packer_pkrvars_parses_back_as_hcl_with_literal_template_markers() {
    let got = hcl_values(&render(Format::PackerPkrvars, &hostile()));
    assert_eq!(
        got,
        serde_json::json!({
            "proxmox_url": "https://pve.lan:8006/api2/json",
            "proxmox_username": "automation@pve!privatebox",
            "proxmox_token": HOSTILE,
            "proxmox_node": format!("node {HOSTILE}"),
            "proxmox_skip_tls_verify": false,
        })
    );
}

#[test]
fn telmate_tfvars_parses_back_as_hcl() {
    let got = hcl_values(&render(Format::TerraformTelmateTfvars, &hostile()));
    assert_eq!(
        got,
        serde_json::json!({
            "pm_api_url": "https://pve.lan:8006/api2/json",
            "pm_api_token_id": "automation@pve!privatebox",
            "pm_api_token_secret": HOSTILE,
            "pm_tls_insecure": false,
        })
    );
}

#[test]
fn bpg_tfvars_parses_back_as_hcl() {
    let got = hcl_values(&render(Format::TerraformBpgTfvars, &sample()));
    assert_eq!(
        got,
        serde_json::json!({
            "proxmox_endpoint": "https://pve.lan:8006/",
            "proxmox_api_token": format!("automation@pve!privatebox={SECRET}"),
            "proxmox_insecure": false,
        })
    );
}

// ---- YAML ------------------------------------------------------------------------------------------------------

#[test]
fn ansible_vars_parse_back_as_yaml_with_templating_disabled_for_braces() {
    let token = hostile();
    let text = render(Format::AnsibleVars, &token);
    assert!(text.contains("api_token_secret: !unsafe \""), "a value with {{ must be !unsafe:\n{text}");
    assert_eq!(
        yaml_values(&text),
        serde_json::json!({
            "api_host": "pve.lan",
            "api_port": 8006,
            "api_user": "automation@pve",
            "api_token_id": "privatebox",
            "api_token_secret": HOSTILE,
            "validate_certs": true,
            "ca_path": token.ca_file.unwrap().to_string_lossy(),
        })
    );
    let plain = render(Format::AnsibleVars, &sample());
    assert!(!plain.contains("!unsafe"), "ordinary values stay plain:\n{plain}");
}

#[test]
fn sops_plaintext_parses_back_to_the_home_infra_schema() {
    let token = hostile();
    assert_eq!(
        yaml_values(&render(Format::Sops, &token)),
        serde_json::json!({
            "proxmox_url": "https://pve.lan:8006/api2/json",
            "proxmox_user": "automation@pve",
            "proxmox_token_id": "privatebox",
            "proxmox_token_secret": HOSTILE,
            "proxmox_node": token.node,
            "proxmox_storage_pool": token.storage.unwrap(),
            "proxmox_tls_insecure": false,
        })
    );
}

#[test]
fn cloud_init_content_parses_back_to_the_same_token_file() {
    let token = hostile();
    let text = render(Format::CloudInit, &token);
    assert!(text.starts_with("#cloud-config\n"));
    let doc = yaml_values(&text);
    let entry = &doc["write_files"][0];
    assert_eq!(entry["path"], "/root/.proxmox-api-token");
    assert_eq!(entry["permissions"], "0600");
    let content = entry["content"].as_str().expect("content is a string");
    let again = TokenFile::parse(content).expect("content is a token file");
    assert_eq!(again.secret.expose_secret(), HOSTILE);
    assert_eq!(again.node, token.node);
}

// ---- JSON ------------------------------------------------------------------------------------------------------

#[test]
fn json_output_has_every_field() {
    let token = hostile();
    let got: serde_json::Value = serde_json::from_str(&render(Format::Json, &token)).expect("valid JSON");
    assert_eq!(got["secret"], HOSTILE);
    assert_eq!(got["token_id"], "automation@pve!privatebox");
    assert_eq!(got["user"], "automation@pve");
    assert_eq!(got["token_name"], "privatebox");
    assert_eq!(got["api_url"], "https://pve.lan:8006/api2/json");
    assert_eq!(got["authorization"], format!("PVEAPIToken=automation@pve!privatebox={HOSTILE}"));
    assert_eq!(got["node"], token.node);
}

#[test]
fn semaphore_body_carries_the_privatebox_variables_as_env_secrets() {
    let options =
        RenderOptions { semaphore_project_id: 7, semaphore_environment: "Lab".to_owned(), ..Default::default() };
    let text = Format::Semaphore.render_to_string(&hostile(), &options).expect("renders");
    let got: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(got["project_id"], 7);
    assert_eq!(got["name"], "Lab");
    assert_eq!(got["json"], "{}", "Semaphore wants a JSON string here");
    assert_eq!(got["env"], "{}");
    let secrets: BTreeMap<&str, &str> = got["secrets"]
        .as_array()
        .expect("array")
        .iter()
        .inspect(|s| assert_eq!((s["type"].as_str(), s["operation"].as_str()), (Some("env"), Some("create"))))
        .map(|s| (s["name"].as_str().expect("name"), s["secret"].as_str().expect("secret")))
        .collect();
    assert_eq!(secrets["PROXMOX_TOKEN_ID"], "automation@pve!privatebox");
    assert_eq!(secrets["PROXMOX_TOKEN_SECRET"], HOSTILE);
    assert_eq!(secrets.len(), 4);
}

// ---- header ----------------------------------------------------------------------------------------------------

#[test]
fn header_is_one_line_and_refuses_secrets_that_would_split_it() {
    assert_eq!(render(Format::Header, &sample()), format!("PVEAPIToken=automation@pve!privatebox={SECRET}\n"));
    let error = Format::Header.render_to_string(&hostile(), &RenderOptions::default()).expect_err("newline");
    assert!(!error.to_string().contains("HOME"), "{error}");
}

// ---- names -----------------------------------------------------------------------------------------------------

#[test]
fn format_names_round_trip_and_unknown_names_are_refused() {
    for format in Format::ALL {
        assert_eq!(format.name().parse::<Format>().expect("known"), *format);
    }
    assert_eq!(Format::ALL.len(), 14);
    assert!("terraform".parse::<Format>().is_err());
}
