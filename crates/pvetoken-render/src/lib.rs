//! The token file model and one renderer per consumer format.
//!
//! [`TokenFile`] is the one source of truth about a token: where it works and its secret. Every consumer format
//! (Packer, Terraform, Ansible, SOPS, Semaphore, ...) is rendered from it.

pub mod token_file;

pub use token_file::{DEFAULT_PVE_PORT, TokenFile, TokenFileError, shell_single_quote};
