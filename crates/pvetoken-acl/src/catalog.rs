//! Privilege sets and the per-release catalog of privileges, built-in roles and path rules (the releases
//! themselves and [`PveVersion`] are `release.rs`).

use std::collections::BTreeMap;

use crate::catalog_data::{self, ALL_PRIVILEGES, ReleaseData};
use crate::ids::{AclPath, IdError, PoolId, Privilege, RoleId};
use crate::release::{self, AccessControlVersion, Feature, PveVersion};

/// A set of privileges (a bitset over [`Privilege`]); iterates in name order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PrivSet(pub(crate) u64);

impl PrivSet {
    /// No privileges.
    pub const EMPTY: PrivSet = PrivSet(0);

    /// True when empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when `privilege` is in the set.
    pub fn contains(self, privilege: Privilege) -> bool {
        self.0 & privilege.bit() != 0
    }

    /// Adds `privilege`.
    pub fn insert(&mut self, privilege: Privilege) {
        self.0 |= privilege.bit();
    }

    /// Removes `privilege`.
    pub fn remove(&mut self, privilege: Privilege) {
        self.0 &= !privilege.bit();
    }

    /// Union.
    #[must_use]
    pub fn union(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 | other.0)
    }

    /// Intersection.
    #[must_use]
    pub fn intersection(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 & other.0)
    }

    /// Privileges of `self` not in `other`.
    #[must_use]
    pub fn difference(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 & !other.0)
    }

    /// True when every privilege of `self` is in `other`.
    pub fn is_subset(self, other: PrivSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// Number of privileges.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The privileges, in name order.
    pub fn iter(self) -> impl Iterator<Item = Privilege> {
        Privilege::all().filter(move |p| self.contains(*p))
    }

    /// Names joined by `,` (the user.cfg and API form).
    pub fn join(self) -> String {
        self.iter().map(Privilege::as_str).collect::<Vec<_>>().join(",")
    }
}

impl FromIterator<Privilege> for PrivSet {
    fn from_iter<T: IntoIterator<Item = Privilege>>(iter: T) -> Self {
        let mut set = PrivSet::EMPTY;
        for p in iter {
            set.insert(p);
        }
        set
    }
}

/// What one PVE release knows: valid privileges, built-in roles, which ACL paths and pool ids the API accepts,
/// and the access-API behaviours that changed between releases.
#[derive(Debug, Clone)]
pub struct Catalog {
    version: PveVersion,
    access_control: AccessControlVersion,
    privileges: PrivSet,
    builtin: BTreeMap<RoleId, PrivSet>,
    rules: PathRules,
}

/// Which `check_path` / `verify_poolname` generation applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathRules {
    /// pac 7.x: `/sdn/zones/<z>` and `/sdn/vnets/<v>`, flat pools.
    Pve7,
    /// pac 8.0.x: `/mapping`, nested SDN zones, flat pools.
    Pve80,
    /// pac 8.0.7: nested pools, SDN controllers, dns, ipams (the SDN paths came in 8.0.6, one version earlier;
    /// no release shipped 8.0.6).
    Pve82,
    /// pac 9.0.1: + `/sdn/fabrics`.
    Pve90,
    /// pac 9.1.0: + `/sdn/prefix-lists`, `/sdn/route-maps`.
    Pve91,
}

impl Catalog {
    /// The catalog of `version` as it shipped (its libpve-access-control from [`release::RELEASES`]).
    pub fn for_version(version: PveVersion) -> Catalog {
        let shipped = release::release(version).unwrap_or_else(release::newest).access_control;
        Catalog::for_release(version, shipped)
    }

    /// The catalog of a host running `access_control` (the release is then the newest one that shipped that
    /// version or an older one; it matters only for display).
    pub fn for_access_control(access_control: AccessControlVersion) -> Catalog {
        let version = release::RELEASES
            .iter()
            .rev()
            .find(|r| r.access_control <= access_control)
            .unwrap_or(&release::RELEASES[0])
            .version;
        Catalog::for_release(version, access_control)
    }

    /// This catalog with another libpve-access-control (a host that upgraded the package on its own, or a lab
    /// scenario that overrides it).
    #[must_use]
    pub fn with_access_control(self, access_control: AccessControlVersion) -> Catalog {
        Catalog::for_release(self.version, access_control)
    }

    /// `version` running `access_control`: behaviour follows the package, never the release number.
    pub fn for_release(version: PveVersion, access_control: AccessControlVersion) -> Catalog {
        let has = |feature| access_control >= release::since(feature);
        let data: &ReleaseData = if has(Feature::GuestAgentPrivileges) {
            &catalog_data::PAC_9_1_1
        } else if has(Feature::SysAccessNetwork) {
            &catalog_data::PAC_8_2_2
        } else if has(Feature::Pve8AccessModel) {
            &catalog_data::PAC_8_0_0
        } else if has(Feature::SysIncoming) {
            &catalog_data::PAC_7_4_3
        } else {
            &catalog_data::PAC_7_0_4
        };
        let rules = if has(Feature::SdnRouting) {
            PathRules::Pve91
        } else if has(Feature::SdnFabrics) {
            PathRules::Pve90
        } else if has(Feature::NestedPools) {
            PathRules::Pve82
        } else if has(Feature::Pve8AccessModel) {
            PathRules::Pve80
        } else {
            PathRules::Pve7
        };
        let parse = |names: &[&str]| -> PrivSet { names.iter().filter_map(|n| n.parse::<Privilege>().ok()).collect() };
        let builtin =
            data.roles.iter().filter_map(|(name, privs)| Some((name.parse::<RoleId>().ok()?, parse(privs)))).collect();
        Catalog { version, access_control, privileges: parse(data.privileges), builtin, rules }
    }

    /// True when this catalog's libpve-access-control has `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        self.access_control >= release::since(feature)
    }

    /// The newest release's catalog.
    pub fn newest() -> Catalog {
        Catalog::for_version(PveVersion::NEWEST)
    }

    /// The release this catalog describes.
    pub fn version(&self) -> PveVersion {
        self.version
    }

    /// The libpve-access-control version whose behaviour this catalog reproduces.
    pub fn access_control(&self) -> AccessControlVersion {
        self.access_control
    }

    /// Every valid privilege of this release (= the `Administrator` role).
    pub fn privileges(&self) -> PrivSet {
        self.privileges
    }

    /// True when this release knows `privilege`.
    pub fn knows(&self, privilege: Privilege) -> bool {
        self.privileges.contains(privilege)
    }

    /// Parses a privilege name valid in this release (`invalid privilege '<p>'` otherwise, Proxmox's wording).
    pub fn privilege(&self, name: &str) -> Result<Privilege, IdError> {
        match name.parse::<Privilege>() {
            Ok(p) if self.knows(p) => Ok(p),
            _ => Err(IdError::Privilege(name.to_owned())),
        }
    }

    /// Built-in roles ("special" roles: `Administrator`, `NoAccess`, `PVE*`) and their privileges.
    pub fn builtin_roles(&self) -> &BTreeMap<RoleId, PrivSet> {
        &self.builtin
    }

    /// The privileges of a built-in role, `None` for other names.
    pub fn builtin_role(&self, role: &str) -> Option<PrivSet> {
        self.builtin.get(role).copied()
    }

    /// True for a built-in role name (these cannot be created, modified or deleted).
    pub fn is_builtin_role(&self, role: &str) -> bool {
        self.builtin.contains_key(role)
    }

    /// True when new role ids may not start with `PVE` (case-insensitive): access-control 8.0.0 and later.
    pub fn reserves_pve_role_prefix(&self) -> bool {
        self.has(Feature::Pve8AccessModel)
    }

    /// True when PUT /access/acl without `Permissions.Modify` may only delegate privileges the caller holds and
    /// never `NoAccess` (PVE 8.0 and later; 7.x lets anyone passing the perm-modify check grant any role).
    pub fn restricts_acl_delegation(&self) -> bool {
        self.has(Feature::Pve8AccessModel)
    }

    /// True when GET /access/permissions lets a caller read its own permissions and those of its tokens with an
    /// explicit `userid` without `Sys.Audit` on `/access` (pac 8.2.0, PVE 8.3 and later).
    pub fn permissions_self_rule(&self) -> bool {
        self.has(Feature::PermissionsSelfRule)
    }

    /// True when PUT on a token accepts `delete=comment` and an empty comment removes it (pac 9.0.4, PVE 9.1).
    pub fn token_update_can_delete_comment(&self) -> bool {
        self.has(Feature::TokenDeleteComment)
    }

    /// True when PUT on a token accepts `regenerate=1` (pac 9.1.0: PVE 9.2, and 9.1 hosts that upgraded it).
    pub fn token_can_regenerate(&self) -> bool {
        self.has(Feature::TokenRegenerate)
    }

    /// True when `PUT /access/password` by anyone but root needs the caller's own password as
    /// `confirmation-password` (pac 8.1.3).
    pub fn password_change_needs_confirmation(&self) -> bool {
        self.has(Feature::PasswordConfirmation)
    }

    /// Minimum password length for realms storing passwords (8 since pac 8.2.0, 5 before).
    pub fn min_password_length(&self) -> usize {
        if self.has(Feature::PermissionsSelfRule) { 8 } else { 5 }
    }

    /// Checks a pool id against this release: nested pools (`a/b`) need pac 8.0.7 (PVE 8.1).
    pub fn check_pool_id(&self, pool: &PoolId) -> Result<(), IdError> {
        if self.rules < PathRules::Pve82 && pool.as_str().contains('/') {
            return Err(IdError::PoolId(pool.to_string()));
        }
        Ok(())
    }

    /// Proxmox's `check_path` for this release: may PUT /access/acl add an entry on `path`?
    pub fn acl_path_allowed(&self, path: &AclPath) -> bool {
        check_path(self.rules, path.as_str())
    }

    /// All privilege names in the order of bits (for tests and tools).
    pub fn all_privilege_names() -> &'static [&'static str] {
        &ALL_PRIVILEGES
    }
}

fn alnum_ext(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn alnum(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn check_path(rules: PathRules, path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let Some(rest) = path.strip_prefix('/') else { return false };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["access"] | ["access", "groups" | "realm"] | ["nodes"] | ["pool"] | ["storage"] | ["vms"] | ["sdn"] => true,
        ["access", "groups" | "realm", x] | ["nodes", x] | ["storage", x] => alnum_ext(x),
        ["pool", names @ ..] => {
            let max = if rules >= PathRules::Pve82 { 3 } else { 1 };
            names.len() <= max && names.iter().all(|n| alnum_ext(n))
        }
        ["vms", id] => {
            let b = id.as_bytes();
            b.len() >= 3 && (b'1'..=b'9').contains(&b[0]) && b.iter().all(u8::is_ascii_digit)
        }
        ["sdn", "zones", rest @ ..] => match (rules, rest) {
            (PathRules::Pve7, [z]) => alnum_ext(z),
            (PathRules::Pve7, _) => false,
            (_, []) => true,
            (_, [z]) => alnum_ext(z),
            (_, [z, v]) => alnum_ext(z) && alnum_ext(v),
            (_, [z, v, vlan]) => {
                let b = vlan.as_bytes();
                alnum_ext(z)
                    && alnum_ext(v)
                    && (1..=4).contains(&b.len())
                    && (b'1'..=b'9').contains(&b[0])
                    && b.iter().all(u8::is_ascii_digit)
            }
            _ => false,
        },
        ["sdn", "vnets", v] => rules == PathRules::Pve7 && alnum_ext(v),
        ["sdn", "controllers"] | ["sdn", "dns"] | ["sdn", "ipams"] => rules >= PathRules::Pve82,
        ["sdn", "controllers", x] => {
            rules >= PathRules::Pve82
                && !x.is_empty()
                && x.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }
        ["sdn", "dns" | "ipams", x] => rules >= PathRules::Pve82 && alnum(x),
        ["sdn", "fabrics"] => rules >= PathRules::Pve90,
        ["sdn", "fabrics", x] => rules >= PathRules::Pve90 && alnum(x),
        ["sdn", "prefix-lists" | "route-maps"] => rules >= PathRules::Pve91,
        ["sdn", "prefix-lists" | "route-maps", x] => rules >= PathRules::Pve91 && alnum(x),
        ["mapping"] => rules >= PathRules::Pve80,
        ["mapping", t] => rules >= PathRules::Pve80 && alnum_ext(t),
        ["mapping", t, id] => rules >= PathRules::Pve80 && alnum_ext(t) && alnum_ext(id),
        _ => false,
    }
}
