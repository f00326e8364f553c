//! The guest model of the lab: the files of each VM (content, permission bits, owner, group), the users and groups
//! a Debian guest has, the directories it starts with, and path resolution with the errno a real guest gives. The QEMU
//! guest agent's API (`crate::pve::nodes::agent`) reads and writes it; `coreutils` is what the agent's `exec` runs on it, and
//! `exec` runs the real `pvetoken` in a guest (`LabConfig::guest_pvetoken`) on private copies of its files.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

mod coreutils;
pub(crate) mod exec;

pub(crate) use coreutils::run;

/// Mode of a file qemu-guest-agent creates (`DEFAULT_NEW_FILE_MODE`, independent of the umask).
pub(crate) const AGENT_NEW_FILE_MODE: u32 = 0o666;

/// A file in a guest: content (base64 in the state file), permission bits, owner and group names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "GuestFileWire")]
pub(crate) struct GuestFile {
    /// Base64 of the bytes.
    pub(crate) content: String,
    /// Permission bits (`0o7777` at most).
    pub(crate) mode: u32,
    /// Owner (a guest account name, or a numeric uid).
    pub(crate) owner: String,
    /// Group (a guest group name, or a numeric gid).
    pub(crate) group: String,
    /// A directory made in the guest (`mkdir`, or a directory of the base tree whose mode or owner changed); its
    /// `content` is empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) directory: bool,
}

/// State files written before modes existed hold only the base64 content.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum GuestFileWire {
    Content(String),
    Full {
        content: String,
        mode: u32,
        owner: String,
        group: String,
        #[serde(default)]
        directory: bool,
    },
}

impl From<GuestFileWire> for GuestFile {
    fn from(wire: GuestFileWire) -> GuestFile {
        match wire {
            GuestFileWire::Content(content) => GuestFile::created_by_agent(content),
            GuestFileWire::Full { content, mode, owner, group, directory } => {
                GuestFile { content, mode, owner, group, directory }
            }
        }
    }
}

impl GuestFile {
    pub(crate) fn created_by_agent(content: String) -> GuestFile {
        GuestFile {
            content,
            mode: AGENT_NEW_FILE_MODE,
            owner: "root".to_owned(),
            group: "root".to_owned(),
            directory: false,
        }
    }

    pub(crate) fn new_directory(mode: u32, owner: &str) -> GuestFile {
        GuestFile { content: String::new(), mode, owner: owner.to_owned(), group: owner.to_owned(), directory: true }
    }

    /// The bytes.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(&self.content).unwrap_or_default()
    }
}

/// A finished guest command, kept until `exec-status` reported it once (as qemu-guest-agent does).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExecResult {
    pub(crate) exitcode: i64,
    pub(crate) out: String,
    pub(crate) err: String,
}

/// Guest accounts of every lab guest (a Debian cloud image): name → uid, and groups name → gid.
pub(crate) const GUEST_USERS: &[(&str, u32, &str)] = &[
    ("root", 0, "root"),
    ("daemon", 1, "daemon"),
    ("bin", 2, "bin"),
    ("sys", 3, "sys"),
    ("www-data", 33, "www-data"),
    ("semaphore", 999, "semaphore"),
    ("debian", 1000, "debian"),
    ("nobody", 65534, "nogroup"),
];
pub(crate) const GUEST_GROUPS: &[(&str, u32)] = &[
    ("root", 0),
    ("daemon", 1),
    ("bin", 2),
    ("sys", 3),
    ("adm", 4),
    ("www-data", 33),
    ("semaphore", 999),
    ("debian", 1000),
    ("nogroup", 65534),
];

/// Mode of a directory `mkdir` creates without `-m`, and of the parents `mkdir -p` creates (0777 minus umask 022).
pub(crate) const MKDIR_DEFAULT_MODE: u32 = 0o755;

/// The directories of every fresh lab guest (a Debian cloud image): path, mode, owner (and group).
/// Parents of stored files are directories too (0755 root:root), so files seeded or saved by an older lab keep
/// their place in the tree.
pub(crate) const BASE_DIRECTORIES: &[(&str, u32, &str)] = &[
    ("/", 0o755, "root"),
    ("/bin", 0o755, "root"),
    ("/boot", 0o755, "root"),
    ("/dev", 0o755, "root"),
    ("/etc", 0o755, "root"),
    ("/etc/default", 0o755, "root"),
    ("/etc/ssh", 0o755, "root"),
    ("/etc/systemd", 0o755, "root"),
    ("/etc/systemd/system", 0o755, "root"),
    ("/home", 0o755, "root"),
    ("/home/debian", 0o755, "debian"),
    ("/mnt", 0o755, "root"),
    ("/opt", 0o755, "root"),
    ("/proc", 0o555, "root"),
    ("/root", 0o700, "root"),
    ("/run", 0o755, "root"),
    ("/sbin", 0o755, "root"),
    ("/srv", 0o755, "root"),
    ("/tmp", 0o1777, "root"),
    ("/usr", 0o755, "root"),
    ("/usr/bin", 0o755, "root"),
    ("/usr/lib", 0o755, "root"),
    ("/usr/local", 0o755, "root"),
    ("/usr/local/bin", 0o755, "root"),
    ("/usr/local/etc", 0o755, "root"),
    ("/usr/sbin", 0o755, "root"),
    ("/usr/share", 0o755, "root"),
    ("/var", 0o755, "root"),
    ("/var/lib", 0o755, "root"),
    ("/var/log", 0o755, "root"),
    ("/var/tmp", 0o1777, "root"),
];

/// The `errno` of a failed path operation, with glibc's `strerror` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Errno {
    NoEnt,
    NotDir,
    IsDir,
    Exist,
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Errno::NoEnt => "No such file or directory",
            Errno::NotDir => "Not a directory",
            Errno::IsDir => "Is a directory",
            Errno::Exist => "File exists",
        })
    }
}

/// `path` made absolute (qemu-ga and its children run in `/`) with `.`, `..` and repeated slashes resolved
/// lexically (the lab has no symlinks).
pub(crate) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

pub(crate) fn parent_of(path: &str) -> Option<&str> {
    match path.rfind('/') {
        _ if path == "/" => None,
        Some(0) => Some("/"),
        Some(index) => Some(&path[..index]),
        None => None,
    }
}

/// The entry at the normalized `path` if it exists: stored, of the base tree, or the parent of a stored entry.
pub(crate) fn existing(files: &BTreeMap<String, GuestFile>, path: &str) -> Option<GuestFile> {
    if let Some(file) = files.get(path) {
        return Some(file.clone());
    }
    if let Some((_, mode, owner)) = BASE_DIRECTORIES.iter().find(|(dir, _, _)| *dir == path) {
        return Some(GuestFile::new_directory(*mode, owner));
    }
    let prefix = if path == "/" { "/".to_owned() } else { format!("{path}/") };
    files
        .range(prefix.clone()..)
        .next()
        .filter(|(key, _)| key.starts_with(&prefix))
        .map(|_| GuestFile::new_directory(MKDIR_DEFAULT_MODE, "root"))
}

/// Looks `path` up as the kernel does: `Err` when a parent is missing (`ENOENT`) or is a file (`ENOTDIR`), or when
/// a path with a trailing slash names a file; `Ok(None)` when only the last component is missing.
pub(crate) fn lookup(files: &BTreeMap<String, GuestFile>, path: &str) -> Result<Option<GuestFile>, Errno> {
    let key = normalize(path);
    let mut ancestors = Vec::new();
    let mut current = key.as_str();
    while let Some(parent) = parent_of(current) {
        ancestors.push(parent);
        current = parent;
    }
    for ancestor in ancestors.into_iter().rev() {
        match existing(files, ancestor) {
            Some(entry) if entry.directory => {}
            Some(_) => return Err(Errno::NotDir),
            None => return Err(Errno::NoEnt),
        }
    }
    let found = existing(files, &key);
    if path.ends_with('/') && found.as_ref().is_some_and(|entry| !entry.directory) {
        return Err(Errno::NotDir);
    }
    Ok(found)
}

/// The stored entry at the normalized `key`, storing a directory of the base tree (or an implied one) first so
/// that its mode or owner can change.
pub(crate) fn entry_mut<'f>(files: &'f mut BTreeMap<String, GuestFile>, key: &str) -> Option<&'f mut GuestFile> {
    if !files.contains_key(key) {
        let entry = existing(files, key)?;
        files.insert(key.to_owned(), entry);
    }
    files.get_mut(key)
}
