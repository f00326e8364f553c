//! `/version` and `/access/*` with PVE's permission checks (proxmox/pve-access-control `src/PVE/API2/*.pm`), errors and per-release
//! differences, on top of pvetoken-acl's model, mutations and evaluator.

use std::collections::BTreeSet;

use pvetoken_acl::mutate::{TokenUpdate, UserUpdate, parse_privilege_list};
use pvetoken_acl::{
    AccessError, AclSubject, AclUpdate, GroupId, Permissions, RoleId, Subject, Token, TokenId, TokenName, TokenSecret,
    User, UserId,
};
use serde_json::{Map, Value, json};

use crate::auth;
use crate::clock::now;
use crate::context::{Caller, Lab, Perm};
use crate::http::{ApiError, Params};
use crate::state::State;

/// PVE's `split_list`: NUL separates when present, else commas, semicolons and whitespace.
pub(crate) fn split_list(text: &str) -> Vec<&str> {
    if text.contains('\0') {
        return text.split('\0').filter(|s| !s.is_empty()).collect();
    }
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace()).filter(|s| !s.is_empty()).collect()
}

fn user_format(name: &str, value: &str) -> ApiError {
    ApiError::param(name, format!("invalid format - value '{value}' does not look like a valid user name\n"))
}

fn parse_userid(name: &str, value: &str) -> Result<UserId, ApiError> {
    value.parse::<UserId>().map_err(|_| user_format(name, value))
}

fn flags(perms: &Permissions) -> Value {
    let map: Map<String, Value> =
        perms.iter().map(|(p, flag)| (p.as_str().to_owned(), json!(u8::from(flag)))).collect();
    Value::Object(map)
}

/// Endpoints without authentication (also answered for authenticated callers).
/// `GET /access/domains` (`user => 'world'`).
pub(crate) fn domains() -> Value {
    json!([
        {"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"},
        {"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server"},
    ])
}

/// `GET /version`.
pub(crate) fn version(lab: &Lab) -> Value {
    json!({
        "version": lab.manager_version(),
        "release": release_of(&lab.manager_version()),
        "repoid": "5a1ab0de7e57ed42",
    })
}

/// `GET /access/permissions`, uncached (the request path answers from [`permissions_body`]'s cache).
pub(crate) fn permissions(lab: &Lab, caller: &Caller, params: &Params) -> Result<Value, ApiError> {
    let state = lab.read();
    permissions_uncached(lab, &state, caller, params)
}

fn login_failed() -> ApiError {
    ApiError::new(401, "authentication failure")
}

pub(crate) fn login(lab: &Lab, params: &Params) -> Result<Value, ApiError> {
    let username = params.required("username")?;
    let password = params.required("password")?;
    if username.len() > 64 {
        return Err(ApiError::param("username", "value may only be 64 characters long"));
    }
    let full = match params.get("realm") {
        Some(realm) if !realm.is_empty() => format!("{username}@{realm}"),
        _ => username.to_owned(),
    };
    let Ok(user) = full.parse::<UserId>() else { return Err(login_failed()) };
    let now = now();
    let state = lab.read();
    let renewing = password.starts_with("PVE:")
        && auth::verify_ticket(&lab.ticket_key, password, now).as_deref() == Some(user.as_str());
    let record = state.cfg.user(&user).ok_or_else(login_failed)?;
    if !record.enable || (record.expire != 0 && record.expire < now) {
        return Err(login_failed());
    }
    if !renewing {
        let ok = if user.is_root() {
            let root = lab.root_password.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            crate::auth::constant_time_eq(root.as_bytes(), password.as_bytes())
        } else {
            state.password_matches(user.as_str(), password)
        };
        if !ok {
            return Err(login_failed());
        }
    }
    let caller = Caller { authid: user.to_string(), subject: Subject::User(user.clone()) };
    let perm = Perm::new(lab, &state, &caller);
    if let (Some(path), Some(privs)) = (params.get("path"), params.get("privs")) {
        let list = split_list(privs);
        if !perm.has(path, &list, false) {
            return Err(login_failed());
        }
        return Ok(json!({ "username": user.as_str() }));
    }
    let cap = capabilities(&perm);
    Ok(json!({
        "username": user.as_str(),
        "ticket": auth::make_ticket(&lab.ticket_key, user.as_str(), now),
        "CSRFPreventionToken": auth::make_csrf(&lab.ticket_key, user.as_str(), now),
        "cap": cap,
    }))
}

/// The GUI's capability summary (`cap`): privileges per area, from the caller's privileges on the area's path.
fn capabilities(perm: &Perm<'_>) -> Value {
    let areas = [
        ("vms", "/vms", &["VM.", "Permissions.Modify"][..]),
        ("storage", "/storage", &["Datastore.", "Permissions.Modify"][..]),
        ("access", "/access", &["User.", "Group.", "Realm.", "Permissions.Modify", "Sys.Audit"][..]),
        ("nodes", "/nodes", &["Sys.", "Permissions.Modify"][..]),
        ("sdn", "/sdn", &["SDN.", "Permissions.Modify"][..]),
        ("dc", "/", &["Sys.Audit", "Sys.Modify", "SDN.", "Permissions.Modify"][..]),
        ("mapping", "/mapping", &["Mapping.", "Permissions.Modify"][..]),
    ];
    let mut cap = Map::new();
    for (area, path, prefixes) in areas {
        let perms = perm.eval.permissions_raw(&perm.caller.subject, path);
        let map: Map<String, Value> = perms
            .iter()
            .filter(|(p, _)| prefixes.iter().any(|pre| p.as_str().starts_with(pre)))
            .map(|(p, _)| (p.as_str().to_owned(), json!(1)))
            .collect();
        cap.insert(area.to_owned(), Value::Object(map));
    }
    Value::Object(cap)
}

/// Dispatches the authenticated `/version` and `/access` endpoints; `None` when `name` is not one of them.
// ---- permission-check language --------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupsMode {
    Create,
    Update,
}

/// Whether `userid` names an existing user.
pub(crate) fn user_exists(state: &State, userid: &str) -> bool {
    userid.parse::<UserId>().ok().is_some_and(|u| state.cfg.user(&u).is_some())
}

/// `userid-group`: `Ok(false)` is a failure the caller turns into a bare 403 (or ignores in an `or`).
pub(crate) fn userid_group(
    perm: &Perm<'_>,
    state: &State,
    userid: &str,
    privs: &[&str],
    mode: Option<GroupsMode>,
    groups_param: Option<&str>,
    noerr: bool,
) -> Result<bool, ApiError> {
    if perm.caller.is_root() {
        return Ok(true);
    }
    let exists = userid.parse::<UserId>().ok().is_some_and(|u| state.cfg.user(&u).is_some());
    if mode != Some(GroupsMode::Create) && !exists {
        if noerr {
            return Ok(false);
        }
        return Err(ApiError::internal(format!("no such user ('{userid}')")));
    }
    if perm.has("/access/groups", privs, true) {
        return Ok(true);
    }
    let joined = privs.join("|");
    if mode.is_some() {
        let groups = groups_param.map(split_list).unwrap_or_default();
        if groups.is_empty() {
            return Err(ApiError::forbidden(&format!("/access/groups, {joined}")));
        }
        for g in groups {
            if !perm.has(&format!("/access/groups/{g}"), privs, true) {
                return Err(ApiError::forbidden(&format!("/access/groups/{g}, {joined}")));
            }
        }
    }
    if mode != Some(GroupsMode::Create) {
        let allowed = state.cfg.groups().iter().any(|(g, group)| {
            group.members.iter().any(|m| m.as_str() == userid) && perm.has(&format!("/access/groups/{g}"), privs, true)
        });
        if !allowed {
            if noerr {
                return Ok(false);
            }
            return Err(ApiError::forbidden(""));
        }
    }
    Ok(true)
}

/// `perm-modify <path>`.
pub(crate) fn perm_modify(perm: &Perm<'_>, path: &str, noerr: bool) -> Result<bool, ApiError> {
    let mut privs = vec!["Permissions.Modify"];
    let (check_path, extra) = if path.is_empty() {
        ("/access", None)
    } else if path.starts_with("/storage/") && path.len() > "/storage/".len() {
        (path, Some("Datastore.Allocate"))
    } else if path.starts_with("/vms/") && path.len() > "/vms/".len() {
        (path, Some("VM.Allocate"))
    } else if path.starts_with("/pool/") && path.len() > "/pool/".len() {
        (path, Some("Pool.Allocate"))
    } else {
        (path, None)
    };
    privs.extend(extra);
    if noerr {
        return Ok(perm.has(check_path, &privs, true));
    }
    perm.check(check_path, &privs, true).map(|()| true)
}

// ---- handlers ---------------------------------------------------------------------------------------------------

/// `GET /access/permissions` as the serialized `{"data": ...}` body, cached per (caller, userid, path) for one
/// state generation: the benchmark's hot path answers with a reference-counted copy of stored bytes.
pub(crate) fn permissions_body(lab: &Lab, caller: &Caller, params: &Params) -> Result<bytes::Bytes, ApiError> {
    let key = format!(
        "{}\0{}\0{}",
        caller.authid,
        params.get("userid").unwrap_or("\u{1}"),
        params.get("path").unwrap_or("\u{1}")
    );
    let state = lab.read();
    let generation = lab.generation.load(std::sync::atomic::Ordering::SeqCst);
    if let Some((g, body)) = lab.perm_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key)
        && *g == generation
    {
        return Ok(body.clone());
    }
    let body = crate::http::data_body(&permissions_uncached(lab, &state, caller, params)?);
    let mut cache = lab.perm_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(key, (generation, body.clone()));
    Ok(body)
}

fn permissions_uncached(lab: &Lab, state: &State, caller: &Caller, params: &Params) -> Result<Value, ApiError> {
    let perm = Perm::new(lab, state, caller);
    let target: Subject = match params.get("userid") {
        Some(raw) => {
            if !caller.is_root() {
                let own = raw == caller.authid
                    || (!caller.is_token()
                        && raw.parse::<TokenId>().ok().is_some_and(|t| t.user_str() == caller.authid));
                if !(lab.catalog.permissions_self_rule() && own) {
                    perm.check("/access", &["Sys.Audit"], false)?;
                }
            }
            raw.parse::<Subject>().map_err(|_| ApiError::param("userid", "value does not match the regex pattern"))?
        }
        None => caller.subject.clone(),
    };
    // `if (my $path = $param->{path})`: Perl's truth, so `path=` and `path=0` ask for the whole map.
    match params.get("path").filter(|path| !path.is_empty() && *path != "0") {
        Some(path) => {
            let perms = perm.eval.permissions_raw(&target, path);
            let mut out = Map::new();
            out.insert(path.to_owned(), flags(&perms));
            Ok(Value::Object(out))
        }
        None => {
            let map = perm.eval.permission_map(&target);
            Ok(Value::Object(map.iter().map(|(p, perms)| (p.clone(), flags(perms))).collect()))
        }
    }
}

fn realm_type(realm: &str) -> Option<&'static str> {
    match realm {
        "pam" => Some("pam"),
        "pve" => Some("pve"),
        _ => None,
    }
}

/// A user's fields as PVE reads them back from its `user:` line: empty ones are absent, except `email`, which its
/// parser takes unconditionally, and which is therefore an empty string whenever a later field (comment, keys) is
/// set (`split /:/` drops only trailing empty fields).
fn user_fields(out: &mut Map<String, Value>, user: &User) {
    out.insert("enable".into(), json!(u8::from(user.enable)));
    out.insert("expire".into(), json!(user.expire));
    for (key, value) in [
        ("firstname", &user.firstname),
        ("lastname", &user.lastname),
        ("email", &user.email),
        ("comment", &user.comment),
        ("keys", &user.keys),
    ] {
        if let Some(text) = set(value) {
            out.insert(key.into(), json!(text));
        }
    }
    if set(&user.email).is_none() && (set(&user.comment).is_some() || set(&user.keys).is_some()) {
        out.insert("email".into(), json!(""));
    }
}

/// The text of an optional field that is set and not empty.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|text| !text.is_empty())
}

fn token_info(token: &Token) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("expire".into(), json!(token.expire));
    out.insert("privsep".into(), json!(u8::from(token.privsep)));
    if let Some(c) = &token.comment {
        out.insert("comment".into(), json!(c));
    }
    out
}

fn member_groups(state: &State, user: &UserId) -> Vec<String> {
    state.cfg.groups().iter().filter(|(_, g)| g.members.contains(user)).map(|(id, _)| id.to_string()).collect()
}

pub(crate) fn users(lab: &Lab, caller: &Caller, params: &Params) -> Result<Value, ApiError> {
    let enabled = params.bool("enabled")?;
    let full = params.bool("full")?.unwrap_or(false);
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    let privs = ["User.Modify", "Sys.Audit"];
    let all = perm.has("/access/groups", &privs, true);
    let allowed_groups: BTreeSet<&GroupId> =
        state.cfg.groups().keys().filter(|g| all || perm.has(&format!("/access/groups/{g}"), &privs, true)).collect();
    let mut list = Vec::new();
    for (id, user) in state.cfg.users() {
        let groups = member_groups(&state, id);
        let visible = all
            || id.as_str() == caller.authid
            || state.cfg.groups().iter().any(|(g, group)| group.members.contains(id) && allowed_groups.contains(g));
        if !visible || enabled.is_some_and(|e| e != user.enable) {
            continue;
        }
        let mut item = Map::new();
        item.insert("userid".into(), json!(id.as_str()));
        user_fields(&mut item, user);
        if let Some(t) = realm_type(id.realm()) {
            item.insert("realm-type".into(), json!(t));
        }
        // Groups and tokens only with `full` (`$extract_user_data` in PVE/API2/User.pm): the groups as a comma
        // list (empty when none), the tokens as an array, or null for a user who has none.
        if full {
            item.insert("groups".into(), json!(groups.join(",")));
            let tokens: Vec<Value> = user
                .tokens
                .iter()
                .map(|(name, t)| {
                    let mut info = token_info(t);
                    info.insert("tokenid".into(), json!(name.as_str()));
                    Value::Object(info)
                })
                .collect();
            item.insert("tokens".into(), if tokens.is_empty() { Value::Null } else { Value::Array(tokens) });
        }
        list.push(Value::Object(item));
    }
    Ok(Value::Array(list))
}

fn text_param(params: &Params, key: &str, max: usize) -> Result<Option<String>, ApiError> {
    match params.get(key) {
        Some(v) if v.chars().count() > max => {
            Err(ApiError::param(key, format!("value may only be {max} characters long")))
        }
        Some(v) => Ok(Some(v.to_owned())),
        None => Ok(None),
    }
}

fn group_list(params: &Params) -> Result<Option<Vec<GroupId>>, ApiError> {
    let Some(raw) = params.get("groups") else { return Ok(None) };
    split_list(raw)
        .into_iter()
        .map(|g| {
            g.parse::<GroupId>().map_err(|_| {
                ApiError::param("groups", format!("invalid format - group name '{g}' contains invalid characters\n"))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn check_password(lab: &Lab, params: &Params) -> Result<Option<String>, ApiError> {
    let Some(pw) = params.get("password") else { return Ok(None) };
    let min = lab.catalog.min_password_length();
    if pw.chars().count() < min {
        return Err(ApiError::param("password", format!("value must be at least {min} characters long")));
    }
    if pw.chars().count() > 64 {
        return Err(ApiError::param("password", "value may only be 64 characters long"));
    }
    Ok(Some(pw.to_owned()))
}

pub(crate) fn user_create(lab: &Lab, params: &Params) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let raw = params.required("userid")?.to_owned();
    let id = parse_userid("userid", &raw)?;
    let groups = group_list(params)?.unwrap_or_default();
    let password = check_password(lab, params)?;
    let mut user = User::enabled();
    user.enable = params.bool("enable")?.unwrap_or(true);
    user.expire = params.uint("expire")?.unwrap_or(0);
    user.firstname = text_param(params, "firstname", 1024)?.filter(|s| !s.is_empty());
    user.lastname = text_param(params, "lastname", 1024)?.filter(|s| !s.is_empty());
    user.email = text_param(params, "email", 254)?.filter(|s| !s.is_empty());
    user.comment = text_param(params, "comment", 2048)?.filter(|s| !s.is_empty());
    user.keys = text_param(params, "keys", 4096)?.filter(|s| !s.is_empty());
    state
        .cfg
        .add_user(id.clone(), user, &groups)
        .map_err(|e| ApiError::internal(format!("create user failed: {e}")))?;
    if let Some(pw) = password {
        state.set_password(id.as_str(), &pw, &lab.rng);
    }
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn user_get(lab: &Lab, raw: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let id = parse_userid("userid", raw)?;
    let user = state.cfg.user(&id).ok_or_else(|| ApiError::internal(format!("no such user ('{raw}')")))?;
    let mut out = Map::new();
    user_fields(&mut out, user);
    out.insert("groups".into(), json!(member_groups(&state, &id)));
    let tokens: Map<String, Value> =
        user.tokens.iter().map(|(name, t)| (name.as_str().to_owned(), Value::Object(token_info(t)))).collect();
    // A user without tokens has no token map at all in PVE's parsed user.cfg, which answers as null.
    out.insert("tokens".into(), if tokens.is_empty() { Value::Null } else { Value::Object(tokens) });
    Ok(Value::Object(out))
}

pub(crate) fn user_update(lab: &Lab, params: &Params, raw: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let id = parse_userid("userid", raw)?;
    let append = params.bool("append")?.unwrap_or(false);
    let groups = group_list(params)?;
    // The schema's `requires => 'groups'` on `append`: any `append` (even 0) needs `groups`, and the error is
    // reported on `groups` (pve-common's `check_prop`).
    if params.get("append").is_some() && groups.is_none() {
        return Err(ApiError::param("groups", "missing property required by 'append'"));
    }
    let update = UserUpdate {
        enable: params.bool("enable")?,
        expire: params.uint("expire")?,
        firstname: text_param(params, "firstname", 1024)?,
        lastname: text_param(params, "lastname", 1024)?,
        email: text_param(params, "email", 254)?,
        comment: text_param(params, "comment", 2048)?,
        keys: text_param(params, "keys", 4096)?,
        groups,
        append,
    };
    state.cfg.update_user(&id, update).map_err(|e| ApiError::internal(format!("update user failed: {e}")))?;
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn user_delete(lab: &Lab, raw: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let id = parse_userid("userid", raw)?;
    match state.cfg.delete_user(&id) {
        Ok(_) | Err(AccessError::NoSuchUser(_)) => {}
        Err(e) => return Err(ApiError::internal(format!("delete user failed: {e}"))),
    }
    state.shadow.remove(id.as_str());
    lab.save_access(&state)?;
    Ok(Value::Null)
}

fn token_name(raw: &str) -> Result<TokenName, ApiError> {
    raw.parse::<TokenName>().map_err(|_| ApiError::param("tokenid", "value does not match the regex pattern"))
}

pub(crate) fn tokens(lab: &Lab, raw: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let id = parse_userid("userid", raw)?;
    let user = state.cfg.user(&id).ok_or_else(|| ApiError::internal(format!("no such user ('{raw}')")))?;
    Ok(Value::Array(
        user.tokens
            .iter()
            .map(|(name, t)| {
                let mut info = token_info(t);
                info.insert("tokenid".into(), json!(name.as_str()));
                Value::Object(info)
            })
            .collect(),
    ))
}

pub(crate) fn token_get(lab: &Lab, raw_user: &str, raw_token: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let id = parse_userid("userid", raw_user)?;
    let name = token_name(raw_token)?;
    let user = state.cfg.user(&id).ok_or_else(|| ApiError::internal(format!("no such user ('{raw_user}')")))?;
    let token = user
        .tokens
        .get(&name)
        .ok_or_else(|| ApiError::internal(format!("no such token '{raw_token}' for user '{raw_user}'")))?;
    Ok(Value::Object(token_info(token)))
}

pub(crate) fn token_create(lab: &Lab, params: &Params, raw_user: &str, raw_token: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let user = parse_userid("userid", raw_user)?;
    let name = token_name(raw_token)?;
    let expire = params.uint("expire")?;
    let privsep = params.bool("privsep")?.unwrap_or(true);
    let comment = text_param(params, "comment", 2048)?.filter(|c| !c.is_empty());
    let id = TokenId::new(&user, &name);
    let token = Token { privsep, expire: expire.unwrap_or(0), comment: comment.clone() };
    state.cfg.add_token(&id, token).map_err(|e| match e {
        AccessError::TokenExists(_) => ApiError::param("tokenid", "Token already exists."),
        other => ApiError::internal(other.to_string()),
    })?;
    let secret = lab.rng.uuid();
    state.tokens.set(id.clone(), TokenSecret::new(secret.clone()));
    lab.save_access(&state)?;
    let mut info = Map::new();
    info.insert("privsep".into(), json!(u8::from(privsep)));
    if let Some(e) = expire {
        info.insert("expire".into(), json!(e));
    }
    if let Some(c) = comment {
        info.insert("comment".into(), json!(c));
    }
    Ok(json!({ "full-tokenid": id.as_str(), "info": info, "value": secret }))
}

pub(crate) fn token_update(lab: &Lab, params: &Params, raw_user: &str, raw_token: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let user = parse_userid("userid", raw_user)?;
    let name = token_name(raw_token)?;
    // `update_token_info` checks that the token exists before it takes the config lock, so a missing user or
    // token is reported without the lock's `updating token info failed: ` prefix, and before `delete` is looked at.
    let owner = state.cfg.user(&user).ok_or_else(|| ApiError::internal(format!("no such user ('{raw_user}')")))?;
    if !owner.tokens.contains_key(&name) {
        return Err(ApiError::internal(format!("no such token '{raw_token}' for user '{raw_user}'")));
    }
    let nine_one = lab.catalog.token_update_can_delete_comment();
    for key in ["delete", "regenerate"] {
        let allowed = if key == "delete" { nine_one } else { lab.catalog.token_can_regenerate() };
        if params.get(key).is_some() && !allowed {
            return Err(ApiError::param(
                key,
                "property is not defined in schema and the schema does not allow additional properties",
            ));
        }
    }
    let mut delete_comment = false;
    if let Some(list) = params.get("delete") {
        for key in split_list(list) {
            if key != "comment" {
                return Err(ApiError::param_in_lock(
                    "updating token info failed: ",
                    "delete",
                    &format!("unknown option '{key}'"),
                ));
            }
            delete_comment = true;
        }
    }
    let regenerate = params.bool("regenerate")?.unwrap_or(false);
    let update = TokenUpdate {
        expire: params.uint("expire")?,
        privsep: params.bool("privsep")?,
        comment: text_param(params, "comment", 2048)?,
        delete_comment,
    };
    let id = TokenId::new(&user, &name);
    let token = state
        .cfg
        .update_token(&id, update, &lab.catalog)
        .map_err(|e| ApiError::internal(format!("updating token info failed: {e}")))?;
    let mut out = token_info(&token);
    if regenerate {
        let secret = lab.rng.uuid();
        state.tokens.set(id.clone(), TokenSecret::new(secret.clone()));
        out.insert("value".into(), json!(secret));
        out.insert("full-tokenid".into(), json!(id.as_str()));
    }
    lab.save_access(&state)?;
    Ok(Value::Object(out))
}

pub(crate) fn token_delete(lab: &Lab, raw_user: &str, raw_token: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let user = parse_userid("userid", raw_user)?;
    let name = token_name(raw_token)?;
    let id = TokenId::new(&user, &name);
    state.cfg.delete_token(&id).map_err(|e| ApiError::internal(e.to_string()))?;
    state.tokens.remove(&id);
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn roles(lab: &Lab) -> Result<Value, ApiError> {
    let state = lab.read();
    let all = state.cfg.all_roles(&lab.catalog);
    Ok(Value::Array(
        all.iter()
            .map(|(id, privs)| {
                let mut names: Vec<&str> = privs.iter().map(|p| p.as_str()).collect();
                names.sort_unstable();
                json!({
                    "roleid": id.as_str(),
                    "privs": names.join(","),
                    "special": u8::from(lab.catalog.is_builtin_role(id.as_str())),
                })
            })
            .collect(),
    ))
}

fn role_id(raw: &str) -> Result<RoleId, ApiError> {
    raw.parse::<RoleId>().map_err(|_| {
        ApiError::param("roleid", format!("invalid format - role name '{raw}' contains invalid characters\n"))
    })
}

fn privs_param(lab: &Lab, params: &Params) -> Result<Option<pvetoken_acl::PrivSet>, ApiError> {
    match params.get("privs") {
        None => Ok(None),
        Some(list) => {
            parse_privilege_list(list, &lab.catalog).map(Some).map_err(|e| ApiError::param("privs", format!("{e}\n")))
        }
    }
}

pub(crate) fn role_create(lab: &Lab, params: &Params) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let id = role_id(params.required("roleid")?)?;
    let privs = privs_param(lab, params)?.unwrap_or_default();
    state.cfg.add_role(id, privs, &lab.catalog).map_err(|e| match e {
        AccessError::ReservedRoleId(_) => ApiError::param("roleid", e.to_string()),
        other => ApiError::internal(format!("create role failed: {other}")),
    })?;
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn role_get(lab: &Lab, raw: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let privs = state
        .cfg
        .role_privileges(raw, &lab.catalog)
        .ok_or_else(|| ApiError::internal(format!("role '{raw}' does not exist")))?;
    Ok(Value::Object(privs.iter().map(|p| (p.as_str().to_owned(), json!(1))).collect()))
}

pub(crate) fn role_update(lab: &Lab, params: &Params, raw: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let id = role_id(raw)?;
    let privs = privs_param(lab, params)?;
    // `append` `requires => 'privs'` in the schema: present at all (even 0) without `privs` is a 400 on `privs`.
    if params.get("append").is_some() && privs.is_none() {
        return Err(ApiError::param("privs", AccessError::AppendWithoutPrivs.to_string()));
    }
    let append = params.bool("append")?.unwrap_or(false);
    state.cfg.update_role(&id, privs, append, &lab.catalog).map_err(|e| match e {
        AccessError::AppendWithoutPrivs => ApiError::param("privs", e.to_string()),
        AccessError::BuiltinRoleModify(_) => ApiError::internal(e.to_string()),
        other => ApiError::internal(format!("update role failed: {other}")),
    })?;
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn role_delete(lab: &Lab, raw: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let id = role_id(raw)?;
    state.cfg.delete_role(&id, &lab.catalog).map_err(|e| match e {
        AccessError::BuiltinRoleDelete(_) => ApiError::internal(e.to_string()),
        other => ApiError::internal(format!("delete role failed: {other}")),
    })?;
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn acl(lab: &Lab, caller: &Caller) -> Result<Value, ApiError> {
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    let audit = perm.has("/access", &["Sys.Audit"], false);
    let mut out = Vec::new();
    for entry in state.cfg.acl_entries() {
        let path = entry.path.as_str();
        if !audit && !perm_modify(&perm, path, true)? {
            continue;
        }
        let (kind, ugid) = match &entry.subject {
            AclSubject::User(u) => ("user", u.to_string()),
            AclSubject::Group(g) => ("group", g.to_string()),
            AclSubject::Token(t) => ("token", t.to_string()),
        };
        out.push(json!({
            "path": path,
            "type": kind,
            "ugid": ugid,
            "roleid": entry.roleid.as_str(),
            "propagate": u8::from(entry.propagate),
        }));
    }
    Ok(Value::Array(out))
}

fn list_of<T: std::str::FromStr>(params: &Params, key: &str, what: &str) -> Result<Vec<T>, ApiError> {
    let Some(raw) = params.get(key) else { return Ok(Vec::new()) };
    split_list(raw)
        .into_iter()
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                ApiError::param(key, format!("invalid format - value '{v}' does not look like a valid {what}\n"))
            })
        })
        .collect()
}

pub(crate) fn acl_update(lab: &Lab, caller: &Caller, params: &Params) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let raw_path = params.required("path")?.to_owned();
    let caller_perms: Option<Permissions>;
    {
        let perm = Perm::new(lab, &state, caller);
        caller_perms = if caller.is_root() {
            None
        } else {
            pvetoken_acl::AclPath::normalize(&raw_path).map(|p| perm.eval.permissions(&caller.subject, &p))
        };
    }
    let roles_raw = params.required("roles")?;
    let roles = split_list(roles_raw)
        .into_iter()
        .map(|r| {
            r.parse::<RoleId>().map_err(|_| {
                ApiError::param("roles", format!("invalid format - role name '{r}' contains invalid characters\n"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let update = AclUpdate {
        path: raw_path,
        roles,
        users: list_of::<UserId>(params, "users", "user name")?,
        groups: split_list(params.get("groups").unwrap_or_default())
            .into_iter()
            .map(|g| {
                g.parse::<GroupId>().map_err(|_| {
                    ApiError::param(
                        "groups",
                        format!("invalid format - group name '{g}' contains invalid characters\n"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        tokens: list_of::<TokenId>(params, "tokens", "token ID")?,
        propagate: params.bool("propagate")?.unwrap_or(true),
        delete: params.bool("delete")?.unwrap_or(false),
    };
    let delegation = caller_perms.unwrap_or_default();
    let caller_arg = if caller.is_root() { None } else { Some(&delegation) };
    state.cfg.apply_acl_update(&update, &lab.catalog, caller_arg).map_err(|e| {
        if e.is_on_all_acl_subject_params() {
            let text = e.to_string();
            return ApiError::params(
                ["users", "groups", "tokens"].iter().map(|k| ((*k).to_owned(), text.clone())).collect(),
            );
        }
        match (&e, e.param()) {
            (AccessError::InvalidAclPath(_), Some(p)) => ApiError::param(p, e.to_string()),
            (_, Some(p)) => ApiError::param_in_lock("ACL update failed: ", p, &e.to_string()),
            (_, None) => ApiError::internal(format!("ACL update failed: {e}")),
        }
    })?;
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn groups(lab: &Lab, caller: &Caller) -> Result<Value, ApiError> {
    let state = lab.read();
    let perm = Perm::new(lab, &state, caller);
    let privs = ["User.Modify", "Sys.Audit", "Group.Allocate"];
    Ok(Value::Array(
        state
            .cfg
            .groups()
            .iter()
            .filter(|(g, _)| perm.has(&format!("/access/groups/{g}"), &privs, true))
            .map(|(g, group)| {
                let mut item = Map::new();
                item.insert("groupid".into(), json!(g.as_str()));
                if let Some(c) = &group.comment {
                    item.insert("comment".into(), json!(c));
                }
                let users: Vec<&str> = group.members.iter().map(UserId::as_str).collect();
                item.insert("users".into(), json!(users.join(",")));
                Value::Object(item)
            })
            .collect(),
    ))
}

fn group_id(raw: &str) -> Result<GroupId, ApiError> {
    raw.parse::<GroupId>().map_err(|_| {
        ApiError::param("groupid", format!("invalid format - group name '{raw}' contains invalid characters\n"))
    })
}

pub(crate) fn group_create(lab: &Lab, params: &Params) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let id = group_id(params.required("groupid")?)?;
    let comment = text_param(params, "comment", 2048)?;
    state.cfg.add_group(id, comment).map_err(|e| ApiError::internal(format!("create group failed: {e}")))?;
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn group_get(lab: &Lab, raw: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let id = group_id(raw)?;
    let group =
        state.cfg.groups().get(&id).ok_or_else(|| ApiError::internal(format!("group '{raw}' does not exist")))?;
    let mut out = Map::new();
    out.insert("members".into(), json!(group.members.iter().map(UserId::as_str).collect::<Vec<_>>()));
    if let Some(c) = &group.comment {
        out.insert("comment".into(), json!(c));
    }
    Ok(Value::Object(out))
}

pub(crate) fn group_update(lab: &Lab, params: &Params, raw: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let id = group_id(raw)?;
    let comment = text_param(params, "comment", 2048)?;
    state.cfg.update_group(&id, comment).map_err(|e| ApiError::internal(format!("update group failed: {e}")))?;
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn group_delete(lab: &Lab, raw: &str) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let id = group_id(raw)?;
    state.cfg.delete_group(&id).map_err(|e| ApiError::internal(format!("delete group failed: {e}")))?;
    lab.save_access(&state)?;
    Ok(Value::Null)
}

pub(crate) fn domain_get(raw: &str) -> Result<Value, ApiError> {
    match raw {
        "pam" => Ok(json!({"type": "pam", "comment": "Linux PAM standard authentication"})),
        "pve" => Ok(json!({"type": "pve", "comment": "Proxmox VE authentication server"})),
        _ => Err(ApiError::internal(format!("domain '{raw}' does not exist"))),
    }
}

/// `PUT /access/password` (`change_password` in PVE/API2/AccessControl.pm): anyone may change their own password,
/// others need `Realm.AllocateUser` and `User.Modify`; root@pam's only root may change, and no one but root the
/// password of another `pam` user.
pub(crate) fn password(lab: &Lab, caller: &Caller, params: &Params) -> Result<Value, ApiError> {
    let mut state = lab.write();
    let raw = params.required("userid")?.to_owned();
    let id = parse_userid("userid", &raw)?;
    let new = params.required("password")?;
    let min = lab.catalog.min_password_length();
    if new.chars().count() < min {
        return Err(ApiError::param("password", format!("value must be at least {min} characters long")));
    }
    if new.chars().count() > 64 {
        return Err(ApiError::param("password", "value may only be 64 characters long"));
    }
    if lab.catalog.password_change_needs_confirmation() {
        confirm_caller(&state, caller, &id, params.get("confirmation-password"))?;
    }
    if !caller.is_root() && caller.authid != raw && (id.is_root() || id.realm() == "pam") {
        return Err(ApiError::forbidden(""));
    }
    if state.cfg.user(&id).is_none() {
        return Err(ApiError::internal(format!("no such user ('{raw}')")));
    }
    if id.is_root() {
        *lab.root_password.write().unwrap_or_else(std::sync::PoisonError::into_inner) = new.to_owned();
    } else {
        state.set_password(id.as_str(), new, &lab.rng);
    }
    lab.save_access(&state)?;
    Ok(Value::Null)
}

/// `reauth_user_for_user_modification` (pac 8.1.3): the target must exist, only root may change root, and anyone
/// else proves who they are with their own password. A wrong one is the realm's plain error, hence a 500.
fn confirm_caller(state: &State, caller: &Caller, target: &UserId, confirmation: Option<&str>) -> Result<(), ApiError> {
    if state.cfg.user(target).is_none() {
        return Err(ApiError::internal(format!("no such user ('{target}')")));
    }
    if caller.is_root() {
        return Ok(());
    }
    if target.is_root() {
        return Err(ApiError::forbidden(""));
    }
    let Some(confirmation) = confirmation else {
        return Err(ApiError::param("confirmation-password", "password is required to modify user"));
    };
    let own = caller.user();
    // PVE's own realm (PVE/Auth/PVE.pm `authenticate_user`).
    if confirmation.is_empty() {
        return Err(ApiError::internal("no password"));
    }
    if !state.shadow.contains_key(&own) {
        return Err(ApiError::internal("no password set"));
    }
    if !state.password_matches(&own, confirmation) {
        return Err(ApiError::internal("invalid credentials"));
    }
    Ok(())
}

/// `GET /version`'s `release`: pve-manager's `major.minor`.
fn release_of(manager: &str) -> String {
    let mut parts = manager.split(['.', '-']);
    format!("{}.{}", parts.next().unwrap_or("0"), parts.next().unwrap_or("0"))
}

#[cfg(test)]
mod tests {
    use super::split_list;

    #[test]
    fn split_list_uses_commas_semicolons_and_whitespace_unless_nul_is_present() {
        assert_eq!(split_list("VM.Audit VM.Console;Sys.Audit,x"), ["VM.Audit", "VM.Console", "Sys.Audit", "x"]);
        assert_eq!(split_list("a b\0c"), ["a b", "c"]);
    }
}
