//! `env`: the token file itself ([`TokenFile::render`]), for `source` / `set -a; . FILE; set +a`.
//!
//! ```text
//! # Proxmox VE API token written by pvetoken. Keep this file mode 0600.
//! # Shell-sourceable: `set -a; . FILE; set +a`.
//! PROXMOX_HOST='pve.lan'
//! PROXMOX_PORT='8006'
//! PROXMOX_URL='https://pve.lan:8006'
//! PROXMOX_NODE='pve'
//! PROXMOX_TOKEN_ID='automation@pve!privatebox'
//! PROXMOX_TOKEN_SECRET='SECRET'
//! PROXMOX_TOKEN_EXPIRE='0'
//! ```
//! followed by `PROXMOX_FINGERPRINT`, `PROXMOX_STORAGE`, `PROXMOX_CA_FILE`, `PROXMOX_TLS_INSECURE` when set.
//! `PROXMOX_TOKEN_ID` is the **full** id here (the PrivateBox convention), unlike [`super::ansible_env`].

use std::io::{self, Write};

use crate::{Renderer, TokenFile};

/// The `env` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env;

impl Renderer for Env {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(token.render().as_bytes())
    }
}
