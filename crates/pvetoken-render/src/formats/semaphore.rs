//! `semaphore`: the JSON body of `POST /api/project/{project_id}/environment` that holds the token as `env`
//! secrets, in the PrivateBox layout (what `pvetoken register semaphore --layout seed` sends).
//!
//! ```text
//! {
//!   "name": "ProxmoxAPI",
//!   "project_id": 1,
//!   "password": null,
//!   "json": "{}",
//!   "env": "{}",
//!   "secrets": [
//!     { "name": "PROXMOX_HOST", "secret": "pve.lan", "type": "env", "operation": "create" },
//!     { "name": "PROXMOX_NODE", "secret": "pve", "type": "env", "operation": "create" },
//!     { "name": "PROXMOX_TOKEN_ID", "secret": "automation@pve!privatebox", "type": "env", "operation": "create" },
//!     { "name": "PROXMOX_TOKEN_SECRET", "secret": "SECRET", "type": "env", "operation": "create" }
//!   ]
//! }
//! ```
//! (pretty-printed with one key per line). `json` and `env` are JSON *strings*, as Semaphore requires.

use std::io::{self, Write};

use pvetoken_api::semaphore::{EnvironmentRequest, EnvironmentSecretRequest, SecretOperation, SecretType};

use crate::consumers::SemaphoreLayout;
use crate::{Renderer, TokenFile};

/// The `semaphore` renderer.
#[derive(Debug, Clone, Default)]
pub struct Semaphore {
    /// The project the environment belongs to.
    pub project_id: i64,
    /// The environment name.
    pub environment: String,
}

impl Renderer for Semaphore {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        let body = EnvironmentRequest {
            id: None,
            name: self.environment.clone(),
            project_id: self.project_id,
            password: None,
            json: "{}".to_owned(),
            env: Some("{}".to_owned()),
            secrets: SemaphoreLayout::Seed
                .variables(token)
                .into_iter()
                .map(|(name, secret)| EnvironmentSecretRequest {
                    id: None,
                    name: name.to_owned(),
                    secret: Some(secret),
                    kind: Some(SecretType::Env),
                    operation: Some(SecretOperation::Create),
                })
                .collect(),
        };
        serde_json::to_writer_pretty(&mut *out, &body).map_err(io::Error::other)?;
        writeln!(out)
    }
}
