//! Validated Proxmox VE identifiers with pve-access-control's exact grammars.
//!
//! Each type can only hold a value that Proxmox accepts; parse with [`str::parse`] (all implement [`FromStr`]),
//! print with [`Display`](fmt::Display); serde (de)serialises them as plain strings and validates on the way in.
//! Version-dependent rules (nested pools, allowed ACL paths, which privileges exist) live on
//! [`Catalog`](crate::Catalog).

use std::fmt;
use std::str::FromStr;

use crate::catalog_data::ALL_PRIVILEGES;

/// Why a string is not a valid identifier; the message follows Proxmox's wording where Proxmox has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// A user id outside 3..=64 bytes or not `user@realm`.
    #[error("value '{0}' does not look like a valid user name")]
    UserId(String),
    /// A realm that does not match `[A-Za-z][A-Za-z0-9.\-_]+` (max 32 characters).
    #[error("value '{0}' does not look like a valid realm")]
    Realm(String),
    /// A token name (the part after `!`) that does not match `[A-Za-z][A-Za-z0-9.\-_]+`.
    #[error(
        "value '{0}' does not look like a valid token name (a letter, then at least one letter, digit, '.', '-' or '_')"
    )]
    TokenName(String),
    /// A full token id that is not `user@realm!name`.
    #[error("value '{0}' does not look like a valid token ID")]
    TokenId(String),
    /// Neither a user id nor a full token id.
    #[error("value '{0}' is neither a user id (user@realm) nor a token id (user@realm!name)")]
    Subject(String),
    /// A group name with characters outside `[A-Za-z0-9.\-_]`.
    #[error("group name '{0}' contains invalid characters")]
    GroupId(String),
    /// A role name with characters outside `[A-Za-z0-9.\-_]`.
    #[error("role name '{0}' contains invalid characters")]
    RoleId(String),
    /// A pool name that is not `name[/name[/name]]`.
    #[error("pool name '{0}' contains invalid characters")]
    PoolId(String),
    /// A pool name with more than three levels.
    #[error("pool name '{0}' nested too deeply (max levels = 3)")]
    PoolTooDeep(String),
    /// A path that `normalize_path` rejects (empty, or characters outside `[A-Za-z0-9.\-_/]`).
    #[error("invalid ACL path '{0}'")]
    AclPath(String),
    /// A privilege name no supported PVE release knows.
    #[error("invalid privilege '{0}'")]
    Privilege(String),
}

/// Perl's `\s` on byte strings: ASCII whitespace including vertical tab.
pub(crate) fn is_perl_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// `realm_regex = [A-Za-z][A-Za-z0-9\.\-_]+` (also `token_subid_regex`), without a length limit.
pub(crate) fn is_realm_like(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    s.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `[A-Za-z0-9\.\-_]+`: group, role and pool-component names.
pub(crate) fn is_name_chars(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `user_regex = [^\s:/]+`.
fn is_user_part(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| is_perl_space(c) || c == ':' || c == '/')
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $validate:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The identifier as Proxmox writes it.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// For names known valid at compile time (built-in role names and the like).
            #[allow(dead_code, reason = "not every id type needs it")]
            pub(crate) fn from_trusted(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let validate: fn(&str) -> Result<(), IdError> = $validate;
                validate(s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                let validate: fn(&str) -> Result<(), IdError> = $validate;
                validate(&s)?;
                Ok(Self(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                Self::try_from(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// An authentication realm (`pam`, `pve`, an LDAP or OpenID realm id): `[A-Za-z][A-Za-z0-9.\-_]+`,
    /// at most 32 characters (the API's `realm` option).
    Realm,
    |s| if is_realm_like(s) && s.len() <= 32 { Ok(()) } else { Err(IdError::Realm(s.to_owned())) }
);

string_id!(
    /// A user id `user@realm` (pve-userid): 3 to 64 bytes, the user part any non-empty text without whitespace,
    /// `:` or `/` (it may contain `@` and `!`, e.g. `a!b@pve`, `me@example.com@ldap`), the realm after the last `@`.
    UserId,
    |s| if split_userid(s).is_some() { Ok(()) } else { Err(IdError::UserId(s.to_owned())) }
);

string_id!(
    /// A token name, the part after `!` in a token id (`token_subid_regex`): a letter, then at least one letter,
    /// digit, `.`, `-` or `_`; no length limit. `packer` and `Packer` are valid, `a` and `1ab` are not.
    TokenName,
    |s| if is_realm_like(s) { Ok(()) } else { Err(IdError::TokenName(s.to_owned())) }
);

string_id!(
    /// A group id: `[A-Za-z0-9.\-_]+`.
    GroupId,
    |s| if is_name_chars(s) { Ok(()) } else { Err(IdError::GroupId(s.to_owned())) }
);

string_id!(
    /// A role id: `[A-Za-z0-9.\-_]+`. Whether the `PVE` prefix is reserved depends on the version
    /// ([`Catalog::reserves_pve_role_prefix`](crate::Catalog::reserves_pve_role_prefix)).
    RoleId,
    |s| if is_name_chars(s) { Ok(()) } else { Err(IdError::RoleId(s.to_owned())) }
);

string_id!(
    /// A pool id: `name[/name[/name]]` with names `[A-Za-z0-9.\-_]+` (nesting needs PVE 8.1+, see
    /// [`Catalog::check_pool_id`](crate::Catalog::check_pool_id)).
    PoolId,
    validate_pool
);

pub(crate) fn validate_pool(s: &str) -> Result<(), IdError> {
    // Perl's split drops trailing empty fields; "a/b/c/d/" still has 4 levels.
    if s.trim_end_matches('/').split('/').count() > 3 {
        return Err(IdError::PoolTooDeep(s.to_owned()));
    }
    if s.split('/').all(is_name_chars) { Ok(()) } else { Err(IdError::PoolId(s.to_owned())) }
}

/// Splits a user id into (user part, realm), or `None` when it is not a valid pve-userid.
pub(crate) fn split_userid(s: &str) -> Option<(&str, &str)> {
    if s.len() < 3 || s.len() > 64 {
        return None;
    }
    let (user, realm) = s.rsplit_once('@')?;
    (is_user_part(user) && is_realm_like(realm)).then_some((user, realm))
}

/// True when `s` is a valid [`UserId`] (checked without a copy).
pub(crate) fn is_user_id(s: &str) -> bool {
    split_userid(s).is_some()
}

/// True when `s` is a valid [`TokenId`] (checked without a copy).
pub(crate) fn is_token_id(s: &str) -> bool {
    s.rsplit_once('!').is_some_and(|(user, name)| is_user_id(user) && is_realm_like(name))
}

impl UserId {
    /// The part before the last `@`.
    pub fn name(&self) -> &str {
        split_userid(&self.0).map_or("", |(user, _)| user)
    }

    /// The realm (after the last `@`), as text: a realm inside a valid user id may be longer than the 32
    /// characters a [`Realm`] allows.
    pub fn realm(&self) -> &str {
        split_userid(&self.0).map_or("", |(_, realm)| realm)
    }

    /// True for `root@pam`, the superuser.
    pub fn is_root(&self) -> bool {
        self.0 == "root@pam"
    }

    /// `root@pam`.
    pub fn root() -> UserId {
        UserId("root@pam".to_owned())
    }
}

/// A full API token id `user@realm!name`: the owner's [`UserId`] and the [`TokenName`], joined by the last `!`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenId {
    full: String,
    bang: usize,
}

impl TokenId {
    /// Joins an owner and a token name.
    pub fn new(user: &UserId, name: &TokenName) -> TokenId {
        TokenId { full: format!("{user}!{name}"), bang: user.as_str().len() }
    }

    /// The owner, `user@realm`.
    pub fn user(&self) -> UserId {
        UserId(self.full[..self.bang].to_owned())
    }

    /// The owner as text.
    pub fn user_str(&self) -> &str {
        &self.full[..self.bang]
    }

    /// The token name (after `!`).
    pub fn name(&self) -> TokenName {
        TokenName(self.full[self.bang + 1..].to_owned())
    }

    /// The token name as text.
    pub fn name_str(&self) -> &str {
        &self.full[self.bang + 1..]
    }

    /// The full id as text.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl FromStr for TokenId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        // The token name cannot contain `!` and a realm cannot either, so the last `!` separates them.
        let invalid = || IdError::TokenId(s.to_owned());
        let (user, name) = s.rsplit_once('!').ok_or_else(invalid)?;
        if split_userid(user).is_none() || !is_realm_like(name) {
            return Err(invalid());
        }
        Ok(TokenId { full: s.to_owned(), bang: user.len() })
    }
}

// `bang` follows from `full`, so hashing, comparing and ordering by `full` alone agree with `str` (`Borrow`).
impl std::hash::Hash for TokenId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.full.hash(state);
    }
}

impl std::borrow::Borrow<str> for TokenId {
    fn borrow(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl serde::Serialize for TokenId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.full)
    }
}

impl<'de> serde::Deserialize<'de> for TokenId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Who permissions are evaluated for: a user or an API token (`userid_or_token_regex`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// `user@realm`.
    User(UserId),
    /// `user@realm!name`.
    Token(TokenId),
}

impl Subject {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        match self {
            Subject::User(user) => user.as_str(),
            Subject::Token(token) => token.as_str(),
        }
    }

    /// The user itself, or the token's owner.
    pub fn owner(&self) -> UserId {
        match self {
            Subject::User(user) => user.clone(),
            Subject::Token(token) => token.user(),
        }
    }
}

impl FromStr for Subject {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        // A string cannot be both: a user id ends in `@realm` (no `!`), a token id in `!name` (no `@`).
        if let Ok(user) = s.parse::<UserId>() {
            return Ok(Subject::User(user));
        }
        s.parse::<TokenId>().map(Subject::Token).map_err(|_| IdError::Subject(s.to_owned()))
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<UserId> for Subject {
    fn from(user: UserId) -> Self {
        Subject::User(user)
    }
}

impl From<TokenId> for Subject {
    fn from(token: TokenId) -> Self {
        Subject::Token(token)
    }
}

impl serde::Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Subject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An ACL path after Proxmox's `normalize_path`: repeated slashes collapsed, no trailing slash, a leading slash,
/// only `[A-Za-z0-9.\-_/]`. `"vms//100/"` parses to `/vms/100`; `""` and `"0"` are invalid (Perl falsiness).
/// Whether the API lets you *add* an ACL on it is version-dependent:
/// [`Catalog::acl_path_allowed`](crate::Catalog::acl_path_allowed). user.cfg may hold any normalised path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclPath(String);

impl AclPath {
    /// `/`.
    pub fn root() -> AclPath {
        AclPath("/".to_owned())
    }

    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components below `/` (`/vms/100` → `["vms", "100"]`; `/` → none).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// Proxmox's `normalize_path`: `None` where Proxmox returns undef.
    pub fn normalize(raw: &str) -> Option<AclPath> {
        if raw.is_empty() || raw == "0" {
            return None;
        }
        let mut out = String::with_capacity(raw.len() + 1);
        for c in raw.chars() {
            if c == '/' && out.ends_with('/') {
                continue;
            }
            out.push(c);
        }
        if out.ends_with('/') {
            out.pop();
        }
        if out.is_empty() {
            out.push('/');
        }
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        out.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/')).then_some(AclPath(out))
    }
}

impl FromStr for AclPath {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        AclPath::normalize(s).ok_or_else(|| IdError::AclPath(s.to_owned()))
    }
}

impl fmt::Display for AclPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for AclPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AclPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A privilege name known to at least one supported PVE release (`VM.Audit`, `Sys.Modify`, ...). A small copyable
/// index; whether a given release knows it is [`Catalog::knows`](crate::Catalog::knows). Privileges order by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Privilege(pub(crate) u8);

impl Privilege {
    /// The name, e.g. `VM.Audit`.
    pub fn as_str(self) -> &'static str {
        ALL_PRIVILEGES[usize::from(self.0)]
    }

    /// Every privilege any supported release knows, sorted by name.
    pub fn all() -> impl Iterator<Item = Privilege> {
        (0..ALL_PRIVILEGES.len()).filter_map(|i| u8::try_from(i).ok()).map(Privilege)
    }

    pub(crate) fn bit(self) -> u64 {
        1u64 << self.0
    }
}

impl FromStr for Privilege {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        ALL_PRIVILEGES
            .binary_search(&s)
            .ok()
            .and_then(|i| u8::try_from(i).ok())
            .map(Privilege)
            .ok_or_else(|| IdError::Privilege(s.to_owned()))
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Privilege {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Privilege {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}
