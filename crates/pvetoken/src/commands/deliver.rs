//! `pvetoken deliver`: write the token file into a guest through the QEMU guest agent.

use std::path::PathBuf;

use clap::Args;

use crate::connection::{ConnectionArgs, TargetFallback};
use crate::deliver::{DEFAULT_GUEST_PATH, DeliveryReport, DeliveryRequest, ModeOutcome};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;

/// Arguments of `pvetoken deliver`.
///
/// Checks the privileges on /vms/VMID first, then that the VM runs and its agent answers; sets mode 0600 and the
/// owner in the guest before writing (agent exec of touch/chmod/chown), writes with agent/file-write, reads the file
/// back and compares. The secret never appears in arguments, output or a host temp file.
#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// The VM to deliver into (it must run and have the QEMU guest agent).
    #[arg(long, value_name = "VMID", value_parser = clap::value_parser!(u64).range(100..=999_999_999))]
    pub vmid: u64,
    /// The node the VM runs on (default: PROXMOX_NODE of the token file).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Where the file goes in the guest.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_GUEST_PATH)]
    pub guest_path: String,
    /// The token file to deliver (default: /root/.proxmox-api-token as root, else
    /// $XDG_CONFIG_HOME/pvetoken/token.env).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Owner given to the file in the guest (`chown`).
    #[arg(long, value_name = "USER:GROUP", default_value = "root:root")]
    pub owner: String,
    /// Never run commands in the guest (no chmod/chown): only an existing file, whose mode the agent keeps, is
    /// written.
    #[arg(long)]
    pub no_exec: bool,
    /// Without chmod through the agent, accept that qemu-guest-agent creates a new file with mode 0666.
    #[arg(long)]
    pub allow_agent_mode: bool,
    /// After `--`: a command the guest runs (agent/exec) once the file is there, e.g. the guest's own
    /// `pvetoken register semaphore --url URL --project 1 --api-token-file /etc/pvetoken/semaphore.token
    /// --token-file /root/.proxmox-api-token --if-token-file --remove-token-file` where only the guest reaches
    /// Semaphore. Recorded: `rotate` delivers again and runs it again. Needs VM.GuestAgent.Unrestricted (PVE 9) or
    /// VM.Monitor (8).
    #[arg(last = true, value_name = "GUEST COMMAND")]
    pub then: Vec<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Runs `pvetoken deliver`.
pub fn run(args: DeliverArgs, printer: &Printer) -> anyhow::Result<Exit> {
    if !args.owner.contains(':') || args.owner.starts_with('-') || args.owner.contains(char::is_whitespace) {
        return Err(CliError::usage(format!("--owner {}: expected USER:GROUP", args.owner))
            .with_hint("e.g. --owner root:root")
            .into());
    }
    let token_path = pvetoken_lifecycle::token_store::path_or_default(args.token_file.as_deref())?;
    let token = pvetoken_lifecycle::token_store::read(&token_path)?;
    let fallback = TargetFallback::from_token_file(&token);
    let target = args.connection.resolve_target(&fallback, printer)?;
    let admin = args.connection.resolve_admin()?;
    let timeout = args.connection.timeout();
    let mut request =
        DeliveryRequest::new(args.node.clone().unwrap_or_else(|| token.node.clone()), args.vmid, admin.describe());
    request.guest_path = args.guest_path.clone();
    request.owner = args.owner.clone();
    request.use_exec = !args.no_exec;
    request.allow_agent_mode = args.allow_agent_mode;
    request.then = args.then.clone();
    if !request.then.is_empty() && args.no_exec {
        return Err(CliError::usage("a guest command after `--` runs through agent/exec, which --no-exec forbids")
            .with_hint("drop --no-exec, or the command")
            .into());
    }

    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(async {
        let http = crate::connection::http_client(&target, timeout)?;
        let client = crate::connection::connect_admin(&target, http.as_ref(), &admin, timeout).await?;
        if client.is_local() {
            return Err(CliError::usage(
                "deliver cannot use --local: pvesh takes the file content only as an argument, which every user of \
                 the host can read in the process list",
            )
            .with_hint(
                "connect over HTTPS instead: --url https://localhost:8006 --ca-file /etc/pve/pve-root-ca.pem with \
                 PVETOKEN_PASSWORD or an admin token file",
            ));
        }
        printer.info(&format!(
            "delivering {} ({}) into VM {} on {} at {}",
            token_path.display(),
            token.token_id,
            request.vmid,
            request.node,
            request.guest_path
        ));
        crate::deliver::deliver(&client, &target, &request, &token, printer).await
    })?;
    crate::sinks::guest::remember(&token_path, &request)?;
    print_report(&report, printer)?;
    Ok(Exit::Success)
}

fn print_report(report: &DeliveryReport, printer: &Printer) -> anyhow::Result<()> {
    if printer.is_json() {
        return printer.json(report);
    }
    let mode = match &report.mode {
        ModeOutcome::SetBeforeWrite { owner, observed } => format!(
            "0600 {owner}, set before the secret was written{}",
            observed.as_ref().map(|text| format!(" (guest reports {text})")).unwrap_or_default()
        ),
        ModeOutcome::KeptExisting => {
            "unchanged: the file existed and the agent keeps an existing file's mode and owner (not checked: no exec)"
                .to_owned()
        }
        ModeOutcome::AgentDefault0666 => "0666, the agent's mode for new files: chmod 600 it in the guest".to_owned(),
    };
    let mut text = format!(
        "delivered {} into VM {} on {}: {} bytes, read back and identical\nmode: {mode}",
        report.guest_path, report.vmid, report.node, report.bytes
    );
    for dir in &report.created_directories {
        text.push_str(&format!("\ncreated directory: {} ({}, {})", dir.path, dir.mode, dir.owner));
    }
    printer.data(&text)?;
    Ok(())
}
