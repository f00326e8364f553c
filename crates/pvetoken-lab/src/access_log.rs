//! `access.log` in the state dir, in pveproxy's format (pve-http-server `log_request`, "like apache2 common log
//! format"): `CLIENT - USERID [DD/MM/YYYY:HH:MM:SS +ZZZZ] "METHOD URI HTTP/1.1" STATUS LENGTH`. USERID is the
//! authenticated user or full token id (`-` when none). `pvetoken learn --access-log` reads it.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use crate::context::Lab;

/// The file, in the state dir.
pub(crate) const FILE: &str = "access.log";

/// Appends one request. Failures to log never fail the request (as in pveproxy).
pub(crate) fn write(
    lab: &Lab,
    method: &str,
    path: &str,
    query: Option<&str>,
    status: u16,
    authid: Option<&str>,
    length: usize,
) {
    let time = jiff::Zoned::now().strftime("%d/%m/%Y:%H:%M:%S %z").to_string();
    let uri = match query {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    };
    let line =
        format!("127.0.0.1 - {} [{time}] \"{method} {uri} HTTP/1.1\" {status} {length}\n", authid.unwrap_or("-"));
    let _guard = lab.access_log_lock.lock();
    if let Ok(mut file) = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(lab.dir.join(FILE)) {
        let _ = file.write_all(line.as_bytes());
    }
}
