//! Proxmox VE wire types (`/api2/json/...`) that pvetoken sends and reads.
//!
//! PVE wraps every answer in `{"data": ...}`; errors are `{"data": null, "message": "...", "errors": {...}}`.
//! Booleans may arrive as `0`/`1`, `"0"`/`"1"` or `true`/`false` ([`pve_bool`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Secret;

/// The `{"data": ...}` envelope of every PVE answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Envelope<T> {
    /// The result.
    pub data: T,
}

/// The body of an error answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ErrorBody {
    /// PVE's message, usually ending in a newline.
    #[serde(default)]
    pub message: Option<String>,
    /// Per-parameter reasons of a 400.
    #[serde(default)]
    pub errors: Option<BTreeMap<String, String>>,
}

impl ErrorBody {
    /// The message and the per-parameter errors flattened into one line.
    pub fn flatten(&self, reason_phrase: &str) -> String {
        let mut text =
            self.message.as_deref().map(str::trim).filter(|m| !m.is_empty()).unwrap_or(reason_phrase).to_owned();
        if let Some(errors) = &self.errors {
            for (key, value) in errors {
                text.push_str(&format!("; {key}: {}", value.trim()));
            }
        }
        text.replace('\n', " ").trim().to_owned()
    }
}

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Version {
    /// Full pve-manager version, e.g. `9.1.1`.
    pub version: String,
    /// `major.minor`, e.g. `9.1`.
    pub release: String,
    /// Git commit of the build.
    #[serde(default)]
    pub repoid: Option<String>,
}

impl Version {
    /// `(major, minor)` from `version` (falling back to `release`). `None` when neither parses.
    pub fn major_minor(&self) -> Option<(u32, u32)> {
        parse_major_minor(&self.version).or_else(|| parse_major_minor(&self.release))
    }
}

fn parse_major_minor(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(['.', '-', '~']);
    let major = parts.next()?.trim().parse().ok()?;
    let minor = parts.next().and_then(|part| part.trim().parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// `POST /access/ticket` answer.
#[derive(Debug, Deserialize)]
pub struct Ticket {
    /// The authenticated user.
    pub username: String,
    /// The `PVEAuthCookie` value.
    pub ticket: Secret,
    /// The CSRF token for non-GET requests.
    #[serde(rename = "CSRFPreventionToken")]
    pub csrf_prevention_token: Secret,
}

/// One item of `GET /access/users`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserListItem {
    /// `user@realm`.
    pub userid: String,
    /// Enabled.
    #[serde(default = "default_true", deserialize_with = "pve_bool")]
    pub enable: bool,
    /// Epoch seconds, 0 = never.
    #[serde(default, deserialize_with = "pve_int")]
    pub expire: i64,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// With `full=1`: the user's tokens (`null` when none).
    #[serde(default)]
    pub tokens: Option<Vec<TokenInfo>>,
}

fn default_true() -> bool {
    true
}

/// A token as listed (`GET /access/users/{userid}/token`) or read (`.../token/{tokenid}`, no `tokenid` there).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TokenInfo {
    /// Token name (the part after `!`).
    #[serde(default)]
    pub tokenid: Option<String>,
    /// Epoch seconds, 0 = never.
    #[serde(default, deserialize_with = "pve_int")]
    pub expire: i64,
    /// Privilege separation.
    #[serde(default = "default_true", deserialize_with = "pve_bool")]
    pub privsep: bool,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /access/users/{userid}/token/{tokenid}` answer, and `PUT ... regenerate=1` (9.1+).
#[derive(Debug, Deserialize)]
pub struct TokenSecret {
    /// `user@realm!name`.
    #[serde(rename = "full-tokenid")]
    pub full_tokenid: String,
    /// The secret (shown once).
    pub value: Secret,
    /// What was stored (create only).
    #[serde(default)]
    pub info: Option<TokenInfo>,
}

/// One item of `GET /access/roles`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RoleListItem {
    /// Role name.
    pub roleid: String,
    /// Comma-separated privileges.
    #[serde(default)]
    pub privs: Option<String>,
    /// Built-in role.
    #[serde(default, deserialize_with = "pve_bool")]
    pub special: bool,
}

/// One item of `GET /access/acl`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AclEntry {
    /// ACL path.
    pub path: String,
    /// `user`, `group` or `token`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The subject: user id, group id or full token id.
    pub ugid: String,
    /// The role.
    pub roleid: String,
    /// Propagate to children.
    #[serde(default = "default_true", deserialize_with = "pve_bool")]
    pub propagate: bool,
}

/// One item of `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct NodeListItem {
    /// Node name.
    pub node: String,
    /// `online`, `offline` or `unknown`.
    #[serde(default)]
    pub status: Option<String>,
}

/// One entry of `GET /nodes/{node}/apt/versions`: an installed Proxmox package (pve-manager's `PVE/API2/APT.pm`
/// answers with Debian's capitalised control-field names).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PackageVersion {
    /// Package name, e.g. `libpve-access-control`.
    #[serde(rename = "Package")]
    pub package: String,
    /// The candidate version: what `apt` would install (equal to the installed one when no upgrade is pending).
    #[serde(rename = "Version", default)]
    pub version: Option<String>,
    /// The installed version (PVE sets it for every installed package; absent when not installed).
    #[serde(rename = "OldVersion", default)]
    pub old_version: Option<String>,
    /// `Installed`, `NotInstalled`, `ConfigFiles`, ...
    #[serde(rename = "CurrentState", default)]
    pub current_state: Option<String>,
}

impl PackageVersion {
    /// The version installed now: `OldVersion` (PVE's `Version` is the upgrade candidate, which is not yet
    /// running), or `Version` from servers that do not send `OldVersion`; `None` when not installed.
    pub fn installed(&self) -> Option<&str> {
        if self.current_state.as_deref().is_some_and(|state| state != "Installed") {
            return None;
        }
        self.old_version.as_deref().or(self.version.as_deref())
    }
}

/// `GET /access/permissions`: path → privilege → propagate flag (presence means granted).
pub type Permissions = BTreeMap<String, BTreeMap<String, u8>>;

/// `GET /access/roles/{roleid}`: privilege → 1.
pub type RolePrivileges = BTreeMap<String, serde_json::Value>;

/// Deserializes PVE's booleans: `0`/`1`, `"0"`/`"1"`, `true`/`false`, null (false).
pub fn pve_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    match value {
        serde_json::Value::Bool(flag) => Ok(flag),
        serde_json::Value::Number(number) => Ok(number.as_i64().unwrap_or(0) != 0),
        serde_json::Value::String(text) => Ok(!matches!(text.trim(), "" | "0" | "false")),
        serde_json::Value::Null => Ok(false),
        other => Err(serde::de::Error::custom(format!("expected a PVE boolean, found {other}"))),
    }
}

/// Deserializes PVE's integers, which may arrive as strings; null is 0.
pub fn pve_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    match value {
        serde_json::Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f as i64))
            .ok_or_else(|| serde::de::Error::custom("integer out of range")),
        serde_json::Value::String(text) if text.trim().is_empty() => Ok(0),
        serde_json::Value::String(text) => text.trim().parse().map_err(serde::de::Error::custom),
        serde_json::Value::Null => Ok(0),
        other => Err(serde::de::Error::custom(format!("expected an integer, found {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::{PackageVersion, TokenInfo, Version};

    #[test]
    fn the_installed_package_version_is_old_version_not_the_upgrade_candidate() {
        // As PVE's apt/versions reports a host with an upgrade pending: Version = candidate, OldVersion = installed.
        let pending: PackageVersion = serde_json::from_str(
            r#"{"Package":"libpve-access-control","Version":"9.1.1","OldVersion":"9.0.7","CurrentState":"Installed"}"#,
        )
        .expect("parses");
        assert_eq!(pending.installed(), Some("9.0.7"));
        let bare: PackageVersion = serde_json::from_str(r#"{"Package":"x","Version":"1.0"}"#).expect("parses");
        assert_eq!(bare.installed(), Some("1.0"));
        let absent: PackageVersion =
            serde_json::from_str(r#"{"Package":"x","Version":"1.0","CurrentState":"NotInstalled"}"#).expect("parses");
        assert_eq!(absent.installed(), None);
    }

    #[test]
    fn privsep_echoed_as_string_zero_reads_as_false() {
        let info: TokenInfo = serde_json::from_str(r#"{"privsep":"0","expire":"0"}"#).expect("parses");
        assert!(!info.privsep);
        let info: TokenInfo = serde_json::from_str(r#"{"tokenid":"ci"}"#).expect("parses");
        assert!(info.privsep, "privsep defaults to 1 as in PVE");
    }

    #[test]
    fn version_major_minor_reads_the_full_version() {
        let version = Version { version: "8.4.1".into(), release: "8.4".into(), repoid: None };
        assert_eq!(version.major_minor(), Some((8, 4)));
    }
}
