//! `terraform-telmate`: the environment variables of the Telmate/proxmox Terraform provider.
//!
//! ```text
//! # Telmate/proxmox (Terraform) credentials for Proxmox VE token automation@pve!privatebox (written by pvetoken)
//! # PM_API_TOKEN_ID is the full token id (it must contain `!`); PM_API_URL ends in /api2/json.
//! export PM_API_URL='https://pve.lan:8006/api2/json'
//! export PM_API_TOKEN_ID='automation@pve!privatebox'
//! export PM_API_TOKEN_SECRET='SECRET'
//! export PM_TLS_INSECURE='false'
//! ```

use std::io::{self, Write};

use pvetoken_api::ExposeSecret;

use super::{title, write_exports};
use crate::{Renderer, TokenFile};

/// The `terraform-telmate` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerraformTelmate;

impl Renderer for TerraformTelmate {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        let title = title("Telmate/proxmox (Terraform)", token);
        write_exports(
            out,
            &[&title, "PM_API_TOKEN_ID is the full token id (it must contain `!`); PM_API_URL ends in /api2/json."],
            &[
                ("PM_API_URL", &token.api_url()),
                ("PM_API_TOKEN_ID", token.token_id.as_str()),
                ("PM_API_TOKEN_SECRET", token.secret.expose_secret()),
                ("PM_TLS_INSECURE", if token.tls_insecure { "true" } else { "false" }),
            ],
        )
    }
}
