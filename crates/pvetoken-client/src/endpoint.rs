//! A validated server base URL: `https://host:port`, with PVE's defaults filled in.

use std::fmt;

use crate::error::ClientError;

/// The base URL of a server (scheme, host and port only; no path, no credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: url::Url,
}

impl Endpoint {
    /// Parses a PVE address. Accepts `https://host:8006`, `https://host:8006/api2/json`, `host`, `host:8006`;
    /// a missing port is PVE's 8006. Refuses `http://` (PVE only speaks HTTPS) and URLs carrying credentials.
    pub fn parse_pve(input: &str) -> Result<Self, ClientError> {
        Self::parse_with_default_port(input, 8006, &["/api2/json", "/api2/json/", "/api2", "/"])
    }

    /// Parses any HTTPS (or, for local test servers, HTTP) base URL, keeping the port the scheme implies.
    pub fn parse_any(input: &str) -> Result<Self, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl { url: redact(input), reason: reason.to_owned() };
        let with_scheme = if input.contains("://") { input.to_owned() } else { format!("https://{input}") };
        let mut base = url::Url::parse(with_scheme.trim()).map_err(|error| invalid(&error.to_string()))?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(invalid("the scheme must be https"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(invalid("credentials do not belong in the URL"));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        base.set_query(None);
        base.set_fragment(None);
        let path = base.path().trim_end_matches('/').to_owned();
        base.set_path(&path);
        Ok(Self { base })
    }

    fn parse_with_default_port(input: &str, port: u16, strip: &[&str]) -> Result<Self, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl { url: redact(input), reason: reason.to_owned() };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        let with_scheme = if trimmed.contains("://") { trimmed.to_owned() } else { format!("https://{trimmed}") };
        let mut base = url::Url::parse(&with_scheme).map_err(|error| invalid(&error.to_string()))?;
        if base.scheme() == "http" {
            return Err(invalid("Proxmox VE only speaks HTTPS: use https://HOST:8006"));
        }
        if base.scheme() != "https" {
            return Err(invalid("the scheme must be https"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(invalid("credentials do not belong in the URL"));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("it has a query or fragment"));
        }
        if !strip.contains(&base.path()) && !base.path().is_empty() {
            return Err(invalid("the path must be empty or /api2/json"));
        }
        base.set_path("");
        if base.port().is_none() {
            base.set_port(Some(port)).map_err(|()| invalid("cannot set the port"))?;
        }
        Ok(Self { base })
    }

    /// `https://host:port` (no trailing slash).
    pub fn base(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_owned()
    }

    /// `host:port`, for messages.
    pub fn host_port(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        match self.base.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The host name or address.
    pub fn host(&self) -> &str {
        self.base.host_str().unwrap_or_default()
    }

    /// The port (explicit or the scheme's default).
    pub fn port(&self) -> u16 {
        self.base.port_or_known_default().unwrap_or(443)
    }

    /// The URL of a PVE API path: `https://host:port/api2/json{path}`.
    pub fn pve_api(&self, path: &str) -> String {
        format!("{}/api2/json{path}", self.base())
    }

    /// The URL of a path under this base.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.base())
    }
}

/// Drops anything between `://` and `@` so a URL with credentials is not echoed.
fn redact(input: &str) -> String {
    match (input.find("://"), input.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}***{}", &input[..scheme_end + 3], &input[at..]),
        _ => input.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn bare_host_gets_https_and_pve_port() {
        let endpoint = Endpoint::parse_pve("pve.lan").expect("valid");
        assert_eq!(endpoint.base(), "https://pve.lan:8006");
        assert_eq!(endpoint.pve_api("/version"), "https://pve.lan:8006/api2/json/version");
    }

    #[test]
    fn api2_json_suffix_is_accepted_as_packer_writes_it() {
        let endpoint = Endpoint::parse_pve("https://10.0.0.5:8006/api2/json").expect("valid");
        assert_eq!(endpoint.base(), "https://10.0.0.5:8006");
        assert_eq!(endpoint.host_port(), "10.0.0.5:8006");
    }

    #[test]
    fn http_and_embedded_credentials_are_refused_without_echoing_them() {
        let error = Endpoint::parse_pve("http://pve:8006").expect_err("http");
        assert!(error.to_string().contains("HTTPS"), "{error}");
        let error = Endpoint::parse_pve("https://root:hunter2@pve:8006").expect_err("credentials");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
