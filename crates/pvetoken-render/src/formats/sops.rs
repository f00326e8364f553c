//! `sops`: the home-infra credentials schema (`secrets/proxmox-creds.enc.yaml`), as the plaintext YAML that
//! `sops --encrypt` takes. `pvetoken render --format sops --age-recipient age1...` encrypts it.
//!
//! ```text
//! proxmox_url: "https://pve.lan:8006/api2/json"
//! proxmox_user: "automation@pve"
//! proxmox_token_id: "privatebox"
//! proxmox_token_secret: "SECRET"
//! proxmox_node: "pve"
//! proxmox_storage_pool: "tank"
//! proxmox_tls_insecure: false
//! ```
//! No comments (sops would encrypt them as values). `proxmox_token_id` is the token NAME only, as the schema
//! says; `proxmox_url` includes `/api2/json` as the schema's Packer users expect (bpg users must strip it).
//! `proxmox_storage_pool` is `""` when the token file has no `PROXMOX_STORAGE`.

use std::io::{self, Write};

use pvetoken_api::ExposeSecret;

use crate::quote::yaml_string;
use crate::{Renderer, TokenFile};

/// The `sops` renderer (plaintext).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sops;

impl Renderer for Sops {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "proxmox_url: {}", yaml_string(&token.api_url()))?;
        writeln!(out, "proxmox_user: {}", yaml_string(token.token_id.user_str()))?;
        writeln!(out, "proxmox_token_id: {}", yaml_string(token.token_id.name_str()))?;
        writeln!(out, "proxmox_token_secret: {}", yaml_string(token.secret.expose_secret()))?;
        writeln!(out, "proxmox_node: {}", yaml_string(&token.node))?;
        writeln!(out, "proxmox_storage_pool: {}", yaml_string(token.storage.as_deref().unwrap_or("")))?;
        writeln!(out, "proxmox_tls_insecure: {}", token.tls_insecure)
    }
}
