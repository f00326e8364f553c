//! What the Debian package ships is generated from the clap definitions and stays in step with `--help`: one man
//! page per subcommand (and per nested subcommand), completions that know every subcommand and flag, and a
//! `--version` that names the releases it knows. The unit files are checked for the hardening they promise.

use std::collections::BTreeSet;
use std::process::Command;

fn pvetoken(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pvetoken")).args(args).output().expect("pvetoken runs");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The subcommand names `--help` lists under "Commands:" (without `help`).
fn commands_in_help(args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.push("--help");
    let (_, help) = pvetoken(&all);
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        // A command starts its line after two spaces; wrapped descriptions are indented further.
        .filter(|line| !line[2..].starts_with(' '))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

/// Every command path (`["register", "openbao"]`, ...) reachable from the top.
fn command_paths() -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = queue.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        for name in commands_in_help(&args) {
            let mut child = path.clone();
            child.push(name);
            queue.push(child.clone());
            paths.push(child);
        }
    }
    paths
}

#[test]
fn one_man_page_per_subcommand_and_completions_know_every_command_and_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _) = pvetoken(&["man", "--out-dir", dir.path().to_str().expect("utf-8")]);
    assert_eq!(code, 0);
    let pages: BTreeSet<String> =
        std::fs::read_dir(dir.path()).expect("pages").filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    let paths = command_paths();
    assert!(paths.len() >= 20, "{paths:?}");
    let mut expected: BTreeSet<String> = paths.iter().map(|p| format!("pvetoken-{}.1", p.join("-"))).collect();
    expected.insert("pvetoken.1".to_owned());
    assert_eq!(pages, expected, "man pages and --help disagree");
    let rotate = std::fs::read_to_string(dir.path().join("pvetoken-rotate.1")).expect("rotate page");
    assert!(rotate.contains("if\\-expiring\\-within"), "the rotate page documents its flags");

    let (code, bash) = pvetoken(&["completions", "bash"]);
    assert_eq!(code, 0);
    for path in &paths {
        assert!(bash.contains(path.last().expect("name").as_str()), "bash completion lacks {path:?}");
    }
    for flag in ["--if-expiring-within", "--if-older-than", "--token-file", "--output"] {
        assert!(bash.contains(flag), "bash completion lacks {flag}");
    }
    for shell in ["zsh", "fish"] {
        let (code, script) = pvetoken(&["completions", shell]);
        assert_eq!(code, 0);
        assert!(script.contains("register") && script.contains("openbao"), "{shell}");
    }
    let (code, _) = pvetoken(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
}

#[test]
fn version_names_the_release_the_commit_and_what_it_knows() {
    let (code, text) = pvetoken(&["--version"]);
    assert_eq!(code, 0);
    assert!(text.starts_with(&format!("pvetoken {}", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains("9.2") && text.contains("libpve-access-control 9.1.1") && text.contains("Semaphore"));
    let (code, json) = pvetoken(&["--version", "--output", "json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    let releases: Vec<&str> =
        json["pve_releases"].as_array().expect("list").iter().filter_map(|r| r["release"].as_str()).collect();
    assert!(releases.contains(&"7.4") && releases.contains(&"8.4") && releases.contains(&"9.2"), "{releases:?}");
    let (_, same) = pvetoken(&["version", "--output", "json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(same.trim()).expect("json"), json);
}

#[test]
fn the_rotate_unit_is_hardened_and_runs_what_the_cli_accepts() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd");
    let service = std::fs::read_to_string(root.join("pvetoken-rotate@.service")).expect("service");
    for line in ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only", "PrivateTmp=yes"] {
        assert!(service.lines().any(|l| l == line), "missing {line}");
    }
    let exec = service.lines().find_map(|l| l.strip_prefix("ExecStart=/usr/bin/pvetoken ")).expect("ExecStart");
    // The flags the unit passes exist (clap would refuse the unit's command line otherwise).
    let args: Vec<&str> = exec.split_whitespace().filter(|a| !a.starts_with('$') && !a.starts_with('%')).collect();
    let (_, help) = pvetoken(&["rotate", "--help"]);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag), "rotate --help lacks {flag} used by the unit");
    }
    let timer = std::fs::read_to_string(root.join("pvetoken-rotate@.timer")).expect("timer");
    assert!(timer.contains("OnCalendar=daily") && timer.contains("WantedBy=timers.target"));
    // The apply unit runs only with a declaration and passes flags `apply` has.
    let apply = std::fs::read_to_string(root.join("pvetoken-apply.service")).expect("apply service");
    assert!(
        apply.contains("ConditionPathExists=/etc/pvetoken/pvetoken.toml") && apply.contains("ProtectSystem=strict")
    );
    let (_, help) = pvetoken(&["apply", "--help"]);
    assert!(help.contains("--auto-approve") && help.contains("--file"));
}
