//! `packer-pkrvars`: a Packer variable file (`*.auto.pkrvars.hcl`) for the home-infra variable names.
//!
//! ```text
//! # Packer (packer-plugin-proxmox) credentials for Proxmox VE token automation@pve!privatebox (written by pvetoken)
//! # Declare these in variables.pkr.hcl (proxmox_username and proxmox_token with sensitive = true) and use them as
//! # proxmox_url, username, token, node and insecure_skip_tls_verify of the proxmox-iso/proxmox-clone source.
//! proxmox_url             = "https://pve.lan:8006/api2/json"
//! proxmox_username        = "automation@pve!privatebox"
//! proxmox_token           = "SECRET"
//! proxmox_node            = "pve"
//! proxmox_skip_tls_verify = false
//! ```
//! Strings are HCL quoted strings ([`crate::quote::hcl_string`]): `${` and `%{` are doubled so they stay literal.

use std::io::{self, Write};

use pvetoken_api::ExposeSecret;

use super::{HclValue, title, write_hcl};
use crate::{Renderer, TokenFile};

/// The `packer-pkrvars` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct PackerPkrvars;

impl Renderer for PackerPkrvars {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        let title = title("Packer (packer-plugin-proxmox)", token);
        let api_url = token.api_url();
        write_hcl(
            out,
            &[
                &title,
                "Declare these in variables.pkr.hcl (proxmox_username and proxmox_token with sensitive = true) and use them as",
                "proxmox_url, username, token, node and insecure_skip_tls_verify of the proxmox-iso/proxmox-clone source.",
            ],
            &[
                ("proxmox_url", HclValue::Str(&api_url)),
                ("proxmox_username", HclValue::Str(token.token_id.as_str())),
                ("proxmox_token", HclValue::Str(token.secret.expose_secret())),
                ("proxmox_node", HclValue::Str(&token.node)),
                ("proxmox_skip_tls_verify", HclValue::Bool(token.tls_insecure)),
            ],
        )
    }
}
