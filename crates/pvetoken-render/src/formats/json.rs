//! `json`: everything about the token, machine-readable, keys sorted.
//!
//! ```text
//! {
//!   "api_url": "https://pve.lan:8006/api2/json",
//!   "authorization": "PVEAPIToken=automation@pve!privatebox=SECRET",
//!   "ca_file": null,
//!   "expire": 0,
//!   "fingerprint": null,
//!   "host": "pve.lan",
//!   "node": "pve",
//!   "port": 8006,
//!   "secret": "SECRET",
//!   "storage": null,
//!   "tls_insecure": false,
//!   "token_id": "automation@pve!privatebox",
//!   "token_name": "privatebox",
//!   "url": "https://pve.lan:8006",
//!   "user": "automation@pve"
//! }
//! ```

use std::io::{self, Write};

use pvetoken_api::ExposeSecret;

use crate::{Renderer, TokenFile};

/// The `json` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Renderer for Json {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        let secret = token.secret.expose_secret();
        let value = serde_json::json!({
            "host": token.host,
            "port": token.port,
            "url": token.url,
            "api_url": token.api_url(),
            "node": token.node,
            "token_id": token.token_id.as_str(),
            "user": token.token_id.user_str(),
            "token_name": token.token_id.name_str(),
            "secret": secret,
            "authorization": format!("PVEAPIToken={}={secret}", token.token_id),
            "fingerprint": token.fingerprint,
            "expire": token.expire,
            "storage": token.storage,
            "ca_file": token.ca_file.as_ref().map(|path| path.to_string_lossy().into_owned()),
            "tls_insecure": token.tls_insecure,
        });
        serde_json::to_writer_pretty(&mut *out, &value).map_err(io::Error::other)?;
        writeln!(out)
    }
}
