//! Atomic file writes (temp file in the same directory, fsync, rename, fsync of the directory), so the state dir is
//! never left half-written; secret files are 0600 from their first byte. JSON state (the guests, the Semaphore
//! simulator's state) is read and written through [`read_json`] and [`write_json`].

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Writes `bytes` to `path` atomically; `secret` files get mode 0600, others 0644. Creates missing parent
/// directories (0700).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // A fresh temp file (`create_new`: never an existing file, never through a planted link), 0600 from its
    // first byte for secrets.
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.tmp-{}-{attempt}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(&tmp)
        {
            Ok(file) => break (tmp, file),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(error) => return Err(error),
        }
    };
    let result = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads `path` as JSON; `None` when there is no such file. A file that does not decode is `InvalidData`.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Writes `value` to `path` as pretty JSON with [`write_atomic`].
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T, secret: bool) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes, secret)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::write_atomic;

    #[test]
    fn secret_files_are_0600_and_a_planted_link_at_the_temp_name_is_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("ready.json");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "untouched").expect("write");
        // The first temp name this process would use, planted as a link to another file.
        let planted = dir.path().join(format!(".ready.json.tmp-{}-0", std::process::id()));
        std::os::unix::fs::symlink(&elsewhere, &planted).expect("symlink");
        write_atomic(&target, b"{\"root_password\":\"x\"}", true).expect("write");
        assert_eq!(std::fs::read_to_string(&elsewhere).expect("read"), "untouched");
        assert_eq!(std::fs::metadata(&target).expect("meta").permissions().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(&target).expect("read").contains("root_password"));
    }
}
