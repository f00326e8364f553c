//! Files pvetoken trusts: token files, sink records, pending markers and password files must be regular files of
//! ours (or root's), private, not links; anything else is refused before a request leaves, or named when kept.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::lifecycle::Lab;

fn chown_nobody(path: &Path) {
    let status = std::process::Command::new("chown").arg("65534").arg(path).status().unwrap();
    assert!(status.success(), "chown (the tests run as root)");
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

#[test]
fn a_token_file_owned_by_someone_else_is_refused_before_any_request_and_doctor_says_so() {
    if !is_root() {
        // chown to another uid needs root; CI and the development machine run the suite as root.
        return;
    }
    let lab = Lab::start("9.1");
    assert_eq!(lab.create("packer", &[]).code, 0);
    chown_nobody(&lab.token_file());
    lab.clear_log();
    for command in ["verify", "rotate"] {
        let run = lab.with_token_file(command, &[]);
        assert_eq!(run.code, 2, "{command}: {}", run.both());
        assert!(run.stderr.contains("owned by uid 65534"), "{command}: {}", run.both());
    }
    let run = lab.with_token_file("doctor", &["--output", "json"]);
    assert_ne!(run.code, 0, "{}", run.both());
    assert!(
        run.stdout.contains("token-file-unreadable") && run.stdout.contains("owned by uid 65534"),
        "{}",
        run.both()
    );
    assert!(lab.requests().is_empty(), "no request left: {:?}", lab.requests());
}

#[test]
fn a_password_file_readable_by_others_or_owned_by_someone_else_is_refused() {
    let lab = Lab::start("9.1");
    let password = lab.dir().join("root.pass");
    std::fs::write(&password, format!("{}\n", lab.lab().ready().root_password)).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let pass = password.display().to_string();
    let create = || lab.create_env("packer", &["--password-file", &pass], &[]);
    let run = create();
    assert_eq!(run.code, 2, "{}", run.both());
    assert!(run.stderr.contains("mode 0644") && run.stderr.contains("chmod 600"), "{}", run.both());
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    if is_root() {
        chown_nobody(&password);
        let run = create();
        assert_eq!(run.code, 2, "{}", run.both());
        assert!(run.stderr.contains("owned by uid 65534"), "{}", run.both());
        std::process::Command::new("chown").arg("0").arg(&password).status().unwrap();
    }
    assert!(lab.server_tokens("automation@pve").is_empty());
    let run = create();
    assert_eq!(run.code, 0, "a private password file of ours works: {}", run.both());
}

/// The Semaphore password (and API token) file of `register semaphore` is held to the same rule as the PVE one:
/// readable by others, it is refused before Semaphore is asked anything.
#[test]
fn a_semaphore_password_file_readable_by_others_is_refused_before_any_request() {
    let lab = Lab::start("9.2");
    assert_eq!(lab.create("ansible", &[]).code, 0);
    let ready = lab.lab().ready();
    let password = lab.dir().join("semaphore.pass");
    std::fs::write(&password, format!("{}\n", ready.semaphore_password)).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o640)).unwrap();
    let refused = lab.register_semaphore_with_password_file(&password);
    assert_eq!(refused.code, 2, "{}", refused.both());
    assert!(refused.stderr.contains("mode 0640") && refused.stderr.contains("chmod 600"), "{}", refused.both());
    assert!(!refused.stderr.contains(&ready.semaphore_password), "{}", refused.both());
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let registered = lab.register_semaphore_with_password_file(&password);
    assert_eq!(registered.code, 0, "{}", registered.both());
    assert!(registered.stdout.starts_with("created:"), "the refused run created nothing: {}", registered.both());
}

#[test]
fn a_planted_pending_marker_never_makes_create_replace_an_existing_token() {
    let lab = Lab::start("8.4");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let (id, secret) = lab.saved().unwrap();
    // The secret is lost locally; someone plants a marker claiming the token as an interrupted create of theirs.
    std::fs::remove_file(lab.token_file()).unwrap();
    let marker = lab.token_file().with_file_name("token.env.pending");
    std::fs::write(&marker, format!("{id}\n")).unwrap();
    std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = lab.create("packer", &[]);
    assert_eq!(run.code, 2, "{}", run.both());
    assert!(run.stderr.contains("does not hold its secret"), "{}", run.both());
    assert!(lab.as_token(&id, &secret).get("/access/permissions", &[]).is_ok(), "the token was not replaced");
    if is_root() {
        // A private marker, but someone else's.
        std::fs::write(&marker, format!("{id}\n")).unwrap();
        std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o600)).unwrap();
        chown_nobody(&marker);
        let run = lab.create("packer", &[]);
        assert_eq!(run.code, 2, "{}", run.both());
        assert!(lab.as_token(&id, &secret).get("/access/permissions", &[]).is_ok(), "still not replaced");
    }
}

#[test]
fn a_symlinked_token_file_is_refused_by_rotate_and_kept_with_a_reason_by_revoke() {
    let lab = Lab::start("9.1");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let (id, secret) = lab.saved().unwrap();
    let real = lab.dir().join("real-token.env");
    std::fs::rename(lab.token_file(), &real).unwrap();
    std::os::unix::fs::symlink(&real, lab.token_file()).unwrap();
    let run = lab.with_token_file("rotate", &[]);
    assert_eq!(run.code, 2, "{}", run.both());
    assert!(run.stderr.contains("symbolic link"), "{}", run.both());
    assert!(std::fs::symlink_metadata(lab.token_file()).unwrap().file_type().is_symlink(), "the link stays");
    assert!(lab.as_token(&id, &secret).get("/access/permissions", &[]).is_ok(), "nothing rotated");

    let file = lab.token_file().display().to_string();
    let mut args = vec!["revoke".to_owned(), id.clone(), "--token-file".into(), file];
    args.extend(lab.connection());
    let run = lab.pvetoken(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(run.code, 0, "{}", run.both());
    assert!(run.stderr.contains("kept") && run.stderr.contains("symbolic link"), "{}", run.both());
    assert!(real.exists(), "the target is not touched");
}

#[test]
fn revoke_names_a_readable_token_file_it_keeps() {
    let lab = Lab::start("9.1");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let (id, _) = lab.saved().unwrap();
    std::fs::set_permissions(lab.token_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = lab.token_file().display().to_string();
    let mut args = vec!["revoke".to_owned(), id, "--token-file".into(), file];
    args.extend(lab.connection());
    let run = lab.pvetoken(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(run.code, 0, "{}", run.both());
    assert!(run.stderr.contains("kept") && run.stderr.contains("mode 0644"), "{}", run.both());
}

#[test]
fn render_out_streams_into_fifos_and_devices_and_never_replaces_them() {
    let lab = Lab::start("9.1");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let file = lab.token_file().display().to_string();
    let render = |out: &str| lab.pvetoken(&["render", "--format", "env", "--token-file", &file, "--out", out]);
    // A FIFO: its reader gets the content; it is still a FIFO afterwards.
    let fifo = lab.dir().join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let run = render(&fifo.display().to_string());
    assert_eq!(run.code, 0, "{}", run.both());
    assert!(reader.join().unwrap().contains("PROXMOX_TOKEN_ID"), "the reader got the token file");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
    // /dev/null takes it and stays a device; /dev/full is an error, and stays a device.
    assert_eq!(render("/dev/null").code, 0);
    let run = render("/dev/full");
    assert_ne!(run.code, 0, "{}", run.both());
    assert!(run.stderr.contains("/dev/full"), "{}", run.both());
    for device in ["/dev/null", "/dev/full"] {
        assert!(std::fs::metadata(device).unwrap().file_type().is_char_device(), "{device} replaced");
    }
    // A link to a regular file is refused and both stay as they were.
    let target = lab.dir().join("target.env");
    std::fs::write(&target, "old\n").unwrap();
    let link = lab.dir().join("link.env");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let run = render(&link.display().to_string());
    assert_eq!(run.code, 2, "{}", run.both());
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old\n");
}

#[test]
fn two_creates_of_the_same_token_at_once_leave_one_token_whose_secret_is_saved() {
    for version in ["8.4", "9.1"] {
        let lab = Lab::start(version);
        // Slow token creation so that the two runs overlap where the lost-secret race was.
        lab.fault(pvetoken_lab::FaultSpec::on("POST", "/access/users/*/token/*").delay_ms(700));
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| lab.create("packer", &[]));
            let b = scope.spawn(|| lab.create("packer", &[]));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(a.code, 0, "{version}: {}", a.both());
        assert_eq!(b.code, 0, "{version}: {}", b.both());
        assert_eq!(lab.server_tokens("automation@pve"), ["packer"], "{version}");
        lab.assert_no_token_without_its_secret("automation@pve", version);
    }
}

#[test]
fn a_profile_with_a_bad_path_or_privilege_is_refused_before_the_server_is_touched() {
    let lab = Lab::start("9.1");
    let cases = [
        ("/vmz/100", "VM.Audit", "is not an ACL path PVE accepts"),
        ("/vms/100", "VM.Audti", "is not a privilege of any PVE release"),
        ("/vms/100", "vm.audit", "is not a privilege of any PVE release"),
    ];
    for (path, privilege, message) in cases {
        let profile = lab.dir().join("bad.toml");
        std::fs::write(
            &profile,
            format!(
                "name = \"bad\"\ndescription = \"test\"\n[[grant]]\npath = \"{path}\"\n\
                 privileges = [{{ name = \"{privilege}\", reason = \"test\" }}]\n"
            ),
        )
        .unwrap();
        lab.clear_log();
        let run = lab.create(&profile.display().to_string(), &[]);
        assert_eq!(run.code, 2, "{path} {privilege}: {}", run.both());
        assert!(run.stderr.contains(message), "{path} {privilege}: {}", run.both());
        assert!(run.stderr.contains("bad.toml"), "names the file: {}", run.both());
        assert!(lab.requests().is_empty(), "nothing sent: {:?}", lab.requests());
    }
}

#[test]
fn endless_inputs_get_a_size_limit_error_instead_of_a_read_until_out_of_memory() {
    let lab = Lab::start("9.1");
    for args in [
        vec!["audit", "--user-cfg", "/dev/zero"],
        vec!["acl", "normalize", "--user-cfg", "/dev/zero"],
        vec!["lint", "/dev/zero"],
    ] {
        let run = lab.pvetoken(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.both());
        assert!(run.stderr.contains("larger than"), "{args:?}: {}", run.both());
    }
}
