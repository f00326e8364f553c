//! Evaluates every token once, over the paths that matter for it.
//!
//! A subject's effective privileges can only change at a path where one of its ACL entries sits (the token's, the
//! owner's, the owner's groups'), and at pool members (which also get the roles of their pool). So instead of
//! asking every path × every privilege, each token is evaluated with the shared [`Engine`] on:
//! - the top-level paths (`/`, `/vms`, `/storage`, `/nodes`, `/pool`, `/access`, `/sdn`, `/mapping`);
//! - the paths of its relevant ACL entries;
//! - when it has entries on `/`, `/pool` or below: one representative guest per pool with entries of its own,
//!   one representative for all other pools (they all resolve identically), and each pool storage.
//!
//! Every guest or storage without entries of its own has the same rights as one of these, so "anywhere" checks
//! (escalation, emptiness) over this set are exact.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pvetoken_acl::{AclEntry, AclSubject, Catalog, Engine, Permissions, Subject, Token, TokenId, UserCfg, UserId};

/// Top-level paths always evaluated (they anchor the summary).
pub const BASE_PATHS: [&str; 8] = ["/", "/access", "/mapping", "/nodes", "/pool", "/sdn", "/storage", "/vms"];

/// One evaluated place.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// The ACL path, or `/pool/<id>` / `/pool/*` for pool members.
    pub path: String,
    /// True for a pool-members representative (evaluated on one member guest).
    pub members: bool,
    /// The guest path actually evaluated for members (`/vms/<id>`), else the path itself.
    pub evaluated_on: String,
    /// The token's effective privileges there.
    pub perms: Permissions,
}

/// Indexes shared by all tokens.
pub struct Index<'a> {
    /// The configuration.
    pub cfg: &'a UserCfg,
    /// The release.
    pub catalog: &'a Catalog,
    /// The compiled engine (of the same configuration).
    pub eval: Engine,
    /// Every ACL entry, flattened.
    pub entries: Vec<AclEntry>,
    by_subject: HashMap<AclSubject, Vec<usize>>,
    groups_of: HashMap<UserId, Vec<AclSubject>>,
    pools: Vec<PoolPaths>,
    pool_storages: Vec<String>,
}

/// One pool's paths, formatted once.
struct PoolPaths {
    /// `/pool/<id>`.
    path: String,
    /// `/vms/<id>` of each member guest.
    vms: Vec<String>,
}

impl<'a> Index<'a> {
    /// Builds the indexes (one pass over the ACL entries and the groups); `eval` is the engine of `cfg`.
    pub fn new(cfg: &'a UserCfg, eval: Engine, catalog: &'a Catalog) -> Index<'a> {
        let entries = cfg.acl_entries();
        let mut by_subject: HashMap<AclSubject, Vec<usize>> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            by_subject.entry(entry.subject.clone()).or_default().push(i);
        }
        let mut groups_of: HashMap<UserId, Vec<AclSubject>> = HashMap::new();
        for (group, record) in cfg.groups() {
            for member in &record.members {
                groups_of.entry(member.clone()).or_default().push(AclSubject::Group(group.clone()));
            }
        }
        let pools = cfg
            .pools()
            .iter()
            .map(|(id, pool)| PoolPaths {
                path: format!("/pool/{id}"),
                vms: pool.vms.iter().map(|vm| format!("/vms/{vm}")).collect(),
            })
            .collect();
        let pool_storages: BTreeSet<String> =
            cfg.pools().values().flat_map(|p| p.storage.iter().map(|s| format!("/storage/{s}"))).collect();
        Index {
            cfg,
            catalog,
            eval,
            entries,
            by_subject,
            groups_of,
            pools,
            pool_storages: pool_storages.into_iter().collect(),
        }
    }

    /// True for a guest or storage path that belongs to a pool.
    pub fn is_pool_member(&self, path: &str) -> bool {
        if let Some(id) = path.strip_prefix("/vms/") {
            return id.parse::<u64>().ok().and_then(|id| self.cfg.pool_of_vm(id)).is_some();
        }
        path.starts_with("/storage/") && self.pool_storages.iter().any(|s| s == path)
    }

    /// Entries naming exactly `subject`.
    pub fn entries_of(&self, subject: &AclSubject) -> impl Iterator<Item = &AclEntry> {
        self.by_subject.get(subject).into_iter().flatten().map(|i| &self.entries[*i])
    }

    /// Entries that count for a user: its own and its groups'.
    pub fn user_side_entries(&self, user: &UserId) -> Vec<&AclEntry> {
        let mut out: Vec<&AclEntry> = self.entries_of(&AclSubject::User(user.clone())).collect();
        for group in self.groups_of.get(user).into_iter().flatten() {
            out.extend(self.entries_of(group));
        }
        out
    }
}

/// A token with everything the rules need.
pub struct TokenView<'i> {
    /// Full id.
    pub id: TokenId,
    /// Owner.
    pub owner: UserId,
    /// The record.
    pub token: Token,
    /// As an evaluation subject.
    pub subject: Subject,
    /// The token's own entries.
    pub own_entries: Vec<&'i AclEntry>,
    /// The owner's entries (own and groups').
    pub owner_entries: Vec<&'i AclEntry>,
    /// Effective privileges per evaluated place, in path order.
    pub evaluated: Vec<Evaluated>,
}

impl TokenView<'_> {
    /// True for a token of root@pam without privilege separation (full root).
    pub fn is_full_root(&self) -> bool {
        self.owner.is_root() && !self.token.privsep
    }

    /// True when nothing is granted anywhere.
    pub fn has_no_rights(&self) -> bool {
        self.evaluated.iter().all(|e| e.perms.is_empty())
    }

    /// The entries that can contribute to the token's rights (own entries, plus the owner's unless the token is
    /// a privilege-separated token of root@pam).
    pub fn relevant_entries(&self) -> Vec<&AclEntry> {
        let mut out: Vec<&AclEntry> = Vec::new();
        if self.token.privsep {
            out.extend(self.own_entries.iter().copied());
        }
        if !self.owner.is_root() {
            out.extend(self.owner_entries.iter().copied());
        }
        out
    }
}

/// Evaluates one token.
pub fn view<'i>(index: &'i Index<'_>, id: TokenId, token: &Token) -> TokenView<'i> {
    let owner = id.user();
    let subject = Subject::Token(id.clone());
    let own_entries: Vec<&AclEntry> = index.entries_of(&AclSubject::Token(id.clone())).collect();
    let owner_entries = index.user_side_entries(&owner);
    let mut view =
        TokenView { id, owner, token: token.clone(), subject, own_entries, owner_entries, evaluated: Vec::new() };
    let relevant = view.relevant_entries();
    let mut paths: BTreeSet<String> = BASE_PATHS.iter().map(|p| (*p).to_owned()).collect();
    if view.token.privsep && !view.owner.is_root() {
        // Effective = own ∩ owner, and the token's own rights are empty unless one of its entries sits on the path
        // or propagates from above: the owner's other paths cannot hold anything.
        // (Pool members can also get the token's rights through their pool.)
        let own_reaches_pools = view.own_entries.iter().any(|e| reaches_pools(e.path.as_str()));
        paths.extend(view.own_entries.iter().map(|e| e.path.as_str().to_owned()));
        paths.extend(
            view.owner_entries
                .iter()
                .map(|e| e.path.as_str())
                .filter(|p| {
                    view.own_entries.iter().any(|own| covers(own, p)) || (own_reaches_pools && index.is_pool_member(p))
                })
                .map(str::to_owned),
        );
    } else {
        paths.extend(relevant.iter().map(|e| e.path.as_str().to_owned()));
    }
    // A privilege-separated token (not of root@pam) has nothing where none of its own entries applies and no pool
    // can add its roles: no need to ask the evaluator there.
    let separated = view.token.privsep && !view.owner.is_root();
    let own_reaches_pools = view.own_entries.iter().any(|e| reaches_pools(e.path.as_str()));
    let empty = |path: &str| {
        separated
            && !view.own_entries.iter().any(|own| covers(own, path))
            && !(own_reaches_pools && index.is_pool_member(path))
    };
    let mut places: Vec<Evaluated> = paths
        .iter()
        .map(|path| {
            let empty = empty(path);
            Evaluated {
                path: path.clone(),
                members: false,
                evaluated_on: path.clone(),
                perms: if empty { Permissions::default() } else { index.eval.permissions_raw(&view.subject, path) },
            }
        })
        .collect();
    places.extend(pool_places(index, &view.subject, &relevant, &paths, &empty));
    places.sort_by(|a, b| (a.path.as_str(), a.members).cmp(&(b.path.as_str(), b.members)));
    view.evaluated = places;
    view
}

/// True when an entry on `path` can resolve on `/pool/<id>` paths (and so reach pool members).
fn reaches_pools(path: &str) -> bool {
    path == "/" || path == "/pool" || path.starts_with("/pool/")
}

/// True when `entry` applies on `path`: at the path itself, or propagating from an ancestor.
fn covers(entry: &AclEntry, path: &str) -> bool {
    let at = entry.path.as_str();
    at == path || (entry.propagate && (at == "/" || path.strip_prefix(at).is_some_and(|rest| rest.starts_with('/'))))
}

/// Pool member representatives and pool storages, when the subject has entries that reach pools.
/// `empty(path)` tells where the token certainly has nothing (no evaluation, no place).
fn pool_places(
    index: &Index<'_>,
    subject: &Subject,
    relevant: &[&AclEntry],
    paths: &BTreeSet<String>,
    empty: &dyn Fn(&str) -> bool,
) -> Vec<Evaluated> {
    if index.pools.is_empty() {
        return Vec::new();
    }
    if !relevant.iter().any(|e| reaches_pools(e.path.as_str())) {
        return Vec::new();
    }
    // Pools with an entry on /pool/<id> or on a parent pool path get their own representative; all other pools
    // resolve identically (from /pool or /) and share one.
    let entry_pool_paths: Vec<&str> =
        relevant.iter().map(|e| e.path.as_str()).filter(|p| p.starts_with("/pool/")).collect();
    let mut out = Vec::new();
    let mut generic: Option<(&str, &str)> = None;
    let mut generic_pools = 0usize;
    let free_vm = |pool: &'_ PoolPaths| pool.vms.iter().find(|vm| !paths.contains(vm.as_str())).cloned();
    for pool in &index.pools {
        let specific = !entry_pool_paths.is_empty()
            && entry_pool_paths
                .iter()
                .any(|p| pool.path == *p || pool.path.strip_prefix(*p).is_some_and(|rest| rest.starts_with('/')));
        if specific {
            if let Some(vm_path) = free_vm(pool).filter(|vm| !empty(vm)) {
                out.push(Evaluated {
                    perms: index.eval.permissions_raw(subject, &vm_path),
                    path: pool.path.clone(),
                    members: true,
                    evaluated_on: vm_path,
                });
            }
        } else if !pool.vms.is_empty() {
            generic_pools += 1;
            if generic.is_none()
                && let Some(vm) = pool.vms.iter().find(|vm| !paths.contains(vm.as_str()))
            {
                generic = Some((pool.path.as_str(), vm.as_str()));
            }
        }
    }
    if let Some((pool_path, vm_path)) = generic.filter(|(_, vm)| !empty(vm)) {
        out.push(Evaluated {
            perms: index.eval.permissions_raw(subject, vm_path),
            // Name the pool when it is the only one, rather than `*`.
            path: if generic_pools == 1 { pool_path.to_owned() } else { "/pool/*".to_owned() },
            members: true,
            evaluated_on: vm_path.to_owned(),
        });
    }
    for path in &index.pool_storages {
        if !paths.contains(path) && !empty(path) {
            out.push(Evaluated {
                perms: index.eval.permissions_raw(subject, path),
                evaluated_on: path.clone(),
                path: path.clone(),
                members: false,
            });
        }
    }
    out
}

/// The non-member places by path, for [`inherited`].
pub fn by_path(all: &[Evaluated]) -> BTreeMap<&str, &Evaluated> {
    all.iter().filter(|e| !e.members).map(|e| (e.path.as_str(), e)).collect()
}

/// The nearest evaluated ancestor of `place` (for members: `/vms`), used to omit lines that only repeat what is
/// inherited.
pub fn inherited<'v>(place: &Evaluated, by_path: &BTreeMap<&str, &'v Evaluated>) -> Option<&'v Evaluated> {
    let mut current: &str = if place.members { "/vms/x" } else { place.path.as_str() };
    while current != "/" {
        current = match current.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &current[..i],
        };
        if let Some(found) = by_path.get(current) {
            return Some(found);
        }
    }
    None
}

/// The ancestors of `path` from `/` down to the path itself (`/`, `/vms`, `/vms/100`).
fn ancestors(path: &str) -> Vec<&str> {
    let mut out = vec!["/"];
    for (i, c) in path.char_indices() {
        if c == '/' && i > 0 {
            out.push(&path[..i]);
        }
    }
    if path != "/" && !path.is_empty() {
        out.push(path.trim_end_matches('/'));
    }
    out
}

/// Proxmox's role walk restricted to `entries` (one side of one subject: a token's own entries, or a user's and
/// its groups' entries): the entries deciding the roles on `path` (token entries before user entries before group
/// entries at each node; a deeper applicable category replaces what was inherited).
pub fn deciding_entries<'e>(entries: &[&'e AclEntry], path: &str) -> Vec<&'e AclEntry> {
    let nodes = ancestors(path);
    let mut current: Vec<&AclEntry> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let here: Vec<&AclEntry> =
            entries.iter().copied().filter(|e| e.path.as_str() == *node && (last || e.propagate)).collect();
        if here.is_empty() {
            continue;
        }
        let rank = |e: &AclEntry| match e.subject {
            AclSubject::Token(_) => 0,
            AclSubject::User(_) => 1,
            AclSubject::Group(_) => 2,
        };
        let best = here.iter().map(|e| rank(e)).min().unwrap_or(2);
        current = here.into_iter().filter(|e| rank(e) == best).collect();
    }
    current
}

/// Renders an ACL entry as a user.cfg line (one subject, one role).
pub fn acl_line(entry: &AclEntry) -> String {
    format!("acl:{}:{}:{}:{}:", u8::from(entry.propagate), entry.path, entry.subject, entry.roleid)
}

/// Renders a token as its user.cfg line.
pub fn token_line(id: &TokenId, token: &Token) -> String {
    format!(
        "token:{id}:{}:{}:{}:",
        token.expire,
        u8::from(token.privsep),
        token.comment.as_deref().map(encode_text).unwrap_or_default()
    )
}

/// Proxmox's free-text encoding for user.cfg fields (`:`, `%`, control and non-ASCII bytes as `%XX`).
pub fn encode_text(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if matches!(b, 0x20..=0x24 | 0x26..=0x39 | 0x3b..=0x7e) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvetoken_acl::{PrivSet, PveVersion};

    /// A deterministic tangle of users, groups, tokens (both privsep), pools (nested), NoAccess and
    /// non-propagating entries on every kind of path.
    fn tangled_cfg() -> String {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let mut text = String::new();
        let users: Vec<String> = (0..12).map(|i| format!("u{i}@pve")).collect();
        let mut tokens = Vec::new();
        for u in &users {
            text.push_str(&format!("user:{u}:1:0::::::\n"));
            for t in 0..2 {
                let id = format!("{u}!t{t}");
                text.push_str(&format!("token:{id}:0:{}::\n", next(3).min(1)));
                tokens.push(id);
            }
        }
        text.push_str("token:root@pam!rt:0:1::\n");
        tokens.push("root@pam!rt".to_owned());
        for g in 0..4 {
            let members: Vec<&str> = (0..4).map(|_| users[next(12) as usize].as_str()).collect();
            text.push_str(&format!("group:g{g}:{}::\n", members.join(",")));
        }
        text.push_str(
            "pool:pa::100,101,102:local:\npool:pb::200,201:local,nfs:\npool:pa/sub::300:nfs:\npool:pc::400::\n",
        );
        let paths = [
            "/",
            "/vms",
            "/vms/100",
            "/vms/200",
            "/vms/300",
            "/vms/500",
            "/storage",
            "/storage/local",
            "/storage/nfs",
            "/pool",
            "/pool/pa",
            "/pool/pb",
            "/pool/pa/sub",
            "/nodes",
            "/nodes/n1",
            "/access",
            "/sdn/zones/z1",
        ];
        let roles = [
            "Administrator",
            "PVEAdmin",
            "PVEAuditor",
            "PVEVMAdmin",
            "PVEVMUser",
            "PVEDatastoreUser",
            "NoAccess",
            "PVEUserAdmin",
        ];
        for _ in 0..140 {
            let subject = match next(3) {
                0 => users[next(12) as usize].clone(),
                1 => format!("@g{}", next(4)),
                _ => tokens[next(tokens.len() as u64) as usize].clone(),
            };
            let path = paths[next(paths.len() as u64) as usize];
            let role = roles[next(roles.len() as u64) as usize];
            text.push_str(&format!("acl:{}:{path}:{subject}:{role}:\n", u64::from(next(4) != 0)));
        }
        text
    }

    #[test]
    fn evaluated_places_dominate_every_path_of_the_configuration() {
        let catalog = Catalog::for_version(PveVersion::NEWEST);
        let text = tangled_cfg();
        let (cfg, _) = UserCfg::parse(&text, &catalog);
        let (parsed, _) = pvetoken_acl::ParsedCfg::parse(&text, &catalog);
        let index = Index::new(&cfg, parsed.engine(&catalog), &catalog);
        let evaluator = pvetoken_acl::Evaluator::new(&cfg, &catalog);
        let mut every_path: BTreeSet<String> = evaluator.map_paths().into_iter().collect();
        for vm in [100, 101, 102, 200, 201, 300, 400, 500, 999] {
            every_path.insert(format!("/vms/{vm}"));
        }
        every_path
            .extend(["/storage/local", "/storage/nfs", "/storage/other", "/sdn/zones", "/nodes/n2"].map(String::from));
        let mut checked = 0;
        for (id, token) in cfg.tokens() {
            let view = view(&index, id.clone(), token);
            let union = view.evaluated.iter().fold(PrivSet::EMPTY, |acc, e| acc.union(e.perms.granted()));
            let mut brute_union = PrivSet::EMPTY;
            for path in &every_path {
                let truth = evaluator.permissions_raw(&view.subject, path).granted();
                brute_union = brute_union.union(truth);
                assert!(
                    view.evaluated.iter().any(|e| truth.is_subset(e.perms.granted())),
                    "{id} on {path}: {} is not covered by any evaluated place",
                    truth.join()
                );
                checked += 1;
            }
            assert_eq!(union, brute_union, "{id}: rights found anywhere differ");
        }
        assert!(checked > 500);
    }
}
