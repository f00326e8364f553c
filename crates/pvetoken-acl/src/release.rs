//! Proxmox VE releases as they shipped, and the libpve-access-control version that decides what each can do.
//!
//! Packages on a Proxmox VE host are upgraded one by one, so the release (pve-manager's version, what
//! `GET /version` reports) never proves what libpve-access-control does. The [`Catalog`](crate::Catalog) is
//! therefore keyed by the access-control version whose behaviour it reproduces; a release only names the version
//! it shipped with. Every feature that changed is listed in [`FEATURES`] with the package version that brought
//! it and the changelog entry it was read from.
//!
//! Sources: `debian/changelog` of proxmox/pve-access-control (the feature entries and their dates) and of
//! proxmox/pve-manager (the release dates); the access-control version of a release is the newest one published
//! before that pve-manager point release. The other package versions in [`Release`] are representative of the
//! release, for the lab's `GET /nodes/{node}/apt/versions`; only libpve-access-control decides behaviour.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A Proxmox VE release, `major.minor`. Parses `"9"`, `"8.4"`, `"9.2"`, `"7.4"`, also `"8.4.1"` (the patch level
/// is ignored). A bare major means its newest minor we know (`7` = 7.4, `8` = 8.4, `9` = 9.2). The default is the
/// newest, 9.2. Only releases in [`RELEASES`] parse; a live server newer than those is read with
/// [`PveVersion::of_server`], which says what it assumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PveVersion {
    /// Major release (7, 8 or 9).
    pub major: u8,
    /// Minor release.
    pub minor: u8,
}

/// A version string pvetoken does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PVE release '{0}': pvetoken knows {known} (or a bare major: 7, 8, 9)", known = known_list())]
pub struct VersionError(pub String);

impl PveVersion {
    /// The newest release pvetoken knows (9.2).
    pub const NEWEST: PveVersion = PveVersion { major: 9, minor: 2 };
    /// Newest 7.x.
    pub const V7_4: PveVersion = PveVersion { major: 7, minor: 4 };
    /// Newest 8.x.
    pub const V8_4: PveVersion = PveVersion { major: 8, minor: 4 };
    /// 9.0.
    pub const V9_0: PveVersion = PveVersion { major: 9, minor: 0 };
    /// 9.1 as shipped before May 2026 (access-control 9.0.x: no token regenerate).
    pub const V9_1: PveVersion = PveVersion { major: 9, minor: 1 };
    /// 9.2.
    pub const V9_2: PveVersion = PveVersion { major: 9, minor: 2 };

    /// Builds a version, checking that pvetoken knows it.
    pub fn new(major: u8, minor: u8) -> Result<PveVersion, VersionError> {
        let version = PveVersion { major, minor };
        if release(version).is_some() { Ok(version) } else { Err(VersionError(format!("{major}.{minor}"))) }
    }

    /// The release of a live server from `GET /version`'s `version` (`9.2.0`, `8.4.1`, `7.4-17`), with the
    /// assumption made when it is not one pvetoken knows: a newer release is read as the newest known one, an
    /// unreadable string as the oldest (the conservative feature set).
    pub fn of_server(version: &str) -> (PveVersion, Option<String>) {
        let mut parts = version.trim().split(['.', '-']);
        let parsed = (|| {
            let major: u8 = parts.next()?.parse().ok()?;
            let minor: u8 = parts.next()?.parse().ok()?;
            Some(PveVersion { major, minor })
        })();
        let oldest = RELEASES[0].version;
        match parsed {
            Some(v) if release(v).is_some() => (v, None),
            Some(v) if v > PveVersion::NEWEST => (
                PveVersion::NEWEST,
                Some(format!(
                    "PVE {version} is newer than any release pvetoken knows; assuming it behaves as {}",
                    PveVersion::NEWEST
                )),
            ),
            _ => (
                oldest,
                Some(format!(
                    "cannot read the PVE release from '{version}'; assuming the oldest known ({oldest}) and its \
                     feature set"
                )),
            ),
        }
    }
}

impl Default for PveVersion {
    fn default() -> Self {
        PveVersion::NEWEST
    }
}

impl FromStr for PveVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, VersionError> {
        let err = || VersionError(s.to_owned());
        let mut parts = s.trim().split('.');
        let major: u8 = parts.next().ok_or_else(err)?.parse().map_err(|_| err())?;
        let minor = match parts.next() {
            None => match major {
                7 => 4,
                8 => 4,
                9 => 2,
                _ => return Err(err()),
            },
            Some(minor) => minor.parse().map_err(|_| err())?,
        };
        if let Some(patch) = parts.next() {
            patch.parse::<u16>().map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        PveVersion::new(major, minor).map_err(|_| err())
    }
}

impl fmt::Display for PveVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl serde::Serialize for PveVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PveVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A libpve-access-control version, compared by its numeric `major.minor.patch` (`7.4-3` is 7.4.3; Debian
/// epochs, revisions and `~` suffixes are read past).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessControlVersion {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Patch (the Debian revision in 7.x's `7.4-3`).
    pub patch: u16,
}

impl AccessControlVersion {
    /// `major.minor.patch`.
    pub const fn new(major: u16, minor: u16, patch: u16) -> AccessControlVersion {
        AccessControlVersion { major, minor, patch }
    }

    /// Reads the leading numbers of a Debian version: `9.1.1`, `7.4-3`, `1:9.1.1-2~bpo12`, `8.0.0~1`.
    pub fn parse_debian(version: &str) -> Option<AccessControlVersion> {
        let upstream = version.trim().split_once(':').map_or(version.trim(), |(_, rest)| rest);
        let mut parts = upstream.split(['.', '-', '~', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |part| part.parse().ok())?;
        let patch = parts.next().and_then(|part| part.parse().ok()).unwrap_or(0);
        Some(AccessControlVersion { major, minor, patch })
    }

    fn key(self) -> (u16, u16, u16) {
        (self.major, self.minor, self.patch)
    }
}

impl PartialOrd for AccessControlVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AccessControlVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl fmt::Display for AccessControlVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 7.x used Debian revisions (`7.4-3`); 8.0 switched to three numbers.
        if self.major < 8 {
            write!(f, "{}.{}-{}", self.major, self.minor, self.patch)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        }
    }
}

impl FromStr for AccessControlVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AccessControlVersion::parse_debian(s).ok_or_else(|| format!("invalid libpve-access-control version '{s}'"))
    }
}

/// An access-control behaviour that changed between package versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `Sys.Incoming` exists.
    SysIncoming,
    /// Role ids starting with `PVE` are refused; ACL changes without `Permissions.Modify` are limited to what the
    /// caller holds; `Mapping.*`, `SDN.Use` and `/mapping` paths exist.
    Pve8AccessModel,
    /// `/sdn/controllers`, `/sdn/dns`, `/sdn/ipams` paths and nested pools (up to three levels).
    NestedPools,
    /// `Sys.AccessNetwork` exists.
    SysAccessNetwork,
    /// Changing a password (`PUT /access/password`) needs the caller's own password as `confirmation-password`
    /// (root excepted).
    PasswordConfirmation,
    /// `GET /access/permissions` lets a user read its own permissions and its tokens'; new passwords need 8
    /// characters.
    PermissionsSelfRule,
    /// `/sdn/fabrics` paths.
    SdnFabrics,
    /// `VM.Monitor` gone, `VM.GuestAgent.*` added.
    GuestAgentPrivileges,
    /// `VM.Replicate` exists.
    VmReplicate,
    /// `PUT` on a token accepts `delete=comment` (and an empty comment removes it).
    TokenDeleteComment,
    /// `PUT` on a token accepts `regenerate=1`: a new secret, same token id and ACLs.
    TokenRegenerate,
    /// `/sdn/prefix-lists` and `/sdn/route-maps` paths.
    SdnRouting,
}

/// (feature, first libpve-access-control version with it, the changelog entry).
pub const FEATURES: &[(Feature, AccessControlVersion, &str)] = &[
    (Feature::SysIncoming, AccessControlVersion::new(7, 2, 5), "7.2-5: privs: add Sys.Incoming"),
    (
        Feature::Pve8AccessModel,
        AccessControlVersion::new(8, 0, 0),
        "8.0.0~2/8.0.0: restrict less-privileged ACL modifications; forbid new roles starting with \"PVE\"; \
         mapping privileges and paths; SDN.Use",
    ),
    (
        Feature::NestedPools,
        AccessControlVersion::new(8, 0, 7),
        "8.0.7: fix #1148: allow up to three levels of pool nesting",
    ),
    (Feature::SysAccessNetwork, AccessControlVersion::new(8, 1, 2), "8.1.2: add Sys.AccessNetwork privilege"),
    (
        Feature::PasswordConfirmation,
        AccessControlVersion::new(8, 1, 3),
        "8.1.3: user: password change: require confirmation-password parameter",
    ),
    (
        Feature::PermissionsSelfRule,
        AccessControlVersion::new(8, 2, 0),
        "8.2.0: api: permissions: allow users to view their own permissions / check their own tokens; \
         enforce a minimum length of 8 on new passwords",
    ),
    (Feature::SdnFabrics, AccessControlVersion::new(9, 0, 1), "9.0.1: permissions: add ACL paths for SDN fabrics"),
    (
        Feature::GuestAgentPrivileges,
        AccessControlVersion::new(9, 0, 2),
        "9.0.2: privileges: drop VM.Monitor in favor of more granular VM.GuestAgent.* privileges",
    ),
    (Feature::VmReplicate, AccessControlVersion::new(9, 0, 3), "9.0.3: add VM.Replicate privilege"),
    (
        Feature::TokenDeleteComment,
        AccessControlVersion::new(9, 0, 4),
        "9.0.4: api: token: add delete parameter for comment",
    ),
    (
        Feature::TokenRegenerate,
        AccessControlVersion::new(9, 1, 0),
        "9.1.0 (2026-05-06): api: token: support regenerating the secret on update",
    ),
    (
        Feature::SdnRouting,
        AccessControlVersion::new(9, 1, 0),
        "9.1.0: permissions: add ACL paths for SDN prefix-lists and route-maps",
    ),
];

/// The first access-control version with `feature`.
pub fn since(feature: Feature) -> AccessControlVersion {
    FEATURES
        .iter()
        .find(|(f, _, _)| *f == feature)
        .map(|(_, version, _)| *version)
        .expect("every feature is in FEATURES")
}

/// One Proxmox VE release as a point release shipped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The release (`--pve-version`).
    pub version: PveVersion,
    /// pve-manager point release simulated (`GET /version`'s `version`).
    pub manager: &'static str,
    /// Its date (pve-manager `debian/changelog`).
    pub date: &'static str,
    /// libpve-access-control shipped with it: the newest published before `date`.
    pub access_control: AccessControlVersion,
    /// Representative qemu-server, pve-qemu-kvm and proxmox-ve versions of the release.
    pub qemu_server: &'static str,
    /// pve-qemu-kvm.
    pub pve_qemu_kvm: &'static str,
    /// The proxmox-ve meta package.
    pub proxmox_ve: &'static str,
    /// What the release is, for `--help` and errors.
    pub note: &'static str,
}

const fn pac(major: u16, minor: u16, patch: u16) -> AccessControlVersion {
    AccessControlVersion::new(major, minor, patch)
}

const fn v(major: u8, minor: u8) -> PveVersion {
    PveVersion { major, minor }
}

/// Every release pvetoken knows, oldest first. Access-control versions: 7.0-4 (2021-07-02), 7.1-4 (2021-11-22),
/// 7.1-8 (2022-04-28), 7.2-5 (2022-11-17), 7.4-3 (2023-05-16), 8.0.4 (2023-07-20), 8.0.7 (2023-11-20), 8.1.4
/// (2024-04-22), 8.2.0 (2024-11-13), 8.2.2 (2025-04-08), 9.0.3 (2025-07-30), 9.0.4 (2025-11-14), 9.1.1
/// (2026-05-15); each is the newest published before the pve-manager point release beside it.
pub const RELEASES: &[Release] = &[
    Release {
        version: v(7, 0),
        manager: "7.0-11",
        date: "2021-08-05",
        access_control: pac(7, 0, 4),
        qemu_server: "7.0-13",
        pve_qemu_kvm: "6.0.0-3",
        proxmox_ve: "7.0-2",
        note: "Debian 11",
    },
    Release {
        version: v(7, 1),
        manager: "7.1-7",
        date: "2021-11-24",
        access_control: pac(7, 1, 4),
        qemu_server: "7.1-4",
        pve_qemu_kvm: "6.1.0-3",
        proxmox_ve: "7.1-1",
        note: "Debian 11",
    },
    Release {
        version: v(7, 2),
        manager: "7.2-3",
        date: "2022-05-04",
        access_control: pac(7, 1, 8),
        qemu_server: "7.2-2",
        pve_qemu_kvm: "6.2.0-5",
        proxmox_ve: "7.2-1",
        note: "Debian 11",
    },
    Release {
        version: v(7, 3),
        manager: "7.3-3",
        date: "2022-11-21",
        access_control: pac(7, 2, 5),
        qemu_server: "7.3-1",
        pve_qemu_kvm: "7.1.0-4",
        proxmox_ve: "7.3-1",
        note: "Debian 11",
    },
    Release {
        version: v(7, 4),
        manager: "7.4-4",
        date: "2023-05-28",
        access_control: pac(7, 4, 3),
        qemu_server: "7.4-3",
        pve_qemu_kvm: "7.2.0-8",
        proxmox_ve: "7.4-1",
        note: "Debian 11, the last 7.x",
    },
    Release {
        version: v(8, 0),
        manager: "8.0.4",
        date: "2023-08-01",
        access_control: pac(8, 0, 4),
        qemu_server: "8.0.6",
        pve_qemu_kvm: "8.0.2-3",
        proxmox_ve: "8.0.1",
        note: "Debian 12",
    },
    Release {
        version: v(8, 1),
        manager: "8.1.3",
        date: "2023-11-23",
        access_control: pac(8, 0, 7),
        qemu_server: "8.0.10",
        pve_qemu_kvm: "8.1.2-4",
        proxmox_ve: "8.1.0",
        note: "Debian 12, nested pools",
    },
    Release {
        version: v(8, 2),
        manager: "8.2.2",
        date: "2024-04-23",
        access_control: pac(8, 1, 4),
        qemu_server: "8.2.1",
        pve_qemu_kvm: "8.1.5-5",
        proxmox_ve: "8.2.0",
        note: "Debian 12",
    },
    Release {
        version: v(8, 3),
        manager: "8.3.0",
        date: "2024-11-20",
        access_control: pac(8, 2, 0),
        qemu_server: "8.3.0",
        pve_qemu_kvm: "9.0.2-4",
        proxmox_ve: "8.3.0",
        note: "Debian 12, own-permission reads",
    },
    Release {
        version: v(8, 4),
        manager: "8.4.1",
        date: "2025-04-10",
        access_control: pac(8, 2, 2),
        qemu_server: "8.3.12",
        pve_qemu_kvm: "9.2.0-5",
        proxmox_ve: "8.4.0",
        note: "Debian 12, the last 8.x",
    },
    Release {
        version: v(9, 0),
        manager: "9.0.3",
        date: "2025-08-05",
        access_control: pac(9, 0, 3),
        qemu_server: "9.0.16",
        pve_qemu_kvm: "10.0.2-4",
        proxmox_ve: "9.0.0",
        note: "Debian 13, VM.GuestAgent.* instead of VM.Monitor",
    },
    Release {
        version: v(9, 1),
        manager: "9.1.1",
        date: "2025-11-18",
        access_control: pac(9, 0, 4),
        qemu_server: "9.1.0",
        pve_qemu_kvm: "10.1.2-1",
        proxmox_ve: "9.1.0",
        note: "Debian 13, before May 2026: access-control 9.0.x, no token regenerate \
               (pve-manager 9.1.13+ requires access-control 9.1.1 and can regenerate)",
    },
    Release {
        version: v(9, 2),
        manager: "9.2.0",
        date: "2026-05-20",
        access_control: pac(9, 1, 1),
        qemu_server: "9.2.0",
        pve_qemu_kvm: "10.2.1-1",
        proxmox_ve: "9.2.0",
        note: "Debian 13, the current release: token regenerate",
    },
];

/// The release `version` names (`None` for a release pvetoken does not know).
pub fn release(version: PveVersion) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.version == version)
}

/// The newest release pvetoken knows.
pub fn newest() -> &'static Release {
    RELEASES.last().expect("RELEASES is not empty")
}

/// `7.0, 7.1, ..., 9.2`, for errors and `--help`.
pub fn known_list() -> String {
    RELEASES.iter().map(|r| r.version.to_string()).collect::<Vec<_>>().join(", ")
}

/// The access-control version a pve-manager point release guarantees: the dependency pve-manager declares in
/// `debian/control` (`>= 9.0.7~` from 9.1.8, `>= 9.1.1~` from 9.1.13), else the version its release shipped.
/// A host may have upgraded the package further: only `GET /nodes/{node}/apt/versions` tells.
pub fn access_control_at_least(manager: &str) -> Option<AccessControlVersion> {
    let version = AccessControlVersion::parse_debian(manager)?;
    let release_of = |major: u8, minor: u8| release(v(major, minor)).map(|r| r.access_control);
    let (major, minor) = (u8::try_from(version.major).ok()?, u8::try_from(version.minor).ok()?);
    match (major, minor, version.patch) {
        (9, 1, p) if p >= 13 => Some(pac(9, 1, 1)),
        (9, 1, p) if p >= 8 => Some(pac(9, 0, 7)),
        _ => release_of(major, minor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_versions_compare_numerically() {
        let p = |s: &str| AccessControlVersion::parse_debian(s).expect(s);
        assert!(p("7.4-3") < p("7.99.0"));
        assert!(p("8.0.10") > p("8.0.9"));
        assert!(p("1:9.1.1-2~bpo12") == p("9.1.1"));
        assert_eq!(p("8.0.0~1"), pac(8, 0, 0));
        assert_eq!(p("7.4-3").to_string(), "7.4-3");
        assert_eq!(p("9.1.0").to_string(), "9.1.0");
        assert_eq!(AccessControlVersion::parse_debian("x.1"), None);
        assert_eq!(AccessControlVersion::parse_debian(""), None);
    }

    #[test]
    fn releases_are_ordered_and_never_go_back_in_access_control() {
        for pair in RELEASES.windows(2) {
            assert!(pair[0].version < pair[1].version);
            assert!(pair[0].access_control <= pair[1].access_control);
            assert!(pair[0].date < pair[1].date);
        }
    }

    #[test]
    fn manager_point_releases_map_to_their_declared_access_control() {
        assert_eq!(access_control_at_least("9.1.1"), Some(pac(9, 0, 4)));
        assert_eq!(access_control_at_least("9.1.9"), Some(pac(9, 0, 7)));
        assert_eq!(access_control_at_least("9.1.12"), Some(pac(9, 0, 7)));
        assert_eq!(access_control_at_least("9.1.13"), Some(pac(9, 1, 1)));
        assert_eq!(access_control_at_least("9.2.0"), Some(pac(9, 1, 1)));
        assert_eq!(access_control_at_least("10.0.0"), None);
    }
}
