//! `terraform-bpg`: the environment variables of the bpg/proxmox Terraform provider.
//!
//! ```text
//! # bpg/proxmox (Terraform, OpenTofu, Pulumi) credentials for Proxmox VE token automation@pve!privatebox (written by pvetoken)
//! # PROXMOX_VE_API_TOKEN is user@realm!name=secret without `PVEAPIToken=`; the endpoint has no /api2/json.
//! export PROXMOX_VE_ENDPOINT='https://pve.lan:8006/'
//! export PROXMOX_VE_API_TOKEN='automation@pve!privatebox=SECRET'
//! export PROXMOX_VE_INSECURE='false'
//! ```
//! bpg validates the token against `^\S+@\S+!\S+=([a-zA-Z0-9-]+)$`: a secret with other characters is refused here
//! rather than at `terraform plan`.

use std::io::{self, Write};

use super::{title, write_exports};
use crate::{Renderer, TokenFile};

/// The `terraform-bpg` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerraformBpg;

impl Renderer for TerraformBpg {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        let api_token = bpg_api_token(token)?;
        let title = title("bpg/proxmox (Terraform, OpenTofu, Pulumi)", token);
        write_exports(
            out,
            &[
                &title,
                "PROXMOX_VE_API_TOKEN is user@realm!name=secret without `PVEAPIToken=`; the endpoint has no /api2/json.",
            ],
            &[
                ("PROXMOX_VE_ENDPOINT", &bpg_endpoint(token)),
                ("PROXMOX_VE_API_TOKEN", &api_token),
                ("PROXMOX_VE_INSECURE", if token.tls_insecure { "true" } else { "false" }),
            ],
        )
    }
}

/// `https://host:port/`, the endpoint shape bpg documents.
pub(crate) fn bpg_endpoint(token: &TokenFile) -> String {
    format!("{}/", token.url)
}

/// `user@realm!name=secret`, refused when bpg's pattern would refuse it.
pub(crate) fn bpg_api_token(token: &TokenFile) -> io::Result<String> {
    use pvetoken_api::ExposeSecret;
    let secret = token.secret.expose_secret();
    if secret.is_empty() || !secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(super::unrepresentable(
            "bpg/proxmox accepts only letters, digits and '-' in a token secret (PVE secrets are UUIDs); this \
             token's secret has other characters",
        ));
    }
    Ok(format!("{}={secret}", token.token_id))
}
