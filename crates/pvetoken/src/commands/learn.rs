//! `pvetoken learn --access-log FILE...`: least privilege from evidence. Maps the calls of one token (or user) in
//! pveproxy access logs to what each needed ([`crate::evidence`], with the declarations of `--pve-version`) and
//! writes a profile (`create --profile FILE` takes it) whose every privilege names the calls that needed it and how
//! often.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::Args;

use crate::evidence::{CallLog, CallNeeds, call_count, map_calls_on, read_logs};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;

/// Arguments of `pvetoken learn`.
#[derive(Debug, Args)]
pub struct LearnArgs {
    /// pveproxy access logs (`/var/log/pveproxy/access.log`, rotated `.gz` files too).
    #[arg(long = "access-log", value_name = "FILE", required_unless_present = "lab")]
    logs: Vec<PathBuf>,
    /// Run COMMAND (after `--`) against a built-in lab with a recording token of full rights, then learn from the
    /// lab's access log: the least privilege of a consumer before it touches production.
    #[arg(long, requires = "command", conflicts_with_all = ["logs", "token"])]
    lab: bool,
    /// The release whose privileges the profile names (before 9.0 the guest agent's VM.GuestAgent.* are VM.Monitor;
    /// privileges a release does not know are not needed there); with --lab also the simulated release.
    #[arg(long, value_name = "RELEASE", default_value = "9.2")]
    pve_version: pvetoken_acl::PveVersion,
    /// With --lab: the variables COMMAND gets (env, packer, terraform-bpg, terraform-telmate, ansible-env).
    #[arg(long, value_name = "FORMAT", default_value = "env", requires = "lab")]
    format: String,
    /// With --lab: the command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<std::ffi::OsString>,
    /// The token (or user) whose calls are learned; needed when the logs hold several.
    #[arg(long, value_name = "ID")]
    token: Option<String>,
    /// Widen narrowed paths to their parent for these kinds: vms, storage, nodes, pool (comma-separated).
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    widen: Vec<String>,
    /// The learned profile's name.
    #[arg(long, value_name = "NAME", default_value = "learned")]
    name: String,
    /// Write the profile here (mode 0644) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// (ACL path, propagate) → privilege → call (`METHOD /template`) → how often.
type Grants = BTreeMap<(String, bool), BTreeMap<String, BTreeMap<String, usize>>>;

/// The recording token of `learn --lab`.
const RECORDER: &str = "learner@pve!recording";

/// `learn --lab`: starts a lab, gives COMMAND a recording token with full rights, returns the lab's access log.
fn record_in_lab(args: &LearnArgs, printer: &Printer) -> anyhow::Result<(CallLog, tempfile::TempDir)> {
    use pvetoken_api::ExposeSecret as _;
    let format: pvetoken_render::Format =
        args.format.parse().map_err(|e: pvetoken_render::UnknownFormat| CliError::usage(e.to_string()))?;
    let dir = tempfile::Builder::new().prefix("pvetoken-learn-").tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let lab = runtime
        .block_on(pvetoken_lab::start(pvetoken_lab::LabConfig {
            pve_version: args.pve_version,
            state_dir: Some(dir.path().join("lab")),
            ..pvetoken_lab::LabConfig::default()
        }))
        .map_err(|error| CliError::usage(format!("the lab did not start: {error}")))?;
    let ready = lab.ready().clone();
    let secret = runtime.block_on(async {
        let tls =
            pvetoken_client::TlsSettings { ca_file: Some(ready.ca_file.clone()), fingerprint: None, insecure: false };
        let http = pvetoken_client::http_client(&tls)?;
        let endpoint = pvetoken_client::endpoint::Endpoint::parse_pve(&ready.pve_url)?;
        let root = pvetoken_client::pve::PveClient::login(
            http,
            endpoint,
            &ready.root_user,
            &pvetoken_api::Secret::from(ready.root_password.clone()),
        )
        .await?;
        root.create_user("learner@pve", Some("pvetoken learn --lab recording user")).await?;
        let created = root
            .create_token(
                "learner@pve",
                "recording",
                &pvetoken_client::pve::NewToken { privsep: true, expire: 0, comment: None },
            )
            .await?;
        let grant =
            pvetoken_client::pve::AclChange::role("/", "Administrator", true).user("learner@pve").token(RECORDER);
        root.change_acl(&grant).await?;
        Ok::<_, anyhow::Error>(created.value)
    })?;
    let id: pvetoken_acl::TokenId = RECORDER.parse().map_err(|_| CliError::usage("invalid recorder id"))?;
    let mut token = pvetoken_render::TokenFile::new(
        &ready.pve_url,
        &ready.node,
        id,
        pvetoken_api::Secret::from(secret.expose_secret().to_owned()),
    )
    .map_err(|error| CliError::usage(error.to_string()))?;
    token.ca_file = Some(ready.ca_file.clone());
    token.fingerprint = Some(ready.fingerprint_sha256.clone());
    let variables = format
        .variables(&token)
        .ok_or_else(|| {
            CliError::usage(format!("--format {format} writes a file; --lab hands over environment variables"))
        })?
        .map_err(|error| CliError::usage(error.to_string()))?;
    printer.info(&format!("running the command against the lab ({}) as {RECORDER}", ready.pve_url));
    let mut command = std::process::Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    pvetoken_lifecycle::env_vars::ScrubCredentials::env_clear_credentials(&mut command);
    for (name, value) in &variables {
        command.env(name, value);
    }
    // Clients that verify TLS through these find the lab's CA.
    for name in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"] {
        command.env(name, &ready.ca_file);
    }
    let status = command.status().map_err(|error| CliError {
        exit: Exit::Child(127),
        message: format!("cannot run {}: {error}", args.command[0].to_string_lossy()),
        hint: None,
    })?;
    if !status.success() {
        printer.warn(&format!("the command ended with {status}; learning from the calls it made"));
    }
    let text = std::fs::read_to_string(lab.access_log()).unwrap_or_default();
    let requests = lab.request_log();
    drop(lab);
    drop(runtime);
    let mut log = CallLog::default();
    for line in text.lines() {
        log.add(line);
    }
    // The body's parameter names, which the access log never shows: a config update's changed keys.
    for request in requests.into_iter().filter(|r| !r.body_keys.is_empty()) {
        let Some(authid) = request.authid else { continue };
        log.add_body_keys(authid, format!("{} {}", request.method, request.path), request.body_keys);
    }
    Ok((log, dir))
}

/// Runs `pvetoken learn`.
pub fn run(args: LearnArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let (log, subject_override, _lab_dir) = if args.lab {
        let (log, dir) = record_in_lab(&args, printer)?;
        (log, Some(RECORDER.to_owned()), Some(dir))
    } else {
        (read_logs(&args.logs, printer)?, None, None)
    };
    let subject = learned_subject(&log, subject_override.as_ref().or(args.token.as_ref()))?;
    let (mapped, unknown) = map_calls_on(&log, &subject, args.pve_version);
    let creates_vms = mapped.iter().any(|call| call.status != 403 && CREATES_VMS.contains(&call.call.as_str()));
    let Learned { grants, denied, widened_calls, not_in_release } = learn_grants(&mapped, &args, creates_vms);
    let used = call_count(&mapped);
    let profile = render_profile(&args.name, &subject, used, &grants);
    // The profile must load as `create --profile FILE` loads it.
    pvetoken_lifecycle::profiles::parse("the learned profile", &profile).map_err(|error| CliError {
        exit: Exit::Internal,
        message: format!("the learned profile does not load: {error}"),
        hint: None,
    })?;
    match &args.out {
        Some(path) => {
            pvetoken_lifecycle::token_store::write_output(path, profile.as_bytes())?;
            printer.info(&format!("wrote {} ({} calls of {subject})", path.display(), used));
        }
        None if !printer.is_json() => printer.data(profile.trim_end())?,
        None => {}
    }
    for (call, count) in &denied {
        printer.warn(&format!("{call}: refused with 403 ×{count}; the profile above grants what it needs"));
    }
    for (call, count) in &unknown {
        printer.warn(&format!("{call} ×{count}: not in the endpoint catalog; check its privileges by hand"));
    }
    for call in &widened_calls {
        printer.info(&format!(
            "{call}: depends on a parameter the log cannot show; granted on the parent path, or every privilege it \
             may need"
        ));
    }
    if !not_in_release.is_empty() {
        printer.info(&format!(
            "PVE {} has no {}: not needed there",
            args.pve_version,
            not_in_release.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if creates_vms {
        printer.info(
            "it creates VMs (clone or create): their ids change on every run, so privileges on single VMs are \
             granted on /vms (VM.Clone on the clone sources stays narrow; docs/learn.md)",
        );
    }
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "subject": subject, "calls": used, "profile": profile,
            "denied": denied, "unknown": unknown, "widened": widened_calls, "creates_vms": creates_vms,
        }))?;
    }
    Ok(Exit::Success)
}

/// The identity to learn: `--token` (or the lab's recorder), else the only one the logs hold.
fn learned_subject(log: &CallLog, given: Option<&String>) -> Result<String, CliError> {
    let subjects = log.identities();
    match given {
        Some(token) => Ok(token.clone()),
        None if subjects.len() == 1 => Ok((*subjects.iter().next().unwrap_or(&"-")).to_owned()),
        None => Err(CliError::usage(format!(
            "the logs hold calls of {} identities: {}",
            subjects.len(),
            subjects.iter().copied().collect::<Vec<_>>().join(", ")
        ))
        .with_hint("pass --token USER@REALM!NAME (or a user id) to learn one of them")),
    }
}

/// What the calls need, as grants, and what the report says about them.
struct Learned {
    /// (path, propagate) → privilege → call → count.
    grants: Grants,
    /// Calls refused with 403, and how often.
    denied: BTreeMap<String, usize>,
    /// Calls whose needs depend on a parameter the log cannot show.
    widened_calls: BTreeSet<String>,
    /// Privileges the release does not have.
    not_in_release: BTreeSet<String>,
}

/// Turns each call's needs into grants for the release: privileges it lacks dropped, single VMs widened to `/vms`
/// when the job creates VMs (clone sources stay narrow), `--widen` applied.
fn learn_grants(mapped: &[CallNeeds], args: &LearnArgs, creates_vms: bool) -> Learned {
    let release = pvetoken_acl::Catalog::for_version(args.pve_version);
    let mut learned = Learned {
        grants: BTreeMap::new(),
        denied: BTreeMap::new(),
        widened_calls: BTreeSet::new(),
        not_in_release: BTreeSet::new(),
    };
    for call in mapped {
        if call.status == 403 {
            *learned.denied.entry(call.call.clone()).or_default() += call.count;
        }
        for (path, privilege, propagate, widened) in &call.needs {
            let Some(privilege) = in_release(privilege, &release) else {
                learned.not_in_release.insert(privilege.clone());
                continue;
            };
            let (path, propagate) = if creates_vms && is_one_vm(path) && !is_clone_source(&call.call, &privilege) {
                ("/vms".to_owned(), true)
            } else {
                widen(path, *propagate, &args.widen)
            };
            if *widened {
                learned.widened_calls.insert(call.call.clone());
            }
            *learned
                .grants
                .entry((path, propagate))
                .or_default()
                .entry(privilege)
                .or_default()
                .entry(call.call.clone())
                .or_default() += call.count;
        }
    }
    learned
}

/// Calls that create a VM under an id the log cannot show (in the body, or the next free one).
const CREATES_VMS: [&str; 2] = ["POST /nodes/{node}/qemu", "POST /nodes/{node}/qemu/{vmid}/clone"];

/// A privilege of the (PVE 9) catalog as `release` names it: before access-control 9.0.2 every guest-agent call
/// needed VM.Monitor (the VM.GuestAgent.* privileges split it); one the release does not know at all (SDN.Use
/// before 8.0) is not needed there.
fn in_release(privilege: &str, release: &pvetoken_acl::Catalog) -> Option<String> {
    if release.privilege(privilege).is_ok() {
        return Some(privilege.to_owned());
    }
    if privilege.starts_with("VM.GuestAgent.") && release.privilege("VM.Monitor").is_ok() {
        return Some("VM.Monitor".to_owned());
    }
    None
}

/// `/vms/123`.
fn is_one_vm(path: &str) -> bool {
    path.strip_prefix("/vms/").is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// VM.Clone of a clone call: on the source template, which stays the same from run to run.
fn is_clone_source(call: &str, privilege: &str) -> bool {
    call == CREATES_VMS[1] && privilege == "VM.Clone"
}

fn widen(path: &str, propagate: bool, kinds: &[String]) -> (String, bool) {
    let first = path.split('/').nth(1).unwrap_or_default();
    if kinds.iter().any(|k| k == first) && path.matches('/').count() > 1 {
        return (format!("/{first}"), true);
    }
    (path.to_owned(), propagate)
}

fn render_profile(name: &str, subject: &str, calls: usize, grants: &Grants) -> String {
    let mut out = format!(
        "# Learned by `pvetoken learn` from {calls} calls of {subject}: each privilege names the calls that needed it.\n\
         name = \"{name}\"\ndescription = \"Least privilege learned from the access log of {subject}\"\n"
    );
    for ((path, propagate), privileges) in grants {
        out.push_str(&format!("\n[[grant]]\npath = \"{path}\"\npropagate = {propagate}\nprivileges = [\n"));
        for (privilege, calls) in privileges {
            let reason: Vec<String> = calls.iter().map(|(call, n)| format!("{call} ×{n}")).collect();
            out.push_str(&format!(
                "  {{ name = \"{privilege}\", reason = \"{}\" }},\n",
                reason.join(", ").replace('"', "'")
            ));
        }
        out.push_str("]\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn privileges_are_named_as_the_release_knows_them() {
        let release = |v: &str| pvetoken_acl::Catalog::for_version(v.parse().expect("version"));
        assert_eq!(in_release("VM.GuestAgent.Audit", &release("9.2")).as_deref(), Some("VM.GuestAgent.Audit"));
        assert_eq!(in_release("VM.GuestAgent.Audit", &release("8.4")).as_deref(), Some("VM.Monitor"));
        assert_eq!(in_release("VM.GuestAgent.Unrestricted", &release("7.4")).as_deref(), Some("VM.Monitor"));
        assert_eq!(in_release("SDN.Use", &release("7.4")), None, "no bridge checks before 8.0");
        assert_eq!(in_release("SDN.Use", &release("8.0")).as_deref(), Some("SDN.Use"));
        assert_eq!(in_release("VM.Audit", &release("7.4")).as_deref(), Some("VM.Audit"));
    }
}
