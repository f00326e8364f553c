//! Why a subject has or lacks a privilege: a role-level re-evaluation that records every ACL entry it looked at.
//!
//! This is a second, deliberately plain implementation of Proxmox's `roles()` working on the [`UserCfg`] model
//! directly (no compilation). The fast [`Evaluator`] and this one are checked against each other and against the
//! reference vectors.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, PrivSet};
use crate::eval::{Evaluator, Permissions};
use crate::ids::{PoolId, Privilege, RoleId, Subject, UserId};
use crate::usercfg::{AclNode, AclSubject, UserCfg};

/// One ACL entry that took part in a decision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntryRef {
    /// The node's path.
    pub path: String,
    /// Who the entry is for (`user@realm`, `@group`, `user@realm!token`).
    pub subject: AclSubject,
    /// The role.
    pub role: RoleId,
    /// The entry's propagate flag.
    pub propagate: bool,
}

/// Which category of entries decided a node (Proxmox's priority: token, then user, then groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    /// Token entries for the (privilege-separated) token.
    Token,
    /// User entries for the user.
    User,
    /// Entries of the user's groups.
    Group,
}

/// One node visited on the way down the path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TraceStep {
    /// The node's path.
    pub path: String,
    /// True at the last path component (where non-propagating entries apply).
    pub is_target: bool,
    /// Which category replaced the role set here, if any.
    pub matched: Option<MatchKind>,
    /// The entries that replaced the role set.
    pub applied: Vec<EntryRef>,
    /// Entries for the subject here that did not apply (non-propagating above the target, or outranked by a
    /// higher-priority category).
    pub skipped: Vec<EntryRef>,
}

/// The result of Proxmox's `roles()` with the trace.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct RoleTrace {
    /// Role → propagate flag after the walk (`NoAccess` alone if it was present).
    pub roles: BTreeMap<RoleId, bool>,
    /// The visited nodes.
    pub steps: Vec<TraceStep>,
}

/// Pool-derived roles for a `/vms/<id>` or `/storage/<id>` path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolTrace {
    /// The pools containing the member.
    pub pools: Vec<PoolId>,
    /// Roles the subject has on `/pool/<p>` (union over the pools).
    pub roles: BTreeMap<RoleId, bool>,
    /// The entries behind those roles (the deciding entries at each pool path).
    pub entries: Vec<EntryRef>,
    /// True when the path's own ACLs resolved to NoAccess, so pool roles were ignored.
    pub ignored_due_to_no_access: bool,
}

/// One side of the evaluation (the user, or the privilege-separated token's own ACLs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SideTrace {
    /// Whose ACLs (`user@realm` or `user@realm!token`).
    pub subject: String,
    /// This side's privileges on the path.
    #[serde(serialize_with = "serialize_perms")]
    pub permissions: Permissions,
    /// The role walk.
    pub trace: RoleTrace,
    /// Pool contribution, when the path is a pool member.
    pub pool: Option<PoolTrace>,
    /// Entries (from the deciding node or a pool) whose role grants the privilege.
    pub granting: Vec<EntryRef>,
    /// NoAccess entries that block everything on this side.
    pub blocking: Vec<EntryRef>,
}

fn serialize_perms<S: serde::Serializer>(p: &Permissions, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(p, s)
}

/// The overall reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// root@pam: every privilege everywhere.
    Superuser,
    /// A token of root@pam without privilege separation: full root.
    RootTokenFull,
    /// Granted.
    Granted,
    /// The token or its owner does not exist in user.cfg.
    UnknownToken,
    /// The release does not know the privilege.
    UnknownPrivilege,
    /// A plain user (or non-privsep token's owner) lacks it.
    Missing,
    /// Privilege-separated token: the owner lacks it (the token's own ACLs grant it).
    MissingOnUserSide,
    /// Privilege-separated token: the token's own ACLs lack it (the owner has it).
    MissingOnTokenSide,
    /// Privilege-separated token: both lack it.
    MissingOnBothSides,
}

/// Why `subject` has or lacks `privilege` on `path`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explanation {
    /// The subject.
    pub subject: Subject,
    /// The path as evaluated.
    pub path: String,
    /// The privilege.
    pub privilege: Privilege,
    /// True when granted.
    pub granted: bool,
    /// The propagate flag GET /access/permissions would report (when granted).
    pub propagate: Option<bool>,
    /// The overall reason.
    pub verdict: Verdict,
    /// For tokens: the privsep flag (`None` for users or unknown tokens).
    pub privsep: Option<bool>,
    /// The user side (the user itself, or the token's owner).
    pub user_side: Option<SideTrace>,
    /// The token's own ACLs (privilege-separated tokens only).
    pub token_side: Option<SideTrace>,
}

fn node_path(key: &[String]) -> String {
    if key.is_empty() { "/".to_owned() } else { format!("/{}", key.join("/")) }
}

fn entries<'a>(
    path: &str,
    roles: &'a BTreeMap<RoleId, bool>,
    make: impl Fn() -> AclSubject + 'a,
) -> impl Iterator<Item = EntryRef> + 'a {
    let path = path.to_owned();
    roles.iter().map(move |(role, propagate)| EntryRef {
        path: path.clone(),
        subject: make(),
        role: role.clone(),
        propagate: *propagate,
    })
}

/// Who is walked: a user id (with its groups) or a token id (own entries only).
enum Walker<'a> {
    User(&'a str),
    Token(&'a str),
}

fn walk(cfg: &UserCfg, who: &Walker<'_>, path: &str) -> RoleTrace {
    let mut trace = RoleTrace::default();
    let mut roles: BTreeMap<RoleId, bool> = BTreeMap::new();
    let trimmed = if path == "/" { "" } else { path.trim_end_matches('/') };
    let components: Vec<&str> =
        if trimmed.is_empty() && path != "/" { Vec::new() } else { trimmed.split('/').collect() };
    let mut key: Option<Vec<String>> = Some(Vec::new());
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        if !component.is_empty() {
            key = key.and_then(|mut k| {
                k.push((*component).to_owned());
                cfg.acl.contains_key(&k).then_some(k)
            });
        }
        let Some(k) = &key else { continue };
        let Some(node) = cfg.acl.get(k) else { continue };
        let here = node_path(k);
        let step = evaluate_node(cfg, who, node, &here, last);
        if step.matched.is_some() {
            roles = BTreeMap::new();
            for e in &step.applied {
                *roles.entry(e.role.clone()).or_insert(false) |= e.propagate;
            }
        }
        if step.matched.is_some() || !step.skipped.is_empty() {
            trace.steps.push(step);
        }
    }
    if let Some(flag) = roles.get("NoAccess").copied() {
        roles = BTreeMap::from([(RoleId::from_trusted("NoAccess"), flag)]);
    }
    trace.roles = roles;
    trace
}

fn evaluate_node(cfg: &UserCfg, who: &Walker<'_>, node: &AclNode, here: &str, last: bool) -> TraceStep {
    let mut step =
        TraceStep { path: here.to_owned(), is_target: last, matched: None, applied: Vec::new(), skipped: Vec::new() };
    let applies = |e: &EntryRef| last || e.propagate;
    let mut categories: Vec<(MatchKind, Vec<EntryRef>)> = Vec::new();
    match who {
        Walker::Token(id) => {
            if let Some((token, roles)) = node.tokens.iter().find(|(t, _)| t.as_str() == *id) {
                categories
                    .push((MatchKind::Token, entries(here, roles, || AclSubject::Token(token.clone())).collect()));
            }
        }
        Walker::User(id) => {
            if let Some((user, roles)) = node.users.iter().find(|(u, _)| u.as_str() == *id) {
                categories.push((MatchKind::User, entries(here, roles, || AclSubject::User(user.clone())).collect()));
            }
            let mut group_entries = Vec::new();
            for (group, roles) in &node.groups {
                let member = cfg.groups.get(group).is_some_and(|g| g.members.iter().any(|m| m.as_str() == *id));
                if member {
                    group_entries.extend(entries(here, roles, || AclSubject::Group(group.clone())));
                }
            }
            if !group_entries.is_empty() {
                categories.push((MatchKind::Group, group_entries));
            }
        }
    }
    for (kind, list) in categories {
        if step.matched.is_some() {
            step.skipped.extend(list);
            continue;
        }
        let (applied, skipped): (Vec<EntryRef>, Vec<EntryRef>) = list.into_iter().partition(|e| applies(e));
        step.skipped.extend(skipped);
        if !applied.is_empty() {
            // The same role from several groups: the propagating grant wins (Proxmox's result depends on hash
            // order there; we pick the deterministic union, see `walk`).
            step.matched = Some(kind);
            step.applied = applied;
        }
    }
    step
}

/// Proxmox's `roles()` with a trace (no pools, no token intersection).
pub(crate) fn resolve_roles(cfg: &UserCfg, subject: &Subject, path: &str) -> RoleTrace {
    match subject {
        Subject::User(user) if user.is_root() => {
            RoleTrace { roles: BTreeMap::from([(RoleId::from_trusted("Administrator"), true)]), steps: Vec::new() }
        }
        Subject::User(user) => walk(cfg, &Walker::User(user.as_str()), path),
        Subject::Token(token) => match cfg.token(token) {
            None => RoleTrace::default(),
            Some(info) if !info.privsep => resolve_roles(cfg, &Subject::User(token.user()), path),
            Some(_) => walk(cfg, &Walker::Token(token.as_str()), path),
        },
    }
}

fn roles_privs(roles: &BTreeMap<RoleId, bool>, cfg: &UserCfg, catalog: &Catalog) -> Permissions {
    let mut granted = PrivSet::EMPTY;
    let mut prop = PrivSet::EMPTY;
    for (role, flag) in roles {
        let privs = cfg.role_privileges(role.as_str(), catalog).unwrap_or_default();
        granted = granted.union(privs);
        if *flag {
            prop = prop.union(privs);
        }
    }
    Permissions::new(granted, prop)
}

fn pool_paths(cfg: &UserCfg, path: &str) -> Vec<PoolId> {
    if let Some(vmid) = path.strip_prefix("/vms/") {
        return vmid
            .parse::<u64>()
            .ok()
            .filter(|id| id.to_string() == vmid)
            .and_then(|id| cfg.pool_of_vm(id).cloned())
            .into_iter()
            .collect();
    }
    if let Some(store) = path.strip_prefix("/storage/") {
        return cfg.pools.iter().filter(|(_, p)| p.storage.contains(store)).map(|(id, _)| id.clone()).collect();
    }
    Vec::new()
}

/// One side evaluated as itself (roles + pools), Proxmox's `compile_acl_path` before the intersection.
fn side(cfg: &UserCfg, catalog: &Catalog, who: &Walker<'_>, path: &str, privilege: Privilege) -> SideTrace {
    let trace = walk(cfg, who, path);
    let mut roles = trace.roles.clone();
    let mut pool_trace = None;
    let pools = pool_paths(cfg, path);
    let mut pool_entries_granting = Vec::new();
    if !pools.is_empty() {
        let mut pool_roles: BTreeMap<RoleId, bool> = BTreeMap::new();
        let mut pool_entries = Vec::new();
        for pool in &pools {
            let t = walk(cfg, who, &format!("/pool/{pool}"));
            if let Some(last) = t.steps.iter().rev().find(|s| s.matched.is_some())
                && !t.roles.is_empty()
            {
                pool_entries.extend(last.applied.iter().cloned());
            }
            for (role, flag) in t.roles {
                pool_roles.insert(role, flag);
            }
        }
        let ignored = roles.contains_key("NoAccess");
        if !ignored && !pool_roles.is_empty() {
            if pool_roles.contains_key("NoAccess") {
                roles = BTreeMap::from([(RoleId::from_trusted("NoAccess"), false)]);
            } else {
                for role in pool_roles.keys() {
                    roles.entry(role.clone()).or_insert(false);
                }
            }
        }
        pool_entries_granting = pool_entries
            .iter()
            .filter(|e| cfg.role_privileges(e.role.as_str(), catalog).is_some_and(|p| p.contains(privilege)))
            .cloned()
            .collect();
        pool_trace =
            Some(PoolTrace { pools, roles: pool_roles, entries: pool_entries, ignored_due_to_no_access: ignored });
    }
    let permissions = roles_privs(&roles, cfg, catalog);
    let decisive = trace.steps.iter().rev().find(|s| s.matched.is_some());
    let mut granting: Vec<EntryRef> = decisive
        .map(|s| {
            s.applied
                .iter()
                .filter(|e| cfg.role_privileges(e.role.as_str(), catalog).is_some_and(|p| p.contains(privilege)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if !roles.contains_key("NoAccess") {
        granting.extend(pool_entries_granting);
    } else {
        granting.clear();
    }
    let mut blocking: Vec<EntryRef> = decisive
        .map(|s| s.applied.iter().filter(|e| e.role.as_str() == "NoAccess").cloned().collect())
        .unwrap_or_default();
    if blocking.is_empty()
        && roles.contains_key("NoAccess")
        && let Some(p) = &pool_trace
    {
        blocking.extend(p.entries.iter().filter(|e| e.role.as_str() == "NoAccess").cloned());
    }
    let subject = match who {
        Walker::User(s) | Walker::Token(s) => (*s).to_owned(),
    };
    SideTrace { subject, permissions, trace, pool: pool_trace, granting, blocking }
}

/// Full reference evaluation (slow, role-level): what [`Evaluator::permissions_raw`] computes, plus the traces.
pub fn explain(cfg: &UserCfg, catalog: &Catalog, subject: &Subject, path: &str, privilege: Privilege) -> Explanation {
    let mut out = Explanation {
        subject: subject.clone(),
        path: path.to_owned(),
        privilege,
        granted: false,
        propagate: None,
        verdict: Verdict::Missing,
        privsep: None,
        user_side: None,
        token_side: None,
    };
    let known = catalog.knows(privilege);
    let user_of = |user: &UserId| -> Option<SideTrace> {
        (!user.is_root()).then(|| side(cfg, catalog, &Walker::User(user.as_str()), path, privilege))
    };
    match subject {
        Subject::User(user) if user.is_root() => {
            out.granted = known;
            out.propagate = known.then_some(true);
            out.verdict = if known { Verdict::Superuser } else { Verdict::UnknownPrivilege };
        }
        Subject::User(user) => {
            let s = user_of(user);
            if let Some(s) = &s {
                out.propagate = s.permissions.flag(privilege);
            }
            out.user_side = s;
        }
        Subject::Token(token) => match cfg.token(token) {
            None => out.verdict = Verdict::UnknownToken,
            Some(info) => {
                out.privsep = Some(info.privsep);
                let owner = token.user();
                let owner_perms = if owner.is_root() {
                    Permissions::new(catalog.privileges(), catalog.privileges())
                } else {
                    Permissions::default()
                };
                let user_side = user_of(&owner);
                let owner_perms = user_side.as_ref().map_or(owner_perms, |s| s.permissions);
                if !info.privsep {
                    out.propagate = owner_perms.flag(privilege);
                    if owner.is_root() && known {
                        out.verdict = Verdict::RootTokenFull;
                    }
                } else {
                    let own = side(cfg, catalog, &Walker::Token(token.as_str()), path, privilege);
                    out.propagate = if owner.is_root() {
                        own.permissions.flag(privilege)
                    } else {
                        match (own.permissions.flag(privilege), owner_perms.flag(privilege)) {
                            (Some(a), Some(b)) => Some(a && b),
                            _ => None,
                        }
                    };
                    let user_has = owner_perms.has(privilege);
                    let token_has = own.permissions.has(privilege);
                    if out.propagate.is_none() {
                        out.verdict = match (user_has || owner.is_root(), token_has) {
                            (false, false) => Verdict::MissingOnBothSides,
                            (false, true) => Verdict::MissingOnUserSide,
                            _ => Verdict::MissingOnTokenSide,
                        };
                    }
                    out.token_side = Some(own);
                }
                out.user_side = user_side;
            }
        },
    }
    out.granted = out.propagate.is_some();
    if out.granted && matches!(out.verdict, Verdict::Missing) {
        out.verdict = Verdict::Granted;
    }
    if !known {
        out.verdict = Verdict::UnknownPrivilege;
    }
    out
}

/// Plain-text rendering of an explanation, for terminals.
pub fn render_text(e: &Explanation) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let state = match e.propagate {
        Some(true) => "GRANTED (propagate 1)",
        Some(false) => "GRANTED (propagate 0)",
        None => "NOT GRANTED",
    };
    let _ = writeln!(out, "{} on {} for {}: {}", e.privilege, e.path, e.subject, state);
    let reason = match e.verdict {
        Verdict::Superuser => "root@pam is the superuser: every privilege on every path.".to_owned(),
        Verdict::RootTokenFull => "token of root@pam without privilege separation: full root privileges.".to_owned(),
        Verdict::Granted => "granted by the entries below.".to_owned(),
        Verdict::UnknownToken => "the token does not exist in user.cfg, so it has no privileges.".to_owned(),
        Verdict::UnknownPrivilege => "this PVE release does not know the privilege.".to_owned(),
        Verdict::Missing => "no applicable ACL entry grants it.".to_owned(),
        Verdict::MissingOnUserSide => {
            "privilege-separated token: the token's own ACLs grant it, but the owner lacks it (effective = intersection)."
                .to_owned()
        }
        Verdict::MissingOnTokenSide => {
            "privilege-separated token: the owner has it, but the token's own ACLs do not grant it (effective = intersection)."
                .to_owned()
        }
        Verdict::MissingOnBothSides => "privilege-separated token: neither the owner nor the token's own ACLs grant it.".to_owned(),
    };
    let _ = writeln!(out, "reason: {reason}");
    if let Some(privsep) = e.privsep {
        let _ = writeln!(out, "privsep: {}", u8::from(privsep));
    }
    for (label, side) in [("user side", &e.user_side), ("token side", &e.token_side)] {
        let Some(side) = side else { continue };
        let has = side
            .permissions
            .flag(e.privilege)
            .map_or("lacks it".to_owned(), |f| format!("has it (propagate {})", u8::from(f)));
        let _ = writeln!(out, "{label} ({}): {has}", side.subject);
        for step in &side.trace.steps {
            let target = if step.is_target { " (target)" } else { "" };
            match step.matched {
                Some(kind) => {
                    let kind = match kind {
                        MatchKind::Token => "token entries",
                        MatchKind::User => "user entries",
                        MatchKind::Group => "group entries",
                    };
                    let _ = writeln!(out, "  {}{target}: {kind} replace the inherited roles:", step.path);
                    for entry in &step.applied {
                        let _ = writeln!(out, "    {}", describe(entry));
                    }
                }
                None => {
                    let _ = writeln!(out, "  {}{target}: nothing applies here", step.path);
                }
            }
            for entry in &step.skipped {
                let why = if !step.is_target && !entry.propagate { "not propagating" } else { "outranked" };
                let _ = writeln!(out, "    skipped ({why}): {}", describe(entry));
            }
        }
        if let Some(pool) = &side.pool {
            let names: Vec<String> = pool.pools.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "  pool member of {}:", names.join(", "));
            if pool.ignored_due_to_no_access {
                let _ = writeln!(out, "    pool roles ignored: the path's own ACLs resolve to NoAccess");
            }
            for entry in &pool.entries {
                let _ = writeln!(out, "    {} (added with propagate 0)", describe(entry));
            }
        }
        for entry in &side.blocking {
            let _ = writeln!(out, "  blocked by NoAccess: {}", describe(entry));
        }
        for entry in &side.granting {
            let _ = writeln!(out, "  granted by: {}", describe(entry));
        }
    }
    out
}

fn describe(e: &EntryRef) -> String {
    format!("acl:{}:{}:{}:{}", u8::from(e.propagate), e.path, e.subject, e.role)
}

impl Evaluator<'_> {
    /// Why `subject` has or lacks `privilege` on `path` (raw path, as [`Evaluator::permissions_raw`]).
    pub fn explain(&self, subject: &Subject, path: &str, privilege: Privilege) -> Explanation {
        explain(self.user_cfg(), self.catalog(), subject, path, privilege)
    }
}

/// Reference permissions (slow path), used to cross-check the compiled evaluator.
pub fn reference_permissions(cfg: &UserCfg, catalog: &Catalog, subject: &Subject, path: &str) -> Permissions {
    let mut granted = PrivSet::EMPTY;
    let mut prop = PrivSet::EMPTY;
    for p in catalog.privileges().iter() {
        let e = explain(cfg, catalog, subject, path, p);
        if let Some(flag) = e.propagate {
            granted.insert(p);
            if flag {
                prop.insert(p);
            }
        }
    }
    Permissions::new(granted, prop)
}
