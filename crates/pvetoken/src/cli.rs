//! Raw command-line input (clap). Commands resolve these into settings before they run.

use clap::{Args, Parser, Subcommand, ValueEnum};

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

/// Flags every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format: `text` for people, `json` for scripts.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text, help_heading = "Global options")]
    pub output: OutputFormat,
    /// Print only errors and warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = "Global options")]
    pub quiet: bool,
    /// Print more detail (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
    /// Never colour the output (also: `NO_COLOR=1`).
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_color: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// JSON on stdout.
    Json,
    /// A self-contained HTML report (`audit`; other commands print text).
    Html,
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

/// The token `verify` and `doctor` check, and what it should satisfy.
#[derive(Debug, Clone, Default, Args)]
pub struct CheckedTokenArgs {
    /// The profile whose privileges to check (default: the token name, when it names a built-in profile).
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// The token file to check (default: the default token file).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
    /// Custom role name used at create time (named in the fixes).
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
}

impl CheckedTokenArgs {
    /// `--token-file`, or the default token file.
    pub fn token_path(&self) -> Result<std::path::PathBuf, pvetoken_lifecycle::Error> {
        pvetoken_lifecycle::token_store::path_or_default(self.token_file.as_deref())
    }

    /// `--profile`, or the profile `token` is named after (its rotations `NAME-rN` too).
    pub fn profile_for(&self, token: &pvetoken_lifecycle::token::TokenRef) -> String {
        self.profile.clone().unwrap_or_else(|| pvetoken_lifecycle::token::rotation_base(&token.name).to_owned())
    }
}

/// `--pool`, `--storage`, `--node`, `--bridge`.
#[derive(Debug, Clone, Default, Args)]
pub struct NarrowingArgs {
    /// Grant VM privileges on this pool only (/pool/POOL instead of /vms).
    #[arg(long, value_name = "POOL", help_heading = "Narrowing")]
    pub pool: Option<String>,
    /// Grant storage privileges on these storages only (repeatable).
    #[arg(long, value_name = "STORAGE", help_heading = "Narrowing")]
    pub storage: Vec<String>,
    /// Node(s) the token is for: narrows node paths and names PROXMOX_NODE (the first one).
    #[arg(long, value_name = "NODE", help_heading = "Narrowing")]
    pub node: Vec<String>,
    /// Grant SDN.Use on these bridges only (repeatable; default the whole localnetwork zone).
    #[arg(long, value_name = "BRIDGE", help_heading = "Narrowing")]
    pub bridge: Vec<String>,
}

impl NarrowingArgs {
    /// The profile narrowing.
    pub fn narrowing(&self) -> pvetoken_lifecycle::profiles::Narrowing {
        pvetoken_lifecycle::profiles::Narrowing {
            pool: self.pool.clone(),
            storages: self.storage.clone(),
            nodes: self.node.clone(),
            bridges: self.bridge.clone(),
        }
    }
}
