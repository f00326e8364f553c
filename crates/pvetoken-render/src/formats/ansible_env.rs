//! `ansible-env`: the environment variables community.proxmox modules fall back to (collection ≥ 1.3).
//!
//! ```text
//! # community.proxmox (Ansible) credentials for Proxmox VE token automation@pve!privatebox (written by pvetoken)
//! # Here PROXMOX_TOKEN_ID is the token NAME only and PROXMOX_USER its owner (unlike pvetoken's token file).
//! export PROXMOX_HOST='pve.lan'
//! export PROXMOX_PORT='8006'
//! export PROXMOX_USER='automation@pve'
//! export PROXMOX_TOKEN_ID='privatebox'
//! export PROXMOX_TOKEN_SECRET='SECRET'
//! export PROXMOX_VALIDATE_CERTS='true'
//! ```
//! plus `export PROXMOX_CA_PATH='...'` and `export REQUESTS_CA_BUNDLE='...'` when the token file names a CA file:
//! community.proxmox reads `PROXMOX_CA_PATH` from 2.0 on; before (1.4 is what ansible 12 bundles) it verifies
//! through proxmoxer and requests, which read `REQUESTS_CA_BUNDLE` (for every HTTPS request of that process).
//! community.proxmox cannot pin a fingerprint: a pinned token without a CA file gets a comment saying so.

use std::io::{self, Write};

use pvetoken_api::ExposeSecret;

use super::{title, write_exports};
use crate::{Renderer, TokenFile};

/// The `ansible-env` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnsibleEnv;

/// Comment for a token pinned by fingerprint that Ansible cannot verify.
pub(crate) const PIN_NOTE: &str = "The token file pins a certificate fingerprint, which community.proxmox cannot \
                                   check: give it the CA (PROXMOX_CA_FILE in the token file) instead.";

impl Renderer for AnsibleEnv {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        let title = title("community.proxmox (Ansible)", token);
        let port = token.port.to_string();
        let ca_path = token.ca_file.as_ref().map(|path| path.to_string_lossy().into_owned());
        let mut comments = vec![
            title.as_str(),
            "Here PROXMOX_TOKEN_ID is the token NAME only and PROXMOX_USER its owner (unlike pvetoken's token file).",
        ];
        if token.fingerprint.is_some() && ca_path.is_none() && !token.tls_insecure {
            comments.push(PIN_NOTE);
        }
        let mut pairs = vec![
            ("PROXMOX_HOST", token.host.as_str()),
            ("PROXMOX_PORT", &port),
            ("PROXMOX_USER", token.token_id.user_str()),
            ("PROXMOX_TOKEN_ID", token.token_id.name_str()),
            ("PROXMOX_TOKEN_SECRET", token.secret.expose_secret()),
            ("PROXMOX_VALIDATE_CERTS", if token.tls_insecure { "false" } else { "true" }),
        ];
        if let Some(ca_path) = &ca_path {
            pairs.push(("PROXMOX_CA_PATH", ca_path));
            pairs.push(("REQUESTS_CA_BUNDLE", ca_path));
        }
        write_exports(out, &comments, &pairs)
    }
}
