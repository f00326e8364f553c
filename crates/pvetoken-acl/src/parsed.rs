//! `user.cfg` as parsed: ids interned once, records in flat tables that borrow the text, and the public
//! [`UserCfg`] model built from it only when asked.
//!
//! This is the parser. Proxmox reads user.cfg line by line and each line is checked against what the lines before
//! it defined (a token needs its user, an ACL entry its role and its token; a repeated `user:` line replaces the
//! user, tokens included), so the parser keeps that state here, where a lookup is a hash of a borrowed slice and a
//! record is a few integers: the common lines (`user:`, `token:`, `acl:`) allocate nothing of their own. Free text
//! stays as written (still `%XX`-encoded) until [`ParsedCfg::to_user_cfg`] decodes it.
//!
//! What evaluation needs is kept apart in [`Access`], which [`crate::eval::Engine`] compiles, for every subject or
//! only for those a batch asks about ([`ParsedCfg::engine_for`]). [`Access::from_user_cfg`] gives the same facts
//! for a model that was built or changed in memory (the lab), so there is one compiler for both.
//!
//! ```
//! use pvetoken_acl::{Catalog, ParsedCfg};
//!
//! let catalog = Catalog::newest();
//! let text = "user:ci@pve:1:0::::::\ntoken:ci@pve!tf:0:1::\nacl:1:/vms:ci@pve,ci@pve!tf:PVEVMAdmin:\n";
//! let (parsed, warnings) = ParsedCfg::parse(text, &catalog);
//! assert!(warnings.is_empty());
//! let engine = parsed.engine_for(&catalog, ["ci@pve!tf"]);
//! let token = "ci@pve!tf".parse().unwrap();
//! assert!(engine.permissions_raw(&token, "/vms/100").granted().join().contains("VM.PowerMgmt"));
//! assert_eq!(parsed.to_user_cfg().tokens().count(), 1);
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexSet;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::catalog::{Catalog, PrivSet};
use crate::eval::Engine;
use crate::hash::StrHash;
use crate::ids::{
    AclPath, GroupId, PoolId, RoleId, TokenId, TokenName, UserId, is_name_chars, is_token_id, is_user_id, validate_pool,
};
use crate::usercfg::{
    AclNode, Group, MAX_ACL_PATH_DEPTH, ParseWarning, Pool, Token, User, UserCfg, decode_text, is_normalized_path,
    is_storage_id, list_items, parse_expire, staging_key, trim_perl_space, truthy,
};

/// "None" in the `u32` index columns below.
pub(crate) const NONE: u32 = u32::MAX;

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(NONE)
}

/// Strings interned to dense indices (insertion order). Borrowed from the text when possible; owned only for keys
/// the text does not hold as one slice (a normalised path, a token id joined from a model).

#[derive(Debug, Default)]
pub(crate) struct Interner<'t> {
    set: IndexSet<Cow<'t, str>, StrHash>,
}

impl<'t> Interner<'t> {
    fn intern(&mut self, name: Cow<'t, str>) -> u32 {
        index(self.set.insert_full(name).0)
    }

    /// The index of `name`, if interned.
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        self.set.get_index_of(name).map(index)
    }

    /// The string of index `i`.
    pub(crate) fn name(&self, i: u32) -> &str {
        self.set.get_index(i as usize).map_or("", |s| s.as_ref())
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}

/// Who an ACL fact is for: a subject index (user or token) or a group index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Who {
    User(u32),
    Token(u32),
    Group(u32),
}

/// One ACL entry: one subject, one role. A later line for the same (path, subject, role) changes `propagate`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AclFact {
    pub(crate) path: u32,
    pub(crate) who: Who,
    pub(crate) role: u32,
    pub(crate) propagate: bool,
}

/// A token: its subject index, its owner's and whether it is privilege-separated. It exists while its owner's
/// definition is the one it was created under (`owner_epoch`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenFact {
    pub(crate) subject: u32,
    pub(crate) owner: u32,
    pub(crate) privsep: bool,
    owner_epoch: u32,
}

/// What permission evaluation reads: users, tokens, group members, custom roles, ACL entries and pool members,
/// as indices. Built by the parser, or from a [`UserCfg`] with [`Access::from_user_cfg`].
#[derive(Debug, Default)]
pub struct Access<'t> {
    /// Users, tokens and any user or token id a group or an ACL entry names: one index space.
    pub(crate) subjects: Interner<'t>,
    /// Per subject: the definition number when it is an existing user (0: not a user).
    pub(crate) user_epoch: Vec<u32>,
    /// Per subject: the index in `tokens` when it was ever a token (see [`Access::live_token`]).
    token_of: Vec<u32>,
    pub(crate) tokens: Vec<TokenFact>,
    /// Groups, and group names ACL entries mention.
    pub(crate) groups: Interner<'t>,
    /// Per group: defined by a `group:` line.
    pub(crate) group_defined: Vec<bool>,
    /// (group, member subject, the member's definition number then, or 0 when it was not a user), in file order.
    pub(crate) members: Vec<(u32, u32, u32)>,
    /// Valid role names seen (custom or built-in).
    pub(crate) roles: Interner<'t>,
    /// Per role: its privileges when a custom `role:` line defined it.
    pub(crate) custom_roles: Vec<Option<PrivSet>>,
    /// ACL nodes with entries, by staging key (`/`, `/vms/100`; Perl-false components dropped).
    pub(crate) paths: Interner<'t>,
    pub(crate) acl: Vec<AclFact>,
    /// Pools (and the parents nested pools create).
    pub(crate) pools: Interner<'t>,
    /// (guest, pool); a guest is in at most one pool.
    pub(crate) vms: Vec<(u64, u32)>,
    /// (pool, storage id); may repeat.
    pub(crate) storage: Vec<(u32, Cow<'t, str>)>,
}

impl<'t> Access<'t> {
    fn subject(&mut self, id: Cow<'t, str>) -> u32 {
        let i = self.subjects.intern(id);
        if self.user_epoch.len() < self.subjects.len() {
            self.user_epoch.push(0);
            self.token_of.push(NONE);
        }
        i
    }

    fn group(&mut self, id: Cow<'t, str>) -> u32 {
        let i = self.groups.intern(id);
        if self.group_defined.len() < self.groups.len() {
            self.group_defined.push(false);
        }
        i
    }

    /// The token fact of subject `i` when it exists now.
    pub(crate) fn live_token(&self, i: u32) -> Option<&TokenFact> {
        let token = self.tokens.get(*self.token_of.get(i as usize)? as usize)?;
        (self.user_epoch[token.owner as usize] == token.owner_epoch).then_some(token)
    }

    fn is_user(&self, i: u32) -> bool {
        self.user_epoch[i as usize] != 0
    }

    /// Defines (or redefines, dropping its tokens) user `i`.
    fn define_user(&mut self, i: u32, epoch: u32) {
        self.user_epoch[i as usize] = epoch;
    }

    /// Adds or updates a token; returns its index and whether it existed already.
    fn put_token(&mut self, subject: u32, owner: u32, privsep: bool) -> (usize, bool) {
        let existed = self.live_token(subject).is_some();
        let fact = TokenFact { subject, owner, privsep, owner_epoch: self.user_epoch[owner as usize] };
        match self.token_of[subject as usize] {
            NONE => {
                self.token_of[subject as usize] = index(self.tokens.len());
                self.tokens.push(fact);
                (self.tokens.len() - 1, false)
            }
            t => {
                self.tokens[t as usize] = fact;
                (t as usize, existed)
            }
        }
    }

    /// The user id of the owner and the token name of a token id (split at the last `!`).
    fn split_token(id: &str) -> (&str, &str) {
        id.rsplit_once('!').unwrap_or((id, ""))
    }

    /// The facts of a model built or changed in memory (strings borrowed from it; token ids joined).
    pub fn from_user_cfg(cfg: &'t UserCfg) -> Access<'t> {
        let mut access = Access::default();
        for (epoch, (user, record)) in cfg.users.iter().enumerate() {
            let owner = access.subject(Cow::Borrowed(user.as_str()));
            access.define_user(owner, index(epoch + 1));
            for (name, token) in &record.tokens {
                let id = access.subject(Cow::Owned(format!("{user}!{name}")));
                access.put_token(id, owner, token.privsep);
            }
        }
        for (group, record) in &cfg.groups {
            let g = access.group(Cow::Borrowed(group.as_str()));
            access.group_defined[g as usize] = true;
            for member in &record.members {
                let m = access.subject(Cow::Borrowed(member.as_str()));
                access.members.push((g, m, access.user_epoch[m as usize]));
            }
        }
        for (role, privs) in &cfg.roles {
            let r = access.roles.intern(Cow::Borrowed(role.as_str()));
            access.custom_roles.resize(access.roles.len(), None);
            access.custom_roles[r as usize] = Some(*privs);
        }
        for (key, node) in &cfg.acl {
            let path = access.paths.intern(Cow::Owned(format!("/{}", key.join("/"))));
            for (user, roles) in &node.users {
                // An entry for an id that is not a user still counts when a group names it (as in Proxmox).
                let who = Who::User(access.subject(Cow::Borrowed(user.as_str())));
                access.push_roles(path, who, roles);
            }
            for (token, roles) in &node.tokens {
                let who = Who::Token(access.subject(Cow::Borrowed(token.as_str())));
                access.push_roles(path, who, roles);
            }
            for (group, roles) in &node.groups {
                let who = Who::Group(access.group(Cow::Borrowed(group.as_str())));
                access.push_roles(path, who, roles);
            }
        }
        for (pool, record) in &cfg.pools {
            let p = access.pools.intern(Cow::Borrowed(pool.as_str()));
            access.vms.extend(record.vms.iter().map(|vm| (*vm, p)));
            access.storage.extend(record.storage.iter().map(|s| (p, Cow::Borrowed(s.as_str()))));
        }
        access
    }

    fn push_roles(&mut self, path: u32, who: Who, roles: &'t BTreeMap<RoleId, bool>) {
        for (role, &propagate) in roles {
            let r = self.roles.intern(Cow::Borrowed(role.as_str()));
            self.custom_roles.resize(self.roles.len(), None);
            self.acl.push(AclFact { path, who, role: r, propagate });
        }
    }
}

/// `text.split(byte)` for an ASCII byte, found with `memchr`: `str::split` with a `char` pattern confirms each
/// match with a `memcmp` call, which showed up as the parser's top cost.
fn split_bytes(text: &str, byte: u8) -> impl Iterator<Item = &str> {
    let ends = memchr::memchr_iter(byte, text.as_bytes()).chain(std::iter::once(text.len()));
    let mut start = 0;
    // An ASCII byte is a character boundary on both sides, so every slice is valid.
    ends.map(move |end| {
        let field = text.get(start..end).unwrap_or("");
        start = end + 1;
        field
    })
}

/// The depth of a path that is its own staging key: `/`, or `/`-separated non-empty components of ACL path
/// characters, none of them `0`. One pass over the bytes, for the common case; `None` sends the path through
/// `normalize_path` and [`staging_key`].
fn plain_path_depth(path: &str) -> Option<usize> {
    if path == "/" {
        return Some(0);
    }
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.last() == Some(&b'/') {
        return None;
    }
    let mut depth = 0;
    for component in bytes[1..].split(|b| *b == b'/') {
        let valid = component.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'));
        if component.is_empty() || component == b"0" || !valid {
            return None;
        }
        depth += 1;
    }
    Some(depth)
}

/// The descriptive fields of a user's current definition, as written (decoded when the model is built).
#[derive(Debug, Clone, Copy)]
struct UserLine<'t> {
    subject: u32,
    enable: bool,
    expire: u64,
    /// firstname, lastname, email, comment, keys.
    text: [&'t str; 5],
}

/// user.cfg as parsed (see the [module documentation](self)).
#[derive(Debug)]
pub struct ParsedCfg<'t> {
    access: Access<'t>,
    /// Per subject: index in `users` (NONE: not a user).
    user_line: Vec<u32>,
    users: Vec<UserLine<'t>>,
    /// Per token fact: expiry and comment as written.
    token_details: Vec<(u64, &'t str)>,
    /// Per group: its comment as written.
    group_comments: Vec<&'t str>,
    /// Per pool: its comment as written.
    pool_comments: Vec<&'t str>,
    /// Per role: built in (decided once per name).
    role_builtin: Vec<bool>,
    /// (path, who, role) → index in `access.acl`: a repeated entry updates the first.
    acl_index: FxHashMap<(u32, Who, u32), u32>,
    /// Guests already in a pool (the first pool keeps a guest).
    vm_seen: FxHashSet<u64>,
    epochs: u32,
}

impl<'t> ParsedCfg<'t> {
    /// Parses user.cfg the way Proxmox does: lines it ignores are dropped with a warning (never an error).
    /// Which privileges exist, which role names are built in and whether pools may nest depend on `catalog`.
    pub fn parse(text: &'t str, catalog: &Catalog) -> (ParsedCfg<'t>, Vec<ParseWarning>) {
        let mut parsed = ParsedCfg {
            access: Access::default(),
            user_line: Vec::new(),
            users: Vec::new(),
            token_details: Vec::new(),
            group_comments: Vec::new(),
            pool_comments: Vec::new(),
            role_builtin: Vec::new(),
            acl_index: FxHashMap::default(),
            vm_seen: FxHashSet::default(),
            epochs: 0,
        };
        // `userconfig_force_defaults` runs before the lines too: root@pam exists (enabled) from the start.
        parsed.define_user("root@pam", true, 0, [""; 5]);
        let mut warnings = Vec::new();
        for (number, raw_line) in split_bytes(text, b'\n').enumerate() {
            let line = trim_perl_space(raw_line);
            if line.is_empty() {
                continue;
            }
            let mut warn = |message: String| warnings.push(ParseWarning { line: number + 1, message });
            parsed.parse_line(line, catalog, &mut warn);
        }
        (parsed, warnings)
    }

    /// The evaluation facts.
    pub fn access(&self) -> &Access<'t> {
        &self.access
    }

    /// The permission engine for every subject.
    pub fn engine(&self, catalog: &Catalog) -> Engine {
        Engine::compile(&self.access, catalog, None)
    }

    /// The permission engine for `subjects` only (with their owners and groups): the others answer nothing.
    pub fn engine_for<'s>(&self, catalog: &Catalog, subjects: impl IntoIterator<Item = &'s str>) -> Engine {
        let wanted = subjects.into_iter().filter_map(|s| self.access.subjects.get(s)).collect::<Vec<_>>();
        Engine::compile(&self.access, catalog, Some(&wanted))
    }

    fn subject(&mut self, id: &'t str) -> u32 {
        let i = self.access.subject(Cow::Borrowed(id));
        if self.user_line.len() < self.access.subjects.len() {
            self.user_line.push(NONE);
        }
        i
    }

    fn define_user(&mut self, id: &'t str, enable: bool, expire: u64, text: [&'t str; 5]) {
        let subject = self.subject(id);
        self.epochs += 1;
        self.access.define_user(subject, self.epochs);
        let line = UserLine { subject, enable, expire, text };
        match self.user_line[subject as usize] {
            NONE => {
                self.user_line[subject as usize] = index(self.users.len());
                self.users.push(line);
            }
            i => self.users[i as usize] = line,
        }
    }

    fn parse_line(&mut self, line: &'t str, catalog: &Catalog, warn: &mut impl FnMut(String)) {
        // Missing fields read as empty, like Perl's split (which drops trailing empty fields) indexed past the end.
        let mut fields = [""; 9];
        for (slot, value) in fields.iter_mut().zip(split_bytes(line, b':')) {
            *slot = trim_perl_space(value);
        }
        match fields[0] {
            "user" => self.parse_user(&fields, warn),
            "group" => self.parse_group(fields[1], fields[2], fields[3], warn),
            "role" => self.parse_role(fields[1], fields[2], catalog, warn),
            "acl" => self.parse_acl(fields[1], fields[2], fields[3], fields[4], catalog, warn),
            "pool" => self.parse_pool(fields[1], fields[2], fields[3], fields[4], catalog, warn),
            "token" => self.parse_token(fields[1], fields[2], fields[3], fields[4], warn),
            _ => warn(format!("user config - ignore config line: {line}")),
        }
    }

    fn parse_user(&mut self, fields: &[&'t str; 9], warn: &mut impl FnMut(String)) {
        let name = fields[1];
        if !is_user_id(name) {
            warn(format!("user config - ignore user '{name}' - invalid user name"));
            return;
        }
        let Some(expire) = parse_expire(fields[3]) else {
            warn(format!("user config - ignore user '{name}' - (illegal characters in expire '{}')", fields[3]));
            return;
        };
        // A repeated user line replaces the whole record, tokens and group links included (as Proxmox does).
        self.define_user(name, truthy(fields[2]), expire, [fields[4], fields[5], fields[6], fields[7], fields[8]]);
    }

    fn parse_group(&mut self, name: &'t str, members: &'t str, comment: &'t str, warn: &mut impl FnMut(String)) {
        if !is_name_chars(name) {
            warn(format!("user config - ignore group '{name}' - invalid characters in group name"));
            return;
        }
        let group = self.access.group(Cow::Borrowed(name));
        self.access.group_defined[group as usize] = true;
        self.group_comments.resize(self.access.groups.len(), "");
        if truthy(comment) {
            self.group_comments[group as usize] = comment;
        }
        for member in list_items(members) {
            if !is_user_id(member) {
                warn(format!("user config - ignore invalid group member '{member}'"));
                continue;
            }
            let subject = self.subject(member);
            if !self.access.is_user(subject) {
                // Proxmox warns "ignore" but keeps the member: it still counts for evaluation.
                warn(format!("user config - ignore invalid group member '{member}'"));
            }
            self.access.members.push((group, subject, self.access.user_epoch[subject as usize]));
        }
    }

    /// The index of a valid role name, interned on first sight with whether it is built in.
    fn role(&mut self, name: &'t str, catalog: &Catalog) -> u32 {
        let role = self.access.roles.intern(Cow::Borrowed(name));
        if self.role_builtin.len() < self.access.roles.len() {
            self.role_builtin.push(catalog.is_builtin_role(name));
            self.access.custom_roles.push(None);
        }
        role
    }

    fn parse_role(&mut self, name: &'t str, privs: &str, catalog: &Catalog, warn: &mut impl FnMut(String)) {
        if !is_name_chars(name) {
            warn(format!("user config - ignore role '{name}' - invalid characters in role name"));
            return;
        }
        let role = self.role(name, catalog);
        let mut set = self.access.custom_roles[role as usize].unwrap_or_default();
        for privilege in list_items(privs) {
            match catalog.privilege(privilege) {
                Ok(p) => set.insert(p),
                Err(_) => warn(format!("user config - ignore invalid privilege '{privilege}'")),
            }
        }
        // A line reusing a built-in name does not change the built-in definition.
        if !self.role_builtin[role as usize] {
            self.access.custom_roles[role as usize] = Some(set);
        }
    }

    fn parse_acl(
        &mut self,
        propagate: &str,
        path: &'t str,
        subjects: &'t str,
        roles: &'t str,
        catalog: &Catalog,
        warn: &mut impl FnMut(String),
    ) {
        let propagate = truthy(propagate);
        let components = |p: &str| p.split('/').filter(|c| !c.is_empty()).count();
        let (key, depth): (Cow<'t, str>, usize) = if let Some(depth) = plain_path_depth(path) {
            (Cow::Borrowed(path), depth)
        } else if is_normalized_path(path) {
            (staging_key(path), components(path))
        } else {
            let Some(normalized) = AclPath::normalize(path) else {
                warn(format!("user config - ignore invalid path in acl '{path}'"));
                return;
            };
            (Cow::Owned(staging_key(normalized.as_str()).into_owned()), components(normalized.as_str()))
        };
        if depth > MAX_ACL_PATH_DEPTH {
            warn(format!(
                "user config - ignore acl path with {depth} components (PVE's API accepts at most 5; \
                 pvetoken reads at most {MAX_ACL_PATH_DEPTH})"
            ));
            return;
        }
        // The node is created on its first entry, as `find_acl_tree_node` does.
        let mut node = self.access.paths.get(&key);
        for role_name in list_items(roles) {
            if !is_name_chars(role_name) {
                warn(format!("user config - ignore invalid role name '{role_name}' in acl"));
                continue;
            }
            let role = self.role(role_name, catalog);
            if !self.role_builtin[role as usize] && self.access.custom_roles[role as usize].is_none() {
                warn(format!("user config - ignore invalid acl role '{role_name}'"));
                continue;
            }
            for ug in list_items(subjects) {
                let Some(who) = self.acl_subject(ug, warn) else { continue };
                let path = *node.get_or_insert_with(|| self.access.paths.intern(key.clone()));
                self.put_acl(AclFact { path, who, role, propagate });
            }
        }
    }

    /// The subject of one ACL member (`@group`, user or token), with Proxmox's warnings; `None` when ignored.
    fn acl_subject(&mut self, ug: &'t str, warn: &mut impl FnMut(String)) -> Option<Who> {
        if let Some(group) = ug.strip_prefix('@').filter(|g| truthy(g) && is_name_chars(g)) {
            let g = self.access.group(Cow::Borrowed(group));
            if !self.access.group_defined[g as usize] {
                warn(format!("user config - ignore invalid acl group '{group}'"));
            }
            Some(Who::Group(g))
        } else if is_user_id(ug) {
            let subject = self.subject(ug);
            if !self.access.is_user(subject) {
                warn(format!("user config - ignore invalid acl member '{ug}'"));
            }
            Some(Who::User(subject))
        } else if is_token_id(ug) {
            match self.access.subjects.get(ug).filter(|&s| self.access.live_token(s).is_some()) {
                Some(subject) => Some(Who::Token(subject)),
                None => {
                    warn(format!("user config - ignore invalid acl token '{ug}'"));
                    None
                }
            }
        } else {
            warn(format!("user config - invalid user/group '{ug}' in acl"));
            None
        }
    }

    fn put_acl(&mut self, fact: AclFact) {
        let next = index(self.access.acl.len());
        let slot = *self.acl_index.entry((fact.path, fact.who, fact.role)).or_insert(next);
        if slot == next {
            self.access.acl.push(fact);
        } else {
            self.access.acl[slot as usize].propagate = fact.propagate;
        }
    }

    fn parse_pool(
        &mut self,
        name: &'t str,
        comment: &'t str,
        vms: &str,
        storage: &'t str,
        catalog: &Catalog,
        warn: &mut impl FnMut(String),
    ) {
        let valid = validate_pool(name).is_ok()
            && name.parse::<PoolId>().is_ok_and(|pool| catalog.check_pool_id(&pool).is_ok());
        if !valid {
            warn(format!("user config - ignore pool '{name}' - invalid characters in pool name"));
            return;
        }
        let pool = self.access.pools.intern(Cow::Borrowed(name));
        // Nested pools create their missing parents.
        let mut current = name;
        while let Some((parent, _)) = current.rsplit_once('/') {
            if validate_pool(parent).is_ok() {
                self.access.pools.intern(Cow::Borrowed(parent));
            }
            current = parent;
        }
        self.pool_comments.resize(self.access.pools.len(), "");
        if truthy(comment) {
            self.pool_comments[pool as usize] = comment;
        }
        for vmid in list_items(vms) {
            if vmid.is_empty() || !vmid.bytes().all(|b| b.is_ascii_digit()) {
                warn(format!("user config - ignore invalid vmid '{vmid}' in pool '{name}'"));
                continue;
            }
            let id = vmid.bytes().fold(0u64, |acc, b| acc.saturating_mul(10).saturating_add(u64::from(b - b'0')));
            if !self.vm_seen.insert(id) {
                warn(format!("user config - ignore duplicate vmid '{id}' in pool '{name}'"));
                continue;
            }
            self.access.vms.push((id, pool));
        }
        for store in list_items(storage) {
            if !is_storage_id(store) {
                warn(format!("user config - ignore invalid storage '{store}' in pool '{name}'"));
                continue;
            }
            self.access.storage.push((pool, Cow::Borrowed(store)));
        }
    }

    fn parse_token(
        &mut self,
        id: &'t str,
        expire: &str,
        privsep: &str,
        comment: &'t str,
        warn: &mut impl FnMut(String),
    ) {
        if !is_token_id(id) {
            warn(format!("user config - ignore invalid tokenid '{id}'"));
            return;
        }
        let Some(expire_value) = parse_expire(expire) else {
            warn(format!("user config - ignore token '{id}' - (illegal characters in expire '{expire}')"));
            return;
        };
        let (user, _) = Access::split_token(id);
        let Some(owner) = self.access.subjects.get(user).filter(|&u| self.access.is_user(u)) else {
            warn(format!("user config - ignore token '{id}' - user does not exist"));
            return;
        };
        let subject = self.subject(id);
        let (t, existed) = self.access.put_token(subject, owner, truthy(privsep));
        self.token_details.resize(self.access.tokens.len(), (0, ""));
        let details = &mut self.token_details[t];
        // An existing token keeps its comment when the line has none.
        let kept = if existed { details.1 } else { "" };
        *details = (expire_value, if truthy(comment) { comment } else { kept });
    }

    /// Builds the public model (ids validated once more by construction, free text decoded).
    pub fn to_user_cfg(&self) -> UserCfg {
        let access = &self.access;
        let mut cfg = UserCfg::default();
        let text = |s: &str| truthy(s).then(|| decode_text(s));
        for line in &self.users {
            let [firstname, lastname, email, comment, keys] = line.text;
            let user = User {
                enable: line.enable,
                expire: line.expire,
                firstname: text(firstname),
                lastname: text(lastname),
                email: (!email.is_empty()).then(|| email.to_owned()),
                comment: text(comment),
                keys: truthy(keys).then(|| keys.to_owned()),
                tokens: BTreeMap::new(),
                groups: BTreeSet::new(),
            };
            cfg.users.insert(UserId::from_trusted(access.subjects.name(line.subject)), user);
        }
        for (t, token) in access.tokens.iter().enumerate() {
            if access.live_token(token.subject).is_none() {
                continue;
            }
            let (_, name) = Access::split_token(access.subjects.name(token.subject));
            let (expire, comment) = self.token_details[t];
            if let Some(user) = cfg.users.get_mut(access.subjects.name(token.owner)) {
                user.tokens.insert(
                    TokenName::from_trusted(name),
                    Token { privsep: token.privsep, expire, comment: text(comment) },
                );
            }
        }
        for (g, defined) in access.group_defined.iter().enumerate() {
            if *defined {
                let comment = text(self.group_comments.get(g).copied().unwrap_or(""));
                cfg.groups.insert(
                    GroupId::from_trusted(access.groups.name(index(g))),
                    Group { members: BTreeSet::new(), comment },
                );
            }
        }
        for &(g, member, epoch) in &access.members {
            let group = GroupId::from_trusted(access.groups.name(g));
            let user = UserId::from_trusted(access.subjects.name(member));
            if epoch != 0
                && access.user_epoch[member as usize] == epoch
                && let Some(record) = cfg.users.get_mut(&user)
            {
                record.groups.insert(group.clone());
            }
            if let Some(record) = cfg.groups.get_mut(&group) {
                record.members.insert(user);
            }
        }
        for (r, privs) in access.custom_roles.iter().enumerate() {
            if let Some(privs) = privs {
                cfg.roles.insert(RoleId::from_trusted(access.roles.name(index(r))), *privs);
            }
        }
        for p in 0..access.pools.len() {
            let comment = text(self.pool_comments.get(p).copied().unwrap_or(""));
            cfg.pools.insert(PoolId::from_trusted(access.pools.name(index(p))), Pool { comment, ..Pool::default() });
        }
        for &(vm, p) in &access.vms {
            let pool = PoolId::from_trusted(access.pools.name(p));
            if let Some(record) = cfg.pools.get_mut(&pool) {
                record.vms.insert(vm);
            }
            cfg.vm_pool.insert(vm, pool);
        }
        for (p, store) in &access.storage {
            if let Some(record) = cfg.pools.get_mut(access.pools.name(*p)) {
                record.storage.insert(store.to_string());
            }
        }
        self.fill_acl(&mut cfg);
        cfg
    }

    /// The ACL tree with the intermediate nodes `find_acl_tree_node` creates.
    fn fill_acl(&self, cfg: &mut UserCfg) {
        let access = &self.access;
        // Nodes are filled by path index and moved into the tree once each.
        let mut nodes: Vec<AclNode> = (0..access.paths.len()).map(|_| AclNode::default()).collect();
        for fact in &access.acl {
            let node = &mut nodes[fact.path as usize];
            let role = RoleId::from_trusted(access.roles.name(fact.role));
            match fact.who {
                Who::User(s) => entry(&mut node.users, access.subjects.name(s), UserId::from_trusted),
                Who::Token(s) => entry(&mut node.tokens, access.subjects.name(s), |id| {
                    let (user, name) = Access::split_token(id);
                    TokenId::new(&UserId::from_trusted(user), &TokenName::from_trusted(name))
                }),
                Who::Group(g) => entry(&mut node.groups, access.groups.name(g), GroupId::from_trusted),
            }
            .insert(role, fact.propagate);
        }
        for (p, node) in nodes.into_iter().enumerate() {
            let key: Vec<String> =
                access.paths.name(index(p)).split('/').filter(|c| !c.is_empty()).map(str::to_owned).collect();
            for depth in 0..key.len() {
                if !cfg.acl.contains_key(&key[..depth]) {
                    cfg.acl.insert(key[..depth].to_vec(), AclNode::default());
                }
            }
            cfg.acl.insert(key, node);
        }
    }
}

/// The role map of `id` in one of a node's maps, created (with an id built by `make`) when missing.
fn entry<'m, K: Ord + std::borrow::Borrow<str>>(
    map: &'m mut BTreeMap<K, BTreeMap<RoleId, bool>>,
    id: &str,
    make: impl FnOnce(&str) -> K,
) -> &'m mut BTreeMap<RoleId, bool> {
    if !map.contains_key(id) {
        map.insert(make(id), BTreeMap::new());
    }
    map.get_mut(id).unwrap_or_else(|| unreachable!("inserted above"))
}
