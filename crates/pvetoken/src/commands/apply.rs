//! `pvetoken plan -f pvetoken.toml` and `pvetoken apply -f pvetoken.toml`: declared tokens across clusters, kept
//! true. `plan` reads each cluster (clusters concurrently, one connection each) and lists what differs from the
//! file, drift made by hand included: a role whose privileges changed, a missing or extra ACL entry of a managed
//! token, a token deleted or expired on the server, a token file missing or readable by others, a token due for
//! rotation. The comparison is the lifecycle library's ([`pvetoken_lifecycle::plan`]: typed steps with their reasons
//! and requests); `apply` repairs exactly that through its engine ([`pvetoken_lifecycle::engine`]: destination
//! prepared before the secret exists, 0600 from the first byte, pending marker, verify as the token) and rotates
//! what is due with `rotate`'s safety rules (sinks checked first, then updated).
//!
//! The file format is in docs/apply.md.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use clap::Args;
use pvetoken_client::pve::AclChange;
use serde::{Deserialize, Serialize};

use pvetoken_lifecycle::clock::now;
use pvetoken_lifecycle::token::TokenRef;

use crate::connection::ConnectionArgs;
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use pvetoken_lifecycle::engine::{Known, Lifecycle, Settings};
use pvetoken_lifecycle::plan::{Change, Desired, Step, TokenPlan};
use pvetoken_lifecycle::rotate::{Rotation, Sinks as _};

use crate::sinks::SinkRecord;
use pvetoken_lifecycle::profiles::{self, Narrowing};
use pvetoken_lifecycle::token_store::PreparedTokenFile;

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
    /// The consumer profile (absent for a minter).
    #[serde(default)]
    profile: Option<String>,
    /// A minter (`create --minter`): holds the rights of `profiles` and may mint tokens of its own user.
    #[serde(default)]
    minter: bool,
    /// With `minter = true`: the profiles its jobs may use.
    #[serde(default)]
    profiles: Vec<String>,
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
    /// Where else the token lives (`[[tokens.sinks]]`, the sink record's form: `kind = "openbao" | "semaphore" |
    /// "guest"`); each is written when missing and updated whenever the secret changes.
    #[serde(default)]
    sinks: Vec<SinkRecord>,
}

fn yes() -> bool {
    true
}

impl TokenDecl {
    /// The profile the token holds: its `profile`, or a minter's combined `profiles`.
    fn profile(&self) -> Result<profiles::Profile, CliError> {
        match (&self.profile, self.minter) {
            (Some(name), false) => Ok(profiles::load(name)?),
            (None, true) => {
                let each = self.profiles.iter().map(|name| profiles::load(name)).collect::<Result<Vec<_>, _>>()?;
                Ok(pvetoken_lifecycle::minter::profile(&each)?)
            }
            (Some(_), true) => Err(CliError::usage("a minter holds `profiles = [...]`, not one `profile`")
                .with_hint("minter = true, profiles = [\"packer\", \"ansible\"]")),
            (None, false) => Err(CliError::usage("no `profile`")
                .with_hint("profile = \"packer\" (or minter = true, profiles = [...] for a minter)")),
        }
    }
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
    /// Job tokens of `pvetoken exec` of managed users (a minter's): live, or stale (pruned like `gc`).
    job_tokens: Vec<pvetoken_lifecycle::plan::JobToken>,
    requests: u64,
}

impl ClusterPlan {
    /// The plan of a cluster not read yet (or that could not be: `error`).
    fn new(cluster: &str, error: Option<String>) -> ClusterPlan {
        ClusterPlan {
            cluster: cluster.to_owned(),
            pve_version: None,
            error,
            tokens: Vec::new(),
            unmanaged: Vec::new(),
            job_tokens: Vec::new(),
            requests: 0,
        }
    }

    /// What `--prune` deletes: the undeclared tokens of managed users, and job tokens that outlived their job; a
    /// running job's token is kept.
    fn prunable(&self) -> impl Iterator<Item = &str> {
        self.unmanaged
            .iter()
            .map(String::as_str)
            .chain(self.job_tokens.iter().filter(|job| job.stale).map(|job| job.id.as_str()))
    }

    fn changes(&self) -> usize {
        self.tokens.iter().map(|t| t.changes.len()).sum()
    }
}

/// Reads and checks the declaration before anything touches a server (exit 2 with file, line and column).
fn load(path: &std::path::Path, printer: &Printer) -> Result<Declaration, CliError> {
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
        token.profile().map_err(|error| CliError::usage(format!("{place}: {error}")))?;
        if token.minter && !token.privsep {
            return Err(CliError::usage(format!("{place}: a minter's own token is privilege-separated"))
                .with_hint("remove privsep = false"));
        }
        if !seen.insert((token.cluster.clone(), token.id.clone())) {
            return Err(CliError::usage(format!(
                "{place}: {} is declared twice for cluster {}",
                token.id, token.cluster
            )));
        }
        for span in token.rotate_if_expiring_within.iter() {
            pvetoken_lifecycle::clock::parse_span(span)
                .map_err(|error| CliError::usage(format!("{place}: {error}")))?;
        }
        if let Some(expire) = &token.expire {
            pvetoken_lifecycle::clock::parse_expire(expire, now())
                .map_err(|error| CliError::usage(format!("{place}: {}", error.message)))?;
        }
        for sink in &token.sinks {
            // A secret over plain HTTP only to loopback, or to a Semaphore registered with allow_http.
            let (addresses, allowed) = match sink {
                SinkRecord::Openbao(bao) => (bao.addresses.clone(), false),
                SinkRecord::Semaphore(semaphore) => (vec![semaphore.url.clone()], semaphore.allow_http),
                SinkRecord::Guest(_) => (Vec::new(), false),
                SinkRecord::File(file) => {
                    if !file.path.is_absolute() || file.format.parse::<pvetoken_render::Format>().is_err() {
                        return Err(CliError::usage(format!(
                            "{place}: a file sink needs an absolute path and a render format (`{}`, `{}`)",
                            file.path.display(),
                            file.format
                        ))
                        .with_hint("e.g. { kind = \"file\", path = \"/srv/infra/packer.env\", format = \"packer\" }"));
                    }
                    (Vec::new(), false)
                }
            };
            crate::connection::check_plain_http(&addresses, allowed, printer).map_err(|error| {
                CliError::usage(format!("{place}: {}", error.message))
                    .with_hint("use https://, or (Semaphore only) allow_http = true if you accept the risk")
            })?;
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
async fn connect(cluster: &Cluster, printer: &Printer) -> anyhow::Result<Connected> {
    let args = connection(cluster);
    let target = args.resolve_target(&Default::default(), &printer.quiet_text())?;
    Ok(args.admin_session(target).await?)
}

/// An administrator connection to one cluster.
type Connected = crate::connection::AdminSession;

/// Runs `work` with an administrator connection to `cluster` on a runtime of its own (apply's threads).
fn with_cluster<T>(
    cluster: &Cluster,
    printer: &Printer,
    work: impl AsyncFnOnce(Connected) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let connected = connect(cluster, printer).await?;
        work(connected).await
    })
}

/// The declared token as it is now (its rotation `NAME-rN` when the token file holds that one).
fn current_token(declared: &TokenDecl) -> Result<TokenRef, CliError> {
    Ok(Desired::current_token(&TokenRef::parse(&declared.id)?, &declared.token_file))
}

/// The declared token as the lifecycle library plans it.
fn desired(declared: &TokenDecl) -> Result<Desired, CliError> {
    let expire = match &declared.expire {
        Some(text) => pvetoken_lifecycle::clock::parse_expire(text, now())?,
        None => 0,
    };
    let rotate_within = match &declared.rotate_if_expiring_within {
        Some(span) => Some((pvetoken_lifecycle::clock::parse_span(span).map_err(CliError::usage)?, span.clone())),
        None => None,
    };
    let profile = declared.profile()?;
    Ok(Desired {
        declared: declared.id.clone(),
        token: current_token(declared)?,
        profile: profile.clone(),
        settings: Settings {
            profile: declared.profile.clone().unwrap_or_else(|| profile.name.clone()),
            narrowing: Narrowing {
                pool: declared.pool.clone(),
                storages: declared.storage.clone(),
                nodes: declared.node.clone(),
                bridges: declared.bridge.clone(),
            },
            role: declared.role.clone(),
            privsep: declared.privsep,
            rotate_if_exists: true,
            expire,
        },
        token_file: declared.token_file.clone(),
        rotate_within,
        minter: declared.minter,
    })
}

/// Reads one cluster and compares it with its declared tokens. Never changes anything.
async fn plan_cluster(name: &str, cluster: &Cluster, tokens: &[&TokenDecl], printer: &Printer) -> ClusterPlan {
    let mut plan = ClusterPlan::new(name, None);
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
    let desired = tokens.iter().map(|declared| desired(declared)).collect::<Result<Vec<_>, _>>()?;
    let connected = connect(cluster, printer).await?;
    let planned = pvetoken_lifecycle::plan::plan(&connected.client, &connected.target, &desired, now()).await?;
    plan.pve_version = Some(planned.pve_version);
    plan.tokens = planned.tokens;
    for (token_plan, declared) in plan.tokens.iter_mut().zip(tokens) {
        let recorded = crate::sinks::load(&declared.token_file)?;
        if token_plan.changes_secret() && !recorded.is_empty() {
            token_plan.changes.push(Change::from(Step::UpdateSinks { count: recorded.len() }));
        }
        for sink in &declared.sinks {
            if !crate::sinks::is_recorded(&declared.token_file, sink)? {
                token_plan.changes.push(Change::from(Step::RegisterSink { sink: sink.describe() }));
            }
        }
    }
    plan.unmanaged = planned.unmanaged;
    plan.job_tokens = planned.job_tokens;
    plan.requests = planned.requests;
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
                            Err(error) => ClusterPlan::new(name, Some(error.to_string())),
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
        for job in &plan.job_tokens {
            let fate = if job.stale { "--prune deletes it" } else { "kept" };
            printer.data(&format!("  * {}: a job token of pvetoken exec, {} ({fate})", job.id, job.state))?;
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
    let declaration = load(&args.file, printer)?;
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
    let declaration = load(&args.file, printer)?;
    let plans = plan_all(&declaration, args.parallel, printer);
    if !printer.is_json() {
        print_plans(&plans, printer)?;
    }
    let pruned: usize = if args.prune { plans.iter().map(|p| p.prunable().count()).sum() } else { 0 };
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

/// `--prune`: deletes the undeclared tokens of managed users and the stale job tokens of minters (PVE deletes their
/// ACL entries with them).
fn prune_cluster(
    name: &str,
    cluster: &Cluster,
    plan: &ClusterPlan,
    printer: &Printer,
) -> Vec<(String, String, Result<(), String>)> {
    if plan.prunable().next().is_none() {
        return Vec::new();
    }
    let result = with_cluster(cluster, printer, async |Connected { client, target, .. }| {
        let mut deleted = Vec::new();
        for full in plan.prunable() {
            let Some((user, token)) = full.rsplit_once('!') else { continue };
            client.delete_token(user, token).await.map_err(|e| crate::connection::remote_error(&e, &target))?;
            deleted.push(full.to_owned());
        }
        Ok(deleted)
    });
    match result {
        Ok(deleted) => deleted.into_iter().map(|id| (name.to_owned(), format!("{id} (pruned)"), Ok(()))).collect(),
        Err(error) => vec![(name.to_owned(), "prune".to_owned(), Err(format!("{error:#}")))],
    }
}

/// Repairs one cluster's tokens that have changes, on one administrator connection: fixes what the engine would
/// refuse (a token file readable by others, an expired token), removes undeclared ACL entries, converges through
/// the lifecycle engine, and rotates what is due (its declared lifetime then starts again).
fn apply_cluster(
    name: &str,
    cluster: &Cluster,
    tokens: &[&TokenDecl],
    plan: &ClusterPlan,
    printer: &Printer,
) -> Vec<(String, String, Result<(), String>)> {
    let quiet = printer.quiet_text();
    let due: Vec<(&TokenDecl, &TokenPlan)> = tokens
        .iter()
        .filter_map(|declared| {
            let token_plan = plan.tokens.iter().find(|t| t.id == declared.id)?;
            (!token_plan.changes.is_empty()).then_some((*declared, token_plan))
        })
        .collect();
    if due.is_empty() {
        return Vec::new();
    }
    let connected = with_cluster(cluster, printer, async |connected| {
        let mut results = Vec::new();
        // What one token's run found out (release, node, roles set) saves the next its requests.
        let mut known = Known::default();
        for (declared, token_plan) in &due {
            let result = apply_token(&connected, declared, token_plan, &quiet, &mut known).await;
            results.push((name.to_owned(), declared.id.clone(), result.map_err(|error| format!("{error:#}"))));
        }
        Ok(results)
    });
    connected.unwrap_or_else(|error| {
        due.iter().map(|(declared, _)| (name.to_owned(), declared.id.clone(), Err(format!("{error:#}")))).collect()
    })
}

/// Repairs one declared token (see [`apply_cluster`]).
async fn apply_token(
    connected: &Connected,
    declared: &TokenDecl,
    token_plan: &TokenPlan,
    quiet: &Printer,
    known: &mut Known,
) -> anyhow::Result<()> {
    let Connected { client, target, http, timeout } = connected;
    let remote = |error: &pvetoken_client::ClientError| crate::connection::remote_error(error, target);
    if let Ok(meta) = std::fs::symlink_metadata(&declared.token_file)
        && meta.file_type().is_file()
        && meta.permissions().mode() & 0o077 != 0
    {
        std::fs::set_permissions(&declared.token_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let token = current_token(declared)?;
    if token_plan.expired() {
        // The secret is dead: a new token replaces it (the engine writes the file again).
        client.delete_token(&token.user, &token.name).await.map_err(|e| remote(&e))?;
        if pvetoken_lifecycle::token_store::read(&declared.token_file)
            .is_ok_and(|f| f.token_id.as_str() == token.full())
        {
            std::fs::remove_file(&declared.token_file)?;
        }
    }
    for (path, role, propagate) in &token_plan.undeclared_acls() {
        let change = AclChange::role(path, role, *propagate).token(token.full()).removing();
        client.change_acl(&change).await.map_err(|e| remote(&e))?;
    }
    let desired = desired(declared)?;
    if declared.minter {
        // Its group first: a missing minter user is created in it.
        pvetoken_lifecycle::minter::ensure_group(client, &token.user, target).await?;
    }
    let sinks = crate::sinks::RegisteredSinks { token_file: &declared.token_file, target, printer: quiet };
    let mut run =
        Lifecycle::new(&desired.settings, target, client, http.clone(), &declared.token_file, quiet, *timeout)
            .knowing(known.clone());
    let converged = run.converge_file(&desired.profile, TokenRef::parse(&declared.id)?).await;
    *known = run.known();
    let converged = converged?;
    if declared.minter {
        let current = TokenRef::parse(&converged.token_id)?;
        pvetoken_lifecycle::minter::grant_group(client, &current, target).await?;
    }
    if !converged.missing.is_empty() {
        let missing: Vec<String> = converged.missing.iter().map(|m| format!("{} on {}", m.privilege, m.path)).collect();
        anyhow::bail!("{} lacks {} after apply", converged.token_id, missing.join(", "));
    }
    if matches!(converged.outcome.as_str(), "created" | "recovered" | "rotated") {
        // A new secret: every recorded sink still holds the old one.
        sinks.update(client).await.map_err(|failed| crate::sinks::stale_sinks(&failed))?;
    }
    if token_plan.rotate() {
        let _lock = pvetoken_lifecycle::token_store::lock(&declared.token_file, quiet)?;
        let saved = pvetoken_lifecycle::token_store::read(&declared.token_file)?;
        let prepared = PreparedTokenFile::prepare(&declared.token_file)?;
        let rotated = Rotation::new(client, http.clone(), target, *timeout, quiet)
            .rotate(&declared.token_file, &saved, prepared, &sinks)
            .await?;
        // The declared lifetime starts again (regenerate keeps the old expiry, a new token copies it), on the
        // server and in the token file; otherwise the token would be due again at once.
        if desired.settings.expire > 0 {
            let mut saved = pvetoken_lifecycle::token_store::read(&declared.token_file)?;
            let new = TokenRef::parse(&rotated.new_id)?;
            client.set_token_expire(&new.user, &new.name, desired.settings.expire).await.map_err(|e| remote(&e))?;
            saved.expire = u64::try_from(desired.settings.expire).unwrap_or(0);
            PreparedTokenFile::prepare(&declared.token_file)?.commit(&saved)?;
        }
    }
    for sink in &declared.sinks {
        if crate::sinks::is_recorded(&declared.token_file, sink)? {
            continue;
        }
        // Recorded only once it holds the token: a sink that failed is tried again by the next apply.
        crate::sinks::update_sink(sink.clone(), &declared.token_file, client, target, quiet)
            .await
            .map_err(|failed| crate::sinks::stale_sinks(std::slice::from_ref(&failed)))?;
        crate::sinks::remember(&declared.token_file, sink.clone())?;
    }
    Ok(())
}
