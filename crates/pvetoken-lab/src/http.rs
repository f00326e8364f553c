//! PVE's transport: parameters from the query and form/JSON bodies, the `{"data": ...}` envelope, error messages
//! with per-parameter `errors`, the message's first line as the HTTP reason phrase, and PVE's exact content type.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;

/// PVE's content type, byte for byte (the npm `proxmox-api` client accepts nothing else).
pub(crate) const CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// An API error: status, PVE's message and optional per-parameter errors.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) message: String,
    pub(crate) errors: Option<BTreeMap<String, String>>,
}

impl ApiError {
    /// Any status with a message (PVE adds a trailing newline to most messages; we add it when missing).
    pub(crate) fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), errors: None }
    }

    /// HTTP 500 with a plain message (how PVE reports `die "..."` in handlers).
    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, message)
    }

    /// HTTP 403 `Permission check failed (<what>)`, or bare when `what` is empty.
    pub(crate) fn forbidden(what: &str) -> ApiError {
        if what.is_empty() {
            ApiError::new(403, "Permission check failed")
        } else {
            ApiError::new(403, format!("Permission check failed ({what})"))
        }
    }

    /// HTTP 400 `Parameter verification failed.` with one parameter error.
    pub(crate) fn param(name: &str, text: impl Into<String>) -> ApiError {
        let mut errors = BTreeMap::new();
        errors.insert(name.to_owned(), text.into());
        ApiError::params(errors)
    }

    /// HTTP 400 with several parameter errors.
    pub(crate) fn params(errors: BTreeMap<String, String>) -> ApiError {
        ApiError { status: 400, message: "Parameter verification failed.".to_owned(), errors: Some(errors) }
    }

    /// The error as PVE's handlers turn a parameter exception raised inside the config lock into text: HTTP 500
    /// `<prefix>400 Parameter verification failed.\n<param>: <text>\n`.
    pub(crate) fn param_in_lock(prefix: &str, name: &str, text: &str) -> ApiError {
        ApiError::internal(format!("{prefix}400 Parameter verification failed.\n{name}: {}", text.trim_end()))
    }

    /// `Method 'GET /api2/json/x' not implemented`.
    pub(crate) fn not_implemented(method: &str, path: &str) -> ApiError {
        ApiError::new(501, format!("Method '{method} {path}' not implemented"))
    }
}

/// The JSON body of a successful answer.
pub(crate) fn data_body(data: &Value) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"data\":");
    // serde_json cannot fail on a Value.
    let _ = serde_json::to_writer(&mut out, data);
    out.push(b'}');
    Bytes::from(out)
}

/// The JSON body of an error answer.
pub(crate) fn error_body(error: &ApiError) -> Bytes {
    let mut message = error.message.clone();
    if !message.ends_with('\n') {
        message.push('\n');
    }
    let mut body = serde_json::Map::new();
    body.insert("data".into(), Value::Null);
    body.insert("message".into(), Value::String(message));
    if let Some(errors) = &error.errors {
        let map: serde_json::Map<String, Value> =
            errors.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        body.insert("errors".into(), Value::Object(map));
    }
    Bytes::from(serde_json::to_vec(&Value::Object(body)).unwrap_or_default())
}

/// A valid HTTP reason phrase from the message's first line (control characters replaced).
pub(crate) fn reason_phrase(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let cleaned: String = first.chars().map(|c| if c == '\t' || (' '..='~').contains(&c) { c } else { '?' }).collect();
    if cleaned.trim().is_empty() { "Error".to_owned() } else { cleaned }
}

/// Builds an HTTP response with PVE's headers and a custom reason phrase.
pub(crate) fn response(status: u16, reason: &str, body: Bytes) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("max-age=0"));
    headers.insert(hyper::header::PRAGMA, hyper::header::HeaderValue::from_static("no-cache"));
    headers.insert(hyper::header::SERVER, hyper::header::HeaderValue::from_static("pve-api-daemon/3.0"));
    // hyper writes the canonical phrase itself; only PVE's own messages need the extension (and its allocation).
    let canonical = response.status().canonical_reason();
    if canonical != Some(reason)
        && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec())
    {
        response.extensions_mut().insert(phrase);
    }
    response
}

/// Request parameters: body first, then the query (which wins), as PVE merges them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Parses the query string and the body (JSON when the content type says so, else urlencoded form).
    pub(crate) fn parse(query: Option<&str>, body: &[u8], content_type: Option<&str>) -> Result<Params, ApiError> {
        let mut map = BTreeMap::new();
        if !body.is_empty() {
            let is_json = content_type.is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
            if is_json {
                let value: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::new(400, format!("unable to parse JSON body - {e}")))?;
                let Value::Object(object) = value else {
                    return Err(ApiError::new(400, "JSON body must be an object"));
                };
                for (k, v) in object {
                    let text = match v {
                        Value::Null => continue,
                        Value::String(s) => s,
                        Value::Bool(b) => if b { "1" } else { "0" }.to_owned(),
                        // An array is the same key repeated (`command` of agent/exec).
                        Value::Array(items) if items.iter().all(Value::is_string) => {
                            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\0")
                        }
                        other => other.to_string(),
                    };
                    map.insert(k, text);
                }
            } else {
                merge_form(&mut map, body);
            }
        }
        if let Some(q) = query {
            let mut from_query = BTreeMap::new();
            merge_form(&mut from_query, q.as_bytes());
            map.extend(from_query);
        }
        map.remove("_dc");
        Ok(Params { map })
    }

    /// A parameter's value.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// A parameter that must be present.
    pub(crate) fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key).ok_or_else(|| ApiError::param(key, "property is missing and it is not optional"))
    }

    /// A boolean parameter (`1/0`, `true/false`, `yes/no`, `on/off`).
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Some(true)),
                "0" | "false" | "no" | "off" => Ok(Some(false)),
                _ => Err(ApiError::param(key, format!("type check ('boolean') failed - got '{v}'"))),
            },
        }
    }

    /// A non-negative integer parameter.
    pub(crate) fn uint(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| ApiError::param(key, format!("type check ('integer') failed - got '{v}'"))),
        }
    }

    /// All parameter names and values.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn merge_form(map: &mut BTreeMap<String, String>, bytes: &[u8]) {
    for (k, v) in form_urlencoded::parse(bytes) {
        // Repeated keys join with NUL, as PVE does.
        match map.get_mut(k.as_ref()) {
            Some(existing) if !existing.is_empty() => {
                existing.push('\0');
                existing.push_str(&v);
            }
            _ => {
                map.insert(k.into_owned(), v.into_owned());
            }
        }
    }
}

/// Splits a path after `/api2/json` into percent-decoded segments (empty segments dropped).
pub(crate) fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

/// A request as read: its method, path, query string, headers and whole body.
#[derive(Clone, Copy)]
pub(crate) struct Incoming<'r> {
    pub(crate) method: &'r str,
    pub(crate) path: &'r str,
    pub(crate) query: Option<&'r str>,
    pub(crate) headers: &'r hyper::HeaderMap,
    pub(crate) body: &'r [u8],
}

impl<'r> Incoming<'r> {
    pub(crate) fn new(
        method: &'r hyper::Method,
        path: &'r str,
        query: Option<&'r str>,
        headers: &'r hyper::HeaderMap,
        body: &'r [u8],
    ) -> Incoming<'r> {
        Incoming { method: method.as_str(), path, query, headers, body }
    }
}
