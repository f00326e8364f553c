//! Live mode: read users (with tokens), groups, roles, pools and ACLs through the API and rebuild the user.cfg
//! they came from, so the live audit runs the very same parser and evaluator as the offline one.
//!
//! Calls (all GET, as an administrator): `/version`, `/access/users?full=1`, `/access/groups`, `/access/roles`,
//! `/access/acl`, `/pools` and, per pool, `/pools?poolid=<id>` (PVE 8.1+) or `/pools/<id>` (older). The answers are
//! read as plain JSON, tolerating the number/string/boolean variations PVE versions produce.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use pvetoken_client::ClientError;
use pvetoken_client::pve::{Params, PveClient};
use serde_json::Value;

use super::analysis::encode_text;

/// What the API returned, as plain JSON.
#[derive(Debug, Clone, Default)]
pub struct ApiState {
    /// `GET /version` → `version` (e.g. `9.1.1`).
    pub version: String,
    /// `GET /access/users?full=1`.
    pub users: Vec<Value>,
    /// `GET /access/groups`.
    pub groups: Vec<Value>,
    /// `GET /access/roles`.
    pub roles: Vec<Value>,
    /// `GET /access/acl`.
    pub acl: Vec<Value>,
    /// Pool id → the pool's detail (`comment`, `members`).
    pub pools: BTreeMap<String, Value>,
    /// What could not be read (e.g. a server without the pools API), for the user.
    pub notes: Vec<String>,
}

fn param(pairs: &[(&str, &str)]) -> Params {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn unavailable(error: &ClientError) -> bool {
    matches!(error.status(), Some(404 | 501))
}

/// Reads everything the audit needs.
pub async fn fetch(client: &PveClient) -> Result<ApiState, ClientError> {
    let version = client.version().await?;
    let mut state = ApiState {
        version: if version.version.is_empty() { version.release } else { version.version },
        users: client.get("/access/users", &param(&[("full", "1")])).await?,
        groups: client.get("/access/groups", &Params::new()).await?,
        roles: client.get("/access/roles", &Params::new()).await?,
        acl: client.get("/access/acl", &Params::new()).await?,
        ..ApiState::default()
    };
    let pools: Vec<Value> = match client.get("/pools", &Params::new()).await {
        Ok(list) => list,
        Err(error) if unavailable(&error) => {
            state
                .notes
                .push("the server does not list pools (GET /pools): pool-derived rights are not evaluated".into());
            Vec::new()
        }
        Err(error) => return Err(error),
    };
    for pool in pools {
        let Some(id) = pool.get("poolid").and_then(Value::as_str).map(str::to_owned) else { continue };
        let detail = match client.get::<Vec<Value>>("/pools", &param(&[("poolid", &id)])).await {
            Ok(list) if list.first().is_some_and(|p| p.get("members").is_some()) => list.into_iter().next(),
            Ok(_) | Err(_) => None,
        };
        let detail = match detail {
            Some(detail) => detail,
            None => match client.get::<Value>(&format!("/pools/{}", segment(&id)), &Params::new()).await {
                Ok(detail) => detail,
                Err(error) if unavailable(&error) => {
                    state.notes.push(format!("members of pool {id} could not be read"));
                    pool.clone()
                }
                Err(error) => return Err(error),
            },
        };
        state.pools.insert(id, detail);
    }
    Ok(state)
}

fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn flag(v: Option<&Value>, default: bool) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => !s.is_empty() && s != "0",
        _ => default,
    }
}

fn number(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A comma list or an array of strings.
fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split([',', ';', ' ']).filter(|p| !p.is_empty()).map(str::to_owned).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The user.cfg text equivalent to what the API returned (Proxmox's parser takes it back exactly).
pub fn to_user_cfg(state: &ApiState) -> String {
    let mut out = String::new();
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for user in &state.users {
        let id = text(user, "userid");
        if id.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "user:{id}:{}:{}::::{}::",
            u8::from(flag(user.get("enable"), true)),
            number(user.get("expire")),
            encode_text(text(user, "comment"))
        );
        for group in list(user.get("groups")) {
            members.entry(group).or_default().insert(id.to_owned());
        }
        if let Some(Value::Array(tokens)) = user.get("tokens") {
            for token in tokens {
                let name = text(token, "tokenid");
                if name.is_empty() {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "token:{id}!{name}:{}:{}:{}:",
                    number(token.get("expire")),
                    u8::from(flag(token.get("privsep"), true)),
                    encode_text(text(token, "comment"))
                );
            }
        }
    }
    out.push('\n');
    for group in &state.groups {
        let id = text(group, "groupid");
        if id.is_empty() {
            continue;
        }
        let set = members.entry(id.to_owned()).or_default();
        set.extend(list(group.get("users")));
        let _ = writeln!(
            out,
            "group:{id}:{}:{}:",
            set.iter().cloned().collect::<Vec<_>>().join(","),
            encode_text(text(group, "comment"))
        );
    }
    out.push('\n');
    for (id, pool) in &state.pools {
        let mut vms = Vec::new();
        let mut storage = Vec::new();
        if let Some(Value::Array(items)) = pool.get("members") {
            for m in items {
                match text(m, "type") {
                    "storage" => storage.push(text(m, "storage").to_owned()),
                    _ => {
                        let vmid = number(m.get("vmid"));
                        if vmid > 0 {
                            vms.push(vmid.to_string());
                        }
                    }
                }
            }
        }
        let _ =
            writeln!(out, "pool:{id}:{}:{}:{}:", encode_text(text(pool, "comment")), vms.join(","), storage.join(","));
    }
    out.push('\n');
    for role in &state.roles {
        let id = text(role, "roleid");
        if id.is_empty() || flag(role.get("special"), false) {
            continue;
        }
        let _ = writeln!(out, "role:{id}:{}:", list(role.get("privs")).join(","));
    }
    out.push('\n');
    for entry in &state.acl {
        let ugid = text(entry, "ugid");
        let subject = if text(entry, "type") == "group" { format!("@{ugid}") } else { ugid.to_owned() };
        let _ = writeln!(
            out,
            "acl:{}:{}:{subject}:{}:",
            u8::from(flag(entry.get("propagate"), true)),
            text(entry, "path"),
            text(entry, "roleid")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_answers_rebuild_the_user_cfg_they_came_from() {
        let state = ApiState {
            version: "9.1.1".into(),
            users: vec![json!({"userid": "ci@pve", "enable": 1, "expire": 0, "comment": "a:b", "groups": "ops",
                "tokens": [{"tokenid": "tf", "expire": "0", "privsep": 0}]})],
            groups: vec![json!({"groupid": "ops", "users": "ci@pve,gone@pve"})],
            roles: vec![
                json!({"roleid": "Custom", "privs": "VM.Audit,Sys.Audit", "special": 0}),
                json!({"roleid": "PVEAuditor", "privs": "VM.Audit", "special": 1}),
            ],
            acl: vec![
                json!({"path": "/", "type": "group", "ugid": "ops", "roleid": "Custom", "propagate": 1}),
                json!({"path": "/vms", "type": "token", "ugid": "ci@pve!tf", "roleid": "PVEAuditor", "propagate": 0}),
            ],
            pools: [(
                "p1".to_owned(),
                json!({"members": [{"type": "qemu", "vmid": 100}, {"type": "storage", "storage": "local"}]}),
            )]
            .into_iter()
            .collect(),
            notes: Vec::new(),
        };
        let text = to_user_cfg(&state);
        assert!(text.contains("user:ci@pve:1:0::::a%3Ab::\n"), "{text}");
        assert!(text.contains("token:ci@pve!tf:0:0::\n"), "{text}");
        assert!(text.contains("group:ops:ci@pve,gone@pve::\n"), "{text}");
        assert!(text.contains("pool:p1::100:local:\n"), "{text}");
        assert!(text.contains("role:Custom:VM.Audit,Sys.Audit:\n") && !text.contains("role:PVEAuditor"), "{text}");
        assert!(
            text.contains("acl:1:/:@ops:Custom:\n") && text.contains("acl:0:/vms:ci@pve!tf:PVEAuditor:\n"),
            "{text}"
        );
    }
}
