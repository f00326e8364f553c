//! `pvetoken lint` on a corpus of our own (`tests/lint-corpus/`) laid out like the home-infra repository: every
//! old-form line of the design notes (marked `# lint-expect: RULE`) is reported with exactly that rule, and none of
//! the corrected files is.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{TempDir, repo_root};

fn corpus(tree: &str) -> PathBuf {
    repo_root().join("tests/lint-corpus").join(tree)
}

fn lint(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .args(args)
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .output()
        .expect("run pvetoken lint")
}

/// `(relative path, line, rule)` of every finding of a JSON report.
fn findings(output: &Output) -> BTreeSet<(String, usize, String)> {
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("JSON report ({e}): {}", String::from_utf8_lossy(&output.stdout)));
    report["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().expect("path").to_owned(),
                usize::try_from(f["line"].as_u64().expect("line")).expect("small"),
                f["rule"].as_str().expect("rule").to_owned(),
            )
        })
        .collect()
}

/// Every file of a corpus tree, relative to `root`.
fn corpus_files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).expect("inside").to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The `# lint-expect: a,b` markers of a tree.
fn expected(root: &Path) -> BTreeSet<(String, usize, String)> {
    let mut out = BTreeSet::new();
    for relative in corpus_files(root) {
        let text = std::fs::read_to_string(root.join(&relative)).expect("read");
        for (index, line) in text.lines().enumerate() {
            if let Some((_, rules)) = line.split_once("lint-expect:") {
                for rule in rules.split(',') {
                    out.insert((relative.clone(), index + 1, rule.trim().to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn every_old_form_line_is_reported_with_its_rule_and_nothing_else() {
    let root = corpus("before");
    let output = lint(&["--output", "json", "lint", "."], &root);
    assert_eq!(output.status.code(), Some(1), "findings exit 1: {}", String::from_utf8_lossy(&output.stderr));
    let want = expected(&root);
    assert!(want.len() >= 40, "the corpus keeps every old form ({} markers)", want.len());
    let got = findings(&output);
    let missing: Vec<_> = want.difference(&got).collect();
    let unexpected: Vec<_> = got.difference(&want).collect();
    assert!(missing.is_empty() && unexpected.is_empty(), "missing: {missing:#?}\nunexpected: {unexpected:#?}");
}

#[test]
fn corrected_files_are_clean_at_every_severity() {
    let root = corpus("after");
    let output = lint(&["--output", "json", "lint", "--fail-on", "info", "."], &root);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(findings(&output), BTreeSet::new());
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["files_scanned"], corpus_files(&root).len(), "every corpus file is read");
}

#[test]
fn before_and_after_trees_hold_the_same_files() {
    assert_eq!(corpus_files(&corpus("before")), corpus_files(&corpus("after")));
}

#[test]
fn git_target_and_node_modules_directories_are_not_walked() {
    let dir = TempDir::new("lint");
    for skipped in [".git", "target", "node_modules/pkg", ".terraform"] {
        let path = dir.path().join(skipped);
        std::fs::create_dir_all(&path).expect("mkdir");
        std::fs::write(path.join("leak.env"), "export PROXMOX_TOKEN=\"PVEAPIToken=a@pve!bb=c\"\n").expect("write");
    }
    std::fs::write(dir.path().join("app.env"), "export PROXMOX_TOKEN=\"PVEAPIToken=a@pve!bb=c\"\n").expect("write");
    let output = lint(&["--output", "json", "lint", "."], dir.path());
    let got = findings(&output);
    assert_eq!(got, BTreeSet::from([("app.env".to_owned(), 1, "pveapitoken-prefix".to_owned())]));
}

#[test]
fn text_output_is_compiler_style_with_a_fix_line() {
    let root = corpus("before");
    let output = lint(&["lint", "packer/debian/debian.pkr.hcl"], &root);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let first = lines.next().expect("a finding");
    assert!(first.starts_with("packer/debian/debian.pkr.hcl:1:1: packer-clone-full-clone: warning: "), "{first}");
    assert!(lines.next().expect("fix line").trim_start().starts_with("fix: set `full_clone = true`"), "{text}");
    assert!(
        text.contains("packer/debian/debian.pkr.hcl:4:31: pveapitoken-prefix: error: "),
        "line and column of the value: {text}"
    );
    assert!(!text.contains("terraform-token=secret"), "values are never echoed: {text}");
}

#[test]
fn pve8_roles_are_checked_for_the_pve9_privilege_names_instead() {
    let after = lint(&["--output", "json", "lint", "--pve-version", "8", "."], &corpus("after"));
    let rules: BTreeSet<String> = findings(&after).into_iter().map(|(_, _, rule)| rule).collect();
    assert_eq!(rules, BTreeSet::from(["privilege-unknown-in-pve8".to_owned()]));
    let before = lint(&["--output", "json", "lint", "--pve-version", "8", "."], &corpus("before"));
    assert!(!findings(&before).iter().any(|(_, _, rule)| rule == "privilege-removed-in-pve9"));
}

#[test]
fn info_findings_alone_do_not_fail_unless_asked() {
    let dir = TempDir::new("lint");
    std::fs::write(dir.path().join("main.tf"), "provider \"proxmox\" {\n  insecure = true\n}\n").expect("write");
    assert_eq!(lint(&["lint", "."], dir.path()).status.code(), Some(0));
    assert_eq!(lint(&["lint", "--fail-on", "info", "."], dir.path()).status.code(), Some(1));
}

#[test]
fn comments_and_expressions_are_not_judged() {
    let dir = TempDir::new("lint");
    std::fs::write(
        dir.path().join(".envrc"),
        "# export PROXMOX_TOKEN=\"PVEAPIToken=a@pve!b=c\"\nexport PROXMOX_USERNAME=\"$USER_AT_REALM\"\n\
         export PM_API_TOKEN_ID=\"${PM_USER}!${PM_TOKEN}\"\n",
    )
    .expect("write");
    let output = lint(&["--output", "json", "lint", "."], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn a_path_that_cannot_be_read_is_exit_2_after_reporting_the_rest() {
    let root = corpus("before");
    let output = lint(&["lint", ".envrc", "/nonexistent/pvetoken-lint"], &root);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/pvetoken-lint"));
    assert!(String::from_utf8_lossy(&output.stdout).contains(".envrc:5:"), "findings of readable files still shown");
}
