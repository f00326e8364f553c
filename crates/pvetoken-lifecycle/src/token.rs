//! Token ids as the lifecycle handles them, and the names a rotation gives a token where the server cannot
//! regenerate its secret.

use pvetoken_render::TokenFile;

use crate::error::Error;
use crate::profiles;

/// A full token id `user@realm!name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    /// `user@realm`.
    pub user: String,
    /// `name`.
    pub name: String,
}

impl TokenRef {
    /// Parses `user@realm!name` with a clear error for the usual mistakes.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let Some((user, name)) = text.rsplit_once('!') else {
            return Err(Error::usage(format!("`{text}` is not a token id: it has no `!`")).with_hint(format!(
                "a token id is user@realm!name, e.g. {}!{}",
                if text.contains('@') { text } else { "automation@pve" },
                "packer"
            )));
        };
        validate_user(user)?;
        if !profiles::is_token_name(name) {
            return Err(Error::usage(format!("`{name}` is not a valid token name"))
                .with_hint("a token name starts with a letter and has at least 2 of: letters, digits, `.`, `-`, `_`"));
        }
        Ok(Self { user: user.to_owned(), name: name.to_owned() })
    }

    /// `user@realm!name`.
    pub fn full(&self) -> String {
        format!("{}!{}", self.user, self.name)
    }
}

/// Checks a `user@realm` id (refusing a token id).
pub fn validate_user(user: &str) -> Result<(), Error> {
    if user.contains('!') {
        return Err(Error::usage(format!("`{user}` is a token id, not a user"))
            .with_hint("give the user as user@realm and the token name separately (--token-name)"));
    }
    let Some((name, realm)) = user.rsplit_once('@') else {
        return Err(Error::usage(format!("`{user}` has no realm"))
            .with_hint(format!("write it as user@realm, e.g. {user}@pve (PVE-managed) or {user}@pam (Linux user)")));
    };
    // PVE's own grammar (pve-userid: 3 to 64 bytes, no whitespace, `:` or `/` in the name, a realm id).
    if user.parse::<pvetoken_acl::UserId>().is_err() {
        let why = if realm.parse::<pvetoken_acl::Realm>().is_err() {
            format!("`{realm}` is not a realm id (a letter, then letters, digits, `.`, `-`, `_`)")
        } else if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == ':' || c == '/') {
            format!("the user name `{name}` is empty or has whitespace, `:` or `/`")
        } else {
            "a user id has 3 to 64 characters".to_owned()
        };
        return Err(Error::usage(format!("`{user}` is not a valid PVE user id: {why}"))
            .with_hint("write it as user@realm, e.g. automation@pve"));
    }
    Ok(())
}

/// True when `saved` holds `token`, or a rotation of it (`NAME-rN`, made by `rotate` where the server cannot regenerate).
pub fn is_same_token(saved: &TokenFile, token: &TokenRef) -> bool {
    saved.token_id.user_str() == token.user && rotation_base(saved.token_id.name_str()) == token.name
}

/// `packer-r3` → `packer`; any other name is its own base.
pub fn rotation_base(name: &str) -> &str {
    match name.rsplit_once("-r") {
        Some((base, number))
            if !base.is_empty() && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

/// The name the next rotation uses where the server cannot regenerate (libpve-access-control before 9.1.0): `packer` → `packer-r1` → `packer-r2` …
pub fn next_rotation_name(name: &str) -> String {
    let base = rotation_base(name);
    let next = name.strip_prefix(base).and_then(|rest| rest.strip_prefix("-r")).and_then(|n| n.parse::<u64>().ok());
    format!("{base}-r{}", next.map_or(1, |n| n + 1))
}

#[cfg(test)]
mod tests {
    use super::{TokenRef, next_rotation_name, rotation_base, validate_user};

    #[test]
    fn token_id_without_bang_is_refused_with_an_example() {
        let error = TokenRef::parse("automation@pve").expect_err("no bang");
        assert!(error.message.contains("no `!`"));
        assert!(error.hint.unwrap_or_default().contains("automation@pve!"));
        assert_eq!(TokenRef::parse("a@pve!ci").expect("valid").full(), "a@pve!ci");
    }

    #[test]
    fn a_token_id_given_as_user_is_refused() {
        assert!(validate_user("automation@pve!x").is_err());
        assert!(validate_user("automation").is_err());
        assert!(validate_user("automation@pve").is_ok());
    }

    #[test]
    fn user_ids_follow_pves_grammar_and_say_what_is_wrong() {
        for (user, why) in [
            ("auto mation@pve", "whitespace"),
            ("a:b@pve", "whitespace, `:` or `/`"),
            ("automation@1ab", "not a realm id"),
            ("automation@p", "not a realm id"),
            (&format!("{}@pve", "a".repeat(61)), "3 to 64 characters"),
        ] {
            let error = validate_user(user).expect_err(user);
            assert!(error.message.contains(why), "{user}: {}", error.message);
        }
        assert!(validate_user(&format!("{}@pve", "a".repeat(60))).is_ok(), "64 characters in all");
        assert!(validate_user("me@example.com@ldap").is_ok(), "the realm is after the last @");
        assert!(TokenRef::parse("a@pve!1ci").is_err(), "a token name starts with a letter");
        assert!(TokenRef::parse("a@pve!c").is_err(), "a token name has at least 2 characters");
    }

    #[test]
    fn rotation_names_count_up_from_the_base_name() {
        assert_eq!(next_rotation_name("packer"), "packer-r1");
        assert_eq!(next_rotation_name("packer-r1"), "packer-r2");
        assert_eq!(rotation_base("packer-r12"), "packer");
        assert_eq!(rotation_base("my-role"), "my-role");
    }
}
