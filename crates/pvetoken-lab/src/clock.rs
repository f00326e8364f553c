//! The lab's clock: seconds since the Unix epoch, for tickets, tasks, token expiry and Semaphore's timestamps.

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
