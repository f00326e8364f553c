//! Property: parse → write → parse is stable (the written form is a fixed point and keeps the configuration).

use proptest::prelude::*;
use pvetoken_acl::{Catalog, UserCfg};

fn pick(values: &[&str]) -> BoxedStrategy<String> {
    prop::sample::select(values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>()).boxed()
}

/// One user.cfg line: mostly valid records of every kind, some invalid ones, and noise.
pub(crate) fn line() -> impl Strategy<Value = String> {
    let user = pick(&["a@pve", "bb@pam", "root@pam", "x!y@pve", "bad", "c@ldap"]);
    let token = pick(&["a@pve!tok", "bb@pam!t1", "root@pam!full", "a@pve!x"]);
    let group = pick(&["g1", "g2", "in!valid", "0"]);
    let role = pick(&["PVEAuditor", "NoAccess", "custom", "Administrator", "missing"]);
    let path = pick(&["/", "/vms", "/vms/100", "//vms//0/", "/pool/p/q", "bad path", "/storage/local"]);
    let text = "[ -~]{0,6}";
    prop_oneof![
        (user.clone(), "[01]?", "[0-9a-z]{0,3}", text, text)
            .prop_map(|(u, e, x, f, c)| format!("user:{u}:{e}:{x}:{f}::{c}:")),
        (token.clone(), "[0-9]{0,2}", "[01]?", text).prop_map(|(t, x, p, c)| format!("token:{t}:{x}:{p}:{c}:")),
        (group.clone(), prop::collection::vec(user.clone(), 0..3), text)
            .prop_map(|(g, m, c)| format!("group:{g}:{}:{c}:", m.join(","))),
        (
            prop::sample::select(vec!["custom", "other", "PVEAdmin"]),
            "(VM\\.Audit|Sys\\.Modify|VM\\.Monitor|Nope)(,VM\\.Console)?"
        )
            .prop_map(|(r, p)| format!("role:{r}:{p}:")),
        (
            "[01]",
            path,
            prop::collection::vec(prop_oneof![user, token, group.prop_map(|g| format!("@{g}"))], 1..3),
            role
        )
            .prop_map(|(p, path, s, r)| format!("acl:{p}:{path}:{}:{r}:", s.join(","))),
        (
            prop::sample::select(vec!["p", "p/q", "p/q/r/s", "b b"]),
            text,
            "(100|7|[0-9]{1,4})(,(0|100|[0-9]{1,4}))?",
            "(local|l|x1)?"
        )
            .prop_map(|(p, c, v, s)| format!("pool:{p}:{c}:{v}:{s}:")),
        "[ -~]{0,20}",
    ]
}

proptest! {
    #[test]
    fn rewriting_user_cfg_converges_after_one_canonical_rewrite(lines in prop::collection::vec(line(), 0..25), version in prop::sample::select(vec!["7", "8", "9"])) {
        let catalog = Catalog::for_version(version.parse().expect("version"));
        let text = lines.join("\n");
        // One rewrite is not always a fixed point, in Proxmox either: a token line before its user's line (root@pam
        // exists from the start) is kept, then the user line replaces the user and its tokens, while an ACL naming
        // the token survives; the next parse drops that ACL. So the property is: the second rewrite is stable.
        let (first, _) = UserCfg::parse(&text, &catalog);
        let (cfg, _) = UserCfg::parse(&first.write(), &catalog);
        let written = cfg.write();
        let (again, warnings) = UserCfg::parse(&written, &catalog);
        prop_assert_eq!(again.write(), written.clone());
        // `User::groups` records memberships named after the user line (Proxmox's parse order), so it may gain
        // entries once the canonical order puts users first; everything else must be identical.
        let strip = |c: &UserCfg| c.users().iter().map(|(k, u)| (k.clone(), pvetoken_acl::User { groups: Default::default(), ..u.clone() })).collect::<Vec<_>>();
        prop_assert_eq!(strip(&again), strip(&cfg));
        prop_assert_eq!(again.groups(), cfg.groups());
        prop_assert_eq!(again.custom_roles(), cfg.custom_roles());
        prop_assert_eq!(again.pools(), cfg.pools());
        // The canonical form only warns about what Proxmox itself keeps with a warning (unknown ACL members).
        prop_assert!(warnings.iter().all(|w| w.message.contains("ignore invalid acl") || w.message.contains("group member")), "{:?}", warnings);
    }
}
