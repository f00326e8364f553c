//! Reading and writing token files on disk: 0600 from the first byte, atomic, refused when others can read them.
//!
//! Writing a token is two steps so that a secret is never created without a place to keep it:
//! [`PreparedTokenFile::prepare`] creates a 0600 temp file next to the destination *before* the token is created
//! on the server (so an unwritable directory fails first), then [`PreparedTokenFile::commit`] writes, fsyncs and
//! renames it over the destination. An uncommitted temp file is removed on drop.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pvetoken_render::TokenFile;

use crate::error::Error;

/// `given` (a `--token-file`), else [`default_token_path`].
pub fn path_or_default(given: Option<&Path>) -> Result<PathBuf, Error> {
    given.map_or_else(default_token_path, |path| Ok(path.to_path_buf()))
}

/// Where the token file lives unless `--token-file` says otherwise: `/root/.proxmox-api-token` for root (the
/// design note's path), else `$XDG_CONFIG_HOME/pvetoken/token.env` (`~/.config/pvetoken/token.env`).
pub fn default_token_path() -> Result<PathBuf, Error> {
    if is_root() {
        return Ok(PathBuf::from("/root/.proxmox-api-token"));
    }
    let config = match std::env::var_os(crate::env_vars::XDG_CONFIG_HOME).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os(crate::env_vars::HOME).filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => {
                return Err(Error::usage(
                    "cannot find the default token file: neither XDG_CONFIG_HOME nor HOME is set",
                )
                .with_hint("pass --token-file PATH"));
            }
        },
    };
    Ok(config.join("pvetoken").join("token.env"))
}

fn is_root() -> bool {
    current_uid() == Some(0)
}

/// Our effective uid: the owner of our own process directory (avoids libc for one geteuid()).
pub fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok()
}

/// The largest private file pvetoken reads (a token file is well under 1 KiB; a password file one line).
pub const PRIVATE_FILE_MAX: u64 = 64 * 1024;

/// Checks, as ssh does for its keys, that `path` is a regular file (not a symbolic link), owned by us or root, and
/// not accessible by group or others. A file someone else owns could point pvetoken (and the administrator's
/// password) at another server; a link would be replaced by the next atomic write, leaving the secret behind in
/// its target.
pub fn check_private(path: &Path, what: &str) -> Result<std::fs::Metadata, Error> {
    let metadata = std::fs::symlink_metadata(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => Error::usage(format!("{what} {} does not exist", path.display()))
            .with_hint("create it with `pvetoken create --profile PROFILE`, or pass --token-file PATH"),
        _ => Error::usage(format!("cannot read {what} {}: {error}", path.display())),
    })?;
    if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_else(|_| "?".into());
        return Err(Error::usage(format!(
            "{what} {} is a symbolic link (to {target}); pvetoken reads and replaces such files in place and does \
             not follow links",
            path.display()
        ))
        .with_hint("pass the real file's path instead of the link"));
    }
    if !metadata.is_file() {
        return Err(Error::usage(format!("{what} {} is not a regular file", path.display())));
    }
    let me = current_uid();
    if metadata.uid() != 0 && Some(metadata.uid()) != me {
        return Err(Error::usage(format!(
            "{what} {} is owned by uid {}, not by you (uid {}) or root: whoever owns it can change where pvetoken \
             connects and what it trusts",
            path.display(),
            metadata.uid(),
            me.map_or_else(|| "?".to_owned(), |uid| uid.to_string())
        ))
        .with_hint(format!("if the file is yours: chown \"$(id -u)\" {}", path.display())));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::usage(format!(
            "{what} {} has mode {mode:04o}: it holds a secret and must not be accessible by group or others",
            path.display()
        ))
        .with_hint(format!("chmod 600 {}", path.display())));
    }
    if metadata.len() > PRIVATE_FILE_MAX {
        return Err(Error::usage(format!(
            "{what} {} is {} bytes; such a file is at most {PRIVATE_FILE_MAX} bytes",
            path.display(),
            metadata.len()
        )));
    }
    Ok(metadata)
}

/// Reads and parses a token file, refusing one that group or others can read or write (as ssh does).
pub fn read(path: &Path) -> Result<TokenFile, Error> {
    let text = read_private(path, "token file")?;
    TokenFile::parse(&text).map_err(|error| {
        Error::usage(format!("token file {}: {error}", path.display()))
            .with_hint("recreate it with `pvetoken create`, or fix the line named above")
    })
}

/// Reads the token file if it exists; `Ok(None)` when it does not.
pub fn read_if_exists(path: &Path) -> Result<Option<TokenFile>, Error> {
    match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read(path).map(Some),
    }
}

/// Reads a file that holds a secret, checking its mode first. `what` names it in messages.
pub fn read_private(path: &Path, what: &str) -> Result<String, Error> {
    check_private(path, what)?;
    use std::io::Read;
    let mut text = String::new();
    File::open(path)
        .and_then(|file| file.take(PRIVATE_FILE_MAX + 1).read_to_string(&mut text))
        .map_err(|error| Error::usage(format!("cannot read {what} {}: {error}", path.display())))?;
    Ok(text)
}

/// A 0600 temp file next to the destination, ready to receive a token.
#[derive(Debug)]
pub struct PreparedTokenFile {
    destination: PathBuf,
    temp_path: PathBuf,
    file: Option<File>,
}

impl PreparedTokenFile {
    /// Creates the destination directory (0700) if needed and a 0600 temp file in it.
    pub fn prepare(destination: &Path) -> Result<Self, Error> {
        let (temp_path, file) = create_temp_beside(destination)?;
        Ok(Self { destination: destination.to_owned(), temp_path, file: Some(file) })
    }

    /// Writes the token, fsyncs, renames over the destination and fsyncs the directory.
    pub fn commit(mut self, token: &TokenFile) -> Result<(), Error> {
        let file = self.file.take().ok_or_else(|| Error::usage("token file already committed"))?;
        let result = finish_atomic(file, &self.temp_path, &self.destination, token.render().as_bytes());
        if result.is_err() {
            // No copy of the secret is left behind: the caller reports the failure (and deletes the token or
            // names where the secret went).
            let _ = std::fs::remove_file(&self.temp_path);
        }
        result
    }

    /// [`Self::commit`] for a secret that already replaced the old one on the server (regenerate): when the file
    /// cannot be put in place, the complete token file stays at a 0600 path beside it, named in the error (the only
    /// copy of the secret); otherwise the hint is to fix the directory and `rerun`.
    pub fn commit_regenerated(mut self, token: &TokenFile, rerun: &str) -> Result<(), Error> {
        let file = self.file.take().ok_or_else(|| Error::usage("token file already committed"))?;
        let written = finish_atomic(file, &self.temp_path, &self.destination, token.render().as_bytes());
        written.map_err(|error| {
            let (cause, hint) = if self.temp_path.exists() {
                (
                    format!(
                        "{}; the new token file (with the only copy of the new secret) is at {}",
                        error.message,
                        self.temp_path.display()
                    ),
                    format!("move it into place: mv {} {}", self.temp_path.display(), self.destination.display()),
                )
            } else {
                (error.message, error.hint.unwrap_or_else(|| format!("fix the directory and {rerun}")))
            };
            Error::usage(format!(
                "the secret of {} was regenerated but cannot be saved to {}: {cause}",
                token.token_id,
                self.destination.display()
            ))
            .with_hint(hint)
        })
    }
}

impl Drop for PreparedTokenFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// Writes `bytes` to `path` atomically, mode 0600 from the first byte (for any secret-bearing output).
pub fn write_secret_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let (temp_path, file) = create_temp_beside(path)?;
    let result = finish_atomic(file, &temp_path, path, bytes);
    if result.is_err() {
        let _ = std::fs::remove_file(&temp_path);
    }
    result
}

/// A file that belongs to a token file, beside it: `<token file><suffix>` (`.pending`, `.sinks.json`,
/// `.semaphore.json`), so it lives in the token file's private directory and moves with it.
pub fn companion(token_file: &Path, suffix: &str) -> PathBuf {
    let mut name = token_file.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(suffix);
    token_file.with_file_name(name)
}

/// An advisory lock serialising the runs that write one token file (`create`, `rotate`): held until dropped.
///
/// With it, a `.pending` marker found by a run is always a dead run's (a live one would still hold the lock), and
/// two runs can never both create a token and overwrite each other's secret.
#[derive(Debug)]
pub struct TokenFileLock {
    _file: File,
}

/// Takes the lock `.NAME.lock` beside `token_file` (created 0600, the directory 0700 if missing), waiting, with a
/// message, while another run holds it.
pub fn lock(token_file: &Path, observer: &dyn crate::Observer) -> Result<TokenFileLock, Error> {
    let directory = directory_of(token_file)?;
    let name = token_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "token".into());
    let path = directory.join(format!(".{name}.lock"));
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::usage(format!("the lock {} is a symbolic link", path.display()))
            .with_hint(format!("remove it: rm {}", path.display())));
    }
    // The file stays after the run: removing it would let a waiting run and a new one lock different files.
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|error| Error::usage(format!("cannot open the lock {}: {error}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            observer.info(&format!("waiting for another pvetoken run on {} to finish", token_file.display()));
            file.lock().map_err(|error| Error::usage(format!("cannot lock {}: {error}", path.display())))?;
        }
        Err(std::fs::TryLockError::Error(error)) => {
            return Err(Error::usage(format!("cannot lock {}: {error}", path.display())));
        }
    }
    Ok(TokenFileLock { _file: file })
}

/// The largest `user.cfg` read (pmxcfs itself caps a file at 1 MiB; a copy is allowed to be far larger).
pub const USER_CFG_MAX: u64 = 64 * 1024 * 1024;

/// The largest file `lint` reads.
pub const LINT_FILE_MAX: u64 = 16 * 1024 * 1024;

/// Reads at most `limit` bytes of `path`; a longer file (or an endless one such as `/dev/zero`) is an error that
/// names the limit instead of a read until memory runs out.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes, more than such a file can be")));
    }
    Ok(bytes)
}

/// How an `--out` destination was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputWritten {
    /// A regular file, replaced atomically by a new 0600 file.
    Replaced,
    /// An existing pipe, terminal or device (also through a link such as `/dev/stdout`), written as a stream and
    /// left in place.
    Streamed,
}

/// Writes an `--out` destination. A regular (or new) file is replaced atomically with mode 0600; an existing
/// non-regular file (a FIFO, `/dev/stdout`, a terminal, `/dev/null`) is written into as a stream and never
/// replaced (write errors such as `/dev/full`'s ENOSPC are errors); a link to a regular file is refused, since
/// replacing it would leave the target holding the old content.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<OutputWritten, Error> {
    let followed = std::fs::metadata(path);
    if let Ok(metadata) = &followed
        && !metadata.is_file()
    {
        if metadata.is_dir() {
            return Err(Error::usage(format!("{} is a directory, not a file", path.display())));
        }
        let fail = |error: std::io::Error| Error::usage(format!("cannot write to {}: {error}", path.display()));
        let mut stream = OpenOptions::new().write(true).open(path).map_err(fail)?;
        stream.write_all(bytes).and_then(|()| stream.flush()).map_err(fail)?;
        return Ok(OutputWritten::Streamed);
    }
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::usage(format!(
            "{} is a symbolic link to a file; pvetoken replaces output files atomically and does not follow links",
            path.display()
        ))
        .with_hint("pass the real file's path instead of the link"));
    }
    write_secret_file_atomic(path, bytes).map(|()| OutputWritten::Replaced)
}

/// The directory `path` goes into, created (0700) when missing.
fn directory_of(path: &Path) -> Result<PathBuf, Error> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    if !directory.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&directory)
            .map_err(|error| Error::usage(format!("cannot create directory {}: {error}", directory.display())))?;
    }
    Ok(directory)
}

fn create_temp_beside(destination: &Path) -> Result<(PathBuf, File), Error> {
    let directory = directory_of(destination)?;
    if destination.is_dir() {
        return Err(Error::usage(format!("{} is a directory, not a file", destination.display())));
    }
    let name = destination.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "token".into());
    let mut attempt = 0u32;
    loop {
        let temp_path = directory.join(format!(".{name}.tmp-{}-{attempt}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp_path) {
            Ok(file) => return Ok((temp_path, file)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(error) => {
                return Err(Error::usage(format!(
                    "cannot write in {} (needed for {}): {error}",
                    directory.display(),
                    destination.display()
                ))
                .with_hint("choose a writable location with --token-file PATH (or --out PATH)"));
            }
        }
    }
}

fn finish_atomic(mut file: File, temp_path: &Path, destination: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io_error = |error: std::io::Error| Error::usage(format!("cannot write {}: {error}", destination.display()));
    file.write_all(bytes).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    drop(file);
    std::fs::rename(temp_path, destination).map_err(io_error)?;
    if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Persist the rename itself; a directory that cannot be opened for sync is not worth failing for.
        if let Ok(directory) = File::open(parent) {
            let _ = directory.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvetoken_api::{ExposeSecret, Secret};

    #[test]
    fn private_writes_are_0600_and_never_follow_a_link_planted_at_the_temp_name() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("ready.json");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "untouched").expect("write");
        let planted = dir.path().join(format!(".ready.json.tmp-{}-0", std::process::id()));
        std::os::unix::fs::symlink(&elsewhere, &planted).expect("symlink");
        write_secret_file_atomic(&target, b"root password").expect("write");
        assert_eq!(std::fs::read_to_string(&elsewhere).expect("read"), "untouched");
        assert_eq!(std::fs::metadata(&target).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&target).expect("read"), b"root password");
    }

    fn token() -> TokenFile {
        TokenFile::new(
            "https://127.0.0.1:8006",
            "pve",
            "automation@pve!privatebox".parse().expect("valid id"),
            Secret::from("0b3c9f1e-1111-2222-3333-444455556666".to_owned()),
        )
        .expect("valid url")
    }

    #[test]
    fn a_companion_file_sits_beside_the_token_file_with_the_suffix_after_its_whole_name() {
        let token_file = Path::new("/etc/pvetoken/ci.token.env");
        assert_eq!(super::companion(token_file, ".sinks.json"), Path::new("/etc/pvetoken/ci.token.env.sinks.json"));
        assert_eq!(super::companion(Path::new("token.env"), ".pending"), Path::new("token.env.pending"));
    }

    #[test]
    fn committed_token_file_is_0600_and_no_temp_file_remains() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub").join("token.env");
        let prepared = PreparedTokenFile::prepare(&path).expect("prepare");
        prepared.commit(&token()).expect("commit");
        let mode = std::fs::metadata(&path).expect("written").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().expect("parent")).expect("dir").permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let entries: Vec<_> = std::fs::read_dir(path.parent().expect("parent")).expect("list").collect();
        assert_eq!(entries.len(), 1, "only the token file remains");
        assert_eq!(read(&path).expect("reads back").secret.expose_secret(), "0b3c9f1e-1111-2222-3333-444455556666");
    }

    #[test]
    fn dropped_preparation_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token.env");
        drop(PreparedTokenFile::prepare(&path).expect("prepare"));
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn group_readable_token_file_is_refused_with_chmod_hint() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token.env");
        write_secret_file_atomic(&path, token().render().as_bytes()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let error = read(&path).expect_err("0640 is refused");
        assert!(error.message.contains("0640"), "{}", error.message);
        assert_eq!(error.hint.as_deref(), Some(format!("chmod 600 {}", path.display()).as_str()));
    }

    #[test]
    fn missing_token_file_says_how_to_create_one() {
        let error = read(Path::new("/nonexistent/token.env")).expect_err("missing");
        assert!(error.message.contains("does not exist"));
        assert!(error.hint.as_deref().unwrap_or_default().contains("pvetoken create"));
    }

    #[test]
    fn unwritable_destination_fails_before_anything_is_created() {
        let error = PreparedTokenFile::prepare(Path::new("/proc/pvetoken-test/token.env")).expect_err("unwritable");
        assert!(error.message.contains("cannot"), "{}", error.message);
    }

    #[test]
    fn a_failed_rename_leaves_no_copy_of_the_secret_unless_asked_and_then_names_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token.env");
        // The destination turns into a non-empty directory between prepare and commit: the rename fails.
        let prepared = PreparedTokenFile::prepare(&path).expect("prepare");
        let kept_one = PreparedTokenFile::prepare(&path).expect("prepare a second");
        std::fs::create_dir(&path).expect("mkdir");
        std::fs::write(path.join("x"), "x").expect("fill");
        assert!(prepared.commit(&token()).is_err());
        drop(kept_one);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["token.env"], "the temp file holding the secret is gone");

        std::fs::remove_dir_all(&path).expect("rmdir");
        let prepared = PreparedTokenFile::prepare(&path).expect("prepare");
        std::fs::create_dir(&path).expect("mkdir");
        std::fs::write(path.join("x"), "x").expect("fill");
        let error = prepared.commit_regenerated(&token(), "rerun").expect_err("rename fails");
        let kept = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".token.env.tmp-")))
            .expect("kept");
        assert!(error.message.contains(&kept.display().to_string()), "{}", error.message);
        assert!(error.message.starts_with("the secret of automation@pve!"), "{}", error.message);
        assert!(error.hint.unwrap_or_default().starts_with("move it into place: mv "));
        assert_eq!(std::fs::metadata(&kept).expect("kept").permissions().mode() & 0o777, 0o600);
    }
}
