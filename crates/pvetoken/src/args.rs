//! Flag groups (clap) that more than one command, or the printer, reads: the global flags and output format, the
//! token a check is about, the narrowing of a profile.

use clap::{Args, ValueEnum};

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
