//! Every environment variable pvetoken reads, declared once. `pvetoken --help` and the README list these.

/// Disables colour when set to a non-empty value (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";

/// Default PVE API address for every command that talks to a server (`--url`).
pub const PVETOKEN_URL: &str = "PVETOKEN_URL";

/// Password of the administrator named by `--auth-user` (default `root@pam`). Never pass it as an argument.
pub const PVETOKEN_PASSWORD: &str = "PVETOKEN_PASSWORD";

/// Path of a token file (mode 0600) holding an administrator's API token, used instead of a password login.
pub const PVETOKEN_ADMIN_TOKEN_FILE: &str = "PVETOKEN_ADMIN_TOKEN_FILE";

/// The `pvesh` program `--local` runs (default: `pvesh` from `PATH`). Tests point it at a stand-in.
pub const PVETOKEN_PVESH: &str = "PVETOKEN_PVESH";

/// Semaphore UI base URL for `pvetoken register semaphore` (instead of `--url`).
pub const SEMAPHORE_URL: &str = "SEMAPHORE_URL";
/// A Semaphore API token (Bearer), preferred over a password login by `pvetoken register semaphore`.
pub const SEMAPHORE_API_TOKEN: &str = "SEMAPHORE_API_TOKEN";
/// The Semaphore password for `pvetoken register semaphore --user NAME` (never passed as an argument).
pub const SEMAPHORE_PASSWORD: &str = "SEMAPHORE_PASSWORD";

/// Base directory of user configuration; the default token file of a non-root user is
/// `$XDG_CONFIG_HOME/pvetoken/token.env`.
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";

/// The home directory, used when `XDG_CONFIG_HOME` is unset (`~/.config/pvetoken/token.env`).
pub const HOME: &str = "HOME";

/// The `sops` program `pvetoken render --format sops --age-recipient ...` runs (default: `sops` from `PATH`).
pub const PVETOKEN_SOPS: &str = "PVETOKEN_SOPS";

/// OpenBao's address when `--addr` is not given (`VAULT_ADDR` is read when it is unset).
pub const BAO_ADDR: &str = "BAO_ADDR";
/// HashiCorp Vault's name for the address.
pub const VAULT_ADDR: &str = "VAULT_ADDR";
/// OpenBao token for `register openbao` and the rotation of its sinks.
pub const BAO_TOKEN: &str = "BAO_TOKEN";
/// HashiCorp Vault's name for the token (read when `BAO_TOKEN` is unset).
pub const VAULT_TOKEN: &str = "VAULT_TOKEN";
/// CA bundle for OpenBao's HTTPS when `--ca-file` is not given.
pub const BAO_CACERT: &str = "BAO_CACERT";

/// Variables that carry credentials (or point at them): removed from the environment of every child process
/// (sops, pvesh, ssh-keygen), which never needs them.
pub const CREDENTIALS: &[&str] =
    &[PVETOKEN_PASSWORD, PVETOKEN_ADMIN_TOKEN_FILE, SEMAPHORE_PASSWORD, SEMAPHORE_API_TOKEN, BAO_TOKEN, VAULT_TOKEN];

/// Removes [`CREDENTIALS`] from a child's environment.
pub trait ScrubCredentials {
    /// The command without the credential variables.
    fn env_clear_credentials(&mut self) -> &mut Self;
}

impl ScrubCredentials for std::process::Command {
    fn env_clear_credentials(&mut self) -> &mut Self {
        for name in CREDENTIALS {
            self.env_remove(name);
        }
        self
    }
}

impl ScrubCredentials for tokio::process::Command {
    fn env_clear_credentials(&mut self) -> &mut Self {
        for name in CREDENTIALS {
            self.env_remove(name);
        }
        self
    }
}
