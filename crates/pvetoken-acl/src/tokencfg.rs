//! `/etc/pve/priv/token.cfg`: one `user@realm!name secret` line per token.

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::TokenId;

/// A token secret (a UUID in PVE). No `Display`, no `Serialize`, redacted `Debug`; read it with
/// [`expose`](TokenSecret::expose) where it is really needed.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> TokenSecret {
        TokenSecret(secret.into())
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// A skipped token.cfg line. Carries only the line number: the line holds a secret and is never echoed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCfgWarning {
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for TokenCfgWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: skipping invalid token.cfg entry", self.line)
    }
}

/// The token secrets, by full token id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenCfg {
    secrets: BTreeMap<TokenId, TokenSecret>,
}

impl TokenCfg {
    /// Parses like Proxmox: blank lines ignored; a line must be exactly `<token id> <secret>` (one space, no
    /// whitespace inside either) with a valid token id, else it is skipped with a warning. A later line for the
    /// same id wins.
    pub fn parse(text: &str) -> (TokenCfg, Vec<TokenCfgWarning>) {
        let mut cfg = TokenCfg::default();
        let mut warnings = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            if line.chars().all(crate::ids::is_perl_space) {
                continue;
            }
            let parsed = line.split_once(' ').and_then(|(id, secret)| {
                let no_space = |s: &str| !s.is_empty() && !s.chars().any(crate::ids::is_perl_space);
                if !no_space(id) || !no_space(secret) {
                    return None;
                }
                id.parse::<TokenId>().ok().map(|id| (id, secret))
            });
            match parsed {
                Some((id, secret)) => {
                    cfg.secrets.insert(id, TokenSecret::new(secret));
                }
                None => warnings.push(TokenCfgWarning { line: index + 1 }),
            }
        }
        (cfg, warnings)
    }

    /// Writes the canonical form: sorted by token id, one line each.
    pub fn write(&self) -> String {
        let mut out = String::new();
        for (id, secret) in &self.secrets {
            out.push_str(id.as_str());
            out.push(' ');
            out.push_str(secret.expose());
            out.push('\n');
        }
        out
    }

    /// The secret of a token.
    pub fn get(&self, id: &TokenId) -> Option<&TokenSecret> {
        self.secrets.get(id)
    }

    /// Sets (or replaces) a token's secret.
    pub fn set(&mut self, id: TokenId, secret: TokenSecret) {
        self.secrets.insert(id, secret);
    }

    /// Removes a token's secret; true if there was one.
    pub fn remove(&mut self, id: &TokenId) -> bool {
        self.secrets.remove(id).is_some()
    }

    /// True when `secret` is exactly (case-sensitively) the stored secret of `id`, as pmxcfs checks it.
    pub fn verify(&self, id: &TokenId, secret: &str) -> bool {
        self.secrets.get(id).is_some_and(|s| s.expose() == secret)
    }

    /// Token ids with a secret.
    pub fn ids(&self) -> impl Iterator<Item = &TokenId> {
        self.secrets.keys()
    }
}
