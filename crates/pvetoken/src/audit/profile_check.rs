//! `--profile-check`: tokens created by pvetoken (comment `pvetoken profile <name>`, or a token named like a
//! built-in profile) compared with what their profile needs.

use std::collections::BTreeMap;

use pvetoken_acl::{PrivSet, Privilege, PveVersion};

use super::analysis::{Index, TokenView, acl_line};
use super::model::{Finding, Fix, Severity};
use super::rules::ids;
use pvetoken_lifecycle::profiles::{self, Narrowing, Profile};

/// The comment `pvetoken create` gives the tokens it makes.
pub const COMMENT_MARKER: &str = "pvetoken profile ";

/// The profile a token was created for: the comment marker first, then a token name equal to a built-in profile.
pub fn detect(view: &TokenView<'_>) -> Option<String> {
    if let Some(rest) = view.token.comment.as_deref().and_then(|c| c.trim().strip_prefix(COMMENT_MARKER)) {
        let name = rest.split_whitespace().next().unwrap_or("");
        if !name.is_empty() {
            return Some(name.to_owned());
        }
    }
    let name = view.id.name_str();
    profiles::builtin_names().contains(&name).then(|| name.to_owned())
}

/// Per path: the privileges the profile needs there (directly or through a propagating ancestor).
struct Needs {
    broad: Vec<(String, bool, PrivSet)>,
    pooled: Vec<PrivSet>,
}

impl Needs {
    fn of(profile: &Profile, version: PveVersion) -> Needs {
        let v = profiles::PveVersion { major: u32::from(version.major), minor: u32::from(version.minor) };
        let to_set = |names: &BTreeMap<String, String>| -> PrivSet {
            names.keys().filter_map(|n| n.parse::<Privilege>().ok()).collect()
        };
        let resolved = profile.resolve(v, &Narrowing::default(), None);
        let broad = resolved.paths.iter().map(|p| (p.path.clone(), p.propagate, to_set(&p.privileges))).collect();
        // Grants that `--pool` moves to /pool/<p>: their needs apply under any pool path too.
        let pool_probe = Narrowing { pool: Some("__pool__".to_owned()), ..Narrowing::default() };
        let pooled = profile
            .resolve(v, &pool_probe, None)
            .paths
            .iter()
            .filter(|p| p.path == "/pool/__pool__")
            .map(|p| to_set(&p.privileges))
            .collect();
        Needs { broad, pooled }
    }

    fn at(&self, path: &str, members: bool) -> PrivSet {
        let mut set = PrivSet::EMPTY;
        let probe = if members { "/vms/100" } else { path };
        for (base, propagate, privs) in &self.broad {
            let below = base == "/" || probe.strip_prefix(base.as_str()).is_some_and(|rest| rest.starts_with('/'));
            if probe == base || (*propagate && below) {
                set = set.union(*privs);
            }
        }
        if path.starts_with("/pool/") || members {
            for privs in &self.pooled {
                set = set.union(*privs);
            }
        }
        set
    }
}

/// The `token-exceeds-profile` finding, if the token holds privileges its profile does not need.
pub fn check(index: &Index<'_>, view: &TokenView<'_>, profile_name: &str) -> Option<Finding> {
    let profile = profiles::load(profile_name).ok()?;
    let needs = Needs::of(&profile, index.catalog.version());
    let mut excess: Vec<(String, PrivSet)> = Vec::new();
    for place in &view.evaluated {
        let extra = place.perms.granted().difference(needs.at(&place.path, place.members));
        if !extra.is_empty() {
            excess.push((if place.members { format!("{} (members)", place.path) } else { place.path.clone() }, extra));
        }
    }
    if excess.is_empty() {
        return None;
    }
    let detail =
        excess.iter().take(6).map(|(path, set)| format!("on {path}: {}", set.join())).collect::<Vec<_>>().join("; ");
    let mut evidence: Vec<String> = Vec::new();
    if view.token.privsep {
        evidence.extend(view.own_entries.iter().map(|e| acl_line(e)));
    }
    evidence.extend(view.owner_entries.iter().map(|e| acl_line(e)));
    evidence.truncate(12);
    let id = view.id.as_str();
    Some(Finding {
        id: ids::TOKEN_EXCEEDS_PROFILE,
        severity: Severity::Medium,
        subject: id.to_owned(),
        title: format!("rights beyond what profile {} needs", profile.name),
        detail: format!(
            "The token was created for profile {} but also holds {detail}{}.",
            profile.name,
            if excess.len() > 6 { format!(" (and {} more paths)", excess.len() - 6) } else { String::new() }
        ),
        evidence,
        fix: Fix {
            summary: format!("reconverge the token on profile {} and drop the extra grants", profile.name),
            pveum: view
                .own_entries
                .iter()
                .filter(|e| e.roleid.as_str() != profile.role_name())
                .map(|e| format!("pveum acl delete {} --tokens {id} --roles {}", e.path, e.roleid))
                .collect(),
            pvetoken: vec![format!(
                "pvetoken create --profile {} --user {} --token-name {}",
                profile.name,
                view.owner,
                view.id.name_str()
            )],
        },
    })
}
