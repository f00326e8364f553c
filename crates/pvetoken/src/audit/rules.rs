//! The finding rules. Each rule has a stable id (docs/audit.md), a fixed severity, evidence in user.cfg syntax
//! and the fix as `pveum` and `pvetoken` commands.

use std::collections::BTreeMap;

use pvetoken_acl::{AclEntry, AclSubject, PrivSet, Privilege, TokenId, UserId};

use super::analysis::{Evaluated, Index, TokenView, acl_line, deciding_entries, token_line};
use super::model::{Finding, Fix, Severity};
use super::rawscan::RawScan;

/// Rule ids, in the order docs/audit.md lists them.
pub mod ids {
    /// A token of root@pam without privilege separation: full root.
    pub const ROOT_TOKEN_FULL: &str = "root-token-full";
    /// Effective Administrator (every privilege) somewhere.
    pub const TOKEN_ADMINISTRATOR: &str = "token-administrator";
    /// privsep 0: the token is its user.
    pub const TOKEN_PRIVSEP_OFF: &str = "token-privsep-off";
    /// Permissions.Modify / Sys.Modify / User.Modify / Realm.Allocate somewhere.
    pub const TOKEN_CAN_ESCALATE: &str = "token-can-escalate";
    /// Nothing granted anywhere.
    pub const TOKEN_NO_EFFECTIVE_RIGHTS: &str = "token-no-effective-rights";
    /// Token ACLs grant what the owner lacks.
    pub const TOKEN_RIGHTS_NARROWED_BY_USER: &str = "token-rights-narrowed-by-user";
    /// Rights beyond the token's pvetoken profile.
    pub const TOKEN_EXCEEDS_PROFILE: &str = "token-exceeds-profile";
    /// Expired token.
    pub const TOKEN_EXPIRED: &str = "token-expired";
    /// Expires within the window.
    pub const TOKEN_EXPIRING: &str = "token-expiring";
    /// Never expires.
    pub const TOKEN_NO_EXPIRY: &str = "token-no-expiry";
    /// The owner is disabled (every request answers 401).
    pub const TOKEN_OWNER_DISABLED: &str = "token-owner-disabled";
    /// Expired user.
    pub const USER_EXPIRED: &str = "user-expired";
    /// A user with tokens expiring within the window.
    pub const USER_EXPIRING: &str = "user-expiring";
    /// ACL entries for a user that does not exist.
    pub const ACL_MISSING_USER: &str = "acl-missing-user";
    /// ACL entries for a group that does not exist.
    pub const ACL_MISSING_GROUP: &str = "acl-missing-group";
    /// ACL lines for a token that does not exist (ignored by Proxmox).
    pub const ACL_MISSING_TOKEN: &str = "acl-missing-token";
    /// A custom role holds a privilege the release does not know (dropped silently).
    pub const ROLE_UNKNOWN_PRIVILEGE: &str = "role-unknown-privilege";
    /// A custom role holds a privilege the next major release drops (VM.Monitor on 8.x).
    pub const ROLE_PRIVILEGE_DROPPED_ON_UPGRADE: &str = "role-privilege-dropped-on-upgrade";
    /// `--access-log`: privileges the token holds that no call in the logs needed.
    pub const TOKEN_UNUSED_PRIVILEGES: &str = "token-unused-privileges";
    /// A token of a pvetoken minter (`create --minter`): User.Modify on a group of the owner alone.
    pub const TOKEN_OF_MINTER: &str = "token-of-minter";
    /// A short-lived job token of `pvetoken exec` (its comment says so).
    pub const TOKEN_EPHEMERAL: &str = "token-ephemeral";
}

/// Settings the rules need.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Epoch seconds.
    pub now: u64,
    /// `--expiring-within`, seconds.
    pub window: u64,
}

/// Privileges that let a token grant itself (or anyone) more.
pub const ESCALATION: [&str; 4] = ["Permissions.Modify", "Sys.Modify", "User.Modify", "Realm.Allocate"];

/// Most evidence lines shown per finding before `... N more`.
const MAX_EVIDENCE: usize = 12;

fn privset(names: &[&str]) -> PrivSet {
    names.iter().filter_map(|n| n.parse::<Privilege>().ok()).collect()
}

fn capped(mut lines: Vec<String>) -> Vec<String> {
    lines.dedup();
    if lines.len() > MAX_EVIDENCE {
        let more = lines.len() - MAX_EVIDENCE;
        lines.truncate(MAX_EVIDENCE);
        lines.push(format!("... {more} more"));
    }
    lines
}

fn kind_flag(subject: &AclSubject) -> (&'static str, String) {
    match subject {
        AclSubject::User(u) => ("--users", u.to_string()),
        AclSubject::Group(g) => ("--groups", g.to_string()),
        AclSubject::Token(t) => ("--tokens", t.to_string()),
    }
}

fn quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "@!._-/:=,".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `pveum acl delete PATH --users|--groups|--tokens X --roles R`.
fn acl_delete(path: &str, subject: &AclSubject, role: &str) -> String {
    let (flag, who) = kind_flag(subject);
    format!("pveum acl delete {} {flag} {} --roles {}", quote(path), quote(&who), quote(role))
}

fn profile_or_placeholder(view: &TokenView<'_>, profile: Option<&str>) -> String {
    let _ = view;
    profile.map_or_else(|| "<profile>".to_owned(), str::to_owned)
}

fn replacement(view: &TokenView<'_>, profile: Option<&str>) -> Vec<String> {
    let owner = if view.owner.is_root() { "automation@pve".to_owned() } else { view.owner.to_string() };
    vec![
        format!("pvetoken create --profile {} --user {}", profile_or_placeholder(view, profile), quote(&owner)),
        format!("pvetoken revoke {}", quote(view.id.as_str())),
    ]
}

/// A span in whole days, rounded to the nearest day (2 days 23:59 reads "3 days", so two audits a second apart
/// agree); under a day, in hours.
fn days(seconds: u64) -> String {
    if seconds < 86_400 {
        return format!("{} hours", seconds / 3600);
    }
    let d = (seconds + 43_200) / 86_400;
    format!("{d} day{}", if d == 1 { "" } else { "s" })
}

/// Evidence for `privilege` at `place`: the deciding entries whose role grants it, on the token's side (privsep)
/// and on the user's side (also through the guest's pool for pool members).
fn granting_entries(index: &Index<'_>, view: &TokenView<'_>, place: &Evaluated, privilege: Privilege) -> Vec<AclEntry> {
    let mut paths = vec![place.evaluated_on.clone()];
    if let Some(pool) = place
        .evaluated_on
        .strip_prefix("/vms/")
        .and_then(|id| id.parse::<u64>().ok())
        .and_then(|id| index.cfg.pool_of_vm(id))
    {
        paths.push(format!("/pool/{pool}"));
    }
    let mut sides: Vec<&[&AclEntry]> = Vec::new();
    if view.token.privsep {
        sides.push(&view.own_entries);
    }
    if !view.owner.is_root() {
        sides.push(&view.owner_entries);
    }
    let mut out: Vec<AclEntry> = Vec::new();
    for side in sides {
        for path in &paths {
            for e in deciding_entries(side, path) {
                let grants = index.cfg.role_grants(&e.roleid, privilege, index.catalog);
                if grants && !out.contains(e) {
                    out.push(e.clone());
                }
            }
        }
    }
    out
}

/// `pveum acl delete` for the granting entries on the side that should shrink: the token's own entries for a
/// privilege-separated token (its user may legitimately need the rights), else the user's.
fn removals(view: &TokenView<'_>, entries: &[AclEntry]) -> Vec<String> {
    let token_side = view.token.privsep;
    entries
        .iter()
        .filter(|e| matches!(e.subject, AclSubject::Token(_)) == token_side)
        .map(|e| acl_delete(e.path.as_str(), &e.subject, e.roleid.as_str()))
        .collect()
}

/// Findings about one token (`profile` is the pvetoken profile it was made for, if known).
pub fn token_findings(index: &Index<'_>, view: &TokenView<'_>, profile: Option<&str>, s: Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    let id = view.id.as_str().to_owned();
    let name = view.id.name_str().to_owned();
    let tline = token_line(&view.id, &view.token);
    if view.is_full_root() {
        out.push(Finding {
            id: ids::ROOT_TOKEN_FULL,
            severity: Severity::Critical,
            subject: id.clone(),
            title: "token of root@pam without privilege separation: full root".to_owned(),
            detail: "Anyone holding this secret can do everything root@pam can, on every path, including creating \
                     users, tokens and ACLs. No ACL can restrict it."
                .to_owned(),
            evidence: vec![tline.clone()],
            fix: Fix {
                summary: "delete it; give the automation a privilege-separated token of a dedicated user".to_owned(),
                pveum: vec![format!("pveum user token remove root@pam {}", quote(&name))],
                pvetoken: replacement(view, profile),
            },
        });
    } else {
        privilege_findings(index, view, profile, &tline, &mut out);
    }
    expiry_findings(index, view, &tline, s, &mut out);
    pvetoken_role_findings(index, view, &tline, s, &mut out);
    out
}

fn privilege_findings(
    index: &Index<'_>,
    view: &TokenView<'_>,
    profile: Option<&str>,
    tline: &str,
    out: &mut Vec<Finding>,
) {
    privsep_off(view, profile, tline, out);
    administrator_or_escalation(index, view, profile, out);
    rights_findings(index, view, profile, tline, out);
}

/// `token-privsep-off`: the token equals its user.
fn privsep_off(view: &TokenView<'_>, profile: Option<&str>, tline: &str, out: &mut Vec<Finding>) {
    let id = view.id.as_str().to_owned();
    let name = view.id.name_str().to_owned();
    let owner = view.owner.to_string();
    if !view.token.privsep {
        let mut evidence = vec![tline.to_owned()];
        evidence.extend(view.owner_entries.iter().map(|e| acl_line(e)));
        let ignored = view.own_entries.len();
        out.push(Finding {
            id: ids::TOKEN_PRIVSEP_OFF,
            severity: Severity::High,
            subject: id.clone(),
            title: format!("privilege separation off: the token has every right of {owner}"),
            detail: format!(
                "With privsep 0 the token equals its user ({} ACL entr{} of the user and its groups apply){}. A \
                 leaked automation secret then carries the user's full rights.",
                view.owner_entries.len(),
                if view.owner_entries.len() == 1 { "y" } else { "ies" },
                if ignored > 0 { format!("; its own {ignored} ACL entries are ignored") } else { String::new() }
            ),
            evidence: capped(evidence),
            fix: Fix {
                summary: "turn privilege separation on and give the token only the roles it needs (its own ACLs)"
                    .to_owned(),
                pveum: vec![
                    format!("pveum user token modify {} {} --privsep 1", quote(&owner), quote(&name)),
                    format!("pveum acl modify <path> --tokens {} --roles <role>", quote(&id)),
                ],
                pvetoken: replacement(view, profile),
            },
        });
    }
}

/// `token-administrator`, else `token-can-escalate` (not for User.Modify on a minter's own group).
fn administrator_or_escalation(index: &Index<'_>, view: &TokenView<'_>, profile: Option<&str>, out: &mut Vec<Finding>) {
    let catalog = index.catalog;
    let id = view.id.as_str().to_owned();
    let all = catalog.privileges();
    let admin_place = view.evaluated.iter().find(|e| !all.is_empty() && all.is_subset(e.perms.granted()));
    let escalation = privset(&ESCALATION);
    if let Some(place) = admin_place {
        let probe = "Permissions.Modify".parse::<Privilege>().ok().or_else(|| all.iter().next());
        let entries = probe.map(|p| granting_entries(index, view, place, p)).unwrap_or_default();
        out.push(Finding {
            id: ids::TOKEN_ADMINISTRATOR,
            severity: Severity::Critical,
            subject: id.clone(),
            title: format!("effective Administrator on {}", place.path),
            detail: format!(
                "The token holds every privilege of PVE {} on {}{}, so it can grant itself and others anything.",
                catalog.version(),
                place.path,
                if place.members { " (pool members)" } else { "" }
            ),
            evidence: capped(entries.iter().map(acl_line).collect()),
            fix: Fix {
                summary: "remove the Administrator grant; grant the token a role with only what its consumer needs"
                    .to_owned(),
                pveum: removals(view, &entries),
                pvetoken: replacement(view, profile),
            },
        });
    } else {
        let mut hits: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        let mut first: BTreeMap<&'static str, &Evaluated> = BTreeMap::new();
        for place in &view.evaluated {
            for p in place.perms.granted().intersection(escalation).iter() {
                if p.as_str() == "User.Modify" && owners_own_group(index, view, &place.path) {
                    continue; // a minter's: reaches the owner alone (token-of-minter)
                }
                hits.entry(p.as_str()).or_default().push(place.path.clone());
                first.entry(p.as_str()).or_insert(place);
            }
        }
        if !hits.is_empty() {
            let mut entries = Vec::new();
            for (privilege, place) in &first {
                if let Ok(p) = privilege.parse::<Privilege>() {
                    for e in granting_entries(index, view, place, p) {
                        if !entries.contains(&e) {
                            entries.push(e);
                        }
                    }
                }
            }
            let where_ = hits
                .iter()
                .map(|(p, paths)| {
                    let more = if paths.len() > 3 { format!(" and {} more", paths.len() - 3) } else { String::new() };
                    format!("{p} on {}{more}", paths.iter().take(3).cloned().collect::<Vec<_>>().join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ");
            out.push(Finding {
                id: ids::TOKEN_CAN_ESCALATE,
                severity: Severity::High,
                subject: id.clone(),
                title: "the token can grant itself more rights".to_owned(),
                detail: format!(
                    "{where_}. These privileges change ACLs, users, realms or the system configuration: a token \
                     holding them is as strong as the rights it can hand out."
                ),
                evidence: capped(entries.iter().map(acl_line).collect()),
                fix: Fix {
                    summary: "replace the roles granting these privileges with a role without them".to_owned(),
                    pveum: removals(view, &entries),
                    pvetoken: replacement(view, profile),
                },
            });
        }
    }
}

/// `token-no-effective-rights`, else the rights a privilege-separated token loses to its user (`narrowed`).
fn rights_findings(
    index: &Index<'_>,
    view: &TokenView<'_>,
    profile: Option<&str>,
    tline: &str,
    out: &mut Vec<Finding>,
) {
    let id = view.id.as_str().to_owned();
    let name = view.id.name_str().to_owned();
    let owner = view.owner.to_string();
    if view.has_no_rights() {
        let mut evidence = vec![tline.to_owned()];
        evidence.extend(view.own_entries.iter().map(|e| acl_line(e)));
        let (detail, pveum) = if !view.token.privsep {
            (
                format!(
                    "Its user {owner} has no rights anywhere, and a token without privilege separation has exactly \
                         its user's rights: every call answers 403."
                ),
                vec![format!("pveum acl modify <path> --users {} --roles <role>", quote(&owner))],
            )
        } else if view.own_entries.is_empty() {
            (
                "No ACL entry names the token: a privilege-separated token starts with no rights, whatever its user \
                 may do. Every call answers 403."
                    .to_owned(),
                vec![format!("pveum acl modify <path> --tokens {} --roles <role>", quote(&id))],
            )
        } else {
            (
                format!(
                    "The token's own ACLs grant rights, but its user {owner} lacks them: privilege separation keeps \
                     only what both the token and its user have, so nothing is left (rights granted on the token \
                     side only). Every call answers 403."
                ),
                view.own_entries
                    .iter()
                    .map(|e| {
                        format!(
                            "pveum acl modify {} --users {} --roles {}{}",
                            quote(e.path.as_str()),
                            quote(&owner),
                            quote(e.roleid.as_str()),
                            if e.propagate { "" } else { " --propagate 0" }
                        )
                    })
                    .collect(),
            )
        };
        out.push(Finding {
            id: ids::TOKEN_NO_EFFECTIVE_RIGHTS,
            severity: Severity::Medium,
            subject: id.clone(),
            title: "the token has no effective rights anywhere".to_owned(),
            detail,
            evidence: capped(evidence),
            fix: Fix {
                summary: "grant the rights on both sides (user and token), or revoke the token if it is unused"
                    .to_owned(),
                pveum,
                pvetoken: vec![
                    format!(
                        "pvetoken create --profile {} --user {} --token-name {}",
                        profile_or_placeholder(view, profile),
                        quote(&owner),
                        quote(&name)
                    ),
                    format!("pvetoken revoke {}", quote(&id)),
                ],
            },
        });
    } else if view.token.privsep && !view.owner.is_root() {
        narrowed(index, view, out);
    }
}

fn narrowed(index: &Index<'_>, view: &TokenView<'_>, out: &mut Vec<Finding>) {
    let mut lacking: BTreeMap<String, PrivSet> = BTreeMap::new();
    let mut evidence = Vec::new();
    let mut fixes = Vec::new();
    let owner = view.owner.to_string();
    for entry in &view.own_entries {
        let path = entry.path.as_str();
        let deciding = deciding_entries(&view.own_entries, path);
        let claim = if deciding.iter().any(|e| e.roleid.as_str() == "NoAccess") {
            PrivSet::EMPTY
        } else {
            deciding
                .iter()
                .filter_map(|e| index.cfg.role_privileges(e.roleid.as_str(), index.catalog))
                .fold(PrivSet::EMPTY, PrivSet::union)
        };
        let effective =
            view.evaluated.iter().find(|e| !e.members && e.path == path).map(|e| e.perms.granted()).unwrap_or_default();
        let missing = claim.difference(effective);
        let role_privs = index.cfg.role_privileges(entry.roleid.as_str(), index.catalog).unwrap_or_default();
        if !missing.is_empty() && !role_privs.intersection(missing).is_empty() {
            lacking.entry(path.to_owned()).or_default();
            if let Some(set) = lacking.get_mut(path) {
                *set = set.union(missing);
            }
            evidence.push(acl_line(entry));
            fixes.push(format!(
                "pveum acl modify {} --users {} --roles {}{}",
                quote(path),
                quote(&owner),
                quote(entry.roleid.as_str()),
                if entry.propagate { "" } else { " --propagate 0" }
            ));
        }
    }
    if lacking.is_empty() {
        return;
    }
    let detail = lacking.iter().map(|(path, set)| format!("on {path}: {}", set.join())).collect::<Vec<_>>().join("; ");
    out.push(Finding {
        id: ids::TOKEN_RIGHTS_NARROWED_BY_USER,
        severity: Severity::Medium,
        subject: view.id.as_str().to_owned(),
        title: format!("the token's ACLs grant privileges its user {owner} lacks"),
        detail: format!(
            "Privilege separation keeps only what both sides have, so these privileges are silently missing: \
             {detail}."
        ),
        evidence: capped(evidence),
        fix: Fix {
            summary: format!("grant {owner} the same roles (or drop them from the token if they are not needed)"),
            pveum: fixes,
            pvetoken: vec![format!(
                "pvetoken create --profile <profile> --user {} --token-name {}",
                quote(&owner),
                quote(view.id.name_str())
            )],
        },
    });
}

/// True for `/access/groups/<g>` where `g`'s only member is the token's owner: User.Modify there manages the owner's
/// own tokens and nothing else (a pvetoken minter's group).
fn owners_own_group(index: &Index<'_>, view: &TokenView<'_>, path: &str) -> bool {
    path.strip_prefix("/access/groups/").is_some_and(|group| {
        index.cfg.groups().iter().any(|(id, record)| {
            id.as_str() == group && record.members.len() == 1 && record.members.contains(&view.owner)
        })
    })
}

/// The minter and ephemeral labels: what pvetoken made a token for, where a reader of the report would otherwise
/// see a token that can create tokens, or a stray one.
fn pvetoken_role_findings(index: &Index<'_>, view: &TokenView<'_>, tline: &str, s: Settings, out: &mut Vec<Finding>) {
    let id = view.id.as_str().to_owned();
    let owner = view.owner.to_string();
    let minter_group = view.evaluated.iter().find(|place| {
        owners_own_group(index, view, &place.path) && place.perms.granted().iter().any(|p| p.as_str() == "User.Modify")
    });
    if let Some(place) = minter_group {
        out.push(Finding {
            id: ids::TOKEN_OF_MINTER,
            severity: Severity::Info,
            subject: id.clone(),
            title: format!("a minter's token: creates and deletes tokens of {owner} alone"),
            detail: format!(
                "User.Modify on {} (a group whose only member is {owner}) lets it manage that user's tokens; tokens \
                 it mints without privilege separation hold the user's rights, no more. Tokens of this user not made \
                 by `pvetoken exec` are worth a look.",
                place.path
            ),
            evidence: vec![tline.to_owned()],
            fix: Fix {
                summary: "nothing to fix; keep the group to this user alone".to_owned(),
                pveum: Vec::new(),
                pvetoken: Vec::new(),
            },
        });
    }
    let Some(comment) = view.token.comment.as_deref().filter(|c| c.starts_with(pvetoken_lifecycle::minter::EPHEMERAL))
    else {
        return;
    };
    let expired = view.token.expire != 0 && view.token.expire < s.now;
    out.push(Finding {
        id: ids::TOKEN_EPHEMERAL,
        severity: if expired { Severity::Low } else { Severity::Info },
        subject: id,
        title: if expired {
            "a job token of pvetoken exec outlived its job and expired".to_owned()
        } else {
            format!("a job token of pvetoken exec (expires in {})", days(view.token.expire.saturating_sub(s.now)))
        },
        detail: format!(
            "Made for one job ({comment}); exec deletes it when the job ends, so it is either in use now or its \
             job was killed."
        ),
        evidence: vec![tline.to_owned()],
        fix: Fix {
            summary: "collect it once its job is gone".to_owned(),
            pveum: vec![format!("pveum user token remove {} {}", quote(&owner), quote(view.id.name_str()))],
            pvetoken: vec![format!("pvetoken gc --user {}", quote(&owner))],
        },
    });
}

fn expiry_findings(index: &Index<'_>, view: &TokenView<'_>, tline: &str, s: Settings, out: &mut Vec<Finding>) {
    let id = view.id.as_str().to_owned();
    let owner = view.owner.to_string();
    let name = view.id.name_str().to_owned();
    let expire = view.token.expire;
    let new_owner = if view.owner.is_root() { "automation@pve".to_owned() } else { owner.clone() };
    let new_token = format!("pvetoken create --profile <profile> --user {} --expire 90d", quote(&new_owner));
    if expire != 0 && expire < s.now {
        out.push(Finding {
            id: ids::TOKEN_EXPIRED,
            severity: Severity::Medium,
            subject: id.clone(),
            title: format!("expired {} ago", days(s.now - expire)),
            detail: "Every request with this token answers 401. Its ACL entries stay behind.".to_owned(),
            evidence: vec![tline.to_owned()],
            fix: Fix {
                summary: "delete it (with its ACL entries), or extend it if it is still in use".to_owned(),
                pveum: vec![
                    format!("pveum user token remove {} {}", quote(&owner), quote(&name)),
                    format!("pveum user token modify {} {} --expire <epoch>", quote(&owner), quote(&name)),
                ],
                pvetoken: vec![format!("pvetoken revoke {}", quote(&id))],
            },
        });
    } else if expire != 0 && expire - s.now < s.window {
        out.push(Finding {
            id: ids::TOKEN_EXPIRING,
            severity: Severity::Low,
            subject: id.clone(),
            title: format!("expires in {}", days(expire - s.now)),
            detail: "After that, every request with this token answers 401.".to_owned(),
            evidence: vec![tline.to_owned()],
            fix: Fix {
                summary: "replace it before it expires and update its consumers".to_owned(),
                pveum: vec![format!("pveum user token modify {} {} --expire <epoch>", quote(&owner), quote(&name))],
                pvetoken: vec![new_token.clone(), format!("pvetoken revoke {}", quote(&id))],
            },
        });
    } else if expire == 0 {
        out.push(Finding {
            id: ids::TOKEN_NO_EXPIRY,
            severity: Severity::Info,
            subject: id.clone(),
            title: "never expires".to_owned(),
            detail: "A forgotten token stays valid forever; an expiry forces a review.".to_owned(),
            evidence: vec![tline.to_owned()],
            fix: Fix {
                summary: "set an expiry and rotate before it".to_owned(),
                pveum: vec![format!("pveum user token modify {} {} --expire <epoch>", quote(&owner), quote(&name))],
                pvetoken: vec![new_token, format!("pvetoken revoke {}", quote(&id))],
            },
        });
    }
    if let Some(user) = index.cfg.user(&view.owner)
        && !user.enable
    {
        out.push(Finding {
            id: ids::TOKEN_OWNER_DISABLED,
            severity: Severity::Low,
            subject: id.clone(),
            title: format!("its user {owner} is disabled"),
            detail: "Every request with this token answers 401 while the user is disabled.".to_owned(),
            evidence: vec![format!("user:{owner}:0:{}:", user.expire), tline.to_owned()],
            fix: Fix {
                summary: "delete the token if the user is retired, or enable the user".to_owned(),
                pveum: vec![
                    format!("pveum user token remove {} {}", quote(&owner), quote(&name)),
                    format!("pveum user modify {} --enable 1", quote(&owner)),
                ],
                pvetoken: vec![format!("pvetoken revoke {}", quote(&id))],
            },
        });
    }
}

/// The token's status for the summary.
pub fn status(index: &Index<'_>, id: &TokenId, expire: u64, now: u64) -> &'static str {
    let user = index.cfg.user(&id.user());
    if expire != 0 && expire < now {
        "expired"
    } else if user.is_some_and(|u| u.expire != 0 && u.expire < now) {
        "owner-expired"
    } else if user.is_some_and(|u| !u.enable) {
        "owner-disabled"
    } else {
        "active"
    }
}

/// Findings about users, ACL entries and roles.
pub fn config_findings(index: &Index<'_>, raw: &RawScan, s: Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    user_findings(index, s, &mut out);
    missing_subject_findings(index, raw, &mut out);
    role_findings(index, raw, &mut out);
    out
}

fn user_findings(index: &Index<'_>, s: Settings, out: &mut Vec<Finding>) {
    for (id, user) in index.cfg.users() {
        if user.expire == 0 || user.expire >= s.now.saturating_add(s.window) {
            continue;
        }
        let tokens: Vec<String> = user.tokens.keys().map(|n| format!("{id}!{n}")).collect();
        let uline = format!("user:{id}:{}:{}:", u8::from(user.enable), user.expire);
        let mut evidence = vec![uline];
        evidence.extend(user.tokens.iter().map(|(n, t)| token_line(&TokenId::new(id, n), t)));
        if user.expire < s.now {
            out.push(Finding {
                id: ids::USER_EXPIRED,
                severity: Severity::Medium,
                subject: id.to_string(),
                title: format!("user expired {} ago", days(s.now - user.expire)),
                detail: if tokens.is_empty() {
                    "The account can no longer log in; its ACL entries stay behind.".to_owned()
                } else {
                    format!("Its tokens are dead too (every request answers 401): {}.", tokens.join(", "))
                },
                evidence: capped(evidence),
                fix: Fix {
                    summary: "delete the user (its tokens and ACL entries go with it), or extend it if still needed"
                        .to_owned(),
                    pveum: vec![
                        format!("pveum user delete {}", quote(id.as_str())),
                        format!("pveum user modify {} --expire <epoch>", quote(id.as_str())),
                    ],
                    pvetoken: tokens.iter().map(|t| format!("pvetoken revoke {}", quote(t))).collect(),
                },
            });
        } else if !tokens.is_empty() {
            out.push(Finding {
                id: ids::USER_EXPIRING,
                severity: Severity::Low,
                subject: id.to_string(),
                title: format!("user expires in {}", days(user.expire - s.now)),
                detail: format!("Its tokens stop working with it: {}.", tokens.join(", ")),
                evidence: capped(evidence),
                fix: Fix {
                    summary: "extend the user or move its tokens to a user that does not expire".to_owned(),
                    pveum: vec![format!("pveum user modify {} --expire <epoch>", quote(id.as_str()))],
                    pvetoken: vec!["pvetoken create --profile <profile> --user automation@pve".to_owned()],
                },
            });
        }
    }
}

/// ACL entries that name a subject that does not exist; `heir` says who would get them.
fn dangling(id: &'static str, subject: String, title: String, heir: &str, entries: &[&AclEntry]) -> Finding {
    Finding {
        id,
        severity: Severity::Medium,
        subject,
        title,
        detail: format!(
            "Proxmox keeps these {} entr{}: {heir}.",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" }
        ),
        evidence: capped(entries.iter().map(|e| acl_line(e)).collect()),
        fix: Fix {
            summary: "delete the dangling entries".to_owned(),
            pveum: entries.iter().map(|e| acl_delete(e.path.as_str(), &e.subject, e.roleid.as_str())).collect(),
            pvetoken: vec!["pvetoken audit --fail-on medium   # confirm they are gone".to_owned()],
        },
    }
}

fn missing_subject_findings(index: &Index<'_>, raw: &RawScan, out: &mut Vec<Finding>) {
    let mut users: BTreeMap<UserId, Vec<&AclEntry>> = BTreeMap::new();
    let mut groups: BTreeMap<String, Vec<&AclEntry>> = BTreeMap::new();
    for entry in &index.entries {
        match &entry.subject {
            AclSubject::User(u) if index.cfg.user(u).is_none() => users.entry(u.clone()).or_default().push(entry),
            AclSubject::Group(g) if !index.cfg.groups().contains_key(g) => {
                groups.entry(g.to_string()).or_default().push(entry);
            }
            _ => {}
        }
    }
    for (user, entries) in users {
        let title = format!("ACL entries name user {user}, which does not exist");
        let heir = format!("whoever is created later as {user} (by hand or a realm sync) gets these rights at once");
        out.push(dangling(ids::ACL_MISSING_USER, user.to_string(), title, &heir, &entries));
    }
    for (group, entries) in groups {
        let title = format!("ACL entries name group {group}, which does not exist");
        let heir = format!("a group created later as {group} hands them to all its members");
        out.push(dangling(ids::ACL_MISSING_GROUP, format!("@{group}"), title, &heir, &entries));
    }
    let mut tokens: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for missing in &raw.missing_tokens {
        tokens.entry(missing.token.to_string()).or_default().push(format!("line {}: {}", missing.line, missing.text));
    }
    for (token, lines) in tokens {
        out.push(Finding {
            id: ids::ACL_MISSING_TOKEN,
            severity: Severity::Low,
            subject: token.clone(),
            title: format!("ACL lines name token {token}, which does not exist"),
            detail: "Proxmox ignores these lines (and drops them the next time it writes user.cfg). They show that \
                     a token was deleted by hand or that its rights were meant for a token that was never created."
                .to_owned(),
            evidence: capped(lines),
            fix: Fix {
                summary: "remove the lines from /etc/pve/user.cfg (any pveum change rewrites the file without them)"
                    .to_owned(),
                pveum: vec!["pveum acl list   # the ignored lines are not listed: nothing grants them".to_owned()],
                pvetoken: vec!["pvetoken audit --fail-on low   # confirm they are gone".to_owned()],
            },
        });
    }
}

/// Replacement advice for privileges that PVE removed.
fn replacement_hint(privilege: &str) -> &'static str {
    match privilege {
        "VM.Monitor" => {
            " (removed in PVE 9.0: guest-agent reads now need VM.GuestAgent.Audit, other agent calls the \
             VM.GuestAgent.* privileges, the monitor Sys.Audit)"
        }
        _ => "",
    }
}

fn role_users(index: &Index<'_>, role: &str) -> Vec<String> {
    index.entries.iter().filter(|e| e.roleid.as_str() == role).map(acl_line).collect()
}

fn role_findings(index: &Index<'_>, raw: &RawScan, out: &mut Vec<Finding>) {
    let catalog = index.catalog;
    let mut by_role: BTreeMap<&str, Vec<&super::rawscan::UnknownRolePrivilege>> = BTreeMap::new();
    for u in &raw.unknown_privileges {
        by_role.entry(u.role.as_str()).or_default().push(u);
    }
    for (role, unknown) in by_role {
        let names: Vec<String> =
            unknown.iter().map(|u| format!("{}{}", u.privilege, replacement_hint(&u.privilege))).collect();
        let mut evidence: Vec<String> = unknown.iter().map(|u| format!("line {}: {}", u.line, u.text)).collect();
        evidence.dedup();
        evidence.extend(role_users(index, role));
        let kept = index.cfg.role_privileges(role, catalog).unwrap_or_default();
        let mut privs: Vec<&str> = kept.iter().map(Privilege::as_str).collect();
        if unknown.iter().any(|u| u.privilege == "VM.Monitor") && catalog.privilege("VM.GuestAgent.Audit").is_ok() {
            privs.push("VM.GuestAgent.Audit");
            privs.sort_unstable();
            privs.dedup();
        }
        out.push(Finding {
            id: ids::ROLE_UNKNOWN_PRIVILEGE,
            severity: Severity::Medium,
            subject: role.to_owned(),
            title: format!("role {role} holds privileges PVE {} does not know", catalog.version()),
            detail: format!(
                "Proxmox drops {} silently: the role, and every token relying on it, lost {}.",
                names.join(", "),
                if unknown.len() == 1 { "it" } else { "them" }
            ),
            evidence: capped(evidence),
            fix: Fix {
                summary: "rewrite the role with privileges this release knows".to_owned(),
                pveum: vec![format!("pveum role modify {} --privs {}", quote(role), quote(&privs.join(",")))],
                pvetoken: vec!["pvetoken create --profile <profile>   # version-aware role".to_owned()],
            },
        });
    }
    let newest = pvetoken_acl::Catalog::newest();
    if catalog.version().major >= newest.version().major {
        return;
    }
    for (role, privs) in index.cfg.custom_roles() {
        let doomed: Vec<Privilege> = privs.iter().filter(|p| !newest.knows(*p)).collect();
        if doomed.is_empty() {
            continue;
        }
        let names: Vec<String> = doomed.iter().map(|p| format!("{p}{}", replacement_hint(p.as_str()))).collect();
        let kept: Vec<&str> = privs.iter().filter(|p| newest.knows(*p)).map(Privilege::as_str).collect();
        let mut evidence = vec![format!("role:{role}:{}:", privs.join())];
        evidence.extend(role_users(index, role.as_str()));
        out.push(Finding {
            id: ids::ROLE_PRIVILEGE_DROPPED_ON_UPGRADE,
            severity: Severity::Low,
            subject: role.to_string(),
            title: format!("role {role} holds privileges PVE {} removes", newest.version().major),
            detail: format!(
                "After the upgrade Proxmox drops {} from the role silently (pve8to9 reports it).",
                names.join(", ")
            ),
            evidence: capped(evidence),
            fix: Fix {
                summary: "remove them before upgrading; add their replacements after".to_owned(),
                pveum: vec![format!("pveum role modify {role} --privs {}", quote(&kept.join(",")))],
                pvetoken: vec!["pvetoken create --profile <profile>   # version-aware role".to_owned()],
            },
        });
    }
}
