//! `ansible-vars`: community.proxmox module parameters as a YAML vars file (`group_vars/`, `vars_files:`, or
//! `module_defaults` with `api_host: "{{ api_host }}"` ...).
//!
//! ```text
//! # community.proxmox (Ansible) credentials for Proxmox VE token automation@pve!privatebox (written by pvetoken)
//! # api_token_id is the token NAME only; api_user is its owner. Encrypt with ansible-vault or sops before committing.
//! api_host: "pve.lan"
//! api_port: 8006
//! api_user: "automation@pve"
//! api_token_id: "privatebox"
//! api_token_secret: "SECRET"
//! validate_certs: true
//! ```
//! plus `ca_path: "..."` when the token file names a CA file. Strings are YAML double-quoted scalars
//! ([`crate::quote::yaml_string`]). Ansible templates variable values when they are used, so a value containing `{`
//! (which could start `{{`, `{%` or `{#`) is tagged `!unsafe` to keep it literal.

use std::io::{self, Write};

use pvetoken_api::ExposeSecret;

use super::title;
use crate::{Renderer, TokenFile};

/// The `ansible-vars` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnsibleVars;

impl Renderer for AnsibleVars {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "# {}", title("community.proxmox (Ansible)", token))?;
        writeln!(
            out,
            "# api_token_id is the token NAME only; api_user is its owner. Encrypt with ansible-vault or sops before committing."
        )?;
        if token.fingerprint.is_some() && token.ca_file.is_none() && !token.tls_insecure {
            writeln!(out, "# {}", super::ansible_env::PIN_NOTE)?;
        }
        writeln!(out, "api_host: {}", ansible_string(&token.host))?;
        writeln!(out, "api_port: {}", token.port)?;
        writeln!(out, "api_user: {}", ansible_string(token.token_id.user_str()))?;
        writeln!(out, "api_token_id: {}", ansible_string(token.token_id.name_str()))?;
        writeln!(out, "api_token_secret: {}", ansible_string(token.secret.expose_secret()))?;
        writeln!(out, "validate_certs: {}", !token.tls_insecure)?;
        if let Some(ca_file) = &token.ca_file {
            writeln!(out, "ca_path: {}", ansible_string(&ca_file.to_string_lossy()))?;
        }
        Ok(())
    }
}

/// A YAML string that Ansible will not template: tagged `!unsafe` when it contains `{`.
pub(crate) fn ansible_string(value: &str) -> String {
    let quoted = crate::quote::yaml_string(value);
    if value.contains('{') { format!("!unsafe {quoted}") } else { quoted }
}
