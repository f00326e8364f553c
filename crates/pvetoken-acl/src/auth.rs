//! API token authentication as PVE checks it (pure: the caller passes `now`).

use crate::ids::TokenId;
use crate::tokencfg::TokenCfg;
use crate::usercfg::UserCfg;

/// Why a token value is refused. Proxmox answers every case with 401 `Authentication failed!` and logs this
/// reason; `Display` is the logged wording. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenAuthError {
    /// An empty value.
    #[error("no API token specified")]
    NoToken,
    /// No `=` separating id and secret.
    #[error("no tokenid specified")]
    NoTokenId,
    /// The id part is not a full token id.
    #[error("'{0}' is not a valid token ID - not able to split into user and token parts")]
    InvalidTokenId(String),
    /// The owner does not exist.
    #[error("no such user ('{0}')")]
    NoSuchUser(String),
    /// The owner is disabled.
    #[error("user '{0}' is disabled")]
    UserDisabled(String),
    /// The owner expired.
    #[error("user '{0}' access expired")]
    UserExpired(String),
    /// The token does not exist.
    #[error("no such token '{token}' for user '{user}'")]
    NoSuchToken {
        /// Token name.
        token: String,
        /// Owner.
        user: String,
    },
    /// The token expired.
    #[error("token '{0}' access expired")]
    TokenExpired(String),
    /// The secret does not match token.cfg exactly.
    #[error("invalid token value!")]
    InvalidSecret,
}

/// Verifies `value` (`user@realm!name=secret`, split at the last `=`) against user.cfg and token.cfg at time
/// `now` (epoch seconds), in Proxmox's order: id syntax, owner exists/enabled/not expired, token exists/not
/// expired, exact secret. Returns the authenticated id (the full token id).
pub fn verify_token(cfg: &UserCfg, tokens: &TokenCfg, value: &str, now: u64) -> Result<TokenId, TokenAuthError> {
    if value.is_empty() {
        return Err(TokenAuthError::NoToken);
    }
    let (id, secret) = value.rsplit_once('=').ok_or(TokenAuthError::NoTokenId)?;
    let token: TokenId = id.parse().map_err(|_| TokenAuthError::InvalidTokenId(id.to_owned()))?;
    let user_name = token.user_str();
    let user = cfg.users.get(user_name).ok_or_else(|| TokenAuthError::NoSuchUser(user_name.to_owned()))?;
    if !user.enable {
        return Err(TokenAuthError::UserDisabled(user_name.to_owned()));
    }
    if user.expire != 0 && user.expire < now {
        return Err(TokenAuthError::UserExpired(user_name.to_owned()));
    }
    let info = user.tokens.get(token.name_str()).ok_or_else(|| TokenAuthError::NoSuchToken {
        token: token.name_str().to_owned(),
        user: user_name.to_owned(),
    })?;
    if info.expire != 0 && info.expire < now {
        return Err(TokenAuthError::TokenExpired(token.name_str().to_owned()));
    }
    if !tokens.verify(&token, secret) {
        return Err(TokenAuthError::InvalidSecret);
    }
    Ok(token)
}
