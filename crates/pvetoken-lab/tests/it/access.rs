//! The `/access/*` API as a client sees it, against PVE's documented behaviour (libpve-access-control's
//! `PVE/API2/{User,Group,Role,ACL,AccessControl}.pm` and `PVE/RPCEnvironment.pm`):
//! API tokens (create, update, regenerate, delete, expiry, privilege separation), ACLs (propagate, precedence,
//! delete, delegation, listing), roles, users, groups and `GET /access/permissions`. The lab runs the newest
//! release (libpve-access-control 9.1.1) unless a test says otherwise.

use std::collections::{BTreeMap, BTreeSet};

use pvetoken_lab::{LabConfig, RunningLab};
use serde_json::{Value, json};

use crate::support::{Answer, Api, start};

const PASSWORD: &str = "lab-password-1";

async fn lab() -> RunningLab {
    start(LabConfig::default()).await
}

/// Creates `userid` (as root) with the lab password, so that it can log in.
async fn add_user(root: &Api, userid: &str) {
    root.ok("POST", "/access/users", &[("userid", userid), ("password", PASSWORD)]).await;
}

/// `PUT /access/acl` as `api`: `role` on `path` for `who` (`users`, `groups` or `tokens`).
async fn grant(api: &Api, path: &str, kind: &str, who: &str, role: &str, propagate: bool) -> Answer {
    let propagate = if propagate { "1" } else { "0" };
    api.api("PUT", "/access/acl", &[("path", path), (kind, who), ("roles", role), ("propagate", propagate)]).await
}

async fn must_grant(api: &Api, path: &str, kind: &str, who: &str, role: &str, propagate: bool) {
    let answer = grant(api, path, kind, who, role, propagate).await;
    assert_eq!(answer.status, 200, "grant {role} on {path} to {who}: {answer:?}");
}

/// Creates token `name` of `userid` as `api`; returns its secret.
async fn new_token(api: &Api, userid: &str, name: &str, params: &[(&str, &str)]) -> String {
    let created = api.ok("POST", &format!("/access/users/{userid}/token/{name}"), params).await;
    created["value"].as_str().expect("secret").to_owned()
}

/// `GET /access/permissions?path=` as `api` (for itself): privilege → propagate flag.
async fn privileges(api: &Api, path: &str) -> BTreeMap<String, u64> {
    let data = api.ok("GET", "/access/permissions", &[("path", path)]).await;
    flags(&data[path])
}

fn flags(map: &Value) -> BTreeMap<String, u64> {
    map.as_object()
        .expect("privilege map")
        .iter()
        .map(|(privilege, flag)| (privilege.clone(), flag.as_u64().expect("0 or 1")))
        .collect()
}

fn names(map: &BTreeMap<String, u64>) -> BTreeSet<String> {
    map.keys().cloned().collect()
}

/// The privileges of `role` as the lab's `GET /access/roles/{role}` lists them.
async fn role_privileges(root: &Api, role: &str) -> BTreeSet<String> {
    let data = root.ok("GET", &format!("/access/roles/{role}"), &[]).await;
    data.as_object().expect("role map").keys().cloned().collect()
}

/// `(path, ugid, roleid, propagate)` of every ACL entry `api` may see.
async fn acl_entries(api: &Api) -> BTreeSet<(String, String, String, u64)> {
    let data = api.ok("GET", "/access/acl", &[]).await;
    data.as_array()
        .expect("ACL list")
        .iter()
        .map(|entry| {
            (
                entry["path"].as_str().expect("path").to_owned(),
                entry["ugid"].as_str().expect("ugid").to_owned(),
                entry["roleid"].as_str().expect("roleid").to_owned(),
                entry["propagate"].as_u64().expect("propagate"),
            )
        })
        .collect()
}

/// `GET /access/permissions?userid=&path=/vms` as `api`.
async fn read(api: &Api, userid: &str) -> Answer {
    api.api("GET", "/access/permissions", &[("userid", userid), ("path", "/vms")]).await
}

fn assert_error(answer: &Answer, status: u16, message: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.body["message"], message, "{answer:?}");
}

fn assert_param_error(answer: &Answer, param: &str, text: &str) {
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.reason, "Parameter verification failed.", "{answer:?}");
    assert_eq!(answer.body["errors"][param], text, "{answer:?}");
}

fn is_lowercase_uuid_v4(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|group| group.len()).eq([8, 4, 4, 4, 12])
        && text.chars().all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        && groups[2].starts_with('4')
}

// ---- API tokens ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn token_create_answers_what_was_stored_and_a_secret_that_authenticates() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;

    let created = root.ok("POST", "/access/users/alice@pve/token/ci", &[]).await;
    // `info` is exactly what was stored: without parameters only the privsep default.
    assert_eq!(created["info"], json!({ "privsep": 1 }));
    assert_eq!(created["full-tokenid"], "alice@pve!ci");
    let secret = created["value"].as_str().expect("secret");
    assert!(is_lowercase_uuid_v4(secret), "{secret}");
    assert_eq!(Api::token(&lab, "alice@pve!ci", secret).api("GET", "/version", &[]).await.status, 200);
    // The secret is shown once: reading the token does not return it.
    assert_eq!(root.ok("GET", "/access/users/alice@pve/token/ci", &[]).await, json!({ "expire": 0, "privsep": 1 }));

    let full = root
        .ok(
            "POST",
            "/access/users/alice@pve/token/full",
            &[("privsep", "0"), ("expire", "4102444800"), ("comment", "deploys")],
        )
        .await;
    assert_eq!(full["info"], json!({ "privsep": 0, "expire": 4_102_444_800_u64, "comment": "deploys" }));
    let listed = root.ok("GET", "/access/users/alice@pve/token", &[]).await;
    let mut listed: Vec<Value> = listed.as_array().expect("token list").clone();
    listed.sort_by_key(|token| token["tokenid"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        listed,
        [
            json!({ "tokenid": "ci", "expire": 0, "privsep": 1 }),
            json!({ "tokenid": "full", "expire": 4_102_444_800_u64, "privsep": 0, "comment": "deploys" }),
        ]
    );
}

#[tokio::test]
async fn token_create_refuses_a_taken_name_a_malformed_name_and_a_missing_user() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    new_token(&root, "alice@pve", "ci", &[]).await;

    let again = root.api("POST", "/access/users/alice@pve/token/ci", &[]).await;
    assert_param_error(&again, "tokenid", "Token already exists.");
    let malformed = root.api("POST", "/access/users/alice@pve/token/1ci", &[]).await;
    assert_param_error(&malformed, "tokenid", "value does not match the regex pattern");
    let missing = root.api("POST", "/access/users/ghost@pve/token/ci", &[]).await;
    assert_error(&missing, 500, "no such user ('ghost@pve')\n");
}

#[tokio::test]
async fn a_deleted_token_stops_authenticating_and_deleting_it_again_fails() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    let secret = new_token(&root, "alice@pve", "ci", &[]).await;
    let token = Api::token(&lab, "alice@pve!ci", &secret);
    assert_eq!(token.api("GET", "/version", &[]).await.status, 200);

    root.ok("DELETE", "/access/users/alice@pve/token/ci", &[]).await;
    assert_eq!(token.api("GET", "/version", &[]).await.status, 401);
    let again = root.api("DELETE", "/access/users/alice@pve/token/ci", &[]).await;
    assert_error(&again, 500, "no such token 'ci' for user 'alice@pve'\n");
    let read = root.api("GET", "/access/users/alice@pve/token/ci", &[]).await;
    assert_error(&read, 500, "no such token 'ci' for user 'alice@pve'\n");
    // Updating checks that the token exists before taking the config lock: no `updating token info failed: `.
    let update = root.api("PUT", "/access/users/alice@pve/token/ci", &[("comment", "x"), ("delete", "expire")]).await;
    assert_error(&update, 500, "no such token 'ci' for user 'alice@pve'\n");
    let no_user = root.api("PUT", "/access/users/ghost@pve/token/ci", &[("comment", "x")]).await;
    assert_error(&no_user, 500, "no such user ('ghost@pve')\n");
}

#[tokio::test]
async fn a_deleted_tokens_acls_go_with_it_and_a_new_token_of_that_name_starts_without_them() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    must_grant(&root, "/vms", "users", "alice@pve", "PVEVMAdmin", true).await;
    new_token(&root, "alice@pve", "ci", &[]).await;
    must_grant(&root, "/vms", "tokens", "alice@pve!ci", "PVEAuditor", true).await;

    root.ok("DELETE", "/access/users/alice@pve/token/ci", &[]).await;
    let subjects: BTreeSet<String> = acl_entries(&root).await.into_iter().map(|entry| entry.1).collect();
    assert_eq!(subjects, BTreeSet::from(["alice@pve".to_owned()]));
    let secret = new_token(&root, "alice@pve", "ci", &[]).await;
    let token = Api::token(&lab, "alice@pve!ci", &secret);
    assert!(privileges(&token, "/vms/100").await.is_empty(), "the old token's ACL came back");
}

#[tokio::test]
async fn regenerate_issues_a_new_secret_retires_the_old_one_and_keeps_the_settings() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    let old = new_token(&root, "alice@pve", "ci", &[("privsep", "0"), ("comment", "kept")]).await;

    let answer = root.ok("PUT", "/access/users/alice@pve/token/ci", &[("regenerate", "1")]).await;
    let new = answer["value"].as_str().expect("new secret");
    assert!(is_lowercase_uuid_v4(new) && new != old, "{answer}");
    assert_eq!(answer["full-tokenid"], "alice@pve!ci");
    assert_eq!((&answer["privsep"], &answer["comment"], &answer["expire"]), (&json!(0), &json!("kept"), &json!(0)));
    assert_eq!(Api::token(&lab, "alice@pve!ci", &old).api("GET", "/version", &[]).await.status, 401);
    assert_eq!(Api::token(&lab, "alice@pve!ci", new).api("GET", "/version", &[]).await.status, 200);
}

#[tokio::test]
async fn token_update_changes_expire_and_privsep_and_an_empty_comment_or_delete_removes_it() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    new_token(&root, "alice@pve", "ci", &[("comment", "first")]).await;
    let path = "/access/users/alice@pve/token/ci";

    let updated = root.ok("PUT", path, &[("expire", "4102444800"), ("privsep", "0")]).await;
    assert_eq!(updated, json!({ "expire": 4_102_444_800_u64, "privsep": 0, "comment": "first" }));
    // Since libpve-access-control 9.0.4 an empty comment removes it.
    root.ok("PUT", path, &[("comment", "")]).await;
    assert_eq!(root.ok("GET", path, &[]).await, json!({ "expire": 4_102_444_800_u64, "privsep": 0 }));
    root.ok("PUT", path, &[("comment", "second")]).await;
    root.ok("PUT", path, &[("delete", "comment")]).await;
    assert!(root.ok("GET", path, &[]).await.get("comment").is_none());
    // Only the comment may be deleted; the parameter error is raised inside the config lock, hence a 500.
    let unknown = root.api("PUT", path, &[("delete", "expire")]).await;
    assert_error(
        &unknown,
        500,
        "updating token info failed: 400 Parameter verification failed.\ndelete: unknown option 'expire'\n",
    );
}

#[tokio::test]
async fn an_expired_token_and_the_tokens_of_a_disabled_or_expired_user_are_refused() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    let expired = new_token(&root, "alice@pve", "old", &[("expire", "1")]).await;
    assert_eq!(Api::token(&lab, "alice@pve!old", &expired).api("GET", "/version", &[]).await.status, 401);

    let secret = new_token(&root, "alice@pve", "ci", &[]).await;
    let token = Api::token(&lab, "alice@pve!ci", &secret);
    assert_eq!(token.api("GET", "/version", &[]).await.status, 200);
    root.ok("PUT", "/access/users/alice@pve", &[("enable", "0")]).await;
    assert_eq!(token.api("GET", "/version", &[]).await.status, 401, "owner disabled");
    let login = Api::new(&lab, crate::support::Auth::None)
        .api("POST", "/access/ticket", &[("username", "alice@pve"), ("password", PASSWORD)])
        .await;
    assert_eq!(login.status, 401, "a disabled user cannot log in");
    root.ok("PUT", "/access/users/alice@pve", &[("enable", "1")]).await;
    assert_eq!(token.api("GET", "/version", &[]).await.status, 200, "owner enabled again");
    root.ok("PUT", "/access/users/alice@pve", &[("expire", "1")]).await;
    assert_eq!(token.api("GET", "/version", &[]).await.status, 401, "owner expired");
    // An expired token still evaluates: only authentication looks at expiry.
    let seen_by_root = root.ok("GET", "/access/permissions", &[("userid", "alice@pve!ci"), ("path", "/vms")]).await;
    assert_eq!(seen_by_root, json!({ "/vms": {} }));
}

#[tokio::test]
async fn a_user_manages_its_own_tokens_but_a_token_is_never_its_owner() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    add_user(&root, "bob@pve").await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;

    // `userid-param self`: no privilege is needed for one's own tokens.
    let secret = new_token(&alice, "alice@pve", "ci", &[("privsep", "0")]).await;
    assert_eq!(alice.api("GET", "/access/users/alice@pve/token", &[]).await.status, 200);
    assert_error(&alice.api("POST", "/access/users/bob@pve/token/ci", &[]).await, 403, "Permission check failed\n");

    // The token's id is `alice@pve!ci`, which is never equal to `alice@pve`, even without privilege separation.
    let token = Api::token(&lab, "alice@pve!ci", &secret);
    assert_error(&token.api("GET", "/access/users/alice@pve/token", &[]).await, 403, "Permission check failed\n");
    assert_error(
        &token.api("POST", "/access/users/alice@pve/token/other", &[]).await,
        403,
        "Permission check failed\n",
    );
    // Tickets only: a token cannot change a password.
    let password =
        token.api("PUT", "/access/password", &[("userid", "alice@pve"), ("password", "new-password-1")]).await;
    assert_error(
        &password,
        403,
        "Permission check failed (URI '/access/password' not available with API token, need proper ticket.\n)\n",
    );
}

#[tokio::test]
async fn user_modify_on_a_group_lets_a_user_manage_the_tokens_of_that_groups_members() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/groups", &[("groupid", "ci")]).await;
    add_user(&root, "admin@pve").await;
    add_user(&root, "bot@pve").await;
    add_user(&root, "other@pve").await;
    root.ok("PUT", "/access/users/bot@pve", &[("groups", "ci")]).await;
    root.ok("POST", "/access/roles", &[("roleid", "TokenAdmin"), ("privs", "User.Modify")]).await;
    must_grant(&root, "/access/groups/ci", "users", "admin@pve", "TokenAdmin", true).await;
    let admin = Api::login(&lab, "admin@pve", PASSWORD).await;

    new_token(&admin, "bot@pve", "deploy", &[]).await;
    assert_eq!(admin.api("DELETE", "/access/users/bot@pve/token/deploy", &[]).await.status, 200);
    assert_eq!(admin.api("POST", "/access/users/other@pve/token/deploy", &[]).await.status, 403);
}

// ---- privilege separation -------------------------------------------------------------------------------------

#[tokio::test]
async fn a_privsep_token_gets_the_intersection_of_its_own_and_its_users_privileges() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    must_grant(&root, "/vms", "users", "alice@pve", "PVEVMAdmin", true).await;
    let separated = new_token(&root, "alice@pve", "sep", &[]).await;
    must_grant(&root, "/", "tokens", "alice@pve!sep", "PVEAuditor", true).await;
    let whole = new_token(&root, "alice@pve", "whole", &[("privsep", "0")]).await;
    must_grant(&root, "/", "tokens", "alice@pve!whole", "PVEAuditor", true).await;

    let vm_admin = role_privileges(&root, "PVEVMAdmin").await;
    let auditor = role_privileges(&root, "PVEAuditor").await;
    let both: BTreeSet<String> = vm_admin.intersection(&auditor).cloned().collect();
    assert!(both.contains("VM.Audit") && !both.contains("VM.Allocate") && !both.contains("Sys.Audit"));

    let separated = Api::token(&lab, "alice@pve!sep", &separated);
    assert_eq!(names(&privileges(&separated, "/vms/100").await), both);
    assert!(privileges(&separated, "/").await.is_empty(), "the user has nothing on /");
    // Without privilege separation the token is its user; its own ACLs are stored but ignored.
    let whole = Api::token(&lab, "alice@pve!whole", &whole);
    assert_eq!(names(&privileges(&whole, "/vms/100").await), vm_admin);
    assert!(privileges(&whole, "/").await.is_empty());
    // Switching privsep off through the API has the same effect.
    root.ok("PUT", "/access/users/alice@pve/token/sep", &[("privsep", "0")]).await;
    assert_eq!(names(&privileges(&separated, "/vms/100").await), vm_admin);
}

#[tokio::test]
async fn a_privsep_token_without_acls_of_its_own_has_no_privileges_even_under_an_administrator() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    must_grant(&root, "/", "users", "alice@pve", "Administrator", true).await;
    let secret = new_token(&root, "alice@pve", "ci", &[]).await;
    let token = Api::token(&lab, "alice@pve!ci", &secret);
    assert!(privileges(&token, "/").await.is_empty());
    assert!(privileges(&token, "/vms/100").await.is_empty());
    assert_eq!(token.api("GET", "/access/users/alice@pve", &[]).await.status, 403);
}

#[tokio::test]
async fn root_tokens_are_root_without_privsep_and_get_only_their_own_acls_with_it() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    let administrator = role_privileges(&root, "Administrator").await;
    let whole = new_token(&root, "root@pam", "whole", &[("privsep", "0")]).await;
    let separated = new_token(&root, "root@pam", "sep", &[]).await;
    must_grant(&root, "/vms", "tokens", "root@pam!sep", "PVEAuditor", true).await;

    let whole = Api::token(&lab, "root@pam!whole", &whole);
    assert_eq!(names(&privileges(&whole, "/vms/100").await), administrator);
    // No intersection with root@pam's privileges: exactly the token's own ACLs.
    let separated = Api::token(&lab, "root@pam!sep", &separated);
    assert_eq!(names(&privileges(&separated, "/vms/100").await), role_privileges(&root, "PVEAuditor").await);
    assert!(privileges(&separated, "/").await.is_empty());
    assert_eq!(separated.api("POST", "/access/users", &[("userid", "x@pve")]).await.status, 403);
}

// ---- ACLs -----------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_non_propagating_acl_applies_only_at_its_path_and_does_not_block_inheritance() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    must_grant(&root, "/", "users", "alice@pve", "PVEAuditor", true).await;
    must_grant(&root, "/vms", "users", "alice@pve", "PVEVMUser", false).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;

    // The flag is the propagate bit of the granting role (pve-access-control `PVE/RPCEnvironment.pm`, `permissions`).
    let on_vms = privileges(&alice, "/vms").await;
    assert_eq!(names(&on_vms), role_privileges(&root, "PVEVMUser").await);
    assert!(on_vms.values().all(|flag| *flag == 0), "{on_vms:?}");
    let on_vm = privileges(&alice, "/vms/100").await;
    assert_eq!(names(&on_vm), role_privileges(&root, "PVEAuditor").await);
    assert!(on_vm.values().all(|flag| *flag == 1), "{on_vm:?}");
    assert!(
        acl_entries(&root).await.contains(&("/vms".into(), "alice@pve".into(), "PVEVMUser".into(), 0)),
        "listed with propagate 0"
    );
}

#[tokio::test]
async fn a_user_entry_beats_group_entries_at_one_path_and_a_deeper_entry_replaces_what_is_inherited() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/groups", &[("groupid", "ops")]).await;
    add_user(&root, "alice@pve").await;
    root.ok("PUT", "/access/users/alice@pve", &[("groups", "ops")]).await;
    let auditor = role_privileges(&root, "PVEAuditor").await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;

    must_grant(&root, "/vms", "groups", "ops", "Administrator", true).await;
    must_grant(&root, "/vms", "users", "alice@pve", "PVEAuditor", true).await;
    assert_eq!(names(&privileges(&alice, "/vms/100").await), auditor, "user entry over group entry");

    must_grant(&root, "/storage", "users", "alice@pve", "PVEDatastoreAdmin", true).await;
    must_grant(&root, "/storage/local", "groups", "ops", "PVEAuditor", true).await;
    assert_eq!(names(&privileges(&alice, "/storage/local").await), auditor, "deeper group entry over inherited");
    assert_eq!(names(&privileges(&alice, "/storage/other").await), role_privileges(&root, "PVEDatastoreAdmin").await);
}

#[tokio::test]
async fn no_access_removes_every_privilege_where_it_applies() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    must_grant(&root, "/", "users", "alice@pve", "Administrator", true).await;
    must_grant(&root, "/vms/100", "users", "alice@pve", "NoAccess", true).await;
    must_grant(&root, "/vms/101", "users", "alice@pve", "NoAccess,PVEVMAdmin", true).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    assert!(privileges(&alice, "/vms/100").await.is_empty());
    assert!(privileges(&alice, "/vms/101").await.is_empty(), "NoAccess wins within one set");
    assert_eq!(names(&privileges(&alice, "/vms/102").await), role_privileges(&root, "Administrator").await);
}

#[tokio::test]
async fn acl_delete_removes_only_the_named_roles_of_the_named_subjects() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    add_user(&root, "bob@pve").await;
    must_grant(&root, "/vms", "users", "alice@pve,bob@pve", "PVEAuditor,PVEVMUser", true).await;

    let deleted = root
        .api(
            "PUT",
            "/access/acl",
            &[("path", "/vms"), ("users", "alice@pve"), ("roles", "PVEAuditor"), ("delete", "1")],
        )
        .await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let entries = acl_entries(&root).await;
    let expected: BTreeSet<(String, String, String, u64)> =
        [("/vms", "alice@pve", "PVEVMUser"), ("/vms", "bob@pve", "PVEAuditor"), ("/vms", "bob@pve", "PVEVMUser")]
            .iter()
            .map(|(path, ugid, role)| ((*path).to_owned(), (*ugid).to_owned(), (*role).to_owned(), 1))
            .collect();
    assert_eq!(entries, expected);
}

#[tokio::test]
async fn acl_update_errors_are_pves() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    let put = |params: Vec<(&'static str, &'static str)>| {
        let root = &root;
        async move { root.api("PUT", "/access/acl", &params).await }
    };

    let no_subject = put(vec![("path", "/vms"), ("roles", "PVEAuditor")]).await;
    for key in ["users", "groups", "tokens"] {
        assert_param_error(&no_subject, key, "either 'users', 'groups' or 'tokens' is required.");
    }
    let cases: [(Vec<(&str, &str)>, &str); 4] = [
        (
            vec![("path", "/vms"), ("users", "alice@pve"), ("roles", "Nope")],
            "ACL update failed: role 'Nope' does not exist\n",
        ),
        (
            vec![("path", "/vms"), ("users", "ghost@pve"), ("roles", "PVEAuditor")],
            "ACL update failed: user 'ghost@pve' does not exist\n",
        ),
        (
            vec![("path", "/vms"), ("groups", "ghosts"), ("roles", "PVEAuditor")],
            "ACL update failed: group 'ghosts' does not exist\n",
        ),
        (
            vec![("path", "/vms"), ("tokens", "alice@pve!none"), ("roles", "PVEAuditor")],
            "ACL update failed: no such token 'none' for user 'alice@pve'\n",
        ),
    ];
    for (params, message) in cases {
        assert_error(&put(params).await, 500, message);
    }
    let user_as_token = put(vec![("path", "/vms"), ("tokens", "alice@pve"), ("roles", "PVEAuditor")]).await;
    assert_param_error(
        &user_as_token,
        "tokens",
        "invalid format - value 'alice@pve' does not look like a valid token ID\n",
    );
    let bad_path = put(vec![("path", "/nowhere"), ("users", "alice@pve"), ("roles", "PVEAuditor")]).await;
    assert_param_error(&bad_path, "path", "invalid ACL path '/nowhere'");
    assert!(acl_entries(&root).await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn acl_update_needs_perm_modify_and_a_delegating_caller_grants_only_what_it_holds() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    add_user(&root, "bob@pve").await;
    // PVEVMAdmin holds VM.Allocate (perm-modify on /vms/...) but not Permissions.Modify.
    must_grant(&root, "/vms/101", "users", "alice@pve", "PVEVMAdmin", true).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;

    let elsewhere = grant(&alice, "/vms/102", "users", "bob@pve", "PVEVMUser", true).await;
    assert_error(&elsewhere, 403, "Permission check failed (/vms/102, Permissions.Modify|VM.Allocate)\n");
    assert_eq!(grant(&alice, "/vms/101", "users", "bob@pve", "PVEVMUser", true).await.status, 200);
    for role in ["PVEAdmin", "NoAccess"] {
        let more = grant(&alice, "/vms/101", "users", "bob@pve", role, true).await;
        assert_eq!(more.status, 500, "{role}: {more:?}");
        let message = more.body["message"].as_str().expect("message");
        assert!(
            message.starts_with("ACL update failed: 400 Parameter verification failed.\nrole: "),
            "{role}: {message}"
        );
    }
    let bob_roles: BTreeSet<String> =
        acl_entries(&root).await.into_iter().filter(|e| e.1 == "bob@pve").map(|e| e.2).collect();
    assert_eq!(bob_roles, BTreeSet::from(["PVEVMUser".to_owned()]));
    // A caller with Permissions.Modify may grant anything there, even what it does not hold itself.
    must_grant(&root, "/vms/103", "users", "alice@pve", "PVEPoolUser", true).await;
    root.ok("POST", "/access/roles", &[("roleid", "Delegate"), ("privs", "Permissions.Modify")]).await;
    must_grant(&root, "/vms/103", "users", "alice@pve", "Delegate", false).await;
    assert_eq!(grant(&alice, "/vms/103", "users", "bob@pve", "PVEAdmin", true).await.status, 200);
}

#[tokio::test]
async fn the_acl_list_shows_everything_to_sys_audit_and_otherwise_only_what_the_caller_may_modify() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    add_user(&root, "bob@pve").await;
    add_user(&root, "carol@pve").await;
    must_grant(&root, "/vms/101", "users", "alice@pve", "PVEVMAdmin", true).await;
    must_grant(&root, "/vms/101", "users", "bob@pve", "PVEVMUser", true).await;
    must_grant(&root, "/storage/local", "users", "bob@pve", "PVEDatastoreUser", true).await;
    must_grant(&root, "/", "users", "carol@pve", "PVEAuditor", true).await;

    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    let seen: BTreeSet<String> = acl_entries(&alice).await.into_iter().map(|e| format!("{} {}", e.0, e.1)).collect();
    assert_eq!(seen, BTreeSet::from(["/vms/101 alice@pve".to_owned(), "/vms/101 bob@pve".to_owned()]));
    let bob = Api::login(&lab, "bob@pve", PASSWORD).await;
    assert!(acl_entries(&bob).await.is_empty(), "PVEVMUser cannot modify permissions anywhere");
    let carol = Api::login(&lab, "carol@pve", PASSWORD).await;
    assert_eq!(acl_entries(&carol).await, acl_entries(&root).await);
    assert_eq!(acl_entries(&root).await.len(), 4);
}

// ---- roles ----------------------------------------------------------------------------------------------------

#[tokio::test]
async fn custom_roles_are_created_changed_and_deleted_and_built_in_roles_are_refused() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/roles", &[("roleid", "Rotator"), ("privs", "VM.Audit,Sys.Audit")]).await;
    assert_eq!(root.ok("GET", "/access/roles/Rotator", &[]).await, json!({ "Sys.Audit": 1, "VM.Audit": 1 }));
    root.ok("PUT", "/access/roles/Rotator", &[("privs", "Datastore.Audit"), ("append", "1")]).await;
    assert_eq!(role_privileges(&root, "Rotator").await.len(), 3);
    root.ok("PUT", "/access/roles/Rotator", &[("privs", "VM.Audit")]).await;
    assert_eq!(root.ok("GET", "/access/roles/Rotator", &[]).await, json!({ "VM.Audit": 1 }));

    let listed = root.ok("GET", "/access/roles", &[]).await;
    let listed = listed.as_array().expect("roles");
    let find = |id: &str| listed.iter().find(|role| role["roleid"] == id).cloned().expect("listed");
    assert_eq!(find("Rotator"), json!({ "roleid": "Rotator", "privs": "VM.Audit", "special": 0 }));
    assert_eq!(find("PVEAdmin")["special"], 1);
    let privs = find("PVEVMUser")["privs"].as_str().expect("privs").to_owned();
    let mut sorted: Vec<&str> = privs.split(',').collect();
    sorted.sort_unstable();
    assert_eq!(privs, sorted.join(","), "a sorted comma list");

    assert_error(
        &root.api("POST", "/access/roles", &[("roleid", "Rotator")]).await,
        500,
        "create role failed: role 'Rotator' already exists\n",
    );
    assert_error(
        &root.api("PUT", "/access/roles/PVEAdmin", &[("privs", "VM.Audit")]).await,
        500,
        "auto-generated role 'PVEAdmin' cannot be modified\n",
    );
    assert_error(
        &root.api("DELETE", "/access/roles/PVEAdmin", &[]).await,
        500,
        "auto-generated role 'PVEAdmin' cannot be deleted\n",
    );
    assert_param_error(
        &root.api("POST", "/access/roles", &[("roleid", "PVEMine")]).await,
        "roleid",
        "cannot use role ID starting with the (case-insensitive) 'PVE' namespace",
    );
    assert_param_error(
        &root.api("POST", "/access/roles", &[("roleid", "Odd"), ("privs", "VM.Nope")]).await,
        "privs",
        "invalid format - invalid privilege 'VM.Nope'\n",
    );
    assert_param_error(
        &root.api("PUT", "/access/roles/Rotator", &[("append", "1")]).await,
        "privs",
        "missing property required by 'append'",
    );

    assert_param_error(
        &root.api("PUT", "/access/roles/Rotator", &[("append", "0")]).await,
        "privs",
        "missing property required by 'append'",
    );
    // Without `privs` (and without `append`) an update empties the role.
    root.ok("PUT", "/access/roles/Rotator", &[]).await;
    assert_eq!(root.ok("GET", "/access/roles/Rotator", &[]).await, json!({}));

    root.ok("DELETE", "/access/roles/Rotator", &[]).await;
    assert_error(&root.api("GET", "/access/roles/Rotator", &[]).await, 500, "role 'Rotator' does not exist\n");
    assert_error(
        &root.api("DELETE", "/access/roles/Rotator", &[]).await,
        500,
        "delete role failed: role 'Rotator' does not exist\n",
    );
}

#[tokio::test]
async fn changing_roles_needs_sys_modify_on_access_but_anyone_may_read_them() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    assert_error(
        &alice.api("POST", "/access/roles", &[("roleid", "Mine")]).await,
        403,
        "Permission check failed (/access, Sys.Modify)\n",
    );
    assert_eq!(alice.api("GET", "/access/roles", &[]).await.status, 200);
    assert_eq!(alice.api("GET", "/access/roles/PVEAuditor", &[]).await.status, 200);
}

#[tokio::test]
async fn deleting_a_role_drops_the_acl_entries_that_name_it() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    root.ok("POST", "/access/roles", &[("roleid", "Rotator"), ("privs", "VM.Audit")]).await;
    must_grant(&root, "/vms", "users", "alice@pve", "Rotator", true).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    assert_eq!(names(&privileges(&alice, "/vms").await), BTreeSet::from(["VM.Audit".to_owned()]));

    root.ok("DELETE", "/access/roles/Rotator", &[]).await;
    assert!(acl_entries(&root).await.is_empty());
    assert!(privileges(&alice, "/vms").await.is_empty());
}

// ---- users and groups -----------------------------------------------------------------------------------------

#[tokio::test]
async fn user_create_checks_the_id_the_password_the_groups_and_duplicates() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    assert_param_error(
        &root.api("POST", "/access/users", &[("userid", "alice")]).await,
        "userid",
        "invalid format - value 'alice' does not look like a valid user name\n",
    );
    // Eight characters at least since libpve-access-control 8.2.0.
    assert_param_error(
        &root.api("POST", "/access/users", &[("userid", "alice@pve"), ("password", "short")]).await,
        "password",
        "value must be at least 8 characters long",
    );
    assert_error(
        &root.api("POST", "/access/users", &[("userid", "alice@pve"), ("groups", "ghosts")]).await,
        500,
        "create user failed: no such group 'ghosts'\n",
    );
    root.ok(
        "POST",
        "/access/users",
        &[("userid", "alice@pve"), ("email", "alice@example.com"), ("comment", "ops"), ("expire", "4102444800")],
    )
    .await;
    assert_error(
        &root.api("POST", "/access/users", &[("userid", "alice@pve")]).await,
        500,
        "create user failed: user 'alice@pve' already exists\n",
    );
    let alice = root.ok("GET", "/access/users/alice@pve", &[]).await;
    assert_eq!(
        alice,
        json!({
            "enable": 1, "expire": 4_102_444_800_u64, "email": "alice@example.com", "comment": "ops",
            "groups": [], "tokens": null,
        })
    );
}

#[tokio::test]
async fn creating_a_user_needs_realm_allocate_user_and_user_modify_on_its_groups() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/groups", &[("groupid", "ci")]).await;
    add_user(&root, "alice@pve").await;
    root.ok("POST", "/access/roles", &[("roleid", "Allocate"), ("privs", "Realm.AllocateUser")]).await;
    root.ok("POST", "/access/roles", &[("roleid", "Modify"), ("privs", "User.Modify")]).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;

    let create = |groups: Option<&'static str>| {
        let alice = &alice;
        async move {
            let mut params = vec![("userid", "bot@pve")];
            params.extend(groups.map(|g| ("groups", g)));
            alice.api("POST", "/access/users", &params).await
        }
    };
    assert_error(&create(None).await, 403, "Permission check failed (/access/realm/pve, Realm.AllocateUser)\n");
    must_grant(&root, "/access/realm/pve", "users", "alice@pve", "Allocate", true).await;
    assert_error(&create(None).await, 403, "Permission check failed (/access/groups, User.Modify)\n");
    must_grant(&root, "/access/groups/ci", "users", "alice@pve", "Modify", true).await;
    assert_eq!(create(Some("ci")).await.status, 200);
    assert_eq!(root.ok("GET", "/access/groups/ci", &[]).await["members"], json!(["bot@pve"]));
}

#[tokio::test]
async fn deleting_a_user_removes_its_acls_its_group_memberships_and_its_tokens() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/groups", &[("groupid", "ops")]).await;
    add_user(&root, "alice@pve").await;
    add_user(&root, "bob@pve").await;
    root.ok("PUT", "/access/users/alice@pve", &[("groups", "ops")]).await;
    let secret = new_token(&root, "alice@pve", "ci", &[]).await;
    must_grant(&root, "/vms", "users", "alice@pve,bob@pve", "PVEAuditor", true).await;
    must_grant(&root, "/vms", "tokens", "alice@pve!ci", "PVEAuditor", true).await;

    root.ok("DELETE", "/access/users/alice@pve", &[]).await;
    let left: BTreeSet<String> = acl_entries(&root).await.into_iter().map(|entry| entry.1).collect();
    assert_eq!(left, BTreeSet::from(["bob@pve".to_owned()]), "the user's and its token's entries are gone");
    assert_eq!(root.ok("GET", "/access/groups/ops", &[]).await["members"], json!([]));
    assert_eq!(Api::token(&lab, "alice@pve!ci", &secret).api("GET", "/version", &[]).await.status, 401);
    assert_error(&root.api("GET", "/access/users/alice@pve", &[]).await, 500, "no such user ('alice@pve')\n");
    // Created again, the user starts from nothing: no old token comes back.
    add_user(&root, "alice@pve").await;
    assert_eq!(root.ok("GET", "/access/users/alice@pve/token", &[]).await, json!([]));
}

#[tokio::test]
async fn the_user_list_is_filtered_and_a_token_does_not_see_its_owner() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    add_user(&root, "bob@pve").await;
    let secret = new_token(&root, "alice@pve", "ci", &[("privsep", "0")]).await;
    let userids = |data: Value| -> Vec<String> {
        data.as_array()
            .expect("user list")
            .iter()
            .map(|user| user["userid"].as_str().expect("userid").to_owned())
            .collect()
    };

    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    assert_eq!(userids(alice.ok("GET", "/access/users", &[]).await), ["alice@pve"]);
    let token = Api::token(&lab, "alice@pve!ci", &secret);
    assert!(userids(token.ok("GET", "/access/users", &[]).await).is_empty());

    // `full=1` adds the groups (a comma list, empty when none) and the tokens (null when none).
    root.ok("POST", "/access/groups", &[("groupid", "ops")]).await;
    root.ok("PUT", "/access/users/alice@pve", &[("groups", "ops")]).await;
    let full = root.ok("GET", "/access/users", &[("full", "1")]).await;
    let entry = |list: &Value, userid: &str| {
        list.as_array().expect("list").iter().find(|u| u["userid"] == userid).cloned().expect("listed")
    };
    let alice_full = entry(&full, "alice@pve");
    assert_eq!(alice_full["tokens"], json!([{ "tokenid": "ci", "expire": 0, "privsep": 0 }]));
    assert_eq!((&alice_full["groups"], &alice_full["realm-type"]), (&json!("ops"), &json!("pve")));
    let bob_full = entry(&full, "bob@pve");
    assert_eq!((bob_full.get("groups"), bob_full.get("tokens")), (Some(&json!("")), Some(&Value::Null)));
    let brief = root.ok("GET", "/access/users", &[]).await;
    let alice_brief = entry(&brief, "alice@pve");
    assert!(alice_brief.get("tokens").is_none() && alice_brief.get("groups").is_none(), "{alice_brief}");
    root.ok("PUT", "/access/users/bob@pve", &[("enable", "0")]).await;
    let enabled = userids(root.ok("GET", "/access/users", &[("enabled", "1")]).await);
    assert!(enabled.contains(&"alice@pve".to_owned()) && !enabled.contains(&"bob@pve".to_owned()));
}

#[tokio::test]
async fn groups_are_created_joined_through_the_user_endpoints_and_deleted_with_their_acls() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/groups", &[("groupid", "ops"), ("comment", "operators")]).await;
    root.ok("POST", "/access/groups", &[("groupid", "dev")]).await;
    assert_error(
        &root.api("POST", "/access/groups", &[("groupid", "ops")]).await,
        500,
        "create group failed: group 'ops' already exists\n",
    );
    add_user(&root, "alice@pve").await;
    root.ok("PUT", "/access/users/alice@pve", &[("groups", "ops")]).await;
    root.ok("PUT", "/access/users/alice@pve", &[("groups", "dev"), ("append", "1")]).await;
    assert_eq!(root.ok("GET", "/access/users/alice@pve", &[]).await["groups"], json!(["dev", "ops"]));
    root.ok("PUT", "/access/users/alice@pve", &[("groups", "ops")]).await;
    assert_eq!(root.ok("GET", "/access/users/alice@pve", &[]).await["groups"], json!(["ops"]), "replaced");
    for append in ["1", "0"] {
        assert_param_error(
            &root.api("PUT", "/access/users/alice@pve", &[("append", append)]).await,
            "groups",
            "missing property required by 'append'",
        );
    }
    assert_error(
        &root.api("PUT", "/access/users/alice@pve", &[("groups", "ghosts")]).await,
        500,
        "update user failed: no such group 'ghosts'\n",
    );
    assert_error(
        &root.api("PUT", "/access/users/ghost@pve", &[("comment", "x")]).await,
        500,
        "update user failed: no such user ('ghost@pve')\n",
    );
    assert_eq!(
        root.ok("GET", "/access/groups/ops", &[]).await,
        json!({ "members": ["alice@pve"], "comment": "operators" })
    );

    must_grant(&root, "/vms", "groups", "ops", "PVEAuditor", true).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    assert_eq!(names(&privileges(&alice, "/vms/100").await), role_privileges(&root, "PVEAuditor").await);
    root.ok("DELETE", "/access/groups/ops", &[]).await;
    assert!(acl_entries(&root).await.is_empty(), "the group's ACL entries went with it");
    assert!(privileges(&alice, "/vms/100").await.is_empty());
    assert_error(&root.api("GET", "/access/groups/ops", &[]).await, 500, "group 'ops' does not exist\n");
    assert_eq!(root.ok("GET", "/access/users/alice@pve", &[]).await["groups"], json!([]));
}

#[tokio::test]
async fn the_group_list_shows_only_groups_the_caller_may_audit_or_allocate() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/groups", &[("groupid", "ops")]).await;
    root.ok("POST", "/access/groups", &[("groupid", "dev")]).await;
    add_user(&root, "alice@pve").await;
    must_grant(&root, "/access/groups/dev", "users", "alice@pve", "PVEAuditor", true).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    let listed = alice.ok("GET", "/access/groups", &[]).await;
    let ids: Vec<&str> = listed.as_array().expect("groups").iter().filter_map(|g| g["groupid"].as_str()).collect();
    assert_eq!(ids, ["dev"]);
    assert_error(
        &alice.api("POST", "/access/groups", &[("groupid", "mine")]).await,
        403,
        "Permission check failed (/access/groups, Group.Allocate)\n",
    );
}

// ---- GET /access/permissions ----------------------------------------------------------------------------------

#[tokio::test]
async fn reading_another_subjects_permissions_needs_sys_audit_but_a_user_may_read_its_own_tokens() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    add_user(&root, "bob@pve").await;
    let secret = new_token(&root, "alice@pve", "ci", &[]).await;
    must_grant(&root, "/vms", "tokens", "alice@pve!ci", "PVEAuditor", true).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    let token = Api::token(&lab, "alice@pve!ci", &secret);

    assert_eq!(read(&alice, "alice@pve").await.status, 200);
    assert_eq!(read(&alice, "alice@pve!ci").await.status, 200, "a user reads its tokens (pac 8.2.0+)");
    assert_error(&read(&alice, "bob@pve").await, 403, "Permission check failed (/access, Sys.Audit)\n");
    assert_eq!(read(&token, "alice@pve!ci").await.status, 200, "a token reads itself");
    assert_error(&read(&token, "alice@pve").await, 403, "Permission check failed (/access, Sys.Audit)\n");
    // Without `userid` anyone reads their own.
    assert_eq!(token.ok("GET", "/access/permissions", &[("path", "/vms/1")]).await, json!({ "/vms/1": {} }));
}

#[tokio::test]
async fn permissions_without_a_path_cover_the_standard_paths_and_every_acl_node() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    must_grant(&root, "/", "users", "alice@pve", "PVEAuditor", true).await;
    must_grant(&root, "/vms/100", "users", "alice@pve", "PVEVMUser", false).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    let map = alice.ok("GET", "/access/permissions", &[]).await;
    let paths: BTreeSet<&str> = map.as_object().expect("map").keys().map(String::as_str).collect();
    for path in ["/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms", "/vms/100"] {
        assert!(paths.contains(path), "{path} in {paths:?}");
    }
    let on_vm = flags(&map["/vms/100"]);
    assert_eq!(names(&on_vm), role_privileges(&root, "PVEVMUser").await);
    assert!(on_vm.values().all(|flag| *flag == 0));
    // The handler tests the path for Perl truth: an empty path (or `0`) is no path at all.
    for path in ["", "0"] {
        assert_eq!(alice.ok("GET", "/access/permissions", &[("path", path)]).await, map, "path={path:?}");
    }
}

// ---- what a re-read user.cfg shows ------------------------------------------------------------------------------

/// PVE re-reads `user.cfg` on every request, so an answer shows what its parser makes of the written line: empty
/// comments and names vanish, and `email` is present (empty) whenever a later field of the `user:` line is set.
#[tokio::test]
async fn answers_show_what_pve_reads_back_from_user_cfg() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/groups", &[("groupid", "ops"), ("comment", "operators")]).await;
    root.ok("PUT", "/access/groups/ops", &[("comment", "")]).await;
    assert_eq!(root.ok("GET", "/access/groups/ops", &[]).await, json!({ "members": [] }));
    root.ok("POST", "/access/groups", &[("groupid", "dev"), ("comment", "")]).await;
    assert_eq!(
        root.ok("GET", "/access/groups", &[]).await,
        json!([{ "groupid": "dev", "users": "" }, { "groupid": "ops", "users": "" }])
    );
    root.ok("POST", "/access/users", &[("userid", "bob@pve"), ("comment", ""), ("email", "")]).await;
    assert_eq!(
        root.ok("GET", "/access/users/bob@pve", &[]).await,
        json!({ "enable": 1, "expire": 0, "groups": [], "tokens": null })
    );

    root.ok("POST", "/access/users", &[("userid", "alice@pve"), ("comment", "ops"), ("groups", "ops")]).await;
    assert_eq!(
        root.ok("GET", "/access/users/alice@pve", &[]).await,
        json!({ "enable": 1, "expire": 0, "email": "", "comment": "ops", "groups": ["ops"], "tokens": null })
    );
    root.ok("PUT", "/access/users/alice@pve", &[("comment", ""), ("firstname", "")]).await;
    assert_eq!(
        root.ok("GET", "/access/users/alice@pve", &[]).await,
        json!({ "enable": 1, "expire": 0, "groups": ["ops"], "tokens": null })
    );
    // An empty (but given) group list without `append` leaves every group.
    root.ok("PUT", "/access/users/alice@pve", &[("groups", "")]).await;
    assert_eq!(root.ok("GET", "/access/users/alice@pve", &[]).await["groups"], json!([]));
}

#[tokio::test]
async fn acl_paths_are_normalised_before_they_are_stored() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    must_grant(&root, "//vms//100/", "users", "alice@pve", "PVEAuditor", true).await;
    assert_eq!(
        acl_entries(&root).await,
        BTreeSet::from([("/vms/100".to_owned(), "alice@pve".to_owned(), "PVEAuditor".to_owned(), 1)])
    );
}

#[tokio::test]
async fn a_delegating_caller_may_remove_only_roles_it_could_grant_and_propagates_only_what_it_inherits() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    add_user(&root, "bob@pve").await;
    must_grant(&root, "/vms/101", "users", "alice@pve", "PVEVMAdmin", false).await;
    must_grant(&root, "/vms/101", "users", "bob@pve", "PVEAdmin,PVEVMUser,NoAccess", true).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    let in_lock = "ACL update failed: 400 Parameter verification failed.\nrole: ";
    let remove = |role: &'static str| {
        let alice = &alice;
        async move {
            alice
                .api(
                    "PUT",
                    "/access/acl",
                    &[("path", "/vms/101"), ("users", "bob@pve"), ("roles", role), ("delete", "1")],
                )
                .await
        }
    };

    assert_error(
        &remove("PVEAdmin").await,
        500,
        &format!("{in_lock}Cannot remove role 'PVEAdmin' - requires 'Permissions.Modify' or superset of privileges.\n"),
    );
    assert_error(
        &remove("NoAccess").await,
        500,
        &format!("{in_lock}Cannot remove role 'NoAccess' - requires 'Permissions.Modify'\n"),
    );
    assert_eq!(remove("PVEVMUser").await.status, 200, "a subset of what alice holds");
    // Alice's own role does not propagate, so she may hand out only non-propagating entries.
    assert_error(
        &grant(&alice, "/vms/101", "users", "bob@pve", "PVEVMUser", true).await,
        500,
        &format!(
            "{in_lock}Cannot add role 'PVEVMUser' with propagation - requires 'Permissions.Modify' or propagated \
             superset of privileges.\n"
        ),
    );
    assert_eq!(grant(&alice, "/vms/101", "users", "bob@pve", "PVEVMUser", false).await.status, 200);
    let bob: BTreeSet<(String, u64)> = acl_entries(&root)
        .await
        .into_iter()
        .filter(|entry| entry.1 == "bob@pve")
        .map(|entry| (entry.2, entry.3))
        .collect();
    assert_eq!(
        bob,
        BTreeSet::from([("NoAccess".to_owned(), 1), ("PVEAdmin".to_owned(), 1), ("PVEVMUser".to_owned(), 0)])
    );
}

#[tokio::test]
async fn only_adding_checks_that_the_acl_path_is_one_pve_knows() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    let delete = root
        .api(
            "PUT",
            "/access/acl",
            &[("path", "/nowhere"), ("users", "alice@pve"), ("roles", "PVEAuditor"), ("delete", "1")],
        )
        .await;
    assert_eq!(delete.status, 200, "{delete:?}");
    assert_param_error(
        &grant(&root, "/nowhere", "users", "alice@pve", "PVEAuditor", true).await,
        "path",
        "invalid ACL path '/nowhere'",
    );
}

// ---- PUT /access/password -------------------------------------------------------------------------------------

/// `PUT /access/password` as `api`, with the caller's own password as `confirmation` when given.
async fn change(api: &Api, userid: &str, password: &str, confirmation: Option<&str>) -> Answer {
    let mut params = vec![("userid", userid), ("password", password)];
    params.extend(confirmation.map(|c| ("confirmation-password", c)));
    api.api("PUT", "/access/password", &params).await
}

#[tokio::test]
async fn changing_a_password_needs_the_callers_own_password_and_never_reaches_root_or_pam_users() {
    let lab = lab().await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    add_user(&root, "admin@pve").await;
    root.ok("POST", "/access/users", &[("userid", "ops@pam")]).await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;

    // Since libpve-access-control 8.1.3 anyone but root confirms with their own password.
    assert_param_error(
        &change(&alice, "alice@pve", "new-password-1", None).await,
        "confirmation-password",
        "password is required to modify user",
    );
    assert_error(
        &change(&alice, "alice@pve", "new-password-1", Some("wrong-password")).await,
        500,
        "invalid credentials\n",
    );
    assert_param_error(
        &change(&alice, "alice@pve", "short", Some(PASSWORD)).await,
        "password",
        "value must be at least 8 characters long",
    );
    assert_eq!(change(&alice, "alice@pve", "new-password-1", Some(PASSWORD)).await.status, 200);
    let old = Api::new(&lab, crate::support::Auth::None)
        .api("POST", "/access/ticket", &[("username", "alice@pve"), ("password", PASSWORD)])
        .await;
    assert_eq!(old.status, 401, "the old password is gone");
    Api::login(&lab, "alice@pve", "new-password-1").await;

    // Another user's password needs Realm.AllocateUser and User.Modify, and never reaches root@pam or pam users.
    root.ok("POST", "/access/roles", &[("roleid", "Passwords"), ("privs", "Realm.AllocateUser,User.Modify")]).await;
    must_grant(&root, "/access", "users", "admin@pve", "Passwords", true).await;
    let admin = Api::login(&lab, "admin@pve", PASSWORD).await;
    assert_eq!(change(&admin, "alice@pve", "third-password", Some(PASSWORD)).await.status, 200);
    assert_error(&change(&admin, "root@pam", "third-password", Some(PASSWORD)).await, 403, "Permission check failed\n");
    assert_error(&change(&admin, "ops@pam", "third-password", Some(PASSWORD)).await, 403, "Permission check failed\n");
    assert_error(
        &change(&alice, "admin@pve", "third-password", Some("new-password-1")).await,
        403,
        "Permission check failed\n",
    );
    // Root needs no confirmation.
    assert_eq!(change(&root, "alice@pve", "fourth-password", None).await.status, 200);
    Api::login(&lab, "alice@pve", "fourth-password").await;
}

#[tokio::test]
async fn before_access_control_8_1_3_a_password_change_needs_no_confirmation() {
    let lab = start(LabConfig { pve_version: "7.4".parse().expect("release"), ..LabConfig::default() }).await;
    let root = Api::root(&lab).await;
    add_user(&root, "alice@pve").await;
    let alice = Api::login(&lab, "alice@pve", PASSWORD).await;
    let answer = alice.api("PUT", "/access/password", &[("userid", "alice@pve"), ("password", "five5")]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    Api::login(&lab, "alice@pve", "five5").await;
}
