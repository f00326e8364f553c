//! `/etc/pve/user.cfg`: the model, Proxmox's lenient parser and its canonical writer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::catalog::{Catalog, PrivSet};
use crate::ids::{AclPath, GroupId, PoolId, Privilege, RoleId, TokenId, TokenName, UserId, is_perl_space};

/// A user (`user:` line).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct User {
    /// `enable` (a missing value in user.cfg means disabled).
    pub enable: bool,
    /// Account expiry, epoch seconds; 0 = never.
    pub expire: u64,
    /// First name (decoded).
    pub firstname: Option<String>,
    /// Last name (decoded).
    pub lastname: Option<String>,
    /// E-mail, stored verbatim.
    pub email: Option<String>,
    /// Comment (decoded).
    pub comment: Option<String>,
    /// Second-factor key ids (legacy `keys` field).
    pub keys: Option<String>,
    /// The user's API tokens.
    pub tokens: BTreeMap<TokenName, Token>,
    /// Groups whose `group:` line named this user after the user was defined (Proxmox's `users.<u>.groups`).
    pub groups: BTreeSet<GroupId>,
}

impl User {
    /// An enabled user that never expires, as the API creates it by default.
    pub fn enabled() -> User {
        User { enable: true, ..User::default() }
    }
}

/// An API token (`token:` line).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Token {
    /// Privilege separation: the token's own ACLs intersected with the owner's (true), or the owner's (false).
    pub privsep: bool,
    /// Expiry, epoch seconds; 0 = never.
    pub expire: u64,
    /// Comment (decoded).
    pub comment: Option<String>,
}

/// A group (`group:` line).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Group {
    /// Members; may name users that do not exist (Proxmox keeps them, with a warning).
    pub members: BTreeSet<UserId>,
    /// Comment (decoded).
    pub comment: Option<String>,
}

/// A resource pool (`pool:` line).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pool {
    /// Comment (decoded).
    pub comment: Option<String>,
    /// Member guests (a guest is in at most one pool).
    pub vms: BTreeSet<u64>,
    /// Member storages (a storage may be in several pools).
    pub storage: BTreeSet<String>,
}

/// Who an ACL entry is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(tag = "type", content = "ugid", rename_all = "lowercase")]
pub enum AclSubject {
    /// `user@realm`.
    User(UserId),
    /// `@group` (the group id without `@`).
    Group(GroupId),
    /// `user@realm!name`.
    Token(TokenId),
}

impl std::fmt::Display for AclSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AclSubject::User(u) => write!(f, "{u}"),
            AclSubject::Group(g) => write!(f, "@{g}"),
            AclSubject::Token(t) => write!(f, "{t}"),
        }
    }
}

/// The entries at one node of the ACL tree: per subject, role → propagate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AclNode {
    /// User entries.
    pub users: BTreeMap<UserId, BTreeMap<RoleId, bool>>,
    /// Group entries.
    pub groups: BTreeMap<GroupId, BTreeMap<RoleId, bool>>,
    /// Token entries.
    pub tokens: BTreeMap<TokenId, BTreeMap<RoleId, bool>>,
}

impl AclNode {
    /// True when the node holds no role.
    pub fn is_empty(&self) -> bool {
        self.users.values().all(BTreeMap::is_empty)
            && self.groups.values().all(BTreeMap::is_empty)
            && self.tokens.values().all(BTreeMap::is_empty)
    }
}

/// One ACL entry, flattened (the shape of GET /access/acl items).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AclEntry {
    /// The node's path.
    pub path: AclPath,
    /// Who.
    #[serde(flatten)]
    pub subject: AclSubject,
    /// Which role.
    pub roleid: RoleId,
    /// Whether it is inherited by paths below.
    pub propagate: bool,
}

/// A parse warning: Proxmox's message (without the trailing newline) and the 1-based line it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParseWarning {
    /// 1-based line number in the input.
    pub line: usize,
    /// Proxmox's wording, e.g. `user config - ignore invalid privilege 'VM.Invalid'`.
    pub message: String,
}

impl std::fmt::Display for ParseWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The whole of user.cfg. Built-in roles are not stored (they come from the [`Catalog`]); `root@pam` always
/// exists after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCfg {
    pub(crate) users: BTreeMap<UserId, User>,
    pub(crate) groups: BTreeMap<GroupId, Group>,
    pub(crate) pools: BTreeMap<PoolId, Pool>,
    pub(crate) roles: BTreeMap<RoleId, PrivSet>,
    /// ACL tree nodes keyed by path components; the key order is Proxmox's tree order (parent first, children
    /// sorted by name). Intermediate nodes exist, as in Proxmox, because they show up in the whole-tree listing.
    pub(crate) acl: BTreeMap<Vec<String>, AclNode>,
    /// Guest → pool.
    pub(crate) vm_pool: BTreeMap<u64, PoolId>,
}

impl Default for UserCfg {
    fn default() -> Self {
        let mut cfg = UserCfg {
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            pools: BTreeMap::new(),
            roles: BTreeMap::new(),
            acl: BTreeMap::new(),
            vm_pool: BTreeMap::new(),
        };
        cfg.force_defaults();
        cfg
    }
}

/// Perl truthiness of a string: empty and `"0"` are false.
pub(crate) fn truthy(s: &str) -> bool {
    !s.is_empty() && s != "0"
}

/// `s` without leading and trailing Perl whitespace (`\s`, which unlike [`str::trim_ascii`] includes vertical
/// tab), compared byte-wise: the common field has none and costs two byte checks.
pub(crate) fn trim_perl_space(s: &str) -> &str {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let bytes = s.as_bytes();
    let start = bytes.iter().position(|b| !is_space(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    // Both ends sit next to ASCII bytes, so they are character boundaries.
    s.get(start..end).unwrap_or(s)
}

/// `split_list`: NUL-separated if a NUL is present, else split on `,`, `;` and whitespace.
pub(crate) fn split_list(s: &str) -> Vec<&str> {
    list_items(s).collect()
}

/// [`split_list`] without collecting: NUL-separated lists keep inner empty items and drop trailing ones.
pub(crate) fn list_items(s: &str) -> impl Iterator<Item = &str> {
    let nul = s.contains('\0');
    let trimmed = if nul { s.trim_end_matches('\0') } else { s };
    // "\0\0" has only trailing empty items: nothing (splitting "" would yield one empty item).
    let take = if nul && trimmed.is_empty() { 0 } else { usize::MAX };
    trimmed
        .split(move |c: char| if nul { c == '\0' } else { c == ',' || c == ';' || is_perl_space(c) })
        .filter(move |p| nul || !p.is_empty())
        .take(take)
}

/// `uri_unescape` then UTF-8 decoding (invalid sequences become U+FFFD).
pub(crate) fn decode_text(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Proxmox's `encode_text`: UTF-8, then `%XX` for control and non-ASCII bytes, `:` and `%`.
pub(crate) fn encode_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        let safe = matches!(b, 0x20..=0x24 | 0x26..=0x39 | 0x3b..=0x7e);
        if safe {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An `expire` field: Perl-falsy means 0; otherwise only ASCII digits. Values beyond u64 saturate.
pub(crate) fn parse_expire(s: &str) -> Option<u64> {
    if !truthy(s) {
        return Some(0);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))))
}

pub(crate) fn is_storage_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// The deepest ACL path read from user.cfg. PVE's API accepts at most five components (`/sdn/zones/Z/V/TAG`), so
/// only a hand-edited file holds a deeper one. Every node of the tree keeps its whole key and the parents of a
/// path are created with it, so a path of N components costs N²/2 component copies: an 8,000-component line
/// took 1.8 GB. Deeper paths are ignored with a warning, like the other entries PVE could not have written.
pub const MAX_ACL_PATH_DEPTH: usize = 32;

/// The tree key of a normalised path. Proxmox's `find_acl_tree_node` skips Perl-false components, so an ACL on
/// `/vms/0` lands on `/vms` (a quirk we reproduce).
pub(crate) fn tree_key(path: &AclPath) -> Vec<String> {
    path.components().filter(|c| truthy(c)).map(str::to_owned).collect()
}

/// The staging key of a normalised path: the path itself unless a component is Perl-false (see [`tree_key`]).
pub(crate) fn staging_key(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.split('/').any(|c| c == "0") {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut key = String::with_capacity(path.len());
    for component in path.split('/').filter(|c| truthy(c)) {
        key.push('/');
        key.push_str(component);
    }
    if key.is_empty() {
        key.push('/');
    }
    std::borrow::Cow::Owned(key)
}

/// A normalised path that needs no copy: `/`, or `/`-separated non-empty components of ACL path characters.
pub(crate) fn is_normalized_path(raw: &str) -> bool {
    raw == "/"
        || (raw.starts_with('/')
            && !raw.ends_with('/')
            && !raw.contains("//")
            && raw.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'/')))
}

fn key_to_path(key: &[String]) -> AclPath {
    let text = if key.is_empty() { "/".to_owned() } else { format!("/{}", key.join("/")) };
    AclPath::normalize(&text).unwrap_or_else(AclPath::root)
}

impl UserCfg {
    /// `userconfig_force_defaults`: root@pam exists (enabled when created here) and the ACL root node exists.
    fn force_defaults(&mut self) {
        self.users.entry(UserId::root()).or_insert_with(User::enabled);
        self.acl.entry(Vec::new()).or_default();
    }

    /// Parses user.cfg the way Proxmox does: lines it ignores are dropped with a warning (never an error).
    /// Which privileges exist, which role names are built in and whether pools may nest depend on `catalog`.
    /// The parser is [`ParsedCfg::parse`](crate::ParsedCfg::parse); this builds the model from it.
    pub fn parse(text: &str, catalog: &Catalog) -> (UserCfg, Vec<ParseWarning>) {
        let (parsed, warnings) = crate::parsed::ParsedCfg::parse(text, catalog);
        (parsed.to_user_cfg(), warnings)
    }

    /// Writes Proxmox's canonical form, byte for byte what `write_user_config` produces.
    pub fn write(&self) -> String {
        let mut out = String::new();
        let text = |v: &Option<String>| v.as_deref().filter(|s| truthy(s)).map(encode_text).unwrap_or_default();
        for (id, user) in &self.users {
            let raw = |v: &Option<String>| v.as_deref().filter(|s| truthy(s)).unwrap_or("").to_owned();
            let _ = writeln!(
                out,
                "user:{id}:{}:{}:{}:{}:{}:{}:{}:",
                u8::from(user.enable),
                user.expire,
                text(&user.firstname),
                text(&user.lastname),
                raw(&user.email),
                text(&user.comment),
                raw(&user.keys),
            );
            for (name, token) in &user.tokens {
                let _ = writeln!(
                    out,
                    "token:{id}!{name}:{}:{}:{}:",
                    token.expire,
                    u8::from(token.privsep),
                    text(&token.comment)
                );
            }
        }
        out.push('\n');
        for (id, group) in &self.groups {
            let members: Vec<&str> = group.members.iter().map(UserId::as_str).collect();
            let _ = writeln!(out, "group:{id}:{}:{}:", members.join(","), text(&group.comment));
        }
        out.push('\n');
        for (id, pool) in &self.pools {
            // Perl sorts the guest ids as strings.
            let mut vms: Vec<String> = pool.vms.iter().map(u64::to_string).collect();
            vms.sort();
            let storage: Vec<&str> = pool.storage.iter().map(String::as_str).collect();
            let _ = writeln!(out, "pool:{id}:{}:{}:{}:", text(&pool.comment), vms.join(","), storage.join(","));
        }
        out.push('\n');
        for (id, privs) in &self.roles {
            let _ = writeln!(out, "role:{id}:{}:", privs.join());
        }
        out.push('\n');
        for (key, node) in &self.acl {
            let path = if key.is_empty() { "/".to_owned() } else { format!("/{}", key.join("/")) };
            // propagate → role list → members
            let mut lines: [BTreeMap<String, BTreeSet<String>>; 2] = [BTreeMap::new(), BTreeMap::new()];
            let mut collect = |member: String, roles: &BTreeMap<RoleId, bool>| {
                for flag in [false, true] {
                    let list: Vec<&str> = roles.iter().filter(|(_, p)| **p == flag).map(|(r, _)| r.as_str()).collect();
                    if !list.is_empty() {
                        lines[usize::from(flag)].entry(list.join(",")).or_default().insert(member.clone());
                    }
                }
            };
            for (group, roles) in &node.groups {
                collect(format!("@{group}"), roles);
            }
            for (user, roles) in &node.users {
                // root@pam is Administrator everywhere; Proxmox never writes its entries.
                if !user.is_root() {
                    collect(user.to_string(), roles);
                }
            }
            for (token, roles) in &node.tokens {
                collect(token.to_string(), roles);
            }
            for (flag, by_roles) in lines.iter().enumerate() {
                for (roles, members) in by_roles {
                    let members: Vec<&str> = members.iter().map(String::as_str).collect();
                    let _ = writeln!(out, "acl:{flag}:{path}:{}:{roles}:", members.join(","));
                }
            }
        }
        out
    }

    /// Users, sorted by id.
    pub fn users(&self) -> &BTreeMap<UserId, User> {
        &self.users
    }

    /// One user.
    pub fn user(&self, id: &UserId) -> Option<&User> {
        self.users.get(id)
    }

    /// One token.
    pub fn token(&self, id: &TokenId) -> Option<&Token> {
        self.users.get(id.user_str())?.tokens.get(id.name_str())
    }

    /// Every token id with its record, sorted.
    pub fn tokens(&self) -> impl Iterator<Item = (TokenId, &Token)> {
        self.users
            .iter()
            .flat_map(|(user, record)| record.tokens.iter().map(move |(name, token)| (TokenId::new(user, name), token)))
    }

    /// Groups, sorted by id.
    pub fn groups(&self) -> &BTreeMap<GroupId, Group> {
        &self.groups
    }

    /// Groups whose member list contains `user` (what evaluation uses).
    pub fn groups_of(&self, user: &UserId) -> Vec<&GroupId> {
        self.groups.iter().filter(|(_, g)| g.members.contains(user)).map(|(id, _)| id).collect()
    }

    /// Pools, sorted by id.
    pub fn pools(&self) -> &BTreeMap<PoolId, Pool> {
        &self.pools
    }

    /// The pool a guest belongs to.
    pub fn pool_of_vm(&self, vmid: u64) -> Option<&PoolId> {
        self.vm_pool.get(&vmid)
    }

    /// Custom (non-built-in) roles.
    pub fn custom_roles(&self) -> &BTreeMap<RoleId, PrivSet> {
        &self.roles
    }

    /// The privileges of a role, built-in (from `catalog`) or custom; `None` if it does not exist.
    pub fn role_privileges(&self, role: &str, catalog: &Catalog) -> Option<PrivSet> {
        catalog.builtin_role(role).or_else(|| self.roles.get(role).copied())
    }

    /// Every role (built-in and custom) with its privileges, sorted by id (GET /access/roles).
    pub fn all_roles(&self, catalog: &Catalog) -> BTreeMap<RoleId, PrivSet> {
        let mut all = catalog.builtin_roles().clone();
        all.extend(self.roles.iter().map(|(k, v)| (k.clone(), *v)));
        all
    }

    /// The ACL tree nodes in Proxmox's tree order (including intermediate nodes without entries).
    pub fn acl_nodes(&self) -> impl Iterator<Item = (AclPath, &AclNode)> {
        self.acl.iter().map(|(key, node)| (key_to_path(key), node))
    }

    /// The node at `path`, if the tree has one.
    pub fn acl_node(&self, path: &AclPath) -> Option<&AclNode> {
        self.acl.get(&tree_key(path))
    }

    /// Every ACL entry, flattened, in tree order (per node: users, groups, tokens; each sorted).
    pub fn acl_entries(&self) -> Vec<AclEntry> {
        let mut out = Vec::new();
        for (path, node) in self.acl_nodes() {
            let mut push = |subject: AclSubject, roles: &BTreeMap<RoleId, bool>| {
                for (role, propagate) in roles {
                    out.push(AclEntry {
                        path: path.clone(),
                        subject: subject.clone(),
                        roleid: role.clone(),
                        propagate: *propagate,
                    });
                }
            };
            for (u, roles) in &node.users {
                push(AclSubject::User(u.clone()), roles);
            }
            for (g, roles) in &node.groups {
                push(AclSubject::Group(g.clone()), roles);
            }
            for (t, roles) in &node.tokens {
                push(AclSubject::Token(t.clone()), roles);
            }
        }
        out
    }

    /// Privileges of `role` in `catalog`'s release (helper for explanations).
    pub(crate) fn role_privs_or_empty(&self, role: &RoleId, catalog: &Catalog) -> PrivSet {
        self.role_privileges(role.as_str(), catalog).unwrap_or_default()
    }

    /// True when `privilege` is granted by role `role`.
    pub fn role_grants(&self, role: &RoleId, privilege: Privilege, catalog: &Catalog) -> bool {
        self.role_privs_or_empty(role, catalog).contains(privilege)
    }
}
