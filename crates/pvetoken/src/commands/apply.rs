//! `pvetoken plan -f pvetoken.toml` and `pvetoken apply -f pvetoken.toml`: declared tokens across clusters, kept
//! true. `plan` reads each cluster (clusters concurrently, one connection each) and lists what differs from the
//! file, drift made by hand included: a role whose privileges changed, a missing or extra ACL entry of a managed
//! token, a token deleted or expired on the server, a token file missing or readable by others, a token due for
//! rotation. `apply` repairs exactly that, with `create`'s safety rules (destination prepared before the secret
//! exists, 0600 from the first byte, pending marker, verify as the token) and `rotate`'s.
//!
//! The file format is in docs/apply.md.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use clap::Args;
use pvetoken_client::pve::{AclChange, PveClient};
use serde::{Deserialize, Serialize};

use super::create::{CreateArgs, NarrowingArgs, TokenRef, now};
use crate::connection::{ConnectionArgs, Target};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use crate::profiles::{self, PveVersion};

/// Arguments of `pvetoken plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The declaration file.
    #[arg(short, long, value_name = "FILE", default_value = "pvetoken.toml")]
    file: PathBuf,
    /// Exit 0 when nothing would change, 2 when something would, 1 on any error (Terraform's convention).
    #[arg(long)]
    detailed_exitcode: bool,
    /// Clusters planned at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    parallel: usize,
}

/// Arguments of `pvetoken apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The declaration file.
    #[arg(short, long, value_name = "FILE", default_value = "pvetoken.toml")]
    file: PathBuf,
    /// Apply without asking (required when stdin is not a terminal).
    #[arg(long)]
    auto_approve: bool,
    /// Clusters applied at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    parallel: usize,
    /// Also delete the tokens of managed users that the file does not declare (and their ACL entries).
    #[arg(long)]
    prune: bool,
}

/// The declaration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declaration {
    #[serde(default)]
    clusters: BTreeMap<String, Cluster>,
    #[serde(default)]
    tokens: Vec<TokenDecl>,
}

/// One cluster and how to authenticate there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cluster {
    url: Option<String>,
    ca_file: Option<PathBuf>,
    fingerprint: Option<String>,
    #[serde(default = "root_pam")]
    auth_user: String,
    password_file: Option<PathBuf>,
    admin_token_file: Option<PathBuf>,
    #[serde(default)]
    local: bool,
}

fn root_pam() -> String {
    "root@pam".to_owned()
}

/// One declared token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenDecl {
    cluster: String,
    id: String,
    profile: String,
    token_file: PathBuf,
    expire: Option<String>,
    #[serde(default = "yes")]
    privsep: bool,
    role: Option<String>,
    /// Rotate when the token expires within this span (e.g. `14d`).
    rotate_if_expiring_within: Option<String>,
    pool: Option<String>,
    #[serde(default)]
    storage: Vec<String>,
    #[serde(default)]
    node: Vec<String>,
    #[serde(default)]
    bridge: Vec<String>,
}

fn yes() -> bool {
    true
}

/// One difference between the file and a cluster.
#[derive(Debug, Clone, Serialize)]
struct Change {
    /// `+` create, `~` change, `-` delete.
    action: char,
    /// What it is about (`role Token-packer`, `acl /vms`, `token`, `token file`).
    resource: String,
    /// The detail.
    detail: String,
}

/// The plan of one token.
#[derive(Debug, Clone, Serialize)]
struct TokenPlan {
    id: String,
    changes: Vec<Change>,
    /// Extra ACL entries of the token to delete (path, role).
    #[serde(skip)]
    extra_acls: Vec<(String, String, bool)>,
    #[serde(skip)]
    expired: bool,
    #[serde(skip)]
    rotate: bool,
}

/// The plan of one cluster.
#[derive(Debug, Clone, Serialize)]
struct ClusterPlan {
    cluster: String,
    pve_version: Option<String>,
    error: Option<String>,
    tokens: Vec<TokenPlan>,
    /// Tokens of managed users that the file does not declare.
    unmanaged: Vec<String>,
    requests: u64,
}

impl ClusterPlan {
    fn changes(&self) -> usize {
        self.tokens.iter().map(|t| t.changes.len()).sum()
    }
}

/// Reads and checks the declaration before anything touches a server (exit 2 with file, line and column).
fn load(path: &std::path::Path) -> Result<Declaration, CliError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        CliError::usage(format!("{}: {error}", path.display())).with_hint("pass -f FILE (default pvetoken.toml)")
    })?;
    let declaration: Declaration = toml::from_str(&text)
        .map_err(|error| CliError::usage(format!("{}: {error}", path.display())).with_hint("see docs/apply.md"))?;
    let at = |needle: &str| {
        text.lines()
            .position(|line| line.contains(needle))
            .map_or_else(|| path.display().to_string(), |n| format!("{}:{}", path.display(), n + 1))
    };
    let mut seen = BTreeSet::new();
    for token in &declaration.tokens {
        let place = at(&format!("\"{}\"", token.id));
        if !token.id.contains('!') {
            return Err(CliError::usage(format!("{place}: token id `{}` has no `!`", token.id))
                .with_hint("write the full token id, e.g. automation@pve!packer"));
        }
        TokenRef::parse(&token.id).map_err(|error| CliError::usage(format!("{place}: {}", error.message)))?;
        if !declaration.clusters.contains_key(&token.cluster) {
            return Err(CliError::usage(format!("{place}: cluster `{}` is not declared", token.cluster))
                .with_hint(format!("add [clusters.{}] with its url and credentials", token.cluster)));
        }
        profiles::load(&token.profile).map_err(|error| CliError::usage(format!("{place}: {error}")))?;
        if !seen.insert((token.cluster.clone(), token.id.clone())) {
            return Err(CliError::usage(format!(
                "{place}: {} is declared twice for cluster {}",
                token.id, token.cluster
            )));
        }
        for span in token.rotate_if_expiring_within.iter() {
            super::create::parse_span(span).map_err(|error| CliError::usage(format!("{place}: {error}")))?;
        }
        if let Some(expire) = &token.expire {
            super::create::parse_expire(expire, now())
                .map_err(|error| CliError::usage(format!("{place}: {}", error.message)))?;
        }
    }
    for (name, cluster) in &declaration.clusters {
        let place = at(&format!("[clusters.{name}]"));
        let methods = [cluster.password_file.is_some(), cluster.admin_token_file.is_some(), cluster.local];
        if methods.iter().filter(|m| **m).count() != 1 {
            return Err(CliError::usage(format!(
                "{place}: cluster {name} needs exactly one of password_file, admin_token_file, local = true"
            )));
        }
        if cluster.url.is_none() && !cluster.local {
            return Err(CliError::usage(format!("{place}: cluster {name} has no url")));
        }
    }
    Ok(declaration)
}

fn connection(cluster: &Cluster) -> ConnectionArgs {
    ConnectionArgs {
        url: cluster.url.clone(),
        ca_file: cluster.ca_file.clone(),
        fingerprint: cluster.fingerprint.clone(),
        insecure: false,
        auth_user: cluster.auth_user.clone(),
        password_file: cluster.password_file.clone(),
        admin_token_file: cluster.admin_token_file.clone(),
        local: cluster.local,
        timeout: 30,
    }
}

/// An administrator connection to `cluster` (one HTTPS client, logged in), and its target for error messages.
async fn connect(cluster: &Cluster, printer: &Printer) -> anyhow::Result<(PveClient, Target)> {
    let args = connection(cluster);
    let target = args.resolve_target(&Default::default(), &printer.quiet_text())?;
    let admin = args.resolve_admin()?;
    let http = crate::connection::http_client(&target, args.timeout())?;
    let client = crate::connection::connect_admin(&target, http.as_ref(), &admin, args.timeout()).await?;
    Ok((client, target))
}

/// Runs `work` with an administrator connection to `cluster` on a runtime of its own (apply's threads).
fn with_cluster<T>(
    cluster: &Cluster,
    printer: &Printer,
    work: impl AsyncFnOnce(&PveClient, &Target) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (client, target) = connect(cluster, printer).await?;
        work(&client, &target).await
    })
}

fn create_args(cluster: &Cluster, token: &TokenDecl) -> Result<CreateArgs, CliError> {
    let parsed = TokenRef::parse(&token.id)?;
    Ok(CreateArgs {
        profile: token.profile.clone(),
        user: parsed.user,
        token_name: Some(parsed.name),
        token_file: Some(token.token_file.clone()),
        role: token.role.clone(),
        no_privsep: !token.privsep,
        expire: token.expire.clone(),
        rotate_if_exists: true,
        deliver_to: None,
        guest_path: None,
        narrowing: NarrowingArgs {
            pool: token.pool.clone(),
            storage: token.storage.clone(),
            node: token.node.clone(),
            bridge: token.bridge.clone(),
        },
        connection: connection(cluster),
    })
}

/// The declared token as it is now: `rotate` on a release without regenerate replaces `NAME` by `NAME-rN`, and
/// the token file then holds that one.
fn current_token(declared: &TokenDecl) -> Result<TokenRef, CliError> {
    let wanted = TokenRef::parse(&declared.id)?;
    if let Ok(saved) = crate::token_store::read(&declared.token_file) {
        let name = saved.token_id.name_str();
        if saved.token_id.user_str() == wanted.user && super::create::rotation_base(name) == wanted.name {
            return Ok(TokenRef { user: wanted.user, name: name.to_owned() });
        }
    }
    Ok(wanted)
}

/// Reads one cluster and compares it with its declared tokens. Never changes anything.
async fn plan_cluster(name: &str, cluster: &Cluster, tokens: &[&TokenDecl], printer: &Printer) -> ClusterPlan {
    let mut plan = ClusterPlan {
        cluster: name.to_owned(),
        pve_version: None,
        error: None,
        tokens: Vec::new(),
        unmanaged: Vec::new(),
        requests: 0,
    };
    if let Err(error) = plan_into(&mut plan, cluster, tokens, printer).await {
        plan.error = Some(format!("{error:#}"));
    }
    plan
}

async fn plan_into(
    plan: &mut ClusterPlan,
    cluster: &Cluster,
    tokens: &[&TokenDecl],
    printer: &Printer,
) -> anyhow::Result<()> {
    let (client, target) = connect(cluster, printer).await?;
    let remote = |error: &pvetoken_client::ClientError| crate::connection::remote_error(error, &target);
    let version = client.version().await.map_err(|e| remote(&e))?;
    plan.pve_version = Some(version.version.clone());
    let pve = version
        .major_minor()
        .map(|(major, minor)| PveVersion { major, minor })
        .ok_or_else(|| CliError::remote(format!("cannot read the PVE version from `{}`", version.version)))?;
    let acl = client.acl().await.map_err(|e| remote(&e))?;
    let users: serde_json::Value = client.get("/access/users", &Vec::new()).await.map_err(|e| remote(&e))?;
    let user_exists = |user: &str| users.as_array().is_some_and(|l| l.iter().any(|u| u["userid"] == user));
    let mut managed_users = BTreeSet::new();
    let mut roles_seen = BTreeSet::new();
    let mut users_seen = BTreeSet::new();
    let mut current_ids = BTreeSet::new();
    for declared in tokens {
        let token = current_token(declared)?;
        current_ids.insert(token.full());
        managed_users.insert(token.user.clone());
        let profile = profiles::load(&declared.profile).map_err(CliError::from)?;
        let create = create_args(cluster, declared)?;
        let resolved = profile.resolve(pve, &create.narrowing.narrowing(), declared.role.as_deref());
        let mut changes = Vec::new();
        let mut change = |action, resource: String, detail: String| changes.push(Change { action, resource, detail });
        let wanted = resolved.role_privileges();
        if roles_seen.insert(resolved.role.clone()) {
            match client.role(&resolved.role).await.map_err(|e| remote(&e))? {
                None => change('+', format!("role {}", resolved.role), wanted.join(",")),
                Some(mut current) => {
                    current.sort();
                    if current != wanted {
                        let added: Vec<&String> = wanted.iter().filter(|p| !current.contains(p)).collect();
                        let removed: Vec<&String> = current.iter().filter(|p| !wanted.contains(p)).collect();
                        let mut detail = Vec::new();
                        detail.extend(added.iter().map(|p| format!("+{p}")));
                        detail.extend(removed.iter().map(|p| format!("-{p}")));
                        change('~', format!("role {}", resolved.role), detail.join(" "));
                    }
                }
            }
        }
        if !user_exists(&token.user) && users_seen.insert(token.user.clone()) {
            change('+', format!("user {}", token.user), "created without a password".to_owned());
        }
        let server_token = client.token(&token.user, &token.name).await.map_err(|e| remote(&e))?;
        let mut expired = false;
        let mut rotate = false;
        match &server_token {
            None => {
                change('+', "token".to_owned(), format!("{} (privsep {})", token.full(), u8::from(declared.privsep)))
            }
            Some(info) if info.expire > 0 && info.expire <= now() => {
                expired = true;
                change('~', "token".to_owned(), format!("{} expired on the server: replaced", token.full()));
            }
            Some(info) => {
                if let Some(span) = &declared.rotate_if_expiring_within {
                    let within = super::create::parse_span(span).map_err(CliError::usage)?;
                    if info.expire > 0 && info.expire - now() <= within {
                        rotate = true;
                        change('~', "token".to_owned(), format!("{} expires within {span}: rotate", token.full()));
                    }
                }
            }
        }
        match std::fs::symlink_metadata(&declared.token_file) {
            Err(_) => change('+', "token file".to_owned(), format!("{} (0600)", declared.token_file.display())),
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    change(
                        '~',
                        "token file".to_owned(),
                        format!("{} mode {:o} → 600", declared.token_file.display(), meta.permissions().mode() & 0o777),
                    );
                }
                if server_token.is_some()
                    && !expired
                    && crate::token_store::read(&declared.token_file).is_ok_and(|f| f.token_id.as_str() != token.full())
                {
                    change(
                        '~',
                        "token file".to_owned(),
                        format!("{} holds another token", declared.token_file.display()),
                    );
                }
            }
        }
        // ACL entries: the user's and (privsep) the token's on each profile path; any other entry of the token
        // is drift.
        let mut expected: BTreeSet<(String, String, bool)> = BTreeSet::new();
        for path in &resolved.paths {
            expected.insert((path.path.clone(), token.user.clone(), path.propagate));
            if declared.privsep {
                expected.insert((path.path.clone(), token.full(), path.propagate));
            }
        }
        let actual: BTreeSet<(String, String, bool)> = acl
            .iter()
            .filter(|e| e.roleid == resolved.role && (e.ugid == token.user || e.ugid == token.full()))
            .map(|e| (e.path.clone(), e.ugid.clone(), e.propagate))
            .collect();
        for (path, subject, propagate) in expected.difference(&actual) {
            if (server_token.is_none() || expired) && subject == &token.full() {
                continue; // granted with the new token
            }
            change(
                '+',
                format!("acl {path}"),
                format!("{} → {subject} (propagate {})", resolved.role, u8::from(*propagate)),
            );
        }
        let mut extra_acls = Vec::new();
        if server_token.is_some() && !expired {
            for entry in acl.iter().filter(|e| e.ugid == token.full()) {
                let key = (entry.path.clone(), entry.ugid.clone(), entry.propagate);
                if entry.roleid != resolved.role || !expected.contains(&key) {
                    change(
                        '-',
                        format!("acl {}", entry.path),
                        format!("{} → {} (not declared)", entry.roleid, entry.ugid),
                    );
                    extra_acls.push((entry.path.clone(), entry.roleid.clone(), entry.propagate));
                }
            }
        }
        plan.tokens.push(TokenPlan { id: declared.id.clone(), changes, extra_acls, expired, rotate });
    }
    let declared: BTreeSet<String> = tokens.iter().map(|t| t.id.clone()).chain(current_ids).collect();
    for user in &managed_users {
        if !user_exists(user) {
            continue;
        }
        for info in client.tokens(user).await.map_err(|e| remote(&e))? {
            let Some(name) = info.tokenid else { continue };
            let full = format!("{user}!{name}");
            if !declared.contains(&full) {
                plan.unmanaged.push(full);
            }
        }
    }
    plan.requests = client.requests_sent();
    Ok(())
}

/// Plans every cluster, at most `parallel` at once.
fn plan_all(declaration: &Declaration, parallel: usize, printer: &Printer) -> Vec<ClusterPlan> {
    let names: Vec<&String> = declaration.clusters.keys().collect();
    let mut plans = Vec::new();
    for chunk in names.chunks(parallel.max(1)) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|name| {
                    let cluster = &declaration.clusters[*name];
                    let tokens: Vec<&TokenDecl> = declaration.tokens.iter().filter(|t| &t.cluster == *name).collect();
                    scope.spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                        match runtime {
                            Ok(runtime) => runtime.block_on(plan_cluster(name, cluster, &tokens, printer)),
                            Err(error) => ClusterPlan {
                                cluster: (*name).clone(),
                                pve_version: None,
                                error: Some(error.to_string()),
                                tokens: Vec::new(),
                                unmanaged: Vec::new(),
                                requests: 0,
                            },
                        }
                    })
                })
                .collect();
            for handle in handles {
                if let Ok(plan) = handle.join() {
                    plans.push(plan);
                }
            }
        });
    }
    plans
}

fn print_plans(plans: &[ClusterPlan], printer: &Printer) -> anyhow::Result<()> {
    for plan in plans {
        let version = plan.pve_version.as_deref().map(|v| format!(" (PVE {v})")).unwrap_or_default();
        printer.data(&format!("cluster {}{version}", plan.cluster))?;
        if let Some(error) = &plan.error {
            printer.data(&format!("  ! {error}"))?;
            continue;
        }
        for token in &plan.tokens {
            if token.changes.is_empty() {
                printer.data(&format!("  = {}: no changes", token.id))?;
                continue;
            }
            printer.data(&format!("  {}", token.id))?;
            for change in &token.changes {
                printer.data(&format!("    {} {}: {}", change.action, change.resource, change.detail))?;
            }
        }
        for unmanaged in &plan.unmanaged {
            printer.data(&format!("  ? {unmanaged}: not declared (a token of a managed user)"))?;
        }
    }
    let count = |action: char| {
        plans.iter().flat_map(|p| &p.tokens).flat_map(|t| &t.changes).filter(|c| c.action == action).count()
    };
    printer.data(&format!(
        "Plan: {} to add, {} to change, {} to destroy; {} cluster(s) failed.",
        count('+'),
        count('~'),
        count('-'),
        plans.iter().filter(|p| p.error.is_some()).count()
    ))?;
    Ok(())
}

/// Runs `pvetoken plan`.
pub fn run_plan(args: PlanArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let declaration = load(&args.file)?;
    let plans = plan_all(&declaration, args.parallel, printer);
    if printer.is_json() {
        printer.json(&serde_json::json!({ "clusters": plans }))?;
    } else {
        print_plans(&plans, printer)?;
    }
    let failed = plans.iter().any(|p| p.error.is_some());
    let changes: usize = plans.iter().map(ClusterPlan::changes).sum();
    Ok(match (args.detailed_exitcode, failed, changes) {
        (true, true, _) => Exit::CheckFailed,
        (true, false, 0) => Exit::Success,
        (true, false, _) => Exit::Usage,
        (false, true, _) => Exit::Remote,
        (false, false, _) => Exit::Success,
    })
}

/// Runs `pvetoken apply`.
pub fn run_apply(args: ApplyArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let declaration = load(&args.file)?;
    let plans = plan_all(&declaration, args.parallel, printer);
    if !printer.is_json() {
        print_plans(&plans, printer)?;
    }
    let pruned: usize = if args.prune { plans.iter().map(|p| p.unmanaged.len()).sum() } else { 0 };
    let changes: usize = plans.iter().map(ClusterPlan::changes).sum::<usize>() + pruned;
    if changes == 0 {
        if printer.is_json() {
            printer.json(&serde_json::json!({ "clusters": plans, "applied": 0 }))?;
        } else {
            printer.success("nothing to change");
        }
        return Ok(if plans.iter().any(|p| p.error.is_some()) { Exit::Remote } else { Exit::Success });
    }
    if !args.auto_approve {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::usage("apply changes servers and stdin is not a terminal to ask")
                .with_hint("review `pvetoken plan`, then rerun with --auto-approve")
                .into());
        }
        eprint_prompt();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            printer.info("not applied");
            return Ok(Exit::Success);
        }
    }
    let mut results: Vec<(String, String, Result<(), String>)> = Vec::new();
    let names: Vec<&String> = declaration.clusters.keys().collect();
    for chunk in names.chunks(args.parallel.max(1)) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .filter_map(|name| {
                    let plan = plans.iter().find(|p| &p.cluster == *name)?;
                    if plan.error.is_some() {
                        return None;
                    }
                    let cluster = &declaration.clusters[*name];
                    let tokens: Vec<&TokenDecl> = declaration.tokens.iter().filter(|t| &t.cluster == *name).collect();
                    let prune = args.prune;
                    Some(scope.spawn(move || {
                        let mut done = apply_cluster(name, cluster, &tokens, plan, printer);
                        if prune {
                            done.extend(prune_cluster(name, cluster, plan, printer));
                        }
                        done
                    }))
                })
                .collect();
            for handle in handles {
                if let Ok(mut done) = handle.join() {
                    results.append(&mut done);
                }
            }
        });
    }
    let failed: Vec<&(String, String, Result<(), String>)> = results.iter().filter(|r| r.2.is_err()).collect();
    if printer.is_json() {
        let items: Vec<serde_json::Value> = results
            .iter()
            .map(|(cluster, id, result)| {
                serde_json::json!({ "cluster": cluster, "token": id, "ok": result.is_ok(),
                    "error": result.as_ref().err() })
            })
            .collect();
        printer.json(&serde_json::json!({ "applied": items }))?;
    } else {
        for (cluster, id, result) in &results {
            match result {
                Ok(()) => printer.success(&format!("{cluster}: {id} applied")),
                Err(error) => printer.error(&format!("{cluster}: {id}: {error}")),
            }
        }
    }
    let cluster_failed = plans.iter().any(|p| p.error.is_some());
    Ok(if failed.is_empty() && !cluster_failed { Exit::Success } else { Exit::Remote })
}

#[expect(clippy::print_stderr, reason = "the confirmation prompt goes to the terminal")]
fn eprint_prompt() {
    eprint!("Apply these changes? Only 'yes' is accepted: ");
}

/// After a rotation: the declared lifetime starts again (regenerate keeps the old expiry, a new token copies it),
/// on the server and in the token file; otherwise the token would be due again at once.
fn renew_expiry(cluster: &Cluster, declared: &TokenDecl, expire: &str, printer: &Printer) -> anyhow::Result<()> {
    let at = super::create::parse_expire(expire, now())?;
    let mut saved = crate::token_store::read(&declared.token_file)?;
    let (user, name) = (saved.token_id.user_str().to_owned(), saved.token_id.name_str().to_owned());
    with_cluster(cluster, printer, async |client, target| {
        client.set_token_expire(&user, &name, at).await.map_err(|e| crate::connection::remote_error(&e, target))?;
        Ok(())
    })?;
    saved.expire = u64::try_from(at).unwrap_or(0);
    crate::token_store::PreparedTokenFile::prepare(&declared.token_file)?.commit(&saved)?;
    Ok(())
}

/// `--prune`: deletes the undeclared tokens of managed users (PVE deletes their ACL entries with them).
fn prune_cluster(
    name: &str,
    cluster: &Cluster,
    plan: &ClusterPlan,
    printer: &Printer,
) -> Vec<(String, String, Result<(), String>)> {
    if plan.unmanaged.is_empty() {
        return Vec::new();
    }
    let result = with_cluster(cluster, printer, async |client, target| {
        let mut deleted = Vec::new();
        for full in &plan.unmanaged {
            let Some((user, token)) = full.rsplit_once('!') else { continue };
            client.delete_token(user, token).await.map_err(|e| crate::connection::remote_error(&e, target))?;
            deleted.push(full.clone());
        }
        Ok(deleted)
    });
    match result {
        Ok(deleted) => deleted.into_iter().map(|id| (name.to_owned(), format!("{id} (pruned)"), Ok(()))).collect(),
        Err(error) => vec![(name.to_owned(), "prune".to_owned(), Err(format!("{error:#}")))],
    }
}

/// Repairs one cluster's tokens that have changes: fixes what `create` would refuse (a token file readable by
/// others, an expired token), removes undeclared ACL entries, then converges with `create` and rotates what is due.
fn apply_cluster(
    name: &str,
    cluster: &Cluster,
    tokens: &[&TokenDecl],
    plan: &ClusterPlan,
    printer: &Printer,
) -> Vec<(String, String, Result<(), String>)> {
    let quiet = printer.quiet_text();
    let mut results = Vec::new();
    for declared in tokens {
        let Some(token_plan) = plan.tokens.iter().find(|t| t.id == declared.id) else { continue };
        if token_plan.changes.is_empty() {
            continue;
        }
        let result = (|| -> anyhow::Result<()> {
            if let Ok(meta) = std::fs::symlink_metadata(&declared.token_file)
                && meta.file_type().is_file()
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&declared.token_file, std::fs::Permissions::from_mode(0o600))?;
            }
            let token = current_token(declared)?;
            if token_plan.expired || !token_plan.extra_acls.is_empty() {
                with_cluster(cluster, printer, async |client, target| {
                    let remote = |error: &pvetoken_client::ClientError| crate::connection::remote_error(error, target);
                    if token_plan.expired {
                        // The secret is dead: a new token replaces it (create writes the file again).
                        client.delete_token(&token.user, &token.name).await.map_err(|e| remote(&e))?;
                        if crate::token_store::read(&declared.token_file)
                            .is_ok_and(|f| f.token_id.as_str() == token.full())
                        {
                            std::fs::remove_file(&declared.token_file)?;
                        }
                    }
                    for (path, role, propagate) in &token_plan.extra_acls {
                        let change = AclChange {
                            path: path.clone(),
                            roles: vec![role.clone()],
                            users: Vec::new(),
                            tokens: vec![token.full()],
                            propagate: *propagate,
                            delete: true,
                        };
                        client.change_acl(&change).await.map_err(|e| remote(&e))?;
                    }
                    Ok::<_, anyhow::Error>(())
                })?;
            }
            let exit = super::create::run(create_args(cluster, declared)?, &quiet)?;
            if exit != Exit::Success {
                anyhow::bail!("create ended with exit {}", exit.code());
            }
            if token_plan.rotate {
                let rotate = super::rotate::RotateArgs {
                    token_file: Some(declared.token_file.clone()),
                    if_expiring_within: None,
                    if_older_than: None,
                    if_exists: false,
                    connection: connection(cluster),
                };
                super::rotate::run(rotate, &quiet)?;
                if let Some(expire) = &declared.expire {
                    renew_expiry(cluster, declared, expire, &quiet)?;
                }
            }
            Ok(())
        })();
        results.push((name.to_owned(), declared.id.clone(), result.map_err(|error| format!("{error:#}"))));
    }
    results
}
