//! Lab control: the request log and fault injection.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One request as the lab logged it. Never holds secrets: no header values, no bodies, only the names of query and
/// body parameters.
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
    /// Names of the body's parameters, form or JSON (values are never logged): which config keys a `PUT .../config`
    /// changed, for `learn --lab`.
    #[serde(default)]
    pub body_keys: Vec<String>,
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
    /// relative to `/api2/json` (so `/nodes/*/qemu/*/clone` works), except `/api/...`: the Semaphore simulator's
    /// API, where `status` and `latency_ms` apply (not `drop_connection`).
    pub path: String,
    /// How many matching requests are let through, handled as usual, before the fault applies (default 0).
    #[serde(default)]
    pub after: u32,
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

impl FaultSpec {
    /// The next request of `method` to `path` (a pattern as in [`FaultSpec::path`]), handled as usual: the
    /// methods below say how it fails.
    pub fn on(method: &str, path: &str) -> FaultSpec {
        FaultSpec {
            method: Some(method.to_owned()),
            path: path.to_owned(),
            after: 0,
            count: 1,
            status: None,
            message: None,
            latency_ms: 0,
            drop_connection: false,
        }
    }

    /// Lets the next `skipped` matching requests through first (the fault applies to the one after them).
    #[must_use]
    pub fn after(mut self, skipped: u32) -> FaultSpec {
        self.after = skipped;
        self
    }

    /// The next `count` matching requests instead of one.
    #[must_use]
    pub fn times(mut self, count: u32) -> FaultSpec {
        self.count = count;
        self
    }

    /// Answered with `status` and `message` instead of being handled.
    #[must_use]
    pub fn answer(mut self, status: u16, message: &str) -> FaultSpec {
        self.status = Some(status);
        self.message = Some(message.to_owned());
        self
    }

    /// Delayed by `ms` milliseconds.
    #[must_use]
    pub fn delay_ms(mut self, ms: u64) -> FaultSpec {
        self.latency_ms = ms;
        self
    }

    /// The connection is closed without an answer.
    #[must_use]
    pub fn dropping(mut self) -> FaultSpec {
        self.drop_connection = true;
        self
    }
}

/// What to do with a request a fault matched.
#[derive(Debug, Clone)]
pub(crate) struct FaultAction {
    pub(crate) latency: Duration,
    pub(crate) drop_connection: bool,
    pub(crate) status: Option<(u16, String)>,
}

/// Entries the request log keeps (the oldest are overwritten); allocated once, at the first request.
const LOG_CAPACITY: usize = 1 << 16;

/// One logged request as stored: the strings the request path already allocated are moved in, the query keys are
/// extracted only when the log is read.
#[derive(Debug)]
pub(crate) struct Entry {
    seq: u64,
    method: hyper::Method,
    path: String,
    query: Option<String>,
    body_keys: Vec<String>,
    status: u16,
    authid: Option<String>,
}

impl Entry {
    /// A request answered with `status` (0: the connection was dropped); the strings are moved in.
    pub(crate) fn new(method: hyper::Method, path: String, query: Option<String>, status: u16) -> Entry {
        Entry { seq: 0, method, path, query, body_keys: Vec::new(), status, authid: None }
    }

    /// Made by `authid`, when it authenticated.
    #[must_use]
    pub(crate) fn by(mut self, authid: Option<String>) -> Entry {
        self.authid = authid;
        self
    }

    /// With the names of the body's parameters.
    #[must_use]
    pub(crate) fn with_body(mut self, keys: Vec<String>) -> Entry {
        self.body_keys = keys;
        self
    }

    fn record(&self) -> RequestRecord {
        let query_keys = self
            .query
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).map(|(k, _)| k.into_owned()).collect())
            .unwrap_or_default();
        RequestRecord {
            seq: self.seq,
            method: self.method.as_str().to_owned(),
            path: self.path.clone(),
            query_keys,
            body_keys: self.body_keys.clone(),
            status: self.status,
            authid: self.authid.clone(),
        }
    }
}

/// A fixed-size ring of entries: recording is a slot write under a short lock, never a reallocation.
#[derive(Debug, Default)]
struct Ring {
    seq: u64,
    /// Index of the oldest entry once the ring is full.
    start: usize,
    entries: Vec<Entry>,
}

impl Ring {
    fn push(&mut self, mut entry: Entry) {
        self.seq += 1;
        entry.seq = self.seq;
        if self.entries.capacity() == 0 {
            self.entries.reserve_exact(LOG_CAPACITY);
        }
        if self.entries.len() < LOG_CAPACITY {
            self.entries.push(entry);
        } else {
            self.entries[self.start] = entry;
            self.start = (self.start + 1) % LOG_CAPACITY;
        }
    }

    fn ordered(&self) -> impl Iterator<Item = &Entry> {
        let (newer, older) = self.entries.split_at(self.start);
        older.iter().chain(newer)
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.start = 0;
    }
}

/// Shared control state.
#[derive(Debug, Default)]
pub(crate) struct Control {
    log: Mutex<Ring>,
    faults: Mutex<Vec<FaultSpec>>,
    /// Set while `faults` is not empty: requests skip the fault lock when nothing is pending.
    faults_pending: std::sync::atomic::AtomicBool,
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
    /// Logs one request (never a secret: no header, no body value).
    pub(crate) fn record(&self, entry: Entry) {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(entry);
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).ordered().map(Entry::record).collect()
    }

    pub(crate) fn clear_requests(&self) {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    pub(crate) fn add_fault(&self, mut fault: FaultSpec) {
        // `/api/...` is the Semaphore simulator's API (status and latency faults; a dropped connection is PVE's only).
        if !fault.path.starts_with("/api2/") && !fault.path.starts_with("/api/") {
            fault.path = format!(
                "/api2/json{}",
                if fault.path.starts_with('/') { fault.path.clone() } else { format!("/{}", fault.path) }
            );
        }
        fault.method = fault.method.map(|m| m.to_ascii_uppercase());
        self.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(fault);
        self.faults_pending.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn clear_faults(&self) {
        self.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.faults_pending.store(false, std::sync::atomic::Ordering::SeqCst);
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
        if !self.faults_pending.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let mut faults = self.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if faults.is_empty() {
            return None;
        }
        let path = decoded(path);
        let index = faults.iter().position(|f| {
            f.method.as_deref().is_none_or(|m| m == method) && (glob(&f.path, &path) || glob(&decoded(&f.path), &path))
        })?;
        let fault = &mut faults[index];
        if fault.after > 0 {
            fault.after -= 1;
            return None;
        }
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
            if faults.is_empty() {
                self.faults_pending.store(false, std::sync::atomic::Ordering::SeqCst);
            }
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::{Control, Entry, LOG_CAPACITY, glob};

    #[test]
    fn the_request_log_keeps_the_newest_entries_in_order_when_the_ring_wraps() {
        let control = Control::default();
        for i in 0..LOG_CAPACITY + 3 {
            control.record(Entry::new(hyper::Method::GET, format!("/p{i}"), Some("a=1&b=2".to_owned()), 200));
        }
        let log = control.requests();
        assert_eq!(log.len(), LOG_CAPACITY);
        assert_eq!((log[0].seq, log[0].path.as_str()), (4, "/p3"));
        let last = log.last().expect("entries");
        assert_eq!((last.seq, last.path.clone()), (LOG_CAPACITY as u64 + 3, format!("/p{}", LOG_CAPACITY + 2)));
        assert_eq!(last.query_keys, ["a", "b"]);
        control.clear_requests();
        control.record(Entry::new(hyper::Method::POST, "/x".to_owned(), None, 201));
        assert_eq!(control.requests()[0].seq, LOG_CAPACITY as u64 + 4, "sequence numbers continue after a clear");
    }

    #[test]
    fn glob_star_matches_any_run_including_slashes() {
        assert!(glob("/api2/json/nodes/*/qemu/*/clone", "/api2/json/nodes/pve/qemu/9000/clone"));
        assert!(glob("/api2/json/*", "/api2/json/a/b"));
        assert!(!glob("/api2/json/nodes/*/clone", "/api2/json/nodes/pve/config"));
        assert!(glob("/x", "/x"));
        assert!(!glob("/x", "/xy"));
    }
}
