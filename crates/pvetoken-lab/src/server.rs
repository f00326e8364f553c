//! The PVE simulator's request path: faults, body limit, parameters, routing, authentication, token refusal,
//! handlers, the request log. What the handlers work with (the lab's state, the caller, permission checks) is
//! `context.rs`; the handlers are `pve/`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use pvetoken_acl::Subject;
use serde_json::Value;

use crate::auth::{self, Presented};
use crate::clock::now;
use crate::context::{Caller, Lab};
use crate::control::Entry;
use crate::http::{ApiError, Incoming, Params, data_body, error_body, reason_phrase, response};
use crate::pve::nodes::agent::Query;
use crate::pve::nodes::{self, agent, qemu, tasks};
use crate::pve::{access, cluster, pools, storage};

/// Largest accepted request body: pve-http-server's `$limit_max_post` (64 KiB); larger posts are answered
/// 501 "for data too large" (proxmox/pve-http-server `src/PVE/APIServer/AnyEvent.pm`).
const MAX_BODY: usize = 64 * 1024;

/// What a handler gets: the lab, the caller (none on a `world` route without credentials), the parameters and the
/// path segments the pattern's `*` matched.
pub(crate) struct Call<'a> {
    pub(crate) lab: &'a Lab,
    caller: Option<&'a Caller>,
    pub(crate) params: &'a Params,
    caps: Vec<String>,
}

impl Call<'_> {
    /// The authenticated caller.
    pub(crate) fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller.ok_or_else(|| ApiError::new(401, "No ticket"))
    }

    /// The `i`-th `*` segment (empty when the pattern has fewer).
    pub(crate) fn cap(&self, i: usize) -> &str {
        self.caps.get(i).map(String::as_str).unwrap_or_default()
    }

    /// `nodes/{node}/...`: the node must be this one (else PVE's proxy fails to resolve it).
    fn node(&self) -> Result<(), ApiError> {
        let node = self.cap(0);
        if node == self.lab.node {
            return Ok(());
        }
        Err(ApiError::internal(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
        )))
    }

    /// `nodes/{node}/qemu/{vmid}/...`: the VM id parsed (the router checked the node).
    pub(crate) fn vmid(&self) -> Result<u64, ApiError> {
        qemu::parse_vmid("vmid", self.cap(1))
    }
}

/// A route's handler.
type Handler = fn(&Call<'_>) -> Result<Value, ApiError>;

/// One route: method, pattern (segments after `/api2/json`; `*` = one segment), its handler, world-readable, tokens
/// allowed. Its permission declaration is the endpoint catalog's (`declared.rs`), found by method and path.
struct Route {
    method: &'static str,
    pattern: &'static str,
    handler: Handler,
    world: bool,
    allow_token: bool,
}

const fn r(method: &'static str, pattern: &'static str, handler: Handler) -> Route {
    Route { method, pattern, handler, world: false, allow_token: true }
}

const ROUTES: &[Route] = &[
    r("GET", "", |_| Ok(directory_index("", "subdir"))),
    r("GET", "version", |c| Ok(access::version(c.lab))),
    r("GET", "access", |_| Ok(directory_index("access", "subdir"))),
    Route { method: "GET", pattern: "access/ticket", handler: |_| Ok(Value::Null), world: true, allow_token: true },
    Route {
        method: "POST",
        pattern: "access/ticket",
        handler: |c| access::login(c.lab, c.params),
        world: true,
        allow_token: false,
    },
    Route {
        method: "PUT",
        pattern: "access/password",
        handler: |c| access::password(c.lab, c.caller()?, c.params),
        world: false,
        allow_token: false,
    },
    r("GET", "access/permissions", |c| access::permissions(c.lab, c.caller()?, c.params)),
    r("GET", "access/users", |c| access::users(c.lab, c.caller()?, c.params)),
    r("POST", "access/users", |c| access::user_create(c.lab, c.params)),
    r("GET", "access/users/*", |c| access::user_get(c.lab, c.cap(0))),
    r("PUT", "access/users/*", |c| access::user_update(c.lab, c.params, c.cap(0))),
    r("DELETE", "access/users/*", |c| access::user_delete(c.lab, c.cap(0))),
    r("GET", "access/users/*/token", |c| access::tokens(c.lab, c.cap(0))),
    r("GET", "access/users/*/token/*", |c| access::token_get(c.lab, c.cap(0), c.cap(1))),
    r("POST", "access/users/*/token/*", |c| access::token_create(c.lab, c.params, c.cap(0), c.cap(1))),
    r("PUT", "access/users/*/token/*", |c| access::token_update(c.lab, c.params, c.cap(0), c.cap(1))),
    r("DELETE", "access/users/*/token/*", |c| access::token_delete(c.lab, c.cap(0), c.cap(1))),
    r("GET", "access/roles", |c| access::roles(c.lab)),
    r("POST", "access/roles", |c| access::role_create(c.lab, c.params)),
    r("GET", "access/roles/*", |c| access::role_get(c.lab, c.cap(0))),
    r("PUT", "access/roles/*", |c| access::role_update(c.lab, c.params, c.cap(0))),
    r("DELETE", "access/roles/*", |c| access::role_delete(c.lab, c.cap(0))),
    r("GET", "access/acl", |c| access::acl(c.lab, c.caller()?)),
    r("PUT", "access/acl", |c| access::acl_update(c.lab, c.caller()?, c.params)),
    r("GET", "access/groups", |c| access::groups(c.lab, c.caller()?)),
    r("POST", "access/groups", |c| access::group_create(c.lab, c.params)),
    r("GET", "access/groups/*", |c| access::group_get(c.lab, c.cap(0))),
    r("PUT", "access/groups/*", |c| access::group_update(c.lab, c.params, c.cap(0))),
    r("DELETE", "access/groups/*", |c| access::group_delete(c.lab, c.cap(0))),
    Route {
        method: "GET",
        pattern: "access/domains",
        handler: |_| Ok(access::domains()),
        world: true,
        allow_token: true,
    },
    r("GET", "access/domains/*", |c| access::domain_get(c.cap(0))),
    r("GET", "cluster/resources", |c| cluster::resources(c.lab, c.caller()?, c.params)),
    r("GET", "cluster/nextid", |c| cluster::nextid(c.lab, c.params)),
    r("GET", "cluster/status", |c| cluster::cluster_status(c.lab)),
    r("GET", "cluster/tasks", |c| cluster::cluster_tasks(c.lab, c.caller()?)),
    r("GET", "cluster/ha/resources/*", |c| cluster::ha_resource(c.cap(0))),
    r("GET", "storage", |c| storage::storage_index(c.lab, c.caller()?, c.params)),
    r("GET", "storage/*", |c| storage::storage_read(c.lab, c.cap(0))),
    r("GET", "pools", |c| pools::pools(c.lab, c.caller()?, c.params)),
    r("POST", "pools", |c| pools::pool_create(c.lab, c.params)),
    r("PUT", "pools", |c| pools::pool_update_v8(c.lab, c.caller()?, c.params)),
    r("DELETE", "pools", |c| pools::pool_delete_v8(c.lab, c.params)),
    r("GET", "pools/*", |c| pools::pool_get(c.lab, c.cap(0))),
    r("PUT", "pools/*", |c| pools::pool_update(c.lab, c.caller()?, c.params, c.cap(0))),
    r("DELETE", "pools/*", |c| pools::pool_delete(c.lab, c.cap(0))),
    r("GET", "nodes", |c| nodes::nodes(c.lab, c.caller()?)),
    r("GET", "nodes/*", |_| Ok(directory_index("nodes/*", "name"))),
    r("GET", "nodes/*/status", |c| nodes::node_status(c.lab)),
    r("GET", "nodes/*/network", |c| nodes::node_network(c.lab, c.caller()?)),
    r("GET", "nodes/*/apt", |_| Ok(directory_index("nodes/*/apt", "id"))),
    r("GET", "nodes/*/apt/versions", |c| nodes::apt_versions(c.lab)),
    r("GET", "nodes/*/lxc", |_| Ok(serde_json::json!([]))),
    r("GET", "nodes/*/qemu", |c| qemu::qemu_list(c.lab, c.caller()?)),
    r("POST", "nodes/*/qemu", |c| qemu::qemu_create(c.lab, c.caller()?, c.params)),
    r("GET", "nodes/*/qemu/*", |c| {
        qemu::vm_exists(c.lab, c.vmid()?).map(|()| directory_index("nodes/*/qemu/*", "subdir"))
    }),
    r("DELETE", "nodes/*/qemu/*", |c| qemu::vm_delete(c.lab, c.caller()?, c.vmid()?)),
    r("GET", "nodes/*/qemu/*/config", |c| qemu::config_get(c.lab, c.vmid()?)),
    r("POST", "nodes/*/qemu/*/config", |c| qemu::config_set(c.lab, c.caller()?, c.params, c.vmid()?, true)),
    r("PUT", "nodes/*/qemu/*/config", |c| qemu::config_set(c.lab, c.caller()?, c.params, c.vmid()?, false)),
    r("GET", "nodes/*/qemu/*/pending", |c| qemu::pending(c.lab, c.vmid()?)),
    r("GET", "nodes/*/qemu/*/status/current", |c| qemu::status_current(c.lab, c.vmid()?)),
    r("POST", "nodes/*/qemu/*/status/*", |c| qemu::status_action(c.lab, c.caller()?, c.vmid()?, c.cap(2))),
    r("POST", "nodes/*/qemu/*/clone", |c| qemu::clone(c.lab, c.caller()?, c.params, c.vmid()?)),
    r("POST", "nodes/*/qemu/*/template", |c| qemu::template(c.lab, c.caller()?, c.vmid()?)),
    r("PUT", "nodes/*/qemu/*/resize", |c| qemu::resize(c.lab, c.caller()?, c.params, c.vmid()?)),
    r("PUT", "nodes/*/qemu/*/unlink", |c| qemu::unlink(c.lab, c.params, c.vmid()?)),
    r("POST", "nodes/*/qemu/*/move_disk", |c| qemu::move_disk(c.lab, c.caller()?, c.params, c.vmid()?)),
    r("GET", "nodes/*/qemu/*/snapshot", |c| qemu::snapshots(c.lab, c.vmid()?)),
    r("GET", "nodes/*/qemu/*/agent", |c| c.vmid().map(|_| directory_index("nodes/*/qemu/*/agent", "name"))),
    r("POST", "nodes/*/qemu/*/agent/ping", |c| agent::query(c.lab, c.params, c.vmid()?, Query::Ping)),
    r("GET", "nodes/*/qemu/*/agent/network-get-interfaces", |c| {
        agent::query(c.lab, c.params, c.vmid()?, Query::Interfaces)
    }),
    r("GET", "nodes/*/qemu/*/agent/get-osinfo", |c| agent::query(c.lab, c.params, c.vmid()?, Query::OsInfo)),
    r("GET", "nodes/*/qemu/*/agent/get-host-name", |c| agent::query(c.lab, c.params, c.vmid()?, Query::HostName)),
    r("GET", "nodes/*/qemu/*/agent/info", |c| agent::query(c.lab, c.params, c.vmid()?, Query::Info)),
    r("POST", "nodes/*/qemu/*/agent/file-write", |c| agent::file_write(c.lab, c.params, c.vmid()?)),
    r("GET", "nodes/*/qemu/*/agent/file-read", |c| agent::query(c.lab, c.params, c.vmid()?, Query::FileRead)),
    r("POST", "nodes/*/qemu/*/agent/exec", |c| agent::exec(c.lab, c.params, c.vmid()?)),
    r("GET", "nodes/*/qemu/*/agent/exec-status", |c| agent::exec_status(c.lab, c.params, c.vmid()?)),
    r("GET", "nodes/*/tasks", |c| tasks::tasks(c.lab, c.caller()?)),
    r("GET", "nodes/*/tasks/*/status", |c| tasks::task_status(c.lab, c.caller()?, c.cap(1))),
    r("GET", "nodes/*/tasks/*/log", |c| tasks::task_log(c.lab, c.caller()?, c.cap(1))),
    r("GET", "nodes/*/storage", |c| storage::storage_list(c.lab, c.caller()?, c.params)),
    r("GET", "nodes/*/storage/*/status", |c| storage::storage_status(c.lab, c.cap(1))),
    r("GET", "nodes/*/storage/*/content", |c| storage::storage_content(c.lab, c.caller()?, c.params, c.cap(1))),
    r("GET", "nodes/*/storage/*/content/*", |c| storage::volume_get(c.lab, c.caller()?, c.cap(1), c.cap(2))),
];

/// A directory index as PVE answers it: one object per subdirectory, named by `key` (`subdir`, `name` or `id`, as
/// the endpoint names it), derived from the route table: the next segment of every route below `pattern` (`*` = any
/// one segment), in table order.
pub(crate) fn directory_index(pattern: &str, key: &str) -> Value {
    let prefix: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let mut names: Vec<&'static str> = Vec::new();
    for route in PATTERNS.iter() {
        if route.len() > prefix.len()
            && route.iter().zip(&prefix).all(|(r, p)| r == p || *p == "*" || *r == "*")
            && route[prefix.len()] != "*"
            && !names.contains(&route[prefix.len()])
        {
            names.push(route[prefix.len()]);
        }
    }
    Value::Array(names.into_iter().map(|name| serde_json::json!({ key: name })).collect())
}

/// The segments of every route's pattern, split once.
static PATTERNS: std::sync::LazyLock<Vec<Vec<&'static str>>> = std::sync::LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|route| if route.pattern.is_empty() { Vec::new() } else { route.pattern.split('/').collect() })
        .collect()
});

fn find_route(method: &str, segs: &[String]) -> (Option<&'static Route>, bool) {
    let mut path_known = false;
    for (route, pattern) in ROUTES.iter().zip(PATTERNS.iter()) {
        if pattern.len() != segs.len() {
            continue;
        }
        if pattern.iter().zip(segs).all(|(p, s)| *p == "*" || p == s) {
            path_known = true;
            if route.method == method {
                return (Some(route), true);
            }
        }
    }
    (None, path_known)
}

/// Captured `*` segments of a route.
fn captures(route: &Route, segs: &[String]) -> Vec<String> {
    if route.pattern.is_empty() {
        return Vec::new();
    }
    route.pattern.split('/').zip(segs).filter(|(p, _)| *p == "*").map(|(_, s)| s.clone()).collect()
}

/// The result of handling one request.
pub(crate) struct Outcome {
    pub(crate) status: u16,
    pub(crate) reason: std::borrow::Cow<'static, str>,
    pub(crate) body: Bytes,
    pub(crate) authid: Option<String>,
    /// An authentication failure (delayed when configured).
    pub(crate) auth_failure: bool,
}

impl Outcome {
    pub(crate) fn ok(data: &Value, authid: Option<String>) -> Outcome {
        Outcome::ok_body(data_body(data), authid)
    }

    pub(crate) fn ok_body(body: Bytes, authid: Option<String>) -> Outcome {
        Outcome { status: 200, reason: std::borrow::Cow::Borrowed("OK"), body, authid, auth_failure: false }
    }

    pub(crate) fn error(error: &ApiError, authid: Option<String>) -> Outcome {
        Outcome {
            status: error.status,
            reason: std::borrow::Cow::Owned(reason_phrase(&error.message)),
            body: error_body(error),
            authid,
            auth_failure: false,
        }
    }

    fn unauthorized(message: &str) -> Outcome {
        let mut outcome = Outcome::error(&ApiError::new(401, message), None);
        outcome.auth_failure = true;
        outcome
    }
}

enum AuthResult {
    Ok(Caller),
    Anonymous,
    Failed(&'static str),
}

fn authenticate(lab: &Lab, headers: &hyper::HeaderMap, method: &str) -> AuthResult {
    let now = now();
    match auth::presented(headers) {
        Presented::None => AuthResult::Anonymous,
        Presented::Ticket { ticket, csrf } => {
            let Some(user) = auth::verify_ticket(&lab.ticket_key, &ticket, now) else {
                return AuthResult::Failed("permission denied - invalid PVE ticket");
            };
            let Ok(subject) = user.parse::<Subject>() else {
                return AuthResult::Failed("permission denied - invalid PVE ticket");
            };
            {
                let state = lab.read();
                let enabled = match &subject {
                    Subject::User(u) => {
                        state.cfg.user(u).is_some_and(|u| u.enable && (u.expire == 0 || u.expire >= now))
                    }
                    Subject::Token(_) => false,
                };
                if !enabled {
                    return AuthResult::Failed("permission denied - invalid PVE ticket");
                }
            }
            if method != "GET" {
                let valid = csrf.as_deref().is_some_and(|t| auth::verify_csrf(&lab.ticket_key, &user, t, now));
                if !valid {
                    return AuthResult::Failed("Permission denied - invalid csrf token");
                }
            }
            AuthResult::Ok(Caller { authid: user, subject })
        }
        Presented::Token(value) => {
            let state = lab.read();
            match pvetoken_acl::auth::verify_token(&state.cfg, &state.tokens, &value, now) {
                Ok(token) => AuthResult::Ok(Caller { authid: token.to_string(), subject: Subject::Token(token) }),
                Err(_) => AuthResult::Failed("authentication failure"),
            }
        }
    }
}

/// Handles one API request (after the body was read).
pub(crate) fn dispatch(lab: &Lab, request: Incoming<'_>) -> Outcome {
    let Incoming { method, path, query, headers, body } = request;
    if !["GET", "POST", "PUT", "DELETE"].contains(&method) {
        return Outcome::error(&ApiError::new(501, format!("method '{method}' not available")), None);
    }
    let Some(rel) = path.strip_prefix("/api2/json").filter(|r| r.is_empty() || r.starts_with('/')) else {
        return Outcome::error(&ApiError::new(501, "no such uri"), None);
    };
    let segs = crate::http::segments(rel);
    let (route, _path_known) = find_route(method, &segs);
    let world = route.is_some_and(|r| r.world);
    let caller = match authenticate(lab, headers, method) {
        AuthResult::Ok(caller) => Some(caller),
        AuthResult::Anonymous if world => None,
        AuthResult::Anonymous => return Outcome::unauthorized("No ticket"),
        AuthResult::Failed(_) if world => None,
        AuthResult::Failed(message) => return Outcome::unauthorized(message),
    };
    let authid = caller.as_ref().map(|c| c.authid.clone());
    let Some(route) = route else {
        return Outcome::error(&ApiError::not_implemented(method, path), authid);
    };
    if let Some(c) = &caller
        && c.is_token()
        && !route.allow_token
    {
        let rel_uri = if rel.is_empty() { "/" } else { rel };
        let error =
            ApiError::forbidden(&format!("URI '{rel_uri}' not available with API token, need proper ticket.\n"));
        return Outcome::error(&error, authid);
    }
    let content_type = headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let params = match Params::parse(query, body, content_type) {
        Ok(p) => p,
        Err(e) => return Outcome::error(&e, authid),
    };
    // PVE checks the declared permissions before the handler runs (and before it verifies the parameters).
    if let Some(caller) = &caller
        && let Err(error) = crate::declared::check(lab, caller, method, &segs, &params)
    {
        return Outcome::error(&error, authid);
    }
    if route.pattern == "access/permissions"
        && let Some(caller) = &caller
    {
        // Answered from the per-generation cache of serialized bodies.
        return match access::permissions_body(lab, caller, &params) {
            Ok(body) => Outcome::ok_body(body, authid),
            Err(e) => Outcome::error(&e, authid),
        };
    }
    let call = Call { lab, caller: caller.as_ref(), params: &params, caps: captures(route, &segs) };
    // Every `nodes/{node}/...` handler starts where PVE's does: a node it does not know is a failed host lookup.
    let checked = if route.pattern.starts_with("nodes/*") { call.node() } else { Ok(()) };
    let result = checked.and_then(|()| (route.handler)(&call));
    match result {
        Ok(data) => Outcome::ok(&data, authid),
        Err(e) => {
            let mut outcome = Outcome::error(&e, authid);
            // A failed login is an authentication failure too (PVE delays it the same way).
            outcome.auth_failure = e.status == 401;
            outcome
        }
    }
}

/// Serves one request on the PVE listener: faults, body limit, dispatch, auth delay, request log. An `Err` makes
/// hyper close the connection without an answer (the "drop the connection" fault).
pub(crate) async fn serve_request(
    lab: Arc<Lab>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    if path.starts_with("/_lab/") || path == "/_lab" {
        let (parts, body) = request.into_parts();
        let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return Ok(too_large()),
        };
        let incoming = Incoming::new(&method, &path, query.as_deref(), &parts.headers, &bytes);
        return Ok(crate::lab_control::handle(&lab, incoming).await);
    }
    if let Some(fault) = lab.control.take(method.as_str(), &path) {
        if !fault.latency.is_zero() {
            tokio::time::sleep(fault.latency).await;
        }
        if fault.drop_connection {
            lab.control.record(Entry::new(method, path, query, 0));
            return Err(std::io::Error::other("connection dropped by an injected fault"));
        }
        if let Some((status, message)) = fault.status {
            let outcome = Outcome::error(&ApiError::new(status, message), None);
            lab.control.record(Entry::new(method, path, query, status));
            return Ok(response(outcome.status, &outcome.reason, outcome.body));
        }
    }
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        lab.control.record(Entry::new(method, path, query, 501));
        return Ok(too_large());
    }
    let (parts, body) = request.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            lab.control.record(Entry::new(method, path, query, 501));
            return Ok(too_large());
        }
    };
    let incoming = Incoming::new(&method, &path, query.as_deref(), &parts.headers, &bytes);
    let outcome = dispatch(&lab, incoming);
    let content_type = parts.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let body_keys = if bytes.is_empty() {
        Vec::new()
    } else {
        Params::parse(None, &bytes, content_type)
            .map(|p| p.iter().map(|(k, _)| k.to_owned()).collect())
            .unwrap_or_default()
    };
    if outcome.auth_failure && !lab.auth_failure_delay.is_zero() {
        tokio::time::sleep(lab.auth_failure_delay).await;
    }
    let length = outcome.body.len();
    crate::access_log::write(
        &lab,
        method.as_str(),
        &path,
        query.as_deref(),
        outcome.status,
        outcome.authid.as_deref(),
        length,
    );
    let answer = response(outcome.status, &outcome.reason, outcome.body);
    lab.control.record(Entry::new(method, path, query, outcome.status).by(outcome.authid).with_body(body_keys));
    Ok(answer)
}

fn too_large() -> hyper::Response<Full<Bytes>> {
    let error = ApiError::new(501, "for data too large");
    response(501, &reason_phrase(&error.message), error_body(&error))
}

#[cfg(test)]
mod tests {
    use pvetoken_acl::endpoints::{self, Method};

    use super::ROUTES;

    /// A catalog template with its parameters as `*`, as the lab's patterns write them.
    fn wild(template: &str) -> String {
        template
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| if s.starts_with('{') { "*" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Whether a lab pattern covers a catalog template: equal segments, a lab `*` standing for a parameter or for
    /// one of several literal endpoints (`status/*` for `status/start`, `status/stop`, ...).
    fn covers(pattern: &str, template: &str) -> bool {
        let template = wild(template);
        let (lab, catalog): (Vec<&str>, Vec<&str>) = (
            pattern.split('/').filter(|s| !s.is_empty()).collect(),
            template.split('/').filter(|s| !s.is_empty()).collect(),
        );
        lab.len() == catalog.len() && lab.iter().zip(&catalog).all(|(l, c)| *l == "*" || l == c)
    }

    #[test]
    fn every_lab_route_is_an_endpoint_of_the_catalog() {
        let outside: Vec<String> = ROUTES
            .iter()
            .filter(|route| {
                let method = Method::parse(route.method);
                !endpoints::all().iter().any(|e| Some(e.method) == method && covers(route.pattern, e.path))
            })
            .map(|route| format!("{} /{}", route.method, route.pattern))
            .collect();
        assert!(outside.is_empty(), "lab routes the endpoint catalog does not describe: {outside:?}");
    }

    /// The endpoints consumers call that the lab answers: each one is a route. (The catalog also lists endpoints
    /// no consumer of the lab calls yet, such as migrate or the HMP monitor.)
    #[test]
    fn the_lab_answers_the_calls_of_its_consumers() {
        for id in [
            "access.permissions",
            "access.tokens.create",
            "access.acl.update",
            "qemu.clone",
            "qemu.config.post",
            "qemu.resize",
            "qemu.unlink",
            "qemu.move_disk",
            "storage.config.index",
            "storage.config.read",
            "pools.index",
            "nodes.apt.versions",
        ] {
            let endpoint = endpoints::by_id(id).unwrap_or_else(|| panic!("{id} is not in the catalog"));
            assert!(
                ROUTES.iter().any(|r| r.method == endpoint.method.as_str() && covers(r.pattern, endpoint.path)),
                "the lab has no route for {id} ({})",
                endpoint.call()
            );
        }
    }
}
