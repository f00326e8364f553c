//! `/_lab/*`: reset, request log, faults and guest files, for the lab's own root only (a `root@pam` ticket, or
//! HTTP Basic `root@pam:<root password>`).

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::context::Lab;
use crate::control::FaultSpec;
use crate::http::{ApiError, data_body, error_body, reason_phrase, response};

/// The lab's root, by ticket or Basic auth. As in PVE, a ticket (a browser's cookie) changes state only with a
/// valid `CSRFPreventionToken`: otherwise any page the browser visits could reset the lab.
fn is_root(lab: &Lab, method: &str, headers: &hyper::HeaderMap) -> bool {
    if let crate::auth::Presented::Ticket { ticket, csrf } = crate::auth::presented(headers) {
        let now = crate::clock::now();
        let Some(user) = crate::auth::verify_ticket(&lab.ticket_key, &ticket, now) else { return false };
        let reads = matches!(method, "GET" | "HEAD");
        return user == "root@pam"
            && (reads || csrf.is_some_and(|token| crate::auth::verify_csrf(&lab.ticket_key, &user, &token, now)));
    }
    let basic = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some(("root@pam", password)) => {
            let root = lab.root_password.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            crate::auth::constant_time_eq(root.as_bytes(), password.as_bytes())
        }
        _ => false,
    }
}

fn answer(result: Result<Value, ApiError>) -> hyper::Response<Full<Bytes>> {
    match result {
        Ok(data) => response(200, "OK", data_body(&data)),
        Err(e) => response(e.status, &reason_phrase(&e.message), error_body(&e)),
    }
}

/// Handles a `/_lab/` request.
pub(crate) async fn handle(lab: &Lab, request: crate::http::Incoming<'_>) -> hyper::Response<Full<Bytes>> {
    let crate::http::Incoming { method, path, query, headers, body } = request;
    if !is_root(lab, method, headers) {
        return answer(Err(ApiError::new(401, "lab control needs the lab's root@pam credentials")));
    }
    let params = match crate::http::Params::parse(query, b"", None) {
        Ok(p) => p,
        Err(e) => return answer(Err(e)),
    };
    let result = match (method, path.trim_end_matches('/')) {
        ("POST", "/_lab/reset") => lab.reset().map(|()| Value::Null),
        ("GET", "/_lab/requests") => Ok(serde_json::to_value(lab.control.requests()).unwrap_or(Value::Null)),
        ("DELETE", "/_lab/requests") => {
            lab.control.clear_requests();
            Ok(Value::Null)
        }
        ("GET", "/_lab/faults") => Ok(serde_json::to_value(lab.control.faults()).unwrap_or(Value::Null)),
        ("POST", "/_lab/faults") => match serde_json::from_slice::<FaultSpec>(body) {
            Ok(fault) => {
                lab.control.add_fault(fault);
                Ok(Value::Null)
            }
            Err(e) => Err(ApiError::new(
                400,
                format!(
                    "fault must be JSON like {{\"method\":\"POST\",\"path\":\"/nodes/*/qemu/*/clone\",\"status\":500,\"count\":1}}: {e}"
                ),
            )),
        },
        ("DELETE", "/_lab/faults") => {
            lab.control.clear_faults();
            Ok(Value::Null)
        }
        ("GET", "/_lab/guest-files") => guest_files(lab, &params),
        ("POST", "/_lab/agent") => match serde_json::from_slice::<AgentSwitch>(body) {
            Ok(switch) => lab.set_agent(switch.vmid, switch.answers, switch.exec_disabled).map(|()| Value::Null),
            Err(e) => Err(ApiError::new(
                400,
                format!(
                    "agent switch must be JSON like {{\"vmid\":100,\"answers\":false,\"exec_disabled\":false}}: {e}"
                ),
            )),
        },
        ("POST", "/_lab/corrupt-file-read") => match serde_json::from_slice::<CorruptReads>(body) {
            Ok(corrupt) => {
                lab.control.corrupt_file_reads(corrupt.vmid, corrupt.count);
                Ok(Value::Null)
            }
            Err(e) => Err(ApiError::new(400, format!("must be JSON like {{\"vmid\":100,\"count\":1}}: {e}"))),
        },
        _ => Err(ApiError::not_implemented(method, path)),
    };
    answer(result)
}

/// `POST /_lab/agent`: switch a VM's guest agent (fields left out stay as they are).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSwitch {
    vmid: u64,
    /// `false`: the agent stops answering (`QEMU guest agent is not running`); `true`: it answers again.
    #[serde(default)]
    answers: Option<bool>,
    /// `true`: the agent blocks `guest-exec` / `guest-exec-status`.
    #[serde(default)]
    exec_disabled: Option<bool>,
}

/// `POST /_lab/corrupt-file-read`: the next `count` successful file-reads of `vmid` answer altered content.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CorruptReads {
    vmid: u64,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

fn guest_files(lab: &Lab, params: &crate::http::Params) -> Result<Value, ApiError> {
    let vmid =
        params.uint("vmid")?.ok_or_else(|| ApiError::param("vmid", "property is missing and it is not optional"))?;
    let state = lab.read();
    let vm = state.guests.vms.get(&vmid).ok_or_else(|| ApiError::internal(format!("VM {vmid} does not exist")))?;
    let files: serde_json::Map<String, Value> = vm
        .files
        .iter()
        .filter(|(path, _)| params.get("path").is_none_or(|p| p == path.as_str()))
        .map(|(path, file)| {
            let text = String::from_utf8(file.bytes()).ok();
            (
                path.clone(),
                json!({
                    "content_base64": file.content,
                    "content": text,
                    "mode": format!("{:04o}", file.mode),
                    "owner": file.owner,
                    "group": file.group,
                }),
            )
        })
        .collect();
    Ok(Value::Object(files))
}
