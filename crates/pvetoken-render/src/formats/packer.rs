//! `packer`: the environment variables packer-plugin-proxmox falls back to, as `export` lines.
//!
//! ```text
//! # Packer (packer-plugin-proxmox) credentials for Proxmox VE token automation@pve!privatebox (written by pvetoken)
//! # PROXMOX_USERNAME is the full token id, PROXMOX_TOKEN the secret alone (never `PVEAPIToken=...`).
//! # Packer has no environment variable for TLS: insecure_skip_tls_verify belongs in the template.
//! export PROXMOX_URL='https://pve.lan:8006/api2/json'
//! export PROXMOX_USERNAME='automation@pve!privatebox'
//! export PROXMOX_TOKEN='SECRET'
//! export PROXMOX_NODE='pve'
//! ```
//! `PROXMOX_NODE` is not read by the plugin; templates read it with `env("PROXMOX_NODE")` (the home-infra layout).

use std::io::{self, Write};

use pvetoken_api::ExposeSecret;

use super::{title, write_exports};
use crate::{Renderer, TokenFile};

/// The `packer` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Packer;

impl Renderer for Packer {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        let title = title("Packer (packer-plugin-proxmox)", token);
        write_exports(
            out,
            &[
                &title,
                "PROXMOX_USERNAME is the full token id, PROXMOX_TOKEN the secret alone (never `PVEAPIToken=...`).",
                "Packer has no environment variable for TLS: insecure_skip_tls_verify belongs in the template.",
            ],
            &[
                ("PROXMOX_URL", &token.api_url()),
                ("PROXMOX_USERNAME", token.token_id.as_str()),
                ("PROXMOX_TOKEN", token.secret.expose_secret()),
                ("PROXMOX_NODE", &token.node),
            ],
        )
    }
}
