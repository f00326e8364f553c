//! The coreutils a lab guest has (`true`, `false`, `touch`, `mkdir`, `chmod`, `chown`, `stat`, `cat`), as GNU
//! coreutils on Debian answer them, run by the guest agent's `exec` on the guest model.

use std::collections::BTreeMap;

use super::{
    Errno, ExecResult, GUEST_GROUPS, GUEST_USERS, GuestFile, MKDIR_DEFAULT_MODE, entry_mut, lookup, normalize,
};

/// Mode of a file `touch` creates in a guest command (0666 minus the agent's umask 022).
const TOUCH_NEW_FILE_MODE: u32 = 0o644;

fn ok(out: impl Into<String>) -> ExecResult {
    ExecResult { exitcode: 0, out: out.into(), err: String::new() }
}

fn fail(err: impl Into<String>) -> ExecResult {
    ExecResult { exitcode: 1, out: String::new(), err: err.into() }
}

/// Options before the operands (`--` ends them), and the operands.
fn split_options(args: &[String]) -> (Vec<&str>, Vec<&str>) {
    let mut options = Vec::new();
    let mut operands = Vec::new();
    let mut rest = false;
    for arg in args {
        if rest || arg == "-" || !arg.starts_with('-') {
            operands.push(arg.as_str());
        } else if arg == "--" {
            rest = true;
        } else {
            options.push(arg.as_str());
        }
    }
    (options, operands)
}

fn cannot_access(program: &str, path: &str, errno: Errno) -> String {
    format!("{program}: cannot access '{path}': {errno}\n")
}

/// Marks `result` failed (exit 1) and adds `message` to its stderr.
fn failed(result: &mut ExecResult, message: String) {
    result.exitcode = 1;
    result.err.push_str(&message);
}

/// The normalized key of an existing `path`, or why it cannot be reached.
fn accessible(files: &BTreeMap<String, GuestFile>, path: &str) -> Result<String, Errno> {
    match lookup(files, path)? {
        Some(_) => Ok(normalize(path)),
        None => Err(Errno::NoEnt),
    }
}

/// Runs `program args` on `files`; `None` when the guest has no such program.
pub(crate) fn run(
    files: &mut BTreeMap<String, GuestFile>,
    program: &str,
    args: &[String],
    input: Option<&str>,
) -> Option<ExecResult> {
    let name = program.rsplit('/').next().unwrap_or(program);
    if program.contains('/') && !["/bin/", "/usr/bin/"].iter().any(|dir| program.strip_prefix(dir) == Some(name)) {
        return None;
    }
    Some(match name {
        "true" => ok(""),
        "false" => ExecResult { exitcode: 1, ..ExecResult::default() },
        "touch" => touch(files, args),
        "mkdir" => mkdir(files, args),
        "chmod" => chmod(files, args),
        "chown" => chown(files, args),
        "stat" => stat(files, args),
        "cat" => cat(files, args, input),
        _ => return None,
    })
}

fn touch(files: &mut BTreeMap<String, GuestFile>, args: &[String]) -> ExecResult {
    let (options, operands) = split_options(args);
    if let Some(option) = options.first() {
        return fail(format!("touch: invalid option -- '{}'\n", option.trim_start_matches('-')));
    }
    if operands.is_empty() {
        return fail("touch: missing file operand\nTry 'touch --help' for more information.\n");
    }
    let mut result = ok("");
    for path in operands {
        match lookup(files, path) {
            // An existing file or directory only gets new times.
            Ok(Some(_)) => {}
            Ok(None) if !path.ends_with('/') => {
                let file = GuestFile { mode: TOUCH_NEW_FILE_MODE, ..GuestFile::created_by_agent(String::new()) };
                files.insert(normalize(path), file);
            }
            Ok(None) => failed(&mut result, format!("touch: cannot touch '{path}': {}\n", Errno::IsDir)),
            Err(errno) => failed(&mut result, format!("touch: cannot touch '{path}': {errno}\n")),
        }
    }
    result
}

/// `mkdir [-p] [-v] [-m MODE] DIR...` (GNU coreutils 9: `-m` sets the mode of each DIR operand exactly, the
/// parents `-p` creates get 0755; `-v` reports each directory created on stdout).
fn mkdir(files: &mut BTreeMap<String, GuestFile>, args: &[String]) -> ExecResult {
    const TRY: &str = "Try 'mkdir --help' for more information.\n";
    let mut parents = false;
    let mut verbose = false;
    let mut mode_text: Option<&str> = None;
    let mut operands = Vec::new();
    let mut rest = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if rest || arg == "-" || !arg.starts_with('-') {
            operands.push(arg.as_str());
            continue;
        }
        match arg.as_str() {
            "--" => rest = true,
            "--parents" => parents = true,
            "--verbose" => verbose = true,
            "--mode" => match iter.next() {
                Some(value) => mode_text = Some(value),
                None => return fail(format!("mkdir: option '--mode' requires an argument\n{TRY}")),
            },
            long if long.starts_with("--") => match long.strip_prefix("--mode=") {
                Some(value) => mode_text = Some(value),
                None => return fail(format!("mkdir: unrecognized option '{long}'\n{TRY}")),
            },
            short => {
                let flags = &short[1..];
                for (index, flag) in flags.char_indices() {
                    match flag {
                        'p' => parents = true,
                        'v' => verbose = true,
                        'm' => {
                            let attached = &flags[index + 1..];
                            if !attached.is_empty() {
                                mode_text = Some(attached);
                            } else if let Some(value) = iter.next() {
                                mode_text = Some(value);
                            } else {
                                return fail(format!("mkdir: option requires an argument -- 'm'\n{TRY}"));
                            }
                            break;
                        }
                        other => return fail(format!("mkdir: invalid option -- '{other}'\n{TRY}")),
                    }
                }
            }
        }
    }
    let mode = match mode_text {
        None => MKDIR_DEFAULT_MODE,
        Some(text) => match parse_octal_mode(text) {
            Some(mode) => mode,
            None => return fail(format!("mkdir: invalid mode \u{2018}{text}\u{2019}\n")),
        },
    };
    if operands.is_empty() {
        return fail(format!("mkdir: missing operand\n{TRY}"));
    }
    let mut result = ok("");
    for dir in operands {
        if let Err(message) = make_directory(files, dir, parents, mode, verbose.then_some(&mut result.out)) {
            failed(&mut result, message);
        }
    }
    result
}

/// One `mkdir` operand; `Err` is the line for stderr.
fn make_directory(
    files: &mut BTreeMap<String, GuestFile>,
    dir: &str,
    parents: bool,
    mode: u32,
    mut verbose: Option<&mut String>,
) -> Result<(), String> {
    let cannot =
        |shown: &str, errno: Errno| format!("mkdir: cannot create directory \u{2018}{shown}\u{2019}: {errno}\n");
    let mut create = |files: &mut BTreeMap<String, GuestFile>, shown: &str, mode: u32| {
        files.insert(normalize(shown), GuestFile::new_directory(mode, "root"));
        if let Some(out) = verbose.as_deref_mut() {
            out.push_str(&format!("mkdir: created directory '{shown}'\n"));
        }
    };
    if parents {
        // Each parent as written (`/etc`, then `/etc/privatebox`), without the operand itself.
        let trimmed = dir.trim_end_matches('/');
        let mut shown = String::new();
        let components: Vec<&str> = trimmed.split('/').collect();
        for (index, component) in components.iter().enumerate() {
            if index > 0 || component.is_empty() {
                shown.push_str(if index == 0 { "" } else { "/" });
            }
            shown.push_str(component);
            if index + 1 == components.len() || component.is_empty() || *component == "." || *component == ".." {
                continue;
            }
            match lookup(files, &shown) {
                Ok(Some(entry)) if entry.directory => {}
                Ok(Some(_)) => return Err(cannot(&shown, Errno::NotDir)),
                Ok(None) => create(files, &shown, MKDIR_DEFAULT_MODE),
                Err(errno) => return Err(cannot(&shown, errno)),
            }
        }
    }
    match lookup(files, dir) {
        Ok(Some(entry)) if entry.directory && parents => Ok(()),
        Ok(Some(_)) => Err(cannot(dir, Errno::Exist)),
        Ok(None) => {
            create(files, dir, mode);
            Ok(())
        }
        Err(errno) => Err(cannot(dir, errno)),
    }
}

/// An octal mode of at most four digits (coreutils also takes symbolic modes; guest commands here use octal).
fn parse_octal_mode(text: &str) -> Option<u32> {
    (text.len() <= 4 && !text.is_empty()).then(|| u32::from_str_radix(text, 8).ok()).flatten()
}

/// The operands of `chmod MODE PATH...` and `chown SPEC PATH...`: the first and the paths, or coreutils' usage
/// error (no option is known).
fn setting_and_paths<'a>(command: &str, args: &'a [String]) -> Result<(&'a str, Vec<&'a str>), ExecResult> {
    let (options, operands) = split_options(args);
    if let Some(option) = options.first() {
        return Err(fail(format!("{command}: invalid option -- '{}'\n", option.trim_start_matches('-'))));
    }
    let try_help = format!("Try '{command} --help' for more information.\n");
    let Some((setting, paths)) = operands.split_first() else {
        return Err(fail(format!("{command}: missing operand\n{try_help}")));
    };
    if paths.is_empty() {
        return Err(fail(format!("{command}: missing operand after '{setting}'\n{try_help}")));
    }
    Ok((setting, paths.to_vec()))
}

/// Applies `change` to each path that resolves; the others fail with `command: cannot access` and exit 1.
fn change_each(
    files: &mut BTreeMap<String, GuestFile>,
    command: &str,
    paths: &[&str],
    change: impl Fn(&mut GuestFile),
) -> ExecResult {
    let mut result = ok("");
    for path in paths {
        match accessible(files, path) {
            Ok(key) => {
                if let Some(entry) = entry_mut(files, &key) {
                    change(entry);
                }
            }
            Err(errno) => failed(&mut result, cannot_access(command, path, errno)),
        }
    }
    result
}

fn chmod(files: &mut BTreeMap<String, GuestFile>, args: &[String]) -> ExecResult {
    let (mode_text, paths) = match setting_and_paths("chmod", args) {
        Ok(operands) => operands,
        Err(usage) => return usage,
    };
    let Some(mode) = parse_octal_mode(mode_text) else {
        return fail(format!("chmod: invalid mode: '{mode_text}'\nTry 'chmod --help' for more information.\n"));
    };
    change_each(files, "chmod", &paths, |entry| entry.mode = mode)
}

fn chown(files: &mut BTreeMap<String, GuestFile>, args: &[String]) -> ExecResult {
    let (spec, paths) = match setting_and_paths("chown", args) {
        Ok(operands) => operands,
        Err(usage) => return usage,
    };
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let owner = if user.is_empty() {
        None
    } else {
        match GUEST_USERS.iter().find(|(name, uid, _)| *name == user || uid.to_string() == user) {
            Some((name, _, login_group)) => Some((*name, *login_group)),
            None => return fail(format!("chown: invalid user: '{spec}'\n")),
        }
    };
    let group = match group {
        None => None,
        // `user:` means the user's login group.
        Some("") => owner.map(|(_, login_group)| login_group),
        Some(group) => match GUEST_GROUPS.iter().find(|(name, gid)| *name == group || gid.to_string() == group) {
            Some((name, _)) => Some(*name),
            None => return fail(format!("chown: invalid group: '{spec}'\n")),
        },
    };
    change_each(files, "chown", &paths, |entry| {
        if let Some((name, _)) = owner {
            name.clone_into(&mut entry.owner);
        }
        if let Some(group) = group {
            group.clone_into(&mut entry.group);
        }
    })
}

fn symbolic_mode(file: &GuestFile) -> String {
    let mode = file.mode;
    let mut out = String::from(if file.directory { "d" } else { "-" });
    // setuid, setgid, sticky: shown in the x column of user, group, others.
    for (shift, special, letter) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}

fn stat_format(format: &str, path: &str, file: &GuestFile) -> String {
    let uid = GUEST_USERS.iter().find(|(name, _, _)| *name == file.owner).map_or(0, |(_, uid, _)| *uid);
    let gid = GUEST_GROUPS.iter().find(|(name, _)| *name == file.group).map_or(0, |(_, gid)| *gid);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('a') => out.push_str(&format!("{:o}", file.mode)),
            Some('A') => out.push_str(&symbolic_mode(file)),
            Some('U') => out.push_str(&file.owner),
            Some('G') => out.push_str(&file.group),
            Some('u') => out.push_str(&uid.to_string()),
            Some('g') => out.push_str(&gid.to_string()),
            Some('s') => out.push_str(&if file.directory { 4096 } else { file.bytes().len() }.to_string()),
            Some('n') => out.push_str(path),
            Some('F') => out.push_str(match (file.directory, file.content.is_empty()) {
                (true, _) => "directory",
                (false, true) => "regular empty file",
                (false, false) => "regular file",
            }),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('?');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out.push('\n');
    out
}

fn stat(files: &BTreeMap<String, GuestFile>, args: &[String]) -> ExecResult {
    let mut format = None;
    let mut paths = Vec::new();
    let mut iter = args.iter();
    let mut rest = false;
    while let Some(arg) = iter.next() {
        if rest || !arg.starts_with('-') {
            paths.push(arg.as_str());
        } else if arg == "--" {
            rest = true;
        } else if arg == "-c" {
            let Some(value) = iter.next() else {
                return fail("stat: option requires an argument -- 'c'\nTry 'stat --help' for more information.\n");
            };
            format = Some(value.as_str());
        } else if let Some(value) = arg.strip_prefix("--format=").or_else(|| arg.strip_prefix("-c")) {
            format = Some(value);
        } else {
            return fail(format!("stat: invalid option -- '{}'\n", arg.trim_start_matches('-')));
        }
    }
    if paths.is_empty() {
        return fail("stat: missing operand\nTry 'stat --help' for more information.\n");
    }
    let mut result = ok("");
    for path in paths {
        match lookup(files, path) {
            Ok(Some(file)) => match format {
                Some(format) => result.out.push_str(&stat_format(format, path, &file)),
                None => result.out.push_str(&stat_format(
                    "  File: %n\n  Size: %s\t%F\nAccess: (0%a/%A)  Uid: (%u/%U)   Gid: (%g/%G)",
                    path,
                    &file,
                )),
            },
            Ok(None) => failed(&mut result, format!("stat: cannot statx '{path}': {}\n", Errno::NoEnt)),
            Err(errno) => failed(&mut result, format!("stat: cannot statx '{path}': {errno}\n")),
        }
    }
    result
}

fn cat(files: &BTreeMap<String, GuestFile>, args: &[String], input: Option<&str>) -> ExecResult {
    let (options, operands) = split_options(args);
    if let Some(option) = options.first() {
        return fail(format!("cat: invalid option -- '{}'\n", option.trim_start_matches('-')));
    }
    if operands.is_empty() {
        return ok(input.unwrap_or_default());
    }
    let mut result = ok("");
    for path in operands {
        match lookup(files, path) {
            Ok(Some(file)) if file.directory => failed(&mut result, format!("cat: {path}: {}\n", Errno::IsDir)),
            Ok(Some(file)) => result.out.push_str(&String::from_utf8_lossy(&file.bytes())),
            Ok(None) => failed(&mut result, format!("cat: {path}: {}\n", Errno::NoEnt)),
            Err(errno) => failed(&mut result, format!("cat: {path}: {errno}\n")),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::{BTreeMap, ExecResult, GuestFile, lookup, run};

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn touch_chmod_chown_then_stat_reports_the_new_mode_and_owner() {
        let mut files = BTreeMap::new();
        let path = "/root/.token";
        assert_eq!(run(&mut files, "touch", &args(&["--", path]), None).map(|r| r.exitcode), Some(0));
        assert_eq!(files[path].mode, 0o644, "touch creates 0666 minus the umask 022");
        assert_eq!(run(&mut files, "chmod", &args(&["600", "--", path]), None).map(|r| r.exitcode), Some(0));
        assert_eq!(run(&mut files, "chown", &args(&["--", "debian:adm", path]), None).map(|r| r.exitcode), Some(0));
        let stat = run(&mut files, "stat", &args(&["-c", "%a %U:%G", "--", path]), None).expect("stat exists");
        assert_eq!(stat.out, "600 debian:adm\n");
    }

    #[test]
    fn unknown_user_missing_file_bad_mode_and_unknown_program_fail_like_coreutils() {
        let mut files = BTreeMap::new();
        files.insert("/f".to_owned(), GuestFile::created_by_agent(String::new()));
        let chown = run(&mut files, "chown", &args(&["nobody-here:root", "/f"]), None).expect("chown");
        assert_eq!((chown.exitcode, chown.err.as_str()), (1, "chown: invalid user: 'nobody-here:root'\n"));
        let chmod = run(&mut files, "chmod", &args(&["600", "/missing"]), None).expect("chmod");
        assert!(chmod.exitcode == 1 && chmod.err.contains("No such file or directory"), "{chmod:?}");
        let bad = run(&mut files, "chmod", &args(&["u+rw", "/f"]), None).expect("chmod");
        assert_eq!(bad.exitcode, 1);
        assert_eq!(files["/f"].mode, 0o666, "a failed chmod changes nothing");
        assert!(run(&mut files, "rm", &args(&["/f"]), None).is_none(), "the lab guest has no rm");
    }

    fn sh(files: &mut BTreeMap<String, GuestFile>, command: &[&str]) -> ExecResult {
        let (program, rest) = command.split_first().expect("a program");
        run(files, program, &args(rest), None).expect("the guest has the program")
    }

    #[test]
    fn a_fresh_guest_has_the_debian_tree_and_the_parents_of_stored_files() {
        let mut files = BTreeMap::new();
        for dir in
            ["/", "/root", "/home", "/etc", "/tmp", "/var", "/var/lib", "/opt", "/usr", "/usr/local", "/srv", "/run"]
        {
            let entry = lookup(&files, dir).expect("reachable").expect("exists");
            assert!(entry.directory, "{dir} is a directory");
        }
        assert_eq!(sh(&mut files, &["stat", "-c", "%a %A %F", "/root"]).out, "700 drwx------ directory\n");
        assert_eq!(sh(&mut files, &["stat", "-c", "%a %A", "/tmp"]).out, "1777 drwxrwxrwt\n");
        assert_eq!(lookup(&files, "/etc/privatebox"), Ok(None), "no application directory in a fresh guest");
        // A file stored by an older lab (or seeded) implies its directories.
        files.insert("/srv/app/conf/token".to_owned(), GuestFile::created_by_agent(String::new()));
        assert!(lookup(&files, "/srv/app/conf").expect("reachable").is_some_and(|entry| entry.directory));
    }

    #[test]
    fn touch_into_a_missing_directory_or_below_a_file_fails_like_coreutils_and_creates_nothing() {
        let mut files = BTreeMap::new();
        let missing = sh(&mut files, &["touch", "--", "/etc/privatebox/token"]);
        assert_eq!(
            (missing.exitcode, missing.err.as_str()),
            (1, "touch: cannot touch '/etc/privatebox/token': No such file or directory\n")
        );
        assert!(files.is_empty(), "{files:?}");
        sh(&mut files, &["touch", "/root/f"]);
        let below_file = sh(&mut files, &["touch", "/root/f/x"]);
        assert_eq!(below_file.err, "touch: cannot touch '/root/f/x': Not a directory\n");
        assert_eq!(sh(&mut files, &["touch", "/root"]).exitcode, 0, "touching a directory only sets its times");
        assert!(!files.contains_key("/root"), "and does not turn it into a file");
        let cat = sh(&mut files, &["cat", "/etc"]);
        assert_eq!((cat.exitcode, cat.err.as_str()), (1, "cat: /etc: Is a directory\n"));
        let stat = sh(&mut files, &["stat", "/etc/privatebox/token"]);
        assert_eq!(stat.err, "stat: cannot statx '/etc/privatebox/token': No such file or directory\n");
        let chmod = sh(&mut files, &["chmod", "600", "--", "/root/f/x"]);
        assert_eq!(chmod.err, "chmod: cannot access '/root/f/x': Not a directory\n");
    }

    #[test]
    fn mkdir_p_m_creates_missing_parents_0755_and_the_directory_with_the_mode_given() {
        let mut files = BTreeMap::new();
        let made = sh(&mut files, &["mkdir", "-p", "-v", "-m", "700", "--", "/opt/pb/etc/privatebox"]);
        assert_eq!(made.exitcode, 0, "{made:?}");
        assert_eq!(
            made.out,
            "mkdir: created directory '/opt/pb'\nmkdir: created directory '/opt/pb/etc'\n\
             mkdir: created directory '/opt/pb/etc/privatebox'\n"
        );
        let stat = sh(&mut files, &["stat", "-c", "%a %U:%G %F", "/opt/pb", "/opt/pb/etc", "/opt/pb/etc/privatebox"]);
        assert_eq!(stat.out, "755 root:root directory\n755 root:root directory\n700 root:root directory\n");
        // Again: -p accepts an existing directory and leaves its mode alone.
        let again = sh(&mut files, &["mkdir", "-pv", "-m", "750", "/opt/pb/etc/privatebox"]);
        assert_eq!((again.exitcode, again.out.as_str()), (0, ""));
        assert_eq!(sh(&mut files, &["stat", "-c", "%a", "/opt/pb/etc/privatebox"]).out, "700\n");
        // Then a file fits in it.
        assert_eq!(sh(&mut files, &["touch", "/opt/pb/etc/privatebox/token"]).exitcode, 0);
        // Attached and long forms.
        assert_eq!(sh(&mut files, &["mkdir", "-m700", "/srv/a"]).exitcode, 0);
        assert_eq!(sh(&mut files, &["mkdir", "--mode=750", "--parents", "/srv/b/c"]).exitcode, 0);
        assert_eq!(sh(&mut files, &["stat", "-c", "%a", "/srv/a", "/srv/b", "/srv/b/c"]).out, "700\n755\n750\n");
    }

    #[test]
    fn mkdir_failures_use_coreutils_texts_and_exit_1() {
        let mut files = BTreeMap::new();
        sh(&mut files, &["touch", "/root/f"]);
        let cases: [(&[&str], &str); 8] = [
            (
                &["mkdir", "/etc/privatebox/x"],
                "mkdir: cannot create directory \u{2018}/etc/privatebox/x\u{2019}: No such file or directory\n",
            ),
            (&["mkdir", "/etc"], "mkdir: cannot create directory \u{2018}/etc\u{2019}: File exists\n"),
            (&["mkdir", "-p", "/root/f"], "mkdir: cannot create directory \u{2018}/root/f\u{2019}: File exists\n"),
            (
                &["mkdir", "-p", "/root/f/x"],
                "mkdir: cannot create directory \u{2018}/root/f\u{2019}: Not a directory\n",
            ),
            (&["mkdir"], "mkdir: missing operand\nTry 'mkdir --help' for more information.\n"),
            (&["mkdir", "-m", "7x9", "/q"], "mkdir: invalid mode \u{2018}7x9\u{2019}\n"),
            (&["mkdir", "-z", "/q"], "mkdir: invalid option -- 'z'\nTry 'mkdir --help' for more information.\n"),
            (
                &["mkdir", "/q", "-m"],
                "mkdir: option requires an argument -- 'm'\nTry 'mkdir --help' for more information.\n",
            ),
        ];
        for (command, err) in cases {
            let result = sh(&mut files, command);
            assert_eq!((result.exitcode, result.err.as_str()), (1, err), "{command:?}");
        }
        assert_eq!(files.keys().collect::<Vec<_>>(), ["/root/f"], "no failed mkdir created anything");
    }

    #[test]
    fn chmod_and_chown_of_a_directory_change_it_and_stat_shows_it() {
        let mut files = BTreeMap::new();
        sh(&mut files, &["mkdir", "/srv/app"]);
        assert_eq!(sh(&mut files, &["chmod", "700", "/srv/app"]).exitcode, 0);
        assert_eq!(sh(&mut files, &["chown", "debian:debian", "/srv/app"]).exitcode, 0);
        assert_eq!(sh(&mut files, &["chmod", "750", "/home"]).exitcode, 0, "a directory of the base tree");
        let stat = sh(&mut files, &["stat", "-c", "%a %U:%G %A", "/srv/app", "/home"]);
        assert_eq!(stat.out, "700 debian:debian drwx------\n750 root:root drwxr-x---\n");
    }
}
