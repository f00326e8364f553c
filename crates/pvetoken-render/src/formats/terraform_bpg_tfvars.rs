//! `terraform-bpg-tfvars`: a `.tfvars` file for a bpg/proxmox provider block wired to three variables.
//!
//! ```text
//! # bpg/proxmox (Terraform) credentials for Proxmox VE token automation@pve!privatebox (written by pvetoken)
//! # provider "proxmox" { endpoint = var.proxmox_endpoint, api_token = var.proxmox_api_token, insecure = var.proxmox_insecure }
//! # Declare proxmox_api_token with sensitive = true.
//! proxmox_endpoint  = "https://pve.lan:8006/"
//! proxmox_api_token = "automation@pve!privatebox=SECRET"
//! proxmox_insecure  = false
//! ```

use std::io::{self, Write};

use super::terraform_bpg::{bpg_api_token, bpg_endpoint};
use super::{HclValue, title, write_hcl};
use crate::{Renderer, TokenFile};

/// The `terraform-bpg-tfvars` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerraformBpgTfvars;

impl Renderer for TerraformBpgTfvars {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        let api_token = bpg_api_token(token)?;
        let endpoint = bpg_endpoint(token);
        let title = title("bpg/proxmox (Terraform)", token);
        write_hcl(
            out,
            &[
                &title,
                "provider \"proxmox\" { endpoint = var.proxmox_endpoint, api_token = var.proxmox_api_token, insecure = var.proxmox_insecure }",
                "Declare proxmox_api_token with sensitive = true.",
            ],
            &[
                ("proxmox_endpoint", HclValue::Str(&endpoint)),
                ("proxmox_api_token", HclValue::Str(&api_token)),
                ("proxmox_insecure", HclValue::Bool(token.tls_insecure)),
            ],
        )
    }
}
