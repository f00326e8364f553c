//! Behaviours of Proxmox's permission model, re-authored as readable table-driven cases (pve-access.md section 5).

use pvetoken_acl::{AclPath, Catalog, Evaluator, Subject, UserCfg};

/// (name, user.cfg, subject, path, expected privileges as "Priv=flag" sorted, joined by ' ')
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "user_entry_beats_group_entry_at_the_same_node",
        "user:u@pve:1:0::::::\ngroup:g:u@pve::\nacl:1:/vms:@g:PVEVMAdmin:\nacl:1:/vms:u@pve:PVEAuditor:\n",
        "u@pve",
        "/vms/100",
        "Datastore.Audit=1 Mapping.Audit=1 Pool.Audit=1 SDN.Audit=1 Sys.Audit=1 VM.Audit=1 VM.GuestAgent.Audit=1",
    ),
    (
        "deeper_group_entry_replaces_inherited_user_entry",
        "user:u@pve:1:0::::::\ngroup:g:u@pve::\nacl:1:/:u@pve:Administrator:\nacl:1:/vms:@g:PVETemplateUser:\n",
        "u@pve",
        "/vms/100",
        "VM.Audit=1 VM.Clone=1",
    ),
    (
        "non_propagating_entry_applies_only_at_its_path_and_does_not_block_children",
        "user:v@pve:1:0::::::\nacl:1:/:v@pve:PVEAuditor:\nacl:0:/vms:v@pve:PVEDatastoreUser:\n",
        "v@pve",
        "/vms/100",
        "Datastore.Audit=1 Mapping.Audit=1 Pool.Audit=1 SDN.Audit=1 Sys.Audit=1 VM.Audit=1 VM.GuestAgent.Audit=1",
    ),
    (
        "non_propagating_entry_reports_flag_zero_at_its_path",
        "user:v@pve:1:0::::::\nacl:0:/vms:v@pve:PVEDatastoreUser:\n",
        "v@pve",
        "/vms",
        "Datastore.AllocateSpace=0 Datastore.Audit=0",
    ),
    (
        "no_access_wins_over_other_roles_at_the_same_node",
        "user:u@pve:1:0::::::\nacl:1:/vms:u@pve:NoAccess,PVEAuditor:\n",
        "u@pve",
        "/vms/100",
        "",
    ),
    (
        "pool_roles_apply_at_member_paths_with_flag_zero",
        "user:u@pve:1:0::::::\npool:p::100::\nacl:1:/pool/p:u@pve:PVETemplateUser:\n",
        "u@pve",
        "/vms/100",
        "VM.Audit=0 VM.Clone=0",
    ),
    (
        "pool_no_access_replaces_the_member_path_roles",
        "user:u@pve:1:0::::::\npool:p::100::\nacl:1:/vms:u@pve:PVEAuditor:\nacl:1:/pool/p:u@pve:NoAccess:\n",
        "u@pve",
        "/vms/100",
        "",
    ),
    (
        "admin_on_root_reaches_pooled_vms_through_the_pool_quirk",
        "user:u@pve:1:0::::::\npool:p::100::\nacl:1:/:u@pve:PVETemplateUser:\nacl:1:/vms:u@pve:PVEPoolUser:\n",
        "u@pve",
        "/vms/100",
        "Pool.Audit=1 VM.Audit=0 VM.Clone=0",
    ),
    (
        "privsep_token_gets_intersection_of_user_and_token_privileges",
        "user:u@pve:1:0::::::\ntoken:u@pve!tk:0:1::\nacl:1:/vms:u@pve:PVETemplateUser:\nacl:1:/vms:u@pve!tk:PVEAuditor:\n",
        "u@pve!tk",
        "/vms/100",
        "VM.Audit=1",
    ),
    (
        "token_without_privsep_has_exactly_the_owner_privileges",
        "user:u@pve:1:0::::::\ntoken:u@pve!tk:0:0::\nacl:1:/vms:u@pve:PVETemplateUser:\nacl:1:/vms:u@pve!tk:PVEAuditor:\n",
        "u@pve!tk",
        "/vms/100",
        "VM.Audit=1 VM.Clone=1",
    ),
    (
        "missing_privsep_field_means_no_privilege_separation",
        "user:u@pve:1:0::::::\ntoken:u@pve!tk::\nacl:1:/vms:u@pve:PVETemplateUser:\n",
        "u@pve!tk",
        "/vms/100",
        "VM.Audit=1 VM.Clone=1",
    ),
    (
        "privsep_root_token_gets_only_its_own_acls",
        "token:root@pam!tk:0:1::\nacl:1:/vms:root@pam!tk:PVETemplateUser:\n",
        "root@pam!tk",
        "/vms/100",
        "VM.Audit=1 VM.Clone=1",
    ),
    ("unknown_token_has_nothing", "user:u@pve:1:0::::::\nacl:1:/:u@pve:Administrator:\n", "u@pve!nope", "/", ""),
    (
        "disabled_and_expired_users_evaluate_normally_offline",
        "user:u@pve:0:1::::::\nacl:1:/:u@pve:PVEPoolUser:\n",
        "u@pve",
        "/pool",
        "Pool.Audit=1",
    ),
];

fn render(perms: &pvetoken_acl::Permissions) -> String {
    perms.iter().map(|(p, f)| format!("{p}={}", u8::from(f))).collect::<Vec<_>>().join(" ")
}

#[test]
fn permission_semantics_table() {
    let catalog = Catalog::for_version("9.1".parse().expect("version"));
    let mut failures = Vec::new();
    for (name, text, subject, path, expected) in CASES {
        let (cfg, _) = UserCfg::parse(text, &catalog);
        let eval = Evaluator::new(&cfg, &catalog);
        let subject: Subject = subject.parse().expect("subject");
        let got = render(&eval.permissions(&subject, &path.parse::<AclPath>().expect("path")));
        if got != *expected {
            failures.push(format!("{name}: got `{got}`, expected `{expected}`"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn root_at_pam_has_every_privilege_of_the_release_with_flag_one() {
    for (version, count) in [("7.4", 37), ("8.4", 42), ("9.1", 47)] {
        let catalog = Catalog::for_version(version.parse().expect("version"));
        let (cfg, _) = UserCfg::parse("", &catalog);
        let eval = Evaluator::new(&cfg, &catalog);
        let perms = eval.permissions(&"root@pam".parse().expect("root"), &AclPath::root());
        assert_eq!(perms.granted().len(), count, "{version}");
        assert_eq!(perms.propagating(), perms.granted());
    }
}

#[test]
fn empty_file_writes_root_and_four_blank_lines() {
    let (cfg, warnings) = UserCfg::parse("", &Catalog::newest());
    assert!(warnings.is_empty());
    assert_eq!(cfg.write(), "user:root@pam:1:0::::::\n\n\n\n\n");
}

#[test]
fn warnings_carry_line_numbers_and_proxmox_wording() {
    let (_, warnings) = UserCfg::parse("user:a@pve:1:0::::::\n\n# comment\nrole:r:VM.Monitor:\n", &Catalog::newest());
    let got: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "line 3: user config - ignore config line: # comment",
            "line 4: user config - ignore invalid privilege 'VM.Monitor'"
        ]
    );
}

#[test]
fn free_text_is_uri_escaped_on_write() {
    let (cfg, _) = UserCfg::parse("user:a@pve:1:0:J%C3%BCrgen:a%3Ab::x%25y::\n", &Catalog::newest());
    let user = cfg.user(&"a@pve".parse().expect("user")).expect("user");
    assert_eq!(user.firstname.as_deref(), Some("Jürgen"));
    assert_eq!(user.lastname.as_deref(), Some("a:b"));
    assert!(cfg.write().starts_with("user:a@pve:1:0:J%C3%BCrgen:a%3Ab::x%25y::\n"));
}

#[test]
fn token_secrets_are_redacted_in_debug() {
    let (tokens, warnings) = pvetoken_acl::TokenCfg::parse("a@pve!tk 1234-secret\nbad line here\n");
    assert_eq!(warnings.len(), 1);
    let id = "a@pve!tk".parse().expect("token id");
    assert!(!format!("{tokens:?}").contains("1234-secret"));
    assert!(tokens.verify(&id, "1234-secret"));
    assert!(!tokens.verify(&id, "1234-SECRET"));
    assert_eq!(tokens.write(), "a@pve!tk 1234-secret\n");
}
