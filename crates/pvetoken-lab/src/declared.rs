//! The permission check PVE runs before every handler (`PVE::RPCEnvironment::check_api2_permissions`), from the
//! endpoint catalog's declaration for the simulated release: `user => 'all'` and `'world'` pass, `perm` checks its
//! path template filled from the request's parameters, `and` raises the first failure, `or` a bare "Permission check
//! failed", `userid-param`, `userid-group` and `perm-modify` as pve-access-control defines them. Handlers add only
//! the checks that depend on parameters and state (the catalog's handler checks).

use std::collections::BTreeMap;

use pvetoken_acl::AclPath;
use pvetoken_acl::endpoints::{self, Check, Method};

use crate::context::{Caller, Lab, Perm};
use crate::http::{ApiError, Params};
use crate::pve::access;

/// The request's parameters as PVE's `$param`: the path's, then the query's and body's.
pub(crate) struct RequestParams<'a> {
    path: BTreeMap<String, String>,
    params: &'a Params,
}

impl RequestParams<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.path.get(name).map(String::as_str).or_else(|| self.params.get(name))
    }

    /// `PVE::Tools::template_replace`: `{name}` replaced by the parameter (empty when absent).
    fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else { break };
            out.push_str(self.get(&rest[start + 1..start + end]).unwrap_or_default());
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Runs the declared check of the endpoint `method segments` reaches (nothing when the catalog does not know it, or
/// the release does not have it: the route answers as it would).
pub(crate) fn check(
    lab: &Lab,
    caller: &Caller,
    method: &str,
    segments: &[String],
    params: &Params,
) -> Result<(), ApiError> {
    if caller.is_root() {
        return Ok(());
    }
    let Some((endpoint, path)) = Method::parse(method).and_then(|m| endpoints::lookup(m, segments)) else {
        return Ok(());
    };
    let Some(declaration) = endpoint.declaration(lab.version) else { return Ok(()) };
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    let request = RequestParams { path, params };
    run(&perm, &state, &declaration.check, &request, false).map(|_| ())
}

/// One check; `noerr` answers `Ok(false)` where PVE's `noerr` returns 0.
fn run(
    perm: &Perm<'_>,
    state: &crate::state::State,
    check: &Check,
    request: &RequestParams<'_>,
    noerr: bool,
) -> Result<bool, ApiError> {
    match check {
        Check::AnyUser | Check::World | Check::Prose(_) => Ok(true),
        Check::And(parts) => {
            for part in *parts {
                if !run(perm, state, part, request, noerr)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Check::Or(alternatives) => {
            for alternative in *alternatives {
                if run(perm, state, alternative, request, true)? {
                    return Ok(true);
                }
            }
            if noerr { Ok(false) } else { Err(ApiError::forbidden("")) }
        }
        Check::Perm(declared) => {
            if declared.require_param.is_some_and(|name| request.get(name).is_none()) {
                return if noerr { Ok(false) } else { Err(ApiError::forbidden("")) };
            }
            // An unnormalizable path matches no ACL entry: the check fails, as PVE's on an undef path.
            let filled = request.fill(declared.path);
            let path = AclPath::normalize(&filled).map_or(filled, |p| p.as_str().to_owned());
            if noerr {
                Ok(perm.has(&path, declared.privs, declared.any))
            } else {
                perm.check(&path, declared.privs, declared.any).map(|()| true)
            }
        }
        Check::UseridSelf => {
            let userid = request.get("userid").unwrap_or_default();
            if !access::user_exists(state, userid) {
                return if noerr { Ok(false) } else { Err(ApiError::internal(format!("no such user ('{userid}')"))) };
            }
            if perm.caller.authid == userid {
                Ok(true)
            } else if noerr {
                Ok(false)
            } else {
                Err(ApiError::forbidden(""))
            }
        }
        Check::UseridRealm(privs) => {
            let userid = request.get("userid").unwrap_or_default();
            let realm = userid.rsplit_once('@').map(|(_, realm)| realm).unwrap_or_default();
            let path = format!("/access/realm/{realm}");
            if noerr { Ok(perm.has(&path, privs, false)) } else { perm.check(&path, privs, false).map(|()| true) }
        }
        Check::UseridGroup { privs, groups_param } => {
            let userid = request.get("userid").unwrap_or_default();
            let mode = match *groups_param {
                Some("create") => Some(access::GroupsMode::Create),
                Some(_) => Some(access::GroupsMode::Update),
                None => None,
            };
            let allowed = access::userid_group(perm, state, userid, privs, mode, request.get("groups"), noerr)?;
            if allowed || noerr { Ok(allowed) } else { Err(ApiError::forbidden("")) }
        }
        Check::PermModify(template) => {
            // `normalize_path` of nothing (or of a path it refuses) is undef, and the check returns 0 without raising:
            // the handler's parameter check answers instead.
            let Some(path) = AclPath::normalize(&request.fill(template)) else { return Ok(!noerr) };
            access::perm_modify(perm, path.as_str(), noerr)
        }
    }
}
