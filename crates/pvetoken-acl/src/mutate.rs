//! The changes the `/access` API makes to user.cfg, validated like Proxmox.
//!
//! Each method checks in Proxmox's order and changes nothing when it fails. [`AccessError`]'s `Display` is
//! Proxmox's inner message (without the `create user failed: ` style prefix the API adds for errors raised inside
//! the config lock, and without the trailing newline); [`AccessError::param`] names the parameter for errors
//! Proxmox raises as parameter exceptions (HTTP 400, or 500 with `400 Parameter verification failed.\n<param>: `
//! when raised inside the lock, as the delegation errors are).

use std::collections::BTreeMap;

use crate::catalog::{Catalog, PrivSet};
use crate::eval::Permissions;
use crate::ids::{AclPath, GroupId, PoolId, Privilege, RoleId, TokenId, TokenName, UserId};
use crate::usercfg::{AclSubject, Group, Pool, Token, User, UserCfg, split_list, tree_key};

/// Why a change was refused, in Proxmox's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// POST /access/users on an existing user.
    #[error("user '{0}' already exists")]
    UserExists(UserId),
    /// The user does not exist (users and tokens endpoints).
    #[error("no such user ('{0}')")]
    NoSuchUser(UserId),
    /// A user named in an ACL update does not exist.
    #[error("user '{0}' does not exist")]
    AclUserMissing(UserId),
    /// A group named when creating/updating a user does not exist.
    #[error("no such group '{0}'")]
    NoSuchGroupForUser(GroupId),
    /// The group does not exist (groups endpoints, ACL updates).
    #[error("group '{0}' does not exist")]
    NoSuchGroup(GroupId),
    /// POST /access/groups on an existing group.
    #[error("group '{0}' already exists")]
    GroupExists(GroupId),
    /// POST on an existing token (parameter `tokenid`).
    #[error("Token already exists.")]
    TokenExists(TokenId),
    /// The token does not exist.
    #[error("no such token '{}' for user '{}'", .0.name_str(), .0.user_str())]
    NoSuchToken(TokenId),
    /// POST /access/roles on an existing role (built-in or custom).
    #[error("role '{0}' already exists")]
    RoleExists(RoleId),
    /// The role does not exist.
    #[error("role '{0}' does not exist")]
    NoSuchRole(RoleId),
    /// New role ids may not start with `PVE` (PVE 8+; parameter `roleid`).
    #[error("cannot use role ID starting with the (case-insensitive) 'PVE' namespace")]
    ReservedRoleId(RoleId),
    /// Built-in roles cannot be modified.
    #[error("auto-generated role '{0}' cannot be modified")]
    BuiltinRoleModify(RoleId),
    /// Built-in roles cannot be deleted.
    #[error("auto-generated role '{0}' cannot be deleted")]
    BuiltinRoleDelete(RoleId),
    /// An unknown privilege in a list (parameter `privs`).
    #[error("invalid format - invalid privilege '{0}'")]
    InvalidPrivilege(String),
    /// `append` without `privs` (parameter `privs`).
    #[error("missing property required by 'append'")]
    AppendWithoutPrivs,
    /// A path `normalize_path` or `check_path` rejects when adding (parameter `path`; the raw path as given).
    #[error("invalid ACL path '{0}'")]
    InvalidAclPath(String),
    /// An ACL update naming nobody (parameters `users`, `groups`, `tokens`).
    #[error("either 'users', 'groups' or 'tokens' is required.")]
    NoAclSubjects,
    /// Delegation without `Permissions.Modify`: the caller lacks a privilege of the role (parameter `role`).
    #[error("Cannot {verb} role '{role}' - requires 'Permissions.Modify' or superset of privileges.")]
    DelegationPrivileges {
        /// `add` or `remove`.
        verb: &'static str,
        /// The role.
        role: RoleId,
    },
    /// Delegation with propagation: the caller holds a privilege of the role only without propagation.
    #[error(
        "Cannot {verb} role '{role}' with propagation - requires 'Permissions.Modify' or propagated superset of privileges."
    )]
    DelegationPropagation {
        /// `add` or `remove`.
        verb: &'static str,
        /// The role.
        role: RoleId,
    },
    /// `NoAccess` can only be handed out with `Permissions.Modify` (parameter `role`).
    #[error("Cannot {verb} role '{role}' - requires 'Permissions.Modify'")]
    DelegationNoAccess {
        /// `add` or `remove`.
        verb: &'static str,
        /// The role.
        role: RoleId,
    },
    /// POST /pools on an existing pool.
    #[error("pool '{0}' already exists")]
    PoolExists(PoolId),
    /// The pool does not exist.
    #[error("pool '{0}' does not exist")]
    NoSuchPool(PoolId),
    /// A guest already in another pool.
    #[error("VM {vmid} belongs already to pool '{pool}'")]
    VmInOtherPool {
        /// The guest.
        vmid: u64,
        /// Its pool.
        pool: PoolId,
    },
    /// A pool id the release does not accept (nested pools before PVE 8.1; parameter `poolid`).
    #[error("pool name '{0}' contains invalid characters")]
    InvalidPoolId(String),
}

impl AccessError {
    /// The parameter Proxmox attributes the error to, for errors raised as parameter exceptions.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            AccessError::TokenExists(_) => Some("tokenid"),
            AccessError::ReservedRoleId(_) => Some("roleid"),
            AccessError::InvalidPrivilege(_) | AccessError::AppendWithoutPrivs => Some("privs"),
            AccessError::InvalidAclPath(_) => Some("path"),
            AccessError::DelegationPrivileges { .. }
            | AccessError::DelegationPropagation { .. }
            | AccessError::DelegationNoAccess { .. } => Some("role"),
            AccessError::InvalidPoolId(_) => Some("poolid"),
            _ => None,
        }
    }

    /// True for [`AccessError::NoAclSubjects`], which Proxmox reports on all three of `users`, `groups`, `tokens`.
    pub fn is_on_all_acl_subject_params(&self) -> bool {
        matches!(self, AccessError::NoAclSubjects)
    }
}

/// Changes to a user (PUT /access/users/{userid}); `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// New `enable`.
    pub enable: Option<bool>,
    /// New expiry.
    pub expire: Option<u64>,
    /// New first name (`Some("")` clears it).
    pub firstname: Option<String>,
    /// New last name.
    pub lastname: Option<String>,
    /// New e-mail.
    pub email: Option<String>,
    /// New comment.
    pub comment: Option<String>,
    /// New keys.
    pub keys: Option<String>,
    /// Group memberships: replace them, or add to them with `append`.
    pub groups: Option<Vec<GroupId>>,
    /// Add `groups` instead of replacing.
    pub append: bool,
}

/// Changes to a token (PUT /access/users/{userid}/token/{tokenid}).
#[derive(Debug, Clone, Default)]
pub struct TokenUpdate {
    /// New expiry.
    pub expire: Option<u64>,
    /// New privsep.
    pub privsep: Option<bool>,
    /// New comment (`Some("")` removes it on releases that allow that; otherwise Proxmox keeps the old one).
    pub comment: Option<String>,
    /// `delete=comment`.
    pub delete_comment: bool,
}

/// One PUT /access/acl request.
#[derive(Debug, Clone)]
pub struct AclUpdate {
    /// The `path` parameter exactly as sent.
    pub path: String,
    /// Roles, in request order.
    pub roles: Vec<RoleId>,
    /// Users.
    pub users: Vec<UserId>,
    /// Groups.
    pub groups: Vec<GroupId>,
    /// Tokens.
    pub tokens: Vec<TokenId>,
    /// `propagate` (default true).
    pub propagate: bool,
    /// Remove instead of add.
    pub delete: bool,
}

/// Parses a privilege list (`split_list`: commas, semicolons, whitespace) for `catalog`'s release; the first
/// unknown privilege is the error, as Proxmox reports it.
pub fn parse_privilege_list(list: &str, catalog: &Catalog) -> Result<PrivSet, AccessError> {
    let mut set = PrivSet::EMPTY;
    for name in split_list(list) {
        let p: Privilege = catalog.privilege(name).map_err(|_| AccessError::InvalidPrivilege(name.to_owned()))?;
        set.insert(p);
    }
    Ok(set)
}

impl UserCfg {
    /// POST /access/users: creates `id`, adding it to `groups` (each must exist).
    pub fn add_user(&mut self, id: UserId, mut user: User, groups: &[GroupId]) -> Result<(), AccessError> {
        if self.users.contains_key(&id) {
            return Err(AccessError::UserExists(id));
        }
        if let Some(missing) = groups.iter().find(|g| !self.groups.contains_key(*g)) {
            return Err(AccessError::NoSuchGroupForUser(missing.clone()));
        }
        user.tokens.clear();
        user.groups = groups.iter().cloned().collect();
        for g in groups {
            if let Some(group) = self.groups.get_mut(g) {
                group.members.insert(id.clone());
            }
        }
        self.users.insert(id, user);
        Ok(())
    }

    /// PUT /access/users/{userid}.
    pub fn update_user(&mut self, id: &UserId, update: UserUpdate) -> Result<(), AccessError> {
        if !self.users.contains_key(id) {
            return Err(AccessError::NoSuchUser(id.clone()));
        }
        if let Some(groups) = &update.groups {
            if let Some(missing) = groups.iter().find(|g| !self.groups.contains_key(*g)) {
                return Err(AccessError::NoSuchGroupForUser(missing.clone()));
            }
            if !update.append {
                for group in self.groups.values_mut() {
                    group.members.remove(id);
                }
                if let Some(user) = self.users.get_mut(id) {
                    user.groups.clear();
                }
            }
            for g in groups {
                if let Some(group) = self.groups.get_mut(g) {
                    group.members.insert(id.clone());
                }
                if let Some(user) = self.users.get_mut(id) {
                    user.groups.insert(g.clone());
                }
            }
        }
        let Some(user) = self.users.get_mut(id) else { return Err(AccessError::NoSuchUser(id.clone())) };
        let text = |v: String| (!v.is_empty()).then_some(v);
        if let Some(v) = update.enable {
            user.enable = v;
        }
        if let Some(v) = update.expire {
            user.expire = v;
        }
        if let Some(v) = update.firstname {
            user.firstname = text(v);
        }
        if let Some(v) = update.lastname {
            user.lastname = text(v);
        }
        if let Some(v) = update.email {
            user.email = text(v);
        }
        if let Some(v) = update.comment {
            user.comment = text(v);
        }
        if let Some(v) = update.keys {
            user.keys = text(v);
        }
        Ok(())
    }

    /// DELETE /access/users/{userid}: the user, its tokens, its group memberships and its ACL entries (also those
    /// of its tokens, which Proxmox drops on the next read).
    pub fn delete_user(&mut self, id: &UserId) -> Result<User, AccessError> {
        let user = self.users.remove(id).ok_or_else(|| AccessError::NoSuchUser(id.clone()))?;
        for group in self.groups.values_mut() {
            group.members.remove(id);
        }
        for node in self.acl.values_mut() {
            node.users.remove(id);
            node.tokens.retain(|t, _| t.user_str() != id.as_str());
        }
        if id.is_root() {
            // Proxmox re-adds root@pam on the next read.
            self.users.insert(UserId::root(), User::enabled());
        }
        Ok(user)
    }

    /// POST /access/users/{userid}/token/{tokenid}.
    pub fn add_token(&mut self, id: &TokenId, token: Token) -> Result<(), AccessError> {
        let user = self.users.get_mut(id.user_str()).ok_or_else(|| AccessError::NoSuchUser(id.user()))?;
        if user.tokens.contains_key(id.name_str()) {
            return Err(AccessError::TokenExists(id.clone()));
        }
        user.tokens.insert(id.name(), token);
        Ok(())
    }

    /// PUT /access/users/{userid}/token/{tokenid}; returns the updated record.
    pub fn update_token(&mut self, id: &TokenId, update: TokenUpdate, catalog: &Catalog) -> Result<Token, AccessError> {
        let user = self.users.get_mut(id.user_str()).ok_or_else(|| AccessError::NoSuchUser(id.user()))?;
        let token = user.tokens.get_mut(id.name_str()).ok_or_else(|| AccessError::NoSuchToken(id.clone()))?;
        if let Some(v) = update.expire {
            token.expire = v;
        }
        if let Some(v) = update.privsep {
            token.privsep = v;
        }
        match update.comment {
            Some(c) if !c.is_empty() => token.comment = Some(c),
            Some(_) if catalog.token_update_can_delete_comment() => token.comment = None,
            _ => {}
        }
        if update.delete_comment && catalog.token_update_can_delete_comment() {
            token.comment = None;
        }
        Ok(token.clone())
    }

    /// DELETE /access/users/{userid}/token/{tokenid} (also drops the token's ACL entries).
    pub fn delete_token(&mut self, id: &TokenId) -> Result<Token, AccessError> {
        let user = self.users.get_mut(id.user_str()).ok_or_else(|| AccessError::NoSuchUser(id.user()))?;
        let token = user.tokens.remove(id.name_str()).ok_or_else(|| AccessError::NoSuchToken(id.clone()))?;
        for node in self.acl.values_mut() {
            node.tokens.remove(id);
        }
        Ok(token)
    }

    /// POST /access/groups.
    pub fn add_group(&mut self, id: GroupId, comment: Option<String>) -> Result<(), AccessError> {
        if self.groups.contains_key(&id) {
            return Err(AccessError::GroupExists(id));
        }
        self.groups.insert(id, Group { members: Default::default(), comment: comment.filter(|c| !c.is_empty()) });
        Ok(())
    }

    /// PUT /access/groups/{groupid}.
    pub fn update_group(&mut self, id: &GroupId, comment: Option<String>) -> Result<(), AccessError> {
        let group = self.groups.get_mut(id).ok_or_else(|| AccessError::NoSuchGroup(id.clone()))?;
        if let Some(c) = comment {
            group.comment = (!c.is_empty()).then_some(c);
        }
        Ok(())
    }

    /// DELETE /access/groups/{groupid}: the group, its memberships and its ACL entries.
    pub fn delete_group(&mut self, id: &GroupId) -> Result<Group, AccessError> {
        let group = self.groups.remove(id).ok_or_else(|| AccessError::NoSuchGroup(id.clone()))?;
        for user in self.users.values_mut() {
            user.groups.remove(id);
        }
        for node in self.acl.values_mut() {
            node.groups.remove(id);
        }
        Ok(group)
    }

    /// POST /access/roles.
    pub fn add_role(&mut self, id: RoleId, privileges: PrivSet, catalog: &Catalog) -> Result<(), AccessError> {
        if catalog.reserves_pve_role_prefix() && id.as_str().get(..3).is_some_and(|p| p.eq_ignore_ascii_case("pve")) {
            return Err(AccessError::ReservedRoleId(id));
        }
        if catalog.is_builtin_role(id.as_str()) || self.roles.contains_key(&id) {
            return Err(AccessError::RoleExists(id));
        }
        self.roles.insert(id, privileges);
        Ok(())
    }

    /// PUT /access/roles/{roleid}: replace the privileges, or add them with `append`. Without `privs` (and without
    /// `append`) the role ends up empty: Proxmox resets it before adding what was given.
    pub fn update_role(
        &mut self,
        id: &RoleId,
        privileges: Option<PrivSet>,
        append: bool,
        catalog: &Catalog,
    ) -> Result<(), AccessError> {
        if append && privileges.is_none() {
            return Err(AccessError::AppendWithoutPrivs);
        }
        if catalog.is_builtin_role(id.as_str()) {
            return Err(AccessError::BuiltinRoleModify(id.clone()));
        }
        let role = self.roles.get_mut(id).ok_or_else(|| AccessError::NoSuchRole(id.clone()))?;
        *role = match privileges {
            Some(privs) if append => role.union(privs),
            Some(privs) => privs,
            None => PrivSet::EMPTY,
        };
        Ok(())
    }

    /// DELETE /access/roles/{roleid} (ACL entries naming it disappear, as on Proxmox's next read).
    pub fn delete_role(&mut self, id: &RoleId, catalog: &Catalog) -> Result<PrivSet, AccessError> {
        if catalog.is_builtin_role(id.as_str()) {
            return Err(AccessError::BuiltinRoleDelete(id.clone()));
        }
        let privs = self.roles.remove(id).ok_or_else(|| AccessError::NoSuchRole(id.clone()))?;
        for node in self.acl.values_mut() {
            for roles in node.users.values_mut() {
                roles.remove(id);
            }
            for roles in node.groups.values_mut() {
                roles.remove(id);
            }
            for roles in node.tokens.values_mut() {
                roles.remove(id);
            }
        }
        Ok(privs)
    }

    /// POST /pools: creates a pool (and missing parents of a nested pool).
    pub fn add_pool(&mut self, id: PoolId, comment: Option<String>, catalog: &Catalog) -> Result<(), AccessError> {
        catalog.check_pool_id(&id).map_err(|_| AccessError::InvalidPoolId(id.to_string()))?;
        if self.pools.contains_key(&id) {
            return Err(AccessError::PoolExists(id));
        }
        self.pools.insert(id.clone(), Pool { comment: comment.filter(|c| !c.is_empty()), ..Pool::default() });
        let mut current = id.as_str().to_owned();
        while let Some((parent, _)) = current.clone().rsplit_once('/') {
            if let Ok(p) = parent.parse::<PoolId>() {
                self.pools.entry(p).or_default();
            }
            current = parent.to_owned();
        }
        Ok(())
    }

    /// Adds guests and storages to a pool (a guest may be in only one pool).
    pub fn add_pool_members(&mut self, id: &PoolId, vms: &[u64], storage: &[String]) -> Result<(), AccessError> {
        if !self.pools.contains_key(id) {
            return Err(AccessError::NoSuchPool(id.clone()));
        }
        if let Some((vmid, pool)) =
            vms.iter().find_map(|vm| self.vm_pool.get(vm).filter(|p| *p != id).map(|p| (*vm, p.clone())))
        {
            return Err(AccessError::VmInOtherPool { vmid, pool });
        }
        if let Some(pool) = self.pools.get_mut(id) {
            pool.vms.extend(vms.iter().copied());
            pool.storage.extend(storage.iter().cloned());
        }
        for vm in vms {
            self.vm_pool.insert(*vm, id.clone());
        }
        Ok(())
    }

    /// Removes guests and storages from a pool.
    pub fn remove_pool_members(&mut self, id: &PoolId, vms: &[u64], storage: &[String]) -> Result<(), AccessError> {
        let pool = self.pools.get_mut(id).ok_or_else(|| AccessError::NoSuchPool(id.clone()))?;
        for vm in vms {
            if pool.vms.remove(vm) {
                self.vm_pool.remove(vm);
            }
        }
        for s in storage {
            pool.storage.remove(s);
        }
        Ok(())
    }

    /// Deletes a pool and the ACL subtree at `/pool/<id>`.
    pub fn delete_pool(&mut self, id: &PoolId) -> Result<Pool, AccessError> {
        let pool = self.pools.remove(id).ok_or_else(|| AccessError::NoSuchPool(id.clone()))?;
        for vm in &pool.vms {
            self.vm_pool.remove(vm);
        }
        // Proxmox's delete_pool_acl removes the child node named exactly like the pool under /pool.
        let key = vec!["pool".to_owned(), id.as_str().to_owned()];
        self.acl.retain(|k, _| !k.starts_with(&key));
        Ok(pool)
    }

    /// PUT /access/acl, after the permission check: validates like Proxmox (path, subjects, then per role: role
    /// exists, the delegation rule when `caller` lacks `Permissions.Modify` and the release restricts delegation,
    /// groups, users, tokens exist) and applies the change. `caller` is the caller's [`Permissions`] on the
    /// normalised path (`None` skips the delegation rule, e.g. for internal changes).
    pub fn apply_acl_update(
        &mut self,
        update: &AclUpdate,
        catalog: &Catalog,
        caller: Option<&Permissions>,
    ) -> Result<(), AccessError> {
        if update.users.is_empty() && update.groups.is_empty() && update.tokens.is_empty() {
            return Err(AccessError::NoAclSubjects);
        }
        let path = AclPath::normalize(&update.path).ok_or_else(|| AccessError::InvalidAclPath(update.path.clone()))?;
        if !update.delete && !catalog.acl_path_allowed(&path) {
            return Err(AccessError::InvalidAclPath(update.path.clone()));
        }
        let verb = if update.delete { "remove" } else { "add" };
        let permissions_modify: Option<Privilege> = "Permissions.Modify".parse().ok();
        let mut staged: Vec<(AclSubject, RoleId)> = Vec::new();
        for role in &update.roles {
            let privs =
                self.role_privileges(role.as_str(), catalog).ok_or_else(|| AccessError::NoSuchRole(role.clone()))?;
            if let (Some(caller), true) = (caller, catalog.restricts_acl_delegation())
                && !permissions_modify.is_some_and(|p| caller.has(p))
            {
                {
                    for p in privs.iter() {
                        match caller.flag(p) {
                            None => return Err(AccessError::DelegationPrivileges { verb, role: role.clone() }),
                            Some(false) if update.propagate && !update.delete => {
                                return Err(AccessError::DelegationPropagation { verb, role: role.clone() });
                            }
                            _ => {}
                        }
                    }
                    if role.as_str() == "NoAccess" {
                        return Err(AccessError::DelegationNoAccess { verb, role: role.clone() });
                    }
                }
            }
            for group in &update.groups {
                if !self.groups.contains_key(group) {
                    return Err(AccessError::NoSuchGroup(group.clone()));
                }
                staged.push((AclSubject::Group(group.clone()), role.clone()));
            }
            for user in &update.users {
                if !self.users.contains_key(user) {
                    return Err(AccessError::AclUserMissing(user.clone()));
                }
                staged.push((AclSubject::User(user.clone()), role.clone()));
            }
            for token in &update.tokens {
                if self.token(token).is_none() {
                    return Err(match self.users.contains_key(token.user_str()) {
                        true => AccessError::NoSuchToken(token.clone()),
                        false => AccessError::NoSuchUser(token.user()),
                    });
                }
                staged.push((AclSubject::Token(token.clone()), role.clone()));
            }
        }
        let key = tree_key(&path);
        for depth in 0..=key.len() {
            self.acl.entry(key[..depth].to_vec()).or_default();
        }
        let Some(node) = self.acl.get_mut(&key) else { return Ok(()) };
        for (subject, role) in staged {
            let roles: &mut BTreeMap<RoleId, bool> = match subject {
                AclSubject::User(u) => node.users.entry(u).or_default(),
                AclSubject::Group(g) => node.groups.entry(g).or_default(),
                AclSubject::Token(t) => node.tokens.entry(t).or_default(),
            };
            if update.delete {
                roles.remove(&role);
            } else {
                roles.insert(role, update.propagate);
            }
        }
        Ok(())
    }

    /// Creates a token name under a user without other changes (helper for tools that build configurations).
    pub fn token_id(user: &UserId, name: &TokenName) -> TokenId {
        TokenId::new(user, name)
    }
}
