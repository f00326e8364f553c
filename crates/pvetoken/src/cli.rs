//! The command line's root (clap): the program, its global flags and one subcommand per command. Flag groups
//! that several commands share are in `args.rs`; commands resolve their arguments into settings before they run.

use clap::{Parser, Subcommand};

use crate::args::GlobalArgs;
use crate::commands;

/// Give automation safe, working access to Proxmox VE.
///
/// pvetoken creates an API token with least privilege for its consumer (Packer, Terraform, Ansible, Semaphore,
/// PrivateBox), stores it safely, hands it to each consumer in the exact format it expects, proves it works,
/// explains what is missing when it does not, rotates and revokes it. `pvetoken demo` shows the whole flow on the
/// built-in lab.
///
/// Exit codes: 0 ok, 1 a check failed, 2 usage or input error, 3 server or network error, 4 internal error;
/// `exec` exits with its command's status, `plan --detailed-exitcode` with 0 (no changes), 2 (changes), 1 (error).
#[derive(Debug, Parser)]
#[command(name = "pvetoken", version, long_version = crate::version::long(), propagate_version = true, max_term_width = 110)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create (or converge) a least-privilege token for a consumer profile and save it to the token file.
    Create(commands::create::CreateArgs),
    /// Prove, as the token itself, that it has every privilege its profile needs.
    Verify(commands::verify::VerifyArgs),
    /// List API tokens with expiry and privilege separation.
    List(commands::list::ListArgs),
    /// Delete a token and its ACL entries.
    Revoke(commands::revoke::RevokeArgs),
    /// Replace a token's secret, update every registered sink, verify, then retire the old secret.
    Rotate(commands::rotate::RotateArgs),
    /// Print or write the token in a consumer's format (Packer, Terraform, Ansible, SOPS, ...).
    Render(commands::render::RenderArgs),
    /// Find credential mistakes in .envrc, *.env, Packer, Terraform, Ansible and SOPS files.
    Lint(commands::lint::LintArgs),
    /// Register the token with another system (Semaphore).
    Register(commands::register::RegisterArgs),
    /// Write the token file into a guest through the QEMU guest agent.
    Deliver(commands::deliver::DeliverArgs),
    /// Audit every token of a cluster: what it can really do and what is wrong with it.
    Audit(commands::audit::AuditArgs),
    /// Check everything between this machine and a working token, and print the fix for what is broken.
    Doctor(commands::doctor::DoctorArgs),
    /// Run the whole flow on the built-in lab and narrate it.
    Demo(commands::demo::DemoArgs),
    /// Evaluate and explain Proxmox VE permissions offline from a user.cfg.
    Acl(commands::acl::AclArgs),
    /// Run the lab: Proxmox VE and Semaphore API simulators on 127.0.0.1.
    Lab(commands::lab::LabArgs),
    /// Show what `apply` would change: declared tokens (pvetoken.toml) against every cluster, drift included.
    Plan(commands::apply::PlanArgs),
    /// Make every cluster match the declared tokens (pvetoken.toml): create, repair drift, rotate what is due.
    Apply(commands::apply::ApplyArgs),
    /// Derive a least-privilege profile from what a token really called (pveproxy access logs).
    Learn(commands::learn::LearnArgs),
    /// Run a command with a short-lived token of its own: created, verified, handed over in its environment
    /// only, deleted when it ends (`pvetoken exec --profile packer -- packer build .`).
    Exec(commands::exec::ExecArgs),
    /// Delete ephemeral tokens of `exec` that expired or whose job is gone.
    Gc(commands::exec::GcArgs),
    /// Print the completion script for a shell (bash: `pvetoken completions bash > /etc/bash_completion.d/pvetoken`).
    Completions(commands::completions::CompletionsArgs),
    /// Write the man pages (one per subcommand) into a directory.
    Man(commands::completions::ManArgs),
    /// The version, the git commit it was built from, and the PVE releases and Semaphore versions it knows.
    Version,
}
