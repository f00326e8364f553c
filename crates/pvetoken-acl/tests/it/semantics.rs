//! Behaviours of Proxmox's permission model, re-authored as readable table-driven cases (proxmox/pve-access-control `src/PVE/RPCEnvironment.pm`).

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

#[test]
fn acl_paths_deeper_than_the_limit_are_ignored_with_a_warning_and_stay_cheap() {
    // 8,000 components once cost 1.8 GB (every intermediate node kept its whole key); now the line is skipped.
    let deep: String = (0..8000).map(|i| format!("/c{i}")).collect();
    let text = format!(
        "user:u@pve:1:0::::::\nacl:1:{deep}:u@pve:Administrator:\nacl:1:/vms:u@pve:PVEAuditor:\n\
         acl:1:{}:u@pve:PVEVMAdmin:\n",
        (0..pvetoken_acl::MAX_ACL_PATH_DEPTH).map(|i| format!("/d{i}")).collect::<String>()
    );
    let (cfg, warnings) = UserCfg::parse(&text, &Catalog::newest());
    let got: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("line 2: user config - ignore acl path with 8000 components"), "{got:?}");
    // The entry on /vms and the one at exactly the limit are kept.
    assert_eq!(cfg.acl_entries().len(), 2);
    let user: Subject = "u@pve".parse().expect("subject");
    let deep_path = AclPath::normalize(&deep).expect("path");
    let catalog = Catalog::newest();
    let eval = Evaluator::new(&cfg, &catalog);
    assert!(eval.permissions(&user, &deep_path).is_empty());
}

/// The release table against the changelog facts (proxmox/pve-access-control and pve-manager `debian/changelog`,
/// pve-manager `debian/control`): which release can do what, decided by the access-control package it runs.
#[test]
fn releases_follow_the_access_control_package_they_shipped() {
    use pvetoken_acl::{AccessControlVersion, PveVersion, release};
    let pac = |s: &str| s.parse::<AccessControlVersion>().expect("version");
    let of = |s: &str| release::release(s.parse::<PveVersion>().expect("release")).expect("known").access_control;
    // PVE 9.1.0 - 9.1.9 (Nov 2025 - Apr 2026) shipped 9.0.4 - 9.0.7: no regenerate; 9.2 (2026-05-20) has 9.1.1.
    assert_eq!(of("9.1"), pac("9.0.4"));
    assert_eq!(of("9.2"), pac("9.1.1"));
    assert_eq!(release::since(pvetoken_acl::Feature::TokenRegenerate), pac("9.1.0"));
    assert!(!Catalog::for_version("9.1".parse().expect("v")).token_can_regenerate());
    assert!(Catalog::for_version("9.2".parse().expect("v")).token_can_regenerate());
    assert!(Catalog::for_version("9.1".parse().expect("v")).token_update_can_delete_comment());
    assert!(!Catalog::for_version("9.0".parse().expect("v")).token_update_can_delete_comment());
    // A 9.1.11 host whose access-control was upgraded to 9.1.0 can regenerate.
    let upgraded = Catalog::for_version("9.1".parse().expect("v")).with_access_control(pac("9.1.0"));
    assert!(upgraded.token_can_regenerate());
    assert_eq!(release::access_control_at_least("9.1.13"), Some(pac("9.1.1")));
    // /sdn/prefix-lists came with access-control 9.1.0, not with pve-manager 9.1.
    let prefix = AclPath::normalize("/sdn/prefix-lists/p1").expect("path");
    assert!(!Catalog::for_version("9.1".parse().expect("v")).acl_path_allowed(&prefix));
    assert!(Catalog::for_version("9.2".parse().expect("v")).acl_path_allowed(&prefix));
    // VM.Monitor went with 9.0.2, VM.Replicate came with 9.0.3; the own-permission rule and 8-character
    // passwords with 8.2.0 (PVE 8.3); nested pools with 8.0.7 (PVE 8.1).
    assert!(Catalog::for_version("8.4".parse().expect("v")).privilege("VM.Monitor").is_ok());
    assert!(Catalog::for_version("9.0".parse().expect("v")).privilege("VM.Monitor").is_err());
    assert!(Catalog::for_version("9.0".parse().expect("v")).privilege("VM.Replicate").is_ok());
    assert!(!Catalog::for_version("8.2".parse().expect("v")).permissions_self_rule());
    assert!(Catalog::for_version("8.3".parse().expect("v")).permissions_self_rule());
    assert_eq!(Catalog::for_version("8.2".parse().expect("v")).min_password_length(), 5);
    assert_eq!(Catalog::for_version("8.3".parse().expect("v")).min_password_length(), 8);
    let nested: pvetoken_acl::PoolId = "a/b".parse().expect("pool id");
    assert!(Catalog::for_version("8.0".parse().expect("v")).check_pool_id(&nested).is_err());
    assert!(Catalog::for_version("8.1".parse().expect("v")).check_pool_id(&nested).is_ok());
    // The PVE role prefix is reserved from 8.0.
    assert!(!Catalog::for_version("7.4".parse().expect("v")).reserves_pve_role_prefix());
    assert!(Catalog::for_version("8.0".parse().expect("v")).reserves_pve_role_prefix());
}

#[test]
fn unknown_releases_are_refused_with_the_known_list_and_live_servers_get_an_assumption() {
    use pvetoken_acl::PveVersion;
    for bad in ["9.7", "10", "8.5", "6.4"] {
        let error = bad.parse::<PveVersion>().expect_err(bad).to_string();
        assert!(error.contains(&format!("'{bad}'")) && error.contains("9.2") && error.contains("7.4"), "{error}");
    }
    assert_eq!("9".parse::<PveVersion>().expect("9"), PveVersion::V9_2);
    assert_eq!(PveVersion::of_server("9.2.11"), (PveVersion::V9_2, None));
    assert_eq!(PveVersion::of_server("7.4-17").0, PveVersion::V7_4);
    let (newer, warning) = PveVersion::of_server("9.7.1");
    assert_eq!(newer, PveVersion::V9_2);
    assert!(warning.expect("warning").contains("assuming it behaves as 9.2"));
    let (unreadable, warning) = PveVersion::of_server("banana");
    assert_eq!(unreadable.to_string(), "7.0");
    assert!(warning.expect("warning").contains("cannot read"));
}
