//! Lab control: the request log and fault injection.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One request as the lab logged it. Never holds secrets: no header values, no bodies, only the names of query
/// parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Sequence number (1, 2, ...), also across resets.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Request path (percent-encoding as sent), without the query string.
    pub path: String,
    /// Names of the query parameters (values are never logged).
    pub query_keys: Vec<String>,
    /// HTTP status answered (0 when the connection was dropped on purpose).
    pub status: u16,
    /// The authenticated id (`user@realm` or `user@realm!token`), if authentication succeeded.
    pub authid: Option<String>,
}

/// A fault to inject into the next matching requests (`POST /_lab/faults` takes this as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// HTTP method to match (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Path pattern: `*` matches any run of characters (also `/`). Patterns not starting with `/api2/` are taken
    /// relative to `/api2/json` (so `/nodes/*/qemu/*/clone` works).
    pub path: String,
    /// How many matching requests are affected (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// Answer with this status instead of handling the request.
    #[serde(default)]
    pub status: Option<u16>,
    /// The error message for `status` (default: the status' standard reason).
    #[serde(default)]
    pub message: Option<String>,
    /// Delay before answering, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Close the connection without answering.
    #[serde(default)]
    pub drop_connection: bool,
}

fn one() -> u32 {
    1
}

/// What to do with a request a fault matched.
#[derive(Debug, Clone)]
pub(crate) struct FaultAction {
    pub(crate) latency: Duration,
    pub(crate) drop_connection: bool,
    pub(crate) status: Option<(u16, String)>,
}

const MAX_LOG: usize = 200_000;

/// Shared control state.
#[derive(Debug, Default)]
pub(crate) struct Control {
    log: Mutex<(u64, Vec<RequestRecord>)>,
    faults: Mutex<Vec<FaultSpec>>,
    /// Pending `file-read` corruptions: (vmid, how many successful reads are left to corrupt).
    corrupt_reads: Mutex<Vec<(u64, u32)>>,
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

fn decoded(path: &str) -> String {
    percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned()
}

impl Control {
    pub(crate) fn record(&self, method: &str, path: &str, query: Option<&str>, status: u16, authid: Option<String>) {
        let query_keys = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).map(|(k, _)| k.into_owned()).collect())
            .unwrap_or_default();
        let mut log = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        log.0 += 1;
        let seq = log.0;
        if log.1.len() >= MAX_LOG {
            log.1.drain(..MAX_LOG / 2);
        }
        log.1.push(RequestRecord { seq, method: method.to_owned(), path: path.to_owned(), query_keys, status, authid });
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1.clone()
    }

    pub(crate) fn clear_requests(&self) {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1.clear();
    }

    pub(crate) fn add_fault(&self, mut fault: FaultSpec) {
        if !fault.path.starts_with("/api2/") {
            fault.path = format!(
                "/api2/json{}",
                if fault.path.starts_with('/') { fault.path.clone() } else { format!("/{}", fault.path) }
            );
        }
        fault.method = fault.method.map(|m| m.to_ascii_uppercase());
        self.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(fault);
    }

    pub(crate) fn clear_faults(&self) {
        self.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.corrupt_reads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// Makes the next `count` successful `agent/file-read` answers of VM `vmid` differ from the stored file.
    pub(crate) fn corrupt_file_reads(&self, vmid: u64, count: u32) {
        if count > 0 {
            self.corrupt_reads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((vmid, count));
        }
    }

    /// Consumes one pending corruption of VM `vmid`'s file-read answers.
    pub(crate) fn take_corrupt_read(&self, vmid: u64) -> bool {
        let mut pending = self.corrupt_reads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(index) = pending.iter().position(|(id, _)| *id == vmid) else { return false };
        pending[index].1 -= 1;
        if pending[index].1 == 0 {
            pending.remove(index);
        }
        true
    }

    pub(crate) fn faults(&self) -> Vec<FaultSpec> {
        self.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The action of the first fault matching the request, consuming one of its uses.
    pub(crate) fn take(&self, method: &str, path: &str) -> Option<FaultAction> {
        let mut faults = self.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if faults.is_empty() {
            return None;
        }
        let path = decoded(path);
        let index = faults.iter().position(|f| {
            f.method.as_deref().is_none_or(|m| m == method) && (glob(&f.path, &path) || glob(&decoded(&f.path), &path))
        })?;
        let fault = &mut faults[index];
        let action = FaultAction {
            latency: Duration::from_millis(fault.latency_ms),
            drop_connection: fault.drop_connection,
            status: fault.status.map(|s| {
                let message = fault.message.clone().unwrap_or_else(|| {
                    hyper::StatusCode::from_u16(s)
                        .ok()
                        .and_then(|c| c.canonical_reason())
                        .unwrap_or("injected fault")
                        .to_owned()
                });
                (s, message)
            }),
        };
        fault.count = fault.count.saturating_sub(1);
        if fault.count == 0 {
            faults.remove(index);
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_star_matches_any_run_including_slashes() {
        assert!(glob("/api2/json/nodes/*/qemu/*/clone", "/api2/json/nodes/pve/qemu/9000/clone"));
        assert!(glob("/api2/json/*", "/api2/json/a/b"));
        assert!(!glob("/api2/json/nodes/*/clone", "/api2/json/nodes/pve/config"));
        assert!(glob("/x", "/x"));
        assert!(!glob("/x", "/xy"));
    }
}
