//! The permission evaluator: Proxmox's `roles()` and `permissions()` (proxmox/pve-access-control
//! `src/PVE/AccessControl.pm`, `src/PVE/RPCEnvironment.pm`), compiled for speed.
//!
//! [`Engine`] is an indexed ACL tree whose entries carry precomputed privilege bitsets, so a query is a walk of a
//! few nodes with bit operations. It is compiled from the [`Access`] facts: of a parsed text
//! ([`ParsedCfg::engine`](crate::ParsedCfg::engine), or [`engine_for`](crate::ParsedCfg::engine_for) some subjects
//! only) or of a [`UserCfg`] ([`Evaluator::new`], which adds what needs the model: explanations, listings). No
//! global state, no clock.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, PrivSet};
use crate::hash::StrMap as HashMap;
use crate::ids::{AclPath, Privilege, RoleId, Subject, TokenId, UserId};
use crate::parsed::{Access, AclFact, Who};
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

/// The compiled permission engine: answers what GET /access/permissions?path=P answers, for one configuration
/// and one PVE release. Compiled from the [`Access`] facts for every subject, or only for the subjects a batch
/// asks about ([`ParsedCfg::engine_for`](crate::ParsedCfg::engine_for)).
///
/// Layout: the ACL tree is only a trie of path components (node indices); the entries are stored per subject and
/// per group, so a query touches the subject's own short list and its groups' lists.
#[derive(Debug)]
pub struct Engine {
    /// Per node: child component → node index.
    children: Vec<HashMap<Box<str>, u32>>,
    /// The subjects compiled (users and tokens share one index space, the one of [`Access`]).
    subjects: HashMap<Box<str>, u32>,
    /// Per subject index: its own ACL entries.
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

/// The permission engine of one [`UserCfg`] and one PVE release, with the listings and explanations that read the
/// model.
#[derive(Debug)]
pub struct Evaluator<'a> {
    cfg: &'a UserCfg,
    catalog: &'a Catalog,
    engine: Engine,
}

/// A role's privileges and whether it is `NoAccess`.
#[derive(Debug, Clone, Copy)]
struct RoleInfo {
    privs: PrivSet,
    no_access: bool,
}

/// The roles of one subject (or group) at one node as a [`Grant`]: all of them, and the propagating ones.
fn fold_grant(roles: impl Iterator<Item = (RoleInfo, bool)>) -> Option<Grant> {
    let mut all: Option<RoleSet> = None;
    let mut inherit: Option<RoleSet> = None;
    for (role, propagate) in roles {
        let one = RoleSet {
            privs: role.privs,
            prop: if propagate { role.privs } else { PrivSet::EMPTY },
            no_access: role.no_access.then_some(propagate),
        };
        all = Some(all.map_or(one, |s| s.union(one)));
        if propagate {
            inherit = Some(inherit.map_or(one, |s| s.union(one)));
        }
    }
    Some(Grant { all: all?, inherit })
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

impl Engine {
    /// Compiles `access` for `catalog`'s release: every subject (`wanted` = `None`) or only the subjects in
    /// `wanted` (indices of [`Access`]'s subjects) with their owners and groups; the others answer nothing.
    pub(crate) fn compile(access: &Access<'_>, catalog: &Catalog, wanted: Option<&[u32]>) -> Engine {
        let subject_count = access.subjects.len();
        let mut included = vec![wanted.is_none(); subject_count];
        for &subject in wanted.unwrap_or_default() {
            included[subject as usize] = true;
            if let Some(token) = access.live_token(subject) {
                included[token.owner as usize] = true;
            }
        }
        let mut group_used = vec![false; access.groups.len()];
        for &(group, member, _) in &access.members {
            if access.group_defined[group as usize] && included[member as usize] {
                group_used[group as usize] = true;
            }
        }
        let roles: Vec<RoleInfo> = (0..access.roles.len())
            .map(|r| {
                let name = access.roles.name(index(r));
                // Built-in definitions win, as in `UserCfg::role_privileges`.
                let privs = catalog.builtin_role(name).or(access.custom_roles[r]).unwrap_or_default();
                RoleInfo { privs, no_access: name == "NoAccess" }
            })
            .collect();
        // The ACL facts of compiled subjects and groups, grouped by (who, node).
        let mut facts: Vec<&AclFact> = access
            .acl
            .iter()
            .filter(|fact| match fact.who {
                Who::User(s) | Who::Token(s) => included[s as usize],
                // ACL group entries may name groups that do not exist; they can never match.
                Who::Group(g) => group_used[g as usize],
            })
            .collect();
        facts.sort_unstable_by_key(|fact| (fact.who, fact.path));
        let mut engine = Engine {
            children: vec![HashMap::default()],
            subjects: HashMap::default(),
            entries: vec![Vec::new(); subject_count],
            member_of: vec![Vec::new(); subject_count],
            group_entries: vec![Vec::new(); access.groups.len()],
            tokens: vec![None; subject_count],
            root: access.subjects.get("root@pam"),
            vm_pool: HashMap::default(),
            storage_pools: HashMap::default(),
            pool_walks: Vec::with_capacity(access.pools.len()),
            no_access_privs: catalog.builtin_role("NoAccess").unwrap_or_default(),
            all_privs: catalog.privileges(),
        };
        let mut node_of_path = vec![u32::MAX; access.paths.len()];
        for run in facts.chunk_by(|a, b| (a.who, a.path) == (b.who, b.path)) {
            let Some(grant) = fold_grant(run.iter().map(|f| (roles[f.role as usize], f.propagate))) else { continue };
            let path = run[0].path as usize;
            if node_of_path[path] == u32::MAX {
                node_of_path[path] = engine.insert_path(access.paths.name(run[0].path));
            }
            let list = match run[0].who {
                Who::User(s) | Who::Token(s) => &mut engine.entries[s as usize],
                Who::Group(g) => &mut engine.group_entries[g as usize],
            };
            list.push((node_of_path[path], grant));
        }
        for list in engine.entries.iter_mut().chain(engine.group_entries.iter_mut()) {
            list.sort_unstable_by_key(|(n, _)| *n);
        }
        for &(group, member, _) in &access.members {
            // A group without ACL entries can never contribute anything.
            if included[member as usize] && !engine.group_entries[group as usize].is_empty() {
                engine.member_of[member as usize].push(group);
            }
        }
        for list in &mut engine.member_of {
            list.sort_unstable();
            list.dedup();
        }
        for token in &access.tokens {
            if included[token.subject as usize] && access.live_token(token.subject).is_some() {
                engine.tokens[token.subject as usize] = Some(TokenInfo { privsep: token.privsep, owner: token.owner });
            }
        }
        for (subject, _) in included.iter().enumerate().filter(|(_, included)| **included) {
            engine.subjects.insert(access.subjects.name(index(subject)).into(), index(subject));
        }
        for pool in 0..access.pools.len() {
            let pool_path = format!("/pool/{}", access.pools.name(index(pool)));
            let walk: Vec<(u32, bool)> = engine.path_nodes(&pool_path).collect();
            engine.pool_walks.push(walk);
        }
        engine.vm_pool.extend(access.vms.iter().copied());
        for (pool, store) in &access.storage {
            let pools = engine.storage_pools.entry(store.as_ref().into()).or_default();
            if !pools.contains(pool) {
                pools.push(*pool);
            }
        }
        engine
    }

    /// The trie node of a staging key (`/`, `/vms/100`), created with its missing ancestors.
    fn insert_path(&mut self, key: &str) -> u32 {
        let mut current = 0usize;
        for component in key.split('/').filter(|c| !c.is_empty()) {
            let existing = self.children[current].get(component).copied();
            current = match existing {
                Some(child) => child as usize,
                None => {
                    let child = index(self.children.len());
                    self.children.push(HashMap::default());
                    self.children[current].insert(component.into(), child);
                    child as usize
                }
            };
        }
        index(current)
    }

    /// Effective privileges of `subject` on `path`, as GET /access/permissions?path=PATH reports them.
    pub fn permissions(&self, subject: &Subject, path: &AclPath) -> Permissions {
        self.permissions_raw(subject, path.as_str())
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
    fn own_permissions(&self, subject: u32, is_token: bool, path: &str) -> Permissions {
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
            Some(&idx) => self.own_permissions(idx, false, path),
            // A user nobody mentions has no entries and no groups.
            None => Permissions::default(),
        }
    }

    /// A user known by index (a token's owner).
    fn owner_permissions(&self, owner: u32, path: &str) -> Permissions {
        if Some(owner) == self.root {
            return Permissions::new(self.all_privs, self.all_privs);
        }
        self.own_permissions(owner, false, path)
    }

    fn token_permissions(&self, token: &TokenId, path: &str) -> Permissions {
        let Some(&idx) = self.subjects.get(token.as_str()) else { return Permissions::default() };
        let Some(info) = self.tokens[idx as usize] else { return Permissions::default() };
        if !info.privsep {
            return self.owner_permissions(info.owner, path);
        }
        let own = self.own_permissions(idx, true, path);
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
}

impl<'a> Evaluator<'a> {
    /// Compiles `cfg` for `catalog`'s release.
    pub fn new(cfg: &'a UserCfg, catalog: &'a Catalog) -> Evaluator<'a> {
        Evaluator { cfg, catalog, engine: Engine::compile(&Access::from_user_cfg(cfg), catalog, None) }
    }

    /// The compiled engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The configuration evaluated.
    pub fn user_cfg(&self) -> &'a UserCfg {
        self.cfg
    }

    /// The catalog used.
    pub fn catalog(&self) -> &'a Catalog {
        self.catalog
    }

    /// Effective privileges of `subject` on `path`, as GET /access/permissions?path=PATH reports them.
    pub fn permissions(&self, subject: &Subject, path: &AclPath) -> Permissions {
        self.engine.permissions(subject, path)
    }

    /// [`Engine::permissions_raw`]: the path exactly as given to the API (not normalised).
    pub fn permissions_raw(&self, subject: &Subject, path: &str) -> Permissions {
        self.engine.permissions_raw(subject, path)
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
