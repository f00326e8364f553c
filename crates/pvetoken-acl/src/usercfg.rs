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

/// ACL nodes while parsing, keyed by the tree key written as a path (`/` for the root, `/vms/100`): tree order
/// is only needed at the end, when they are merged into [`UserCfg::acl`] in one go.
type Staging = rustc_hash::FxHashMap<String, AclNode>;

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

/// `split_list`: NUL-separated if a NUL is present, else split on `,`, `;` and whitespace.
pub(crate) fn split_list(s: &str) -> Vec<&str> {
    list_items(s).collect()
}

/// [`split_list`] without collecting: NUL-separated lists keep inner empty items and drop trailing ones.
fn list_items(s: &str) -> impl Iterator<Item = &str> {
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
fn parse_expire(s: &str) -> Option<u64> {
    if !truthy(s) {
        return Some(0);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))))
}

fn is_storage_id(s: &str) -> bool {
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
fn staging_key(path: &str) -> std::borrow::Cow<'_, str> {
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
fn is_normalized_path(raw: &str) -> bool {
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
    pub fn parse(text: &str, catalog: &Catalog) -> (UserCfg, Vec<ParseWarning>) {
        let mut cfg = UserCfg::default();
        let mut warnings = Vec::new();
        // ACL nodes are staged in a hash map while parsing (tree order is only needed at the end).
        let mut staging = Staging::default();
        for (index, raw_line) in text.split('\n').enumerate() {
            let line = raw_line.trim_matches(is_perl_space);
            if line.is_empty() {
                continue;
            }
            let mut warn = |message: String| warnings.push(ParseWarning { line: index + 1, message });
            cfg.parse_line(line, catalog, &mut staging, &mut warn);
        }
        cfg.merge_staging(staging);
        cfg.force_defaults();
        (cfg, warnings)
    }

    /// Moves the staged ACL nodes into the tree, creating the intermediate nodes `find_acl_tree_node` creates.
    fn merge_staging(&mut self, mut staging: Staging) {
        let keys: Vec<String> = staging.keys().cloned().collect();
        for key in keys {
            let mut end = key.len();
            while let Some(slash) = key[..end].rfind('/') {
                let parent = if slash == 0 { "/" } else { &key[..slash] };
                if staging.contains_key(parent) {
                    break;
                }
                staging.insert(parent.to_owned(), AclNode::default());
                end = slash;
            }
        }
        let mut nodes: Vec<(Vec<String>, AclNode)> = staging
            .into_iter()
            .map(|(key, node)| (key.split('/').filter(|c| !c.is_empty()).map(str::to_owned).collect(), node))
            .collect();
        for (key, node) in std::mem::take(&mut self.acl) {
            // Nodes already in the tree (the root) stay unless staged (keys are then distinct).
            if !nodes.iter().any(|(k, _)| *k == key) {
                nodes.push((key, node));
            }
        }
        self.acl = nodes.into_iter().collect();
    }

    fn parse_line(&mut self, line: &str, catalog: &Catalog, staging: &mut Staging, warn: &mut impl FnMut(String)) {
        // Missing fields read as empty, like Perl's split (which drops trailing empty fields) indexed past the end.
        let mut fields = [""; 9];
        for (slot, value) in fields.iter_mut().zip(line.split(':')) {
            *slot = value.trim_matches(is_perl_space);
        }
        let field = |i: usize| fields[i];
        match field(0) {
            "user" => self.parse_user(&fields[1..], warn),
            "group" => self.parse_group(field(1), field(2), field(3), warn),
            "role" => self.parse_role(field(1), field(2), catalog, warn),
            "acl" => self.parse_acl(field(1), field(2), field(3), field(4), catalog, staging, warn),
            "pool" => self.parse_pool(field(1), field(2), field(3), field(4), catalog, warn),
            "token" => self.parse_token(field(1), field(2), field(3), field(4), warn),
            _ => warn(format!("user config - ignore config line: {line}")),
        }
    }

    fn parse_user(&mut self, data: &[&str], warn: &mut impl FnMut(String)) {
        let field = |i: usize| data.get(i).copied().unwrap_or("");
        let name = field(0);
        let Ok(user) = name.parse::<UserId>() else {
            warn(format!("user config - ignore user '{name}' - invalid user name"));
            return;
        };
        let Some(expire) = parse_expire(field(2)) else {
            warn(format!("user config - ignore user '{name}' - (illegal characters in expire '{}')", field(2)));
            return;
        };
        let text = |s: &str| truthy(s).then(|| decode_text(s));
        let record = User {
            enable: truthy(field(1)),
            expire,
            firstname: text(field(3)),
            lastname: text(field(4)),
            email: (!field(5).is_empty()).then(|| field(5).to_owned()),
            comment: text(field(6)),
            keys: truthy(field(7)).then(|| field(7).to_owned()),
            tokens: BTreeMap::new(),
            groups: BTreeSet::new(),
        };
        // A repeated user line replaces the whole record, tokens included (as Proxmox does).
        self.users.insert(user, record);
    }

    fn parse_group(&mut self, name: &str, members: &str, comment: &str, warn: &mut impl FnMut(String)) {
        let Ok(group) = name.parse::<GroupId>() else {
            warn(format!("user config - ignore group '{name}' - invalid characters in group name"));
            return;
        };
        let entry = self.groups.entry(group.clone()).or_default();
        if truthy(comment) {
            entry.comment = Some(decode_text(comment));
        }
        for member in split_list(members) {
            let Ok(user) = member.parse::<UserId>() else {
                warn(format!("user config - ignore invalid group member '{member}'"));
                continue;
            };
            if let Some(record) = self.users.get_mut(&user) {
                record.groups.insert(group.clone());
            } else {
                // Proxmox warns "ignore" but keeps the member: it still counts for evaluation.
                warn(format!("user config - ignore invalid group member '{member}'"));
            }
            if let Some(g) = self.groups.get_mut(&group) {
                g.members.insert(user);
            }
        }
    }

    fn parse_role(&mut self, name: &str, privs: &str, catalog: &Catalog, warn: &mut impl FnMut(String)) {
        let Ok(role) = name.parse::<RoleId>() else {
            warn(format!("user config - ignore role '{name}' - invalid characters in role name"));
            return;
        };
        let builtin = catalog.is_builtin_role(role.as_str());
        let mut set = self.roles.get(&role).copied().unwrap_or_default();
        for privilege in split_list(privs) {
            match catalog.privilege(privilege) {
                Ok(p) => set.insert(p),
                Err(_) => warn(format!("user config - ignore invalid privilege '{privilege}'")),
            }
        }
        // A line reusing a built-in name does not change the built-in definition.
        if !builtin {
            self.roles.insert(role, set);
        }
    }

    fn role_exists(&self, role: &RoleId, catalog: &Catalog) -> bool {
        catalog.is_builtin_role(role.as_str()) || self.roles.contains_key(role)
    }

    #[expect(clippy::too_many_arguments, reason = "one argument per user.cfg field, plus the parse state")]
    fn parse_acl(
        &mut self,
        propagate: &str,
        path: &str,
        subjects: &str,
        roles: &str,
        catalog: &Catalog,
        staging: &mut Staging,
        warn: &mut impl FnMut(String),
    ) {
        let propagate = truthy(propagate);
        let normalized;
        let path = if is_normalized_path(path) {
            path
        } else {
            let Some(p) = AclPath::normalize(path) else {
                warn(format!("user config - ignore invalid path in acl '{path}'"));
                return;
            };
            normalized = p;
            normalized.as_str()
        };
        let depth = path.split('/').filter(|c| !c.is_empty()).count();
        if depth > MAX_ACL_PATH_DEPTH {
            warn(format!(
                "user config - ignore acl path with {depth} components (PVE's API accepts at most 5; \
                 pvetoken reads at most {MAX_ACL_PATH_DEPTH})"
            ));
            return;
        }
        let key = staging_key(path);
        // The node is taken out of the staging map for the line and put back if it existed or got an entry: it is
        // created (with its parents, at merge time) on the first entry, as `find_acl_tree_node` does.
        let (stored_key, mut node) = match staging.remove_entry(key.as_ref()) {
            Some((k, n)) => (Some(k), n),
            None => (None, AclNode::default()),
        };
        let mut touched = false;
        for role_name in list_items(roles) {
            let Ok(role) = role_name.parse::<RoleId>() else {
                warn(format!("user config - ignore invalid role name '{role_name}' in acl"));
                continue;
            };
            if !self.role_exists(&role, catalog) {
                warn(format!("user config - ignore invalid acl role '{role_name}'"));
                continue;
            }
            for ug in list_items(subjects) {
                let group = ug.strip_prefix('@').filter(|g| truthy(g) && !g.chars().any(is_perl_space));
                if let Some(group) = group.and_then(|g| g.parse::<GroupId>().ok()) {
                    if !self.groups.contains_key(&group) {
                        warn(format!("user config - ignore invalid acl group '{group}'"));
                    }
                    node.groups.entry(group).or_default().insert(role.clone(), propagate);
                    touched = true;
                } else if let Ok(user) = ug.parse::<UserId>() {
                    if !self.users.contains_key(&user) {
                        warn(format!("user config - ignore invalid acl member '{ug}'"));
                    }
                    node.users.entry(user).or_default().insert(role.clone(), propagate);
                    touched = true;
                } else if let Ok(token) = ug.parse::<TokenId>() {
                    if self.token(&token).is_some() {
                        node.tokens.entry(token).or_default().insert(role.clone(), propagate);
                        touched = true;
                    } else {
                        warn(format!("user config - ignore invalid acl token '{ug}'"));
                    }
                } else {
                    warn(format!("user config - invalid user/group '{ug}' in acl"));
                }
            }
        }
        if touched || stored_key.is_some() {
            staging.insert(stored_key.unwrap_or_else(|| key.into_owned()), node);
        }
    }

    fn parse_pool(
        &mut self,
        name: &str,
        comment: &str,
        vms: &str,
        storage: &str,
        catalog: &Catalog,
        warn: &mut impl FnMut(String),
    ) {
        let pool = match name.parse::<PoolId>() {
            Ok(pool) if catalog.check_pool_id(&pool).is_ok() => pool,
            _ => {
                warn(format!("user config - ignore pool '{name}' - invalid characters in pool name"));
                return;
            }
        };
        self.ensure_pool(&pool);
        if truthy(comment)
            && let Some(p) = self.pools.get_mut(&pool)
        {
            p.comment = Some(decode_text(comment));
        }
        for vmid in split_list(vms) {
            if vmid.is_empty() || !vmid.bytes().all(|b| b.is_ascii_digit()) {
                warn(format!("user config - ignore invalid vmid '{vmid}' in pool '{pool}'"));
                continue;
            }
            let id = vmid.bytes().fold(0u64, |acc, b| acc.saturating_mul(10).saturating_add(u64::from(b - b'0')));
            if self.vm_pool.contains_key(&id) {
                warn(format!("user config - ignore duplicate vmid '{id}' in pool '{pool}'"));
                continue;
            }
            self.vm_pool.insert(id, pool.clone());
            if let Some(p) = self.pools.get_mut(&pool) {
                p.vms.insert(id);
            }
        }
        for store in split_list(storage) {
            if !is_storage_id(store) {
                warn(format!("user config - ignore invalid storage '{store}' in pool '{pool}'"));
                continue;
            }
            if let Some(p) = self.pools.get_mut(&pool) {
                p.storage.insert(store.to_owned());
            }
        }
    }

    /// Creates `pool` and, for nested pools, its missing parents.
    fn ensure_pool(&mut self, pool: &PoolId) {
        let mut current = pool.as_str();
        self.pools.entry(pool.clone()).or_default();
        while let Some((parent, _)) = current.rsplit_once('/') {
            if let Ok(parent_id) = parent.parse::<PoolId>() {
                self.pools.entry(parent_id).or_default();
            }
            current = parent;
        }
    }

    fn parse_token(&mut self, id: &str, expire: &str, privsep: &str, comment: &str, warn: &mut impl FnMut(String)) {
        let Ok(token_id) = id.parse::<TokenId>() else {
            warn(format!("user config - ignore invalid tokenid '{id}'"));
            return;
        };
        let Some(expire_value) = parse_expire(expire) else {
            warn(format!("user config - ignore token '{id}' - (illegal characters in expire '{expire}')"));
            return;
        };
        let Some(user) = self.users.get_mut(token_id.user_str()) else {
            warn(format!("user config - ignore token '{id}' - user does not exist"));
            return;
        };
        let token = user.tokens.entry(token_id.name()).or_default();
        token.privsep = truthy(privsep);
        token.expire = expire_value;
        if truthy(comment) {
            token.comment = Some(decode_text(comment));
        }
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
