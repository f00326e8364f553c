//! The life of a Proxmox VE API token as a library: settings in, a converged role, user, token and ACLs, a saved
//! secret and a verification out. No printing (progress goes to an [`Observer`]), no argument parsing, no process
//! exit: the `pvetoken` CLI is one caller, `apply` runs it for every declared token.
//!
//! - [`engine`]: one converging run against one server ([`engine::Lifecycle`]), the pending marker;
//! - [`token_store`]: token files, 0600 from the first byte, locks, refusal of files others can change;
//! - [`profiles`]: consumer profiles resolved per PVE release and narrowing;
//! - [`plan`]: what would change for declared tokens, as typed steps with their reasons and requests;
//! - [`verify`]: what a token lacks, which side lacks it, and the fix;
//! - [`rotate`]: a new secret, saved, verified, pushed to every [`rotate::Sinks`], then the old token retired;
//! - [`revoke`]: a token and its ACL entries deleted on the server;
//! - [`release`]: what the server's libpve-access-control can do (regenerate or new token);
//! - [`target`]: where requests go, and client errors as one line with the fix;
//! - [`token`], [`clock`]: token ids and rotation names; expiry and spans;
//! - [`env_vars`]: every environment variable pvetoken reads.

pub mod clock;
pub mod engine;
pub mod env_vars;
pub mod error;
pub mod minter;
pub mod observe;
pub mod plan;
pub mod profiles;
pub mod release;
pub mod revoke;
pub mod rotate;
pub mod target;
pub mod token;
pub mod token_store;
pub mod verify;

pub use error::{Error, Kind};
pub use observe::{Observer, Silent};
