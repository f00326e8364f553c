//! Names a privilege set the way an admin thinks of it ("VM admin", "datastore user + Sys.Audit") and turns a
//! token's evaluated places into its access lines.

use pvetoken_acl::{Catalog, PrivSet};

use super::analysis::{Evaluated, by_path, inherited};
use super::model::AccessLine;

/// Built-in roles with the words used for them, most encompassing first.
const ROLE_WORDS: [(&str, &str); 17] = [
    ("Administrator", "full administrator"),
    ("PVEAdmin", "PVE admin"),
    ("PVEVMAdmin", "VM admin"),
    ("PVEUserAdmin", "user admin"),
    ("PVEDatastoreAdmin", "datastore admin"),
    ("PVESDNAdmin", "SDN admin"),
    ("PVEMappingAdmin", "mapping admin"),
    ("PVEPoolAdmin", "pool admin"),
    ("PVESysAdmin", "sys admin"),
    ("PVEVMUser", "VM user"),
    ("PVEAuditor", "auditor"),
    ("PVETemplateUser", "template user"),
    ("PVEDatastoreUser", "datastore user"),
    ("PVESDNUser", "SDN user"),
    ("PVEMappingUser", "mapping user"),
    ("PVEPoolUser", "pool user"),
    ("NoAccess", "no access"),
];

/// A role-like name for `set`: an exact built-in role, else a greedy cover by built-in roles (each adding at least
/// two privileges) plus the remaining privileges by name.
pub fn label(set: PrivSet, catalog: &Catalog) -> String {
    if set.is_empty() {
        return "nothing".to_owned();
    }
    let roles: Vec<(&str, PrivSet)> = ROLE_WORDS
        .iter()
        .filter_map(|(role, words)| catalog.builtin_role(role).filter(|p| !p.is_empty()).map(|p| (*words, p)))
        .collect();
    if let Some((words, _)) = roles.iter().find(|(_, privs)| *privs == set) {
        return (*words).to_owned();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut covered = PrivSet::EMPTY;
    loop {
        let best = roles
            .iter()
            .filter(|(_, privs)| privs.is_subset(set))
            .map(|(words, privs)| (privs.difference(covered).len(), *words, *privs))
            .filter(|(gain, _, _)| *gain >= 2)
            // Most new privileges; ties go to the earlier (broader) role.
            .max_by(|a, b| a.0.cmp(&b.0).then(std::cmp::Ordering::Greater));
        let Some((_, words, privs)) = best else { break };
        parts.push(words.to_owned());
        covered = covered.union(privs);
    }
    parts.extend(set.difference(covered).iter().map(|p| p.as_str().to_owned()));
    parts.join(" + ")
}

/// Labels already computed (the same sets recur across thousands of tokens).
#[derive(Default)]
pub struct Labels(std::collections::HashMap<PrivSet, String>);

impl Labels {
    /// [`label`], memoised.
    pub fn get(&mut self, set: PrivSet, catalog: &Catalog) -> String {
        self.0.entry(set).or_insert_with(|| label(set, catalog)).clone()
    }
}

/// The access lines of a token: every evaluated place whose rights differ from what it inherits (broadest first).
pub fn access_lines(evaluated: &[Evaluated], catalog: &Catalog, labels: &mut Labels) -> Vec<AccessLine> {
    let mut lines = Vec::new();
    let index = by_path(evaluated);
    for place in evaluated {
        let parent = inherited(place, &index).map(|p| p.perms.propagating()).unwrap_or_default();
        let granted = place.perms.granted();
        if granted == parent && place.path != "/" {
            continue;
        }
        if granted.is_empty() && (parent.is_empty() || place.path == "/") {
            continue;
        }
        let scope = if place.members {
            "members"
        } else if !granted.is_empty() && place.perms.propagating().is_empty() {
            "path"
        } else {
            "subtree"
        };
        lines.push(AccessLine {
            path: place.path.clone(),
            scope,
            label: labels.get(granted, catalog),
            privileges: granted.iter().map(|p| p.as_str()).collect(),
        });
    }
    lines
}

/// `VM admin on /vms, datastore user on /storage/local` (or `no effective privileges`).
pub fn one_line(lines: &[AccessLine]) -> String {
    if lines.is_empty() {
        return "no effective privileges".to_owned();
    }
    lines
        .iter()
        .map(|line| match line.scope {
            "members" => format!("{} on members of {}", line.label, line.path),
            "path" => format!("{} on {} (this path only)", line.label, line.path),
            _ => format!("{} on {}", line.label, line.path),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvetoken_acl::{Privilege, PveVersion};

    fn set(names: &[&str]) -> PrivSet {
        names.iter().map(|n| n.parse::<Privilege>().expect("privilege name")).collect()
    }

    #[test]
    fn exact_builtin_role_sets_get_the_role_words() {
        let catalog = Catalog::for_version(PveVersion::NEWEST);
        let vm_admin = catalog.builtin_role("PVEVMAdmin").expect("built-in");
        assert_eq!(label(vm_admin, &catalog), "VM admin");
        assert_eq!(label(catalog.privileges(), &catalog), "full administrator");
        assert_eq!(label(PrivSet::EMPTY, &catalog), "nothing");
    }

    #[test]
    fn mixed_sets_are_covered_by_roles_then_named_privileges() {
        let catalog = Catalog::for_version(PveVersion::NEWEST);
        let mixed = catalog.builtin_role("PVEDatastoreUser").expect("built-in").union(set(&["Sys.Audit"]));
        assert_eq!(label(mixed, &catalog), "datastore user + Sys.Audit");
        assert_eq!(label(set(&["VM.Audit"]), &catalog), "VM.Audit");
    }
}
