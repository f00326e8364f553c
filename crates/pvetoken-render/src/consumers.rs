//! What each consumer reads, in one place: the variables and keys every [`Format`] writes and what each holds,
//! the environment variables consumers read, and the Semaphore environment layouts.
//!
//! The renderers write these keys, `pvetoken lint` judges them, `pvetoken doctor` looks for them in the shell and in
//! Semaphore, and `pvetoken register semaphore` writes the layouts. A new format must say here what it writes (the
//! `match` in [`keys`] has no catch-all), and the tests check that every renderer writes exactly its declared keys
//! and that lint has a rule for every key that holds a credential, a URL or a TLS switch.

use pvetoken_api::{ExposeSecret, Secret};

use crate::{Format, TokenFile};

/// What the value of a variable or key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// `https://host:port`, no path.
    Url,
    /// `https://host:port/api2/json` (Packer, Telmate).
    ApiUrl,
    /// `https://host:port/` (bpg).
    Endpoint,
    /// The server's host name or address.
    Host,
    /// The API port.
    Port,
    /// The node to build on.
    Node,
    /// The token's owner `user@realm`.
    User,
    /// The full token id `user@realm!name`.
    TokenId,
    /// The token name alone (community.proxmox).
    TokenName,
    /// The secret alone.
    Secret,
    /// `user@realm!name=secret` (bpg).
    IdAndSecret,
    /// The whole `PVEAPIToken=user@realm!name=secret` header value.
    Header,
    /// `true` turns certificate verification off.
    Insecure,
    /// `false` turns certificate verification off.
    ValidateCerts,
    /// The server certificate's SHA-256 fingerprint.
    Fingerprint,
    /// A CA bundle path.
    CaFile,
    /// The token's expiry (seconds since the epoch, 0 = never).
    Expire,
    /// The storage to build on.
    Storage,
}

impl Holds {
    /// Whether a wrong value here breaks authentication or TLS (lint must have a rule for such a key).
    pub fn is_checked(self) -> bool {
        matches!(
            self,
            Holds::ApiUrl
                | Holds::Endpoint
                | Holds::User
                | Holds::TokenId
                | Holds::TokenName
                | Holds::Secret
                | Holds::IdAndSecret
                | Holds::Insecure
                | Holds::ValidateCerts
        )
    }
}

/// One variable or key a format writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// As written (environment variables upper case, file keys as the consumer spells them).
    pub name: &'static str,
    /// What it holds.
    pub holds: Holds,
    /// Written only when the token file has the value (fingerprint, CA file, storage, insecure).
    pub optional: bool,
}

const fn key(name: &'static str, holds: Holds) -> Key {
    Key { name, holds, optional: false }
}

const fn optional(name: &'static str, holds: Holds) -> Key {
    Key { name, holds, optional: true }
}

/// The token file (`env`): pvetoken's own variables, also the PrivateBox scripts' (`source` + `curl`).
const ENV: &[Key] = &[
    key("PROXMOX_HOST", Holds::Host),
    key("PROXMOX_PORT", Holds::Port),
    key("PROXMOX_URL", Holds::Url),
    key("PROXMOX_NODE", Holds::Node),
    key("PROXMOX_TOKEN_ID", Holds::TokenId),
    key("PROXMOX_TOKEN_SECRET", Holds::Secret),
    optional("PROXMOX_FINGERPRINT", Holds::Fingerprint),
    key("PROXMOX_TOKEN_EXPIRE", Holds::Expire),
    optional("PROXMOX_STORAGE", Holds::Storage),
    optional("PROXMOX_CA_FILE", Holds::CaFile),
    optional("PROXMOX_TLS_INSECURE", Holds::Insecure),
];

/// packer-plugin-proxmox's environment fallbacks.
const PACKER: &[Key] = &[
    key("PROXMOX_URL", Holds::ApiUrl),
    key("PROXMOX_USERNAME", Holds::TokenId),
    key("PROXMOX_TOKEN", Holds::Secret),
    key("PROXMOX_NODE", Holds::Node),
];

/// A `.pkrvars.hcl` for packer-plugin-proxmox.
const PACKER_PKRVARS: &[Key] = &[
    key("proxmox_url", Holds::ApiUrl),
    key("proxmox_username", Holds::TokenId),
    key("proxmox_token", Holds::Secret),
    key("proxmox_node", Holds::Node),
    key("proxmox_skip_tls_verify", Holds::Insecure),
];

/// bpg/proxmox's environment variables.
const TERRAFORM_BPG: &[Key] = &[
    key("PROXMOX_VE_ENDPOINT", Holds::Endpoint),
    key("PROXMOX_VE_API_TOKEN", Holds::IdAndSecret),
    key("PROXMOX_VE_INSECURE", Holds::Insecure),
];

/// A `.tfvars` for bpg/proxmox.
const TERRAFORM_BPG_TFVARS: &[Key] = &[
    key("proxmox_endpoint", Holds::Endpoint),
    key("proxmox_api_token", Holds::IdAndSecret),
    key("proxmox_insecure", Holds::Insecure),
];

/// Telmate/proxmox's environment variables.
const TERRAFORM_TELMATE: &[Key] = &[
    key("PM_API_URL", Holds::ApiUrl),
    key("PM_API_TOKEN_ID", Holds::TokenId),
    key("PM_API_TOKEN_SECRET", Holds::Secret),
    key("PM_TLS_INSECURE", Holds::Insecure),
];

/// A `.tfvars` for Telmate/proxmox.
const TERRAFORM_TELMATE_TFVARS: &[Key] = &[
    key("pm_api_url", Holds::ApiUrl),
    key("pm_api_token_id", Holds::TokenId),
    key("pm_api_token_secret", Holds::Secret),
    key("pm_tls_insecure", Holds::Insecure),
];

/// community.proxmox's environment fallbacks (here `PROXMOX_TOKEN_ID` is the name alone).
const ANSIBLE_ENV: &[Key] = &[
    key("PROXMOX_HOST", Holds::Host),
    key("PROXMOX_PORT", Holds::Port),
    key("PROXMOX_USER", Holds::User),
    key("PROXMOX_TOKEN_ID", Holds::TokenName),
    key("PROXMOX_TOKEN_SECRET", Holds::Secret),
    key("PROXMOX_VALIDATE_CERTS", Holds::ValidateCerts),
    optional("PROXMOX_CA_PATH", Holds::CaFile),
    // community.proxmox before 2.0 (1.4 is what ansible 12 bundles) has no `ca_path`: proxmoxer verifies through
    // requests, which reads its CA bundle from here.
    optional("REQUESTS_CA_BUNDLE", Holds::CaFile),
];

/// community.proxmox module parameters.
const ANSIBLE_VARS: &[Key] = &[
    key("api_host", Holds::Host),
    key("api_port", Holds::Port),
    key("api_user", Holds::User),
    key("api_token_id", Holds::TokenName),
    key("api_token_secret", Holds::Secret),
    key("validate_certs", Holds::ValidateCerts),
    optional("ca_path", Holds::CaFile),
];

/// The home-infra SOPS schema.
const SOPS: &[Key] = &[
    key("proxmox_url", Holds::ApiUrl),
    key("proxmox_user", Holds::User),
    key("proxmox_token_id", Holds::TokenName),
    key("proxmox_token_secret", Holds::Secret),
    key("proxmox_node", Holds::Node),
    key("proxmox_storage_pool", Holds::Storage),
    key("proxmox_tls_insecure", Holds::Insecure),
];

/// The variables and keys `format` writes, in its output order; empty for formats without named keys (the header,
/// the JSON document, the Semaphore body and cloud-init entry, which carry other formats or free structure).
pub fn keys(format: Format) -> &'static [Key] {
    match format {
        Format::Env => ENV,
        Format::Packer => PACKER,
        Format::PackerPkrvars => PACKER_PKRVARS,
        Format::TerraformBpg => TERRAFORM_BPG,
        Format::TerraformBpgTfvars => TERRAFORM_BPG_TFVARS,
        Format::TerraformTelmate => TERRAFORM_TELMATE,
        Format::TerraformTelmateTfvars => TERRAFORM_TELMATE_TFVARS,
        Format::AnsibleEnv => ANSIBLE_ENV,
        Format::AnsibleVars => ANSIBLE_VARS,
        Format::Sops => SOPS,
        Format::Header | Format::Semaphore | Format::Json | Format::CloudInit => &[],
    }
}

/// Whether `format` is a set of environment variables (handed to a child process by `pvetoken exec`).
pub fn is_environment(format: Format) -> bool {
    match format {
        Format::Env | Format::Packer | Format::TerraformBpg | Format::TerraformTelmate | Format::AnsibleEnv => true,
        Format::PackerPkrvars
        | Format::TerraformBpgTfvars
        | Format::TerraformTelmateTfvars
        | Format::AnsibleVars
        | Format::Sops
        | Format::Header
        | Format::Semaphore
        | Format::Json
        | Format::CloudInit => false,
    }
}

/// Variables consumers read that no format writes: proxmoxer scripts and home-infra's `PROXMOX_API_TOKEN`
/// (the whole header value).
const ALSO_READ: &[Key] = &[key("PROXMOX_API_TOKEN", Holds::Header)];

/// Every environment variable a consumer reads, each name once (the environment formats' variables, then the
/// ones no format writes).
pub fn environment_variables() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    let written = Format::ALL.iter().copied().filter(|format| is_environment(*format)).flat_map(keys);
    for key in written.chain(ALSO_READ) {
        if !names.contains(&key.name) {
            names.push(key.name);
        }
    }
    names
}

/// The variables a Semaphore environment gets (`pvetoken register semaphore --layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SemaphoreLayout {
    /// The PrivateBox design note: `PROXMOX_HOST`, `PROXMOX_NODE`, `PROXMOX_TOKEN_ID` (full `user@realm!name`),
    /// `PROXMOX_TOKEN_SECRET`.
    Seed,
    /// What community.proxmox reads from the environment: `PROXMOX_HOST`, `PROXMOX_PORT`, `PROXMOX_USER`
    /// (`user@realm`), `PROXMOX_TOKEN_ID` (name only), `PROXMOX_TOKEN_SECRET`, `PROXMOX_VALIDATE_CERTS`.
    CommunityProxmox,
}

/// The seed layout's variables.
const SEED: &[Key] = &[
    key("PROXMOX_HOST", Holds::Host),
    key("PROXMOX_NODE", Holds::Node),
    key("PROXMOX_TOKEN_ID", Holds::TokenId),
    key("PROXMOX_TOKEN_SECRET", Holds::Secret),
];

impl SemaphoreLayout {
    /// Every layout, the default first.
    pub const ALL: [SemaphoreLayout; 2] = [SemaphoreLayout::Seed, SemaphoreLayout::CommunityProxmox];

    /// The name `--layout` takes (and the sink record keeps).
    pub fn name(self) -> &'static str {
        match self {
            SemaphoreLayout::Seed => "seed",
            SemaphoreLayout::CommunityProxmox => "community-proxmox",
        }
    }

    /// The layout called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|layout| layout.name() == name)
    }

    /// Its variables, in the order they are written (community.proxmox's environment without the CA path: a
    /// Semaphore environment cannot carry the CA file).
    pub fn keys(self) -> Vec<Key> {
        let all = match self {
            SemaphoreLayout::Seed => SEED,
            SemaphoreLayout::CommunityProxmox => ANSIBLE_ENV,
        };
        all.iter().filter(|key| !key.optional).copied().collect()
    }

    /// Its variable names.
    pub fn names(self) -> Vec<&'static str> {
        self.keys().into_iter().map(|key| key.name).collect()
    }

    /// Every name any layout writes: Semaphore secrets with these names belong to pvetoken and are replaced, others
    /// in the same environment are left alone.
    pub fn managed_names() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for key in Self::ALL.into_iter().flat_map(Self::keys) {
            if !names.contains(&key.name) {
                names.push(key.name);
            }
        }
        names
    }

    /// The variables with their values for `token`, in [`SemaphoreLayout::keys`] order. community.proxmox cannot
    /// pin a fingerprint, so a pinned (self-signed) or insecure server gets `PROXMOX_VALIDATE_CERTS=false`.
    pub fn variables(self, token: &TokenFile) -> Vec<(&'static str, Secret)> {
        self.keys()
            .into_iter()
            .filter_map(|key| Some((key.name, Secret::from(layout_value(key.holds, token)?))))
            .collect()
    }
}

/// The value of a layout variable (`None` for what no layout holds; a test checks every layout key has one).
fn layout_value(holds: Holds, token: &TokenFile) -> Option<String> {
    Some(match holds {
        Holds::Host => token.host.clone(),
        Holds::Port => token.port.to_string(),
        Holds::Node => token.node.clone(),
        Holds::User => token.token_id.user_str().to_owned(),
        Holds::TokenId => token.token_id.to_string(),
        Holds::TokenName => token.token_id.name_str().to_owned(),
        Holds::Secret => token.secret.expose_secret().to_owned(),
        Holds::ValidateCerts => (token.fingerprint.is_none() && !token.tls_insecure).to_string(),
        _ => return None,
    })
}
