//! Replays every `api_checks`, `api_permission_checks` and `token_auth_checks` entry of
#![allow(clippy::print_stderr, reason = "the replay reports its pass and skip counts in the test output")]
//! `shared/reference/pve-perm-vectors.json` (results computed by running Proxmox's own code) against labs seeded
//! with each case's user.cfg / token.cfg, over HTTPS. Tags: untagged → 8.4 and 9.1, "8" → 8.4, "9" → 9.1; "7"
//! entries have no lab release and are counted as skipped. Every applicable entry must match.

use std::collections::BTreeMap;

use pvetoken_lab::LabConfig;
use serde_json::Value;

use crate::support::{Api, Auth, start};

const PASSWORD: &str = "vector-replay-password";

fn vectors() -> Option<Vec<Value>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/pve-perm-vectors.json");
    let text = std::fs::read_to_string(&path).ok()?;
    Some(serde_json::from_str::<Value>(&text).expect("vectors are JSON").as_array().expect("array").clone())
}

fn versions(check: &Value) -> Vec<&'static str> {
    match check["pve_version"].as_str() {
        None => vec!["8.4", "9.1"],
        Some("8") => vec!["8.4"],
        Some("9" | "9.0" | "9.1") => vec!["9.1"],
        Some(_) => vec![],
    }
}

fn token_cfg(case: &Value) -> String {
    if let Some(given) = case["token_cfg"].as_str() {
        return given.to_owned();
    }
    case["user_cfg"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("token:")?.split(':').next())
        .enumerate()
        .map(|(i, id)| format!("{id} 5eed0000-0000-4000-8000-{i:012x}\n"))
        .collect()
}

fn config(case: &Value, version: &str) -> LabConfig {
    let user_cfg = case["user_cfg"].as_str().unwrap_or_default().to_owned();
    let mut config = LabConfig { pve_version: version.parse().expect("version"), ..LabConfig::default() }
        .with_user_cfg(user_cfg.clone(), token_cfg(case));
    // Every user of the case may log in with a lab password.
    config.scenario.passwords = user_cfg
        .lines()
        .filter_map(|l| l.strip_prefix("user:")?.split(':').next())
        .map(|u| (u.to_owned(), PASSWORD.to_owned()))
        .collect::<BTreeMap<_, _>>();
    config
}

async fn api_as(lab: &pvetoken_lab::RunningLab, case: &Value, caller: &str) -> Api {
    if caller == "root@pam" {
        return Api::root(lab).await;
    }
    if caller.contains('!') {
        let tokens = token_cfg(case);
        let secret = tokens
            .lines()
            .find_map(|l| l.split_once(' ').filter(|(id, _)| *id == caller).map(|(_, s)| s.trim().to_owned()))
            .unwrap_or_else(|| panic!("no secret for {caller}"));
        return Api::token(lab, caller, &secret);
    }
    Api::login(lab, caller, PASSWORD).await
}

fn normalized(value: &Value) -> Value {
    match value {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort_by_key(Value::to_string);
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), normalized(v))).collect()),
        other => other.clone(),
    }
}

fn message(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().trim_end().to_owned()
}

fn params(check: &Value) -> Vec<(String, String)> {
    check["params"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
        .unwrap_or_default()
}

async fn run(case: &Value, check: &Value, version: &str) -> (u16, Value) {
    let lab = start(config(case, version)).await;
    let api = api_as(&lab, case, check["caller"].as_str().unwrap_or("root@pam")).await;
    let p = params(check);
    let pairs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = api.api(check["method"].as_str().unwrap_or("GET"), check["endpoint"].as_str().unwrap_or("/"), &pairs).await;
    (a.status, a.body)
}

fn api_mismatch(check: &Value, status: u16, body: &Value) -> Option<String> {
    let want = check["expect_status"].as_u64().unwrap_or(200);
    if u64::from(status) != want {
        return Some(format!("status {status}, want {want}; body {body}"));
    }
    if let Some(data) = check.get("expect_data")
        && normalized(&body["data"]) != normalized(data)
    {
        return Some(format!("data {}, want {data}", body["data"]));
    }
    if let Some(m) = check["expect_message"].as_str()
        && message(body) != m.trim_end()
    {
        return Some(format!("message {:?}, want {m:?}", message(body)));
    }
    for (key, text) in check["expect_errors"].as_object().into_iter().flatten() {
        let got = body["errors"][key].as_str().unwrap_or_default().trim_end();
        if got != text.as_str().unwrap_or_default().trim_end() {
            return Some(format!("errors.{key} {got:?}, want {text}"));
        }
    }
    None
}

fn permission_mismatch(check: &Value, status: u16, body: &Value) -> Option<String> {
    if check["expect_permitted"].as_bool() == Some(true) {
        return matches!(status, 401 | 403).then(|| format!("refused with {status}: {body}"));
    }
    let want = check["expect_status"].as_u64().unwrap_or(403);
    let want_message = check["expect_message"].as_str().unwrap_or_default().trim_end();
    if u64::from(status) != want || message(body) != want_message {
        return Some(format!("{status} {:?}, want {want} {want_message:?}", message(body)));
    }
    None
}

async fn replay(kind: &str, compare: fn(&Value, u16, &Value) -> Option<String>) -> Option<(usize, usize)> {
    let cases = vectors()?;
    let (mut ran, mut skipped, mut bad) = (0, 0, Vec::new());
    for case in &cases {
        for check in case[kind].as_array().into_iter().flatten() {
            let vs = versions(check);
            if vs.is_empty() {
                skipped += 1;
            }
            for version in vs {
                ran += 1;
                let (status, body) = run(case, check, version).await;
                if let Some(why) = compare(check, status, &body) {
                    bad.push(format!(
                        "[{} | {version}] {} {} {} as {}: {why}",
                        case["name"].as_str().unwrap_or("?"),
                        check["method"],
                        check["endpoint"],
                        check["params"],
                        check["caller"]
                    ));
                }
            }
        }
    }
    assert!(ran > 0, "no {kind} in the vectors");
    assert!(bad.is_empty(), "{} of {ran} {kind} differ from PVE:\n{}", bad.len(), bad.join("\n"));
    Some((ran, skipped))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_answers_every_api_check_as_pve_access_control_computed_it() {
    if let Some((ran, skipped)) = replay("api_checks", api_mismatch).await {
        eprintln!("api_checks: {ran} passed, {skipped} PVE-7-only entries skipped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_permits_or_refuses_every_permission_check_like_pve() {
    if let Some((ran, skipped)) = replay("api_permission_checks", permission_mismatch).await {
        eprintln!("api_permission_checks: {ran} passed, {skipped} skipped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_accepts_exactly_the_token_headers_pve_accepts() {
    let Some(cases) = vectors() else { return };
    let (mut ran, mut bad) = (0, Vec::new());
    for case in &cases {
        for check in case["token_auth_checks"].as_array().into_iter().flatten() {
            for version in ["8.4", "9.1"] {
                ran += 1;
                let lab = start(config(case, version)).await;
                let header = check["authorization_header"].as_str().unwrap_or_default();
                let api = Api::new(&lab, Auth::Header(header.to_owned()));
                let a = api.api("GET", "/version", &[]).await;
                let want_ok = check["expect_ok"].as_bool().unwrap_or(false);
                let good = if want_ok { a.status == 200 } else { a.status == 401 };
                // The authenticated id the lab logged must be the full token id PVE reports.
                let logged = lab.request_log().last().and_then(|r| r.authid.clone());
                let id_ok = !want_ok || logged.as_deref() == check["expect_authid"].as_str();
                if !good || !id_ok {
                    bad.push(format!("[{version}] {header}: {} (logged {logged:?}), want ok={want_ok}", a.status));
                }
            }
        }
    }
    assert!(ran > 0);
    assert!(bad.is_empty(), "{} of {ran} token headers judged unlike PVE:\n{}", bad.len(), bad.join("\n"));
    eprintln!("token_auth_checks: {ran} passed");
}
