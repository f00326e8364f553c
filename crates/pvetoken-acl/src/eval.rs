//! The permission evaluator: Proxmox's `roles()` and `permissions()` (pve-access.md section 5), compiled for speed.
//!
//! [`Evaluator::new`] turns a [`UserCfg`] into an indexed ACL tree whose entries carry precomputed privilege
//! bitsets, so a query is a walk of a few nodes with bit operations. No global state, no clock: the evaluator only
//! borrows the configuration and the catalog.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use crate::catalog::{Catalog, PrivSet};
use crate::ids::{AclPath, Privilege, RoleId, Subject, TokenId, UserId};
use crate::usercfg::UserCfg;

/// Effective privileges on one path: each privilege present maps to its propagate flag (exactly what
/// GET /access/permissions?path=P reports: presence = granted, value = propagate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions {
    granted: PrivSet,
    propagate: PrivSet,
}

impl Permissions {
    /// Builds from the granted set and the subset whose flag is 1.
    pub fn new(granted: PrivSet, propagate: PrivSet) -> Permissions {
        Permissions { granted, propagate: propagate.intersection(granted) }
    }

    /// Granted privileges.
    pub fn granted(&self) -> PrivSet {
        self.granted
    }

    /// Granted privileges whose flag is 1.
    pub fn propagating(&self) -> PrivSet {
        self.propagate
    }

    /// True when nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.granted.is_empty()
    }

    /// True when `privilege` is granted.
    pub fn has(&self, privilege: Privilege) -> bool {
        self.granted.contains(privilege)
    }

    /// The flag of `privilege`: `None` = not granted, `Some(true)` = 1, `Some(false)` = 0.
    pub fn flag(&self, privilege: Privilege) -> Option<bool> {
        self.has(privilege).then(|| self.propagate.contains(privilege))
    }

    /// (privilege, propagate) in name order.
    pub fn iter(&self) -> impl Iterator<Item = (Privilege, bool)> + '_ {
        self.granted.iter().map(|p| (p, self.propagate.contains(p)))
    }
}

impl serde::Serialize for Permissions {
    /// As GET /access/permissions: `{"Priv": 0|1, ...}`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.granted.len()))?;
        for (p, flag) in self.iter() {
            map.serialize_entry(p.as_str(), &u8::from(flag))?;
        }
        map.end()
    }
}

/// Roles resolved at privilege level: privileges, those with flag 1, and whether (with which flag) `NoAccess` is
/// among the roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct RoleSet {
    privs: PrivSet,
    prop: PrivSet,
    no_access: Option<bool>,
}

impl RoleSet {
    fn union(self, other: RoleSet) -> RoleSet {
        RoleSet {
            privs: self.privs.union(other.privs),
            prop: self.prop.union(other.prop),
            no_access: match (self.no_access, other.no_access) {
                (None, x) | (x, None) => x,
                (Some(a), Some(b)) => Some(a || b),
            },
        }
    }

    /// Step 4 of `roles()`: `NoAccess` alone remains.
    fn collapse(self, no_access_privs: PrivSet) -> RoleSet {
        match self.no_access {
            Some(flag) => RoleSet {
                privs: no_access_privs,
                prop: if flag { no_access_privs } else { PrivSet::EMPTY },
                no_access: Some(flag),
            },
            None => self,
        }
    }
}

/// One subject's roles at one node: all of them (applies at the final path component) and the propagating
/// ones (apply below), precomputed as privilege sets.
#[derive(Debug, Clone, Copy)]
struct Grant {
    all: RoleSet,
    inherit: Option<RoleSet>,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, u32>,
    /// (subject index, grant), sorted by subject index: users and tokens share one index space.
    subjects: Vec<(u32, Grant)>,
    /// (group index, grant), sorted by group index.
    groups: Vec<(u32, Grant)>,
}

#[derive(Debug, Clone, Copy)]
struct TokenInfo {
    privsep: bool,
    owner: u32,
}

/// The compiled permission engine for one configuration and one PVE release.
#[derive(Debug)]
pub struct Evaluator<'a> {
    cfg: &'a UserCfg,
    catalog: &'a Catalog,
    nodes: Vec<Node>,
    subjects: HashMap<String, u32>,
    /// Per subject index: the groups (indices, sorted) whose member list contains it.
    member_of: Vec<Vec<u32>>,
    tokens: HashMap<u32, TokenInfo>,
    root: Option<u32>,
    /// Guest id → pool path (`/pool/<p>`).
    vm_pool: HashMap<u64, String>,
    /// Storage id → pool paths.
    storage_pools: HashMap<String, Vec<String>>,
    no_access_privs: PrivSet,
    all_privs: PrivSet,
}

fn roles_to_set(
    roles: &BTreeMap<RoleId, bool>,
    cfg: &UserCfg,
    catalog: &Catalog,
    only_propagating: bool,
) -> Option<RoleSet> {
    let mut set: Option<RoleSet> = None;
    for (role, &propagate) in roles {
        if only_propagating && !propagate {
            continue;
        }
        let privs = cfg.role_privileges(role.as_str(), catalog).unwrap_or_default();
        let one = RoleSet {
            privs,
            prop: if propagate { privs } else { PrivSet::EMPTY },
            no_access: (role.as_str() == "NoAccess").then_some(propagate),
        };
        set = Some(set.map_or(one, |s| s.union(one)));
    }
    set
}

fn grant(roles: &BTreeMap<RoleId, bool>, cfg: &UserCfg, catalog: &Catalog) -> Option<Grant> {
    let all = roles_to_set(roles, cfg, catalog, false)?;
    Some(Grant { all, inherit: roles_to_set(roles, cfg, catalog, true) })
}

/// Perl's `split("/", $path)` as `roles()` uses it: `/` is one empty component, trailing empty fields dropped.
fn perl_components(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = if path == "/" { "" } else { path.trim_end_matches('/') };
    let empty = trimmed.is_empty() && path != "/";
    trimmed.split('/').take(if empty { 0 } else { usize::MAX })
}

impl<'a> Evaluator<'a> {
    /// Compiles `cfg` for `catalog`'s release.
    pub fn new(cfg: &'a UserCfg, catalog: &'a Catalog) -> Evaluator<'a> {
        let mut subjects: HashMap<String, u32> = HashMap::default();
        let intern = |id: &str, subjects: &mut HashMap<String, u32>| -> u32 {
            let next = u32::try_from(subjects.len()).unwrap_or(u32::MAX);
            *subjects.entry(id.to_owned()).or_insert(next)
        };
        for user in cfg.users.keys() {
            intern(user.as_str(), &mut subjects);
        }
        let mut tokens = HashMap::default();
        for (token, info) in cfg.tokens() {
            let owner = intern(token.user_str(), &mut subjects);
            let idx = intern(token.as_str(), &mut subjects);
            tokens.insert(idx, TokenInfo { privsep: info.privsep, owner });
        }
        let group_index: HashMap<&str, u32> =
            cfg.groups.keys().enumerate().map(|(i, g)| (g.as_str(), u32::try_from(i).unwrap_or(u32::MAX))).collect();
        let mut member_pairs = Vec::new();
        for (gi, group) in cfg.groups.values().enumerate() {
            for member in &group.members {
                member_pairs.push((intern(member.as_str(), &mut subjects), u32::try_from(gi).unwrap_or(u32::MAX)));
            }
        }
        // ACL group entries may name groups that do not exist; they can never match, so they are skipped.
        let mut nodes: Vec<Node> = vec![Node::default()];
        for (key, acl_node) in &cfg.acl {
            let mut current = 0usize;
            for component in key {
                let existing = nodes[current].children.get(component.as_str()).copied();
                current = match existing {
                    Some(child) => child as usize,
                    None => {
                        let child = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
                        nodes.push(Node::default());
                        nodes[current].children.insert(component.as_str().into(), child);
                        child as usize
                    }
                };
            }
            let mut entries = Vec::new();
            for (user, roles) in &acl_node.users {
                if let Some(g) = grant(roles, cfg, catalog) {
                    entries.push((intern(user.as_str(), &mut subjects), g));
                }
            }
            for (token, roles) in &acl_node.tokens {
                if let Some(g) = grant(roles, cfg, catalog) {
                    entries.push((intern(token.as_str(), &mut subjects), g));
                }
            }
            entries.sort_by_key(|(i, _)| *i);
            let mut groups = Vec::new();
            for (group, roles) in &acl_node.groups {
                if let (Some(&gi), Some(g)) = (group_index.get(group.as_str()), grant(roles, cfg, catalog)) {
                    groups.push((gi, g));
                }
            }
            groups.sort_by_key(|(i, _)| *i);
            nodes[current].subjects = entries;
            nodes[current].groups = groups;
        }
        let mut member_of = vec![Vec::new(); subjects.len()];
        for (subject, group) in member_pairs {
            member_of[subject as usize].push(group);
        }
        for list in &mut member_of {
            list.sort_unstable();
            list.dedup();
        }
        let mut vm_pool = HashMap::default();
        let mut storage_pools: HashMap<String, Vec<String>> = HashMap::default();
        for (pool_id, pool) in &cfg.pools {
            for vm in &pool.vms {
                vm_pool.insert(*vm, format!("/pool/{pool_id}"));
            }
            for store in &pool.storage {
                storage_pools.entry(store.clone()).or_default().push(format!("/pool/{pool_id}"));
            }
        }
        let root = subjects.get("root@pam").copied();
        Evaluator {
            cfg,
            catalog,
            nodes,
            subjects,
            member_of,
            tokens,
            root,
            vm_pool,
            storage_pools,
            no_access_privs: catalog.builtin_role("NoAccess").unwrap_or_default(),
            all_privs: catalog.privileges(),
        }
    }

    /// The configuration evaluated.
    pub fn user_cfg(&self) -> &'a UserCfg {
        self.cfg
    }

    /// The catalog used.
    pub fn catalog(&self) -> &'a Catalog {
        self.catalog
    }

    /// `roles()` at privilege level for subject index `subject` on a raw path.
    fn walk(&self, subject: u32, is_token: bool, path: &str) -> RoleSet {
        let groups: &[u32] = if is_token { &[] } else { &self.member_of[subject as usize] };
        let mut current = RoleSet::default();
        let mut node = Some(0usize);
        let mut components = perl_components(path).peekable();
        while let Some(component) = components.next() {
            let last = components.peek().is_none();
            if !component.is_empty() {
                node = node.and_then(|n| self.nodes[n].children.get(component).map(|c| *c as usize));
            }
            let Some(n) = node else { continue };
            let n = &self.nodes[n];
            if let Ok(pos) = n.subjects.binary_search_by_key(&subject, |(i, _)| *i) {
                let g = n.subjects[pos].1;
                if let Some(set) = if last { Some(g.all) } else { g.inherit } {
                    current = set;
                    continue;
                }
            }
            if groups.is_empty() || n.groups.is_empty() {
                continue;
            }
            let mut new: Option<RoleSet> = None;
            let mut take = |g: &Grant| {
                if let Some(set) = if last { Some(g.all) } else { g.inherit } {
                    new = Some(new.map_or(set, |s| s.union(set)));
                }
            };
            if groups.len() <= n.groups.len() {
                for gi in groups {
                    if let Ok(pos) = n.groups.binary_search_by_key(gi, |(i, _)| *i) {
                        take(&n.groups[pos].1);
                    }
                }
            } else {
                for (gi, g) in &n.groups {
                    if groups.binary_search(gi).is_ok() {
                        take(g);
                    }
                }
            }
            if let Some(set) = new {
                current = set;
            }
        }
        current.collapse(self.no_access_privs)
    }

    /// Roles (as privilege sets) plus pool-derived roles, for a subject index evaluated as itself.
    fn compile(&self, subject: u32, is_token: bool, path: &str) -> Permissions {
        let mut roles = self.walk(subject, is_token, path);
        if roles.no_access.is_none() {
            let mut pool_roles: Option<RoleSet> = None;
            let mut add = |pool_path: &str| {
                let set = self.walk(subject, is_token, pool_path);
                // Pool roles matter through their privileges and NoAccess; a role without privileges changes nothing.
                if set.no_access.is_some() || !set.privs.is_empty() {
                    pool_roles = Some(pool_roles.map_or(set, |s| s.union(set)));
                }
            };
            if let Some(vmid) = path.strip_prefix("/vms/") {
                // Pool members are keyed by the canonical number: "0100" is not "/vms/100".
                let canonical = !vmid.is_empty()
                    && vmid.bytes().all(|b| b.is_ascii_digit())
                    && (vmid == "0" || !vmid.starts_with('0'));
                if let Some(pool) = vmid.parse::<u64>().ok().filter(|_| canonical).and_then(|id| self.vm_pool.get(&id))
                {
                    add(pool);
                }
            } else if let Some(pools) = path.strip_prefix("/storage/").and_then(|store| self.storage_pools.get(store)) {
                for pool in pools {
                    add(pool);
                }
            }
            if let Some(pool) = pool_roles {
                if pool.no_access.is_some() {
                    roles = RoleSet { privs: self.no_access_privs, prop: PrivSet::EMPTY, no_access: Some(false) };
                } else {
                    // Pool roles never propagate and do not change the flag of a role already present.
                    roles.privs = roles.privs.union(pool.privs);
                }
            }
        }
        Permissions::new(roles.privs, roles.prop)
    }

    /// Effective privileges of `subject` on `path`, as GET /access/permissions?path=PATH reports them.
    pub fn permissions(&self, subject: &Subject, path: &AclPath) -> Permissions {
        self.permissions_raw(subject, path.as_str())
    }

    /// Like [`permissions`](Self::permissions) for a path exactly as given to the API (not normalised): Proxmox
    /// evaluates the raw string, so `vms/100` (no leading slash) skips the ACLs on `/`, `/vms/100/` gets no pool
    /// roles, and `""` yields nothing (except for root@pam).
    pub fn permissions_raw(&self, subject: &Subject, path: &str) -> Permissions {
        match subject {
            Subject::User(user) => self.user_permissions(user.as_str(), path),
            Subject::Token(token) => self.token_permissions(token, path),
        }
    }

    fn user_permissions(&self, user: &str, path: &str) -> Permissions {
        if user == "root@pam" {
            return Permissions::new(self.all_privs, self.all_privs);
        }
        match self.subjects.get(user) {
            Some(&idx) => self.compile(idx, false, path),
            // A user nobody mentions has no entries and no groups.
            None => Permissions::default(),
        }
    }

    fn token_permissions(&self, token: &TokenId, path: &str) -> Permissions {
        let Some(&idx) = self.subjects.get(token.as_str()) else { return Permissions::default() };
        let Some(info) = self.tokens.get(&idx) else { return Permissions::default() };
        let owner = self.user_permissions(token.user_str(), path);
        if !info.privsep {
            return owner;
        }
        let own = self.compile(idx, true, path);
        if Some(info.owner) == self.root {
            // Privilege-separated tokens of root@pam get their own ACLs, without intersection.
            return own;
        }
        Permissions::new(own.granted.intersection(owner.granted), own.propagate.intersection(owner.propagate))
    }

    /// True when `subject` holds all of `privileges` on `path` (or any one of them when `any`), like Proxmox's
    /// `check`/`check_any`. An empty list is true unless `any`.
    pub fn has_privs(&self, subject: &Subject, path: &AclPath, privileges: &[Privilege], any: bool) -> bool {
        let perms = self.permissions(subject, path);
        if any { privileges.iter().any(|p| perms.has(*p)) } else { privileges.iter().all(|p| perms.has(*p)) }
    }

    /// The paths GET /access/permissions (without `path`) looks at: `/`, `/access`, `/access/groups`, `/nodes`,
    /// `/pool`, `/sdn`, `/storage`, `/vms`, every node of the ACL tree and every pool member path. Before PVE 8.1
    /// Proxmox listed `/pools` instead of `/pool` (fixed in pac 8.0.6).
    pub fn map_paths(&self) -> Vec<String> {
        let pool = if self.catalog.version() < (crate::PveVersion { major: 8, minor: 1 }) { "/pools" } else { "/pool" };
        let mut paths: std::collections::BTreeSet<String> =
            ["/", "/access", "/access/groups", "/nodes", pool, "/sdn", "/storage", "/vms"]
                .into_iter()
                .map(str::to_owned)
                .collect();
        for key in self.cfg.acl.keys() {
            paths.insert(if key.is_empty() { "/".to_owned() } else { format!("/{}", key.join("/")) });
        }
        for pool in self.cfg.pools.values() {
            paths.extend(pool.vms.iter().map(|vm| format!("/vms/{vm}")));
            paths.extend(pool.storage.iter().map(|s| format!("/storage/{s}")));
        }
        paths.into_iter().collect()
    }

    /// GET /access/permissions without `path`: every looked-at path where `subject` has something.
    pub fn permission_map(&self, subject: &Subject) -> BTreeMap<String, Permissions> {
        self.map_paths()
            .into_iter()
            .filter_map(|path| {
                let perms = self.permissions_raw(subject, &path);
                (!perms.is_empty()).then_some((path, perms))
            })
            .collect()
    }

    /// Proxmox's `roles()` (no pools, no token intersection): role → propagate flag. For a privsep token these are
    /// the token's own roles; for a non-privsep token the owner's; root@pam has `Administrator`.
    pub fn roles(&self, subject: &Subject, path: &str) -> BTreeMap<RoleId, bool> {
        crate::explain::resolve_roles(self.cfg, subject, path).roles
    }

    /// True when `user` exists in user.cfg.
    pub fn user_exists(&self, user: &UserId) -> bool {
        self.cfg.users.contains_key(user)
    }
}
