//! What pveproxy access logs show a token did, and what each call needed: the evidence `learn`, `verify
//! --against-log` and `audit --access-log` read. Reads the logs (plain or rotated `.gz`), keeps the calls of one
//! token (or user), and maps each to its endpoint in the typed endpoint catalog ([`pvetoken_acl::endpoints`], with
//! the declarations of a release).
//!
//! The mapping and its limits (docs/learn.md): a path parameter the URL shows (`{vmid}`, `{node}`, `{storage}`)
//! narrows the ACL path; one the log cannot show (a POST body: the new VM id, a pool, a disk's storage, a NIC's
//! bridge) widens it to the parent (`/vms`, `/pool`, `/storage`, `/sdn/zones/localnetwork`), propagating; an `or`
//! takes its first alternative the URL can fill; an `any` of several privileges takes the first; list endpoints
//! that filter their entries by privilege (`cluster/resources`, `qemu` listing) get the filter's privilege on the
//! parent, since the log does not say which entries the consumer needed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::path::PathBuf;

use pvetoken_acl::endpoints::{self, Check, Method, When};

use crate::exit::CliError;
use crate::printer::Printer;

/// The fields of one access-log line, borrowed from it.
struct Fields<'l> {
    userid: &'l str,
    method: &'l str,
    uri: &'l str,
    status: u16,
}

/// Splits `CLIENT - USERID [TIME] "METHOD URI PROTO" STATUS LENGTH` (pve-http-server's `log_request`).
fn fields(line: &str) -> Option<Fields<'_>> {
    let (client, rest) = line.split_once(" - ")?;
    let (userid, rest) = rest.split_once(" [")?;
    let (_time, rest) = rest.split_once("] \"")?;
    let (request, rest) = rest.rsplit_once("\" ")?;
    let mut request = request.split(' ');
    let method = request.next()?;
    let uri = request.next()?;
    let status = rest.split_whitespace().next()?.parse().ok()?;
    (!client.is_empty() && !userid.contains(' ') && method.chars().all(|c| c.is_ascii_uppercase())).then_some(Fields {
        userid,
        method,
        uri,
        status,
    })
}

/// The calls of access logs, counted per identity: (method, URI, status) → how often. Lines are read one at a
/// time and counted, so memory grows with the distinct calls (identity, endpoint and the parameters its URI
/// shows), not with the lines: a million lines of the same few calls take a few kilobytes.
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    /// Identity → `METHOD URI STATUS` → count (one string key: looked up without allocating).
    by_identity: std::collections::HashMap<String, std::collections::HashMap<String, usize>>,
    /// Reused for the key of each line.
    key: String,
    /// (identity, `METHOD path`) → the names of the body parameters its calls sent: what the lab's request log knows
    /// and an access log never shows (`learn --lab` only).
    body_keys: std::collections::HashMap<(String, String), BTreeSet<String>>,
}

impl CallLog {
    /// Counts one line; false when it is not an access-log line.
    pub(crate) fn add(&mut self, line: &str) -> bool {
        let Some(f) = fields(line) else { return false };
        use std::fmt::Write as _;
        self.key.clear();
        let _ = write!(self.key, "{} {} {}", f.method, f.uri, f.status);
        let calls = match self.by_identity.get_mut(f.userid) {
            Some(calls) => calls,
            None => self.by_identity.entry(f.userid.to_owned()).or_default(),
        };
        match calls.get_mut(self.key.as_str()) {
            Some(count) => *count += 1,
            None => {
                calls.insert(self.key.clone(), 1);
            }
        }
        true
    }

    /// Records the names of the body parameters a call of `identity` sent (`METHOD path`).
    pub(crate) fn add_body_keys(&mut self, identity: String, call: String, keys: impl IntoIterator<Item = String>) {
        self.body_keys.entry((identity, call)).or_default().extend(keys);
    }

    /// The identities that made calls (`-`, unauthenticated, excluded), sorted.
    pub(crate) fn identities(&self) -> BTreeSet<&str> {
        self.by_identity.keys().map(String::as_str).filter(|u| *u != "-").collect()
    }

    /// The distinct calls of `identity` as (method, URI, status, count).
    fn calls_of(&self, identity: &str) -> impl Iterator<Item = (&str, &str, u16, usize)> {
        self.by_identity.get(identity).into_iter().flatten().filter_map(|(key, count)| {
            let (method, rest) = key.split_once(' ')?;
            let (uri, status) = rest.rsplit_once(' ')?;
            Some((method, uri, status.parse().ok()?, *count))
        })
    }
}

fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// The API path's segments (after `/api2/json` or `/api2/extjs`), decoded; `None` for other URIs.
fn api_segments(uri: &str) -> Option<Vec<String>> {
    let path = uri.split('?').next()?;
    let rest = path.strip_prefix("/api2/json").or_else(|| path.strip_prefix("/api2/extjs"))?;
    Some(rest.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect())
}

/// A query parameter of the logged URI (decoded).
fn query_param(uri: &str, name: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

/// Whether a list filter matters for this call: `GET /cluster/resources?type=vm` lists only guests, so the storage,
/// node, SDN and pool filters need nothing (the query string is in the log, unlike a POST body).
fn filter_applies(filter: Option<&str>, kind: Option<&str>) -> bool {
    let (Some(filter), Some(kind)) = (filter, kind) else { return true };
    let entries = match kind {
        "vm" => "vm entries",
        "storage" => "storage entries",
        "node" => "node entries",
        "sdn" => "sdn entries",
        _ => return true,
    };
    filter == entries || !filter.ends_with(" entries") && !filter.contains("pool entries")
}

/// A needed (path, privilege, propagate) with the reason it is only partly known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Need {
    path: String,
    privilege: String,
    propagate: bool,
    widened: bool,
}

/// Substitutes the known parameters; an unknown one truncates the path before it (the conservative parent).
fn fill(template: &str, params: &BTreeMap<String, String>) -> (String, bool) {
    let mut out = String::new();
    for segment in template.split('/').filter(|s| !s.is_empty()) {
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => match params.get(name) {
                Some(value) => {
                    out.push('/');
                    out.push_str(value);
                }
                None => return (if out.is_empty() { "/".to_owned() } else { out }, true),
            },
            None => {
                out.push('/');
                out.push_str(segment);
            }
        }
    }
    (if out.is_empty() { "/".to_owned() } else { out }, false)
}

fn needs_of(check: &Check, params: &BTreeMap<String, String>, listing: bool, out: &mut Vec<Need>) {
    match check {
        Check::Perm(perm) => {
            let (path, widened) = fill(perm.path, params);
            // `body`: what it needs depends on the request body, which the log never shows (all of it is granted).
            let widened = widened || listing || perm.body;
            let chosen = if perm.any { &perm.privs[..perm.privs.len().min(1)] } else { perm.privs };
            for privilege in chosen {
                out.push(Need { path: path.clone(), privilege: (*privilege).to_owned(), propagate: widened, widened });
            }
        }
        Check::And(parts) => {
            for part in *parts {
                needs_of(part, params, listing, out);
            }
        }
        Check::Or(alternatives) => {
            let fillable = alternatives.iter().find(|alternative| match alternative {
                Check::Perm(perm) => {
                    perm.require_param.is_none_or(|p| params.contains_key(p)) && !fill(perm.path, params).1
                }
                Check::UseridSelf => params.get("userid").is_some_and(|user| params.get(CALLER) == Some(user)),
                _ => false,
            });
            let fillable = fillable.or_else(|| alternatives.iter().find(|a| !matches!(a, Check::UseridSelf)));
            if let Some(alternative) = fillable.or(alternatives.first()) {
                needs_of(alternative, params, listing, out);
            }
        }
        Check::UseridRealm(privs) => {
            // The realm of the user the call names; a body's user (POST /access/users) is unknown: all realms.
            let realm = params.get("userid").and_then(|user| user.rsplit_once('@')).map(|(_, realm)| realm);
            let (path, widened) = match realm {
                Some(realm) => (format!("/access/realm/{realm}"), listing),
                None => ("/access/realm".to_owned(), true),
            };
            for privilege in *privs {
                out.push(Need { path: path.clone(), privilege: (*privilege).to_owned(), propagate: widened, widened });
            }
        }
        Check::UseridGroup { privs, .. } => {
            // The log does not say which groups the user is in: every group (`/access/groups`, propagating).
            if let Some(privilege) = privs.first() {
                let path = "/access/groups".to_owned();
                out.push(Need { path, privilege: (*privilege).to_owned(), propagate: true, widened: true });
            }
        }
        Check::PermModify(template) => {
            let (path, widened) = fill(template, params);
            let widened = widened || listing;
            out.push(Need { path, privilege: "Permissions.Modify".to_owned(), propagate: widened, widened });
        }
        Check::AnyUser | Check::World | Check::UseridSelf | Check::Prose(_) => {}
    }
}

/// Whether a handler check applies to a logged call: its condition read from what the log shows (the query of a
/// `GET`, the caller); what only a body could show is taken as given (the conservative reading).
fn condition_holds(
    when: When,
    call: (Method, &str),
    params: &BTreeMap<String, String>,
    subject: &str,
    version: pvetoken_acl::PveVersion,
) -> bool {
    let (method, uri) = call;
    match when {
        When::Always | When::Other(_) => true,
        When::Given(param) => method != Method::Get || params.contains_key(param) || query_param(uri, param).is_some(),
        // pve-access-control 8.2 and later: the caller itself, or a token of the calling user (a token's owner is
        // someone else); before 8.2 any `userid` given.
        When::ParamNotCaller(param) => query_param(uri, param).is_some_and(|named| {
            let own = named == subject
                || !subject.contains('!') && named.split_once('!').is_some_and(|(owner, _)| owner == subject);
            !own || version < pvetoken_acl::PveVersion { major: 8, minor: 2 }
        }),
        When::NotTaskOwner => {
            params.get("upid").and_then(|upid| upid.split(':').nth(7)).is_none_or(|owner| owner != subject)
        }
    }
}

/// Whether what a check needs depends on the request body.
fn depends_on_body(check: &Check) -> bool {
    match check {
        Check::Perm(perm) => perm.body,
        Check::And(parts) | Check::Or(parts) => parts.iter().any(depends_on_body),
        _ => false,
    }
}

/// What the changed config keys of one update need (`pvetoken_acl::endpoints::config_key`). A drive's value (disk or
/// CD-ROM, which storage) and a NIC's bridge are not recorded: a drive gets `VM.Config.Disk` and `VM.Config.CDROM`
/// and `Datastore.AllocateSpace` on `/storage`, a NIC `SDN.Use` on the local zone (the conservative readings); keys
/// removed with `delete=` are in its value, so a `delete` gets every `VM.Config.*`.
fn config_key_needs(
    keys: &BTreeSet<String>,
    params: &BTreeMap<String, String>,
    version: pvetoken_acl::PveVersion,
    out: &mut Vec<Need>,
) {
    use pvetoken_acl::endpoints::{ConfigKey, NOT_CONFIG_KEYS, VM_CONFIG_PRIVILEGES, config_key};
    let (vm, _) = fill("/vms/{vmid}", params);
    let mut on = |path: &str, privilege: &str, widened: bool| {
        out.push(Need { path: path.to_owned(), privilege: privilege.to_owned(), propagate: widened, widened });
    };
    for key in keys {
        if key == "delete" {
            for privilege in VM_CONFIG_PRIVILEGES {
                on(&vm, privilege, false);
            }
            continue;
        }
        if NOT_CONFIG_KEYS.contains(&key.as_str()) {
            continue;
        }
        match config_key(key, version) {
            ConfigKey::Privileges { privs, any } => {
                for privilege in if any { &privs[..privs.len().min(1)] } else { privs } {
                    on(&vm, privilege, false);
                }
                if key == "startup" {
                    on("/", "Sys.Modify", false);
                }
            }
            ConfigKey::Drive => {
                on(&vm, "VM.Config.Disk", false);
                on(&vm, "VM.Config.CDROM", false);
                on("/storage", "Datastore.AllocateSpace", true);
            }
            ConfigKey::Nic => {
                on(&vm, "VM.Config.Network", false);
                if version.major >= 8 {
                    on("/sdn/zones/localnetwork", "SDN.Use", true);
                }
            }
            ConfigKey::Serial => on(&vm, "VM.Config.HWType", false),
            ConfigKey::RootOnly => {}
        }
    }
}

/// The pseudo-parameter holding the caller (for `userid-param self`); no PVE parameter has this name.
const CALLER: &str = " caller";

/// Opens a log file for reading line by line, gunzipping `.gz`.
fn open_log(path: &std::path::Path) -> Result<Box<dyn std::io::BufRead>, CliError> {
    let file = std::fs::File::open(path).map_err(|error| CliError::usage(format!("{}: {error}", path.display())))?;
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::with_capacity(1 << 16, flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(std::io::BufReader::with_capacity(1 << 16, file))
    })
}

/// Reads access logs line by line into a [`CallLog`]; a malformed line is warned about with its file and line
/// number.
pub(crate) fn read_logs(paths: &[PathBuf], printer: &Printer) -> Result<CallLog, CliError> {
    let mut log = CallLog::default();
    let mut buffer = Vec::new();
    for path in paths {
        let mut reader = open_log(path)?;
        for number in 1.. {
            buffer.clear();
            let read = reader.read_until(b'\n', &mut buffer).map_err(|error| {
                let what = if path.extension().is_some_and(|e| e == "gz") { "not a gzip text file: " } else { "" };
                CliError::usage(format!("{}: {what}{error}", path.display()))
            })?;
            if read == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buffer);
            if line.trim().is_empty() {
                continue;
            }
            if !log.add(line.trim_end_matches(['\n', '\r'])) {
                printer.warn(&format!("{}:{number}: not an access-log line; skipped", path.display()));
            }
        }
    }
    Ok(log)
}

/// One call of the subject mapped to what it needed.
pub(crate) struct CallNeeds {
    /// `METHOD /template`.
    pub(crate) call: String,
    /// The status PVE answered.
    pub(crate) status: u16,
    /// How many logged lines made this call.
    pub(crate) count: usize,
    /// (ACL path, privilege, propagate, widened).
    pub(crate) needs: Vec<(String, String, bool, bool)>,
}

/// Maps the subject's successful or refused API calls to their needs on PVE 9 (each distinct call once, with its
/// count); unknown calls are counted apart.
pub(crate) fn map_calls(log: &CallLog, subject: &str) -> (Vec<CallNeeds>, BTreeMap<String, usize>) {
    map_calls_on(log, subject, pvetoken_acl::PveVersion::NEWEST)
}

/// [`map_calls`] with the declarations of `version` (an endpoint that release does not have is unknown there).
pub(crate) fn map_calls_on(
    log: &CallLog,
    subject: &str,
    version: pvetoken_acl::PveVersion,
) -> (Vec<CallNeeds>, BTreeMap<String, usize>) {
    let mut mapped = Vec::new();
    let mut unknown: BTreeMap<String, usize> = BTreeMap::new();
    for (method, uri, status, count) in log.calls_of(subject) {
        let Some(segments) = api_segments(uri) else { continue };
        if !(200..300).contains(&status) && status != 403 {
            continue;
        }
        let found = Method::parse(method).and_then(|m| endpoints::lookup(m, &segments));
        let Some((endpoint, declaration, params)) =
            found.and_then(|(endpoint, params)| Some((endpoint, endpoint.declaration(version)?, params)))
        else {
            *unknown.entry(format!("{method} /{}", segments.join("/"))).or_default() += count;
            continue;
        };
        let mut needs = Vec::new();
        let mut params = params;
        params.insert(CALLER.to_owned(), subject.to_owned());
        needs_of(&declaration.check, &params, false, &mut needs);
        let kind = query_param(uri, "type");
        let path = uri.split('?').next().unwrap_or(uri);
        let body = log.body_keys.get(&(subject.to_owned(), format!("{method} {path}")));
        // A config update whose changed keys the lab recorded: each key's privileges instead of every one it may need.
        let keyed = body.filter(|_| matches!(endpoint.id, "qemu.config.post" | "qemu.config.put"));
        for handler in declaration.handler_checks {
            let body_dependent = depends_on_body(&handler.check);
            if filter_applies(handler.filter, kind.as_deref())
                && condition_holds(handler.when, (endpoint.method, uri), &params, subject, version)
                && !(body_dependent && keyed.is_some())
            {
                needs_of(&handler.check, &params, handler.filter.is_some(), &mut needs);
            }
        }
        if let Some(keys) = keyed {
            config_key_needs(keys, &params, version, &mut needs);
        }
        mapped.push(CallNeeds {
            call: endpoint.call(),
            status,
            count,
            needs: needs.into_iter().map(|n| (n.path, n.privilege, n.propagate, n.widened)).collect(),
        });
    }
    (mapped, unknown)
}

/// The number of logged calls `mapped` stands for.
pub(crate) fn call_count(mapped: &[CallNeeds]) -> usize {
    mapped.iter().map(|c| c.count).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn lines_in_pveproxys_format_parse_for_tokens_users_and_ipv6_clients() {
        let line = "::ffff:10.0.0.5 - automation@pve!packer [03/12/2026:06:00:01 +0100] \"GET /api2/json/nodes/pve/qemu/100/config HTTP/1.1\" 200 1234";
        let parsed = fields(line).expect("parses");
        assert_eq!((parsed.userid, parsed.status), ("automation@pve!packer", 200));
        assert!(fields("garbage").is_none());
        let (endpoint, params) =
            endpoints::lookup(Method::Get, &api_segments(parsed.uri).expect("api")).expect("known");
        assert_eq!(endpoint.path, "/nodes/{node}/qemu/{vmid}/config");
        assert_eq!(params.get("vmid").map(String::as_str), Some("100"));
        let encoded = api_segments("/api2/json/access/users/a%40pve/token?x=1").expect("api");
        assert_eq!(encoded, ["access", "users", "a@pve", "token"]);
    }

    #[test]
    fn a_token_reading_its_own_permissions_needs_nothing_and_someone_elses_needs_sys_audit() {
        let privileges = |uri: &str| -> Vec<(String, String)> {
            let mut log = CallLog::default();
            let line = format!("10.0.0.1 - a@pve!t [03/12/2026:06:00:01 +0100] \"GET {uri} HTTP/1.1\" 200 9");
            assert!(log.add(&line));
            let (calls, unknown) = map_calls(&log, "a@pve!t");
            assert!(unknown.is_empty(), "{unknown:?}");
            calls.iter().flat_map(|c| c.needs.iter().map(|n| (n.0.clone(), n.1.clone()))).collect()
        };
        assert!(privileges("/api2/json/access/permissions").is_empty());
        assert!(privileges("/api2/json/access/permissions?path=/vms").is_empty());
        assert!(privileges("/api2/json/access/permissions?userid=a%40pve%21t").is_empty(), "itself");
        // A token's owner is another identity (pve-access-control's `permissions`: only the caller, or a token of
        // the calling user, is free).
        assert_eq!(
            privileges("/api2/json/access/permissions?userid=a%40pve"),
            [("/access".to_owned(), "Sys.Audit".to_owned())]
        );
        assert_eq!(
            privileges("/api2/json/access/permissions?userid=b%40pve"),
            [("/access".to_owned(), "Sys.Audit".to_owned())]
        );
    }

    #[test]
    fn a_token_minting_tokens_of_its_user_needs_user_modify_on_the_groups_and_the_user_itself_nothing() {
        let needs = |subject: &str| -> Vec<(String, String)> {
            let mut log = CallLog::default();
            let line = format!(
                "10.0.0.1 - {subject} [03/12/2026:06:00:01 +0100] \"POST /api2/json/access/users/m%40pve/token/job HTTP/1.1\" 200 9"
            );
            assert!(log.add(&line));
            let (calls, unknown) = map_calls(&log, subject);
            assert!(unknown.is_empty(), "{unknown:?}");
            calls.iter().flat_map(|c| c.needs.iter().map(|n| (n.0.clone(), n.1.clone()))).collect()
        };
        assert_eq!(needs("m@pve!mint"), [("/access/groups".to_owned(), "User.Modify".to_owned())]);
        assert!(needs("m@pve").is_empty(), "a user manages its own tokens");
    }

    #[test]
    fn a_type_filter_in_the_query_string_narrows_list_filters() {
        let vms = "10.0.0.1 - a@pve!t [03/12/2026:06:00:01 +0100] \"GET /api2/json/cluster/resources?type=vm HTTP/1.1\" 200 9";
        let all = "10.0.0.1 - a@pve!t [03/12/2026:06:00:01 +0100] \"GET /api2/json/cluster/resources HTTP/1.1\" 200 9";
        let privileges = |line: &str| -> BTreeSet<String> {
            let mut log = CallLog::default();
            assert!(log.add(line));
            let (calls, _) = map_calls(&log, "a@pve!t");
            calls.iter().flat_map(|c| c.needs.iter().map(|n| n.1.clone())).collect()
        };
        assert_eq!(privileges(vms), BTreeSet::from(["VM.Audit".to_owned()]));
        let every = privileges(all);
        for privilege in ["VM.Audit", "Datastore.Audit", "SDN.Audit", "Pool.Audit"] {
            assert!(every.contains(privilege), "{every:?}");
        }
    }

    #[test]
    fn an_unknown_parameter_widens_to_the_parent_path() {
        let params = BTreeMap::from([("node".to_owned(), "pve".to_owned())]);
        assert_eq!(fill("/vms/{newid}", &params), ("/vms".to_owned(), true));
        assert_eq!(fill("/nodes/{node}", &params), ("/nodes/pve".to_owned(), false));
    }
}
