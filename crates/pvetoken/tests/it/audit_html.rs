//! The HTML audit report opened in headless Chromium (Debian `chromium`, installed by
//! scripts/install-test-deps.sh): every finding has its row in the rendered DOM, the inline script ran (the
//! tables are sortable) and sorting works.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::audit::{every_finding_cfg, now, run, write_cfg};
use crate::support::{SKIP_THIRD_PARTY, TempDir, run_bounded};

fn chromium() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|dir| dir.join("chromium")).find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.is_file()))
}

/// The DOM after the page's scripts ran.
fn dump_dom(browser: &PathBuf, url: &str, profile: &TempDir) -> String {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(["--dump-dom", url]);
    let out = run_bounded(&mut cmd, Duration::from_secs(90));
    assert!(out.status.success(), "chromium failed: {}", out.both());
    out.stdout
}

/// `attr="value"` inside one tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].replace("&amp;", "&"))
}

/// The opening `<tr ...>` tags of the findings rows, in DOM order.
fn finding_rows(dom: &str) -> Vec<(String, String, String)> {
    dom.match_indices("<tr class=\"finding")
        .filter_map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>')?];
            Some((attr(tag, "data-id")?, attr(tag, "data-subject")?, attr(tag, "data-severity")?))
        })
        .collect()
}

#[test]
fn html_report_shows_every_finding_as_a_sortable_row_in_chromium() {
    let Some(browser) = chromium() else {
        if std::env::var(SKIP_THIRD_PARTY).is_ok_and(|v| v == "1") {
            #[expect(clippy::print_stderr, reason = "a skipped test says why, in the test's own output")]
            {
                eprintln!("skipped: chromium is not installed ({SKIP_THIRD_PARTY}=1)");
            }
            return;
        }
        panic!("chromium is not installed: run scripts/install-test-deps.sh (or set {SKIP_THIRD_PARTY}=1 to skip)");
    };
    let dir = TempDir::new("audit-html");
    let cfg = write_cfg(dir.path(), &every_finding_cfg(now()));
    let cfg = cfg.to_str().expect("utf-8");
    let html = dir.path().join("report.html");
    let html_arg = html.to_str().expect("utf-8");
    // JSON on stdout and the HTML file from the same run.
    let out = run(&["audit", "--user-cfg", cfg, "--output", "json", "--html-out", html_arg, "--fail-on", "none"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = out.json();
    let expected: Vec<(String, String, String)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().expect("string field").to_owned();
            (s("id"), s("subject"), s("severity"))
        })
        .collect();
    assert!(expected.len() >= 15, "the fixture provokes many findings: {expected:?}");

    let profile = TempDir::new("chromium-profile");
    let dom = dump_dom(&browser, &format!("file://{}", html.display()), &profile);
    assert!(dom.contains("data-sortable=\"ready\""), "the inline script did not run: {dom}");
    let rows = finding_rows(&dom);
    assert_eq!(rows, expected, "rows in the rendered page, in report order");
    for id in ["root-token-full", "token-administrator", "token-privsep-off", "token-no-effective-rights"] {
        assert!(rows.iter().any(|(rid, _, _)| rid == id), "{id} row missing");
    }
    assert!(dom.contains("id=\"count-critical\">critical: 2<"), "severity counts shown");

    // Sorting on load by the severity column, descending: info rows first, critical last.
    let sorted = dump_dom(&browser, &format!("file://{}#sort=findings:0:desc", html.display()), &profile);
    let severities: Vec<String> = finding_rows(&sorted).into_iter().map(|(_, _, sev)| sev).collect();
    assert_eq!(severities.first().map(String::as_str), Some("info"), "{severities:?}");
    assert_eq!(severities.last().map(String::as_str), Some("critical"), "{severities:?}");
    assert_eq!(severities.len(), expected.len());
    assert!(sorted.contains("aria-sort=\"descending\""), "the header shows the sort");
}
