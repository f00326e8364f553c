//! `cloud-init`: a `#cloud-config` document whose `write_files` entry writes the token file in a guest.
//!
//! **Prefer `pvetoken deliver`.** User-data is stored in a snippet on the Proxmox host and copied into the guest
//! (`/var/lib/cloud/instance/`), so the secret stays readable there; delete the snippet after the first boot.
//!
//! ```text
//! #cloud-config
//! # cloud-init credentials for Proxmox VE token automation@pve!privatebox (written by pvetoken)
//! # WARNING: user-data is readable on the Proxmox host (snippet storage) and in the guest (/var/lib/cloud).
//! # Delete this snippet after the first boot, and prefer `pvetoken deliver` (QEMU guest agent) next time.
//! write_files:
//!   - path: "/root/.proxmox-api-token"
//!     owner: "root:root"
//!     permissions: "0600"
//!     defer: false
//!     content: "# Proxmox VE API token written by pvetoken...\u000APROXMOX_HOST='pve.lan'\u000A..."
//! ```
//! `content` is the whole [`TokenFile::render`] output as one YAML double-quoted scalar.

use std::io::{self, Write};

use super::title;
use crate::quote::yaml_string;
use crate::{Renderer, TokenFile};

/// The `cloud-init` renderer.
#[derive(Debug, Clone, Default)]
pub struct CloudInit {
    /// Where the guest writes the token file.
    pub path: String,
}

impl Renderer for CloudInit {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "#cloud-config")?;
        writeln!(out, "# {}", title("cloud-init", token))?;
        writeln!(
            out,
            "# WARNING: user-data is readable on the Proxmox host (snippet storage) and in the guest (/var/lib/cloud)."
        )?;
        writeln!(
            out,
            "# Delete this snippet after the first boot, and prefer `pvetoken deliver` (QEMU guest agent) next time."
        )?;
        writeln!(out, "write_files:")?;
        writeln!(out, "  - path: {}", yaml_string(&self.path))?;
        writeln!(out, "    owner: \"root:root\"")?;
        writeln!(out, "    permissions: \"0600\"")?;
        writeln!(out, "    defer: false")?;
        writeln!(out, "    content: {}", yaml_string(&token.render()))
    }
}
