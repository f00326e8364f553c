//! Lint rules on small inputs: what the scanner must not be fooled by, and pvetoken's own outputs passing lint.

use pvetoken_api::Secret;
use pvetoken_render::lint::{DirectoryContext, LintOptions, lint_text};
use pvetoken_render::{Format, RenderOptions, TokenFile};

fn rules(file_name: &str, text: &str) -> Vec<&'static str> {
    lint_text(file_name, text, &DirectoryContext::default(), &LintOptions::default())
        .into_iter()
        .map(|f| f.rule)
        .collect()
}

#[test]
fn valid_exit_codes_anywhere_in_the_provisioner_block_count() {
    let ok = "build {\n  provisioner \"shell\" {\n    inline = [\"cloud-init status --wait\"]\n    \
              environment_vars = [\"A=${var.x}\"]\n    valid_exit_codes = [0, 2]\n  }\n}\n";
    assert!(rules("b.pkr.hcl", ok).is_empty(), "{:?}", rules("b.pkr.hcl", ok));
    let zero_only = ok.replace("[0, 2]", "[0]");
    assert_eq!(rules("b.pkr.hcl", &zero_only), ["cloud-init-exit-code"]);
    let other_block = "build {\n  provisioner \"shell\" {\n    inline = [\"cloud-init status --wait\"]\n  }\n  \
                       provisioner \"shell\" {\n    valid_exit_codes = [0, 2]\n  }\n}\n";
    assert_eq!(rules("b.pkr.hcl", other_block), ["cloud-init-exit-code"], "another provisioner's codes do not count");
}

#[test]
fn braces_inside_strings_and_templates_do_not_end_a_block() {
    let text = "source \"proxmox-clone\" \"a\" {\n  description = \"${var.x} } {\"\n  full_clone = true\n}\n";
    assert!(rules("a.pkr.hcl", text).is_empty(), "{:?}", rules("a.pkr.hcl", text));
    let missing = text.replace("  full_clone = true\n", "");
    assert_eq!(rules("a.pkr.hcl", &missing), ["packer-clone-full-clone"]);
}

#[test]
fn commented_out_lines_are_not_judged_in_any_language() {
    assert!(rules("a.pkr.hcl", "// token = \"PVEAPIToken=a@pve!tok=s\"\n# username = \"a@pam\"\n").is_empty());
    assert!(rules("v.yml", "# api_token_id: a@pve!tok\napi_token_id: tok # not a@pve!tok\n").is_empty());
    assert!(rules(".envrc", "# export PROXMOX_TOKEN=\"PVEAPIToken=x\"\n").is_empty());
}

#[test]
fn a_hash_inside_a_quoted_value_is_not_a_comment() {
    assert_eq!(
        rules(".envrc", "export PROXMOX_TOKEN=\"#x PVEAPIToken\"\nexport PM_API_TOKEN_ID='a#b'\n"),
        ["token-id-not-full"]
    );
}

#[test]
fn variable_defaults_are_judged_as_the_variable() {
    let text = "variable \"pm_api_url\" {\n  default = \"https://pve:8006\"\n}\n";
    assert_eq!(rules("v.tf", text), ["api-path-missing"]);
}

fn token(insecure: bool) -> TokenFile {
    let mut token = TokenFile::new(
        "https://pve.lan:8006",
        "pve",
        "automation@pve!privatebox".parse().expect("id"),
        Secret::from("0b3c9f1e-1111-2222-3333-444455556666".to_owned()),
    )
    .expect("url");
    token.storage = Some("tank".to_owned());
    token.tls_insecure = insecure;
    token
}

/// The file name each format is saved under in a repository.
const SAVED_AS: &[(Format, &str)] = &[
    (Format::Env, "token.env"),
    (Format::Packer, "packer.env"),
    (Format::PackerPkrvars, "proxmox.auto.pkrvars.hcl"),
    (Format::TerraformBpg, "bpg.env"),
    (Format::TerraformBpgTfvars, "proxmox.auto.tfvars"),
    (Format::TerraformTelmate, "telmate.env"),
    (Format::TerraformTelmateTfvars, "telmate.tfvars"),
    (Format::AnsibleEnv, "ansible.env"),
    (Format::AnsibleVars, "proxmox.yml"),
    (Format::Sops, "proxmox-creds.yaml"),
    (Format::CloudInit, "user-data.yaml"),
];

#[test]
fn every_rendered_format_passes_lint() {
    for (format, name) in SAVED_AS {
        let text = format.render_to_string(&token(false), &RenderOptions::default()).expect("render");
        assert_eq!(rules(name, &text), Vec::<&str>::new(), "{format} saved as {name}:\n{text}");
    }
}

#[test]
fn rendered_formats_with_tls_verification_off_get_only_the_info_finding() {
    let mut flagged = Vec::new();
    for (format, name) in SAVED_AS {
        let text = format.render_to_string(&token(true), &RenderOptions::default()).expect("render");
        let found = rules(name, &text);
        assert!(found.iter().all(|rule| *rule == "insecure-tls"), "{format}: {found:?}");
        if !found.is_empty() {
            flagged.push(*format);
        }
    }
    for format in [
        Format::PackerPkrvars,
        Format::TerraformBpg,
        Format::TerraformBpgTfvars,
        Format::TerraformTelmate,
        Format::TerraformTelmateTfvars,
        Format::AnsibleEnv,
        Format::AnsibleVars,
        Format::Sops,
    ] {
        assert!(flagged.contains(&format), "{format} turns verification off but was not flagged");
    }
}

proptest::proptest! {
    /// Whatever a file holds (multi-byte characters, unbalanced quotes and braces), lint reports and never panics.
    #[test]
    fn lint_never_panics_on_any_text(
        text in r#"(\PC|[\n"'{}#/=:$!@ ]|PVEAPIToken=|€|variable "a" \{|default = |cloud-init status --wait){0,200}"#,
    ) {
        for name in ["a.env", "a.pkr.hcl", "a.tf", "a.yml", "unknown"] {
            let _ = lint_text(name, &text, &DirectoryContext::default(), &LintOptions::default());
        }
    }
}

#[test]
fn a_multi_byte_value_where_the_prefix_would_be_is_not_a_panic() {
    assert!(rules(".envrc", "export PROXMOX_TOKEN=\"a€€€€\"\n").is_empty());
}
