//! The permission evaluator: Proxmox's `roles()` and `permissions()` (proxmox/pve-access-control
//! `src/PVE/AccessControl.pm`, `src/PVE/RPCEnvironment.pm`), compiled for speed.
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

impl Grant {
    /// The roles that apply at a node that is (`last`) or is not the final path component.
    fn at(&self, last: bool) -> Option<RoleSet> {
        if last { Some(self.all) } else { self.inherit }
    }
}

/// ACL entries of one subject or group: (node index, grant), sorted by node index.
type Entries = Vec<(u32, Grant)>;

fn find(entries: &[(u32, Grant)], node: u32) -> Option<&Grant> {
    // Lists are short (a subject's own entries); a linear scan beats a binary search for them.
    if entries.len() <= 8 {
        return entries.iter().find(|(n, _)| *n == node).map(|(_, g)| g);
    }
    entries.binary_search_by_key(&node, |(n, _)| *n).ok().map(|pos| &entries[pos].1)
}

#[derive(Debug, Clone, Copy)]
struct TokenInfo {
    privsep: bool,
    owner: u32,
}

/// The compiled permission engine for one configuration and one PVE release.
///
/// Layout: the ACL tree is only a trie of path components (node indices, parents before children); the entries
/// are stored per subject and per group, so a query touches the subject's own short list and its groups' lists.
#[derive(Debug)]
pub struct Evaluator<'a> {
    cfg: &'a UserCfg,
    catalog: &'a Catalog,
    /// Per node: child component → node index.
    children: Vec<HashMap<Box<str>, u32>>,
    subjects: HashMap<Box<str>, u32>,
    /// Per subject index (users and tokens share one index space): its own ACL entries.
    entries: Vec<Entries>,
    /// Per subject index: the groups (indices, sorted) whose member list contains it and that have ACL entries.
    member_of: Vec<Vec<u32>>,
    /// Per group index: its ACL entries.
    group_entries: Vec<Entries>,
    /// Per subject index: token information when the subject is an existing token.
    tokens: Vec<Option<TokenInfo>>,
    root: Option<u32>,
    /// Guest id → pool index.
    vm_pool: HashMap<u64, u32>,
    /// Storage id → pool indices.
    storage_pools: HashMap<Box<str>, Vec<u32>>,
    /// Per pool index: the walk of `/pool/<p>` as (node, last) steps.
    pool_walks: Vec<Vec<(u32, bool)>>,
    no_access_privs: PrivSet,
    all_privs: PrivSet,
}

/// Role id → privileges, resolved once per compilation.
struct RoleTable<'c> {
    privs: HashMap<&'c str, PrivSet>,
}

impl<'c> RoleTable<'c> {
    fn new(cfg: &'c UserCfg, catalog: &'c Catalog) -> RoleTable<'c> {
        let mut privs: HashMap<&'c str, PrivSet> = HashMap::default();
        for (role, set) in catalog.builtin_roles() {
            privs.insert(role.as_str(), *set);
        }
        for (role, set) in &cfg.roles {
            // Built-in definitions win, as in `UserCfg::role_privileges`.
            privs.entry(role.as_str()).or_insert(*set);
        }
        RoleTable { privs }
    }

    fn roles_to_set(&self, roles: &BTreeMap<RoleId, bool>, only_propagating: bool) -> Option<RoleSet> {
        let mut set: Option<RoleSet> = None;
        for (role, &propagate) in roles {
            if only_propagating && !propagate {
                continue;
            }
            let privs = self.privs.get(role.as_str()).copied().unwrap_or_default();
            let one = RoleSet {
                privs,
                prop: if propagate { privs } else { PrivSet::EMPTY },
                no_access: (role.as_str() == "NoAccess").then_some(propagate),
            };
            set = Some(set.map_or(one, |s| s.union(one)));
        }
        set
    }

    fn grant(&self, roles: &BTreeMap<RoleId, bool>) -> Option<Grant> {
        let all = self.roles_to_set(roles, false)?;
        Some(Grant { all, inherit: self.roles_to_set(roles, true) })
    }
}

/// Perl's `split("/", $path)` as `roles()` uses it: `/` is one empty component, trailing empty fields dropped.
fn perl_components(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = if path == "/" { "" } else { path.trim_end_matches('/') };
    let empty = trimmed.is_empty() && path != "/";
    trimmed.split('/').take(if empty { 0 } else { usize::MAX })
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl<'a> Evaluator<'a> {
    /// Compiles `cfg` for `catalog`'s release.
    pub fn new(cfg: &'a UserCfg, catalog: &'a Catalog) -> Evaluator<'a> {
        let mut subjects: HashMap<Box<str>, u32> = HashMap::default();
        subjects.reserve(cfg.users.len() * 3);
        let intern = |id: &str, subjects: &mut HashMap<Box<str>, u32>| -> u32 {
            if let Some(&i) = subjects.get(id) {
                return i;
            }
            let next = index(subjects.len());
            subjects.insert(id.into(), next);
            next
        };
        for user in cfg.users.keys() {
            intern(user.as_str(), &mut subjects);
        }
        let mut token_list = Vec::new();
        for (user, record) in &cfg.users {
            let owner = intern(user.as_str(), &mut subjects);
            for (name, info) in &record.tokens {
                let full = format!("{}!{}", user.as_str(), name.as_str());
                let idx = intern(&full, &mut subjects);
                token_list.push((idx, TokenInfo { privsep: info.privsep, owner }));
            }
        }
        let group_index: HashMap<&str, u32> =
            cfg.groups.keys().enumerate().map(|(i, g)| (g.as_str(), index(i))).collect();
        let mut member_pairs = Vec::new();
        for (gi, group) in cfg.groups.values().enumerate() {
            for member in &group.members {
                member_pairs.push((intern(member.as_str(), &mut subjects), index(gi)));
            }
        }
        let roles = RoleTable::new(cfg, catalog);
        let mut children: Vec<HashMap<Box<str>, u32>> = vec![HashMap::default()];
        let mut entries: Vec<Entries> = Vec::new();
        let mut group_entries: Vec<Entries> = vec![Vec::new(); cfg.groups.len()];
        // The tree is visited in key order (parents first), so node indices grow along any path and every list
        // below is built already sorted by node index.
        for (key, acl_node) in &cfg.acl {
            let mut current = 0usize;
            for component in key {
                let existing = children[current].get(component.as_str()).copied();
                current = match existing {
                    Some(child) => child as usize,
                    None => {
                        let child = index(children.len());
                        children.push(HashMap::default());
                        children[current].insert(component.as_str().into(), child);
                        child as usize
                    }
                };
            }
            let node = index(current);
            let mut push = |subject: u32, grant: Grant| {
                let slot = subject as usize;
                if entries.len() <= slot {
                    entries.resize_with(slot + 1, Vec::new);
                }
                entries[slot].push((node, grant));
            };
            for (user, roles_of) in &acl_node.users {
                if let Some(g) = roles.grant(roles_of) {
                    push(intern(user.as_str(), &mut subjects), g);
                }
            }
            for (token, roles_of) in &acl_node.tokens {
                if let Some(g) = roles.grant(roles_of) {
                    push(intern(token.as_str(), &mut subjects), g);
                }
            }
            // ACL group entries may name groups that do not exist; they can never match, so they are skipped.
            for (group, roles_of) in &acl_node.groups {
                if let (Some(&gi), Some(g)) = (group_index.get(group.as_str()), roles.grant(roles_of)) {
                    group_entries[gi as usize].push((node, g));
                }
            }
        }
        entries.resize_with(subjects.len(), Vec::new);
        for list in entries.iter_mut().chain(group_entries.iter_mut()) {
            // Already sorted by node (tree order); a stable sort keeps this true should the order ever change.
            list.sort_by_key(|(n, _)| *n);
        }
        let mut member_of = vec![Vec::new(); subjects.len()];
        for (subject, group) in member_pairs {
            // A group without ACL entries can never contribute anything.
            if !group_entries[group as usize].is_empty() {
                member_of[subject as usize].push(group);
            }
        }
        for list in &mut member_of {
            list.sort_unstable();
            list.dedup();
        }
        let mut tokens = vec![None; subjects.len()];
        for (idx, info) in token_list {
            tokens[idx as usize] = Some(info);
        }
        let mut evaluator = Evaluator {
            cfg,
            catalog,
            children,
            subjects,
            entries,
            member_of,
            group_entries,
            tokens,
            root: None,
            vm_pool: HashMap::default(),
            storage_pools: HashMap::default(),
            pool_walks: Vec::with_capacity(cfg.pools.len()),
            no_access_privs: catalog.builtin_role("NoAccess").unwrap_or_default(),
            all_privs: catalog.privileges(),
        };
        evaluator.root = evaluator.subjects.get("root@pam").copied();
        for (pi, (pool_id, pool)) in cfg.pools.iter().enumerate() {
            let pool_path = format!("/pool/{pool_id}");
            let walk: Vec<(u32, bool)> = evaluator.path_nodes(&pool_path).collect();
            evaluator.pool_walks.push(walk);
            for vm in &pool.vms {
                evaluator.vm_pool.insert(*vm, index(pi));
            }
            for store in &pool.storage {
                evaluator.storage_pools.entry(store.as_str().into()).or_default().push(index(pi));
            }
        }
        evaluator
    }

    /// The configuration evaluated.
    pub fn user_cfg(&self) -> &'a UserCfg {
        self.cfg
    }

    /// The catalog used.
    pub fn catalog(&self) -> &'a Catalog {
        self.catalog
    }

    /// The tree nodes `roles()` visits for a raw path, as (node index, is the final component). Empty components
    /// (the leading one, `//`) stay on the current node and visit it again, as Proxmox's loop does; the walk ends
    /// at the first component without a node (nothing below it can match).
    fn path_nodes<'p>(&'p self, path: &'p str) -> impl Iterator<Item = (u32, bool)> + 'p {
        let mut components = perl_components(path).peekable();
        let mut node = 0u32;
        std::iter::from_fn(move || {
            let component = components.next()?;
            if !component.is_empty() {
                node = *self.children[node as usize].get(component)?;
            }
            Some((node, components.peek().is_none()))
        })
    }

    /// True when the subject has no entry anywhere, itself or through a group: every walk yields nothing.
    fn has_no_entries(&self, subject: u32, is_token: bool) -> bool {
        self.entries[subject as usize].is_empty() && (is_token || self.member_of[subject as usize].is_empty())
    }

    /// `roles()` at privilege level for subject index `subject` along the given walk.
    fn walk(&self, subject: u32, is_token: bool, steps: impl Iterator<Item = (u32, bool)>) -> RoleSet {
        let own = &self.entries[subject as usize];
        let groups: &[u32] = if is_token { &[] } else { &self.member_of[subject as usize] };
        let mut current = RoleSet::default();
        for (node, last) in steps {
            if let Some(set) = find(own, node).and_then(|g| g.at(last)) {
                current = set;
                continue;
            }
            let mut new: Option<RoleSet> = None;
            for &gi in groups {
                if let Some(set) = find(&self.group_entries[gi as usize], node).and_then(|g| g.at(last)) {
                    new = Some(new.map_or(set, |s| s.union(set)));
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
        if self.has_no_entries(subject, is_token) {
            return Permissions::default();
        }
        let mut roles = self.walk(subject, is_token, self.path_nodes(path));
        if roles.no_access.is_none() {
            let mut pool_roles: Option<RoleSet> = None;
            let mut add = |pool: u32| {
                let steps = self.pool_walks[pool as usize].iter().copied();
                let set = self.walk(subject, is_token, steps);
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
                if let Some(&pool) = vmid.parse::<u64>().ok().filter(|_| canonical).and_then(|id| self.vm_pool.get(&id))
                {
                    add(pool);
                }
            } else if let Some(pools) = path.strip_prefix("/storage/").and_then(|store| self.storage_pools.get(store)) {
                for &pool in pools {
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

    /// A user known by index (a token's owner).
    fn owner_permissions(&self, owner: u32, path: &str) -> Permissions {
        if Some(owner) == self.root {
            return Permissions::new(self.all_privs, self.all_privs);
        }
        self.compile(owner, false, path)
    }

    fn token_permissions(&self, token: &TokenId, path: &str) -> Permissions {
        let Some(&idx) = self.subjects.get(token.as_str()) else { return Permissions::default() };
        let Some(info) = self.tokens[idx as usize] else { return Permissions::default() };
        if !info.privsep {
            return self.owner_permissions(info.owner, path);
        }
        let own = self.compile(idx, true, path);
        if Some(info.owner) == self.root {
            // Privilege-separated tokens of root@pam get their own ACLs, without intersection.
            return own;
        }
        if own.is_empty() {
            // The intersection with the owner's privileges is empty whatever the owner has.
            return own;
        }
        let owner = self.owner_permissions(info.owner, path);
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
