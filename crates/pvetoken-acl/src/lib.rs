//! Proxmox VE access control, offline: identifiers, privilege catalogs per release, `user.cfg` / `token.cfg`
//! parsing and writing, and the permission evaluator with explanations. Pure: no I/O, no clock, no environment.
//!
//! # Users, realms, tokens
//!
//! A **user id** is `name@realm` ([`UserId`]): the realm ([`Realm`], e.g. `pam`, `pve`, an LDAP realm) says who
//! authenticates the user. The name part may itself contain `@` or `!` (`me@example.com@ldap` is valid); the
//! realm is what follows the *last* `@`. An **API token** belongs to exactly one user and has a **token name**
//! ([`TokenName`], e.g. `packer`: a letter, then letters, digits, `.`, `-`, `_`). Its **full token id**
//! ([`TokenId`]) is `user@realm!name`; the name is what follows the *last* `!`. API calls authenticate with
//! `PVEAPIToken=<full token id>=<secret>`. A [`Subject`] is either: whom permissions are evaluated for.
//!
//! ```
//! use pvetoken_acl::{Subject, TokenId, UserId};
//!
//! let token: TokenId = "automation@pve!packer".parse().unwrap();
//! assert_eq!(token.user(), "automation@pve".parse::<UserId>().unwrap());
//! assert_eq!(token.name().as_str(), "packer");
//! assert_eq!(token.user().realm(), "pve");
//! // community.proxmox wants the user and the bare name; Packer wants the full id.
//! let subject: Subject = "automation@pve!packer".parse().unwrap();
//! assert!(matches!(subject, Subject::Token(_)));
//! assert!("automation@pve!p".parse::<TokenId>().is_err()); // names need two characters
//! ```
//!
//! # Evaluating
//!
//! ```
//! use pvetoken_acl::{AclPath, Catalog, Evaluator, PveVersion, Subject, UserCfg};
//!
//! let catalog = Catalog::for_version("8.4".parse::<PveVersion>().unwrap());
//! let text = "user:ci@pve:1:0::::::\ntoken:ci@pve!tf:0:1::\n\nacl:1:/vms:ci@pve:PVEVMAdmin:\nacl:1:/vms:ci@pve!tf:PVEAuditor:\n";
//! let (cfg, warnings) = UserCfg::parse(text, &catalog);
//! assert!(warnings.is_empty());
//! let eval = Evaluator::new(&cfg, &catalog);
//! let token: Subject = "ci@pve!tf".parse().unwrap();
//! let perms = eval.permissions(&token, &"/vms/100".parse::<AclPath>().unwrap());
//! // privilege separation: the token's own roles intersected with the owner's
//! assert_eq!(perms.granted().join(), "VM.Audit");
//! ```
//!
//! Module map: [`ids`] (validated identifiers), [`catalog`] (versions, privilege sets, built-in roles, path
//! rules), [`parsed`] (the parser: interned ids, flat tables), [`usercfg`] (model, writer), [`mutate`] (the changes the `/access` API makes, with Proxmox's
//! errors), [`tokencfg`] (secrets), [`eval`] (compiled engine), [`explain`] (why).

pub mod auth;
pub mod catalog;
mod catalog_data;
pub mod endpoints;
pub mod eval;
pub mod explain;
mod hash;
pub mod ids;
pub mod mutate;
pub mod parsed;
pub mod release;
pub mod tokencfg;
pub mod usercfg;

pub use catalog::{Catalog, PrivSet};
pub use eval::{Engine, Evaluator, Permissions};
pub use explain::{EntryRef, Explanation, MatchKind, RoleTrace, SideTrace, TraceStep, Verdict};
pub use ids::{AclPath, GroupId, IdError, PoolId, Privilege, Realm, RoleId, Subject, TokenId, TokenName, UserId};
pub use mutate::{AccessError, AclUpdate};
pub use parsed::{Access, ParsedCfg};
pub use release::{AccessControlVersion, Feature, Release};
pub use release::{PveVersion, VersionError};
pub use tokencfg::{TokenCfg, TokenCfgWarning, TokenSecret};
pub use usercfg::{AclEntry, AclNode, AclSubject, Group, MAX_ACL_PATH_DEPTH, ParseWarning, Pool, Token, User, UserCfg};
