//! Consumer profiles: which privileges a consumer (Packer, Terraform, Ansible, PrivateBox...) needs on which
//! paths, per PVE version, each with its reason. Built-in profiles are data in `profiles/*.toml`, embedded at build
//! time; a user-defined profile is a TOML file of the same shape (see docs/profiles.md).
//!
//! A profile resolves against the server's version and the user's narrowing (`--pool`, `--storage`, `--node`,
//! `--bridge`) into [`Resolved`]: one custom role holding the union of the privileges, and the ACL paths it is
//! granted on. `verify` and `doctor` use the per-path needs and their reasons.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;

const BUILTIN: &[(&str, &str)] = &[
    ("privatebox", include_str!("../profiles/privatebox.toml")),
    ("packer", include_str!("../profiles/packer.toml")),
    ("terraform", include_str!("../profiles/terraform.toml")),
    ("terraform-telmate", include_str!("../profiles/terraform-telmate.toml")),
    ("ansible", include_str!("../profiles/ansible.toml")),
    ("readonly", include_str!("../profiles/readonly.toml")),
];

/// A profile as written in TOML.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Name (also the default token name).
    pub name: String,
    /// What the consumer does.
    pub description: String,
    /// Custom role name; default `Token-<name>`. Never starts with `PVE`.
    #[serde(default)]
    pub role: Option<String>,
    /// ACL grants.
    #[serde(rename = "grant")]
    pub grants: Vec<Grant>,
}

/// The privileges needed on one path.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// ACL path, possibly with `{storage}`, `{bridge}`, `{node}` placeholders: without the matching narrowing
    /// flag, the path stops before the placeholder (`/storage/{storage}` → `/storage`).
    pub path: String,
    /// Propagate to child paths.
    #[serde(default = "yes")]
    pub propagate: bool,
    /// `--pool P` replaces this path by `/pool/P` (for `/vms`).
    #[serde(default)]
    pub pool_narrowable: bool,
    /// The privileges with their reasons and version bounds.
    pub privileges: Vec<PrivilegeNeed>,
}

fn yes() -> bool {
    true
}

/// One privilege, why it is needed, and on which PVE versions.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrivilegeNeed {
    /// PVE privilege name.
    pub name: String,
    /// Why the consumer needs it (shown by `verify` and `doctor`).
    pub reason: String,
    /// First PVE version (`major.minor`) that needs or knows it.
    #[serde(default)]
    pub since: Option<PveVersion>,
    /// First PVE version that no longer needs or knows it.
    #[serde(default)]
    pub before: Option<PveVersion>,
}

/// A PVE `major.minor` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PveVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl PveVersion {
    /// Parses `9`, `9.1`, `9.1.2`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = match parts.next() {
            Some(minor) => minor.parse().ok()?,
            None => 0,
        };
        Some(Self { major, minor })
    }
}

impl fmt::Display for PveVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl<'de> Deserialize<'de> for PveVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a version like 9.0")))
    }
}

impl Serialize for PveVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The user's narrowing of the default (broad) paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Narrowing {
    /// `--pool`: VM privileges on `/pool/<pool>` instead of `/vms`.
    pub pool: Option<String>,
    /// `--storage` (repeatable): `/storage/<s>` instead of `/storage`.
    pub storages: Vec<String>,
    /// `--node` (repeatable): `/nodes/<n>` instead of `/nodes`.
    pub nodes: Vec<String>,
    /// `--bridge` (repeatable): `/sdn/zones/localnetwork/<b>` instead of `/sdn/zones/localnetwork`.
    pub bridges: Vec<String>,
}

/// A profile resolved for one server version and narrowing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// Profile name.
    pub profile: String,
    /// The custom role holding the union of all privileges.
    pub role: String,
    /// The version it was resolved for.
    pub version: PveVersion,
    /// Per path (sorted): propagate flag and privilege → reason.
    pub paths: Vec<ResolvedPath>,
}

/// The needs on one ACL path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedPath {
    /// ACL path.
    pub path: String,
    /// Propagate.
    pub propagate: bool,
    /// Privilege → reason.
    pub privileges: BTreeMap<String, String>,
}

impl Resolved {
    /// Every privilege of the role, sorted.
    pub fn role_privileges(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.paths.iter().flat_map(|path| path.privileges.keys()).collect();
        set.into_iter().cloned().collect()
    }
}

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Not a built-in name and not a file.
    #[error("unknown profile `{0}`")]
    Unknown(String),
    /// The file cannot be read.
    #[error("profile file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The profile's content is wrong.
    #[error("profile `{name}`: {reason}")]
    Invalid {
        /// Profile name or file.
        name: String,
        /// Why.
        reason: String,
    },
}

impl From<ProfileError> for Error {
    fn from(error: ProfileError) -> Self {
        let hint = match &error {
            ProfileError::Unknown(_) => format!(
                "built-in profiles: {}; or give the path of a TOML profile (see docs/profiles.md)",
                builtin_names().join(", ")
            ),
            ProfileError::Read { .. } => "check the path and permissions of the profile file".to_owned(),
            ProfileError::Invalid { reason, .. } if reason.contains("starts with PVE") => {
                "choose a role name that does not start with PVE (reserved for built-in roles since PVE 8.0), e.g. \
                 Token-<profile>"
                    .to_owned()
            }
            ProfileError::Invalid { .. } => "fix the profile file; docs/profiles.md describes its format".to_owned(),
        };
        Error::usage(error.to_string()).with_hint(hint)
    }
}

/// Names of the built-in profiles.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

/// Loads a built-in profile by name, or a user-defined one from a `.toml` path.
pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
    if let Some((_, text)) = BUILTIN.iter().find(|(name, _)| *name == name_or_path) {
        return parse(name_or_path, text);
    }
    let looks_like_path = name_or_path.contains('/') || name_or_path.ends_with(".toml");
    if looks_like_path || Path::new(name_or_path).is_file() {
        let text = std::fs::read_to_string(name_or_path)
            .map_err(|error| ProfileError::Read { path: name_or_path.to_owned(), reason: error.to_string() })?;
        return parse(name_or_path, &text);
    }
    Err(ProfileError::Unknown(name_or_path.to_owned()))
}

/// Parses and validates a profile.
pub fn parse(origin: &str, text: &str) -> Result<Profile, ProfileError> {
    let profile: Profile = toml::from_str(text)
        .map_err(|error| ProfileError::Invalid { name: origin.to_owned(), reason: error.to_string() })?;
    let invalid = |reason: String| ProfileError::Invalid { name: origin.to_owned(), reason };
    if !is_token_name(&profile.name) {
        return Err(invalid(format!(
            "name `{}` must start with a letter and contain only letters, digits, `.`, `-`, `_` (it is the default \
             token name)",
            profile.name
        )));
    }
    validate_role_name(&profile.role_name()).map_err(invalid)?;
    if profile.grants.is_empty() {
        return Err(invalid("it grants nothing: add at least one [[grant]]".to_owned()));
    }
    // Checked here, before anything touches a server: a bad path or privilege would otherwise be found by
    // `PUT /access/acl` after the token was created (and every rerun would fail the same way).
    let newest = pvetoken_acl::Catalog::newest();
    for grant in &profile.grants {
        if !grant.path.starts_with('/') {
            return Err(invalid(format!("path `{}` must start with /", grant.path)));
        }
        let sample = grant.path.replace("{storage}", "local").replace("{bridge}", "vmbr0").replace("{node}", "pve");
        let allowed = sample.parse::<pvetoken_acl::AclPath>().is_ok_and(|path| newest.acl_path_allowed(&path));
        if !allowed {
            return Err(invalid(format!(
                "path `{}` is not an ACL path PVE accepts (e.g. /vms/100, /storage/local, /nodes/pve, /pool/NAME, \
                 /sdn/zones/localnetwork/vmbr0)",
                grant.path
            )));
        }
        for need in &grant.privileges {
            if need.name.is_empty() || !need.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                return Err(invalid(format!("`{}` is not a privilege name", need.name)));
            }
            if !pvetoken_acl::Catalog::all_privilege_names().contains(&need.name.as_str()) {
                return Err(invalid(format!(
                    "`{}` on `{}` is not a privilege of any PVE release pvetoken knows (see `pveum role list`; \
                     names are case-sensitive, e.g. VM.Config.Disk)",
                    need.name, grant.path
                )));
            }
        }
    }
    Ok(profile)
}

/// A PVE token name (`token_subid_regex`): a letter, then letters, digits, `.`, `-`, `_`; at least 2 characters.
pub fn is_token_name(name: &str) -> bool {
    name.parse::<pvetoken_acl::TokenName>().is_ok()
}

/// Checks a custom role name: PVE's role id characters, and not in the reserved `PVE` namespace.
pub fn validate_role_name(role: &str) -> Result<(), String> {
    if role.is_empty() || !role.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
        return Err(format!("role name `{role}` may contain only letters, digits, `.`, `-`, `_`"));
    }
    if role.get(..3).is_some_and(|prefix| prefix.eq_ignore_ascii_case("pve")) {
        return Err(format!(
            "role name `{role}` starts with PVE, a namespace reserved for built-in roles (PVE 8.0+ refuses it)"
        ));
    }
    Ok(())
}

impl Profile {
    /// The custom role's name.
    pub fn role_name(&self) -> String {
        self.role.clone().unwrap_or_else(|| format!("Token-{}", self.name))
    }

    /// Resolves the profile for `version` and `narrowing` (with an optional role-name override).
    pub fn resolve(&self, version: PveVersion, narrowing: &Narrowing, role: Option<&str>) -> Resolved {
        let mut paths: BTreeMap<(String, bool), BTreeMap<String, String>> = BTreeMap::new();
        for grant in &self.grants {
            let needs: Vec<&PrivilegeNeed> = grant
                .privileges
                .iter()
                .filter(|need| need.since.is_none_or(|since| version >= since))
                .filter(|need| need.before.is_none_or(|before| version < before))
                .collect();
            if needs.is_empty() {
                continue;
            }
            for path in expand_path(grant, narrowing) {
                let entry = paths.entry((path, grant.propagate)).or_default();
                for need in &needs {
                    entry.entry(need.name.clone()).or_insert_with(|| need.reason.clone());
                }
            }
        }
        Resolved {
            profile: self.name.clone(),
            role: role.map_or_else(|| self.role_name(), str::to_owned),
            version,
            paths: paths
                .into_iter()
                .map(|((path, propagate), privileges)| ResolvedPath { path, propagate, privileges })
                .collect(),
        }
    }
}

fn expand_path(grant: &Grant, narrowing: &Narrowing) -> Vec<String> {
    if grant.pool_narrowable
        && let Some(pool) = &narrowing.pool
    {
        return vec![format!("/pool/{pool}")];
    }
    let mut paths = vec![grant.path.clone()];
    for (placeholder, values) in
        [("{storage}", &narrowing.storages), ("{node}", &narrowing.nodes), ("{bridge}", &narrowing.bridges)]
    {
        let mut next = Vec::new();
        for path in paths {
            if !path.contains(placeholder) {
                next.push(path);
            } else if values.is_empty() {
                let cut = path.find(placeholder).unwrap_or(path.len());
                let trimmed = path[..cut].trim_end_matches('/');
                next.push(if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() });
            } else {
                next.extend(values.iter().map(|value| path.replace(placeholder, value)));
            }
        }
        paths = next;
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::{Narrowing, PveVersion, builtin_names, load, parse};

    fn v(text: &str) -> PveVersion {
        PveVersion::parse(text).expect("version")
    }

    #[test]
    fn every_builtin_profile_parses_and_its_role_avoids_the_pve_namespace() {
        for name in builtin_names() {
            let profile = load(name).expect("built-in profile parses");
            assert!(!profile.role_name().to_ascii_lowercase().starts_with("pve"), "{name}");
            for version in ["8.4", "9.1"] {
                assert!(!profile.resolve(v(version), &Narrowing::default(), None).paths.is_empty());
            }
        }
    }

    #[test]
    fn packer_reads_the_ip_with_vm_monitor_on_8_and_guest_agent_audit_on_9() {
        let packer = load("packer").expect("packer");
        let on8 = packer.resolve(v("8.4"), &Narrowing::default(), None).role_privileges();
        let on9 = packer.resolve(v("9.1"), &Narrowing::default(), None).role_privileges();
        assert!(on8.contains(&"VM.Monitor".to_owned()) && !on8.contains(&"VM.GuestAgent.Audit".to_owned()));
        assert!(on9.contains(&"VM.GuestAgent.Audit".to_owned()) && !on9.contains(&"VM.Monitor".to_owned()));
    }

    #[test]
    fn privatebox_adds_what_the_seed_lacked_iso_upload_and_bridge_use() {
        let privatebox = load("privatebox").expect("privatebox");
        for version in ["8.4", "9.1"] {
            let resolved = privatebox.resolve(v(version), &Narrowing::default(), None);
            let storage = resolved.paths.iter().find(|p| p.path == "/storage").expect("storage path");
            assert!(storage.privileges.contains_key("Datastore.AllocateTemplate"));
            let sdn = resolved.paths.iter().find(|p| p.path == "/sdn/zones/localnetwork").expect("sdn path");
            assert!(sdn.privileges.contains_key("SDN.Use"));
        }
    }

    #[test]
    fn narrowing_replaces_broad_paths_by_the_named_pool_storages_and_bridge() {
        let narrowing = Narrowing {
            pool: Some("ci".into()),
            storages: vec!["local".into(), "local-lvm".into()],
            nodes: vec![],
            bridges: vec!["vmbr1".into()],
        };
        let resolved = load("privatebox").expect("privatebox").resolve(v("9.1"), &narrowing, None);
        let paths: Vec<&str> = resolved.paths.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/nodes", "/pool/ci", "/sdn/zones/localnetwork/vmbr1", "/storage/local", "/storage/local-lvm"]
        );
    }

    #[test]
    fn a_user_profile_with_a_pve_role_name_is_refused() {
        let text = "name = \"mine\"\ndescription = \"x\"\nrole = \"PVEMine\"\n[[grant]]\npath = \"/vms\"\n\
                    privileges = [{ name = \"VM.Audit\", reason = \"look\" }]\n";
        let error = parse("mine.toml", text).expect_err("PVE prefix");
        assert!(error.to_string().contains("starts with PVE"), "{error}");
    }

    #[test]
    fn an_unknown_profile_name_is_an_error() {
        assert!(load("no-such-profile").is_err());
    }
}
