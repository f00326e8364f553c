//! The token file model and one renderer per consumer format.
//!
//! [`TokenFile`] is the one source of truth about a token: where it works and its secret. Every consumer format
//! (Packer, Terraform, Ansible, SOPS, Semaphore, ...) is rendered from it by one [`Renderer`], each in its own
//! module under [`formats`], whose documentation shows the exact output.
//!
//! ```
//! use pvetoken_render::{Format, RenderOptions, TokenFile};
//! let token = TokenFile::parse(
//!     "PROXMOX_URL='https://pve.lan:8006'\nPROXMOX_NODE='pve'\n\
//!      PROXMOX_TOKEN_ID='automation@pve!privatebox'\nPROXMOX_TOKEN_SECRET='0b3c9f1e-1111-2222-3333-444455556666'\n",
//! )
//! .unwrap();
//! let header = Format::Header.render_to_string(&token, &RenderOptions::default()).unwrap();
//! assert_eq!(header, "PVEAPIToken=automation@pve!privatebox=0b3c9f1e-1111-2222-3333-444455556666\n");
//! ```

pub mod age;
pub mod consumers;
pub mod formats;
pub mod lint;
pub mod quote;
pub mod token_file;

use std::io::{self, Write};

pub use age::{AgeRecipient, AgeRecipientError};
pub use quote::shell_single_quote;
pub use token_file::{DEFAULT_PVE_PORT, TokenFile, TokenFileError};

/// Writes a token in one consumer's format.
pub trait Renderer {
    /// Writes the whole output for `token` to `out`.
    ///
    /// Fails with [`io::ErrorKind::InvalidData`] when the consumer cannot represent a value (for example a secret
    /// with characters bpg's token pattern refuses); the message never contains the value.
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()>;
}

/// Settings some formats need beyond the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// `semaphore`: the project id the environment belongs to.
    pub semaphore_project_id: i64,
    /// `semaphore`: the environment name.
    pub semaphore_environment: String,
    /// `cloud-init`: where the guest writes the token file.
    pub cloud_init_path: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            semaphore_project_id: 1,
            semaphore_environment: "ProxmoxAPI".to_owned(),
            cloud_init_path: "/root/.proxmox-api-token".to_owned(),
        }
    }
}

macro_rules! formats {
    ($($(#[$doc:meta])* $variant:ident => $name:literal),* $(,)?) => {
        /// A consumer format of `pvetoken render --format`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Format {
            $($(#[$doc])* $variant,)*
        }

        impl Format {
            /// Every format, in the order `--help` lists them.
            pub const ALL: &'static [Format] = &[$(Format::$variant,)*];

            /// The name `--format` takes.
            pub fn name(self) -> &'static str {
                match self {
                    $(Format::$variant => $name,)*
                }
            }
        }
    };
}

formats! {
    /// The token file itself ([`formats::env`]).
    Env => "env",
    /// Packer environment variables ([`formats::packer`]).
    Packer => "packer",
    /// Packer variable file `.pkrvars.hcl` ([`formats::packer_pkrvars`]).
    PackerPkrvars => "packer-pkrvars",
    /// bpg/proxmox environment variables ([`formats::terraform_bpg`]).
    TerraformBpg => "terraform-bpg",
    /// bpg/proxmox `.tfvars` ([`formats::terraform_bpg_tfvars`]).
    TerraformBpgTfvars => "terraform-bpg-tfvars",
    /// Telmate/proxmox environment variables ([`formats::terraform_telmate`]).
    TerraformTelmate => "terraform-telmate",
    /// Telmate/proxmox `.tfvars` ([`formats::terraform_telmate_tfvars`]).
    TerraformTelmateTfvars => "terraform-telmate-tfvars",
    /// community.proxmox environment fallbacks ([`formats::ansible_env`]).
    AnsibleEnv => "ansible-env",
    /// community.proxmox module parameters as YAML vars ([`formats::ansible_vars`]).
    AnsibleVars => "ansible-vars",
    /// The HTTP `Authorization` header value ([`formats::header`]).
    Header => "header",
    /// The home-infra SOPS schema, plaintext YAML ([`formats::sops`]); the CLI encrypts it with `sops`.
    Sops => "sops",
    /// A Semaphore environment request body ([`formats::semaphore`]).
    Semaphore => "semaphore",
    /// Everything, machine-readable ([`formats::json`]).
    Json => "json",
    /// A cloud-init `write_files` entry that writes the token file in a guest ([`formats::cloud_init`]).
    CloudInit => "cloud-init",
}

impl Format {
    /// The renderer of this format.
    pub fn renderer(self, options: &RenderOptions) -> Box<dyn Renderer> {
        match self {
            Format::Env => Box::new(formats::env::Env),
            Format::Packer => Box::new(formats::packer::Packer),
            Format::PackerPkrvars => Box::new(formats::packer_pkrvars::PackerPkrvars),
            Format::TerraformBpg => Box::new(formats::terraform_bpg::TerraformBpg),
            Format::TerraformBpgTfvars => Box::new(formats::terraform_bpg_tfvars::TerraformBpgTfvars),
            Format::TerraformTelmate => Box::new(formats::terraform_telmate::TerraformTelmate),
            Format::TerraformTelmateTfvars => Box::new(formats::terraform_telmate_tfvars::TerraformTelmateTfvars),
            Format::AnsibleEnv => Box::new(formats::ansible_env::AnsibleEnv),
            Format::AnsibleVars => Box::new(formats::ansible_vars::AnsibleVars),
            Format::Header => Box::new(formats::header::Header),
            Format::Sops => Box::new(formats::sops::Sops),
            Format::Semaphore => Box::new(formats::semaphore::Semaphore {
                project_id: options.semaphore_project_id,
                environment: options.semaphore_environment.clone(),
            }),
            Format::Json => Box::new(formats::json::Json),
            Format::CloudInit => Box::new(formats::cloud_init::CloudInit { path: options.cloud_init_path.clone() }),
        }
    }

    /// Renders into a string.
    pub fn render_to_string(self, token: &TokenFile, options: &RenderOptions) -> io::Result<String> {
        let mut out = Vec::new();
        self.renderer(options).render(token, &mut out)?;
        String::from_utf8(out).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "output is not UTF-8"))
    }

    /// The environment variables of an environment-variable format (`env`, `packer`, `terraform-bpg`,
    /// `terraform-telmate`, `ansible-env`) as (name, value) pairs, for handing them to a child process directly
    /// (`pvetoken exec`); `None` for file formats.
    pub fn variables(self, token: &TokenFile) -> Option<io::Result<Vec<(String, String)>>> {
        if !consumers::is_environment(self) {
            return None;
        }
        Some(self.render_to_string(token, &RenderOptions::default()).map(|text| parse_assignments(&text)))
    }

    /// Whether the output contains the token secret (all formats do today; kept explicit for the terminal guard).
    pub fn carries_secret(self) -> bool {
        true
    }
}

impl std::str::FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Format::ALL.iter().copied().find(|format| format.name() == name).ok_or_else(|| UnknownFormat(name.to_owned()))
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--format` name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{0}`")]
pub struct UnknownFormat(pub String);

/// Reads the `KEY='value'` / `export KEY='value'` lines the environment formats write (values quoted by
/// [`shell_single_quote`]); comments and other lines are skipped.
fn parse_assignments(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, quoted)) = line.split_once('=') else { continue };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let mut value = String::new();
        let mut inside = false;
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match (inside, c) {
                (_, '\'') => inside = !inside,
                (false, '\\') => value.extend(chars.next()),
                (_, c) => value.push(c),
            }
        }
        pairs.push((key.to_owned(), value));
    }
    pairs
}

#[cfg(test)]
mod variables_tests {
    use super::{parse_assignments, shell_single_quote};

    #[test]
    fn assignments_round_trip_through_shell_single_quotes() {
        for value in ["plain", "it's", "a b$c`d\\e\"f", "", "'''"] {
            let text =
                format!("# comment\nexport KEY={}\nOTHER={}\n", shell_single_quote(value), shell_single_quote(value));
            let got = parse_assignments(&text);
            assert_eq!(
                got,
                [("KEY".to_owned(), value.to_owned()), ("OTHER".to_owned(), value.to_owned())],
                "{value:?}"
            );
        }
    }
}
