//! The token file: one API token and where it works, as `KEY='value'` lines a shell can `source`.
//!
//! The format keeps the PrivateBox design note's contract (`PROXMOX_HOST`, `PROXMOX_NODE`, `PROXMOX_TOKEN_ID` as the
//! full `user@realm!name`, `PROXMOX_TOKEN_SECRET`) and adds `PROXMOX_PORT`, `PROXMOX_URL`, `PROXMOX_FINGERPRINT`,
//! `PROXMOX_TOKEN_EXPIRE`, and the optional `PROXMOX_STORAGE`, `PROXMOX_CA_FILE`, `PROXMOX_TLS_INSECURE`.
//!
//! pvetoken never runs a shell on it: [`TokenFile::parse`] accepts exactly what [`TokenFile::render`] writes
//! (plus comments, blank lines, an `export ` prefix and unquoted plain words) and refuses anything whose meaning
//! would depend on a shell (`$`, backticks, double quotes). Errors name the line and the key, never the value.
//!
//! ```
//! use pvetoken_render::TokenFile;
//! let text = "PROXMOX_HOST='pve.lan'\nPROXMOX_NODE='pve'\nPROXMOX_TOKEN_ID='automation@pve!privatebox'\n\
//!             PROXMOX_TOKEN_SECRET='0b3c9f1e-1111-2222-3333-444455556666'\n";
//! let token = TokenFile::parse(text).unwrap();
//! assert_eq!(token.url, "https://pve.lan:8006");
//! assert_eq!(token.token_id.user_str(), "automation@pve");
//! assert_eq!(TokenFile::parse(&token.render()).unwrap().render(), token.render());
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;

use pvetoken_acl::TokenId;
use pvetoken_api::{ExposeSecret, Secret};

use crate::quote::shell_single_quote;

/// The default port of the Proxmox VE API.
pub const DEFAULT_PVE_PORT: u16 = 8006;

/// One API token and the server it works on.
#[derive(Debug, Clone)]
pub struct TokenFile {
    /// `PROXMOX_HOST`: host name or IP address of the server (no scheme, no port).
    pub host: String,
    /// `PROXMOX_PORT`: API port, 8006 unless told otherwise.
    pub port: u16,
    /// `PROXMOX_URL`: `https://host:port`, without `/api2/json`.
    pub url: String,
    /// `PROXMOX_NODE`: the node consumers should build on.
    pub node: String,
    /// `PROXMOX_TOKEN_ID`: the full token id `user@realm!name`.
    pub token_id: TokenId,
    /// `PROXMOX_TOKEN_SECRET`: the token's secret (a UUID on PVE).
    pub secret: Secret,
    /// `PROXMOX_FINGERPRINT`: SHA-256 of the server certificate, PVE's colon-separated hex, when pinned.
    pub fingerprint: Option<String>,
    /// `PROXMOX_TOKEN_EXPIRE`: expiry as seconds since the epoch; 0 means never.
    pub expire: u64,
    /// `PROXMOX_STORAGE`: the storage pool consumers should use (home-infra's `proxmox_storage_pool`).
    pub storage: Option<String>,
    /// `PROXMOX_CA_FILE`: CA bundle that verifies the server, when not the system roots.
    pub ca_file: Option<PathBuf>,
    /// `PROXMOX_TLS_INSECURE`: consumers must skip certificate verification (discouraged; prefer the pin).
    pub tls_insecure: bool,
}

/// Why a token file could not be read. Never contains a value from the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// A line is not `KEY='value'`, `KEY=word`, a comment or blank.
    #[error("line {line}: not a KEY='value' line")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
    /// A value needs a shell to mean anything (`$`, backtick, double quote, backslash outside single quotes).
    #[error("line {line}: the value of {key} would need a shell to expand it (use single quotes)")]
    NeedsShell {
        /// 1-based line number.
        line: usize,
        /// The key whose value is refused.
        key: String,
    },
    /// A single-quoted value is not closed.
    #[error("line {line}: the value of {key} has an unclosed single quote")]
    Unclosed {
        /// 1-based line number.
        line: usize,
        /// The key concerned.
        key: String,
    },
    /// A key appears twice.
    #[error("line {line}: {key} is set twice")]
    Duplicate {
        /// 1-based line number of the second occurrence.
        line: usize,
        /// The key concerned.
        key: String,
    },
    /// A required key is missing.
    #[error("{key} is missing")]
    Missing {
        /// The missing key.
        key: &'static str,
    },
    /// A value has the wrong format.
    #[error("{key} is not valid: {reason}")]
    Invalid {
        /// The key concerned.
        key: &'static str,
        /// What is wrong (never the value itself, except for non-secret identifiers).
        reason: String,
    },
}

const HOST: &str = "PROXMOX_HOST";
const PORT: &str = "PROXMOX_PORT";
const URL: &str = "PROXMOX_URL";
const NODE: &str = "PROXMOX_NODE";
const TOKEN_ID: &str = "PROXMOX_TOKEN_ID";
const SECRET: &str = "PROXMOX_TOKEN_SECRET";
const FINGERPRINT: &str = "PROXMOX_FINGERPRINT";
const EXPIRE: &str = "PROXMOX_TOKEN_EXPIRE";
const STORAGE: &str = "PROXMOX_STORAGE";
const CA_FILE: &str = "PROXMOX_CA_FILE";
const TLS_INSECURE: &str = "PROXMOX_TLS_INSECURE";

impl TokenFile {
    /// Builds a token file for `url` (`https://host[:port]`, optionally ending in `/api2/json`).
    pub fn new(url: &str, node: &str, token_id: TokenId, secret: Secret) -> Result<Self, TokenFileError> {
        let (host, port) = split_url(url)?;
        Ok(Self {
            url: format_url(&host, port),
            host,
            port,
            node: node.to_owned(),
            token_id,
            secret,
            fingerprint: None,
            expire: 0,
            storage: None,
            ca_file: None,
            tls_insecure: false,
        })
    }

    /// The API base, `https://host:port/api2/json`.
    pub fn api_url(&self) -> String {
        format!("{}/api2/json", self.url)
    }

    /// The `Authorization` header value: `PVEAPIToken=user@realm!name=secret`.
    pub fn authorization_header(&self) -> Secret {
        Secret::from(format!("PVEAPIToken={}={}", self.token_id, self.secret.expose_secret()))
    }

    /// Parses a token file strictly (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, TokenFileError> {
        let mut values: Vec<(String, String)> = Vec::new();
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let lines: Vec<&str> = text.lines().collect();
        let mut index = 0;
        while index < lines.len() {
            let line = index + 1;
            let raw = lines[index];
            index += 1;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let assignment = trimmed.strip_prefix("export ").map(str::trim_start).unwrap_or(trimmed);
            let Some((key, raw_value)) = assignment.split_once('=') else {
                return Err(TokenFileError::Malformed { line });
            };
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(TokenFileError::Malformed { line });
            }
            // A single-quoted value may span lines (a shell keeps the newlines): join until the quote closes.
            // Re-read only when a line that could close the quote arrives: a file with an unclosed quote and many
            // lines after it stays linear.
            let mut joined = raw_value.to_owned();
            let value = loop {
                match unquote(&joined, line, key) {
                    Err(TokenFileError::Unclosed { .. }) if index < lines.len() => loop {
                        let next = lines[index];
                        joined.push('\n');
                        joined.push_str(next);
                        index += 1;
                        if next.contains(['\'', '"']) || index == lines.len() {
                            break;
                        }
                    },
                    other => break other?,
                }
            };
            if !seen.insert(key) {
                return Err(TokenFileError::Duplicate { line, key: key.to_owned() });
            }
            values.push((key.to_owned(), value));
        }
        let by_key: std::collections::HashMap<&str, &str> =
            values.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        let get = |key: &str| by_key.get(key).copied();
        let required = |key: &'static str| match get(key) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(TokenFileError::Missing { key }),
        };

        let (host, port) = match get(URL).filter(|url| !url.is_empty()) {
            Some(url) => split_url(url)?,
            None => {
                let host = required(HOST)?.to_owned();
                let port = match get(PORT).filter(|p| !p.is_empty()) {
                    Some(port) => parse_port(port)?,
                    None => DEFAULT_PVE_PORT,
                };
                (host, port)
            }
        };
        if let Some(given) = get(HOST).filter(|h| !h.is_empty())
            && given != host
        {
            return Err(TokenFileError::Invalid {
                key: HOST,
                reason: format!("`{given}` does not match the host of PROXMOX_URL (`{host}`)"),
            });
        }
        validate_host(&host)?;
        let token_id: TokenId = required(TOKEN_ID)?.parse().map_err(|_| TokenFileError::Invalid {
            key: TOKEN_ID,
            reason: "expected the full token id `user@realm!name` (for example `automation@pve!privatebox`)".to_owned(),
        })?;
        let secret = required(SECRET)?;
        let expire = match get(EXPIRE).filter(|e| !e.is_empty()) {
            Some(expire) => expire.parse::<u64>().map_err(|_| TokenFileError::Invalid {
                key: EXPIRE,
                reason: "expected seconds since the epoch (0 = never)".to_owned(),
            })?,
            None => 0,
        };
        let tls_insecure = match get(TLS_INSECURE).filter(|v| !v.is_empty()) {
            None => false,
            Some("1" | "true" | "yes") => true,
            Some("0" | "false" | "no") => false,
            Some(_) => {
                return Err(TokenFileError::Invalid { key: TLS_INSECURE, reason: "expected true or false".to_owned() });
            }
        };
        let fingerprint = get(FINGERPRINT).filter(|f| !f.is_empty()).map(str::to_owned);
        if let Some(fingerprint) = &fingerprint {
            validate_fingerprint(fingerprint)?;
        }
        Ok(Self {
            url: format_url(&host, port),
            host,
            port,
            node: required(NODE)?.to_owned(),
            token_id,
            secret: Secret::from(secret.to_owned()),
            fingerprint,
            expire,
            storage: get(STORAGE).filter(|s| !s.is_empty()).map(str::to_owned),
            ca_file: get(CA_FILE).filter(|s| !s.is_empty()).map(PathBuf::from),
            tls_insecure,
        })
    }

    /// Writes the file: a header comment, then one `KEY='value'` line per set key, safe to `source`.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Proxmox VE API token written by pvetoken. Keep this file mode 0600.\n\
             # Shell-sourceable: `set -a; . FILE; set +a`.\n",
        );
        let mut line = |key: &str, value: &str| {
            let _ = writeln!(out, "{key}={}", shell_single_quote(value));
        };
        line(HOST, &self.host);
        line(PORT, &self.port.to_string());
        line(URL, &self.url);
        line(NODE, &self.node);
        line(TOKEN_ID, self.token_id.as_str());
        line(SECRET, self.secret.expose_secret());
        if let Some(fingerprint) = &self.fingerprint {
            line(FINGERPRINT, fingerprint);
        }
        line(EXPIRE, &self.expire.to_string());
        if let Some(storage) = &self.storage {
            line(STORAGE, storage);
        }
        if let Some(ca_file) = &self.ca_file {
            line(CA_FILE, &ca_file.to_string_lossy());
        }
        if self.tls_insecure {
            line(TLS_INSECURE, "true");
        }
        out
    }
}

/// Reads one value: `'single quoted'` (with `'\''` for a quote), or a plain word of safe characters.
fn unquote(raw: &str, line: usize, key: &str) -> Result<String, TokenFileError> {
    let needs_shell = || TokenFileError::NeedsShell { line, key: key.to_owned() };
    let raw = raw.trim_end();
    if !raw.starts_with('\'') {
        let plain = raw.chars().all(|c| c.is_ascii_alphanumeric() || "@!._-:/,+%".contains(c));
        return if plain { Ok(raw.to_owned()) } else { Err(needs_shell()) };
    }
    let mut value = String::new();
    let mut rest = raw;
    loop {
        // rest starts with a quote: take everything up to the closing quote literally.
        let body = &rest[1..];
        let Some(end) = body.find('\'') else {
            return Err(TokenFileError::Unclosed { line, key: key.to_owned() });
        };
        value.push_str(&body[..end]);
        rest = &body[end + 1..];
        if rest.is_empty() {
            return Ok(value);
        }
        if let Some(after) = rest.strip_prefix(r"\'") {
            value.push('\'');
            rest = after;
            if rest.is_empty() {
                return Ok(value);
            }
            if !rest.starts_with('\'') {
                return Err(needs_shell());
            }
        } else {
            return Err(needs_shell());
        }
    }
}

fn split_url(url: &str) -> Result<(String, u16), TokenFileError> {
    let invalid = |reason: &str| TokenFileError::Invalid { key: URL, reason: reason.to_owned() };
    let rest = url.strip_prefix("https://").ok_or_else(|| invalid("must start with https://"))?;
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix("/api2/json").unwrap_or(rest);
    if rest.contains('/') || rest.contains('@') || rest.is_empty() {
        return Err(invalid("expected https://HOST[:PORT], optionally followed by /api2/json"));
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(|| invalid("unclosed [ in an IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => parse_port(port)?,
            None if after.is_empty() => DEFAULT_PVE_PORT,
            None => return Err(invalid("unexpected text after the IPv6 address")),
        };
        (host.to_owned(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), parse_port(port)?),
            None => (rest.to_owned(), DEFAULT_PVE_PORT),
        }
    };
    Ok((host, port))
}

fn format_url(host: &str, port: u16) -> String {
    if host.contains(':') { format!("https://[{host}]:{port}") } else { format!("https://{host}:{port}") }
}

fn parse_port(port: &str) -> Result<u16, TokenFileError> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| TokenFileError::Invalid { key: PORT, reason: "expected a port number 1-65535".to_owned() })
}

fn validate_host(host: &str) -> Result<(), TokenFileError> {
    let ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(TokenFileError::Invalid { key: HOST, reason: "expected a host name or IP address".to_owned() })
    }
}

fn validate_fingerprint(fingerprint: &str) -> Result<(), TokenFileError> {
    let hex: String = fingerprint.chars().filter(|c| *c != ':').collect();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(TokenFileError::Invalid {
            key: FINGERPRINT,
            reason: "expected a SHA-256 fingerprint (64 hex digits, colons allowed)".to_owned(),
        })
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn sample() -> TokenFile {
        let mut token = TokenFile::new(
            "https://pve.lan:8006/api2/json",
            "pve",
            "automation@pve!privatebox".parse().expect("valid token id"),
            Secret::from("0b3c9f1e-1111-2222-3333-444455556666".to_owned()),
        )
        .expect("valid url");
        token.fingerprint = Some("AB:".repeat(31) + "AB");
        token
    }

    #[test]
    fn render_then_parse_gives_the_same_file() {
        let token = sample();
        let again = TokenFile::parse(&token.render()).expect("own output parses");
        assert_eq!(again.render(), token.render());
        assert_eq!(again.secret.expose_secret(), token.secret.expose_secret());
        assert_eq!(again.url, "https://pve.lan:8006");
    }

    #[test]
    fn values_with_quotes_and_dollars_round_trip_without_expansion() {
        let mut token = sample();
        token.storage = Some("it's $HOME `x` \\ \"q\"".to_owned());
        let again = TokenFile::parse(&token.render()).expect("quoted values parse");
        assert_eq!(again.storage, token.storage);
    }

    #[test]
    fn multi_line_values_round_trip_like_a_shell_reads_them() {
        let mut token = sample();
        token.storage = Some("first line \nsecond 'quoted' $line\n".to_owned());
        token.secret = Secret::from("s'e\\c$r`e\"t\nline two".to_owned());
        let again = TokenFile::parse(&token.render()).expect("multi-line single-quoted values parse");
        assert_eq!(again.storage, token.storage);
        assert_eq!(again.secret.expose_secret(), token.secret.expose_secret());
    }

    #[test]
    fn design_note_file_without_url_parses_with_default_port() {
        let text = "PROXMOX_HOST=\"x\"\n";
        assert!(matches!(TokenFile::parse(text), Err(TokenFileError::NeedsShell { line: 1, .. })));
        let text = "export PROXMOX_HOST=192.168.1.10\nPROXMOX_NODE=pve\nPROXMOX_TOKEN_ID=automation@pve!privatebox\n\
                    PROXMOX_TOKEN_SECRET=0b3c9f1e-1111-2222-3333-444455556666\n";
        let token = TokenFile::parse(text).expect("plain words are accepted");
        assert_eq!(token.url, "https://192.168.1.10:8006");
    }

    #[test]
    fn errors_never_echo_the_secret() {
        let text =
            "PROXMOX_HOST='h'\nPROXMOX_NODE='pve'\nPROXMOX_TOKEN_ID='a@pve!tok'\nPROXMOX_TOKEN_SECRET=$SECRETVALUE\n";
        let error = TokenFile::parse(text).expect_err("a $ needs a shell");
        assert!(!error.to_string().contains("SECRETVALUE"), "{error}");
        assert_eq!(error, TokenFileError::NeedsShell { line: 4, key: SECRET.to_owned() });
    }

    #[test]
    fn token_id_without_bang_is_refused_with_the_expected_form() {
        let text = "PROXMOX_HOST='h'\nPROXMOX_NODE='pve'\nPROXMOX_TOKEN_ID='privatebox'\nPROXMOX_TOKEN_SECRET='s'\n";
        let error = TokenFile::parse(text).expect_err("a bare name is not a full id");
        assert!(error.to_string().contains("user@realm!name"), "{error}");
    }

    #[test]
    fn missing_keys_and_duplicates_are_reported() {
        assert_eq!(TokenFile::parse("PROXMOX_NODE='pve'\n").unwrap_err(), TokenFileError::Missing { key: HOST });
        let dup = "PROXMOX_NODE='a'\nPROXMOX_NODE='b'\n";
        assert_eq!(TokenFile::parse(dup).unwrap_err(), TokenFileError::Duplicate { line: 2, key: NODE.to_owned() });
    }

    #[test]
    fn http_urls_are_refused() {
        assert!(
            TokenFile::new("http://pve:8006", "pve", "a@pve!tok".parse().unwrap(), Secret::from("s".to_owned()))
                .is_err()
        );
    }

    #[test]
    fn many_unknown_keys_and_an_unclosed_quote_before_many_lines_parse_in_linear_time() {
        // 40,000 unknown keys: every one checked for duplicates through a set, not a scan.
        let mut text = sample().render();
        for n in 0..40_000 {
            text.push_str(&format!("EXTRA_{n}='x'\n"));
        }
        assert!(TokenFile::parse(&text).is_ok());
        // An unclosed quote followed by 100,000 lines without a quote: one error, not a re-parse per line.
        let mut text = sample().render();
        text.push_str("PROXMOX_STORAGE='never closed\n");
        text.push_str(&"plain line\n".repeat(100_000));
        assert!(matches!(TokenFile::parse(&text), Err(TokenFileError::Unclosed { .. })));
    }
}
