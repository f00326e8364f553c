//! `pvetoken plan` / `apply` against three labs at once (8.4, 9.1, 9.2) declared in one file: plan, apply, plan
//! again shows nothing; drift made by hand through the API shows in the plan and apply repairs it; bad files are
//! refused before any request.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use crate::lifecycle::{Lab, Run, saved_in};

struct Fleet {
    labs: Vec<(String, Lab)>,
    file: PathBuf,
}

impl Fleet {
    fn start() -> Fleet {
        let labs: Vec<(String, Lab)> =
            ["8.4", "9.1", "9.2"].iter().map(|v| (format!("pve{}", v.replace('.', "")), Lab::start(v))).collect();
        let dir = labs[0].1.dir().to_path_buf();
        let mut toml = String::new();
        for (name, lab) in &labs {
            toml.push_str(&lab.cluster_section(name));
            for profile in ["packer", "ansible"] {
                toml.push_str(&format!(
                    "[[tokens]]\ncluster = \"{name}\"\nid = \"automation@pve!{profile}\"\nprofile = \"{profile}\"\n\
                     token_file = \"{}\"\nexpire = \"90d\"\n\n",
                    dir.join(format!("{name}-{profile}.env")).display()
                ));
            }
        }
        let file = dir.join("pvetoken.toml");
        std::fs::write(&file, toml).unwrap();
        Fleet { labs, file }
    }

    fn run(&self, args: &[&str]) -> Run {
        let file = self.file.display().to_string();
        let mut all = args.to_vec();
        all.extend(["-f", file.as_str()]);
        self.labs[0].1.pvetoken_env(&all, &[])
    }

    fn plan(&self) -> Run {
        self.run(&["plan", "--detailed-exitcode"])
    }
}

#[test]
fn three_clusters_plan_apply_and_plan_again_shows_no_changes_then_drift_is_shown_and_repaired() {
    let fleet = Fleet::start();
    let first = fleet.plan();
    assert_eq!(first.code, 2, "changes pending: {}", first.both());
    assert!(first.stdout.contains("+ token: automation@pve!packer"), "{}", first.stdout);
    assert!(first.stdout.contains("cluster pve84 (PVE 8.4.1)") && first.stdout.contains("cluster pve92 (PVE 9.2.0)"));

    let apply = fleet.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.both());
    for (name, lab) in &fleet.labs {
        let mut tokens = lab.server_tokens("automation@pve");
        tokens.sort();
        assert_eq!(tokens, ["ansible", "packer"], "{name}");
        for profile in ["packer", "ansible"] {
            let file = fleet.file.with_file_name(format!("{name}-{profile}.env"));
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
    let again = fleet.plan();
    assert_eq!(again.code, 0, "no changes after apply: {}", again.both());
    assert!(again.stdout.contains("0 to add, 0 to change, 0 to destroy"), "{}", again.stdout);

    // Drift by hand: an extra privilege in a managed role (9.2), an ACL entry nobody declared (8.4), a deleted
    // token (9.1), a token file made readable by others (9.2).
    let (_, lab84) = &fleet.labs[0];
    let (_, lab91) = &fleet.labs[1];
    let (name92, lab92) = &fleet.labs[2];
    let role = lab92.root().get("/access/roles/Token-packer", &[]).unwrap();
    let mut privs: Vec<String> = role.as_object().unwrap().keys().cloned().collect();
    privs.push("Sys.Modify".to_owned());
    lab92.root().put("/access/roles/Token-packer", &[("privs", &privs.join(","))]).unwrap();
    lab84
        .root()
        .put("/access/acl", &[("path", "/nodes"), ("roles", "PVEAuditor"), ("tokens", "automation@pve!ansible")])
        .unwrap();
    lab91.root().delete("/access/users/automation@pve/token/packer").unwrap();
    let readable = fleet.file.with_file_name(format!("{name92}-ansible.env"));
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();

    let drift = fleet.plan();
    assert_eq!(drift.code, 2, "{}", drift.both());
    for expected in
        ["~ role Token-packer: -Sys.Modify", "- acl /nodes: PVEAuditor → automation@pve!ansible", "mode 644 → 600"]
    {
        assert!(drift.stdout.contains(expected), "missing `{expected}`:\n{}", drift.stdout);
    }
    assert!(drift.stdout.matches("+ token: automation@pve!packer").count() == 1, "{}", drift.stdout);
    let repair = fleet.run(&["apply", "--auto-approve"]);
    assert_eq!(repair.code, 0, "{}", repair.both());
    let clean = fleet.plan();
    assert_eq!(clean.code, 0, "drift repaired: {}", clean.both());
    let role = lab92.root().get("/access/roles/Token-packer", &[]).unwrap();
    assert!(role.get("Sys.Modify").is_none(), "{role}");
    assert_eq!(lab91.server_tokens("automation@pve"), ["ansible", "packer"]);
    // The re-created 9.1 token works with the secret apply saved.
    let saved = std::fs::read_to_string(fleet.file.with_file_name("pve91-packer.env")).unwrap();
    let token = pvetoken_render::TokenFile::parse(&saved).unwrap();
    use pvetoken_api::ExposeSecret as _;
    assert!(
        lab91.as_token(token.token_id.as_str(), token.secret.expose_secret()).get("/access/permissions", &[]).is_ok()
    );
}

#[test]
fn a_down_cluster_fails_alone_and_bad_files_are_refused_before_any_request() {
    let fleet = Fleet::start();
    // A fourth cluster nobody listens on: it fails, the others are planned.
    let mut text = std::fs::read_to_string(&fleet.file).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let pass = fleet.file.with_file_name("pve84.pass");
    text.push_str(&format!(
        "[clusters.down]\nurl = \"https://127.0.0.1:{port}\"\nfingerprint = \"{}\"\npassword_file = \"{}\"\n\n\
         [[tokens]]\ncluster = \"down\"\nid = \"automation@pve!packer\"\nprofile = \"packer\"\ntoken_file = \"{}\"\n",
        fleet.labs[0].1.lab().ready().fingerprint_sha256,
        pass.display(),
        fleet.file.with_file_name("down.env").display()
    ));
    std::fs::write(&fleet.file, &text).unwrap();
    let plan = fleet.plan();
    assert_eq!(plan.code, 1, "an error with --detailed-exitcode is 1: {}", plan.both());
    assert!(plan.stdout.contains("cluster down") && plan.stdout.contains("  ! "), "{}", plan.stdout);
    assert!(plan.stdout.contains("cluster pve92 (PVE 9.2.0)") && plan.stdout.contains("1 cluster(s) failed"));

    for (bad, expected) in [
        (
            "[[tokens]]\ncluster = \"pve84\"\nid = \"automation@pve-packer\"\nprofile = \"packer\"\ntoken_file = \"/x\"\n",
            "has no `!`",
        ),
        ("[clusters.a]\nurl = \"https://x\"\npassword_file = \"/p\"\ncolour = \"red\"\n", "unknown field `colour`"),
        (
            "[[tokens]]\ncluster = \"nowhere\"\nid = \"a@pve!tt\"\nprofile = \"packer\"\ntoken_file = \"/x\"\n",
            "not declared",
        ),
        (
            "[clusters.a]\nurl = \"https://x\"\n[[tokens]]\ncluster = \"a\"\nid = \"a@pve!tt\"\nprofile = \"nope\"\ntoken_file = \"/x\"\n",
            "nope",
        ),
        ("[clusters.a]\nurl = \"https://x\"\n", "exactly one of password_file"),
    ] {
        std::fs::write(&fleet.file, bad).unwrap();
        let run = fleet.run(&["plan"]);
        assert_eq!(run.code, 2, "{bad}: {}", run.both());
        assert!(run.stderr.contains(expected), "{bad}: {}", run.both());
        assert!(run.stderr.contains("pvetoken.toml"), "names the file: {}", run.both());
    }
}

#[test]
fn a_token_due_for_rotation_is_rotated_once_and_its_lifetime_starts_again() {
    for version in ["9.1", "9.2"] {
        let lab = Lab::start(version);
        let dir = lab.dir();
        let token_file = dir.join("packer.env");
        let decl = dir.join("pvetoken.toml");
        let cluster = lab.cluster_section("lab");
        let write = |expire: &str| {
            let token = format!(
                "[[tokens]]\ncluster = \"lab\"\nid = \"automation@pve!packer\"\nprofile = \"packer\"\n\
                 token_file = \"{}\"\nexpire = \"{expire}\"\nrotate_if_expiring_within = \"14d\"\n",
                token_file.display()
            );
            std::fs::write(&decl, format!("{cluster}{token}")).unwrap();
        };
        // Created with 10 days to live: due at once.
        write("10d");
        assert_eq!(lab.apply(&decl).code, 0);
        let before = std::fs::read_to_string(&token_file).unwrap();
        // From now on the declared lifetime is 90 days.
        write("90d");
        let due = lab.plan(&decl);
        assert_eq!(due.code, 2, "{version}: {}", due.both());
        assert!(due.stdout.contains("expires within 14d: rotate"), "{version}: {}", due.stdout);
        let apply = lab.apply(&decl);
        assert_eq!(apply.code, 0, "{version}: {}", apply.both());
        let after = std::fs::read_to_string(&token_file).unwrap();
        assert_ne!(before, after, "{version}: a new secret");
        let clean = lab.plan(&decl);
        assert_eq!(clean.code, 0, "{version}: rotated once, not again: {}", clean.both());
        let (id, secret) = saved_in(&token_file).unwrap();
        assert!(lab.as_token(&id, &secret).get("/version", &[]).is_ok());
        assert_eq!(lab.server_tokens("automation@pve").len(), 1, "{version}: the old token is gone");
    }
}

#[test]
fn undeclared_tokens_of_managed_users_are_reported_and_deleted_only_with_prune() {
    let fleet = Fleet::start();
    assert_eq!(fleet.run(&["apply", "--auto-approve"]).code, 0);
    let (_, lab) = &fleet.labs[2];
    lab.root().post("/access/users/automation@pve/token/forgotten", &[("privsep", "1")]).unwrap();
    let plan = fleet.run(&["plan"]);
    assert!(plan.stdout.contains("? automation@pve!forgotten: not declared"), "{}", plan.stdout);
    assert_eq!(fleet.run(&["apply", "--auto-approve"]).code, 0);
    assert!(lab.server_tokens("automation@pve").contains(&"forgotten".to_owned()), "kept without --prune");
    let pruned = fleet.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(pruned.code, 0, "{}", pruned.both());
    assert!(pruned.stderr.contains("automation@pve!forgotten (pruned)"), "{}", pruned.both());
    assert_eq!(lab.server_tokens("automation@pve"), ["ansible", "packer"]);
}

/// `apply` killed (SIGKILL) at each step of a fresh apply of two tokens: just before the role, the user, each
/// token's creation, the first ACL entry and the verification as the token take effect (a delay fault holds that
/// request; the kill lands while apply waits for it). After each kill: no token on the server without its secret
/// saved, no file in the directory readable by others; the rerun converges and a plan shows nothing to change.
#[test]
fn apply_killed_at_each_step_leaves_no_token_without_its_secret_and_the_rerun_converges() {
    use std::process::Command;
    let points: [(&str, &str); 6] = [
        ("POST", "/access/roles"),
        ("POST", "/access/users"),
        ("POST", "/access/users/*/token/packer"),
        ("PUT", "/access/acl"),
        ("GET", "/access/permissions"),
        ("POST", "/access/users/*/token/ansible"),
    ];
    for (method, path) in points {
        let lab = Lab::start("8.4");
        let dir = lab.dir().join("declared");
        std::fs::create_dir_all(&dir).unwrap();
        let mut toml = lab.cluster_section("lab");
        for profile in ["packer", "ansible"] {
            toml.push_str(&format!(
                "\n[[tokens]]\ncluster = \"lab\"\nid = \"automation@pve!{profile}\"\nprofile = \"{profile}\"\n\
                 token_file = \"{}\"\n",
                dir.join(format!("{profile}.env")).display()
            ));
        }
        let decl = lab.dir().join("pvetoken.toml");
        std::fs::write(&decl, toml).unwrap();
        let decl_arg = decl.display().to_string();
        let point = format!("{method} {path}");

        lab.fault(pvetoken_lab::FaultSpec::on(method, path).delay_ms(30_000));
        let mut apply = Command::new(env!("CARGO_BIN_EXE_pvetoken"));
        apply.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("HOME", lab.dir().join("home"));
        lab.kill_when_held(apply.args(["apply", "-f", &decl_arg, "--auto-approve"]), &format!("apply at {point}"));

        // No token without its secret: every token on the server is in the file declared for it, and works.
        for name in lab.server_tokens("automation@pve") {
            let (id, secret) = saved_in(&dir.join(format!("{name}.env")))
                .unwrap_or_else(|| panic!("{point}: automation@pve!{name} is on the server without its token file"));
            assert!(
                lab.as_token(&id, &secret).get("/access/permissions", &[]).is_ok(),
                "{point}: the saved secret of {name} is refused"
            );
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let mode = std::fs::symlink_metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{point}: {} is readable by others ({mode:o})", path.display());
        }

        let rerun = lab.apply(&decl);
        assert_eq!(rerun.code, 0, "{point}: the rerun converges: {}", rerun.both());
        let plan = lab.plan(&decl);
        assert_eq!(plan.code, 0, "{point}: nothing left to change: {}", plan.both());
        assert_eq!(lab.server_tokens("automation@pve"), ["ansible", "packer"], "{point}");
    }
}
