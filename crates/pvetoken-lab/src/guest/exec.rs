//! `pvetoken` inside a guest (`LabConfig::guest_pvetoken`): every absolute path among the arguments is the
//! guest's, pointed at a private copy (a 0700 directory in the lab's state dir, files 0600; a missing guest file
//! stays missing), so the binary never touches the lab host's files; it runs with a clean environment in that
//! directory, and afterwards a copy it removed is removed from the guest too (`--remove-token-file`). Files it
//! writes are not copied back.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use super::{ExecResult, GuestFile, normalize};
use crate::context::Lab;
use crate::http::ApiError;

/// The run: its directory, the arguments as the binary gets them, and guest path → private copy.
pub(crate) struct Staged {
    dir: PathBuf,
    args: Vec<String>,
    files: Vec<(String, PathBuf)>,
}

pub(crate) fn stage(
    lab: &Lab,
    vmid: u64,
    files: &BTreeMap<String, GuestFile>,
    args: &[String],
) -> Result<Staged, ApiError> {
    let internal = |error: std::io::Error| ApiError::internal(format!("guest exec: {error}"));
    let root = lab.dir.join("guest-exec");
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&root).map_err(internal)?;
    let dir = (0..)
        .map(|n| root.join(format!("{vmid}-{}-{n}", std::process::id())))
        .find(|dir| std::fs::DirBuilder::new().mode(0o700).create(dir).is_ok())
        .unwrap_or_default();
    let mut staged = Staged { dir: dir.clone(), args: Vec::new(), files: Vec::new() };
    for arg in args {
        // `--flag=/path` as well as `/path`: every absolute path is the guest's, never the lab host's.
        let (prefix, value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (format!("{flag}="), value),
            _ => (String::new(), arg.as_str()),
        };
        if !value.starts_with('/') {
            staged.args.push(arg.clone());
            continue;
        }
        let path = normalize(value);
        let copy = dir.join(format!("file-{}", staged.files.len()));
        if let Some(file) = files.get(&path).filter(|file| !file.directory) {
            let mut out =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&copy).map_err(internal)?;
            out.write_all(&file.bytes()).map_err(internal)?;
        }
        // A guest path that does not exist stays missing (a private name nothing is written to before).
        staged.args.push(format!("{prefix}{}", copy.display()));
        staged.files.push((path, copy));
    }
    Ok(staged)
}

pub(crate) fn run(binary: &Path, staged: &Staged, input: Option<&str>) -> ExecResult {
    let mut command = std::process::Command::new(binary);
    command
        .args(&staged.args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &staged.dir)
        .current_dir(&staged.dir)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut wait = || -> std::io::Result<std::process::Output> {
        let mut child = command.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.unwrap_or_default().as_bytes())?;
        }
        child.wait_with_output()
    };
    // The binary may call back into this lab (its Semaphore): never block a runtime worker outright.
    let output = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    };
    match output {
        Ok(output) => ExecResult {
            exitcode: i64::from(output.status.code().unwrap_or(1)),
            out: String::from_utf8_lossy(&output.stdout).into_owned(),
            err: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        Err(error) => ExecResult { exitcode: 127, out: String::new(), err: format!("pvetoken: {error}\n") },
    }
}

/// Copies the binary removed are removed from the guest; the private directory goes.
pub(crate) fn unstage(files: &mut BTreeMap<String, GuestFile>, staged: Staged) {
    for (guest_path, copy) in &staged.files {
        if std::fs::symlink_metadata(copy).is_err() && files.get(guest_path).is_some_and(|file| !file.directory) {
            files.remove(guest_path);
        }
    }
    let _ = std::fs::remove_dir_all(&staged.dir);
}
