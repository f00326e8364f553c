#![allow(clippy::print_stdout, reason = "the test prints its pass counts")]
//! Runs every entry of `shared/reference/pve-perm-vectors.json` (results computed by Proxmox's own code) when the
//! file exists beside the checkout, and requires 100%.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use pvetoken_acl::explain::reference_permissions;
use pvetoken_acl::{AclPath, Catalog, Evaluator, PoolId, Privilege, PveVersion, Subject, UserCfg};
use serde_json::Value;

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/pve-perm-vectors.json")
}

fn load() -> Option<Vec<Value>> {
    let path = vectors_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("NOTE: {} is absent; the reference-vector conformance test is skipped", path.display());
        return None;
    };
    Some(serde_json::from_str(&text).expect("vectors file is JSON"))
}

/// The releases a `pve_version` tag stands for ("9" covers pac 9.0.3 .. 9.1.1: 9.0, 9.1 and 9.2); untagged = all.
fn versions(tag: Option<&str>) -> Vec<PveVersion> {
    let v = |s: &str| s.parse::<PveVersion>().expect("known version");
    match tag {
        Some("7") => vec![v("7.4")],
        Some("8") => vec![v("8.4")],
        Some("9") => vec![v("9.0"), v("9.1"), v("9.2")],
        Some("9.0") => vec![v("9.0")],
        Some("9.1") => vec![v("9.1")],
        Some("9.2") => vec![v("9.2")],
        Some(other) => panic!("unknown pve_version tag {other}"),
        None => vec![v("7.4"), v("8.4"), v("9.0"), v("9.1"), v("9.2")],
    }
}

/// The catalog of a host running libpve-access-control `pac`: vectors keyed by package version are checked
/// against the package's behaviour, whatever release shipped it.
fn pac_catalog(pac: &str) -> Catalog {
    Catalog::for_access_control(pac.parse().expect("access-control version"))
}

#[derive(Default)]
struct Tally {
    counts: BTreeMap<&'static str, (usize, usize)>,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, kind: &'static str, ok: bool, what: impl FnOnce() -> String) {
        let entry = self.counts.entry(kind).or_default();
        entry.0 += 1;
        if ok {
            entry.1 += 1;
        } else {
            self.failures.push(format!("[{kind}] {}", what()));
        }
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn perms_json(p: &pvetoken_acl::Permissions) -> Value {
    serde_json::to_value(p).expect("serialise permissions")
}

#[test]
fn every_reference_vector_holds() {
    let Some(cases) = load() else { return };
    let mut tally = Tally::default();

    // Element 0: privilege lists and built-in roles per release.
    let reference = &cases[0];
    for (pac, privs) in reference["privileges_by_pac_version"].as_object().expect("privileges") {
        let catalog = pac_catalog(pac);
        let ours: BTreeSet<String> = catalog.privileges().iter().map(|p| p.to_string()).collect();
        let theirs: BTreeSet<String> = strs(privs).into_iter().collect();
        tally.record("catalog privileges", ours == theirs, || format!("{pac}: {ours:?} != {theirs:?}"));
        let roles = &reference["builtin_roles_by_pac_version"][pac];
        let ours: BTreeMap<String, BTreeSet<String>> = catalog
            .builtin_roles()
            .iter()
            .map(|(r, p)| (r.to_string(), p.iter().map(|x| x.to_string()).collect()))
            .collect();
        let theirs: BTreeMap<String, BTreeSet<String>> =
            roles.as_object().expect("roles").iter().map(|(r, p)| (r.clone(), strs(p).into_iter().collect())).collect();
        tally.record("catalog roles", ours == theirs, || format!("{pac}: roles differ"));
    }

    for case in &cases[1..] {
        let name = case["name"].as_str().unwrap_or("?");
        let text = case["user_cfg"].as_str().unwrap_or("");
        for version in versions(None) {
            let catalog = Catalog::for_version(version);
            let (cfg, warnings) = UserCfg::parse(text, &catalog);
            let eval = Evaluator::new(&cfg, &catalog);
            let tag_of = |c: &Value| c.get("pve_version").and_then(Value::as_str).map(str::to_owned);
            let applies = |c: &Value| versions(tag_of(c).as_deref()).contains(&version);
            let mut cross_checked = BTreeSet::new();
            for check in case["checks"].as_array().into_iter().flatten().filter(|c| applies(c)) {
                let subject: Subject = check["subject"].as_str().expect("subject").parse().expect("valid subject");
                let path = check["path"].as_str().expect("path");
                let perms = eval.permissions_raw(&subject, path);
                if let Some(expected) = check.get("expect_privs") {
                    let ours: BTreeSet<String> = perms.granted().iter().map(|p| p.to_string()).collect();
                    let theirs: BTreeSet<String> = strs(expected).into_iter().collect();
                    tally.record("checks (expect_privs)", ours == theirs, || {
                        format!("{name} {version} {subject} {path:?}: ours {ours:?} expected {theirs:?}")
                    });
                } else {
                    let privs = strs(&check["privs"]);
                    let has = privs.iter().all(|p| p.parse::<Privilege>().is_ok_and(|p| perms.has(p)));
                    let expect = check["expect"].as_bool().expect("expect");
                    tally.record("checks (privs)", has == expect, || {
                        format!("{name} {version} {subject} {path:?} {privs:?}: ours {has} expected {expect}")
                    });
                }
                if cross_checked.insert((subject.to_string(), path.to_owned())) {
                    let slow = reference_permissions(&cfg, &catalog, &subject, path);
                    tally.record("fast evaluator = reference evaluator", slow == perms, || {
                        format!("{name} {version} {subject} {path:?}: fast {perms:?} slow {slow:?}")
                    });
                }
            }
            for check in case["role_checks"].as_array().into_iter().flatten().filter(|c| applies(c)) {
                let subject: Subject = check["subject"].as_str().expect("subject").parse().expect("valid subject");
                let path = check["path"].as_str().expect("path");
                let ours: BTreeSet<String> = eval.roles(&subject, path).keys().map(|r| r.to_string()).collect();
                let theirs: BTreeSet<String> = strs(&check["expect_roles"]).into_iter().collect();
                tally.record("role_checks", ours == theirs, || {
                    format!("{name} {version} {subject} {path:?}: ours {ours:?} expected {theirs:?}")
                });
            }
            // GET /access/permissions answers (with propagate flags); other endpoints belong to the lab.
            for check in case["api_checks"].as_array().into_iter().flatten().filter(|c| applies(c)) {
                if check["endpoint"] != "/access/permissions" || check["expect_status"] != 200 {
                    continue;
                }
                let target = check["params"]["userid"].as_str().or(check["caller"].as_str()).expect("target");
                let subject: Subject = target.parse().expect("valid subject");
                let ours = match check["params"]["path"].as_str().filter(|p| !p.is_empty()) {
                    Some(path) => serde_json::json!({ path: perms_json(&eval.permissions_raw(&subject, path)) }),
                    None => serde_json::to_value(eval.permission_map(&subject)).expect("map"),
                };
                tally.record("api_checks GET /access/permissions", ours == check["expect_data"], || {
                    format!(
                        "{name} {version} {target} {}: ours {ours} expected {}",
                        check["params"], check["expect_data"]
                    )
                });
            }
            if let Some(effective) = case.get("effective_permissions").and_then(Value::as_object)
                && version >= "8.3".parse().expect("version")
            {
                for (target, expected) in effective {
                    let subject: Subject = target.parse().expect("valid subject");
                    let ours = serde_json::to_value(eval.permission_map(&subject)).expect("map");
                    tally.record("effective_permissions", &ours == expected, || {
                        format!("{name} {version} {target}: ours {ours} expected {expected}")
                    });
                }
            }
            if let Some(parse) = case.get("parse")
                && version != "9.0".parse().expect("version")
            {
                let rewrite = parse["expected_rewrite"].as_str().expect("rewrite");
                let ours = cfg.write();
                tally.record("parse.expected_rewrite", ours == rewrite, || {
                    format!("{name} {version}: ours\n{ours}\nexpected\n{rewrite}")
                });
                let ours_w: Vec<String> = warnings.iter().map(|w| w.message.clone()).collect();
                let theirs_w = strs(&parse["expected_warnings"]);
                tally.record("parse.expected_warnings", ours_w == theirs_w, || {
                    format!("{name} {version}: ours {ours_w:?} expected {theirs_w:?}")
                });
                let ours_p = parsed_json(&cfg);
                let mut theirs_p = parse["expected_parsed"].clone();
                if let Some(acl) = theirs_p.get_mut("acl").and_then(Value::as_array_mut) {
                    acl.sort_by_key(|v| v.to_string());
                }
                tally.record("parse.expected_parsed", ours_p == theirs_p, || {
                    format!("{name} {version}: ours {ours_p} expected {}", parse["expected_parsed"])
                });
            }
        }
        for check in case["format_checks"].as_array().into_iter().flatten() {
            let kind = check["kind"].as_str().expect("kind");
            let value = check["value"].as_str().expect("value");
            let expectations: Vec<(String, Catalog, bool)> = match check.get("valid_by_pac_version") {
                Some(by) => by
                    .as_object()
                    .expect("map")
                    .iter()
                    .map(|(pac, ok)| (format!("access-control {pac}"), pac_catalog(pac), ok.as_bool().expect("bool")))
                    .collect(),
                None => versions(None)
                    .into_iter()
                    .map(|v| (format!("PVE {v}"), Catalog::for_version(v), check["valid"].as_bool().expect("valid")))
                    .collect(),
            };
            for (version, catalog, expect) in expectations {
                let ours = format_valid(kind, value, &catalog);
                tally.record("format_checks", ours == expect, || {
                    format!("{kind} {value:?} on {version}: ours {ours} expected {expect}")
                });
                if let (Some(normalized), "acl_path") = (check.get("normalized"), kind) {
                    let ours = AclPath::normalize(value).map(|p| p.to_string());
                    tally.record("format_checks (normalize)", ours.as_deref() == normalized.as_str(), || {
                        format!("normalize {value:?}: ours {ours:?} expected {normalized}")
                    });
                }
            }
        }
        if let (Some(token_cfg), Some(auth)) = (case["token_cfg"].as_str(), case["token_auth_checks"].as_array()) {
            let catalog = Catalog::newest();
            let (cfg, _) = UserCfg::parse(text, &catalog);
            let (tokens, warnings) = pvetoken_acl::TokenCfg::parse(token_cfg);
            tally.record("token_cfg parses", warnings.is_empty(), || format!("{name}: {warnings:?}"));
            for check in auth {
                let value = check["token_value"].as_str().unwrap_or("");
                let ours = pvetoken_acl::auth::verify_token(&cfg, &tokens, value, NOW);
                let ok = match (&ours, check["expect_ok"].as_bool()) {
                    (Ok(id), Some(true)) => Some(id.as_str()) == check["expect_authid"].as_str(),
                    (Err(e), Some(false)) => check["internal_reason"].as_str().is_none_or(|r| r == e.to_string()),
                    _ => false,
                };
                tally.record("token_auth_checks", ok, || format!("{name} {value:?}: ours {ours:?} expected {check}"));
            }
        }
    }

    let mut report = String::new();
    for (kind, (total, passed)) in &tally.counts {
        report.push_str(&format!("{kind}: {passed}/{total}\n"));
    }
    println!("{report}");
    assert!(
        tally.failures.is_empty(),
        "{} reference vector(s) failed:\n{}\n{report}",
        tally.failures.len(),
        tally.failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// A fixed "now" for token expiry checks (2025-06-15), between the vectors' expired and future dates.
const NOW: u64 = 1_750_000_000;

fn format_valid(kind: &str, value: &str, catalog: &Catalog) -> bool {
    match kind {
        "userid" => value.parse::<pvetoken_acl::UserId>().is_ok(),
        "tokenid" => value.parse::<pvetoken_acl::TokenId>().is_ok(),
        "token_subid" => value.parse::<pvetoken_acl::TokenName>().is_ok(),
        "realm" => value.parse::<pvetoken_acl::Realm>().is_ok(),
        "groupid" => value.parse::<pvetoken_acl::GroupId>().is_ok(),
        "roleid" => value.parse::<pvetoken_acl::RoleId>().is_ok(),
        "poolid" => value.parse::<PoolId>().is_ok_and(|p| catalog.check_pool_id(&p).is_ok()),
        "acl_path" => value.parse::<AclPath>().is_ok_and(|p| catalog.acl_path_allowed(&p)),
        "priv" => catalog.privilege(value).is_ok(),
        other => panic!("unknown format kind {other}"),
    }
}

/// The normalised parse in the vectors' shape.
fn parsed_json(cfg: &UserCfg) -> Value {
    let mut users = serde_json::Map::new();
    for (id, u) in cfg.users() {
        let mut o = serde_json::json!({
            "enable": u8::from(u.enable),
            "expire": u.expire,
            "groups": u.groups.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
            "tokens": u.tokens.iter().map(|(n, t)| {
                let mut t_o = serde_json::json!({"expire": t.expire, "privsep": u8::from(t.privsep)});
                if let Some(c) = &t.comment { t_o["comment"] = c.clone().into(); }
                (n.to_string(), t_o)
            }).collect::<serde_json::Map<_, _>>(),
        });
        for (key, value) in [
            ("firstname", &u.firstname),
            ("lastname", &u.lastname),
            ("email", &u.email),
            ("comment", &u.comment),
            ("keys", &u.keys),
        ] {
            if let Some(v) = value {
                o[key] = v.clone().into();
            }
        }
        users.insert(id.to_string(), o);
    }
    let groups: serde_json::Map<String, Value> = cfg
        .groups()
        .iter()
        .map(|(id, g)| {
            let mut o = serde_json::json!({"members": g.members.iter().map(|m| m.to_string()).collect::<Vec<_>>()});
            if let Some(c) = &g.comment {
                o["comment"] = c.clone().into();
            }
            (id.to_string(), o)
        })
        .collect();
    let pools: serde_json::Map<String, Value> = cfg
        .pools()
        .iter()
        .map(|(id, p)| {
            let mut o = serde_json::json!({"vms": p.vms.iter().collect::<Vec<_>>(), "storage": p.storage.iter().collect::<Vec<_>>()});
            if let Some(c) = &p.comment {
                o["comment"] = c.clone().into();
            }
            (id.to_string(), o)
        })
        .collect();
    let roles: serde_json::Map<String, Value> = cfg
        .custom_roles()
        .iter()
        .map(|(id, p)| (id.to_string(), p.iter().map(|x| x.to_string()).collect::<Vec<_>>().into()))
        .collect();
    let mut acl: Vec<Value> = cfg
        .acl_entries()
        .into_iter()
        .map(|e| serde_json::json!({"path": e.path.to_string(), "propagate": u8::from(e.propagate), "roleid": e.roleid.to_string(), "type": match &e.subject { pvetoken_acl::AclSubject::User(_) => "user", pvetoken_acl::AclSubject::Group(_) => "group", pvetoken_acl::AclSubject::Token(_) => "token" }, "ugid": match &e.subject { pvetoken_acl::AclSubject::Group(g) => g.to_string(), other => other.to_string() }}))
        .collect();
    acl.sort_by_key(|v| v.to_string());
    serde_json::json!({"users": users, "groups": groups, "pools": pools, "roles": roles, "acl": acl})
}
