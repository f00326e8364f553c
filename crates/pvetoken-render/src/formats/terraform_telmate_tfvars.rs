//! `terraform-telmate-tfvars`: a `.tfvars` file named after the Telmate/proxmox provider arguments.
//!
//! ```text
//! # Telmate/proxmox (Terraform) credentials for Proxmox VE token automation@pve!privatebox (written by pvetoken)
//! # provider "proxmox" { pm_api_url = var.pm_api_url, pm_api_token_id = var.pm_api_token_id, ... }
//! # Declare pm_api_token_secret with sensitive = true.
//! pm_api_url          = "https://pve.lan:8006/api2/json"
//! pm_api_token_id     = "automation@pve!privatebox"
//! pm_api_token_secret = "SECRET"
//! pm_tls_insecure     = false
//! ```

use std::io::{self, Write};

use pvetoken_api::ExposeSecret;

use super::{HclValue, title, write_hcl};
use crate::{Renderer, TokenFile};

/// The `terraform-telmate-tfvars` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerraformTelmateTfvars;

impl Renderer for TerraformTelmateTfvars {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        let title = title("Telmate/proxmox (Terraform)", token);
        let api_url = token.api_url();
        write_hcl(
            out,
            &[
                &title,
                "provider \"proxmox\" { pm_api_url = var.pm_api_url, pm_api_token_id = var.pm_api_token_id, ... }",
                "Declare pm_api_token_secret with sensitive = true.",
            ],
            &[
                ("pm_api_url", HclValue::Str(&api_url)),
                ("pm_api_token_id", HclValue::Str(token.token_id.as_str())),
                ("pm_api_token_secret", HclValue::Str(token.secret.expose_secret())),
                ("pm_tls_insecure", HclValue::Bool(token.tls_insecure)),
            ],
        )
    }
}
