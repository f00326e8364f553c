//! What Proxmox's parser drops silently, read from the raw text: ACL lines naming tokens that do not exist and
//! role lines holding privileges the release does not know. (Dropped lines never reach the parsed model, so they
//! can only be seen here.)

use pvetoken_acl::{Catalog, Privilege, TokenId, UserCfg};

/// An ACL line naming a token that does not exist (Proxmox ignores the entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingTokenAcl {
    /// 1-based line.
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// The token it names.
    pub token: TokenId,
    /// The ACL path as written.
    pub path: String,
    /// The roles as written.
    pub roles: String,
}

/// A privilege in a custom role that this release does not know (Proxmox drops it, the role survives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRolePrivilege {
    /// 1-based line.
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// The role.
    pub role: String,
    /// The privilege name as written.
    pub privilege: String,
    /// True when some PVE release knows the name (e.g. `VM.Monitor` before 9.0).
    pub known_elsewhere: bool,
}

/// Findings of the raw scan.
#[derive(Debug, Clone, Default)]
pub struct RawScan {
    /// ACL lines for missing tokens.
    pub missing_tokens: Vec<MissingTokenAcl>,
    /// Unknown privileges in role lines.
    pub unknown_privileges: Vec<UnknownRolePrivilege>,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\x0b' | '\x0c')
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == ',' || c == ';' || is_space(c)).filter(|p| !p.is_empty())
}

/// Scans `text` against the parsed `cfg`.
pub fn scan(text: &str, cfg: &UserCfg, catalog: &Catalog) -> RawScan {
    let mut out = RawScan::default();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.trim_matches(is_space);
        let fields: Vec<&str> = line.split(':').map(|f| f.trim_matches(is_space)).collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or("");
        match field(0) {
            "acl" => {
                for subject in split_list(field(3)) {
                    if !subject.contains('!') || subject.starts_with('@') {
                        continue;
                    }
                    if let Ok(token) = subject.parse::<TokenId>()
                        && cfg.token(&token).is_none()
                    {
                        out.missing_tokens.push(MissingTokenAcl {
                            line: index + 1,
                            text: line.to_owned(),
                            token,
                            path: field(2).to_owned(),
                            roles: field(4).to_owned(),
                        });
                    }
                }
            }
            "role" => {
                let role = field(1);
                if catalog.is_builtin_role(role) {
                    continue;
                }
                for name in split_list(field(2)) {
                    if catalog.privilege(name).is_err() {
                        out.unknown_privileges.push(UnknownRolePrivilege {
                            line: index + 1,
                            text: line.to_owned(),
                            role: role.to_owned(),
                            privilege: name.to_owned(),
                            known_elsewhere: name.parse::<Privilege>().is_ok(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}
