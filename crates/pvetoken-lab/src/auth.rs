//! Tickets, CSRF tokens and API-token authentication as PVE does them.
//!
//! Ticket: `PVE:<userid>:<8 uppercase hex digits of the epoch>::<base64 signature>` (the lab signs with
//! HMAC-SHA256 instead of RSA; clients never verify it), valid 2 hours with 5 minutes of clock skew. CSRF token:
//! `<8 hex>:<base64 HMAC>` bound to the user id. API token: `PVEAPIToken=user@realm!name=secret`.

use base64::Engine as _;
use hmac::Mac as _;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Ticket lifetime.
pub(crate) const TICKET_LIFETIME: u64 = 2 * 3600;
/// Accepted clock skew.
const SKEW: u64 = 300;

/// What a request presented.
#[derive(Debug)]
pub(crate) enum Presented {
    /// Nothing.
    None,
    /// A `PVEAuthCookie` ticket (cookie or Authorization header), with the CSRF header if any.
    Ticket { ticket: String, csrf: Option<String> },
    /// An `Authorization: PVEAPIToken=...` value (id=secret).
    Token(String),
}

fn sign(key: &[u8], text: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so the error branch is never taken.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(text.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// A new ticket for `userid` at `now`.
pub(crate) fn make_ticket(key: &[u8], userid: &str, now: u64) -> String {
    let plain = format!("PVE:{userid}:{now:08X}");
    let sig = base64::engine::general_purpose::STANDARD.encode(sign(key, &plain));
    format!("{plain}::{sig}")
}

/// The user id of a valid, unexpired ticket.
pub(crate) fn verify_ticket(key: &[u8], ticket: &str, now: u64) -> Option<String> {
    let (plain, sig) = ticket.rsplit_once("::")?;
    let expected = base64::engine::general_purpose::STANDARD.encode(sign(key, plain));
    if !constant_time_eq(expected.as_bytes(), sig.as_bytes()) {
        return None;
    }
    let rest = plain.strip_prefix("PVE:")?;
    let (user, hex) = rest.rsplit_once(':')?;
    if hex.len() != 8 {
        return None;
    }
    let time = u64::from_str_radix(hex, 16).ok()?;
    let age = now as i64 - time as i64;
    if age < -(SKEW as i64) || age > TICKET_LIFETIME as i64 {
        return None;
    }
    Some(user.to_owned())
}

/// A CSRF prevention token for `userid`.
pub(crate) fn make_csrf(key: &[u8], userid: &str, now: u64) -> String {
    let stamp = format!("{now:08X}");
    let sig = base64::engine::general_purpose::STANDARD_NO_PAD.encode(sign(key, &format!("{stamp}:{userid}")));
    format!("{stamp}:{sig}")
}

/// True when `token` is a valid CSRF token of `userid`.
pub(crate) fn verify_csrf(key: &[u8], userid: &str, token: &str, now: u64) -> bool {
    let Some((stamp, sig)) = token.split_once(':') else { return false };
    let Ok(time) = u64::from_str_radix(stamp, 16) else { return false };
    let age = now as i64 - time as i64;
    if age < -(SKEW as i64) || age > TICKET_LIFETIME as i64 {
        return false;
    }
    let expected = base64::engine::general_purpose::STANDARD_NO_PAD.encode(sign(key, &format!("{stamp}:{userid}")));
    constant_time_eq(expected.as_bytes(), sig.as_bytes())
}

fn unescape(value: &str) -> String {
    percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned()
}

/// What the request's `Cookie`, `Authorization` and `CSRFPreventionToken` headers present (header names are
/// case-insensitive). A ticket wins over an API token.
pub(crate) fn presented(headers: &hyper::HeaderMap) -> Presented {
    let csrf = headers.get("csrfpreventiontoken").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut ticket = None;
    for cookie in headers.get_all(hyper::header::COOKIE) {
        let Ok(text) = cookie.to_str() else { continue };
        for part in text.split(';') {
            if let Some(value) = part.trim().strip_prefix("PVEAuthCookie=")
                && !value.is_empty()
            {
                ticket = Some(unescape(value));
            }
        }
    }
    let authorization = headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ticket.is_none()
        && let Some(value) = authorization.trim_start().strip_prefix("PVEAuthCookie=")
    {
        ticket = Some(unescape(value.split(';').next().unwrap_or_default()));
    }
    if let Some(ticket) = ticket {
        return Presented::Ticket { ticket, csrf };
    }
    let auth = authorization.trim_start();
    let token = auth.strip_prefix("PVEAPIToken=").or_else(|| auth.strip_prefix("PVEAPIToken "));
    match token {
        Some(value) => Presented::Token(unescape(value.split(';').next().unwrap_or_default().trim())),
        None => Presented::None,
    }
}

/// Compares a presented secret (password, ticket signature, API token) with the expected one in time that does not
/// depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}
