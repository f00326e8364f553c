//! What a live server can do, found out rather than guessed from `GET /version`.
//!
//! Packages on a Proxmox VE host are upgraded one by one, so pve-manager's version (what `/version` reports)
//! never proves what libpve-access-control can do. Token **regenerate** (`PUT /access/users/{userid}/token/
//! {tokenid}` with `regenerate=1`) arrived in libpve-access-control 9.1.0 (2026-05-06, proxmox/pve-access-control
//! `debian/changelog`: "api: token: support regenerating the secret on update"); PVE 9.1.0–9.1.9 ship 9.0.4–9.0.7,
//! which refuse the parameter. So rotation reads the installed package version from
//! `GET /nodes/{node}/apt/versions` and regenerates only when it proves 9.1.0 or later; when that cannot be read
//! (no `Sys.Audit` on the node, an error, an unparsable version), it takes the new-token path, which every release
//! from 7.4 on supports. A failed `regenerate=1` is never used as a probe.

use pvetoken_acl::AccessControlVersion;
use pvetoken_acl::release::{Feature, since};
use pvetoken_client::pve::PveClient;

/// The package whose version decides the access-control features.
pub const ACCESS_CONTROL_PACKAGE: &str = "libpve-access-control";

/// How a token's secret is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RotationMethod {
    /// The same token gets a new secret; its ACLs stay.
    Regenerate,
    /// A new token with the old one's settings and ACLs; the old one is deleted when every sink holds the new one.
    NewToken,
}

/// What was found out about the server's libpve-access-control, and how.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Detection {
    /// The installed libpve-access-control version, when it could be read.
    pub access_control: Option<String>,
    /// Where the version came from (`GET /nodes/NODE/apt/versions`) or why it is unknown.
    pub source: String,
    /// The rotation method this allows.
    pub method: RotationMethod,
}

impl Detection {
    /// One line for `-v`.
    pub fn describe(&self) -> String {
        let method = match self.method {
            RotationMethod::Regenerate => "regenerate the secret in place",
            RotationMethod::NewToken => "new token with the same ACLs",
        };
        match &self.access_control {
            Some(version) => format!("libpve-access-control {version} ({}): {method}", self.source),
            None => format!("libpve-access-control unknown ({}): {method}", self.source),
        }
    }
}

/// The rotation method a libpve-access-control version allows; unknown or unparsable means the safe path.
pub fn method_for(access_control: Option<&str>) -> RotationMethod {
    match access_control.and_then(AccessControlVersion::parse_debian) {
        Some(version) if version >= since(Feature::TokenRegenerate) => RotationMethod::Regenerate,
        _ => RotationMethod::NewToken,
    }
}

/// Reads the installed libpve-access-control from the node named `node_hint` (else the first node listed).
pub async fn detect(client: &PveClient, node_hint: Option<&str>) -> Detection {
    let unknown = |source: String| Detection { access_control: None, source, method: RotationMethod::NewToken };
    let node = match node_hint.filter(|node| !node.is_empty()) {
        Some(node) => node.to_owned(),
        None => match client.nodes().await {
            Ok(nodes) => match nodes.into_iter().next() {
                Some(node) => node.node,
                None => return unknown("GET /nodes listed no node".to_owned()),
            },
            Err(error) => return unknown(format!("GET /nodes failed: {error}")),
        },
    };
    let path = format!("GET /nodes/{node}/apt/versions");
    let packages = match client.package_versions(&node).await {
        Ok(packages) => packages,
        Err(error) => return unknown(format!("{path} failed: {error}")),
    };
    // `Version` is apt's candidate; what runs is the installed version (`OldVersion`).
    let version = packages
        .iter()
        .find(|package| package.package == ACCESS_CONTROL_PACKAGE)
        .and_then(|package| package.installed().map(str::to_owned));
    match version {
        Some(version) if AccessControlVersion::parse_debian(&version).is_some() => {
            Detection { method: method_for(Some(&version)), access_control: Some(version), source: path }
        }
        Some(version) => unknown(format!("{path}: unparsable version `{version}`")),
        None => unknown(format!("{path}: {ACCESS_CONTROL_PACKAGE} not listed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regenerate_only_from_access_control_9_1_0_on() {
        let cases = [
            (Some("8.2.2"), RotationMethod::NewToken),
            (Some("9.0.4"), RotationMethod::NewToken),
            (Some("9.0.7"), RotationMethod::NewToken),
            (Some("9.1.0"), RotationMethod::Regenerate),
            (Some("9.1.1"), RotationMethod::Regenerate),
            (Some("1:9.1.1-1~bpo12"), RotationMethod::Regenerate),
            (Some("10.0"), RotationMethod::Regenerate),
            (Some("garbage"), RotationMethod::NewToken),
            (Some(""), RotationMethod::NewToken),
            (None, RotationMethod::NewToken),
        ];
        for (version, method) in cases {
            assert_eq!(method_for(version), method, "{version:?}");
        }
    }
}
